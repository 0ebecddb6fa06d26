"""Results folders (written atomically), VTX/XDMF time series and JSON summaries."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from bridgesolve._dolfinx import MPI, dolfinx, fem
from bridgesolve._validate import BridgesolveInputError


class ResultsFolder:
    """A results folder that appears only when the run succeeds.

    Files go to a temporary sibling ``.<name>.tmp-<pid>``; :meth:`commit` renames it to
    the final path (replacing an old one only with ``overwrite=True``). On an exception
    inside the ``with`` block the temporary folder is removed and nothing is left behind.
    Collective: every rank must enter and leave it together; rank 0 touches the disk.
    """

    def __init__(self, path: str | Path, *, overwrite: bool = False, comm=None):
        self.comm = comm or MPI.COMM_WORLD
        self.final = Path(path)
        self.overwrite = overwrite
        if self.final.exists() and not overwrite:
            raise BridgesolveInputError(
                f"output folder {str(self.final)!r} exists: pass --overwrite to replace it"
            )
        pid = self.comm.bcast(os.getpid(), root=0)
        self.path = self.final.parent / f".{self.final.name}.tmp-{pid}"

    def __enter__(self) -> ResultsFolder:
        if self.comm.rank == 0:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
        self.comm.barrier()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.comm.barrier() if exc_type is not KeyboardInterrupt else None
            if self.comm.rank == 0:
                shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> Path:
        self.comm.barrier()
        if self.comm.rank == 0:
            if self.final.exists():
                shutil.rmtree(self.final)
            self.path.rename(self.final)
        self.comm.barrier()
        return self.final

    def write_json(self, name: str, data: dict) -> None:
        if self.comm.rank == 0:
            (self.path / name).write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")

    def write_text(self, name: str, text: str) -> None:
        if self.comm.rank == 0:
            (self.path / name).write_text(text)


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def write_time_series(field, folder: Path, name: str | None = None) -> Path:
    """All levels of a ``SpaceTimeField`` as a ParaView time series (collective).

    VTX (ADIOS2, ``<name>.bp``) keeps the element's own degree; without ADIOS2 the field is
    interpolated to P1 and written as XDMF.
    """
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
