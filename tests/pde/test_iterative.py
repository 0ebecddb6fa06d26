"""The iterative linear-solver path (bridgesolve.solvers, bridgesolve.pde.krylov): option
sets and the automatic choice, the per-matrix choice of Krylov method and preconditioner,
and the same numbers as the direct path for Fokker–Planck, Kolmogorov and HJB, serially and
under ``mpiexec -n 2`` (allreduced quantities only)."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve import solvers
from bridgesolve._dolfinx import MPI
from bridgesolve.pde import krylov

MIX = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]], [0.4, 0.3])
PHI = bs.GaussianMixture([1.0], [[1.0, 0.5]], [0.4])


def _problem(solver, *, cells=32, steps=20, process=None, scheme="crank-nicolson",
             petsc_options=None):
    dom = bs.Domain.box([-5.0, -5.0], [5.0, 5.0], (cells, cells), comm=MPI.COMM_WORLD)
    proc = process or bs.VP()
    return bs.Problem(dom, proc, bs.TimeGrid.uniform(1.0, steps), solver=solver,
                      scheme=scheme, petsc_options=petsc_options)


def _max_gap(a: np.ndarray, b: np.ndarray, problem) -> float:
    """max |a - b| / max |a| over all ranks' owned dofs and levels."""
    n = problem.V.dofmap.index_map.size_local
    comm = problem.comm
    gap = comm.allreduce(float(np.max(np.abs(a[:, :n] - b[:, :n]), initial=0.0)), MPI.MAX)
    top = comm.allreduce(float(np.max(np.abs(a[:, :n]), initial=0.0)), MPI.MAX)
    return gap / top


# -- option sets (no PETSc) ------------------------------------------------------------
def test_auto_is_direct_in_range_and_iterative_beyond():
    small = solvers.solver_options("auto", None, ranks=1, ndofs=10_000)
    assert small["pc_type"] == "lu" and not solvers.is_iterative(small)
    assert solvers.solver_options("auto", None, ranks=2, ndofs=10_000)["pc_type"] == "python"
    for ranks, ndofs in ((solvers.DIRECT_MAX_RANKS + 1, 10_000),
                         (1, solvers.ITERATIVE_MIN_DOFS)):
        opts = solvers.solver_options("auto", None, ranks=ranks, ndofs=ndofs)
        assert solvers.is_iterative(opts), (ranks, ndofs, opts)
    forced = solvers.solver_options("direct", None, ranks=16, ndofs=10**7)
    assert not solvers.is_iterative(forced)


def test_user_options_win_and_leave_no_choice_to_the_engine():
    opts = solvers.solver_options("iterative", {"pc_type": "jacobi", "ksp_rtol": 1e-7},
                                  ranks=1, ndofs=100)
    assert opts["pc_type"] == "jacobi" and opts["ksp_rtol"] == 1e-7
    assert opts["bs_auto"] == "ksp_type"
    # A Krylov method named in petsc_options selects the iterative path (as scaling.py did).
    assert solvers.is_iterative(solvers.solver_options(
        "auto", {"ksp_type": "gmres", "pc_type": "gamg"}, ranks=1, ndofs=100))
    # ... while naming only a factorization package keeps LU.
    lu = solvers.solver_options("auto", {"pc_factor_mat_solver_type": "mumps"}, ranks=1,
                                ndofs=100)
    assert lu["pc_type"] == "lu" and not solvers.is_iterative(lu)


def test_bridge_tolerance_tightens_the_linear_tolerance_only():
    it = solvers.iterative_options()
    assert solvers.tied_to(it, 1e-9)["ksp_rtol"] == pytest.approx(1e-12)
    assert solvers.tied_to(it, 1e-3)["ksp_rtol"] == solvers.ITERATIVE_RTOL  # never looser
    direct = solvers.direct_options(True, 100)
    assert solvers.tied_to(direct, 1e-6) == direct


def test_bad_solver_name_is_refused():
    with pytest.raises(bs.BridgesolveInputError, match="solver"):
        _problem("krylov")


# -- per-matrix choice -------------------------------------------------------------------
def test_cg_for_symmetric_steps_gmres_with_drift_jacobi_when_mass_dominated():
    """Brownian (no drift): symmetric steps, CG; VP (drift): GMRES. Many short steps make
    the step matrix mass-dominated (Jacobi), few long ones need AMG."""
    cases = [(bs.Brownian(1.0), 400, "cg+jacobi"), (bs.Brownian(1.0), 4, "cg+gamg"),
             (bs.VP(), 4, "gmres+gamg")]
    for proc, steps, expected in cases:
        p = bs.solve_fokker_planck(_problem("iterative", process=proc, steps=steps), MIX,
                                   progress=False, check_mass=False)
        record = p.info["linear_solver"]
        expected = expected.replace("gamg", krylov.amg())
        assert set(record["methods"]) == {expected}, (proc, steps, record)
        assert record["solves"] == steps
        assert record["krylov_iterations"] >= steps  # every solve iterated


