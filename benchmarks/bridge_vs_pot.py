r"""Benchmark: the Schrödinger bridge's endpoint coupling against POT's entropic OT (2D).

With a Brownian reference ``dX = σ dW`` on [0, T], the coupling of the bridge's end points
is the entropic optimal-transport plan for the cost ``|x - y|² / 2`` with ``ε = σ² T``:

.. math::
    π(x, y) = \hat φ_0(x)\, k_T(x, y)\, φ_T(y), \qquad
    k_T(x, y) = (2π ε)^{-1} e^{-|x - y|^2 / (2ε)} .

bridgesolve computes φ, φ̂ by Sinkhorn–Fortet iterations on the Schrödinger system (P1
elements, Crank–Nicolson, lumped-mass nodal products); POT runs Sinkhorn on the dense
kernel ``exp(-M/ε)``, ``M_ij = |x_i - x_j|² / 2`` (``ot.sinkhorn``, ``method="sinkhorn_log"``
when the kernel underflows), on the *same points*: the mesh's P1 nodes, with the lumped
mass weights ``m_i`` (``a = ρ0 m``, ``b = ρ1 m``, each normalized to 1, exactly the
discrete marginals bridgesolve matches).

Compared, on a ladder of grids:

* iterations and wall time to the same L1 marginal error (``--target``): bridgesolve's
  ``tol`` (both ends ``Σ m_i |φ_i φ̂_i - ρ_i| < tol``), with and without its acceleration;
  for POT the smallest iteration count whose plan has ``Σ_j |(πᵀ1)_j - b_j| <= target``
  (the row marginal is exact after each POT iteration), then ``ot.sinkhorn`` timed with
  exactly that many iterations (``pot_peer.py`` explains why);
* the plans: bridgesolve's plan is the continuous formula above sampled on the nodes,
  ``π_ij = φ̂_0(x_i) m_i k_T(x_i, x_j) φ_T(x_j) m_j``; its marginal errors against a, b and
  its L1 distance to POT's plan measure the finite-element discretization error;
* the barycentric maps ``E[X_T | X_0 = x]``: POT's ``Σ_j π_ij x_j / Σ_j π_ij``; for
  bridgesolve (a) the same formula on its sampled plan ("kernel"), and (b) the exact
  identity ``E[X_T | X_0 = x] = x + ε ∇log φ_0(x) = x + T u(x, 0)`` (differentiate
  ``φ_0 = ∫ k_T φ_T`` under the integral; u = σ²∇log φ is the bridge's control) with
  bridgesolve's own gradient ("control"). Distances in L2(ρ0) and max on ρ0's support;
* threads: one BLAS thread for POT unless ``OPENBLAS_NUM_THREADS`` etc. are set (bridgesolve
  runs serially);
* the largest grid each fits in 20 GiB: POT keeps dense N×N arrays (measured: the number
  of them alive at the peak, in a subprocess per size; the budget formula follows);
  bridgesolve keeps ``(nt + 1) × ndofs`` doubles per field plus a sparse LU (measured peak
  RSS per size in a subprocess, fitted linearly in the dofs, and extrapolated).

The reflecting walls are far: the bridge's mass within 1 of the walls is reported (max over
t) and must stay below 1e-8.

Run: ``.venv/bin/python benchmarks/bridge_vs_pot.py [--target 1e-8] [--repeats 3]
[--quick] [--no-memory] [--json out.json]`` (serial; ~2–4 min on 2 cores).
"""

from __future__ import annotations

import os

# One BLAS thread (unless set by the caller): bridgesolve runs serially (one rank, PETSc's
# sequential LU), so POT gets one core too. On this shared 2-core machine a multi-threaded
# BLAS made POT's iterations 5-20x slower under load, not faster (measured 0.19-0.55 s vs
# 0.02-0.03 s for 32 iterations on 841 points).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pot_peer as pp  # noqa: E402

