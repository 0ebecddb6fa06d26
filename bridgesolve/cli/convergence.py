"""``bridgesolve convergence``: a study (or a sweep of several configs) into results folders."""

from __future__ import annotations

import time
from pathlib import Path

from bridgesolve._folders import atomic_write
from bridgesolve._validate import BridgesolveInputError
from bridgesolve._vocab import REFERENCES, REFINEMENTS
from bridgesolve.cli._common import RAW, sayer, world

CLI_HELP = """\
Each level halves h (refine h: cells x2; disk meshes h/2; gmsh meshes refined uniformly),
halves dt (refine dt: steps x2), does both (hdt) or raises the degree by one (p).
Errors are measured at T (forward equations), t = 0 (backward ones) or T/2 (bridges)
against the exact solution when one exists, else against the finest level (the output
says which): the field in L2, L1 and Linf, the p-weighted score error (forward equations,
bridges), a bridge's KL cost by both formulas, and with [convergence] generated = [h, ...]
(Fokker-Planck) KL(rho0 || q_h) of generated densities.
Options not given come from the config's [convergence] section (refine, levels,
reference, generated), else refine = h, levels = 3, reference = auto.

results folder: convergence.txt (the table), convergence.csv, convergence.json (levels,
errors, observed and fitted orders, timings, DoFs), convergence.png (log-log with
reference slopes), config.toml, checkpoints/ (one file per finished level: --resume
continues an interrupted or extended study without redoing finished levels).
Several configs: one sub-folder per config; --groups G splits the ranks into G groups,
each running its share of the configs with its solves distributed over the group.

examples: bridgesolve convergence examples/convergence_fp_h.toml --levels 4
          mpiexec -n 2 bridgesolve convergence a.toml b.toml --groups 2 -o results/sweep"""


def add_parser(sub) -> None:
    """The ``convergence`` subcommand of ``bridgesolve`` (argparse sub-parsers ``sub``)."""
    ap = sub.add_parser(
        "convergence", help="convergence study: a ladder of refinements, errors, orders",
        description="Solve the problem of CONFIG on a ladder of refinements and report "
                    "errors, observed orders, timings and DoFs per level (table, CSV, JSON, "
                    "log-log figure). Runs under `mpiexec -n N` (distributed solves).",
        epilog=CLI_HELP, formatter_class=RAW)
    ap.add_argument("configs", nargs="+", type=Path, metavar="CONFIG",
                    help="TOML config file(s); several make a sweep")
    ap.add_argument("--refine", choices=REFINEMENTS, help="what each level refines")
    ap.add_argument("--levels", type=int, metavar="N", help="number of levels (>= 2)")
    ap.add_argument("--reference", choices=REFERENCES,
                    help="exact solution, finest level, or auto (exact when there is one)")
    ap.add_argument("-o", "--output", type=Path, metavar="DIR",
                    help="results folder (default: results/convergence/<config name>)")
    ap.add_argument("--resume", action="store_true",
                    help="continue a study in DIR, reusing its finished levels")
    ap.add_argument("--overwrite", action="store_true",
                    help="discard an earlier study in DIR and start again")
    ap.add_argument("--groups", type=int, metavar="G",
                    help="split the ranks into G groups for several configs (default 1)")
    ap.add_argument("--quiet", action="store_true", help="no progress and no table on stdout")
    ap.set_defaults(handler=command)


def command(args) -> int:
    """``bridgesolve convergence``: study (or sweep), write the results, print the table."""
    from bridgesolve.config import load_config
    from bridgesolve.studies import convergence_study, prepare_folder, study_options, sweep
    from bridgesolve.studies.sweeps import study_names

    comm = world()
    say = sayer(comm.rank, args.quiet)
    # Input errors before any output.
    cfgs = [load_config(path) for path in args.configs]
    options = {"refine": args.refine, "levels": args.levels, "reference": args.reference}
    for cfg in cfgs:
        study_options(cfg, **options)
    if args.groups is not None and not 1 <= args.groups <= comm.size:
        raise BridgesolveInputError(f"--groups {args.groups}: expected 1 to the number of "
                                    f"ranks ({comm.size})")
    if len(cfgs) == 1:
        if args.groups not in (None, 1):
            raise BridgesolveInputError(f"--groups {args.groups}: a single config runs on "
                                        "one group; give several configs to sweep")
        cfg = cfgs[0]
        folder = prepare_folder(args.output or Path("results/convergence") /
                                study_names(cfgs)[0], resume=args.resume,
                                overwrite=args.overwrite, comm=comm)
        study = convergence_study(cfg, comm=comm, output=folder, resume=args.resume,
                                  progress=not args.quiet, log=None if not args.quiet
                                  else False, **options)
        if comm.rank == 0:
            study.write(folder)
            atomic_write(folder / "config.toml", cfg.text)
        comm.barrier()  # the files exist for every rank once the command returns
        say(study.table())
        say(f"results: {folder}/ (convergence.txt, .csv, .json, .png; checkpoints/)")
        return 0
    base = args.output or Path("results/convergence")
    t0 = time.perf_counter()
    studies = sweep(cfgs, groups=args.groups or 1, comm=comm, output=base,
                    resume=args.resume, overwrite=args.overwrite,
                    progress=False, **options)
    if studies is not None:  # rank 0
        for name, study in zip(study_names(cfgs), studies, strict=True):
            say(f"== {name}")
            say(study.table())
        say(f"results: {base}/<config name>/ ({len(cfgs)} studies, "
            f"{time.perf_counter() - t0:.1f} s)")
    return 0
