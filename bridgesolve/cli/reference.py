"""``bridgesolve reference``: solve a Fokker–Planck (or bridge) config and write its
:class:`~bridgesolve.reference.ReferenceBundle` (.npz)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.cli._common import (
    RAW,
    captured_warnings,
    input_warnings,
    merge_warnings,
    sayer,
    warn_line,
    world,
)

REFERENCE_HELP = """\
The config is a `bridgesolve run` config with equation = "fokker-planck" (the default) or
"bridge" (with [final] and [bridge]; see `bridgesolve bridge --help`).

bundle (.npz, schema bridgesolve.reference/1; read it with NumPy only, e.g.
`bridgesolve.reference.ReferenceBundle.load(path)` or `np.load(path)`):
  points (N,d), weights (N,)     quadrature of the mesh (all ranks gathered)
  times (nt+1,)                  the time grid
  density, log_density (nt+1,N)  p and log p at the points
  score (nt+1,N,d)               grad log p
  log_phi, log_phi_hat, grad_log_phi, grad_log_phi_hat   bridges only
  score_error_estimate (nt+1,)   the bundle's own score error E_p|s_ref - grad log p|^2
                                 per level (closed form or one degree higher; absent, with
                                 the reason in metadata, when it cannot be estimated)
  metadata                       JSON: kind, process, data, domain, discretization, versions
fields are stored float32 and compressed by default (--dtype float64, --no-compress).

