"""The study loop: :func:`convergence_study` solves and measures each level of a ladder."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from bridgesolve._validate import BridgesolveInputError
from bridgesolve._vocab import REFERENCES, REFINEMENTS
from bridgesolve.equations import exact_bridge_marginals
from bridgesolve.studies.checkpoints import Checkpoints
from bridgesolve.studies.ladders import build_level, level_config, signature
from bridgesolve.studies.measurement import Solution, at_time, exact_targets, measure_all
from bridgesolve.studies.quantities import Quantity, kl_name, quantities_of
from bridgesolve.studies.results import ConvergenceStudy


def _solve(lcfg, problem, data, killing, progress: bool):
    """Run the equation's solver; returns ``(Solution at the report time, warnings)``."""
    import bridgesolve as bs

    t = lcfg.report_time
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if lcfg.equation == "bridge":
            bridge = bs.solve_bridge(problem, data, lcfg.final, killing=killing,
                                     progress=progress, **lcfg.bridge_options)
            scalars = {}
            if killing is None:
                cost = bridge.cost()
                scalars = {"cost_kinetic": cost["kinetic"], "cost_boundary": cost["boundary"]}
            rho = at_time(bridge.rho, t)
            sol = Solution(problem, rho, "linear", at_time(bridge.log_rho, t), "log",
                            scalars)
            sol.linear_solver = dict(bridge.info.get("linear_solver", {}))
        else:
            eq = lcfg.record
            u = getattr(bs, eq.solver)(problem, data, killing=killing, progress=progress,
                                       name=eq.field, **lcfg.solver_options)
            u_t = at_time(u, t)
            sol = Solution(problem, u_t, u.representation, u_t, u.representation,
                            _generated_kl(lcfg, problem, data, u, progress))
            sol.linear_solver = dict(u.info.get("linear_solver", {}))
    return sol, sorted({str(w.message) for w in caught})


def _generated_kl(lcfg, problem, data, p, progress: bool) -> dict[str, float]:
    """``KL(ρ0 ‖ q_h)`` for the ``[convergence] generated`` h values (see
    :func:`quantities_of`)."""
    hs = lcfg.raw.get("convergence", {}).get("generated", [])
    if not hs:
        return {}
    from bridgesolve.likelihood import generated_density, kl_divergence
    from bridgesolve.score import grad_log

    score = grad_log(p)
    prior = data.evolve(problem.process, lcfg.T)
    out = {}
    for h in hs:
        q = generated_density(problem, score, float(h), prior, progress=progress)
        out[kl_name(h)] = kl_divergence(data, q, t=0.0)
    return out


