"""Smoke-size run of ``benchmarks/scaling.py`` (no timing asserted): the workers start under
``mpiexec``, the interface solver is what they report using, a distributed run gives the
serial run's Fokker–Planck error, and the efficiency against the fastest serial
configuration is printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import scaling  # noqa: E402


@pytest.mark.skipif(not (Path(sys.executable).parent / "mpiexec").exists(),
                    reason="needs the venv's mpiexec")
def test_scaling_smoke(tmp_path, capsys):
    assert scaling.main(["--dofs", "10000", "--ranks", "1", "2", "--steps", "10",
                         "--solvers", "petsc", "interface", "--bridge-iters", "1",
                         "--output", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "scaling.json").read_text())
    assert [(r["solver"], r["ranks"]) for r in results] == [
        ("petsc", 1), ("interface", 1), ("interface", 2)]
    assert results[0]["used"] == "preonly+lu(petsc)"
    assert results[1]["used"] == results[2]["used"] == "InterfaceLU"
    errors = [r["fp_L2_error"] for r in results]
    assert max(errors) - min(errors) <= 1e-10 * max(errors)
    assert all(r["bridge_iterations"] == 1 and len(r["bridge_iter_all_s"]) == 1
               and r["bridge_iter_s"] > 0 for r in results)
    text = (tmp_path / "scaling.txt").read_text()
    assert "Efficiency against the fastest serial configuration" in text
    assert "interface R=2" in text
