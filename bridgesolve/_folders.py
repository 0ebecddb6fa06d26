"""Output folders that never end half-written (DOLFINx-free; MPI optional).

Two kinds of folder, one set of rules:

- :class:`AtomicFolder`: a results folder written to a temporary sibling
  ``.<name>.tmp-<pid>`` and renamed into place by :meth:`AtomicFolder.commit`; on failure the
  temporary folder (and any parent folder it created) is removed, so nothing is left.
  An existing folder is replaced only with ``overwrite=True`` and only when it is one of ours
  (it holds the marker file, ``summary.json`` by default, or is empty).
- :func:`prepare_folder`: a folder filled in place across runs (checkpoints of a training
  run or of a convergence study), continued with ``resume`` or started again with
  ``overwrite``; a folder that is not ours is never touched.

Files inside such folders are replaced with :func:`atomic_write`. With a communicator,
rank 0 does the file-system work, and every rank raises the same error; without one
(``comm=None``) everything runs in this process.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from bridgesolve._json import jsonable
from bridgesolve._validate import BridgesolveInputError

#: A folder holding this file counts as a results folder that ``overwrite=True`` may replace.
SUMMARY = "summary.json"


class _Serial:
    """The few communicator calls used here, for one process without MPI."""

    rank, size = 0, 1

    def bcast(self, value, root: int = 0):
        return value

    def barrier(self) -> None:
        return None


def _comm(comm):
    return _Serial() if comm is None else comm


def _raise_on_all(comm, error: str | None) -> None:
    """Rank 0's verdict, raised on every rank (ranks that see the file system at slightly
    different times must not split into failing and waiting ones)."""
    error = comm.bcast(error, root=0)
    if error:
        raise BridgesolveInputError(error)


def _inside_cwd_check(path: Path) -> str | None:
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        return (f"output folder {str(path)!r} is the working directory or contains it: "
                "choose a new sub-folder")
    return None


def refusal(final: Path, *, overwrite: bool, marker: str = SUMMARY) -> str | None:
    """Why ``final`` may not become an atomic results folder, or None."""
    where = repr(str(final))
    problem = _inside_cwd_check(final)
    if problem or not final.exists():
        return problem
    if not final.is_dir():
        return f"output folder {where} exists and is not a folder"
    if not overwrite:
        return f"output folder {where} exists: pass --overwrite to replace it"
    if any(final.iterdir()) and not (final / marker).is_file():
        return (f"output folder {where} is not a bridgesolve results folder (no {marker}): "
                "refusing to replace it; remove it yourself or choose another")
    return None


class AtomicFolder:
    """A results folder that appears, complete, only when the run succeeds.

    Files go to the temporary sibling :attr:`path`; :meth:`commit` renames it to the final
    path, replacing an earlier results folder only with ``overwrite=True``. If the ``with``
    block raises (or ends without :meth:`commit`), the temporary folder and any parent
    folders it created are removed.

    Collective when ``comm`` is given: every rank constructs it, enters and leaves the
    ``with`` block and calls :meth:`commit`; rank 0 does the file-system work.

    Args:
        path: the final folder.
        overwrite: replace an existing results folder (one holding ``marker``, or an empty
            folder) at commit. Other folders are never replaced.
        comm: an MPI communicator, or None (one process).
        marker: the file that marks a folder as replaceable.

    Raises:
        BridgesolveInputError: when ``path`` exists and ``overwrite`` is False, when it is not
            a folder that may be replaced, or when it is the working directory or contains it.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, comm=None,
                 marker: str = SUMMARY):
        self.comm = _comm(comm)
        self.final = Path(path)
        self.overwrite = overwrite
        self.marker = marker
        _raise_on_all(self.comm, refusal(self.final, overwrite=overwrite, marker=marker)
                      if self.comm.rank == 0 else None)
        pid = self.comm.bcast(os.getpid(), root=0)
        self.path = self.final.parent / f".{self.final.name}.tmp-{pid}"
        self._created: list[Path] = []
        self._committed = False

    def __enter__(self):
        error = None
        if self.comm.rank == 0:
            # Innermost first: the order in which to remove them again on failure.
            self._created = [p for p in (self.final.parent, *self.final.parent.parents)
                             if not p.exists()]
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(self.path, ignore_errors=True)
                self.path.mkdir()
            except OSError as exc:
                self._discard()
                error = f"output folder {str(self.final)!r} cannot be created: {exc}"
        _raise_on_all(self.comm, error)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._committed:
            self.comm.barrier()  # every rank has finished writing before rank 0 removes
            if self.comm.rank == 0:
                self._discard()
        elif exc_type is not None:
            # No barrier: an exception on some ranks only would leave the others waiting in
            # a collective call. Whichever ranks fail remove the folder (idempotently).
            self._discard()

    def _discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        for parent in self._created:
            try:
                parent.rmdir()  # only if still empty: other runs may have written there
            except OSError:
                break

    def commit(self) -> Path:
        """Move the finished folder into place (collective); returns the final path."""
        self.comm.barrier()
        error = None
        if self.comm.rank == 0:
            try:
                _replace(self.path, self.final, overwrite=self.overwrite)
            except (OSError, BridgesolveInputError) as exc:
                error = str(exc)
        _raise_on_all(self.comm, error)
        self._committed = True
        return self.final

    def write_json(self, name: str, data: dict) -> Path:
        """``data`` as indented JSON (rank 0 writes; NaN and infinities become null)."""
        return self.write_text(name, json.dumps(jsonable(data), indent=2, allow_nan=False)
                               + "\n")

    def write_text(self, name: str, text: str) -> Path:
        """A text file (rank 0 writes)."""
        path = self.path / name
        if self.comm.rank == 0:
            path.write_text(text, encoding="utf-8")
        return path


