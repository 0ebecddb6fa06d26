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
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

#: ``--solvers`` that run ``Problem(solver="iterative")`` (Krylov method and preconditioner
#: chosen per step matrix by bridgesolve.pde.krylov), with these options on top.
ITERATIVE = {"iterative": None, "iterative-gamg": {"pc_type": "gamg"},
             "iterative-jacobi": {"pc_type": "jacobi"}}
SOLVERS = ["lu", "petsc", "interface", "mumps", "superlu_dist", *ITERATIVE]
#: ``--preset``: the study for a 16-core machine (strong and weak scaling to 16 ranks,
#: direct and iterative, FP solve and bridge iteration), and the iteration-count ladders
#: that fit a 2-core machine (oversubscribed rank counts count iterations, not time).
PRESETS = {
    "16core": [
        {"study": "strong", "dofs": [2e5, 1e6], "ranks": [1, 2, 4, 8, 16],
         "solvers": ["lu", "iterative"]},
        {"study": "weak", "dofs": [1.25e5], "ranks": [1, 2, 4, 8, 16],
         "solvers": ["lu", "iterative"]},
        {"study": "strong", "dofs": [1e6], "ranks": [1, 2, 4, 8, 16], "dim": 3,
         "solvers": ["lu", "iterative"], "bridge_iters": 0},
    ],
    "ladders": [
        {"study": "strong", "dofs": [1e4, 4e4, 1.6e5, 6.4e5], "ranks": [1],
         "solvers": ["iterative"], "bridge_iters": 1},
        {"study": "strong", "dofs": [4e3, 3.2e4, 2.5e5], "ranks": [1], "dim": 3,
         "solvers": ["iterative"], "bridge_iters": 1},
        {"study": "strong", "dofs": [1e5], "ranks": [1, 2, 4, 8], "solvers": ["iterative"],
         "bridge_iters": 1},
    ],
}


def _cells(dofs: float, dim: int = 2) -> int:
    return max(2, round(dofs ** (1.0 / dim) - 1))


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

    if args.dim == 3:
        mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0, 0.0], [1.5, 1.0, 0.5]],
                                 [0.3, 0.25])
    iterative = args.solver in ITERATIVE
    options = {**ITERATIVE, "lu": None,
               "petsc": {"pc_type": "lu", "pc_factor_mat_solver_type": "petsc"},
               "interface": dict(interface_lu.OPTIONS),
               "mumps": {"pc_factor_mat_solver_type": "mumps"},
               "superlu_dist": {"pc_factor_mat_solver_type": "superlu_dist"}}[args.solver]
    solver = "iterative" if iterative else "auto"

    def problem(n: int, steps: int, petsc_options=options, scheme="crank-nicolson",
                domain=None, which=solver):
        dom = domain or bs.Domain.box([-5.0] * args.dim, [5.0] * args.dim, (n,) * args.dim,
                                      comm=comm)
        return bs.Problem(dom, proc, bs.TimeGrid.clock(proc.clock, 1.0, steps),
                          petsc_options=petsc_options, scheme=scheme, solver=which)

    # Warm-up: JIT compilation of the forms (cached on disk, but looked up per process).
    bs.solve_fokker_planck(problem(8, 2, None, which="auto"), mix, progress=False,
                           check_mass=False)

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
    fp_krylov = p.info["linear_solver"]
    mass_drift = float(np.ptp(p.info["mass"]))
    err = p.error(mix.evolve(proc, 1.0), 1.0)
    del p
    opts = prob.petsc_options
    used = f"{opts.get('ksp_type', '?')}+{opts.get('pc_type', '?')}"
    if opts.get("pc_type") in ("lu", "cholesky"):
        used += f"({opts.get('pc_factor_mat_solver_type', 'petsc')})"
    if iterative:
        used = "/".join(fp_krylov["methods"])
    elif opts.get("pc_type") == "python":
        used = "InterfaceLU" + (f"(MUMPS fallback: {interface_lu.FALLBACKS[-1]})"
                                if interface_lu.FALLBACKS else "")
    result = {"ranks": comm.size, "cells": args.cells, "dofs": prob.ndofs,
              "steps": args.steps, "solver": args.solver, "used": used, "fp_s": fp_wall,
              "fp_petsc": fp_petsc, "fp_L2_error": err, "fp_mass_drift": mass_drift,
              "fp_krylov": fp_krylov, "dim": args.dim}
    if args.bridge_iters:
        # Backward Euler keeps the lumped linear sweeps positive on any grid (iterative
        # sweeps clip their sub-tolerance values: bridgesolve.bridge.sweeps).
        bprob = problem(0, args.steps, scheme="backward-euler", domain=prob.domain)
        rho1 = mix.evolve(proc, 1.0)

        def bridge(iterations: int):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # not converged: on purpose
                return timed(lambda: bs.solve_bridge(
                    bprob, mix, rho1, max_iter=iterations, tol=args.bridge_tol,
                    mode="linear", acceleration=False, progress=False))

        small = problem(8, 2, None, which="auto")
        with warnings.catch_warnings():  # warm-up: the bridge's forms are compiled here
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                bs.solve_bridge(bs.Problem(small.domain, proc, small.grid,
                                           scheme="backward-euler", solver="auto"),
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
                      bridge_run_s=wall_b, bridge_setup_s=b.info["timings"]["setup_s"],
                      # the first iteration factorizes / builds the preconditioners
                      bridge_first_iter_s=float(b.history[0]["wall_s"]),
                      bridge_krylov=b.info["linear_solver"],
                      bridge_iterations_run=b.iterations, bridge_tol=args.bridge_tol)
        rho = _half_marginal(b, comm)
        if comm.rank == 0:
            np.save(Path(args.json).with_suffix(".rho.npy"), rho)
    # The slowest rank decides the wall time; PETSc time from the same reduction.
    slowest = comm.allreduce((result["fp_s"], comm.rank), op=MPI.MAXLOC)[1]
    gathered = comm.gather(result, root=0)
    if comm.rank == 0:
        out = gathered[slowest]
        out["fp_petsc_all_ranks"] = [g["fp_petsc"] for g in gathered]
        Path(args.json).write_text(json.dumps(out, indent=1))


