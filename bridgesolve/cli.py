"""The ``bridgesolve`` command: solve the problem of a TOML config into a results folder.

Exit codes: 0 success; 2 invalid input (bad config, output folder in the way; nothing is
written); 1 unexpected failure; 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from bridgesolve import __version__
from bridgesolve._validate import BridgesolveInputError

CONFIG_HELP = """\
config sections (TOML; every key is checked, unknown keys are errors):
  [problem]         equation = "fokker-planck" (default) | "kolmogorov" | "hjb" | "hjb-forward"
                    | "bridge" (Schrödinger bridge: see `bridgesolve bridge --help`)
  [domain]          type = "interval" | "box" with lower, upper, cells (box: 1D/2D/3D),
                    "disk" with radius, h[, center], or "gmsh" with path (.msh/.geo;
                    looked up next to the config, in the working directory, then meshes/)
  [process]         type (any case) = "VP" (beta_min, beta_max, T) | "SubVP" (same) |
                    "VE" (sigma_min, sigma_max, T) | "OU" (theta, sigma, mean) |
                    "Brownian" (sigma); omitted parameters take the class defaults
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
                    boundary = "reflecting" | "absorbing"
  [output]          directory (default results/<config name>), plot_times (in [0, T];
                    default 0, T/10, 3T/10, T), vtx = true
  [convergence]     for `bridgesolve convergence` only: refine = "h" | "p" | "dt" | "hdt",
                    levels = 3, reference = "auto" | "exact" | "finest", generated = [h, ...]

results folder: <field>.bp (ParaView time series; the field is "density" for
fokker-planck, "phi", "S" or "S_hat" otherwise), summary.json (problem, config, errors
against the exact solution where one exists, mass, timings, versions), <field>.png and
mass.png or newton.png, and config.toml (the config used). It appears only when the run
succeeds; a failed run leaves nothing.

