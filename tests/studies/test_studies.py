"""Convergence studies: ladders, errors against closed forms and the finest level, orders,
checkpoints and resume, sweeps over MPI sub-communicators."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bridgesolve import studies
from bridgesolve._dolfinx import MPI
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.config import validate
from bridgesolve.studies import (
    convergence_study,
    fitted_order,
    level_raw,
    observed_orders,
    order_table,
    sweep,
)
from bridgesolve.studies import study as study_loop  # the loop that calls _solve

# A 1D two-component mixture under OU to T = 0.5: P1, 40 Crank–Nicolson steps.
FP1D = {
    "domain": {"type": "interval", "lower": [-6.0], "upper": [6.0], "cells": 20},
    "process": {"type": "OU"},
    "initial": {"weights": [0.4, 0.6], "means": [[-1.5], [1.0]], "covs": [0.3, 0.5]},
    "time": {"T": 0.5, "steps": 40},
}
# Backward Kolmogorov of a mixture under VP: φ(·, 0) is a closed-form mixture.
KOLM1D = {
    "problem": {"equation": "kolmogorov"},
    "domain": {"type": "interval", "lower": [-7.0], "upper": [7.0], "cells": 24},
    "process": {"type": "VP"},
    "terminal": {"weights": [0.5, 0.5], "means": [[0.5], [-1.0]], "covs": [0.3, 0.2]},
    "time": {"T": 0.3, "steps": 60},
}


def _cfg(tables: dict, **changes):
    raw = json.loads(json.dumps(tables))  # deep copy
    for section, values in changes.items():
        raw.setdefault(section, {}).update(values)
    return validate(raw, source="study.toml")


def test_orders_of_an_exact_power_law():
    h = np.array([0.4, 0.2, 0.1, 0.05])
    e = 3.0 * h**2.5
    assert np.allclose(observed_orders(h, e), 2.5, rtol=0, atol=1e-12)
    assert fitted_order(h, e) == pytest.approx(2.5, abs=1e-12)
    assert "2.500" in order_table(h, e)


def test_level_raw_refines_what_is_asked():
    raw = {**FP1D, "discretization": {"degree": 2}}
    assert level_raw(raw, "h", 2)["domain"]["cells"] == 80
    assert level_raw(raw, "h", 2)["time"]["steps"] == 40
    assert level_raw(raw, "dt", 3)["time"]["steps"] == 320
    both = level_raw(raw, "hdt", 1)
    assert (both["domain"]["cells"], both["time"]["steps"]) == (40, 80)
    assert level_raw(raw, "p", 2)["discretization"]["degree"] == 4
    box = {"type": "box", "lower": [0, 0], "upper": [1, 1], "cells": [4, 6]}
    assert level_raw({"domain": box, "time": {}}, "h", 1)["domain"]["cells"] == [8, 12]
    disk = {"type": "disk", "radius": 1.0, "h": 0.2}
    assert level_raw({"domain": disk, "time": {}}, "h", 2)["domain"]["h"] == 0.05
    assert raw["domain"]["cells"] == 20  # the input is not modified


@pytest.mark.mpi
def test_h_study_against_exact_solution_is_rank_independent():
    """P1 in 1D: density errors of order 2, the score's of order 1 (a derivative). The
    same study on COMM_WORLD and on COMM_SELF gives the same numbers."""
    cfg = _cfg(FP1D)
    world = convergence_study(cfg, refine="h", levels=4, progress=False, log=False)
    serial = convergence_study(cfg, refine="h", levels=4, progress=False, log=False,
                               comm=MPI.COMM_SELF)
    assert world.reference == "exact"
    for q in world.quantities:
        assert np.allclose(world.errors(q.name), serial.errors(q.name), rtol=1e-9, atol=0)
    # measured: L2 1.95, L1 1.95, Linf 1.86; score pairwise 3.86 (pre-asymptotic), 1.11, 1.02
    for name in ("density_L2", "density_L1"):
        assert world.fitted_order(name) > 1.9, world.table()
        assert world.orders(name)[-1] == pytest.approx(2.0, abs=0.05), world.table()
    assert world.orders("score_pL2")[-1] == pytest.approx(1.0, abs=0.1), world.table()
    assert world.expected == {"density_L2": 2.0, "density_L1": 2.0, "density_Linf": 2.0,
                              "score_pL2": 1.0}
    assert [r["ndofs"] for r in world.rows] == [21, 41, 81, 161]
    assert world.rows[-1]["h"] == pytest.approx(12 / 160)
    assert all(r["solve_s"] > 0 and not r["resumed"] for r in world.rows)


def test_dt_and_p_studies():
    # Crank–Nicolson in time on a fine P2 mesh: second order in dt against the exact
    # solution until the spatial error (~1e-6 here) shows.
    cfg = _cfg(FP1D, domain={"cells": 160}, discretization={"degree": 2}, time={"steps": 5})
    dt = convergence_study(cfg, refine="dt", levels=3, progress=False, log=False)
    assert dt.parameter().tolist() == pytest.approx([0.1, 0.05, 0.025])
    assert dt.fitted_order("density_L2") == pytest.approx(2.0, abs=0.15), dt.table()
    # Degree ladder of φ: errors fall by a factor > 5 per degree (the "rate" column).
    p = convergence_study(_cfg(KOLM1D), refine="p", levels=3, progress=False, log=False)
    assert [r["degree"] for r in p.rows] == [1, 2, 3]
    assert np.all(p.orders("phi_L2") > np.log(5.0)), p.table()
    assert p.fitted_order("phi_L2") is None and "rate" in p.table()


@pytest.mark.mpi
def test_finest_reference_approximates_the_exact_errors():
    """Against the finest of 4 levels (h/8), a second-order error is underestimated by
    the factor 1 - (1/8)^2 ≈ 0.98 at level 0: the two kinds of study agree."""
    cfg = _cfg(FP1D)
    exact = convergence_study(cfg, refine="h", levels=4, progress=False, log=False)
    finest = convergence_study(cfg, refine="h", levels=4, reference="finest",
                               progress=False, log=False)
    assert finest.reference == "finest" and "finest level" in finest.table()
    assert np.isnan(finest.errors("density_L2")[-1])
    e_exact, e_fine = exact.errors("density_L2")[:2], finest.errors("density_L2")[:2]
    assert np.allclose(e_fine, e_exact, rtol=0.1), (e_fine, e_exact)
    assert finest.orders("density_L2")[0] == pytest.approx(2.0, abs=0.15), finest.table()


@pytest.mark.mpi
def test_no_closed_form_falls_back_to_finest_level():
    # Quadratic killing: no closed form, so `auto` measures against the finest level.
    cfg = _cfg(KOLM1D, killing={"quadratic": -0.5})
    study = convergence_study(cfg, refine="h", levels=3, progress=False, log=False)
    assert study.reference == "finest"
    assert study.orders("phi_L2")[0] == pytest.approx(2.0, abs=0.3), study.table()
    with pytest.raises(BridgesolveInputError, match="no closed-form"):
        convergence_study(cfg, refine="h", levels=2, reference="exact", progress=False,
                          log=False)


@pytest.mark.mpi
def test_free_space_closed_form_is_refused_where_the_walls_hold_the_mass():
    """The same mixture on [-2.5, 2.5]: a few percent of the free-space law leaves the box
    by T, so the reflecting solution differs from it and `auto` measures against the
    finest level instead (the note says why); `exact` is refused with the same reason."""
    narrow = _cfg(FP1D, domain={"lower": [-2.5], "upper": [2.5], "cells": 10})
    study = convergence_study(narrow, refine="h", levels=2, progress=False, log=False)
    assert study.reference == "finest"
    assert "outside the domain" in study.reference_note, study.reference_note
    assert study.to_dict()["reference_note"] == study.reference_note
    with pytest.raises(BridgesolveInputError, match="reference = 'exact': the free-space"):
        convergence_study(narrow, refine="h", levels=2, reference="exact", progress=False,
                          log=False)
    wide = convergence_study(_cfg(FP1D), refine="h", levels=2, progress=False, log=False)
    assert wide.reference == "exact" and wide.exact_refused is None


def _counting_solves(monkeypatch) -> list:
    calls = []
    original = study_loop._solve

    def counted(lcfg, problem, *args):
        calls.append(problem.ndofs)
        return original(lcfg, problem, *args)

    monkeypatch.setattr(study_loop, "_solve", counted)
    return calls


@pytest.mark.mpi
@pytest.mark.parametrize("reference", ["exact", "finest"])
def test_resume_solves_only_the_new_levels(reference, mpi_tmp_path, monkeypatch):
    cfg = _cfg(FP1D)
    out = mpi_tmp_path / "study"
    calls = _counting_solves(monkeypatch)
    two = convergence_study(cfg, refine="h", levels=2, reference=reference, output=out,
                            progress=False, log=False)
    assert calls == [21, 41]
    three = convergence_study(cfg, refine="h", levels=3, reference=reference, output=out,
                              resume=True, progress=False, log=False)
    assert calls == [21, 41, 81]  # levels 0 and 1 came from their checkpoints
    assert [r["resumed"] for r in three.rows] == [True, True, False]
    fresh = convergence_study(cfg, refine="h", levels=3, reference=reference,
                              progress=False, log=False)
    for q in three.quantities:
        assert np.allclose(three.errors(q.name), fresh.errors(q.name), rtol=1e-9,
                           equal_nan=True)
    if reference == "exact":
        assert three.errors("density_L2")[:2] == pytest.approx(two.errors("density_L2"))
    # A changed discretization or reference invalidates the checkpoints: all is solved again.
    calls.clear()
    convergence_study(_cfg(FP1D, time={"steps": 20}), refine="h", levels=2,
                      reference=reference, output=out, resume=True, progress=False,
                      log=False)
    assert calls == [21, 41]
    calls.clear()
    other = convergence_study(cfg, refine="h", levels=2, output=out, resume=True,
                              reference="finest" if reference == "exact" else "exact",
                              progress=False, log=False)
    assert calls == [21, 41] and np.isfinite(other.errors("density_L2")[0])


@pytest.mark.mpi
def test_sweep_over_groups_equals_serial_studies(mpi_tmp_path, comm):
    """Two configs on two groups (under mpiexec -n 2: one rank each) give the numbers of
    the same studies run one after another on COMM_SELF."""
    cfgs = [_cfg(FP1D), _cfg(FP1D, process={"type": "VP"}, time={"T": 0.3})]
    groups = min(2, comm.size)
    result = sweep(cfgs, groups=groups, refine="h", levels=2, output=mpi_tmp_path / "sw")
    serial = [convergence_study(c, refine="h", levels=2, comm=MPI.COMM_SELF,
                                progress=False, log=False) for c in cfgs]
    if comm.rank != 0:
        assert result is None
        return
    assert len(result) == 2
    for got, want in zip(result, serial, strict=True):
        for q in want.quantities:
            assert np.allclose(got.errors(q.name), want.errors(q.name), rtol=1e-9, atol=0)
    assert result[0].rows[0]["ndofs"] == 21
    assert result[0].errors("density_L2")[0] != result[1].errors("density_L2")[0]
    # Same-named configs get distinct sub-folders, each a complete study folder.
    for name in ("study", "study-2"):
        assert (mpi_tmp_path / "sw" / name / "convergence.json").is_file()


def test_outputs_table_csv_json_figure(tmp_path):
    study = convergence_study(_cfg(FP1D), refine="h", levels=3, progress=False, log=False)
    study.write(tmp_path)
    rows = list(csv.DictReader((tmp_path / "convergence.csv").open()))
    assert [int(r["ndofs"]) for r in rows] == [21, 41, 81]
    assert float(rows[2]["density_L2"]) == pytest.approx(study.errors("density_L2")[2])
    assert rows[0]["order_density_L2"] == "" and float(rows[2]["order_density_L2"]) > 1.9
    data = json.loads((tmp_path / "convergence.json").read_text())
    assert data["reference"] == "exact" and data["parameter"] == "h"
    assert data["fitted_orders"]["density_L2"] == pytest.approx(
        study.fitted_order("density_L2"))
    assert len(data["levels"]) == 3 and data["levels"][0]["errors"]["score_pL2"] > 0
    assert (tmp_path / "convergence.png").stat().st_size > 10_000
    table = (tmp_path / "convergence.txt").read_text()
    assert "exact solution" in table and "fitted orders" in table


def test_bad_study_inputs():
    cfg = _cfg(FP1D)
    with pytest.raises(BridgesolveInputError, match="refine = 'x'"):
        convergence_study(cfg, refine="x", progress=False)
    with pytest.raises(BridgesolveInputError, match="levels = 1"):
        convergence_study(cfg, levels=1, progress=False)
    with pytest.raises(BridgesolveInputError, match="reference = 'best'"):
        convergence_study(cfg, reference="best", progress=False)
    with pytest.raises(BridgesolveInputError, match="groups = 99"):
        sweep([cfg], groups=99)
    with pytest.raises(BridgesolveInputError, match=r"\[convergence\] refine = 'q'"):
        _cfg(FP1D, convergence={"refine": "q"})
    with pytest.raises(BridgesolveInputError, match=r"\[convergence\] unknown key"):
        _cfg(FP1D, convergence={"level": 3})


# Bridge between N(-1, 0.3) and N(1, 0.4) under Brownian motion (σ = 1, T = 1): closed-form
# marginals (bridgesolve.bridge.gaussian_bridge) and KL cost (studies.gaussian_bridge_cost).
BRIDGE1D = {
    "problem": {"equation": "bridge"},
    "domain": {"type": "interval", "lower": [-6.0], "upper": [6.0], "cells": 40},
    "process": {"type": "Brownian", "sigma": 1.0},
    "initial": {"weights": [1.0], "means": [[-1.0]], "covs": [0.3]},
    "final": {"weights": [1.0], "means": [[1.0]], "covs": [0.4]},
    "time": {"T": 1.0, "steps": 40},
    "bridge": {"tol": 1e-10, "mode": "log"},
}


# Serial only: log-mode bridges on 1D meshes of 41-161 dofs are all MPI latency on 2 ranks
# (58 s); bridges under MPI are tested in test_mpi_solvers.py and test_bridge.py.
def test_bridge_study_marginal_score_and_cost_against_closed_forms():
    """Mesh and step halved together: the mid-point marginal converges at order 2, its score
    at order 1, and both KL formulas converge to the closed-form Gaussian KL at order 2
    (measured 41-321 dofs: 1.99, 2.00, 2.00 / 1.00 / 1.99-2.00; cost errors 3.7e-2 ... 5.8e-4
    (kinetic), 4.9e-3 ... 7.8e-5 (boundary))."""
    study = convergence_study(_cfg(BRIDGE1D), refine="hdt", levels=3, progress=False,
                              log=False)
    assert study.reference == "exact" and study.report_time == 0.5
    assert study.orders("rho_L2") == pytest.approx([2.0, 2.0], abs=0.05), study.table()
    assert study.orders("score_pL2") == pytest.approx([1.0, 1.0], abs=0.05), study.table()
    for name in ("cost_kinetic", "cost_boundary"):
        assert study.orders(name) == pytest.approx([2.0, 2.0], abs=0.1), study.table()
    assert study.errors("cost_boundary")[-1] < 5e-4
    assert study.expected["cost_kinetic"] is None  # no reference slope for functionals


def test_gaussian_bridge_cost_by_a_second_route():
    # 1D, a second route: both laws start from ρ0, so KL = E_x0 KL(π*(·|x0) ‖ N(x0, ε))
    # with ε = σ² T, the plan's cross-covariance c = (√(4 s0 s1 + ε²) - ε)/2, and
    # π*(·|x0) = N(m1 + (c/s0)(x0 - m0), s1 - c²/s0).
    m0, s0, m1, s1, sigma, T = -1.0, 0.3, 1.0, 0.4, 1.2, 0.8
    eps = sigma**2 * T
    c = 0.5 * (np.sqrt(4 * s0 * s1 + eps**2) - eps)
    v = s1 - c**2 / s0
    drift2 = (m1 - m0) ** 2 + (c / s0 - 1.0) ** 2 * s0  # E (mean of X_T|x0 - x0)²
    expected = 0.5 * (v / eps + drift2 / eps - 1.0 + np.log(eps / v))
    got = studies.gaussian_bridge_cost([m0], s0, [m1], s1, sigma, T)
    assert got == pytest.approx(expected, rel=1e-12)
    # A shift of the mean by Δ adds Δ²/(2 σ² T) when both laws are the same Gaussian.
    base = studies.gaussian_bridge_cost([0.0, 0.0], np.eye(2), [0.0, 0.0], np.eye(2), 1.5)
    shifted = studies.gaussian_bridge_cost([0.0, 0.0], np.eye(2), [0.6, -0.3], np.eye(2), 1.5)
    assert shifted - base == pytest.approx((0.36 + 0.09) / (2 * 1.5**2), rel=1e-10)


def test_kl_of_generated_densities_converges_at_twice_the_density_order():
    """The sampler driven by the computed score ∇log p_h, started from the exact p_T,
    generates q_h with KL(ρ0 ‖ q_h) → 0; a KL is quadratic in q_h − ρ0, so with P2 and
    Crank–Nicolson refined together (order 2) it falls at order 4 (measured 1.46e-5,
    6.62e-7, 4.21e-8 for h = 1: orders 4.46, 3.98)."""
    cfg = _cfg(FP1D, domain={"cells": 40}, discretization={"degree": 2},
               time={"T": 1.0, "steps": 20}, convergence={"generated": [1.0]})
    study = convergence_study(cfg, refine="hdt", levels=3, progress=False, log=False)
    assert study.expected["kl_generated_h1"] == 4.0
    kl = study.errors("kl_generated_h1")
    assert np.all(kl > 0) and kl[-1] < 1e-7, kl
    assert study.orders("kl_generated_h1")[-1] == pytest.approx(4.0, abs=0.3), study.table()
    with pytest.raises(BridgesolveInputError, match=r"generated = \[0.0\]"):
        _cfg(FP1D, convergence={"generated": [0.0]})
    with pytest.raises(BridgesolveInputError, match="need equation = 'fokker-planck'"):
        convergence_study(_cfg(KOLM1D, convergence={"generated": [1.0]}), progress=False)


@pytest.mark.mpi
def test_gmsh_mesh_ladder_refines_uniformly():
    """gmsh meshes are refined after reading (dolfinx.mesh.refine: every edge split, 4x
    the cells; the largest diameter fell 0.55 -> 0.30 here) and the density error of P1
    falls at order 2 in h against the exact mixture (measured: error ratio 3.87, 2.28 in
    the largest diameter)."""
    cfg = _cfg({
        "domain": {"type": "gmsh", "path": "disk.geo"},
        "process": {"type": "OU"},
        "initial": {"weights": [0.5, 0.5], "means": [[-1.5, -1.0], [1.5, 1.0]],
                    "covs": [0.4, 0.3]},
        "time": {"T": 0.5, "steps": 20},
    })
    study = convergence_study(cfg, refine="h", levels=2, progress=False, log=False)
    h = study.parameter()
    assert 0.45 < h[1] / h[0] < 0.6, h
    assert study.rows[1]["ndofs"] > 3.8 * study.rows[0]["ndofs"]  # 903 -> 3514 vertices
    assert study.orders("density_L2")[0] > 1.8, study.table()