#: Two well-separated mixtures, 5 apart in x (cost ~12.5 against ε = 1 or 0.25).
RHO0 = {"weights": [0.5, 0.5], "means": [[-2.5, -1.2], [-2.5, 1.2]], "covs": [0.25, 0.25]}
RHO1 = {"weights": [0.3, 0.7], "means": [[2.5, -1.5], [2.5, 1.0]], "covs": [0.3, 0.2]}
#: Half-width of the square domain [-L, L]²: the bridge's mass within 1 of the walls is
#: ~1e-12 or less (checked and reported).
L = 7.0
T = 1.0
#: (label, σ, grids (cells per direction; time steps = cells), bridgesolve modes, grids on
#: which each mode also runs without acceleration).
CASES = [("eps=1", 1.0, (28, 42, 56, 100), ("linear", "log", "auto"),
          {"linear": (28, 42, 56), "log": (28,)}),
         ("eps=0.25", 0.5, (28,), ("log", "auto"), {})]
QUICK_CASES = [("eps=1", 1.0, (20, 28), ("linear", "log", "auto"), {"linear": (20, 28)})]
#: The log mode (Newton at every step) runs up to this grid only (100² cells: minutes).
LOG_MAX_CELLS = 56
BUDGET = 20 * 2**30
#: Time steps of the memory runs (memory is per time level).
MEMORY_STEPS = 40


def mixtures():
    import bridgesolve as bs

    return bs.GaussianMixture(**RHO0), bs.GaussianMixture(**RHO1)


@dataclass
class Grid:
    """A bridgesolve problem and the same points for POT.

    Attributes:
        problem: the bridgesolve Problem (P1 on [-L, L]², Brownian σ, uniform steps).
        x: the P1 nodes in dof order, ``(N, 2)``.
        m: lumped mass weights ``m_i = ∫ v_i dx``.
        a, b: ``ρ0 m`` and ``ρ1 m``, normalized.
        eps: ``σ² T``.
    """

    cells: int
    steps: int
    sigma: float
    problem: object
    x: np.ndarray
    m: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @property
    def eps(self) -> float:
        return self.sigma**2 * T

    @property
    def n(self) -> int:
        return self.x.shape[0]


def make_grid(cells: int, steps: int, sigma: float, *, lower: float = -L,
              upper: float = L, rho0=None, rho1=None) -> Grid:
    """The problem on a ``cells``² mesh and its nodes and lumped weights (serial)."""
    import bridgesolve as bs
    from bridgesolve._dolfinx import fem, ufl

    dom = bs.Domain.box([lower, lower], [upper, upper], (cells, cells))
    if dom.comm.size != 1:
        raise RuntimeError("the POT comparison is serial: run without mpiexec")
    prob = bs.Problem(dom, bs.Brownian(sigma), bs.TimeGrid.uniform(T, steps))
    x = prob.V.tabulate_dof_coordinates()[:, :2].copy()
    m = np.asarray(fem.assemble_vector(fem.form(ufl.TestFunction(prob.V) * ufl.dx)).array)
    r0, r1 = (rho0, rho1) if rho0 is not None else mixtures()
    a = r0.pdf(x) * m
    b = r1.pdf(x) * m
    return Grid(cells, steps, sigma, prob, x, m.copy(), a / a.sum(), b / b.sum())


# -- the two solvers -----------------------------------------------------------------------
def run_bridgesolve(grid: Grid, target: float, *, repeats: int = 1, mode: str = "auto",
                    acceleration: bool = True, rho0=None, rho1=None) -> dict:
    """``solve_bridge`` to ``tol = target``: once cold (form compilation), ``repeats`` warm.

    Returns:
        ``bridge`` (the last result), ``iterations``, ``wall_s`` (best warm run),
        ``first_run_s``, ``mode``, ``final_errors``.
    """
    from bridgesolve.bridge import solve_bridge

    r0, r1 = (rho0, rho1) if rho0 is not None else mixtures()
    walls = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        bridge = solve_bridge(grid.problem, r0, r1, tol=target, mode=mode,
                             acceleration=acceleration, progress=False)
        walls.append(time.perf_counter() - t0)
    if not bridge.converged:
        raise RuntimeError(f"bridgesolve did not converge on {grid.cells}² cells")
    return {"bridge": bridge, "iterations": bridge.iterations, "mode": bridge.mode,
            "wall_s": min(walls[1:]) if repeats else walls[0], "first_run_s": walls[0],
            "final_errors": bridge.info["final_errors"]}


