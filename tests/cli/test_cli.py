"""The ``bridgesolve`` command: results folders, exact errors, failures that leave nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bridgesolve.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# A 1D two-component mixture under OU: P1 on 40 cells, 20 Crank–Nicolson steps (< 1 s).
SMALL = """\
[domain]
type = "interval"
lower = [-6.0]
upper = [6.0]
cells = 40

[process]
type = "OU"

[initial]
weights = [0.4, 0.6]
means = [[-1.5], [1.0]]
covs = [0.3, 0.5]

[time]
T = 0.5
steps = 20

[output]
plot_times = [0.0, 0.1, 0.5]
"""


@pytest.fixture
def small(mpi_tmp_path, comm) -> Path:
    """SMALL written to a folder that all ranks share."""
    path = mpi_tmp_path / "small.toml"
    if comm.rank == 0:
        path.write_text(SMALL)
    comm.barrier()
    return path


@pytest.mark.mpi
def test_run_writes_results_with_exact_errors(small, comm):
    out = small.parent / "out"
    assert main(["run", str(small), "-o", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exact_solution"] is True and summary["mpi_size"] == comm.size
    # P1 with h = 0.3 against the exact mixture: measured 2.39e-3 (serial and 2 ranks).
    assert summary["error_at_report_time"]["t"] == 0.5
    assert summary["error_at_report_time"]["L2"] < 3e-3
    assert [e["t"] for e in summary["errors"]] == pytest.approx([0.0, 0.1, 0.5])
    assert summary["mass"]["max_drift"] < 1e-12
    assert summary["mass"]["outside_initial"] < 1e-10
    assert summary["solver"]["factorizations"] == 1
    assert summary["problem"]["discretization"]["element"] == "P1"
    assert summary["problem"]["discretization"]["ndofs"] == 41
    assert summary["config"] == tomllib.loads(SMALL)
    assert {"setup_s", "stepping_s", "solve_s", "output_s", "total_s"} == set(summary["timings"])
    assert {"bridgesolve", "dolfinx", "petsc"} <= set(summary["versions"])
    assert (out / "config.toml").read_text() == SMALL
    for name in ("density.png", "mass.png", "density.bp"):
        assert (out / name).exists(), name
    assert sorted(p.name for p in small.parent.iterdir()) == ["out", "small.toml"]


def test_progress_bar_and_summary_unless_quiet(small, capsys):
    assert main(["run", str(small), "-o", str(small.parent / "loud"), "--no-vtx"]) == 0
    loud = capsys.readouterr()
    assert "Fokker-Planck" in loud.err  # the progress bar
    for word in ("results", "41 dofs", "20 (clock spacing)", "L2 error", "mass drift",
                 "wall time"):
        assert word in loud.out, word
    assert not (small.parent / "loud" / "density.bp").exists()  # --no-vtx

    assert main(["run", str(small), "-o", str(small.parent / "quiet"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    assert (small.parent / "quiet" / "density.bp").is_dir()


def test_default_example_runs(tmp_path):
    out = tmp_path / "default"
    assert main(["run", "-o", str(out), "--quiet", "--no-vtx"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config_source"] == "<embedded default>"
    assert summary["problem"]["process"]["type"] == "VP"
    # P1, 64 x 64 cells, 100 clock steps: measured 1.08e-3 at T = 1.
    assert summary["error_at_report_time"]["L2"] < 1.5e-3


def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(SMALL.replace("T = 0.5", "T = -0.5"))
    out = tmp_path / "results" / "out"
    assert main(["run", str(cfg), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == ("bridgesolve: error: [time] T = -0.5: expected a finite positive number\n")
    assert list(tmp_path.iterdir()) == [cfg]


@pytest.mark.mpi
def test_existing_output_needs_overwrite(small, comm, capsys):
    out = small.parent / "out"
    if comm.rank == 0:
        out.mkdir()
        (out / "summary.json").write_text("{}")  # an earlier results folder
    comm.barrier()
    assert main(["run", str(small), "-o", str(out), "--quiet"]) == 2
    if comm.rank == 0:
        assert "exists: pass --overwrite" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == "{}"
    assert main(["run", str(small), "-o", str(out), "--quiet", "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["equation"] == "fokker-planck"
    assert sorted(p.name for p in small.parent.iterdir()) == ["out", "small.toml"]


def test_overwrite_never_replaces_other_folders(small, capsys, monkeypatch):
    foreign = small.parent / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("irreplaceable")
    assert main(["run", str(small), "-o", str(foreign), "--overwrite", "--quiet"]) == 2
    assert "not a bridgesolve results folder" in capsys.readouterr().err
    monkeypatch.chdir(foreign)
    assert main(["run", str(small), "-o", ".", "--overwrite", "--quiet"]) == 2
    assert "is the working directory" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["chapter1.tex"]


def test_unexpected_failure_exits_1_and_leaves_no_folder(small, monkeypatch, capsys):
    import bridgesolve as bs

    def boom(*args, **kwargs):
        # A ValueError that is not a BridgesolveInputError is a bug, not bad input.
        raise ValueError("synthetic failure inside the solver")

    monkeypatch.setattr(bs, "solve_fokker_planck", boom)
    out = small.parent / "new" / "nested" / "out"
    assert main(["run", str(small), "-o", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: synthetic failure" in err
    # Neither the temporary folder nor the parents created for it are left behind.
    assert sorted(p.name for p in small.parent.iterdir()) == ["small.toml"]


def test_input_error_during_solve_exits_2(small, monkeypatch, capsys):
    import bridgesolve as bs

    def boom(*args, **kwargs):
        raise bs.BridgesolveInputError("synthetic input error found by the solver")

    monkeypatch.setattr(bs, "solve_fokker_planck", boom)
    assert main(["run", str(small), "-o", str(small.parent / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bridgesolve: error: synthetic input error" in err and "Traceback" not in err
    assert sorted(p.name for p in small.parent.iterdir()) == ["small.toml"]


def test_backward_example_config_runs(tmp_path):
    out = tmp_path / "hjb"
    assert main(["run", str(EXAMPLES / "hjb_underflow.toml"), "-o", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["equation"] == "hjb" and s["exact_solution"]
    assert s["error_at_report_time"]["t"] == 0.0
    assert s["error_at_report_time"]["Linf"] < 0.05  # |S| reaches 3e4 at t = T
    for name in ("S.png", "S.bp", "newton.png"):
        assert (out / name).exists(), name


def test_help_version_and_usage_errors(capsys):
    script = Path(sys.executable).with_name("bridgesolve")
    top = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    sub = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True,
                         check=True)
    for text in (top.stdout, sub.stdout):
        for word in ("[problem]", "[domain]", "[process]", "[initial]", "[terminal]",
                     "[killing]", "[time]", "[discretization]", "[output]", "exit codes"):
            assert word in text, word
    for option in ("--output", "--overwrite", "--quiet", "--no-vtx"):
        assert option in sub.stdout, option
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("bridgesolve 0.")
    assert main(["run", "--no-such-option"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err
