"""What the subcommands share: rank-0 printing, output options, the MPI size, warnings.

Nothing here imports DOLFINx at module level: ``train`` and ``validate`` run on hosts that
have only PyTorch.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: The formatter of every subcommand: epilogs are preformatted reference text.
RAW = argparse.RawDescriptionHelpFormatter


def world():
    """``MPI.COMM_WORLD`` (imports DOLFINx's MPI)."""
    from bridgesolve._dolfinx import MPI

    return MPI.COMM_WORLD


def rank() -> int:
    """This process's rank; 0 on a host without MPI (a torch-only host)."""
    try:
        from bridgesolve._dolfinx import MPI
    except ImportError:
        return 0
    return MPI.COMM_WORLD.rank


def mpi_size_from_environment() -> int:
    """The launcher's process count (MPICH/Hydra, Open MPI), without initializing MPI."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(key, "")
        if value.isdigit():
            return int(value)
    return 1


def abort_other_ranks() -> None:
    """Under MPI a failure may hit some ranks only, leaving the others blocked in a
    collective call forever: abort the whole job instead (exit code 1)."""
    try:
        from bridgesolve._dolfinx import MPI
    except ImportError:
        return
    if MPI.COMM_WORLD.size > 1:
        MPI.COMM_WORLD.Abort(1)


def sayer(comm_rank: int, quiet: bool) -> Callable[..., None]:
    """``print`` on rank 0 unless ``quiet``; a no-op elsewhere."""
    return print if comm_rank == 0 and not quiet else (lambda *a, **k: None)


def warn_line(message: str, comm_rank: int = 0) -> None:
    """One ``bridgesolve: warning: ...`` line on stderr (rank 0)."""
    if comm_rank == 0:
        print(f"bridgesolve: warning: {message}", file=sys.stderr)


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings of a block as ``"Category: message"`` strings (each once)
    instead of letting them print through a progress bar; the caller shows and records
    them."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)


@contextmanager
def input_warnings(messages: list[str], comm_rank: int = 0) -> Iterator[None]:
    """Show and keep the warnings raised while a config is read or a problem is built.

    Such warnings (mixture weights that do not sum to 1 and are normalized, ...) would
    otherwise print as raw Python warnings and be missing from ``summary.json``: each new
    one is printed at once as a ``bridgesolve: warning:`` line (rank 0) and appended to
    ``messages`` (``"Category: message"``, each once), the list the summary records.
    When the block raises, its warnings are dropped with it (the error line says more).
    """
    with captured_warnings() as caught:
        yield
    for message in caught:
        if message not in messages:
            messages.append(message)
            warn_line(message, comm_rank)


def merge_warnings(*groups: Sequence[str | None]) -> list[str]:
    """The messages of ``groups`` in order, each once (for a summary's ``warnings``)."""
    merged: list[str] = []
    for group in groups:
        merged += [m for m in group if m and m not in merged]
    return merged


def add_output_options(ap: argparse.ArgumentParser, *, vtx: bool = True) -> None:
    """``-o/--output DIR``, ``--overwrite``, ``--quiet`` (and ``--no-vtx``) of the commands
    that write a results folder from a config."""
    ap.add_argument("-o", "--output", type=Path, metavar="DIR",
                    help="results folder (default: [output] directory of the config)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing results folder (only once the run succeeds)")
    ap.add_argument("--quiet", action="store_true",
                    help="no progress bar and no summary on stdout (warnings and errors "
                         "still go to stderr)")
    if vtx:
        ap.add_argument("--no-vtx", action="store_true",
                        help="skip the ParaView time series (figures and summary only)")


def grid_times(levels: np.ndarray, times: Sequence[float]) -> tuple[list[float], str | None]:
    """Each requested time moved to the nearest grid level (fields are known at levels).

    Returns:
        ``(times, note)``: the sorted distinct level times and, when any moved, a warning
        naming the requested and the used times (None otherwise).
    """
    levels = np.asarray(levels, dtype=float)
    pairs = [(float(t), float(levels[np.argmin(np.abs(levels - t))])) for t in times]
    moved = [(t, u) for t, u in pairs if abs(t - u) > 1e-12 * max(1.0, abs(t))]
    note = None
    if moved:
        note = ("plot times moved to the nearest time-grid level: "
                + ", ".join(f"{t:g} -> {u:.6g}" for t, u in moved)
                + " (choose grid times, or more steps, to plot exactly there)")
    return sorted({u for _, u in pairs}), note


def plot_times(cfg, grid, comm_rank: int) -> tuple[list[float], dict, str | None]:
    """The config's plot times moved to grid levels; a warning when times the user set
    moved.

    Returns:
        ``(times, record, note)``: the times, a summary record (requested, used), and the
        warning (already printed; the caller records it in ``summary.json``) or None.
    """
    used, note = grid_times(grid.times, cfg.plot_times)
    if not note or "plot_times" not in cfg.raw.get("output", {}):
        note = None  # the default times are not the user's: no warning
    if note:
        warn_line(note, comm_rank)
    return used, {"requested": cfg.plot_times, "used": used}, note


__all__ = ["plot_times", "RAW", "abort_other_ranks", "add_output_options", "captured_warnings",
           "grid_times", "input_warnings", "merge_warnings", "mpi_size_from_environment",
           "rank", "sayer", "warn_line", "world"]
