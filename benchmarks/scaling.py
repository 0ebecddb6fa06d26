r"""Strong scaling: one Fokker–Planck solve and one Sinkhorn (bridge) iteration on 1 and 2 ranks.

Problem: the 2D two-component mixture of the default example under the VP SDE on
[-5, 5]^2, P1 on n x n cells (``(n+1)^2`` dofs: 1e5 at n = 316, 2e5 at n = 447, 1e6 at
n = 1000), ``--steps`` Crank–Nicolson steps on the VP clock grid (one operator, one
factorization per run). The bridge goes from that mixture to its VP marginal at T
(the same VP reference), linear mode with backward Euler (positive lumped sweeps); "one
iteration" is a backward Kolmogorov sweep, a forward Fokker–Planck sweep and the marginal
updates.

For every (dofs, ranks, solver) the script starts ``mpiexec -n R python scaling.py
--worker ...`` (a fresh process: form compilation is warmed up by a small solve first and
not timed) and reports, on the slowest rank:

- ``fp_s``: wall time of ``solve_fokker_planck`` (assembly, factorization, every step,
  storing every level, masses), between barriers;
- ``bridge_iter_s``: one iteration (both sweeps and the marginal updates): the median of
  the per-iteration wall times (slowest rank) that ``solve_bridge`` records, over
  iterations 2 … ``1 + --bridge-iters`` (the first factorizes); the difference of runs
  with ``max_iter = 1`` and ``1 + --bridge-iters`` is kept as
  ``bridge_iter_difference_s`` (it carries the noise of two set-ups);
- ``petsc_share``: the part of ``fp_s`` spent inside PETSc calls of the stepping engine
  (assembly, factorization/preconditioner set-up, mat-vec, KSP solve), from the cheap
  timers of :data:`bridgesolve.pde.stepping.PETSC_TIME`; the rest is Python and NumPy;
- ``efficiency = T_1 / (R T_R)`` for the same solver.

Solvers (``--solvers``): ``lu`` (the default of :class:`bridgesolve.Problem`: PETSc's LU on
one rank below 2e5 dofs, else the interface solver), ``petsc`` (PETSc's sequential LU, one
rank only), ``interface`` (:mod:`bridgesolve.pde.interface_lu`: local SuperLU factors,
PETSc's triangular solves and a dense interface Schur system), ``mumps`` and
``superlu_dist`` (on every rank count), and ``iterative``
(GMRES + GAMG, rtol 1e-10, through ``Problem(petsc_options=...)``; FP only: its round-off
negatives stop the positive linear bridge sweeps). In 2D the LU factors are cheap to apply,
so per step a direct solve beats GAMG several times over; GAMG needs no factorization and
no triangular solves, which is what scales.

The machine is shared: the load average (``uptime``) before each run is printed next to
it (README, "Benchmarks", has the last measurements). Run:
``.venv/bin/python benchmarks/scaling.py [--dofs 1e5 2e5 1e6] [--ranks 1 2]
[--steps 40] [--solvers lu iterative] [--bridge-iters 2] [--output results/scaling]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ITERATIVE = {"ksp_type": os.environ.get("BS_KSP", "gmres"),
             "pc_type": os.environ.get("BS_PC", "gamg"), "ksp_rtol": 1e-10,
             "ksp_atol": 1e-50, "ksp_max_it": 500,
             "ksp_initial_guess_nonzero": os.environ.get("BS_GUESS", "1") == "1"}


def _cells(dofs: float) -> int:
    return max(2, round(math.sqrt(dofs) - 1))


def _load() -> float:
    return os.getloadavg()[0]


# -- worker (runs under mpiexec) ------------------------------------------------------------
def worker(args) -> None:
    import bridgesolve as bs
    from bridgesolve._dolfinx import MPI
    from bridgesolve.pde import stepping

    comm = MPI.COMM_WORLD
    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
                             [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])
    proc = bs.VP()
    from bridgesolve.pde import interface_lu

    options = {"iterative": ITERATIVE, "lu": None,
               "petsc": {"pc_type": "lu", "pc_factor_mat_solver_type": "petsc"},
               "interface": dict(interface_lu.OPTIONS),
               "mumps": {"pc_factor_mat_solver_type": "mumps"},
               "superlu_dist": {"pc_factor_mat_solver_type": "superlu_dist"}}[args.solver]

    def problem(n: int, steps: int, petsc_options=options):
        dom = bs.Domain.box([-5.0, -5.0], [5.0, 5.0], (n, n), comm=comm)
        return bs.Problem(dom, proc, bs.TimeGrid.clock(proc.clock, 1.0, steps),
                          petsc_options=petsc_options)

    # Warm-up: JIT compilation of the forms (cached on disk, but looked up per process).
    bs.solve_fokker_planck(problem(8, 2, None), mix, progress=False, check_mass=False)

    def timed(fn):
        stepping.reset_petsc_time()
        comm.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cpu = time.process_time() - c0  # before the barrier: this rank's own work
        comm.barrier()
        wall = time.perf_counter() - t0
        timers = dict(stepping.PETSC_TIME)
        timers["cpu_s"] = comm.allreduce(cpu, MPI.MAX)
        return out, wall, timers

    prob = problem(args.cells, args.steps)
    p, fp_wall, fp_petsc = timed(lambda: bs.solve_fokker_planck(prob, mix, progress=False,
                                                                check_mass=False))
    mass_drift = float(np.ptp(p.info["mass"]))
    err = p.error(mix.evolve(proc, 1.0), 1.0)
    del p
    opts = prob.petsc_options
    used = f"{opts.get('ksp_type', '?')}+{opts.get('pc_type', '?')}"
    if opts.get("pc_type") in ("lu", "cholesky"):
        used += f"({opts.get('pc_factor_mat_solver_type', 'petsc')})"
    if opts.get("pc_type") == "python":
        used = "InterfaceLU" + (f"(MUMPS fallback: {interface_lu.FALLBACKS[-1]})"
                                if interface_lu.FALLBACKS else "")
    result = {"ranks": comm.size, "cells": args.cells, "dofs": prob.ndofs,
              "steps": args.steps, "solver": args.solver, "used": used, "fp_s": fp_wall,
              "fp_petsc": fp_petsc, "fp_L2_error": err, "fp_mass_drift": mass_drift}
    # Iterative solves leave round-off negatives (1e-10 of the peak) that the positive
    # linear sweeps refuse: the bridge is timed with the direct solvers only.
    if args.bridge_iters and args.solver != "iterative":
        # Backward Euler keeps the lumped linear sweeps positive on any grid.
        bprob = bs.Problem(prob.domain, proc, prob.grid, scheme="backward-euler",
                           petsc_options=options)
        rho1 = mix.evolve(proc, 1.0)

        def bridge(iterations: int):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # not converged: on purpose
                return timed(lambda: bs.solve_bridge(
                    bprob, mix, rho1, max_iter=iterations, tol=1e-14, mode="linear",
                    acceleration=False, progress=False))

        small = problem(8, 2, None)
        with warnings.catch_warnings():  # warm-up: the bridge's forms are compiled here
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                bs.solve_bridge(bs.Problem(small.domain, proc, small.grid,
                                           scheme="backward-euler"),
                                mix, rho1, max_iter=1, mode="linear", progress=False)
            except bs.BridgeError:
                pass  # 8 x 8 cells are too coarse for positivity; compiled all the same
        # One iteration: the wall time of each iteration from the bridge's history (the
        # slowest rank's), the median over iterations 2, 3, ... (the first one factorizes).
        # PETSc timers: the difference of runs with 1 and 1 + n iterations, per iteration.
        _, wall_a, petsc_a = bridge(1)
        b, wall_b, petsc_b = bridge(1 + args.bridge_iters)
        n = b.iterations - 1
        petsc = {k: (petsc_b[k] - petsc_a[k]) / n for k in petsc_b}
        walls = np.array([rec["wall_s"] for rec in b.history[1:]])
        comm.Allreduce(MPI.IN_PLACE, walls, op=MPI.MAX)
        result.update(bridge_iterations=n, bridge_s=float(np.median(walls)),
                      bridge_petsc=petsc, bridge_iter_s=float(np.median(walls)),
                      bridge_iter_all_s=walls.tolist(),
                      bridge_iter_difference_s=(wall_b - wall_a) / n,
                      bridge_run_s=wall_b, bridge_setup_s=b.info["timings"]["setup_s"])
    # The slowest rank decides the wall time; PETSc time from the same reduction.
    slowest = comm.allreduce((result["fp_s"], comm.rank), op=MPI.MAXLOC)[1]
    gathered = comm.gather(result, root=0)
    if comm.rank == 0:
        out = gathered[slowest]
        out["fp_petsc_all_ranks"] = [g["fp_petsc"] for g in gathered]
        Path(args.json).write_text(json.dumps(out, indent=1))


# -- driver -------------------------------------------------------------------------------
def run_case(dofs: float, ranks: int, solver: str, args) -> dict:
    here = Path(__file__).resolve()
    mpiexec = Path(sys.executable).parent / "mpiexec"
    out = Path(args.output) / f"case-{int(dofs)}-{ranks}-{solver}.json"
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, str(here), "--worker",
           "--cells", str(_cells(dofs)), "--steps", str(args.steps), "--solver", solver,
           "--bridge-iters", str(args.bridge_iters), "--json", str(out)]
    load = _load()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = json.loads(out.read_text())
    result.update(load_before=load, load_after=_load(), process_s=time.perf_counter() - t0)
    return result


def petsc_share(result: dict, key: str) -> float:
    timers = result[f"{key}_petsc"]
    return sum(v for k, v in timers.items() if k != "cpu_s") / result[f"{key}_s"]


def report(results: list[dict]) -> str:
    lines = [f"{'dofs':>8} {'solver':>12} {'R':>2} {'FP s':>7} {'eff':>5} {'cpu eff':>7} "
             f"{'PETSc':>6} {'(solve':>7} {'setup)':>7} {'it s':>7} {'eff':>5} {'PETSc':>6} "
             f"{'L2 err':>9} {'load':>9} used"]
    base = {(r["dofs"], r["solver"]): r for r in results if r["ranks"] == 1}
    fastest: dict = {}  # per dofs: the fastest serial FP solve and bridge iteration
    for r in results:
        if r["ranks"] == 1:
            for key in ("fp_s", "bridge_iter_s"):
                if key in r and r[key] < fastest.get((r["dofs"], key), (np.inf, ""))[0]:
                    fastest[(r["dofs"], key)] = (r[key], r["solver"])
    for r in results:
        one = base.get((r["dofs"], r["solver"]))
        eff = one["fp_s"] / (r["ranks"] * r["fp_s"]) if one else float("nan")
        cpu_eff = (one["fp_petsc"].get("cpu_s", np.nan)
                   / (r["ranks"] * r["fp_petsc"].get("cpu_s", np.nan)) if one else np.nan)
        share = petsc_share(r, "fp")
        solve = r["fp_petsc"]["solve_s"] + r["fp_petsc"]["mult_s"]
        setup = r["fp_petsc"]["setup_s"] + r["fp_petsc"]["assemble_s"]
        line = (f"{r['dofs']:>8} {r['solver']:>12} {r['ranks']:>2} {r['fp_s']:>7.2f} "
                f"{eff:>5.2f} {cpu_eff:>7.2f} {share:>6.1%} {solve:>7.2f} {setup:>7.2f}")
        if "bridge_iter_s" in r:
            beff = (one["bridge_iter_s"] / (r["ranks"] * r["bridge_iter_s"]) if one
                    else float("nan"))
            line += (f" {r['bridge_iter_s']:>7.2f} {beff:>5.2f} "
                     f"{petsc_share(r, 'bridge'):>6.1%}")
        else:
            line += " " * 20
        line += (f" {r['fp_L2_error']:>9.2e} {r['load_before']:>4.1f}/{r['load_after']:<4.1f}"
                 f" {r.get('used', '?')}")
        lines.append(line)
    lines.append("")
    lines.append("Efficiency against the fastest serial configuration of this run, "
                 "T1(fastest) / (R TR):")
    for r in results:
        if r["ranks"] == 1:
            continue
        parts = [f"{r['dofs']:>8} {r['solver']:>12} R={r['ranks']}"]
        for key, label in (("fp_s", "FP"), ("bridge_iter_s", "bridge iteration")):
            if key in r and (r["dofs"], key) in fastest:
                t1, who = fastest[(r["dofs"], key)]
                parts.append(f"{label}: {t1:.3f} s ({who}) -> {r[key]:.3f} s, "
                             f"efficiency {t1 / (r['ranks'] * r[key]):.2f}")
        lines.append("  ".join(parts))
    lines.append("FP s: Fokker-Planck wall time (slowest rank); eff = T1/(R TR); cpu eff: "
                 "the same with the CPU time of the busiest rank (what the ranks would take "
                 "on idle cores; MPICH polls while it waits, so waiting counts); PETSc: share "
                 "of the wall time inside PETSc (solve = KSP solves + mat-vecs, setup = "
                 "assembly + factorization/PC set-up, seconds); it s: one bridge iteration; "
                 "load: 1-min load average before/after (2 cores); used: the KSP, PC and "
                 "factorization package that rank count ran with")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dofs", type=float, nargs="+", default=[1e5, 2e5, 1e6])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--solvers", nargs="+", default=["lu", "iterative"],
                    choices=["lu", "petsc", "interface", "mumps", "superlu_dist",
                             "iterative"])
    ap.add_argument("--bridge-iters", type=int, default=4,
                    help="Sinkhorn iterations timed (0: skip the bridge)")
    ap.add_argument("--output", default="results/scaling")
    # worker mode
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cells", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--solver", default="lu", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    Path(args.output).mkdir(parents=True, exist_ok=True)
    results = []
    for dofs in args.dofs:
        for solver in args.solvers:
            for ranks in args.ranks:
                if solver == "petsc" and ranks > 1:
                    continue  # PETSc's own LU is sequential
                print(f"== {int(dofs)} dofs, {solver}, {ranks} rank(s), load "
                      f"{_load():.1f}", flush=True)
                results.append(run_case(dofs, ranks, solver, args))
    text = report(results)
    print(text)
    Path(args.output, "scaling.json").write_text(json.dumps(results, indent=1))
    Path(args.output, "scaling.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
