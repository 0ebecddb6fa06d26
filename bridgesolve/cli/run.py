"""``bridgesolve run``: solve the problem of a TOML config into a results folder."""

from __future__ import annotations

import argparse
import time
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

CONFIG_HELP = """\
config sections (TOML; every key is checked, unknown keys are errors):
  [problem]         equation = "fokker-planck" (default) | "kolmogorov" | "hjb" | "hjb-forward"
                    | "bridge" (Schrödinger bridge: see `bridgesolve bridge --help`)
  [domain]          type = "interval" | "box" with lower, upper, cells (box: 1D/2D/3D),
                    "disk" with radius, h[, center], or "gmsh" with path (.msh/.geo;
                    looked up next to the config, in the working directory, then meshes/)
  [process]         type (any case) = "VP" (beta_min, beta_max, T) | "SubVP" (same) |
                    "VE" (sigma_min, sigma_max, T) | "Cosine" (T, below 1) |
                    "OU" (theta, sigma, mean) | "Brownian" (sigma) | "Tabulated" (a
                    discrete schedule ᾱ_k: alphas_cumprod = [...], or scheduler_config =
                    a diffusers scheduler_config.json next to the config; times = [...],
                    default (k + 1)/N; [time] T up to the last); omitted parameters take
                    the class defaults
  [initial]         forward equations: type = "gaussian_mixture", weights, means, covs
                    (covs: (K,d,d) matrices, (K,d) diagonals or (K,) variances)
  [terminal]        backward equations: a gaussian_mixture as above, or
                    type = "gaussian_bump", center, width  (exp(-|x-c|^2 / (2 width^2)))
  [final]           bridge only: ρ1 at t = T, a gaussian_mixture ([initial] is ρ0)
  [bridge]          bridge only: tol, max_iter, mode = "auto" | "linear" | "log", acceleration
  [killing]         optional V(x) = constant + quadratic * |x|^2 (V > 0 creates mass)
  [time]            T, steps, spacing = "clock" (default: uniform in the process clock,
                    one factorization) | "uniform" | "graded" (power = 2, near = "start"|"end")
  [discretization]  degree = 1, scheme = "crank-nicolson" | "backward-euler",
                    boundary = "reflecting" | "absorbing", storage = "auto" | "memory" |
                    "disk" (time levels in memory-mapped files), storage_dir, memory_budget
                    (e.g. "4 GiB": auto stores a larger field on disk)
  [output]          directory (default results/<config name>), plot_times (in [0, T];
                    default 0, T/10, 3T/10, T; moved to the nearest time level, with a
                    warning for times you set), vtx = true
  [convergence]     for `bridgesolve convergence` only: refine = "h" | "p" | "dt" | "hdt",
                    levels = 3, reference = "auto" | "exact" | "finest", generated = [h, ...]

results folder: <field>.bp (ParaView time series; the field is "density" for
fokker-planck, "phi", "S" or "S_hat" otherwise), summary.json (problem, config, errors
against the exact solution where one exists, mass, timings, versions, and every warning
printed as a `bridgesolve: warning:` line), <field>.png and mass.png or newton.png, and
config.toml (the config used). It appears only when the run succeeds; a failed run leaves
nothing.

exit codes: 0 success, 2 invalid input (nothing written), 1 unexpected failure.
examples: bridgesolve run; bridgesolve run examples/kolmogorov_killing.toml -o out/k;
          mpiexec -n 4 bridgesolve run my.toml --overwrite"""


def add_parser(sub) -> None:
    """The ``run`` subcommand (argparse sub-parsers ``sub``)."""
    ap = sub.add_parser(
        "run", help="solve the problem of a config file (or the embedded default example)",
        description="Solve the problem described by CONFIG (TOML) and write a results "
                    "folder. Without CONFIG, run the embedded default example: a 2D "
                    "two-component Gaussian mixture under the VP SDE on [-5, 5]^2. Runs "
                    "under `mpiexec -n N` too.",
        epilog=CONFIG_HELP, formatter_class=RAW)
    ap.add_argument("config", nargs="?", type=Path,
                    help="TOML config file (default: the embedded example)")
    add_output_options(ap)
    ap.set_defaults(handler=command)


def _errors(field, exact, times) -> list[dict]:
    """L2 and max-norm errors against the exact solution (collective)."""
    return [{"t": t, "L2": field.error(exact(t), t),
             "Linf": field.error(exact(t), t, norm="Linf")} for t in times]


def _mass(field) -> dict | None:
    """Mass at 0 and T, its largest drift and the initial mass outside Ω (Fokker–Planck)."""
    if "mass" not in field.info:
        return None
    series = np.asarray(field.info["mass"])
    return {"initial": series[0], "final": series[-1],
            "max_drift": np.max(np.abs(series - series[0])),
            "outside_initial": field.info.get("mass_outside_initial"), "series": series}