def study_options(cfg, refine: str | None = None, levels: int | None = None,
                  reference: str | None = None) -> tuple[str, int, str]:
    """``(refine, levels, reference)``: the arguments, else the config's ``[convergence]``
    section, else ``("h", 3, "auto")``; checked."""
    opts = cfg.raw.get("convergence", {})
    refine = refine or opts.get("refine", "h")
    levels = levels if levels is not None else opts.get("levels", 3)
    reference = reference or opts.get("reference", "auto")
    if refine not in REFINEMENTS:
        raise BridgesolveInputError(f"refine = {refine!r}: expected one of "
                                    f"{', '.join(REFINEMENTS)}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise BridgesolveInputError(f"levels = {levels!r}: expected an integer >= 2")
    if reference not in REFERENCES:
        raise BridgesolveInputError(f"reference = {reference!r}: expected one of "
                                    f"{', '.join(REFERENCES)}")
    return refine, levels, reference


def convergence_study(config, *, refine: str | None = None, levels: int | None = None,
                      reference: str | None = None, output: str | os.PathLike | None = None,
                      resume: bool = False, comm=None, progress: bool = True,
                      log: Callable[[str], None] | bool | None = None) -> ConvergenceStudy:
    """Solve ``config`` on a refinement ladder and measure errors and observed orders.

    Collective over ``comm``. Options not given come from the config's ``[convergence]``
    section (defaults ``refine = "h"``, ``levels = 3``, ``reference = "auto"``).

    Args:
        config: a :class:`~bridgesolve.config.Config`, or the path of a TOML config.
        refine: ``"h"`` (cells ×2 per level), ``"p"`` (degree +1), ``"dt"`` (steps ×2) or
            ``"hdt"`` (both ×2).
        levels: number of levels (≥ 2).
        reference: ``"exact"`` (fails without a closed form), ``"finest"``, or ``"auto"``
            (exact when there is one).
        output: results folder for checkpoints (and, via :meth:`ConvergenceStudy.write`,
            tables and figures); None keeps everything in memory.
        resume: reuse matching checkpoints in ``output`` instead of solving again.
        comm: the communicator every solve is distributed over (default COMM_WORLD).
        progress: progress bars (rank 0).
        log: called on rank 0 with one line per finished level (default ``print``;
            False: silent).

    Returns:
        The :class:`ConvergenceStudy` (the same on every rank).
    """
    from bridgesolve._dolfinx import MPI
    from bridgesolve.config import Config, load_config

    comm = comm or MPI.COMM_WORLD
    cfg = config if isinstance(config, Config) else load_config(config)
    refine, levels, reference = study_options(cfg, refine, levels, reference)
    quantities = quantities_of(cfg)
    say = (print if log is None or log is True else log) if comm.rank == 0 and log is not False \
        else (lambda *_: None)
    folder = Path(output) if output is not None else None
    store = Checkpoints(folder, comm)

    # Which reference: decided on level 0 (closed forms do not depend on the level).
    lcfg0 = level_config(cfg, refine, 0)
    mode, refused = _reference_mode(cfg, refine, reference, lcfg0, comm, say)
    disc = lcfg0.raw.get("discretization", {})
    theta = 0.5 if disc.get("scheme", "crank-nicolson") == "crank-nicolson" else 1.0
    degree0 = int(disc.get("degree", 1))
    study = ConvergenceStudy(
        equation=cfg.equation, source=cfg.source, refine=refine, reference=mode,
        report_time=lcfg0.report_time, quantities=quantities,
        expected={q.name: q.expected_order(refine, degree0, theta) for q in quantities},
        mpi_size=comm.size, exact_refused=refused)
    say(f"bridgesolve convergence: {cfg.equation} ({cfg.source}), refine {refine}, "
        f"{levels} levels, {comm.size} rank(s); {study.reference_note}")

    from tqdm.auto import tqdm

    bar = tqdm(total=levels, desc="levels", unit="level",
               disable=not progress or comm.rank != 0)
    if progress and say is print:
        say = tqdm.write  # level lines above the bar, not through it
    live: dict[int, object] = {}  # finest-reference mode: solutions of this run
    try:
        for level in range(levels):
            lcfg = level_config(cfg, refine, level)
            sig = signature(lcfg, refine, level, quantities, mode)
            row = store.load(level, sig) if resume else None
            if row is not None and mode == "finest" and not _exists(store.npz(level), comm):
                row = None
            if row is not None:
                row = {**row, "resumed": True}
                study.rows.append(row)
                say(f"  level {level}: resumed from checkpoint ({row['ndofs']} dofs)")
                bar.update()
                continue
            row = _run_level(cfg, refine, level, mode, quantities, comm, progress)
            solution = row.pop("_solution")
            if mode == "finest":
                live[level] = solution
                store.save_solution(level, solution)
            store.save(level, sig, row)
            study.rows.append(row)
            say(_level_line(study, row))
            bar.set_postfix(dofs=row["ndofs"])
            bar.update()
    finally:
        bar.close()
    if mode == "finest":
        _errors_against_finest(cfg, refine, study, live, store, comm)
    return study


def _reference_mode(cfg, refine: str, reference: str, lcfg0, comm,
                    say: Callable[[str], None]) -> tuple[str, str | None]:
    """``("exact" | "finest", why the closed form was refused or None)``, decided on level 0
    (closed forms do not depend on the level); ``reference = "exact"`` without a usable
    closed form is refused."""
    process, data, killing = lcfg0.process(), lcfg0.data, lcfg0.killing()
    has_exact = exact_targets(lcfg0, process, data, killing) is not None
    if reference == "exact" and not has_exact:
        raise BridgesolveInputError(
            f"reference = 'exact': {cfg.equation} with this process/data/killing has no "
            "closed-form solution; use reference = 'finest' (or 'auto')")
    refused = _free_space_refused(cfg, refine, lcfg0, comm) if has_exact and reference != "finest" \
        else None
    if refused is not None:
        if reference == "exact":
            raise BridgesolveInputError(f"reference = 'exact': {refused}; use reference = "
                                        "'finest' (or 'auto')")
        has_exact = False
        say(f"bridgesolve convergence: note: {refused}")
    mode = "exact" if (reference in ("auto", "exact") and has_exact) else "finest"
    return mode, refused


def _free_space_refused(cfg, refine: str, lcfg0, comm) -> str | None:
    """Why the closed form is not this domain's solution, or None (it is).

    The closed forms are free-space laws; on a bounded domain they are the solution only
    while (almost) no mass reaches the walls or an obstacle. Checked on level 0's mesh for
    the laws that carry mass: the bridge's marginals at T/4, T/2, 3T/4 and the
    Fokker–Planck (forward HJB) law at a quarter, half, three quarters and all of the
    report time. Kolmogorov/HJB closed forms are expectations, not laws: not checked."""
    from bridgesolve.studies.measurement import free_space_note

    if cfg.equation == "bridge":
        marginals = exact_bridge_marginals(lcfg0.process(), lcfg0.data, lcfg0.final, T=lcfg0.T,
                                           killing=lcfg0.killing())
        times, law_at = [f * lcfg0.T for f in (0.25, 0.5, 0.75)], marginals
    elif cfg.equation in ("fokker-planck", "hjb-forward"):
        process, data = lcfg0.process(), lcfg0.data
        times = [f * lcfg0.report_time for f in (0.25, 0.5, 0.75, 1.0)]

        def law_at(t):
            return data.evolve(process, t)
    else:
        return None
    what = "bridge" if cfg.equation == "bridge" else f"{cfg.equation} solution"
    return free_space_note(build_level(cfg, refine, 0, comm)[1], law_at, times, what)


def _exists(path: Path | None, comm) -> bool:
    ok = path is not None and path.is_file() if comm.rank == 0 else None
    return bool(comm.bcast(ok, root=0))


def _level_line(study: ConvergenceStudy, row: dict) -> str:
    first = study.quantities[0].name
    err = row["errors"].get(first)
    what = f", {first} = {err:.3e}" if err is not None else ""
    krylov = row.get("linear_solver") or {}
    its = (f", {krylov['per_step_mean']:.1f} Krylov iterations per step"
           if krylov.get("solver") == "iterative" else "")
    return (f"  level {row['level']}: {row['ndofs']} dofs, {row['steps']} steps, "
            f"P{row['degree']}, solve {row['solve_s']:.2f} s{what}{its}, peak RSS "
            f"{row.get('peak_rss_mb_max', float('nan')):.0f} MiB per rank (sum "
            f"{row.get('peak_rss_mb_sum', float('nan')):.0f})")


def _run_level(cfg, refine: str, level: int, mode: str, quantities: list[Quantity], comm,
               progress: bool) -> dict:
    from bridgesolve._dolfinx import MPI

    phase_peak_mb()  # resets the phase's peak
    lcfg, problem, data, killing = build_level(cfg, refine, level, comm)
    phases = {"build": phase_peak_mb()}
    t0 = time.perf_counter()
    sol, messages = _solve(lcfg, problem, data, killing, progress)
    solve_s = comm.allreduce(time.perf_counter() - t0, MPI.MAX)
    phases["solve"] = phase_peak_mb()
    t1 = time.perf_counter()
    errors: dict[str, float | None] = {q.name: None for q in quantities}
    if mode == "exact":
        values_fn, score_fn, density_fn, scalars = exact_targets(lcfg, problem.process, data,
                                                                  killing)
        errors = measure_all(quantities, sol, values_fn, mesh=problem.mesh,
                              degree=measure_degree(lcfg, problem), score=score_fn,
                              density=density_fn,
                              scalars=scalars)
    measure_s = comm.allreduce(time.perf_counter() - t1, MPI.MAX)
    phases["measure"] = phase_peak_mb()
    # the level's own peak; resetting the phase peaks lowers getrusage's too (Linux)
    known = [v for v in phases.values() if v is not None]
    rss = comm.allgather(max(known) if known else peak_rss_mb())
    # each phase's own peak, per rank: where a level's memory goes (mesh and spaces, the
    # solve's fields and solvers, the error quadrature)
    by_phase = {k: comm.allgather(v) for k, v in phases.items()}
    grid = problem.grid
    cells = lcfg.raw["domain"].get("cells")
    return {
        "level": level, "cells": cells, "h": problem.domain.hmax,
        "dt": float(grid.dt.max()), "degree": problem.degree, "steps": grid.steps,
        "ndofs": problem.ndofs, "solve_s": solve_s, "measure_s": measure_s,
        "errors": errors, "values": sol.scalars, "warnings": messages, "resumed": False,
        "representation": sol.representation, "score_representation": sol.s_representation,
        # the level's peak (building, solving and measuring it), per rank
        "peak_rss_mb": rss, "peak_rss_mb_max": max(rss), "peak_rss_mb_sum": sum(rss),
        "peak_rss_mb_phase": by_phase,
        "linear_solver": sol.linear_solver, "load_avg": _load(),
        "_solution": sol,
    }


def measure_degree(lcfg, problem) -> int:
    """The Lagrange degree errors are computed in: ``[convergence] measure_degree``, else
    the level's degree + 3 (P4 of a 3D P1 level of 1e6 dofs has ~6e7 dofs: too many)."""
    return int(lcfg.raw.get("convergence", {}).get("measure_degree", problem.degree + 3))


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (MiB; ``getrusage``, Linux KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def phase_peak_mb() -> float | None:
    """The peak resident set size since the last call (MiB), then reset: Linux's
    ``VmHWM``, reset by writing 5 to ``/proc/self/clear_refs`` (which resets the peak that
    ``getrusage`` reports too); None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            hwm = next(float(line.split()[1]) / 1024.0 for line in f
                       if line.startswith("VmHWM:"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except (OSError, StopIteration, ValueError):
        return None
    return hwm


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _errors_against_finest(cfg, refine: str, study: ConvergenceStudy, live: dict, store,
                           comm) -> None:
    """Fill the errors of every level but the last against the last (collective)."""
    from bridgesolve._dolfinx import MPI

    def solution(level: int) -> Solution:
        if level in live:
            return live[level]
        _, problem, _, _ = build_level(cfg, refine, level, comm)
        return store.load_solution(level, problem, study.rows[level])

    last = len(study.rows) - 1
    fine = solution(last)
    degree = max(row["degree"] for row in study.rows)
    for level in range(last):
        t0 = time.perf_counter()
        study.rows[level]["errors"] = measure_all(
            study.quantities, solution(level), fine, mesh=fine.u.function_space.mesh,
            degree=degree)
        study.rows[level]["measure_s"] = comm.allreduce(time.perf_counter() - t0, MPI.MAX)
    study.rows[last]["errors"] = {q.name: None for q in study.quantities}


__all__ = ["convergence_study", "study_options"]