def _half_marginal(bridge, comm) -> list[float]:
    """ρ at T/2 on this rank's owned dofs, gathered in global dof order (rank 0): the two
    solvers' bridges are compared on it (same mesh, same partition, same numbering)."""
    V = bridge.problem.V
    n = V.dofmap.index_map.size_local
    k = bridge.problem.grid.steps // 2
    parts = comm.gather(bridge.rho.values[k, :n], root=0)
    return np.concatenate(parts) if comm.rank == 0 else None


# -- driver -------------------------------------------------------------------------------
def run_case(dofs: float, ranks: int, solver: str, args, *, dim: int = 2,
             bridge_iters: int | None = None) -> dict:
    here = Path(__file__).resolve()
    mpiexec = Path(sys.executable).parent / "mpiexec"
    out = Path(args.output) / f"case-{dim}d-{int(dofs)}-{ranks}-{solver}.json"
    bridge_iters = args.bridge_iters if bridge_iters is None else bridge_iters
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, str(here), "--worker",
           "--cells", str(_cells(dofs, dim)), "--steps", str(args.steps), "--solver", solver,
           "--bridge-iters", str(bridge_iters), "--bridge-tol", str(args.bridge_tol),
           "--dim", str(dim), "--json", str(out)]
    load = _load()
    t0 = time.perf_counter()
    left = args.deadline - time.perf_counter() if args.deadline else None
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                   timeout=left)
    result = json.loads(out.read_text())
    result.update(load_before=load, load_after=_load(), process_s=time.perf_counter() - t0,
                  oversubscribed=ranks > (os.cpu_count() or 1))
    rho = out.with_suffix(".rho.npy")
    if rho.exists():
        result["rho_file"] = str(rho)
    return result


def compare_bridges(results: list[dict]) -> list[str]:
    """Bridge ρ(T/2) of each solver against the direct one of the same case: the maximum
    nodal difference relative to the peak (same mesh and partition, same dof order)."""
    lines = []
    direct = {(r["dim"], r["dofs"], r["ranks"]): r for r in results
              if r["solver"] not in ITERATIVE and "rho_file" in r}
    for r in results:
        ref = direct.get((r["dim"], r["dofs"], r["ranks"]))
        if r["solver"] in ITERATIVE and ref is not None and "rho_file" in r:
            a, b = np.load(ref["rho_file"]), np.load(r["rho_file"])
            gap = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
            r["bridge_rho_gap"] = gap
            lines.append(f"{r['dofs']:>8} R={r['ranks']} {r['solver']}: max|Δρ(T/2)|/max ρ = "
                         f"{gap:.2e} against {ref['solver']} (bridge tol "
                         f"{r.get('bridge_tol', float('nan')):g}, "
                         f"{r.get('bridge_iterations_run')} vs "
                         f"{ref.get('bridge_iterations_run')} iterations)")
    return lines


