"""Sweeps: many configs' studies spread over groups of ranks (``comm.Split``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bridgesolve._folders import atomic_write
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.studies.results import ConvergenceStudy, prepare_folder
from bridgesolve.studies.study import convergence_study


def sweep(configs: Sequence, *, groups: int | None = None, comm=None,
          output: str | os.PathLike | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool = False, **study_options
          ) -> list[ConvergenceStudy] | None:
    """Convergence studies of many configs, spread over groups of ranks.

    ``comm`` is split into ``groups`` sub-communicators of consecutive ranks
    (``comm.Split``); config ``i`` runs on group ``i mod groups``, each of its solves
    distributed over that group. With ``output``, study ``i`` writes to
    ``output/<config name>`` (checkpoints, tables, figure).

    Args:
        configs: config paths or :class:`~bridgesolve.config.Config` objects.
        groups: number of groups, 1 ≤ groups ≤ comm.size (default: one per rank).
        study_options: passed to :func:`convergence_study` (``refine``, ``levels``, ...).

    Returns:
        On rank 0 of ``comm``, the studies in the order of ``configs``; None elsewhere.
    """
    from bridgesolve._dolfinx import MPI
    from bridgesolve.config import Config, load_config

    comm = comm or MPI.COMM_WORLD
    groups = comm.size if groups is None else groups
    if isinstance(groups, bool) or not isinstance(groups, int) or not 1 <= groups <= comm.size:
        raise BridgesolveInputError(f"groups = {groups!r}: expected an integer from 1 to the "
                                    f"number of ranks ({comm.size})")
    if not configs:
        raise BridgesolveInputError("configs = []: expected at least one config")
    cfgs = [c if isinstance(c, Config) else load_config(c) for c in configs]
    names = study_names(cfgs)
    color = comm.rank * groups // comm.size
    sub = comm.Split(color, comm.rank)
    group_root = sub.rank == 0
    mine: dict[int, ConvergenceStudy] = {}
    error = None
    try:
        for i, cfg in enumerate(cfgs):
            if i % groups != color:
                continue
            folder = None
            if output is not None:
                folder = prepare_folder(Path(output) / names[i], resume=resume,
                                        overwrite=overwrite, comm=sub)
            study = convergence_study(cfg, comm=sub, output=folder, resume=resume,
                                      progress=progress, log=False, **study_options)
            if folder is not None and sub.rank == 0:
                study.write(folder)
                atomic_write(folder / "config.toml", cfg.text)
            mine[i] = study
    except BridgesolveInputError as exc:
        error = str(exc)
    finally:
        sub.Free()
    errors = [e for e in comm.allgather(error) if e]  # also: every group has written
    if errors:
        raise BridgesolveInputError(errors[0])
    gathered = comm.gather(mine if group_root else {}, root=0)
    if comm.rank != 0:
        return None
    merged: dict[int, ConvergenceStudy] = {}
    for part in gathered:
        merged.update(part)
    return [merged[i] for i in range(len(cfgs))]


def study_names(cfgs) -> list[str]:
    """One sub-folder name per config: its file stem, numbered when stems repeat."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for cfg in cfgs:
        stem = "default" if cfg.source.startswith("<") else Path(cfg.source).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


__all__ = ["study_names", "sweep"]