def run_pot(grid: Grid, target: float, *, repeats: int = 1) -> dict:
    """POT's Sinkhorn on the grid's points to an L1 marginal error ``<= target``.

    Returns:
        ``plan``, ``method``, ``iterations``, ``wall_s`` (best of ``repeats``: cost matrix
        + ``ot.sinkhorn``), ``sinkhorn_s`` (the call alone), ``cost_matrix_s``, ``col_L1``,
        and ``previous_col_L1`` (one iteration fewer: above the target, a check that the
        count is the smallest).
    """
    t0 = time.perf_counter()
    M = pp.cost_matrix(grid.x, grid.x)
    cost_s = time.perf_counter() - t0
    method = pp.pot_method(M, grid.eps)
    iterations, _ = pp.sinkhorn_l1_history(grid.a, grid.b, M, grid.eps, target=target,
                                           method=method)
    best = None
    for _ in range(max(repeats, 1)):
        plan, info = pp.pot_solve(grid.a, grid.b, M, grid.eps, iterations=iterations,
                                  method=method)
        if best is None or info["wall_s"] < best["wall_s"]:
            best = info
    _, before = pp.pot_solve(grid.a, grid.b, M, grid.eps, iterations=iterations - 1,
                             method=method) if iterations > 1 else (None, {"col_L1": math.inf})
    return {"plan": plan, "method": method, "iterations": iterations,
            "sinkhorn_s": best["wall_s"], "cost_matrix_s": cost_s,
            "wall_s": best["wall_s"] + cost_s, "col_L1": best["col_L1"],
            "row_L1": best["row_L1"], "previous_col_L1": before["col_L1"]}


# -- comparison ------------------------------------------------------------------------------
def compare_plans(x: np.ndarray, m: np.ndarray, a: np.ndarray, b: np.ndarray,
                  log_phi_hat_0: np.ndarray, log_phi_T: np.ndarray, pot_plan: np.ndarray,
                  eps: float, control_map: np.ndarray | None = None) -> dict:
    """Marginals, plans and barycentric maps of bridgesolve's and POT's couplings.

    Args:
        x, m, a, b: nodes, lumped weights, and the normalized discrete marginals.
        log_phi_hat_0, log_phi_T: bridgesolve's ``log φ̂(·, 0)`` and ``log φ(·, T)`` at the
            nodes (any split of the additive constant).
        pot_plan: POT's plan on the same nodes.
        eps: ``σ² T``.
        control_map: optional ``x + T u(x, 0)`` from bridgesolve's control, ``(N, 2)``.

    Returns:
        ``bs_marginals_L1`` (row, column) of the sampled plan ``φ̂_0 m k_T φ_T m``,
        ``pot_marginals_L1``, ``plan_L1`` (``Σ |π_bs - π_pot|``), ``bs_plan_mass`` and the
        map distances ``map_kernel`` and ``map_control`` (``rms`` in L2(ρ0), ``max`` on the
        support of ρ0) to POT's map; ``pot_map`` and ``bs_map`` themselves.
    """
    bs_plan = pp.plan_from_log_potentials(log_phi_hat_0 + np.log(m), log_phi_T + np.log(m),
                                          x, x, eps)
    pot_map = pp.barycentric_map(pot_plan, x)
    bs_map = pp.barycentric_map(bs_plan, x)
    out = {"bs_marginals_L1": pp.marginal_errors(bs_plan, a, b),
           "pot_marginals_L1": pp.marginal_errors(pot_plan, a, b),
           "plan_L1": float(np.abs(bs_plan - pot_plan).sum()),
           "bs_plan_mass": float(bs_plan.sum()),
           "map_kernel": pp.map_distance(bs_map, pot_map, a),
           "pot_map": pot_map, "bs_map": bs_map}
    if control_map is not None:
        out["map_control"] = pp.map_distance(control_map, pot_map, a)
    return out


def bridge_end_potentials(bridge) -> tuple[np.ndarray, np.ndarray]:
    """``log φ̂(·, 0)`` and ``log φ(·, T)`` at the dofs (serial)."""
    return bridge.log_phi_hat.values[0].copy(), bridge.log_phi.values[-1].copy()


