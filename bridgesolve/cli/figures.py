"""``bridgesolve figures NAME``: a paper's figure set, by its script in ``examples/papers/``.

Each paper script ``examples/papers/<name>.py`` defines ``main(argv) -> int`` with
``-o/--output DIR`` and ``--quick``; this command loads it from the repository checkout
(next to the package, as ``meshes/`` is found) and calls it. The folder can be changed
with the environment variable ``BRIDGESOLVE_PAPERS`` (tests use a folder of their own).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.cli._common import RAW

#: The paper figure sets (``NAME`` with ``-`` for ``_``: ``yu-huang-2025``).
PAPERS = ("yu_huang_2025", "hirono_2024", "premkumar_2023")
#: Overrides the scripts' folder.
PAPERS_ENV = "BRIDGESOLVE_PAPERS"

FIGURES_HELP = """\
figure sets (scripts in examples/papers/ of the repository checkout):
  yu-huang-2025    Yu & Huang 2025: thermodynamics of the forward process
  hirono-2024      Hirono et al. 2024: the exact NLL against the sampler's h
  premkumar-2023   Premkumar 2023: the action principle of score matching
Each writes PNG figures and numbers.json into DIR (default results/figures/<name>).
--quick runs a coarse version in well under a minute (what the tests run).

exit codes: 0 success, 2 unknown NAME or no examples/papers/ folder, 1 unexpected failure.
examples: bridgesolve figures --list; bridgesolve figures hirono-2024 --quick -o out/h"""


def add_parser(sub) -> None:
    """The ``figures`` subcommand (argparse sub-parsers ``sub``)."""
    ap = sub.add_parser(
        "figures", help="make a paper's figure set (examples/papers/<name>.py)",
        description="Run the figure script of a paper: every figure of its figure set and a "
                    "numbers.json, written into DIR.",
        epilog=FIGURES_HELP, formatter_class=RAW)
    ap.add_argument("name", nargs="?", metavar="NAME",
                    help="the figure set: " + ", ".join(_dashed(p) for p in PAPERS))
    ap.add_argument("-o", "--output", type=Path, metavar="DIR",
                    help="output folder (default results/figures/<name>)")
    ap.add_argument("--quick", action="store_true", help="a coarse run (seconds, for tests)")
    ap.add_argument("--list", action="store_true", help="list the figure sets and exit")
    ap.set_defaults(handler=command)


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def papers_dir() -> Path:
    """``$BRIDGESOLVE_PAPERS``, else ``examples/papers`` of the checkout holding the
    package."""
    override = os.environ.get(PAPERS_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "examples" / "papers"


def available(folder: Path) -> list[str]:
    """The known paper names plus any other ``<name>.py`` script in ``folder``."""
    found = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    return [*PAPERS, *(name for name in found if name not in PAPERS)]


def _script(name: str) -> Path:
    folder = papers_dir()
    known = ", ".join(_dashed(p) for p in (available(folder) if folder.is_dir() else PAPERS))
    if not folder.is_dir():
        raise BridgesolveInputError(
            f"no paper scripts: {str(folder)!r} is not a folder (the figure sets {known} "
            "live in examples/papers/ of a repository checkout; set "
            f"{PAPERS_ENV} to point elsewhere)")
    key = name.replace("-", "_")
    path = folder / f"{key}.py"
    if not path.is_file():
        raise BridgesolveInputError(f"figures {name!r}: unknown figure set (expected one of "
                                    f"{known}; scripts in {str(folder)!r})")
    return path


def _run_script(path: Path, argv: list[str]) -> int:
    """Load ``path`` as ``python path`` would (its folder first on ``sys.path``, so that it
    can import its neighbours) and return ``main(argv)``."""
    spec = importlib.util.spec_from_file_location(f"bridgesolve_paper_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise BridgesolveInputError(f"{str(path)!r}: not a Python script")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
        main = getattr(module, "main", None)
        if not callable(main):
            raise BridgesolveInputError(f"{str(path)!r} defines no main(argv)")
        return int(main(argv) or 0)
    finally:
        sys.path.remove(str(path.parent))
        sys.modules.pop(spec.name, None)


def command(args: argparse.Namespace) -> int:
    """``bridgesolve figures NAME [-o DIR] [--quick]`` or ``--list``."""
    if args.list:
        folder = papers_dir()
        names = available(folder) if folder.is_dir() else list(PAPERS)
        for name in names:
            present = folder.is_dir() and (folder / f"{name}.py").is_file()
            print(f"{_dashed(name):<18} {'' if present else '(script missing)'}".rstrip())
        return 0
    if not args.name:
        raise BridgesolveInputError("figures: give NAME (one of "
                                    f"{', '.join(_dashed(p) for p in PAPERS)}) or --list")
    path = _script(args.name)
    output = args.output or Path("results") / "figures" / path.stem
    argv = ["-o", str(output), *(["--quick"] if args.quick else [])]
    return _run_script(path, argv)


__all__ = ["PAPERS", "PAPERS_ENV", "add_parser", "available", "command", "papers_dir"]
