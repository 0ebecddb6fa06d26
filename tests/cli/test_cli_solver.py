"""``[discretization] solver``: the iterative path from a config, its record in
``summary.json`` (bridge and run), the same results as the direct path, bad values refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bridgesolve.cli import main
from bridgesolve.config import ConfigError, load_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_bridge import SMALL, _write  # noqa: E402


def _with_solver(text: str, solver: str) -> str:
    return text.replace('[bridge]', f'[discretization]\nsolver = "{solver}"\n\n[bridge]')


@pytest.mark.mpi
def test_bridge_summary_records_solver_and_krylov_iterations(mpi_tmp_path, comm):
    summaries = {}
    for solver in ("direct", "iterative"):
        cfg = _write(mpi_tmp_path, f"{solver}.toml", _with_solver(SMALL, solver), comm)
        out = mpi_tmp_path / f"out-{solver}"
        assert main(["bridge", str(cfg), "-o", str(out), "--quiet", "--no-vtx"]) == 0
        summaries[solver] = json.loads((out / "summary.json").read_text())
    direct, iterative = summaries["direct"]["linear_solver"], summaries["iterative"][
        "linear_solver"]
    assert direct["solver"] == "direct" and "krylov_iterations" not in direct
    assert iterative["solver"] == "iterative"
    assert iterative["krylov_iterations"] >= iterative["solves"] > 0
    assert iterative["per_step_max"] >= iterative["per_step_mean"] > 0
    errors = [[e["L1"] for e in summaries[s]["errors"]] for s in ("direct", "iterative")]
    assert errors[1] == pytest.approx(errors[0], rel=1e-5)


def test_run_summary_records_the_linear_solver(tmp_path):
    text = load_config(None).text.replace('boundary = "reflecting"',
                                          'boundary = "reflecting"\nsolver = "iterative"')
    text = text.replace("steps = 100", "steps = 10")
    cfg = tmp_path / "fp.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "-o", str(out), "--quiet", "--no-vtx"]) == 0
    record = json.loads((out / "summary.json").read_text())["solver"]["linear_solver"]
    assert record["solver"] == "iterative" and record["solves"] == 10
    assert record["krylov_iterations"] >= 10


def test_bad_solver_is_refused_naming_the_choices(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(_with_solver(SMALL, "krylov"))
    with pytest.raises(ConfigError, match=r"solver.*krylov.*(auto|direct|iterative)"):
        load_config(cfg)