def control_map(bridge, x: np.ndarray) -> np.ndarray:
    """``x + T u(x, 0)`` with the bridge's forward drift ``f + g²∇log φ`` (f = 0 here)."""
    return x + T * bridge.forward_drift().evaluate(x, 0.0)


def wall_mass(bridge, grid: Grid, width: float = 1.0) -> float:
    """Largest mass of the bridge marginals within ``width`` of the walls, over all t."""
    near = np.any(np.abs(grid.x) > L - width, axis=1)
    rho = np.exp(bridge.log_phi.values + bridge.log_phi_hat.values)
    return float(np.max(rho[:, near] @ grid.m[near]))


def observed_orders(hs, errors) -> list[float]:
    """Slopes of log(error) against log(h) between consecutive levels."""
    return [math.log(errors[i] / errors[i + 1]) / math.log(hs[i] / hs[i + 1])
            for i in range(len(hs) - 1)]


# -- memory ----------------------------------------------------------------------------------
_BS_MEMORY_SCRIPT = textwrap.dedent(r"""
    import re, sys, warnings
    def hwm():
        status = open('/proc/self/status').read()
        return int(re.search(r'VmHWM:\s+(\d+)', status).group(1)) * 1024
    sys.path.insert(0, sys.argv[3])
    import bridge_vs_pot as bench
    import bridgesolve as bs
    from bridgesolve.bridge import solve_bridge
    cells, steps = int(sys.argv[1]), int(sys.argv[2])
    r0, r1 = bench.mixtures()
    base = hwm()
    dom = bs.Domain.box([-bench.L] * 2, [bench.L] * 2, (cells, cells))
    prob = bs.Problem(dom, bs.Brownian(1.0), bs.TimeGrid.uniform(bench.T, steps))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = solve_bridge(prob, r0, r1, tol=1e-300, max_iter=3, progress=False)
    rho = bridge.rho  # the marginals a user asks for: one more field
    peak = hwm()
    print(prob.ndofs, base, peak)
""")


def bridgesolve_peak_memory(cells: int, steps: int = MEMORY_STEPS) -> dict:
    """Peak RSS (``VmHWM``) of a 3-iteration ``solve_bridge`` (plus ``.rho``) in a fresh
    subprocess.

    The baseline (Python, DOLFINx, PETSc) is the peak before the mesh is built; per-dof
    memory (mesh, space, matrices, LU factors, the fields of all levels) does not depend on
    the iteration count (fields are overwritten).
    """
    env = {**os.environ, "POT_BACKEND_DISABLE_PYTORCH": "1"}
    out = subprocess.run([sys.executable, "-c", _BS_MEMORY_SCRIPT, str(cells), str(steps),
                          str(Path(__file__).resolve().parent)],
                         capture_output=True, text=True, check=True, env=env)
    ndofs, base, peak = (int(v) for v in out.stdout.split()[-3:])
    return {"cells": cells, "steps": steps, "ndofs": ndofs, "baseline_bytes": base,
            "peak_bytes": peak,
            "bytes_per_dof_level": (peak - base) / (ndofs * (steps + 1))}


def memory_study(quick: bool) -> dict:
    """Measured points for both solvers and the largest grids within :data:`BUDGET`."""
    pot_sizes = (1500, 3000) if quick else (2000, 6000)
    pot = {m: [pp.pot_peak_memory(n, method=m) for n in pot_sizes]
           for m in ("sinkhorn", "sinkhorn_log")}
    pot_limits = {}
    for method, points in pot.items():
        big = points[-1]  # the larger size: the baseline is a smaller share
        n_max = pp.pot_largest_n(BUDGET, big["matrices"], big["baseline_bytes"])
        pot_limits[method] = {"matrices": big["matrices"], "n_max": n_max,
                              "grid_side": int(math.isqrt(n_max))}
    bs_cells = (60, 120) if quick else (80, 160, 320)
    bs_points = [bridgesolve_peak_memory(c) for c in bs_cells]
    # Linear fit peak = c0 + c1 ndofs through the two largest points.
    p, q = bs_points[-2], bs_points[-1]
    slope = (q["peak_bytes"] - p["peak_bytes"]) / (q["ndofs"] - p["ndofs"])
    intercept = q["peak_bytes"] - slope * q["ndofs"]
    n_max = int((BUDGET - intercept) / slope)
    bs_limit = {"bytes_per_dof": slope, "bytes_per_dof_level": slope / (MEMORY_STEPS + 1),
                "intercept_bytes": intercept, "ndofs_max": n_max,
                "grid_side": int(math.isqrt(n_max)), "steps": MEMORY_STEPS}
    return {"pot": pot, "pot_limits": pot_limits, "bridgesolve": bs_points,
            "bridgesolve_limit": bs_limit}


