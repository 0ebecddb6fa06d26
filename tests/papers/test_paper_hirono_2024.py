"""examples/papers/hirono_2024.py --quick runs headless and its numbers.json agrees with the
closed forms (1D Gaussian model), the WKB slope agrees with the PDE's Richardson slope, and
the two forms of the WKB coefficient agree; the full run is a slow test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "papers" / "hirono_2024.py"


def _run(out: Path, *extra: str) -> dict:
    res = subprocess.run([sys.executable, str(SCRIPT), "-o", str(out), *extra],
                         capture_output=True, text=True, timeout=3000,
                         env={**os.environ, "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    for png in ("gaussian_model.png", "two_gaussians.png", "w2_2d.png"):
        size = (out / png).stat().st_size
        assert 10_000 < size < 300_000, (png, size)
    assert (out / "table_2d.md").read_text().count("\n") == 6
    return json.loads((out / "numbers.json").read_text())


def _check(numbers: dict, *, nll_tol: float, w2_tol: float, slope_tol: float) -> None:
    g = numbers["gaussian_model"]
    assert g["max_nll_error"] < nll_tol, g["max_nll_error"]
    assert g["max_w2_error"] < w2_tol, g["max_w2_error"]
    # long horizon: noise helps; short horizon T = 1, ε = 0.2: NLL increases with ℏ
    increases = {(c["T"], c["eps"]): c["nll_increases_with_hbar"] for c in g["cases"]}
    assert increases == {(5.0, -0.2): False, (5.0, 0.1): False, (5.0, 0.2): False,
                         (1.0, 0.2): True}, increases
    for case in g["cases"]:
        assert np.all(np.isfinite(case["nll_pde"])) and np.all(np.isfinite(case["w2_pde"]))
    for case in numbers["two_gaussians"]["cases"]:
        assert case["slope_relative_difference"] < slope_tol, case
        assert case["C_paper_vs_transport_max"] < 0.1, case
        # exact NLL at ℏ = 0 against the tangent's start, and the tangent is a tangent
        assert case["nll_tangent"][0] == pytest.approx(case["nll_exact"][0], rel=1e-12)
    two_d = numbers["two_d"]
    assert {"sizes", "reduced_from_paper"} <= set(two_d), sorted(two_d)
    assert len(two_d["runs"]) == 4, [(r["data"], r["schedule"]) for r in two_d["runs"]]
    for run in two_d["runs"]:
        assert np.isfinite(run["nll_hbar0"]) and np.isfinite(run["nll_slope_wkb"]), run
        assert len(run["w2_squared"]) == len(run["hbar"]) and min(run["w2_squared"]) > 0


def test_quick_run_matches_closed_forms(tmp_path):
    numbers = _run(tmp_path, "--quick")
    assert numbers["quick"] is True
    _check(numbers, nll_tol=5e-3, w2_tol=5e-3, slope_tol=2e-2)


@pytest.mark.slow
def test_full_run(tmp_path):
    numbers = _run(tmp_path)
    _check(numbers, nll_tol=1e-4, w2_tol=1e-4, slope_tol=5e-3)
    for case in numbers["two_gaussians"]["cases"]:
        assert case["C_max_difference_over_max_C"] < 2e-2, case  # measured 1.5e-2, 3.5e-4