def _figures(field, folder: Path, times, *, label: str, exact, mass, comm,
             slice_z: float | None = None) -> None:
    """``<field>.png`` at the plot times (collective), and ``mass.png`` or ``newton.png``."""
    from bridgesolve.plotting import plot_field_panels, plot_series

    plot_field_panels(field, times, folder / f"{field.name}.png", label=label, exact=exact,
                      slice_z=slice_z)
    if comm.rank != 0:
        return
    t = field.times
    if mass is not None:
        # The drift, not the mass itself: conserved to round-off, the mass would plot as a
        # flat line under an unreadable axis offset.
        plot_series(t, {f"∫ {label}(t) dx - ∫ {label}(0) dx": mass["series"] - mass["initial"]},
                    folder / "mass.png", xlabel="t", ylabel="mass change",
                    title=f"mass at t = 0: {mass['initial']:.12g}")
    if "newton_iterations" in field.info:
        plot_series(t[1:], {"Newton iterations": field.info["newton_iterations"]},
                    folder / "newton.png", xlabel="t", ylabel="iterations")


def command(args: argparse.Namespace) -> int:
    """``bridgesolve run``: validate, solve, write the results folder, print a summary."""
    import bridgesolve as bs
    from bridgesolve.config import load_config
    from bridgesolve.io import ResultsFolder, write_time_series

    comm = world()
    say = sayer(comm.rank, args.quiet)
    t_start = time.perf_counter()
    # Everything that can be wrong with the input fails here, before anything is written;
    # what is only doubtful (weights normalized, ...) is shown and kept for summary.json.
    noted: list[str] = []
    with input_warnings(noted, comm.rank):
        cfg = load_config(args.config)
    if cfg.equation == "bridge":  # the same code as `bridgesolve bridge`
        from bridgesolve.cli.bridge import run_bridge

        return run_bridge(args, cfg, noted=noted)
    eq = cfg.record
    folder = ResultsFolder(args.output or cfg.output_dir, overwrite=args.overwrite, comm=comm)
    with input_warnings(noted, comm.rank):
        problem, data, killing = cfg.build(comm)
    grid = problem.grid
    say(f"bridgesolve: {cfg.equation} ({cfg.source}): {problem.ndofs} dofs, {grid.steps} "
        f"steps, P{problem.degree}, {problem.scheme}")

    with folder:
        with captured_warnings() as messages:  # e.g. mass outside the domain
            field = getattr(bs, eq.solver)(problem, data, killing=killing,
                                           progress=not args.quiet, name=eq.field,
                                           **cfg.solver_options)
        for message in messages:
            warn_line(message, comm.rank)
        t_output = time.perf_counter()
        times, times_record, times_note = plot_times(cfg, grid, comm.rank)
        report_time = eq.report_time(grid.T)  # where the solver ends
        exact = cfg.exact(problem.process, killing)
        errors = _errors(field, exact, sorted({*times, report_time})) if exact else []
        final_error = next((e for e in errors if e["t"] == report_time), None)
        mass = _mass(field)
        if cfg.vtx and not args.no_vtx:
            write_time_series(field, folder.path)
        _figures(field, folder.path, times, label=eq.label, exact=exact, mass=mass, comm=comm,
                 slice_z=cfg.slice_z)
        timings = field.info["timings"]
        summary = {
            "bridgesolve": __version__,
            "equation": cfg.equation,
            "config_source": cfg.source,
            "problem": problem.describe(),
            "data": data.describe() if hasattr(data, "describe") else cfg.raw[cfg.data_section],
            "exact_solution": exact is not None,
            "errors": errors,
            "error_at_report_time": final_error,
            "mass": mass,
            "plot_times": times_record,
            "solver": {k: v for k, v in field.info.items() if k not in ("mass", "timings")},
            "warnings": merge_warnings(noted, messages, [times_note]),
            "timings": {
                "setup_s": timings["setup_s"],
                "stepping_s": timings["stepping_s"],
                "solve_s": timings["total_s"],
                "output_s": time.perf_counter() - t_output,
                "total_s": time.perf_counter() - t_start,
            },
        }
        final = folder.finish(summary, cfg)

    work = (f"{field.info['factorizations']} factorization(s)" if "factorizations" in field.info
            else f"{sum(field.info.get('newton_iterations', []))} Newton iterations")
    say(f"  results     {final}/")
    say(f"  mesh        {problem.domain!r}, {problem.ndofs} dofs (P{problem.degree})")
    say(f"  steps       {grid.steps} ({cfg.raw['time'].get('spacing', 'clock')} spacing), {work}")
    if final_error is not None:
        say(f"  L2 error    {final_error['L2']:.3e} at t = {report_time:g} (exact solution)")
    if mass is not None:
        say(f"  mass drift  {mass['max_drift']:.1e} (max |mass(t) - mass(0)|)")
    say(f"  wall time   {summary['timings']['total_s']:.2f} s")
    return 0