# -- report ----------------------------------------------------------------------------------
def run_case(label: str, sigma: float, cells_list, modes, plain_grids: dict, target: float,
             repeats: int, say) -> list[dict]:
    """One row per grid and bridgesolve mode; POT runs once per grid."""
    rows = []
    for cells in cells_list:
        grid = make_grid(cells, cells, sigma)
        pot = run_pot(grid, target, repeats=repeats)
        for mode in modes:
            if mode == "log" and cells > LOG_MAX_CELLS:
                continue
            # The log mode (Newton on HJB at every step) is timed in one run: it is slow
            # enough that form compilation is a small share (first_run_s = wall_s).
            reps = repeats if mode != "log" else 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                acc = run_bridgesolve(grid, target, repeats=reps, mode=mode)
                plain = (run_bridgesolve(grid, target, repeats=reps, mode=mode,
                                         acceleration=False)
                         if cells in plain_grids.get(mode, ()) else None)
            bridge = acc["bridge"]
            cmp = compare_plans(grid.x, grid.m, grid.a, grid.b, *bridge_end_potentials(bridge),
                                pot["plan"], grid.eps, control_map(bridge, grid.x))
            row = {
                "case": label, "sigma": sigma, "eps": grid.eps, "cells": cells,
                "steps": grid.steps, "points": grid.n, "h": 2 * L / cells, "mode": mode,
                "bs_iterations": acc["iterations"],
                "bs_iterations_plain": plain["iterations"] if plain else None,
                "bs_final_mode": acc["mode"], "bs_wall_s": acc["wall_s"],
                "bs_plain_wall_s": plain["wall_s"] if plain else None,
                "bs_first_run_s": acc["first_run_s"], "bs_final_errors": acc["final_errors"],
                "pot_method": pot["method"], "pot_iterations": pot["iterations"],
                "pot_wall_s": pot["wall_s"], "pot_sinkhorn_s": pot["sinkhorn_s"],
                "pot_cost_matrix_s": pot["cost_matrix_s"], "pot_col_L1": pot["col_L1"],
                "pot_previous_col_L1": pot["previous_col_L1"],
                "wall_mass": wall_mass(bridge, grid),
                **{k: v for k, v in cmp.items() if k not in ("pot_map", "bs_map")},
            }
            rows.append(row)
            say(f"  {label} {cells:3d}² cells ({grid.n} points, {grid.steps} steps) {mode:6}: "
                f"bridgesolve {row['bs_iterations']} it {row['bs_wall_s']:.2f} s | POT "
                f"{pot['method']} {row['pot_iterations']} it {row['pot_wall_s']:.2f} s | "
                f"plan L1 {row['plan_L1']:.2e}, map rms {row['map_kernel']['rms']:.2e}",
                flush=True)
            del bridge, acc, plain
        del grid, pot
    return rows


