"""The ``bridgesolve`` command: results folders, exact errors, failures that leave nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridgesolve.cli import main

SMALL = """
[domain]
type = "interval"
lower = [-6.0]
upper = [6.0]
cells = 60
[process]
type = "OU"
[initial]
weights = [0.4, 0.6]
means = [[-1.5], [1.0]]
covs = [0.3, 0.5]
[time]
T = 0.5
steps = 20
[discretization]
degree = 2
[output]
plot_times = [0.0, 0.25, 0.5]
"""


@pytest.mark.mpi
def test_run_writes_results_with_exact_errors(mpi_tmp_path, capsys):
    cfg = mpi_tmp_path / "small.toml"
    if _rank() == 0:
        cfg.write_text(SMALL)
    _barrier()
    out = mpi_tmp_path / "out"
    assert main(["run", str(cfg), "-o", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exact_solution"] is True
    # P2 on h = 0.2 with 20 Crank–Nicolson steps: measured 2.5e-4.
    assert summary["error_at_report_time"]["L2"] < 5e-4
    assert summary["mass"]["max_drift"] < 1e-10
    assert summary["discretization"]["element"] == "P2"
    assert {"setup_s", "stepping_s", "output_s", "wall_s"} <= set(summary["timings"])
    assert "dolfinx" in summary["versions"]
    for name in ("p.png", "mass.png", "config.toml", "p.bp"):
        assert (out / name).exists(), name
    assert not list(mpi_tmp_path.glob(".out.tmp-*"))
    if _rank() == 0:
        assert "Fokker-Planck" not in capsys.readouterr().err  # --quiet: no progress bar


def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(SMALL.replace("T = 0.5", "T = -0.5"))
    out = tmp_path / "out"
    assert main(["run", str(cfg), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bridgesolve: error: [time] T = -0.5" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [cfg]


def test_existing_output_needs_overwrite(tmp_path, capsys):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old results")
    assert main(["run", str(cfg), "-o", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").exists()
    assert main(["run", str(cfg), "-o", str(out), "--quiet", "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "summary.json").exists()


def test_failure_during_solve_leaves_no_folder(tmp_path, monkeypatch):
    import bridgesolve as bs

    def boom(*args, **kwargs):
        raise bs.BridgesolveInputError("synthetic failure inside the solver")

    monkeypatch.setattr(bs, "solve_fokker_planck", boom)
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    assert main(["run", str(cfg), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


def test_backward_example_configs_run(tmp_path):
    examples = Path(__file__).resolve().parent.parent / "examples"
    out = tmp_path / "hjb"
    assert main(["run", str(examples / "hjb_underflow.toml"), "-o", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["equation"] == "hjb" and s["exact_solution"]
    assert s["error_at_report_time"]["Linf"] < 0.05  # |S| reaches 3e4 at t = T
    assert (out / "newton.png").exists()


def test_help_explains_options_and_sections():
    res = subprocess.run([sys.executable, "-m", "bridgesolve.cli", "run", "--help"],
                         capture_output=True, text=True, check=True)
    for word in ("--overwrite", "--quiet", "--no-vtx", "[domain]", "[process]", "[initial]",
                 "[terminal]", "[killing]", "exit codes"):
        assert word in res.stdout, word


def _rank():
    from bridgesolve._dolfinx import MPI

    return MPI.COMM_WORLD.rank


def _barrier():
    from bridgesolve._dolfinx import MPI

    MPI.COMM_WORLD.barrier()
