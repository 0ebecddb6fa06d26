"""``bridgesolve bridge``: the Schrödinger bridge of a TOML config, into a results folder.

``bridgesolve bridge CONFIG`` and ``bridgesolve run CONFIG`` with ``[problem] equation =
"bridge"`` run the same code (:func:`run_bridge`). The config has ``[initial]`` (ρ0),
``[final]`` (ρ1) and an optional ``[bridge]`` section with the keywords of
:func:`bridgesolve.solve_bridge` (``tol``, ``max_iter``, ``mode``, ``acceleration``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from bridgesolve import __version__
from bridgesolve.cli._common import (
    RAW,
    add_output_options,
    captured_warnings,
    input_warnings,
    merge_warnings,
    plot_times,
    sayer,
    warn_line,
    world,
)

BRIDGE_HELP = """\
a bridge config has the sections of `bridgesolve run` (see `bridgesolve run --help`), with
  [problem]   equation = "bridge" (the default for `bridgesolve bridge`)
  [initial]   ρ0 at t = 0: type = "gaussian_mixture", weights, means, covs
  [final]     ρ1 at t = T: a gaussian_mixture as above
  [bridge]    tol = 1e-8 (L1 marginal error at both ends), max_iter = 500,
              mode = "auto" | "linear" | "log", acceleration = true
  [killing]   optional V(x) (the cost is then not reported)
  [discretization] boundary must be "reflecting"

results folder: rho.bp, log_phi.bp, log_phi_hat.bp (ParaView time series of the marginals
ρ_t = φ φ̂ and of log φ, log φ̂), rho.png (marginals at the plot times; exact ones dashed
in 1D when ρ0, ρ1 are single Gaussians under a Brownian reference), log_phi.png,
log_phi_hat.png, control.png (the control u = g² ∇log φ: arrows over ρ_t in 2D, curves in
1D), convergence.png (marginal errors per iteration, mode switches marked), mass.png
(∫ φ φ̂ dx over t), summary.json (iterations, convergence, final marginal errors, the KL
cost by both formulas, timings, full history) and config.toml.

