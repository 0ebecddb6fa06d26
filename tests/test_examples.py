"""Every example runs headless and writes its figures (as in CI)."""

from __future__ import annotations

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