def _replace(src: Path, dst: Path, *, overwrite: bool) -> None:
    """Rename ``src`` to ``dst``; an old ``dst`` is moved aside first and removed after, so
    ``dst`` is never missing a complete folder for longer than between two renames."""
    if not dst.exists():
        src.rename(dst)
        return
    if not overwrite:
        raise BridgesolveInputError(f"output folder {str(dst)!r} appeared during the run: "
                                    f"the results are left in {str(src)!r}")
    old = dst.parent / f".{dst.name}.old-{os.getpid()}"
    dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def prepare_folder(path: str | os.PathLike, *, resume: bool, overwrite: bool,
                   markers: Sequence[str], clear: Sequence[str], kind: str,
                   resume_needs: str | None = None, comm=None) -> bool:
    """Check and create a folder that runs fill in place (checkpoints), then continue.

    A non-empty folder is ours when it holds one of ``markers``. Ours: used with ``resume``
    (its files are continued from) or ``overwrite`` (the ``clear`` files are removed first),
    refused otherwise. Not ours: always refused. Rank 0 looks and acts; every rank raises
    the same error.

    Args:
        path: the folder.
        resume: continue what the folder holds.
        overwrite: start again in a folder of ours.
        markers: names (files or folders) any of which marks a folder as ours.
        clear: names removed by ``overwrite`` (files, or folders with their contents).
        kind: what the folder holds, for messages (``"convergence study"``).
        resume_needs: with ``resume``, the marker that must exist (``"checkpoint.pt"``), or
            None when resuming an empty folder just starts.
        comm: an MPI communicator, or None (one process).

    Returns:
        Whether there is something to resume (``resume`` and the folder is ours).

    Raises:
        BridgesolveInputError: naming the folder and the way out.
    """
    comm = _comm(comm)
    path = Path(path)
    verdict: tuple[str | None, bool] = (None, False)
    if comm.rank == 0:
        try:
            verdict = _prepare(path, resume=resume, overwrite=overwrite, markers=markers,
                               clear=clear, kind=kind, resume_needs=resume_needs)
        except OSError as exc:
            verdict = (f"output folder {str(path)!r} cannot be prepared: {exc}", False)
    error, resumable = comm.bcast(verdict, root=0)
    if error:
        raise BridgesolveInputError(error)
    return resumable


def _prepare(path: Path, *, resume, overwrite, markers, clear, kind,
             resume_needs) -> tuple[str | None, bool]:
    where = repr(str(path))
    problem = _inside_cwd_check(path)
    if problem:
        return problem, False
    if path.exists() and not path.is_dir():
        return f"output folder {where} exists and is not a folder", False
    if resume and resume_needs and not (path / resume_needs).exists():
        return f"--resume: no {resume_needs} in {where} to resume from", False
    ours = path.is_dir() and any((path / m).exists() for m in markers)
    if path.is_dir() and any(path.iterdir()) and not ours:
        return (f"output folder {where} is not a {kind} folder (none of "
                f"{', '.join(markers)}): refusing to use it; choose another"), False
    if ours and not resume:
        if not overwrite:
            return (f"output folder {where} holds a {kind}: pass --resume to continue it or "
                    "--overwrite to start again"), False
        for name in clear:
            target = path / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    return None, bool(ours and resume)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Replace the file ``path`` by ``data`` in one rename (readers see old or new, never a
    partial file). Call on one rank."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["SUMMARY", "AtomicFolder", "atomic_write", "prepare_folder", "refusal"]