A failed iteration (divergence, stagnation, non-finite potentials) is reported with the
iteration and the quantity (exit code 1) and leaves no results folder.
examples: bridgesolve bridge examples/bridge_2d.toml; mpiexec -n 2 bridgesolve bridge
          examples/bridge_2d.toml -o out/bridge --overwrite"""


#: Relative gap between the two KL formulas above which a converged run is flagged.


def add_parser(sub) -> None:
    """The ``bridge`` subcommand (argparse sub-parsers ``sub``)."""
    ap = sub.add_parser(
        "bridge", help="Schrödinger bridge between the [initial] and [final] densities",
        description="Solve the Schrödinger system between ρ0 ([initial]) and ρ1 ([final]) "
                    "under the reference process of CONFIG by Sinkhorn–Fortet iterations and "
                    "write a results folder. Runs under `mpiexec -n N` too.",
        epilog=BRIDGE_HELP, formatter_class=RAW)
    ap.add_argument("config", type=Path, help="TOML config file")
    add_output_options(ap)
    ap.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """``bridgesolve bridge CONFIG``."""
    from bridgesolve.config import ConfigError, load_config

    noted: list[str] = []
    with input_warnings(noted, world().rank):
        cfg = load_config(args.config, default_equation="bridge")
    if cfg.equation != "bridge":
        raise ConfigError(f"[problem] equation = {cfg.equation!r}: `bridgesolve bridge` "
                          "solves equation = 'bridge'; use `bridgesolve run` for this config")
    return run_bridge(args, cfg, noted=noted)


def _check_finite(bridge, comm) -> None:
    """Refuse to write NaN (or +inf) potentials; -inf in a log field is a zero of φ."""
    from bridgesolve._dolfinx import MPI

    bad = [name for name, field in (("log φ", bridge.log_phi), ("log φ̂", bridge.log_phi_hat))
           if comm.allreduce(int(np.any(np.isnan(field.values) | (field.values == np.inf))),
                             MPI.MAX)]
    if bad:
        from bridgesolve.bridge import BridgeError

        raise BridgeError(f"Schrödinger bridge: {' and '.join(bad)} hold NaN or +inf after "
                          f"{bridge.iterations} iterations; nothing was written", bridge.history)


def _figures(bridge, rho, folder: Path, times, *, exact, tol: float, comm,
             slice_z: float | None = None) -> None:
    """rho.png, log_phi.png, log_phi_hat.png, control.png (collective); convergence.png and
    mass.png (rank 0)."""
    from bridgesolve.plotting import (
        plot_convergence_history,
        plot_field_panels,
        plot_series,
        plot_vector_panels,
    )

    exact_pdf = (lambda t: exact(t).pdf) if exact is not None else None
    plot_field_panels(rho, times, folder / "rho.png", label="ρ_t = φ φ̂", exact=exact_pdf,
                      slice_z=slice_z)
    plot_field_panels(bridge.log_phi, times, folder / "log_phi.png", label="log φ",
                      slice_z=slice_z)
    plot_field_panels(bridge.log_phi_hat, times, folder / "log_phi_hat.png", label="log φ̂",
                      slice_z=slice_z)
    plot_vector_panels(bridge.control(), times, folder / "control.png", density=rho,
                       label="u = g² ∇log φ", slice_z=slice_z)
    if comm.rank != 0:
        return
    plot_convergence_history(bridge.history, folder / "convergence.png", tol=tol)
    mass = np.asarray(bridge.info["mass"])
    plot_series(bridge.grid.times, {"∫ φ φ̂ dx - (value at t = 0)": mass - mass[0]},
                folder / "mass.png", xlabel="t", ylabel="change",
                title=f"∫ φ φ̂ dx at t = 0: {mass[0]:.12g} (constant in t for the exact "
                      "system)")


def _l1(value) -> str:
    """An L1 error for a summary line; never ``nan``."""
    return f"{value:.2e}" if value is not None and np.isfinite(value) else "not finite"


def _convergence_note(bridge) -> str:
    """Why the iteration stopped short, with the last finite marginal errors."""
    finite = [h for h in bridge.history
              if np.isfinite(h.get("err0_L1", np.nan)) and np.isfinite(h.get("errT_L1", np.nan))]
    where = (f"last finite L1 marginal errors {finite[-1]['err0_L1']:.3g} at t = 0 and "
             f"{finite[-1]['errT_L1']:.3g} at t = T (iteration {finite[-1]['iteration']})"
             if finite else "the marginal errors were never finite")
    return (f"Schrödinger bridge: not converged after {bridge.iterations} iterations; "
            f"{where}: raise [bridge] max_iter, loosen tol, or use mode = 'log'")


def _solve(problem, rho0, rho1, killing, options, *, quiet: bool, comm):
    """The bridge and its warnings (CLI wording: no ``nan`` in the non-convergence note)."""
    from bridgesolve.bridge import solve_bridge

    with captured_warnings() as caught:
        bridge = solve_bridge(problem, rho0, rho1, killing=killing, progress=not quiet,
                              **options)
    _check_finite(bridge, comm)
    messages = [m for m in caught if "not converged" not in m]
    if not bridge.converged:
        messages.insert(0, f"RuntimeWarning: {_convergence_note(bridge)}")
    with warnings.catch_warnings():  # the CLI words the under-resolved warning itself
        warnings.simplefilter("ignore", RuntimeWarning)
        cost = bridge.cost() if killing is None else None
    if cost is not None and cost["under_resolved"]:
        # Converged to tol, yet the two exact identities of the continuous system
        # disagree: the discrete potentials are not resolved (steep φ on a coarse mesh).
        messages.append(
            f"the two KL cost formulas differ by {100 * cost['relative_gap']:.0f} % "
            f"(kinetic {cost['kinetic']:.4g}, boundary {cost['boundary']:.4g}): the "
            "mesh or time grid is too coarse for these potentials; refine them, or use "
            "mode = 'log' (accurate for steep potentials)")
    for message in messages:
        warn_line(message, comm.rank)
    return bridge, cost, messages


def _exact_in_domain(problem, exact, T: float) -> tuple:
    """``(exact, note)``: the free-space closed form is this domain's bridge only while its
    marginals stay inside the domain (reflecting walls, obstacles); checked at T/4, T/2
    and 3T/4 (the data at 0 and T are checked by the solve). Else ``(None, why)``."""
    from bridgesolve.studies.measurement import free_space_note

    if exact is None:
        return None, None
    note = free_space_note(problem, exact, (0.25 * T, 0.5 * T, 0.75 * T), "bridge")
    return (exact, None) if note is None else (None, f"{note}: no exact errors reported")


def _summary(cfg, problem, bridge, cost, errors, messages, exact, times_record) -> dict:
    last = bridge.history[-1]
    mass = np.asarray(bridge.info["mass"])
    return {
        "bridgesolve": __version__,
        "equation": "bridge",
        "config_source": cfg.source,
        "problem": problem.describe(),
        "rho0": cfg.data.describe() if hasattr(cfg.data, "describe") else cfg.raw["initial"],
        "rho1": cfg.final.describe() if hasattr(cfg.final, "describe") else cfg.raw["final"],
        "options": cfg.bridge_options,
        "converged": bridge.converged,
        "iterations": bridge.iterations,
        "mode": bridge.mode,
        "linear_solver": bridge.info.get("linear_solver"),
        "events": [{"iteration": h["iteration"], "event": h["event"]}
                   for h in bridge.history if h.get("event")],
        "final_errors": {**bridge.info["final_errors"],
                         "err0_Linf": last["err0_Linf"], "errT_Linf": last["errT_Linf"]},
        "cost": None if cost is None else {
            "kinetic": cost["kinetic"], "boundary": cost["boundary"],
            "relative_gap": cost["relative_gap"],
            "formulas": {"kinetic": "½ ∫∫ g² ρ_t |∇log φ|² dx dt",
                         "boundary": "∫ρ1 log φ_T - ∫ρ0 log φ_0"}},
        "mass_phi_phi_hat": {"t0": mass[0], "T": mass[-1],
                             "max_relative_drift": bridge.info.get("mass_drift")},
        "exact_marginals": exact is not None,
        "errors": errors,
        "plot_times": times_record,
        "history": bridge.history,
        "warnings": messages,
    }


def run_bridge(args: argparse.Namespace, cfg, *, noted: list[str] | None = None) -> int:
    """Solve the bridge of a validated config; write the results folder; print a summary.

    Args:
        args: ``output``, ``overwrite``, ``quiet``, ``no_vtx`` (the options of ``run`` and
            ``bridge``).
        cfg: a :class:`~bridgesolve.config.Config` with ``equation == "bridge"``.
        noted: the warnings already shown while the config was read; recorded in
            ``summary.json`` with those of the build, the solve and the plot times.

    Returns:
        0 on success, 1 when the iteration fails (:class:`~bridgesolve.bridge.BridgeError`;
        nothing is written).
    """
    from bridgesolve.bridge import BridgeError
    from bridgesolve.equations import exact_bridge_marginals
    from bridgesolve.io import ResultsFolder, write_time_series

    comm = world()
    say = sayer(comm.rank, args.quiet)
    t_start = time.perf_counter()
    folder = ResultsFolder(args.output or cfg.output_dir, overwrite=args.overwrite, comm=comm)
    noted = list(noted or [])
    with input_warnings(noted, comm.rank):
        problem, rho0, killing = cfg.build(comm)
    options = cfg.bridge_options
    grid = problem.grid
    say(f"bridgesolve: bridge ({cfg.source}): {problem.ndofs} dofs, {grid.steps} steps, "
        f"P{problem.degree}, {problem.scheme}, mode {options['mode']}, tol {options['tol']:g}")

    with folder:
        try:
            bridge, cost, messages = _solve(problem, rho0, cfg.final, killing, options,
                                            quiet=args.quiet, comm=comm)
        except BridgeError as exc:
            if comm.rank == 0:
                print(f"bridgesolve: error: {exc}", file=sys.stderr)
            return 1  # leaving the block uncommitted discards the folder
        t_output = time.perf_counter()
        times, times_record, times_note = plot_times(cfg, grid, comm.rank)
        exact, exact_note = _exact_in_domain(problem, exact_bridge_marginals(
            problem.process, rho0, cfg.final, T=cfg.T, killing=killing), cfg.T)
        if exact_note and comm.rank == 0 and not args.quiet:
            print(f"bridgesolve: note: {exact_note}", file=sys.stderr)
        rho = bridge.rho
        errors = ([{"t": t, "L2": rho.error(exact(t), t), "L1": rho.error(exact(t), t, norm="L1"),
                    "Linf": rho.error(exact(t), t, norm="Linf")} for t in times]
                  if exact is not None else [])
        if cfg.vtx and not args.no_vtx:
            for field in (rho, bridge.log_phi, bridge.log_phi_hat):
                write_time_series(field, folder.path)
        _figures(bridge, rho, folder.path, times, exact=exact, tol=options["tol"],
                 comm=comm, slice_z=cfg.slice_z)
        summary = _summary(cfg, problem, bridge, cost, errors,
                           merge_warnings(noted, messages, [times_note, exact_note]), exact,
                           times_record)
        summary["timings"] = {
            "setup_s": bridge.info["timings"].get("setup_s"),
            "solve_s": bridge.info["timings"]["total_s"],
            "output_s": time.perf_counter() - t_output,
            "total_s": time.perf_counter() - t_start,
        }
        final = folder.finish(summary, cfg)

    fe = summary["final_errors"]
    say(f"  results     {final}/")
    say(f"  mesh        {problem.domain!r}, {problem.ndofs} dofs (P{problem.degree})")
    say(f"  iterations  {bridge.iterations} ({bridge.mode} mode, "
        f"{'converged' if bridge.converged else 'NOT converged'}; tol {options['tol']:g})")
    say(f"  marginals   L1 error {_l1(fe['err0_L1'])} at t = 0, {_l1(fe['errT_L1'])} at t = T")
    if cost is not None:
        say(f"  KL cost     {cost['kinetic']:.6g} (kinetic) vs {cost['boundary']:.6g} "
            f"(boundary), relative gap {cost['relative_gap']:.1e}")
    if errors:
        worst = max(errors, key=lambda e: e["L1"])
        say(f"  exact       marginal L1 error ≤ {worst['L1']:.2e} (worst at t = "
            f"{worst['t']:g})")
    say(f"  wall time   {summary['timings']['total_s']:.2f} s")
    return 0


__all__ = ["add_parser", "command", "run_bridge"]
