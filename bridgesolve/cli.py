"""The ``bridgesolve`` command."""

from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from bridgesolve import __version__

CONFIG_HELP = """\
config sections (TOML; every key is checked, unknown keys are errors):
  [problem]         equation = "fokker-planck" (default) | "kolmogorov" | "hjb" | "hjb-forward"
  [domain]          type = "box" with lower, upper, cells (1D/2D/3D; "interval" alike),
                    "disk" with radius, h[, center], or "gmsh" with path (.msh/.geo;
                    looked up next to the config, then in meshes/)
  [process]         type = "VP" (beta_min, beta_max, T) | "SubVP" (same) |
                    "VE" (sigma_min, sigma_max, T) | "OU" (theta, sigma, mean) |
                    "Brownian" (sigma)
  [initial]         forward equations: type = "gaussian_mixture", weights, means, covs
                    (covs: (K,d,d) matrices, (K,d) diagonals or (K,) variances)
  [terminal]        backward equations: a gaussian_mixture as above, or
                    type = "gaussian_bump", center, width  (exp(-|x-c|^2 / (2 width^2)))
  [killing]         optional V(x) = constant + quadratic * |x|^2 (V > 0 creates mass)
  [time]            T, steps, spacing = "clock" (default: uniform in the process clock,
                    one factorization) | "uniform" | "graded" (power, near = "start"|"end")
  [discretization]  degree (1), scheme = "crank-nicolson" | "backward-euler",
                    boundary = "reflecting" | "absorbing"
  [output]          directory, plot_times (list in [0, T]), vtx (true)

results folder: <name>.bp (ParaView time series), summary.json (problem, discretization,
errors against the exact solution when one exists, mass, timings, versions), PNG figures,
and the config used. It appears only when the run succeeds.

exit codes: 0 success, 2 invalid input (nothing written), 1 unexpected failure.
See examples/*.toml."""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bridgesolve",
        description="Finite-element Fokker-Planck, Kolmogorov and HJB solvers: ground truth "
                    "for diffusion models and Schrödinger bridges.",
    )
    ap.add_argument("--version", action="version", version=f"bridgesolve {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="solve the problem of a config file (or the embedded default)",
        description="Solve the problem described by CONFIG (TOML) and write a results "
                    "folder. Without CONFIG, runs the embedded default: a 2D two-component "
                    "Gaussian mixture under the VP SDE on [-5, 5]^2. Runs under "
                    "`mpiexec -n N` too.",
        epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("config", nargs="?", type=Path,
                     help="TOML config file (default: the embedded example)")
    run.add_argument("-o", "--output", type=Path,
                     help="results folder (default: [output] directory of the config)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing results folder (only once the run succeeds)")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bar and no summary on stdout")
    run.add_argument("--no-vtx", action="store_true",
                     help="skip the ParaView time series (figures and summary only)")
    return ap


def _exact(cfg, process, data, killing):
    """``t -> callable(points)`` of the exact solution, or None when there is none."""
    from bridgesolve.densities import GaussianMixture

    if not process.linear or not (killing is None or isinstance(killing, float)):
        return None
    V = killing or 0.0
    T = float(cfg.raw["time"]["T"])
    eq = cfg.equation
    if eq in ("fokker-planck", "hjb-forward") and isinstance(data, GaussianMixture):
        if eq == "fokker-planck":
            return lambda t: (lambda x: math.exp(V * t) * data.evolve(process, t).pdf(x))
        return lambda t: (lambda x: V * t + data.evolve(process, t).log_pdf(x))
    if eq == "kolmogorov":
        return lambda t: (lambda x: math.exp(V * (T - t))
                          * data.backward_expectation(process, t, T).pdf(x))
    if eq == "hjb":
        return lambda t: (lambda x: V * (T - t)
                          + data.backward_expectation(process, t, T).log_pdf(x))
    return None


def _solve(cfg, prob, data, killing, progress: bool):
    import bridgesolve as bs

    solver = {
        "fokker-planck": bs.solve_fokker_planck,
        "kolmogorov": bs.solve_kolmogorov,
        "hjb": bs.solve_hjb,
        "hjb-forward": bs.solve_hjb_forward,
    }[cfg.equation]
    return solver(prob, data, killing=killing, progress=progress)


LABELS = {"fokker-planck": "p", "kolmogorov": "φ", "hjb": "S = log φ",
          "hjb-forward": "Ŝ = log p"}


def run(args) -> int:
    from bridgesolve._dolfinx import MPI, versions
    from bridgesolve.config import load_config
    from bridgesolve.io import ResultsFolder, write_time_series
    from bridgesolve.plotting import plot_field_panels, plot_series

    comm = MPI.COMM_WORLD
    say = print if (comm.rank == 0 and not args.quiet) else (lambda *a, **k: None)
    t_start = time.perf_counter()
    cfg = load_config(args.config)
    out = args.output or cfg.output_dir()
    prob, data, killing = cfg.build()
    folder = ResultsFolder(out, overwrite=args.overwrite, comm=comm)
    say(f"bridgesolve: {cfg.equation} on {prob.domain!r}, {prob.ndofs} dofs, "
        f"{prob.grid.steps} steps, P{prob.degree}, {prob.scheme} ({cfg.source})")

    with folder:
        field = _solve(cfg, prob, data, killing, progress=not args.quiet)
        t_out = time.perf_counter()
        grid = prob.grid
        plot_times = sorted({float(grid.times[np.argmin(abs(grid.times - t))])
                             for t in cfg.plot_times()})
        exact = _exact(cfg, prob.process, data, killing)
        backward = cfg.equation in ("kolmogorov", "hjb")
        t_report = 0.0 if backward else grid.T
        errors = {}
        if exact is not None:
            for t in sorted({*plot_times, t_report}):
                errors[f"{t:.6g}"] = {"L2": field.error(exact(t), t),
                                      "Linf": field.error(exact(t), t, norm="Linf")}
        if not (args.no_vtx or not cfg.raw.get("output", {}).get("vtx", True)):
            write_time_series(field, folder.path)
        label = LABELS[cfg.equation]
        plot_field_panels(field, plot_times, folder.path / f"{field.name}.png", label=label,
                          exact=exact)
        info = {k: v for k, v in field.info.items() if k != "timings"}
        summary = {
            "bridgesolve": __version__,
            "config_source": cfg.source,
            "equation": cfg.equation,
            **prob.describe(),
            "data": data.describe() if hasattr(data, "describe") else repr(data),
            "exact_solution": exact is not None,
            "errors": errors,
            "error_at_report_time": errors.get(f"{t_report:.6g}"),
            "solver_info": info,
            "versions": versions(),
            "mpi_size": comm.size,
        }
        if "mass" in field.info:
            mass = np.asarray(field.info["mass"])
            summary["mass"] = {"initial": float(mass[0]), "final": float(mass[-1]),
                               "max_drift": float(np.max(np.abs(mass - mass[0])))}
            if comm.rank == 0:
                plot_series(grid.times, {"∫ p dx": mass}, folder.path / "mass.png",
                            xlabel="t", ylabel="mass")
        if "newton_iterations" in field.info and comm.rank == 0:
            plot_series(grid.times[1:], {"Newton iterations": field.info["newton_iterations"]},
                        folder.path / "newton.png", xlabel="t", ylabel="iterations")
        summary["timings"] = {**field.info["timings"],
                              "output_s": time.perf_counter() - t_out,
                              "wall_s": time.perf_counter() - t_start}
        folder.write_json("summary.json", summary)
        folder.write_text("config.toml", _config_text(cfg))
        final = folder.commit()

    say(f"  results      {final}/")
    if exact is not None:
        say(f"  L2 error     {errors[f'{t_report:.6g}']['L2']:.3e} at t = {t_report:g} "
            "(exact solution)")
    if "mass" in summary:
        say(f"  mass drift   {summary['mass']['max_drift']:.1e}")
    say(f"  wall time    {summary['timings']['wall_s']:.2f} s")
    return 0


def _config_text(cfg) -> str:
    if cfg.source.startswith("<"):
        from importlib import resources

        return resources.files("bridgesolve").joinpath("data/default.toml").read_text()
    return Path(cfg.source).read_text()


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 0
    from bridgesolve._validate import BridgesolveInputError

    try:
        return run(args)
    except (BridgesolveInputError, tomllib.TOMLDecodeError) as exc:
        print(f"bridgesolve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bridgesolve: interrupted; no results folder was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
