"""Fixtures of the learn tests: CPU threads, an analytic reference bundle."""

from __future__ import annotations

import pytest
from learn_helpers import analytic_bundle

import bridgesolve as bs


@pytest.fixture(autouse=True)
def _few_threads():
    """The machine is shared: torch on 1 thread (restored afterwards)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def mixture2d_learn():
    return bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
                              [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])


@pytest.fixture(scope="module")
def vp_bundle_2d():
    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
                             [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])
    return analytic_bundle(mix, bs.VP(), nt=40, box=6.0, cells=24, order=3)