def gaussian_check(target: float, cells_list=(16, 24, 32)) -> list[dict]:
    """Both solvers against the closed-form barycentric map between two Gaussians.

    ``N((-0.75, 0.25), 0.3 I) -> N((0.75, -0.25), 0.5 I)``, ε = 1, on [-5, 5]², log mode:
    ``E[X_T | X_0 = x] = m1 + (c / var0)(x - m0)`` (:func:`pot_peer.gaussian_entropic_slope`).
    Shows that POT on the nodes is exact to ~1e-6, so the bridgesolve-POT distances above
    are bridgesolve's discretization error.
    """
    import bridgesolve as bs

    m0, m1, v0, v1 = np.array([-0.75, 0.25]), np.array([0.75, -0.25]), 0.3, 0.5
    r0, r1 = bs.GaussianMixture([1.0], [m0], [v0]), bs.GaussianMixture([1.0], [m1], [v1])
    slope = pp.gaussian_entropic_slope(v0, v1, 1.0)
    out = []
    for cells in cells_list:
        grid = make_grid(cells, cells, 1.0, lower=-5.0, upper=5.0, rho0=r0, rho1=r1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = run_bridgesolve(grid, target, repeats=0, mode="log", rho0=r0, rho1=r1)
        pot = run_pot(grid, target)
        cmp = compare_plans(grid.x, grid.m, grid.a, grid.b, *bridge_end_potentials(res["bridge"]),
                            pot["plan"], grid.eps)
        exact = m1 + slope * (grid.x - m0)
        out.append({"cells": cells, "h": 10.0 / cells,
                    "pot": pp.map_distance(cmp["pot_map"], exact, grid.a),
                    "bs": pp.map_distance(cmp["bs_map"], exact, grid.a)})
    return out


def print_gaussian_check(rows: list[dict]) -> None:
    print("\nClosed-form check (Gaussians, ε = 1, [-5, 5]², log mode): barycentric map error "
          "against m1 + c/var0 (x - m0), rms in L2(ρ0)")
    for r in rows:
        print(f"  {r['cells']:3d}² cells (h = {r['h']:.3f}): POT {r['pot']['rms']:.2e}, "
              f"bridgesolve {r['bs']['rms']:.2e}")
    orders = observed_orders([r["h"] for r in rows], [r["bs"]["rms"] for r in rows])
    print("  observed order of bridgesolve's map error: " + ", ".join(f"{o:.2f}" for o in orders))


def print_tables(rows: list[dict], memory: dict | None, target: float) -> None:
    print(f"\nIterations and wall time to L1 marginal error <= {target:g} (bridgesolve: "
          "solve_bridge, best warm run in linear and auto mode, one run in log mode; POT: "
          "cost matrix + ot.sinkhorn, best run), and the plans' L1 distance")
    print(f"{'case':9} {'grid':>5} {'points':>6} {'mode':6} | {'bs it':>5} {'plain':>5} "
          f"{'bs [s]':>8} | {'POT method':12} {'it':>4} {'POT [s]':>8} | {'it POT/bs':>9} "
          f"{'time POT/bs':>11} | {'|π_bs-π_POT|1':>13}")
    for r in rows:
        plain = "-" if r["bs_iterations_plain"] is None else str(r["bs_iterations_plain"])
        print(f"{r['case']:9} {r['cells']:5d} {r['points']:6d} {r['mode']:6} | "
              f"{r['bs_iterations']:5d} {plain:>5} {r['bs_wall_s']:8.3f} | "
              f"{r['pot_method']:12} {r['pot_iterations']:4d} {r['pot_wall_s']:8.3f} | "
              f"{r['pot_iterations'] / r['bs_iterations']:9.2f} "
              f"{r['pot_wall_s'] / r['bs_wall_s']:11.2f} | {r['plan_L1']:13.3e}")
    print("\nAgreement of the couplings (bridgesolve's plan = φ̂_0 m k_T φ_T m on the nodes; "
          "maps: E[X_T | X_0] against POT's, 'kernel' from that plan, 'ctrl' = x + T u(x, 0))")
    print(f"{'case':9} {'grid':>5} {'h':>6} {'mode':6} | {'bs row L1':>9} {'bs col L1':>9} "
          f"{'POT col L1':>10} | {'|π_bs-π_POT|1':>13} | {'map rms':>9} {'map max':>9} | "
          f"{'ctrl rms':>9} {'ctrl max':>9} | {'wall mass':>9}")
    for r in rows:
        br, bc = r["bs_marginals_L1"]
        mc = r.get("map_control", {"rms": math.nan, "max": math.nan})
        print(f"{r['case']:9} {r['cells']:5d} {r['h']:6.3f} {r['mode']:6} | {br:9.2e} "
              f"{bc:9.2e} {r['pot_col_L1']:10.2e} | {r['plan_L1']:13.3e} | "
              f"{r['map_kernel']['rms']:9.2e} {r['map_kernel']['max']:9.2e} | "
              f"{mc['rms']:9.2e} {mc['max']:9.2e} | {r['wall_mass']:9.1e}")
    for case, mode in dict.fromkeys((r["case"], r["mode"]) for r in rows):
        sub = [r for r in rows if r["case"] == case and r["mode"] == mode]
        if len(sub) < 2:
            continue
        hs = [r["h"] for r in sub]
        for key, get in (("plan L1", lambda r: r["plan_L1"]),
                         ("map rms (kernel)", lambda r: r["map_kernel"]["rms"]),
                         ("map rms (control)", lambda r: r["map_control"]["rms"])):
            orders = observed_orders(hs, [get(r) for r in sub])
            print(f"  observed order in h ({case}, {mode} mode, dt ∝ h), {key}: "
                  + ", ".join(f"{o:.2f}" for o in orders))
    if memory is None:
        return
    print(f"\nMemory (peak RSS, measured in a subprocess per size; budget "
          f"{BUDGET / 2**30:.0f} GiB)")
    for method, points in memory["pot"].items():
        for p in points:
            print(f"  POT {method:12} n = {p['n']:6d}: peak {p['peak_bytes'] / 2**20:8.1f} MiB "
                  f"(baseline {p['baseline_bytes'] / 2**20:.0f} MiB) = "
                  f"{p['matrices']:.2f} dense n×n float64 arrays")
    for p in memory["bridgesolve"]:
        print(f"  bridgesolve {p['cells']:4d}² cells, {p['ndofs']:7d} dofs, {p['steps']} steps: "
              f"peak {p['peak_bytes'] / 2**20:8.1f} MiB (baseline "
              f"{p['baseline_bytes'] / 2**20:.0f} MiB), "
              f"{p['bytes_per_dof_level']:.1f} B per dof and level")
    lim = memory["bridgesolve_limit"]
    print(f"\nLargest problem in {BUDGET / 2**30:.0f} GiB:")
    for method, lm in memory["pot_limits"].items():
        print(f"  POT {method:12}: N = {lm['n_max']:>9,d} points ({lm['grid_side']}² grid) "
              f"from 8·{lm['matrices']:.2f}·N² bytes + baseline")
    print(f"  bridgesolve     : N = {lim['ndofs_max']:>9,d} dofs ({lim['grid_side']}² grid) "
          f"with {lim['steps']} steps, from the fit {lim['intercept_bytes'] / 2**20:.0f} MiB + "
          f"{lim['bytes_per_dof']:.0f} B/dof ({lim['bytes_per_dof_level']:.1f} B per dof "
          f"and level)")
    for method, lm in memory["pot_limits"].items():
        print(f"  ratio bridgesolve/POT ({method}): {lim['ndofs_max'] / lm['n_max']:.0f}x "
              "points")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=float, default=1e-8, help="L1 marginal error to reach")
    ap.add_argument("--repeats", type=int, default=2, help="warm runs per configuration")
    ap.add_argument("--quick", action="store_true", help="smaller grids (~1 min)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory study")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    load = os.getloadavg()
    print(f"bridge vs POT: ρ0, ρ1 = 2-component mixtures 5 apart on [-{L:g}, {L:g}]², Brownian "
          f"reference, T = {T:g}; load average at start {load[0]:.2f} (2 cores)")
    rows = []
    # POT's first call pays one-off set-up (backend detection, imports; measured 5 s on
    # the first ot.dist): not its speed.
    warm = make_grid(8, 4, 1.0)
    run_pot(warm, 1e-3)
    for label, sigma, cells_list, modes, plain in (QUICK_CASES if args.quick else CASES):
        rows += run_case(label, sigma, cells_list, modes, plain, args.target, args.repeats,
                         print)
    gaussian = gaussian_check(args.target, (16, 24) if args.quick else (16, 24, 32))
    memory = None if args.no_memory else memory_study(args.quick)
    print_tables(rows, memory, args.target)
    print_gaussian_check(gaussian)
    print(f"\nbenchmark wall time {time.perf_counter() - t_start:.0f} s; load average at end "
          f"{os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "memory": memory, "target": args.target,
                                         "gaussian_check": gaussian, "load_start": load},
                                        indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
