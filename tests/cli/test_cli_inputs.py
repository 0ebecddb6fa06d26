"""Messages of the command line (issue 16): folders passed as configs, one-line errors,
plot times moved to grid levels, unconverged bridges, the size of a written bundle."""

from __future__ import annotations

import json

import pytest

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.cli import main

FP = """\
[domain]
type = "interval"
lower = [-6.0]
upper = [6.0]
cells = 20
[process]
type = "VP"
[initial]
weights = [1.0]
means = [[0.5]]
covs = [0.3]
[time]
T = 0.5
steps = 8
spacing = "graded"
[output]
plot_times = [0.0, 0.123, 0.5]
"""

BRIDGE = """\
[problem]
equation = "bridge"
[domain]
type = "interval"
lower = [-6.0]
upper = [6.0]
cells = 30
[process]
type = "Brownian"
sigma = 0.5
[initial]
weights = [1.0]
means = [[-2.0]]
covs = [0.2]
[final]
weights = [1.0]
means = [[2.0]]
covs = [0.3]
[time]
T = 1.0
steps = 10
spacing = "uniform"
[bridge]
max_iter = 2
"""


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bridgesolve: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["run", "bridge", "reference", "likelihood",
                                     "convergence"])
def test_a_folder_passed_as_config_says_so(command, tmp_path, capsys):
    assert main([command, str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "is a folder" in line and "does not exist" not in line


def test_input_errors_are_one_line_with_exit_2(monkeypatch, capsys):
    from bridgesolve.cli import run

    def multi_line(args):
        raise BridgesolveInputError("file 'x.npz' is damaged:\n  truncated after 12 bytes")

    monkeypatch.setattr(run, "command", multi_line)  # add_parser binds it when main runs
    assert main(["run"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "damaged: truncated after 12 bytes" in line


def test_moved_plot_times_are_named(tmp_path, capsys):
    cfg = tmp_path / "fp.toml"
    cfg.write_text(FP)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "-o", str(out), "--quiet", "--no-vtx"]) == 0
    err = capsys.readouterr().err
    assert "plot times moved" in err and "0.123 ->" in err, err
    record = json.loads((out / "summary.json").read_text())["plot_times"]
    assert record["requested"] == [0.0, 0.123, 0.5]
    assert 0.123 not in record["used"] and len(record["used"]) == 3


def test_default_plot_times_move_silently(tmp_path, capsys):
    cfg = tmp_path / "fp.toml"
    cfg.write_text(FP.replace("plot_times = [0.0, 0.123, 0.5]", "vtx = false"))
    assert main(["run", str(cfg), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert "plot times moved" not in capsys.readouterr().err


def test_unconverged_bridge_never_prints_nan(tmp_path, capsys):
    cfg = tmp_path / "b.toml"
    cfg.write_text(BRIDGE)
    out = tmp_path / "out"
    assert main(["bridge", str(cfg), "-o", str(out), "--no-vtx"]) == 0
    printed = capsys.readouterr()
    assert "nan" not in (printed.out + printed.err).lower(), printed
    assert "not converged after 2 iterations" in printed.err
    assert "NOT converged" in printed.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["converged"] is False
    assert any("not converged" in w for w in summary["warnings"])


def test_reference_states_size_and_path(tmp_path, capsys):
    cfg = tmp_path / "fp.toml"
    cfg.write_text(FP)
    out = tmp_path / "ref.npz"
    assert main(["reference", str(cfg), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"MiB to {out}" in printed, printed
