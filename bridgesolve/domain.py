"""Computational domains: intervals, boxes, disks and gmsh meshes, distributed over MPI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bridgesolve._dolfinx import MPI, dolfinx
from bridgesolve._validate import BridgesolveInputError, int_sequence, positive

_MESH_DIR = Path(__file__).resolve().parent.parent / "meshes"


class Domain:
    """A mesh of Ω ⊂ R^d (d = 1, 2, 3) of simplices, and what solvers ask of it.

    Build one with :meth:`interval`, :meth:`box`, :meth:`disk` or :meth:`from_gmsh`.
    """

    def __init__(self, mesh, *, description: dict | None = None):
        self.mesh = mesh
        self.description = description or {"type": "mesh"}
        tdim = mesh.topology.dim
        mesh.topology.create_connectivity(tdim - 1, tdim)

    # -- constructors ----------------------------------------------------------------
    @classmethod
    def interval(cls, a: float, b: float, cells: int, *, comm=None) -> Domain:
        """The interval [a, b] with ``cells`` equal cells."""
        a, b = float(a), float(b)
        if not b > a:
            raise BridgesolveInputError(f"interval [{a}, {b}]: expected a < b")
        (n,) = int_sequence("cells", cells, 1)
        mesh = dolfinx.mesh.create_interval(comm or MPI.COMM_WORLD, n, [a, b])
        return cls(mesh, description={"type": "interval", "lower": [a], "upper": [b],
                                      "cells": [n]})

    @classmethod
    def box(cls, lower: Sequence[float], upper: Sequence[float], cells, *, comm=None) -> Domain:
        """The box ``[lower, upper]`` in 1D, 2D (triangles) or 3D (tetrahedra)."""
        lo = np.atleast_1d(np.asarray(lower, dtype=float))
        hi = np.atleast_1d(np.asarray(upper, dtype=float))
        if lo.shape != hi.shape or lo.ndim != 1 or lo.size not in (1, 2, 3):
            raise BridgesolveInputError(
                f"box corners {list(lo)} and {list(hi)}: expected two points of equal "
                "dimension 1, 2 or 3"
            )
        if np.any(hi <= lo):
            raise BridgesolveInputError(
                f"box [{lo.tolist()}, {hi.tolist()}]: expected lower < upper in every direction"
            )
        d = lo.size
        n = int_sequence("cells", cells, d)
        comm = comm or MPI.COMM_WORLD
        if d == 1:
            return cls.interval(lo[0], hi[0], n[0], comm=comm)
        if d == 2:
            mesh = dolfinx.mesh.create_rectangle(
                comm, [lo, hi], list(n), cell_type=dolfinx.mesh.CellType.triangle
            )
        else:
            mesh = dolfinx.mesh.create_box(
                comm, [lo, hi], list(n), cell_type=dolfinx.mesh.CellType.tetrahedron
            )
        return cls(mesh, description={"type": "box", "lower": lo.tolist(),
                                      "upper": hi.tolist(), "cells": list(n)})

    @classmethod
    def disk(cls, radius: float, h: float, *, center=(0.0, 0.0), comm=None) -> Domain:
        """A disk meshed by gmsh with triangles of size about ``h``."""
        radius = positive("radius", radius)
        h = positive("h", h)
        comm = comm or MPI.COMM_WORLD
        c = [float(v) for v in center]

        def build(gmsh):
            gmsh.model.occ.addDisk(c[0], c[1], 0.0, radius, radius)
            gmsh.model.occ.synchronize()
            gmsh.model.addPhysicalGroup(2, [1], 1)
            gmsh.option.setNumber("Mesh.CharacteristicLengthMax", h)
            gmsh.option.setNumber("Mesh.CharacteristicLengthMin", h)
            gmsh.model.mesh.generate(2)
            return 2

        mesh = _mesh_from_gmsh(build, comm)
        return cls(mesh, description={"type": "disk", "radius": radius, "h": h, "center": c})

    @classmethod
    def from_gmsh(cls, path: str | Path, *, comm=None) -> Domain:
        """A mesh from a gmsh ``.msh`` file, or a ``.geo`` script meshed here.

        Relative paths are looked up in the working directory, then in ``meshes/``.
        """
        path = Path(path)
        if not path.exists() and (_MESH_DIR / path).exists():
            path = _MESH_DIR / path
        if not path.is_file():
            raise BridgesolveInputError(f"mesh file {str(path)!r} does not exist")
        if path.suffix not in (".msh", ".geo"):
            raise BridgesolveInputError(
                f"mesh file {str(path)!r}: expected a gmsh .msh or .geo file"
            )
        comm = comm or MPI.COMM_WORLD

        def build(gmsh):
            gmsh.open(str(path))
            dim = gmsh.model.getDimension()
            if path.suffix == ".geo":
                gmsh.model.mesh.generate(dim)
            if not gmsh.model.getPhysicalGroups(dim):
                # model_to_mesh reads cells from physical groups: tag all of them.
                gmsh.model.addPhysicalGroup(dim, [e[1] for e in gmsh.model.getEntities(dim)], 1)
            return dim

        mesh = _mesh_from_gmsh(build, comm)
        return cls(mesh, description={"type": "gmsh", "path": str(path)})

    # -- properties ------------------------------------------------------------------
    @property
    def comm(self):
        return self.mesh.comm

    @property
    def dim(self) -> int:
        return self.mesh.geometry.dim

    @property
    def num_cells(self) -> int:
        return self.mesh.topology.index_map(self.mesh.topology.dim).size_global

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Global bounding box ``(lower, upper)`` of the mesh."""
        x = self.mesh.geometry.x[:, : self.dim]
        lo = x.min(axis=0) if x.size else np.full(self.dim, np.inf)
        hi = x.max(axis=0) if x.size else np.full(self.dim, -np.inf)
        # Buffer reductions: the pickle-based allreduce cannot take MIN of arrays.
        glo, ghi = np.empty_like(lo), np.empty_like(hi)
        self.comm.Allreduce(lo, glo, op=MPI.MIN)
        self.comm.Allreduce(hi, ghi, op=MPI.MAX)
        return glo, ghi

    @property
    def hmax(self) -> float:
        """Largest cell diameter."""
        tdim = self.mesh.topology.dim
        n = self.mesh.topology.index_map(tdim).size_local
        local = self.mesh.h(tdim, np.arange(n, dtype=np.int32)).max() if n else 0.0
        return float(self.comm.allreduce(local, MPI.MAX))

    def boundary_facets(self) -> np.ndarray:
        return dolfinx.mesh.exterior_facet_indices(self.mesh.topology)

    def describe(self) -> dict:
        return {**self.description, "dim": self.dim, "cells_global": self.num_cells,
                "hmax": self.hmax}

    def __repr__(self) -> str:
        return f"Domain({self.description.get('type')}, dim={self.dim}, cells={self.num_cells})"


def _mesh_from_gmsh(build, comm):
    """Run ``build(gmsh) -> dim`` on rank 0 and distribute the mesh over ``comm``."""
    import gmsh

    dim = None
    if comm.rank == 0:
        gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        try:
            dim = build(gmsh)
        except Exception:
            gmsh.finalize()
            raise
    dim = comm.bcast(dim, root=0)
    try:
        data = dolfinx.io.gmsh.model_to_mesh(gmsh.model if comm.rank == 0 else None, comm, 0,
                                             gdim=dim)
    finally:
        if comm.rank == 0:
            gmsh.finalize()
    return data.mesh