def test_offdiagonal_ratio_of_a_known_matrix():
    from bridgesolve._dolfinx import PETSc

    A = PETSc.Mat().createAIJ([3, 3], comm=MPI.COMM_SELF)
    A.setUp()
    for i, row in enumerate([[4.0, -1.0, 0.0], [-1.0, 4.0, -2.0], [0.0, -2.0, 8.0]]):
        A.setValues([i], [0, 1, 2], row)
    A.assemble()
    assert krylov.offdiagonal_ratio(A) == pytest.approx(0.75)
    assert krylov.is_symmetric(A)
    A.setValue(0, 1, -0.5)
    A.assemble()
    assert not krylov.is_symmetric(A)
    A.destroy()


def test_non_convergence_names_reason_iterations_and_residual():
    prob = _problem("iterative", petsc_options={"pc_type": "none", "ksp_max_it": 2},
                    steps=2)
    with pytest.raises(krylov.KrylovError, match=r"DIVERGED_MAX_IT.*after 2 iterations, "
                                                 r"residual norm"):
        bs.solve_fokker_planck(prob, MIX, progress=False, check_mass=False)


# -- same numbers, both paths (serial and mpiexec -n 2) ---------------------------------
@pytest.mark.mpi
def test_fokker_planck_same_numbers_and_closed_form_error():
    exact = MIX.evolve(bs.VP(), 1.0)
    out = {}
    for solver in ("direct", "iterative"):
        prob = _problem(solver)
        p = bs.solve_fokker_planck(prob, MIX, progress=False, check_mass=False)
        out[solver] = (prob, p.values, p.error(exact, 1.0), p.info)
    prob, ref, err_direct, _ = out["direct"]
    _, values, err_iter, info = out["iterative"]
    assert _max_gap(ref, values, prob) < 1e-8
    assert err_iter == pytest.approx(err_direct, rel=1e-6)
    assert 0.0 < err_direct < 1e-2  # the closed form, to the discretization error
    assert info["linear_solver"]["solver"] == "iterative"
    assert info["linear_solver"]["per_step_max"] <= 40


@pytest.mark.mpi
def test_kolmogorov_same_numbers_absorbing():
    out = []
    for solver in ("direct", "iterative"):
        dom = bs.Domain.box([-5.0, -5.0], [5.0, 5.0], (24, 24), comm=MPI.COMM_WORLD)
        prob = bs.Problem(dom, bs.OU(), bs.TimeGrid.uniform(1.0, 16), solver=solver,
                          boundary="absorbing")
        out.append((prob, bs.solve_kolmogorov(prob, PHI, progress=False).values))
    assert _max_gap(out[0][1], out[1][1], out[0][0]) < 1e-8


@pytest.mark.mpi
def test_hjb_newton_krylov_same_numbers_and_newton_iterations():
    """Newton–Krylov (GMRES + block ILU, inexact inner solves) takes the Newton steps of
    Newton–LU: same iteration counts, no halvings, the same discrete solution."""
    out = {}
    for solver in ("direct", "iterative"):
        prob = _problem(solver, process=bs.Brownian(1.0))
        S = bs.solve_hjb(prob, PHI, progress=False)
        out[solver] = (prob, S.values, S.info)
    prob, ref, info_d = out["direct"]
    _, values, info_i = out["iterative"]
    assert _max_gap(ref, values, prob) < 1e-9
    assert np.array_equal(info_d["substeps"], info_i["substeps"])
    assert abs(int(info_d["newton_iterations"].sum())
               - int(info_i["newton_iterations"].sum())) <= 2
    record = info_i["linear_solver"]
    assert record["methods"] == {"gmres+bjacobi": 1}
    assert record["krylov_iterations"] > 0 and record["rtol"] == krylov.NEWTON_KRYLOV[
        "ksp_rtol"]


def test_amg_iterations_grow_slowly_with_refinement():
    """Krylov iterations per step with AMG (VP, GMRES + GAMG, Richardson/SOR smoothing) grow
    at most by a few per halving of h (measured 6.8, 10.2, 13.2); with a strength threshold
    and no aggressive coarsening they stay flat (4.8, 5.5, 6.2), at a dearer set-up."""
    flat = {"pc_gamg_threshold": 0.05, "pc_gamg_aggressive_coarsening": 0}
    for options, growth in ((None, 2.5), (flat, 1.5)):
        means = []
        for cells in (32, 64, 128):
            p = bs.solve_fokker_planck(
                _problem("iterative", cells=cells, steps=4, petsc_options=options), MIX,
                progress=False, check_mass=False)
            means.append(p.info["linear_solver"]["per_step_mean"])
        steps = np.diff(means)
        assert max(means) <= growth * min(means) and steps.max() <= 4.0, (options, means)


