"""Every example runs headless and writes its figures (as in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_fokker_planck_convergence_example(tmp_path):
    env = {**os.environ, "MPLBACKEND": "agg"}
    res = subprocess.run([sys.executable, str(EXAMPLES / "fokker_planck_convergence.py"),
                          str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "density.png").stat().st_size > 10_000
    assert (tmp_path / "convergence.png").stat().st_size > 10_000
    # The printed observed orders are the example's point: P1 ~ 2, P2 ~ 3.
    orders = [float(line.split()[-1]) for line in res.stdout.splitlines()
              if "observed order" in line]
    assert len(orders) == 2 and orders[0] > 1.9 and orders[1] > 2.8, res.stdout


def test_bridge_small_noise_example_quick(tmp_path):
    env = {**os.environ, "MPLBACKEND": "agg"}
    res = subprocess.run([sys.executable, str(EXAMPLES / "bridge_small_noise.py"), "--quick",
                          "--output", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads((tmp_path / "small_noise.json").read_text())
    assert len(rows) == 4 and all(r["converged"] for r in rows), rows
    assert all(r["L1_mid"] < 0.05 for r in rows), rows
    # every iteration counts, the continuation stages' too
    fast = {r["dim"]: r["iterations_total"] for r in rows if r["improved"]}
    plain = {r["dim"]: r["iterations_total"] for r in rows if not r["improved"]}
    assert fast[1] < plain[1], rows  # σ = 0.2: continuation + Anderson pay
    assert (tmp_path / "small_noise.png").stat().st_size > 10_000
