"""The Yu & Huang (2025) figure set: the script runs headless and its numbers.json agrees
with the closed forms (quick run; the full run is a slow test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "papers" / "yu_huang_2025.py"
FIGURES = ("effective_potential", "entropy_production", "path_entropies", "ift_convergence",
           "phase_diagram", "franz_parisi")


def _run(out: Path, *extra: str) -> tuple[dict, float]:
    env = {**os.environ, "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), "-o", str(out), *extra], env=env,
                          capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "numbers.json").read_text()), elapsed


def _check(numbers: dict, out: Path) -> None:
    for name in FIGURES:
        png = out / f"{name}.png"
        assert png.is_file() and 10_000 < png.stat().st_size < 300_000, png
    ep = numbers["entropy_production"]
    dt = ep["t_s"]["time_step"]
    assert abs(ep["Pi0"]["difference"]) < 1e-4, ep["Pi0"]
    assert abs(ep["t_s"]["difference"]) < dt, ep["t_s"]
    assert abs(ep["t_b"]["difference"]) < dt, ep["t_b"]
    assert abs(ep["t_star"]["difference"]) < dt, ep["t_star"]
    assert abs(ep["min_Phi_star"]["difference"]) < 1e-3, ep["min_Phi_star"]
    assert max(ep["max_abs_error_t>=0.5"].values()) < 1e-3, ep["max_abs_error_t>=0.5"]
    assert abs(ep["integral_Pi"]["difference"]) < 2e-3, ep["integral_Pi"]
    for direction in ("forward", "reverse"):
        ift = numbers["ift_convergence"][direction]
        assert abs(ift["z"]) < 3.0, ift
        mean = numbers["path_entropies"][direction]["mean_total"]
        assert abs(mean["difference"]) < 3.5 * mean["standard_error"], mean
    assert max(numbers["effective_potential"]["max_abs_error"].values()) < 2e-3
    assert numbers["phase_diagram"]["region_agreement"] == 1.0, numbers["phase_diagram"]
    for t in ("t=1", "t=0.01"):
        fp = numbers["franz_parisi"][t]
        assert fp["monte_carlo_max_z"] < 3.5, fp
        for kind in ("minima", "maxima"):
            for ext in fp[kind]:
                assert abs(ext["V"]["difference"]) < 1e-4, fp
    # t = 1 has the planted state's local minimum near q ≈ (2μ)² = 4 and a barrier before it
    assert numbers["franz_parisi"]["t=1"]["minima"] and numbers["franz_parisi"]["t=1"]["maxima"]


def test_quick_figure_set(tmp_path):
    numbers, elapsed = _run(tmp_path, "--quick")
    assert numbers["quick"] is True
    _check(numbers, tmp_path)
    assert elapsed < 120, f"--quick took {elapsed:.0f} s"


@pytest.mark.slow
def test_full_figure_set(tmp_path):
    numbers, elapsed = _run(tmp_path)
    _check(numbers, tmp_path)
    fwd = numbers["path_entropies"]["reverse"]["ift_mean"]
    assert abs(fwd["z"]) < 3.0, fwd