exit codes: 0 success, 2 invalid input (nothing written), 1 unexpected failure.
examples: bridgesolve reference examples/default.toml -o ref.npz
          mpiexec -n 4 bridgesolve reference my.toml -o ref.npz --overwrite"""


def add_parser(sub) -> None:
    """Register ``reference`` on the argparse sub-parsers ``sub``."""
    ref = sub.add_parser(
        "reference", help="solve a config and write its reference bundle (.npz)",
        description="Solve the Fokker-Planck equation (or Schrödinger bridge) of CONFIG and "
                    "write a reference bundle: quadrature points and weights of the mesh, "
                    "the time grid, and density, log-density and score at every level, in "
                    "one framework-free .npz (loading it needs only NumPy). Runs under "
                    "`mpiexec -n N`; rank 0 writes the gathered bundle.",
        epilog=REFERENCE_HELP, formatter_class=RAW)
    ref.add_argument("config", type=Path, help="TOML config file")
    ref.add_argument("-o", "--output", type=Path, metavar="FILE.npz",
                     help="bundle path (default: <[output] directory>/reference.npz)")
    ref.add_argument("--degree", type=int, metavar="Q",
                     help="quadrature degree of the points (default 2k+2 for P_k)")
    ref.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                     help="storage precision of the fields (default float32: half the size; "
                          "points, weights and times stay float64)")
    ref.add_argument("--no-compress", action="store_true",
                     help="write an uncompressed .npz (faster to write, about twice the size)")
    ref.add_argument("--error-estimate", default="auto",
                     choices=("auto", "closed-form", "higher-degree", "none"),
                     help="how the bundle's own score error is estimated (default auto: the "
                          "closed form where the data allow, else one degree higher up to "
                          "1e5 dofs)")
    ref.add_argument("--fields", default="finite-element", choices=("finite-element", "exact"),
                     help="where the fields come from: the FE solve (default), or the exact "
                          "formulas of the data under a linear process (no PDE; the mesh "
                          "gives only the quadrature points; metadata['fields'] says which)")
    ref.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    ref.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    ref.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """``bridgesolve reference CONFIG -o FILE.npz``."""
    from bridgesolve.config import ConfigError, load_config

    comm = world()
    say = sayer(comm.rank, args.quiet)
    t_start = time.perf_counter()
    noted: list[str] = []  # shown at once; recorded in the bundle's metadata
    with input_warnings(noted, comm.rank):
        cfg = load_config(args.config)
    if cfg.equation not in ("fokker-planck", "bridge"):
        raise ConfigError(f"[problem] equation = {cfg.equation!r}: reference bundles are made "
                          "from 'fokker-planck' or 'bridge' configs")
    out = Path(args.output) if args.output else cfg.output_dir / "reference.npz"
    if out.suffix != ".npz":
        raise BridgesolveInputError(f"output {str(out)!r}: expected a .npz file")
    exists = comm.bcast(out.exists() if comm.rank == 0 else None, root=0)
    if exists and not args.overwrite:
        raise BridgesolveInputError(f"output {str(out)!r} exists: pass --overwrite to replace it")
    if exists and comm.bcast(out.is_dir() if comm.rank == 0 else None, root=0):
        raise BridgesolveInputError(f"output {str(out)!r} is a folder: expected a .npz file")
    if args.degree is not None and args.degree < 1:
        raise BridgesolveInputError(f"--degree {args.degree}: expected a positive integer")
    with input_warnings(noted, comm.rank):
        problem, data, killing = cfg.build(comm)
    say(f"bridgesolve: reference ({cfg.equation}, {cfg.source}): {problem.ndofs} dofs, "
        f"{problem.grid.steps} steps, P{problem.degree}")
    info = {"config_source": cfg.source, "config": cfg.as_dict()}
    if args.fields == "exact":
        bundle = _exact(cfg, problem, data, killing, args, info, noted, out, comm)
    else:
        bundle = _solved(cfg, problem, data, killing, args, info, noted, out, comm)
    if bundle is not None:
        size = out.stat().st_size / 2**20
        say(f"  fields      {bundle.metadata.get('fields')} "
            f"(score error estimate: {bundle.metadata['score_error_estimate'].get('method')})")
        say(f"  wrote       {size:.1f} MiB to {out} (schema {bundle.metadata['schema']})")
        say(f"  points      {bundle.points.shape[0]} in {bundle.dim}D (quadrature degree "
            f"{bundle.metadata['discretization']['quadrature_degree']}), "
            f"{bundle.times.size} time levels")
        mass = bundle.integrate(bundle.density)
        say(f"  mass        {mass[0]:.8f} at t = 0, {mass[-1]:.8f} at t = {bundle.T:g}")
        say(f"  wall time   {time.perf_counter() - t_start:.2f} s")
    return 0


def _exact(cfg, problem, data, killing, args, info, noted, out, comm):
    """The bundle from the exact formulas (no PDE), written by rank 0."""
    from bridgesolve.reference.bundle import write_on_root
    from bridgesolve.reference.exact import exact_bundle

    if cfg.equation != "fokker-planck" or killing is not None:
        raise BridgesolveInputError(
            "--fields exact: the exact formulas cover the Fokker-Planck equation without "
            f"killing (this config: equation {cfg.equation!r}"
            f"{', with killing' if killing is not None else ''}); use --fields finite-element")
    with captured_warnings() as messages:
        bundle = exact_bundle(problem, data, degree=args.degree, info=info)
    for message in messages:
        warn_line(message, comm.rank)
    if bundle is not None:
        bundle.metadata["info"]["warnings"] = merge_warnings(noted, messages)
    write_on_root(bundle, out, comm, dtype=args.dtype, compress=not args.no_compress)
    return bundle


def _solved(cfg, problem, data, killing, args, info, noted, out, comm):
    """The bundle of the FE solve, written by rank 0."""
    from bridgesolve.reference import save_reference

    with captured_warnings() as messages:  # shown as one line each, after the progress bar
        if cfg.equation == "bridge":
            from bridgesolve.bridge import solve_bridge

            source = solve_bridge(problem, data, cfg.final, killing=killing,
                                  progress=not args.quiet, **cfg.bridge_options)
        else:
            import bridgesolve as bs

            source = bs.solve_fokker_planck(problem, data, killing=killing,
                                            progress=not args.quiet, **cfg.solver_options)
    for message in messages:
        warn_line(message, comm.rank)
    info["warnings"] = merge_warnings(noted, messages)
    final = cfg.final if cfg.equation == "bridge" else None
    bundle = save_reference(source, out, problem=problem, data=data, final=final,
                            degree=args.degree, info=info, dtype=args.dtype,
                            compress=not args.no_compress,
                            error_estimate=args.error_estimate)
    return bundle


