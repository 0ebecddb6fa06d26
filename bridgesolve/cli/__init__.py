"""The ``bridgesolve`` command: one module per subcommand, this one parses and dispatches.

=============  ==============================================================
module         subcommand
=============  ==============================================================
``run``        ``bridgesolve run``: a config's equation into a results folder
``bridge``     ``bridgesolve bridge``: a Schrödinger bridge
``convergence`` ``bridgesolve convergence``: studies and sweeps
``reference``  ``bridgesolve reference``: a reference bundle (.npz)
``likelihood`` ``bridgesolve likelihood``: KL and NLL of q_h against h
``learn``      ``bridgesolve train`` and ``validate`` (PyTorch, imported when they run)
``figures``    ``bridgesolve figures NAME``: a paper's figure set
``_common``    rank-0 printing, output options, MPI size, warnings
=============  ==============================================================

Exit codes: 0 success; 2 invalid input (bad config or file, output folder in the way;
nothing is written; one line on stderr, no traceback); 1 unexpected failure; 130
interrupted. The library never imports this package.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from bridgesolve import __version__
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.cli import bridge, convergence, figures, learn, likelihood, reference, run
from bridgesolve.cli._common import RAW, abort_other_ranks, rank


def _parser() -> argparse.ArgumentParser:
    description = ("Finite-element Fokker-Planck, Kolmogorov and HJB solvers (DOLFINx): "
                   "ground truth for diffusion models and Schrödinger bridges.")
    ap = argparse.ArgumentParser(prog="bridgesolve", description=description,
                                 epilog=run.CONFIG_HELP, formatter_class=RAW)
    ap.add_argument("--version", action="version", version=f"bridgesolve {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parser(sub)
    convergence.add_parser(sub)
    learn.add_parsers(sub)  # train, validate (torch is imported only when they run)
    bridge.add_parser(sub)
    reference.add_parser(sub)
    likelihood.add_parser(sub)
    figures.add_parser(sub)
    return ap


def _interrupted(command: str) -> int:
    if command == "convergence":
        print("bridgesolve: interrupted; finished levels are checkpointed: rerun with "
              "--resume to continue", file=sys.stderr)
    else:
        print("bridgesolve: interrupted; no results folder was written", file=sys.stderr)
    return 130


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
        return args.handler(args)
    except BridgesolveInputError as exc:
        if rank() == 0:
            # One line: a message with a newline (a loader quoting a file) stays one line.
            line = " ".join(part.strip() for part in str(exc).strip().splitlines())
            print(f"bridgesolve: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(args.command)
    except ImportError as exc:  # no (or a too old) DOLFINx: its message says what to do
        print(f"bridgesolve: error: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"bridgesolve: unexpected failure (rank {rank()}); no results folder was "
              "written", file=sys.stderr)
        abort_other_ranks()
        return 1


__all__ = ["main"]