exit codes: 0 success, 2 invalid input (nothing written), 1 unexpected failure.
examples: bridgesolve run; bridgesolve run examples/kolmogorov_killing.toml -o out/k;
          mpiexec -n 4 bridgesolve run my.toml --overwrite"""

#: equation -> (solver name in bridgesolve, field name: file stem, plot label)
EQUATIONS = {
    "fokker-planck": ("solve_fokker_planck", "density", "p"),
    "kolmogorov": ("solve_kolmogorov", "phi", "φ"),
    "hjb": ("solve_hjb", "S", "S = log φ"),
    "hjb-forward": ("solve_hjb_forward", "S_hat", "Ŝ = log φ̂"),
}


def _parser() -> argparse.ArgumentParser:
    description = ("Finite-element Fokker-Planck, Kolmogorov and HJB solvers (DOLFINx): "
                   "ground truth for diffusion models and Schrödinger bridges.")
    ap = argparse.ArgumentParser(prog="bridgesolve", description=description,
                                 epilog=CONFIG_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"bridgesolve {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="solve the problem of a config file (or the embedded default example)",
        description="Solve the problem described by CONFIG (TOML) and write a results "
                    "folder. Without CONFIG, run the embedded default example: a 2D "
                    "two-component Gaussian mixture under the VP SDE on [-5, 5]^2. Runs "
                    "under `mpiexec -n N` too.",
        epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("config", nargs="?", type=Path,
                     help="TOML config file (default: the embedded example)")
    run.add_argument("-o", "--output", type=Path, metavar="DIR",
                     help="results folder (default: [output] directory of the config)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing results folder (only once the run succeeds)")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bar and no summary on stdout (warnings and errors "
                          "still go to stderr)")
    run.add_argument("--no-vtx", action="store_true",
                     help="skip the ParaView time series (figures and summary only)")
    from bridgesolve.studies import add_parser as add_convergence_parser

    add_convergence_parser(sub)
    from bridgesolve.learn._cli import add_subcommands as add_learn_parsers

    add_learn_parsers(sub)  # train, validate (torch is imported only when they run)
    from bridgesolve._bridge_cli import add_parser as add_bridge_parser

    add_bridge_parser(sub)
    from bridgesolve._reference_cli import add_parsers as add_reference_parsers

    add_reference_parsers(sub)  # reference, likelihood
    return ap


def _exact(cfg, process, data, killing):
    """``t -> (points -> values)`` of the exact solution, or None when there is none.

    Linear processes keep Gaussian mixtures Gaussian; a constant killing rate only scales
    the solution by ``exp(V t)`` (forward) or ``exp(V (T - t))`` (backward).
    """
    from bridgesolve.densities import GaussianMixture

    if not process.linear or not (killing is None or isinstance(killing, float)):
        return None
    V = killing or 0.0
    T = cfg.T
    if cfg.equation == "fokker-planck" and isinstance(data, GaussianMixture):
        return lambda t: (lambda x: math.exp(V * t) * data.evolve(process, t).pdf(x))
    if cfg.equation == "hjb-forward" and isinstance(data, GaussianMixture):
        return lambda t: (lambda x: V * t + data.evolve(process, t).log_pdf(x))
    if cfg.equation == "kolmogorov":
        return lambda t: (lambda x: math.exp(V * (T - t))
                          * data.backward_expectation(process, t, T).pdf(x))
    if cfg.equation == "hjb":
        return lambda t: (lambda x: V * (T - t)
                          + data.backward_expectation(process, t, T).log_pdf(x))
    return None


def _grid_times(grid, times) -> list[float]:
    """Each requested time moved to the nearest grid level (errors are taken at levels)."""
    return sorted({float(grid.times[np.argmin(np.abs(grid.times - t))]) for t in times})


def _errors(field, exact, times) -> list[dict]:
    """L2 and max-norm errors against the exact solution (collective)."""
    return [{"t": t, "L2": field.error(exact(t), t), "Linf": field.error(exact(t), t,
                                                                         norm="Linf")}
            for t in times]


def _solve(cfg, problem, data, killing, *, name: str, quiet: bool, comm):
    """Run the equation's solver; warnings (e.g. mass outside the domain) are shown once,
    as ``bridgesolve: warning:`` lines after the progress bar, and returned for the summary."""
    import bridgesolve as bs

    solver = getattr(bs, EQUATIONS[cfg.equation][0])
    with warnings.catch_warnings(record=True) as caught:
        field = solver(problem, data, killing=killing, progress=not quiet, name=name)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    if comm.rank == 0:
        for message in messages:
            print(f"bridgesolve: warning: {message}", file=sys.stderr)
    return field, messages


def _mass(field) -> dict | None:
    """Mass at 0 and T, its largest drift and the initial mass outside Ω (Fokker–Planck)."""
    if "mass" not in field.info:
        return None
    series = np.asarray(field.info["mass"])
    return {"initial": series[0], "final": series[-1],
            "max_drift": np.max(np.abs(series - series[0])),
            "outside_initial": field.info.get("mass_outside_initial"), "series": series}


def _figures(field, folder: Path, times, *, label: str, exact, mass, comm) -> None:
    """``<field>.png`` at the plot times (collective), and ``mass.png`` or ``newton.png``."""
    from bridgesolve.plotting import plot_field_panels, plot_series

    plot_field_panels(field, times, folder / f"{field.name}.png", label=label, exact=exact)
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


def run(args: argparse.Namespace) -> int:
    """``bridgesolve run``: validate, solve, write the results folder, print a summary."""
    from bridgesolve._dolfinx import MPI
    from bridgesolve.config import load_config
    from bridgesolve.io import ResultsFolder, write_time_series

    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 and not args.quiet else (lambda *a, **k: None)
    t_start = time.perf_counter()
    # Everything that can be wrong with the input fails here, before anything is written.
    cfg = load_config(args.config)
    if cfg.equation == "bridge":  # the same code as `bridgesolve bridge`
        from bridgesolve._bridge_cli import run_bridge

        return run_bridge(args, cfg)
    folder = ResultsFolder(args.output or cfg.output_dir, overwrite=args.overwrite, comm=comm)
    problem, data, killing = cfg.build(comm)
    _, field_name, label = EQUATIONS[cfg.equation]
    grid = problem.grid
    say(f"bridgesolve: {cfg.equation} ({cfg.source}): {problem.ndofs} dofs, {grid.steps} "
        f"steps, P{problem.degree}, {problem.scheme}")

    with folder:
        field, messages = _solve(cfg, problem, data, killing, name=field_name,
                                 quiet=args.quiet, comm=comm)
        t_output = time.perf_counter()
        plot_times = _grid_times(grid, cfg.plot_times)
        report_time = grid.T if cfg.forward else 0.0  # where the solver ends
        exact = _exact(cfg, problem.process, data, killing)
        errors = _errors(field, exact, sorted({*plot_times, report_time})) if exact else []
        final_error = next((e for e in errors if e["t"] == report_time), None)
        mass = _mass(field)
        if cfg.vtx and not args.no_vtx:
            write_time_series(field, folder.path)
        _figures(field, folder.path, plot_times, label=label, exact=exact, mass=mass, comm=comm)
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
            "solver": {k: v for k, v in field.info.items() if k not in ("mass", "timings")},
            "warnings": messages,
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bridgesolve`` command; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "convergence":
            from bridgesolve.studies import run_cli

            return run_cli(args)
        if args.command == "bridge":
            from bridgesolve._bridge_cli import run_cli as bridge_cli

            return bridge_cli(args)
        if args.command in ("reference", "likelihood"):
            from bridgesolve import _reference_cli

            return getattr(_reference_cli, f"{args.command}_command")(args)
        if args.command in ("train", "validate"):
            from bridgesolve.learn import _cli as learn_cli

            return getattr(learn_cli, f"{args.command}_command")(args)
        return run(args)
    except BridgesolveInputError as exc:
        if _rank() == 0:
            print(f"bridgesolve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "convergence":
            print("bridgesolve: interrupted; finished levels are checkpointed: rerun with "
                  "--resume to continue", file=sys.stderr)
        else:
            print("bridgesolve: interrupted; no results folder was written", file=sys.stderr)
        return 130
    except ImportError as exc:  # no (or a too old) DOLFINx: its message says what to do
        print(f"bridgesolve: error: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"bridgesolve: unexpected failure (rank {_rank()}); no results folder was "
              "written", file=sys.stderr)
        _abort_other_ranks()
        return 1


def _rank() -> int:
    try:
        from bridgesolve._dolfinx import MPI
    except ImportError:  # a torch-only host running train/validate: no MPI
        return 0
    return MPI.COMM_WORLD.rank


def _abort_other_ranks() -> None:
    """Under MPI a failure may hit some ranks only, leaving the others blocked in a
    collective call forever: abort the whole job instead (exit code 1)."""
    from bridgesolve._dolfinx import MPI

    if MPI.COMM_WORLD.size > 1:
        MPI.COMM_WORLD.Abort(1)


if __name__ == "__main__":
    sys.exit(main())
