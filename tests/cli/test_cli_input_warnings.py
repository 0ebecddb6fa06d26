"""Warnings raised while a config is read or a problem is built (issue 16): one
``bridgesolve: warning:`` line each on stderr, no raw Python warning, and recorded with the
run (summary.json, the bundle's metadata, convergence.json). ``bridgesolve run`` of a
Fokker-Planck config is a row of tests/test_bad_inputs.py."""

from __future__ import annotations

import json

import pytest

from bridgesolve.cli import main
from bridgesolve.reference import ReferenceBundle

# weights sum to 0.6: GaussianMixture normalizes them with a UserWarning
FP_1D = """\
[domain]
type = "interval"
lower = [-5.0]
upper = [5.0]
cells = 20
[process]
type = "OU"
[initial]
type = "gaussian_mixture"
weights = [0.3, 0.3]
means = [[-1.0], [1.0]]
covs = [0.4, 0.4]
[time]
T = 0.2
steps = 4
spacing = "uniform"
[output]
vtx = false
"""

BRIDGE_1D = """\
[problem]
equation = "bridge"
[domain]
type = "interval"
lower = [-5.0]
upper = [5.0]
cells = 40
[process]
type = "Brownian"
sigma = 1.0
[initial]
type = "gaussian_mixture"
weights = [1.0]
means = [[-0.5]]
covs = [0.4]
[final]
type = "gaussian_mixture"
weights = [0.5]
means = [[0.5]]
covs = [0.4]
[time]
T = 1.0
steps = 10
spacing = "uniform"
[bridge]
tol = 1e-6
[output]
plot_times = [0.0, 0.33, 1.0]
vtx = false
"""


def _lines(err: str, text: str) -> list[str]:
    """The stderr lines that mention ``text``; each must be a bridgesolve warning line."""
    lines = [ln for ln in err.splitlines() if text in ln]
    assert lines and all(ln.startswith("bridgesolve: warning: ") for ln in lines), err
    return lines


@pytest.mark.parametrize("command", ["run", "bridge"])
def test_bridge_records_config_and_plot_time_warnings(command, tmp_path, capsys):
    cfg = tmp_path / "b.toml"
    cfg.write_text(BRIDGE_1D)
    out = tmp_path / "out"
    assert main([command, str(cfg), "-o", str(out), "--quiet", "--no-vtx"]) == 0
    err = capsys.readouterr().err
    assert len(_lines(err, "sum to 0.5")) == 1
    assert len(_lines(err, "plot times moved")) == 1
    recorded = json.loads((out / "summary.json").read_text())["warnings"]
    assert any("UserWarning: weights = [0.5] sum to 0.5" in w for w in recorded), recorded
    assert any("plot times moved" in w and "0.33 -> 0.3" in w for w in recorded), recorded
    assert len(recorded) == len(set(recorded))


def test_reference_records_config_warnings(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(FP_1D)
    out = tmp_path / "ref.npz"
    assert main(["reference", str(cfg), "-o", str(out), "--quiet",
                 "--error-estimate", "none"]) == 0
    assert len(_lines(capsys.readouterr().err, "sum to 0.6")) == 1
    recorded = ReferenceBundle.load(out).metadata["info"]["warnings"]
    assert any("sum to 0.6" in w for w in recorded), recorded


def test_convergence_records_config_warnings_once(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(FP_1D + '[convergence]\nrefine = "h"\nlevels = 2\n')
    out = tmp_path / "study"
    assert main(["convergence", str(cfg), "-o", str(out), "--quiet"]) == 0
    # every level re-reads the config: still one line and one record
    assert len(_lines(capsys.readouterr().err, "sum to 0.6")) == 1
    recorded = json.loads((out / "convergence.json").read_text())["warnings"]
    assert sum("sum to 0.6" in w for w in recorded) == 1, recorded
