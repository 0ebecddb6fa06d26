"""Results folders (written atomically), VTX/XDMF time series and JSON summaries."""

from __future__ import annotations

import os
from pathlib import Path

from bridgesolve._dolfinx import MPI, dolfinx, fem, versions
from bridgesolve._folders import SUMMARY, AtomicFolder


class ResultsFolder(AtomicFolder):
    """A results folder that appears, complete, only when the run succeeds.

    Files go to a temporary sibling ``.<name>.tmp-<pid>``; :meth:`commit` renames it to the
    final path, replacing an earlier results folder only with ``overwrite=True``. If the
    ``with`` block raises (or ends without :meth:`commit`), the temporary folder and any
    parent folders it created are removed, so nothing is left behind.

    Collective: every rank constructs it, enters and leaves the ``with`` block and calls
    :meth:`commit`; rank 0 does the file-system work. (The MPI-optional, DOLFINx-free base
    is :class:`bridgesolve._folders.AtomicFolder`.)

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
        super().__init__(path, overwrite=overwrite, comm=comm or MPI.COMM_WORLD)

    def __enter__(self) -> ResultsFolder:
        return super().__enter__()

    def finish(self, summary: dict, cfg) -> Path:
        """Write ``summary.json`` (with the MPI size, versions and the config used) and
        ``config.toml``, then move the folder into place (collective); returns its path."""
        from bridgesolve import __version__

        self.write_json(SUMMARY, {
            **summary, "mpi_size": self.comm.size,
            "versions": {"bridgesolve": __version__, **versions()}, "config": cfg.as_dict()})
        self.write_text("config.toml", cfg.text)
        return self.commit()


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
