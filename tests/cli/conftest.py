"""Fixtures of the command-line tests (the learn ones borrow tests/learn's analytic bundle)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn"))

HAS_TORCH = importlib.util.find_spec("torch") is not None
# train/validate need PyTorch (the `learn` extra): without it their tests are not collected.
collect_ignore = [] if HAS_TORCH else ["test_cli_learn.py"]


@pytest.fixture(autouse=True)
def _few_threads(request):
    """The machine is shared: torch on 1 thread in the learn tests (restored afterwards)."""
    if not (HAS_TORCH and request.module.__name__.endswith("test_cli_learn")):
        yield
        return
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def vp_bundle_2d():
    from learn_helpers import analytic_bundle

    import bridgesolve as bs

    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
                             [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])
    return analytic_bundle(mix, bs.VP(), nt=40, box=6.0, cells=24, order=3)
