"""``bridgesolve convergence``: a study (or a sweep of several configs) into results folders."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bridgesolve._folders import atomic_write
from bridgesolve._json import jsonable
from bridgesolve._validate import BridgesolveInputError
from bridgesolve._vocab import REFERENCES, REFINEMENTS
from bridgesolve.cli._common import (
    RAW,
    captured_warnings,
    merge_warnings,
    sayer,
    warn_line,
    world,
)

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
errors, observed and fitted orders, timings, DoFs, warnings), convergence.png (log-log with
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
    # Input errors before any output; input warnings (weights normalized, ...) shown at
    # once and recorded in convergence.json.
    options = {"refine": args.refine, "levels": args.levels, "reference": args.reference}
    cfgs, noted = [], []
    for path in args.configs:
        with captured_warnings() as mine:  # shown below, with the study's name
            cfgs.append(load_config(path))
            study_options(cfgs[-1], **options)
        noted.append(mine)
    names = study_names(cfgs)
    for name, mine in zip(names, noted, strict=True):
        for message in mine:
            warn_line(f"{name}: {message}" if len(cfgs) > 1 else message, comm.rank)
    if args.groups is not None and not 1 <= args.groups <= comm.size:
        raise BridgesolveInputError(f"--groups {args.groups}: expected 1 to the number of "
                                    f"ranks ({comm.size})")
    if len(cfgs) == 1:
        if args.groups not in (None, 1):
            raise BridgesolveInputError(f"--groups {args.groups}: a single config runs on "
                                        "one group; give several configs to sweep")
        cfg = cfgs[0]
        folder = prepare_folder(args.output or Path("results/convergence") / names[0],
                                resume=args.resume, overwrite=args.overwrite, comm=comm)
        # The levels re-read the config (its warnings again) and build meshes and problems:
        # their warnings are caught here, the solvers' are in each level's row.
        with captured_warnings() as later:
            study = convergence_study(cfg, comm=comm, output=folder, resume=args.resume,
                                      progress=not args.quiet, log=None if not args.quiet
                                      else False, **options)
        messages = _study_warnings(study, noted[0], later, comm.rank)
        if comm.rank == 0:
            study.write(folder)
            _write_json(folder, study, messages)
            atomic_write(folder / "config.toml", cfg.text)
        comm.barrier()  # the files exist for every rank once the command returns
        say(study.table())
        say(f"results: {folder}/ (convergence.txt, .csv, .json, .png; checkpoints/)")
        return 0
    base = args.output or Path("results/convergence")
    t0 = time.perf_counter()
    with captured_warnings() as later:  # repeats of the config warnings, mesh warnings
        studies = sweep(cfgs, groups=args.groups or 1, comm=comm, output=base,
                        resume=args.resume, overwrite=args.overwrite,
                        progress=False, **options)
    if studies is not None:  # rank 0; every group has written its studies
        for name, study, mine in zip(names, studies, noted, strict=True):
            messages = _study_warnings(study, mine, [], comm.rank, prefix=f"{name}: ")
            _write_json(base / name, study, messages)
        shown = {m for mine in noted for m in mine}
        for message in later:  # raised on this rank, not tied to one config
            if message not in shown:
                warn_line(message, comm.rank)
        for name, study in zip(names, studies, strict=True):
            say(f"== {name}")
            say(study.table())
        say(f"results: {base}/<config name>/ ({len(cfgs)} studies, "
            f"{time.perf_counter() - t0:.1f} s)")
    return 0


def _study_warnings(study, noted: list[str], later: list[str], comm_rank: int, *,
                    prefix: str = "") -> list[str]:
    """The warnings of a study, each once: those of the config (already shown), those
    raised while the levels were built (``later``) and the solvers' (one per level and
    message, ``level N: ...``); the new ones are shown now."""
    levels = [f"level {row['level']}: {message}" for row in study.rows
              for message in row.get("warnings", [])]
    messages = merge_warnings(noted, later, levels)
    for message in messages[len(noted):]:
        warn_line(prefix + message, comm_rank)
    return messages


def _write_json(folder: Path, study, messages: list[str]) -> None:
    """convergence.json again, with the study's ``warnings`` (rank 0)."""
    data = {**study.to_dict(), "warnings": messages}
    atomic_write(folder / "convergence.json",
                 json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