def krylov_table(results: list[dict]) -> str:
    """Krylov iterations per step (FP solve and bridge sweeps) against h and ranks."""
    lines = [f"{'d':>2} {'dofs':>9} {'R':>2} {'solver':>16} {'FP mean':>8} {'FP max':>6} "
             f"{'bridge mean':>11} {'max':>4} {'first it s':>10} {'it s':>7} {'load':>9} "
             "methods"]
    for r in results:
        fk = r.get("fp_krylov", {})
        if fk.get("solver") != "iterative":
            continue
        bk = r.get("bridge_krylov") or {}
        lines.append(
            f"{r['dim']:>2} {r['dofs']:>9} {r['ranks']:>2}{'*' if r['oversubscribed'] else ' '}"
            f"{r['solver']:>16} {fk['per_step_mean']:>8.1f} {fk['per_step_max']:>6} "
            f"{bk.get('per_step_mean', float('nan')):>11.1f} {bk.get('per_step_max', 0):>4} "
            f"{r.get('bridge_first_iter_s', float('nan')):>10.2f} "
            f"{r.get('bridge_iter_s', float('nan')):>7.2f} "
            f"{r['load_before']:>4.1f}/{r['load_after']:<4.1f} {'/'.join(fk['methods'])}")
    lines.append("*: oversubscribed (more ranks than cores): iteration counts only")
    return "\n".join(lines)


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


def cases(args) -> list[tuple]:
    """``(dim, dofs, ranks, solver, bridge_iters)`` of the run: the command line's, or a
    preset's (weak scaling: ``dofs`` per rank)."""
    studies = PRESETS[args.preset] if args.preset else [
        {"study": args.study, "dofs": args.dofs, "ranks": args.ranks,
         "solvers": args.solvers, "dim": args.dim}]
    out = []
    for st in studies:
        for dofs in st["dofs"]:
            for solver in st["solvers"]:
                for ranks in st["ranks"]:
                    if solver == "petsc" and ranks > 1:
                        continue  # PETSc's own LU is sequential
                    total = dofs * ranks if st["study"] == "weak" else dofs
                    out.append((st.get("dim", 2), total, ranks, solver,
                                st.get("bridge_iters", args.bridge_iters)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dofs", type=float, nargs="+", default=[1e5, 2e5, 1e6])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--solvers", nargs="+", default=["lu", "iterative"], choices=SOLVERS)
    ap.add_argument("--bridge-iters", type=int, default=4,
                    help="Sinkhorn iterations timed (0: skip the bridge)")
    ap.add_argument("--bridge-tol", type=float, default=1e-14,
                    help="the bridge's tol (the iterative path solves to 1e-3 of it)")
    ap.add_argument("--dim", type=int, default=2, choices=[2, 3])
    ap.add_argument("--study", default="strong", choices=["strong", "weak"],
                    help="weak: --dofs per rank")
    ap.add_argument("--preset", choices=sorted(PRESETS),
                    help="16core: strong and weak scaling to 16 ranks; ladders: Krylov "
                         "iterations against h (2D, 3D) and ranks (1-8)")
    ap.add_argument("--time-limit", type=float, default=0.0,
                    help="seconds for the whole run (0: none): no case starts after it, "
                         "a running one is stopped, the table shows what finished")
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
    args.deadline = time.perf_counter() + args.time_limit if args.time_limit else 0.0
    results, skipped = [], []
    for dim, dofs, ranks, solver, iters in cases(args):
        if args.deadline and time.perf_counter() >= args.deadline:
            skipped.append(f"{dim}D {int(dofs)} dofs {solver} R={ranks}")
            continue
        print(f"== {dim}D, {int(dofs)} dofs, {solver}, {ranks} rank(s), load "
              f"{_load():.1f}", flush=True)
        try:
            results.append(run_case(dofs, ranks, solver, args, dim=dim, bridge_iters=iters))
        except subprocess.TimeoutExpired:
            skipped.append(f"{dim}D {int(dofs)} dofs {solver} R={ranks} (stopped)")
    text = "\n".join([report(results), "", *compare_bridges(results), "",
                      krylov_table(results)])
    if skipped:
        text += f"\nnot run (time limit {args.time_limit:g} s): " + "; ".join(skipped)
    print(text)
    Path(args.output, "scaling.json").write_text(json.dumps(results, indent=1))
    Path(args.output, "scaling.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
