"""Results folders (written atomically), VTX/XDMF time series and JSON summaries."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bridgesolve._dolfinx import MPI, dolfinx, fem, versions
from bridgesolve._json import jsonable as _jsonable
from bridgesolve._validate import BridgesolveInputError

#: A folder holding this file counts as a results folder that ``overwrite=True`` may replace.
SUMMARY = "summary.json"


class ResultsFolder:
    """A results folder that appears, complete, only when the run succeeds.

    Files go to a temporary sibling ``.<name>.tmp-<pid>``; :meth:`commit` renames it to the
    final path, replacing an earlier results folder only with ``overwrite=True``. If the
    ``with`` block raises (or ends without :meth:`commit`), the temporary folder and any
    parent folders it created are removed, so nothing is left behind.

    Collective: every rank constructs it, enters and leaves the ``with`` block and calls
    :meth:`commit`; rank 0 does the file-system work.

    Args:
        path: the final folder.
        overwrite: replace an existing results folder (one holding ``summary.json``, or an
            empty folder) at commit. Other folders are never replaced.
        comm: the communicator (default ``MPI.COMM_WORLD``).

    Raises:
        BridgesolveInputError: when ``path`` exists and ``overwrite`` is False, when it is not
            a folder that may be replaced, or when it is the working directory or contains it.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, comm=None):
        self.comm = comm or MPI.COMM_WORLD
        self.final = Path(path)
        self.overwrite = overwrite
        # One rank looks, all raise the same error: a file system that ranks see at slightly
        # different times must not split them into failing and waiting ones.
        problem = _refusal(self.final, overwrite) if self.comm.rank == 0 else None
        problem = self.comm.bcast(problem, root=0)
        if problem:
            raise BridgesolveInputError(problem)
        pid = self.comm.bcast(os.getpid(), root=0)
        self.path = self.final.parent / f".{self.final.name}.tmp-{pid}"
        self._created: list[Path] = []
        self._committed = False

    def __enter__(self) -> ResultsFolder:
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
        error = self.comm.bcast(error, root=0)
        if error:
            raise BridgesolveInputError(error)
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
        error = self.comm.bcast(error, root=0)
        if error:
            raise BridgesolveInputError(error)
        self._committed = True
        return self.final

    def finish(self, summary: dict, cfg) -> Path:
        """Write ``summary.json`` (with the MPI size, versions and the config used) and
        ``config.toml``, then move the folder into place (collective); returns its path."""
        from bridgesolve import __version__

        self.write_json("summary.json", {
            **summary, "mpi_size": self.comm.size,
            "versions": {"bridgesolve": __version__, **versions()}, "config": cfg.as_dict()})
        self.write_text("config.toml", cfg.text)
        return self.commit()

    def write_json(self, name: str, data: dict) -> Path:
        """``data`` as indented JSON (rank 0 writes; NaN and infinities become null)."""
        path = self.path / name
        if self.comm.rank == 0:
            text = json.dumps(_jsonable(data), indent=2, allow_nan=False)
            path.write_text(text + "\n", encoding="utf-8")
        return path

    def write_text(self, name: str, text: str) -> Path:
        """A text file (rank 0 writes)."""
        path = self.path / name
        if self.comm.rank == 0:
            path.write_text(text, encoding="utf-8")
        return path


def _refusal(final: Path, overwrite: bool) -> str | None:
    """Why ``final`` may not become a results folder, or None."""
    where = repr(str(final))
    resolved = final.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        return (f"output folder {where} is the working directory or contains it: "
                "choose a new sub-folder")
    if not final.exists():
        return None
    if not final.is_dir():
        return f"output folder {where} exists and is not a folder"
    if not overwrite:
        return f"output folder {where} exists: pass --overwrite to replace it"
    if any(final.iterdir()) and not (final / SUMMARY).is_file():
        return (f"output folder {where} is not a bridgesolve results folder (no {SUMMARY}): "
                "refusing to replace it; remove it yourself or choose another")
    return None


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


def write_time_series(field, folder: str | os.PathLike, name: str | None = None) -> Path:
    """All levels of a ``SpaceTimeField`` as a ParaView time series (collective).

    VTX (ADIOS2, ``<name>.bp``) keeps the element's own degree; without ADIOS2 the field is
    interpolated to P1 and written as XDMF (``<name>.xdmf``), which holds only P1.

    Returns:
        The path written.
    """
    folder = Path(folder)
    name = name or field.name
    u = fem.Function(field.space, name=name)
    if dolfinx.io.has_adios2:
        path = folder / f"{name}.bp"
        with dolfinx.io.VTXWriter(field.comm, path, [u], engine="BP4") as writer:
            for n, t in enumerate(field.times):
                u.x.array[:] = field.values[n]
                writer.write(float(t))
        return path
    path = folder / f"{name}.xdmf"
    P1 = fem.functionspace(field.mesh, ("Lagrange", 1))
    w = fem.Function(P1, name=name)
    with dolfinx.io.XDMFFile(field.comm, path, "w") as xdmf:
        xdmf.write_mesh(field.mesh)
        for n, t in enumerate(field.times):
            u.x.array[:] = field.values[n]
            w.interpolate(u)
            xdmf.write_function(w, float(t))
    return path
