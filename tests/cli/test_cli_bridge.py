"""``bridgesolve bridge`` (and ``run`` with equation = "bridge"): results, errors, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bridgesolve.cli import main
from bridgesolve.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Gaussian to Gaussian in 1D under dX = dW: the bridge marginals are closed-form
# (bridgesolve.gaussian_bridge). P1 on 60 cells, 30 Crank–Nicolson steps (~1 s).
SMALL = """\
[problem]
equation = "bridge"

[domain]
type = "interval"
lower = [-6.0]
upper = [6.0]
cells = 60

[process]
type = "Brownian"
sigma = 1.0

[initial]
weights = [1.0]
means = [[-1.0]]
covs = [0.3]

[final]
weights = [1.0]
means = [[1.5]]
covs = [0.5]

[time]
T = 1.0
steps = 30
spacing = "uniform"

[bridge]
tol = 1e-9

[output]
plot_times = [0.0, 0.5, 1.0]
"""

FILES = ("rho.bp", "log_phi.bp", "log_phi_hat.bp", "rho.png", "log_phi.png",
         "log_phi_hat.png", "control.png", "convergence.png", "mass.png", "summary.json",
         "config.toml")


def _write(folder: Path, name: str, text: str, comm) -> Path:
    path = folder / name
    if comm.rank == 0:
        path.write_text(text)
    comm.barrier()
    return path


@pytest.fixture
def small(mpi_tmp_path, comm) -> Path:
    return _write(mpi_tmp_path, "small.toml", SMALL, comm)


@pytest.mark.mpi
def test_bridge_writes_results_with_exact_marginals(small, comm):
    out = small.parent / "out"
    assert main(["bridge", str(small), "-o", str(out), "--quiet"]) == 0
    for name in FILES:
        assert (out / name).exists(), name
    s = json.loads((out / "summary.json").read_text())
    assert s["equation"] == "bridge" and s["mpi_size"] == comm.size
    assert s["converged"] is True and s["iterations"] == len(s["history"])
    assert s["options"] == {"tol": 1e-9, "max_iter": 500, "mode": "auto", "acceleration": True}
    fe = s["final_errors"]
    assert max(fe["err0_L1"], fe["errT_L1"]) < 1e-9
    assert {"err0_Linf", "errT_Linf"} <= set(fe)
    # Closed-form marginals at t = 0, 0.5, 1 (h = 0.2, dt = 1/30). Measured serially: L1
    # errors 1.07e-2, 6.5e-3, 6.5e-3 (21 iterations, linear then log mode).
    assert s["exact_marginals"] is True
    assert [e["t"] for e in s["errors"]] == pytest.approx([0.0, 0.5, 1.0])
    assert max(e["L1"] for e in s["errors"]) < 1.5e-2
    # Both KL formulas agree to discretization error: measured 3.2732 (kinetic) vs 3.2989
    # (boundary), gap 7.8e-3; ∫ φ φ̂ drifts by 5.0e-4 (log mode).
    cost = s["cost"]
    assert cost["relative_gap"] < 1.5e-2
    assert cost["kinetic"] == pytest.approx(cost["boundary"], rel=1.5e-2)
    assert s["mass_phi_phi_hat"]["max_relative_drift"] < 1e-3
    assert {"setup_s", "solve_s", "output_s", "total_s"} == set(s["timings"])
    assert (out / "config.toml").read_text() == SMALL
    assert sorted(p.name for p in small.parent.iterdir()) == ["out", "small.toml"]


def test_run_with_bridge_equation_is_the_same_command(small, capsys):
    """``run`` routes equation = "bridge" to the code of ``bridge``; without [problem],
    ``bridge`` assumes the bridge equation."""
    a, b, c = (small.parent / n for n in ("a", "b", "c"))
    assert main(["bridge", str(small), "-o", str(a), "--no-vtx"]) == 0
    loud = capsys.readouterr()
    assert "Sinkhorn" in loud.err  # the progress bar
    for word in ("results", "iterations", "converged", "marginals", "KL cost", "exact",
                 "wall time"):
        assert word in loud.out, word
    assert main(["run", str(small), "-o", str(b), "--quiet", "--no-vtx"]) == 0
    no_problem = small.parent / "no_problem.toml"
    no_problem.write_text(SMALL.replace('[problem]\nequation = "bridge"\n', ""))
    assert main(["bridge", str(no_problem), "-o", str(c), "--quiet", "--no-vtx"]) == 0
    sa, sb, sc = (json.loads((p / "summary.json").read_text()) for p in (a, b, c))
    for s in (sb, sc):
        assert s["iterations"] == sa["iterations"]
        assert s["final_errors"] == sa["final_errors"]
        assert s["cost"]["kinetic"] == sa["cost"]["kinetic"]
    assert not (a / "rho.bp").exists()


def test_history_plot_marks_mode_switches(tmp_path):
    from bridgesolve.plotting import plot_convergence_history

    history = [{"iteration": k, "mode": "linear" if k < 4 else "log",
                "err0_L1": np.nan if k == 1 else 10.0**-k, "errT_L1": 10.0**-k,
                "err0_Linf": 2 * 10.0**-k, "errT_Linf": 2 * 10.0**-k} for k in range(1, 8)]
    history[3]["event"] = "switched to log mode: stagnation"
    plot_convergence_history(history, tmp_path / "h.png", tol=1e-6)
    assert (tmp_path / "h.png").stat().st_size > 10_000


@pytest.mark.mpi
def test_2d_bridge_control_figure(mpi_tmp_path, comm):
    """A 2D run (the example's mixtures on a coarse mesh, linear mode to stay fast under
    MPI): the collective quiver figure and the summary."""
    text = (EXAMPLES / "bridge_2d.toml").read_text().replace('mode = "auto"', 'mode = "linear"')
    text = text.replace("cells = [48, 48]", "cells = [16, 16]").replace("steps = 40",
                                                                          "steps = 10")
    text = text.replace('directory = "results/bridge_2d"', 'directory = "unused"').replace(
        "plot_times = [0.0, 0.25, 0.5, 0.75, 1.0]", "plot_times = [0.0, 1.0]")
    cfg_path = _write(mpi_tmp_path, "b2.toml", text, comm)
    out = mpi_tmp_path / "out2d"
    assert main(["bridge", str(cfg_path), "-o", str(out), "--quiet", "--no-vtx"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["converged"] and s["exact_marginals"] is False and s["errors"] == []
    assert max(s["final_errors"]["err0_L1"], s["final_errors"]["errT_L1"]) < 1e-8
    assert (out / "control.png").stat().st_size > 20_000


@pytest.mark.parametrize(("edit", "words"), [
    (lambda t: t.replace("[final]", "[ultimate]"), ["[ultimate]", "unknown section"]),
    (lambda t: t[: t.index("[final]")] + t[t.index("[time]"):], ["missing section [final]"]),
    (lambda t: t.replace('equation = "bridge"', 'equation = "fokker-planck"'),
     ["[final]", "only used by equation 'bridge'"]),
    (lambda t: t.replace("tol = 1e-9", 'mode = "fast"'), ["[bridge] mode = 'fast'", "'log'"]),
    (lambda t: t.replace("tol = 1e-9", "tol = -1.0"), ["[bridge] tol = -1.0", "positive"]),
    (lambda t: t.replace("tol = 1e-9", "max_iter = 0"), ["[bridge] max_iter = 0"]),
    (lambda t: t.replace("tol = 1e-9", "omega = 1.5"), ["[bridge] unknown key 'omega'"]),
    (lambda t: t.replace("tol = 1e-9", "acceleration = 1"), ["acceleration = 1", "true or"]),
    (lambda t: t + '\n[discretization]\nboundary = "absorbing"\n',
     ["boundary = 'absorbing'", "reflecting"]),
    (lambda t: t.replace("means = [[1.5]]", "means = [[1.5, 0.0]]"),
     ["[final]", "2D", "1D"]),
], ids=["unknown-section", "no-final", "final-without-bridge", "mode", "tol", "max_iter",
        "unknown-key", "acceleration", "absorbing", "dims"])
def test_bad_bridge_configs_fail_before_writing(tmp_path, capsys, edit, words):
    path = tmp_path / "bad.toml"
    path.write_text(edit(SMALL))
    assert main(["bridge", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "out").exists()


def test_bridge_command_refuses_other_equations(tmp_path, capsys):
    path = tmp_path / "fp.toml"
    path.write_text((EXAMPLES / "default.toml").read_text())
    assert main(["bridge", str(path), "-o", str(tmp_path / "out")]) == 2
    assert "use `bridgesolve run`" in capsys.readouterr().err


def test_failed_iteration_reports_and_writes_nothing(small, capsys):
    """Small noise (σ = 0.1) breaks the linear mode (the auto mode would switch to log):
    an error naming the iteration and the quantity, exit 1, no folder."""
    path = small.parent / "linear.toml"
    text = SMALL.replace("tol = 1e-9", 'mode = "linear"').replace("sigma = 1.0", "sigma = 0.1")
    path.write_text(text.replace("cells = 60", "cells = 200").replace("steps = 30",
                                                                      "steps = 50"))
    out = small.parent / "out_linear"
    assert main(["bridge", str(path), "-o", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    # Measured: "iteration 16 (linear mode): φ̂: underflow: values down to 2.39e-257 ..."
    assert "bridgesolve: error: Schrödinger bridge: iteration" in err, err
    assert "φ̂: underflow" in err and "mode='log'" in err and "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in small.parent.iterdir()) == ["linear.toml", "small.toml"]


def test_unresolved_potentials_are_flagged(small, capsys):
    """σ = 0.1 on a coarse mesh in linear mode converges to tol, but the two KL formulas
    disagree (measured 2.60 vs 45.2): the run succeeds with a warning in stderr and the
    summary."""
    path = small.parent / "coarse.toml"
    path.write_text(SMALL.replace("tol = 1e-9", 'mode = "linear"').replace("sigma = 1.0",
                                                                         "sigma = 0.1"))
    out = small.parent / "coarse"
    assert main(["bridge", str(path), "-o", str(out), "--quiet", "--no-vtx"]) == 0
    assert "KL cost formulas differ by" in capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["cost"]["relative_gap"] > 0.5
    assert any("too coarse" in w for w in s["warnings"])


def test_killing_bridge_has_no_cost_and_keeps_phi_phi_hat_mass(small):
    """With V the path measure carries extra weights: no KL cost is reported; ∫ φ φ̂ dx is
    still constant in t (the same V in both equations)."""
    path = small.parent / "kill.toml"
    path.write_text(SMALL + "\n[killing]\nquadratic = -0.05\n")
    out = small.parent / "kill"
    assert main(["bridge", str(path), "-o", str(out), "--quiet", "--no-vtx"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["converged"] and s["cost"] is None and s["exact_marginals"] is False
    assert s["mass_phi_phi_hat"]["max_relative_drift"] < 1e-3


def test_bridge_config_defaults():
    cfg = load_config(EXAMPLES / "bridge_2d.toml")
    assert cfg.equation == "bridge" and cfg.final.n_components == 2
    assert cfg.bridge_options == {"tol": 1e-8, "max_iter": 500, "mode": "auto",
                                  "acceleration": True}
    assert cfg.plot_times == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_walls_that_hold_the_bridge_void_the_free_space_closed_form(tmp_path, capsys):
    """σ = 3 on [-3.5, 3.5]: the data sit well inside, but the free-space bridge spreads to a
    standard deviation of 1.5 at T/2 and puts 2 % of its mass beyond the walls, so it is
    not the reflecting bridge's reference: no exact errors, a note that says why."""
    text = (SMALL.replace("sigma = 1.0", "sigma = 3.0").replace("[-6.0]", "[-3.5]", 1)
            .replace("upper = [6.0]", "upper = [3.5]").replace("[1.5]", "[1.0]")
            .replace("covs = [0.5]", "covs = [0.1]").replace("covs = [0.3]", "covs = [0.1]")
            .replace("tol = 1e-9", "tol = 1e-7"))
    cfg = tmp_path / "walls.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["bridge", str(cfg), "-o", str(out), "--no-vtx"]) == 0
    err = capsys.readouterr().err
    assert "not this domain's bridge" in err and "t = 0.5" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["exact_marginals"] is False and s["errors"] == []
    assert any("free-space closed form" in w for w in s["warnings"])
    # the same data under σ = 1 stay inside: the closed form is the reference again
    cfg.write_text(text.replace("sigma = 3.0", "sigma = 1.0"))
    assert main(["bridge", str(cfg), "-o", str(tmp_path / "near"), "--no-vtx", "--quiet"]) == 0
    near = json.loads((tmp_path / "near" / "summary.json").read_text())
    assert near["exact_marginals"] is True and near["errors"]


def test_box_ball_example_runs_coarse_and_has_no_free_space_reference(tmp_path):
    """examples/bridge_box_ball.toml on a coarse mesh (h = 0.2, 4 steps; ~15 s): the bridge around
    the ball converges, the free-space closed form is refused as its reference, and the
    figures show the plane z = 1 through the ball."""
    text = (EXAMPLES / "bridge_box_ball.toml").read_text()
    text = text.replace("h = 0.1", "h = 0.2").replace("steps = 20", "steps = 4")
    cfg = tmp_path / "bb.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["bridge", str(cfg), "-o", str(out), "--no-vtx", "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["converged"] and s["problem"]["domain"]["type"] == "gmsh"
    assert s["linear_solver"]["solver"] == "iterative"
    assert s["exact_marginals"] is False and s["errors"] == []
    assert any("not this domain's bridge" in w for w in s["warnings"])
    assert (out / "rho.png").exists()
