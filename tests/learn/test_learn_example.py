"""The literate score-network example runs headless (few training steps) and writes its
report and figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "learn" / "score_network_vs_pde.py"


@pytest.mark.slow  # ~30 s: a P2 reference, training, and two generated-density solves
def test_score_network_example(tmp_path):
    pytest.importorskip("bridgesolve._dolfinx")
    pytest.importorskip("torch")
    env = {**os.environ, "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path), "--steps", "300"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dsm"]["consistent"], res.stdout
    assert report["bound"]["kl_h1"] <= report["bound"]["bound"], res.stdout
    for name in ("error_vs_t.png", "error_maps.png", "score_fields.png", "q_h.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