def test_gamg_smoother_for_drift_steps_is_richardson_sor_unless_named():
    """Non-symmetric steps get Richardson + SOR level smoothers (Chebyshev needs a real
    spectrum); symmetric ones keep GAMG's default; a named smoother wins."""
    base = solvers.iterative_options()
    gm = krylov.resolve(base, symmetric=False, mass_dominated=False)
    if gm["pc_type"] == "gamg":
        assert gm["mg_levels_ksp_type"] == "richardson" and gm["mg_levels_pc_type"] == "sor"
    cg = krylov.resolve(base, symmetric=True, mass_dominated=False)
    assert not any(k.startswith("mg_levels_") for k in cg)
    named = krylov.resolve({**base, "mg_levels_pc_type": "jacobi"}, symmetric=False,
                           mass_dominated=False)
    assert named["mg_levels_pc_type"] == "jacobi" and "mg_levels_ksp_type" not in named


@pytest.mark.mpi
def test_3d_vp_clock_step_converges():
    """The step that stalled GMRES + GAMG with Chebyshev smoothing (2000 iterations,
    residual 5e-5 of 1e-10; benchmarks/README.md): VP on 15³ cells of [-5, 5]³, 20
    Crank–Nicolson steps of the clock grid. Now a few iterations per step, and the same
    numbers as LU."""
    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0, 0.0], [1.5, 1.0, 0.5]], [0.3, 0.25])
    proc = bs.VP()
    out = {}
    for solver in ("direct", "iterative"):
        dom = bs.Domain.box([-5.0] * 3, [5.0] * 3, (15, 15, 15), comm=MPI.COMM_WORLD)
        prob = bs.Problem(dom, proc, bs.TimeGrid.clock(proc.clock, 1.0, 20), solver=solver,
                          scheme="crank-nicolson")
        out[solver] = (prob, bs.solve_fokker_planck(prob, mix, progress=False,
                                                    check_mass=False))
    prob, direct = out["direct"]
    it = out["iterative"][1]
    record = it.info["linear_solver"]
    assert set(record["methods"]) == {f"gmres+{krylov.amg()}"}, record
    assert record["per_step_max"] <= 20, record
    assert _max_gap(direct.values, it.values, prob) < 1e-8


def test_a_solver_never_inherits_another_ones_petsc_options():
    """DOLFINx leaves a NonlinearProblem's options in PETSc's global database: prefixes are
    used once, so a direct Newton solve after iterative ones (whose objects are gone) runs
    LU (with id()-based prefixes it could run GMRES + block Jacobi at rtol 1e-6)."""
    from bridgesolve.solvers import options_prefix

    assert len({options_prefix("hjb") for _ in range(100)}) == 100
    for solver in ("iterative", "direct", "iterative", "direct"):
        S = bs.solve_hjb(_problem(solver, process=bs.Brownian(1.0)), PHI, progress=False)
        want = "gmres+bjacobi" if solver == "iterative" else "preonly+lu"
        assert S.info["linear_solver"]["methods"] == {want: 1}, solver
        del S


@pytest.mark.mpi
@pytest.mark.filterwarnings("ignore:Schrödinger bridge")
def test_a_graded_grid_builds_one_preconditioner_per_distinct_step():
    """30 steps graded at both ends have 15 distinct lengths (mirrored pairs agree to
    round-off): a bridge's forward and backward sweeps reuse them all (4 cached: 184 builds
    for 240 solves on a 3D bridge)."""
    dom = bs.Domain.box([-5.0, -5.0], [5.0, 5.0], (16, 16), comm=MPI.COMM_WORLD)
    grid = bs.TimeGrid.graded(1.0, 30, power=2.0, near="both")
    prob = bs.Problem(dom, bs.Brownian(1.0), grid, solver="iterative")
    r0 = bs.GaussianMixture([1.0], [[-1.0, 0.0]], [0.3])
    r1 = bs.GaussianMixture([1.0], [[1.0, 0.5]], [0.3])
    b = bs.solve_bridge(prob, r0, r1, tol=1e-6, mode="linear", progress=False)
    record = b.info["linear_solver"]
    assert record["solves"] >= 2 * 30 * b.iterations - 60
    assert sum(record["methods"].values()) == 15 * 2, record  # φ and φ̂ steppers
