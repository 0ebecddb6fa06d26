"""Computational domains: intervals, boxes, disks and gmsh meshes, distributed over MPI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bridgesolve._dolfinx import MPI, dolfinx
from bridgesolve._validate import (
    BridgesolveInputError,
    check_memory,
    collective_raise,
    int_sequence,
    positive,
)

_MESH_DIR = Path(__file__).resolve().parent.parent / "meshes"

#: Peak bytes per cell while DOLFINx builds and distributes a mesh (a lower estimate:
#: measured 820-880 B per triangle or tetrahedron, 2D and 3D, DOLFINx 0.10).
BYTES_PER_CELL = {1: 200, 2: 500, 3: 500}


def _check_mesh_memory(cells: float, dim: int, comm, what: str) -> None:
    """Refuse a mesh of ``cells`` cells that cannot fit in memory, before building it."""
    check_memory(f"{what} ({cells:.3g} cells)", cells * BYTES_PER_CELL[dim], comm=comm,
                 fix="use fewer cells (or more nodes)")


class Domain:
    """A mesh of Ω ⊂ R^d (d = 1, 2, 3) of simplices, and what solvers ask of it.

    Build one with :meth:`interval`, :meth:`box`, :meth:`disk` or :meth:`from_gmsh`.
    Meshes that cannot fit in the available memory (at least :data:`BYTES_PER_CELL` bytes
    per cell while DOLFINx builds them) are refused before anything is allocated.
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
        comm = comm or MPI.COMM_WORLD
        _check_mesh_memory(n, 1, comm, f"the interval mesh of [{a:g}, {b:g}]")
        mesh = dolfinx.mesh.create_interval(comm, n, [a, b])
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
        _check_mesh_memory(float(np.prod(n, dtype=float)) * (2 if d == 2 else 6), d, comm,
                           f"the {'×'.join(map(str, n))} box mesh")
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
        # equilateral triangles of side h: area √3/4 h²
        _check_mesh_memory(np.pi * radius**2 / (0.433 * h * h), 2, comm,
                           f"the disk mesh of radius {radius:g} and h = {h:g}")

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
    def from_gmsh(cls, path: str | Path, *, h: float | None = None, comm=None) -> Domain:
        """A mesh from a gmsh ``.msh`` file, or a ``.geo`` script meshed here.

        ``h``: the value of the script's variable ``h`` (a ``.geo`` that sizes its cells by
        it, e.g. ``meshes/box_ball.geo``: ``If (!Exists(h)) h = 0.5; EndIf``), set before the
        script is parsed; refused for a ``.msh``. Relative paths are looked up in the
        working directory, then in ``meshes/``.
        A file that is empty, not a gmsh file (no ``$MeshFormat`` header, binary junk in a
        ``.geo``), truncated, a script with a syntax error, or without cells of its
        dimension is refused with one :class:`BridgesolveInputError` line naming the file,
        on every rank.
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
        if h is not None:
            h = positive("h", h)
            if path.suffix != ".geo":
                raise BridgesolveInputError(
                    f"mesh file {str(path)!r}: h = {h:g} sizes a .geo script's mesh; a .msh "
                    "is already meshed")
        comm = comm or MPI.COMM_WORLD
        problem = _file_problem(path) if comm.rank == 0 else None
        collective_raise(comm, problem)

        def build(gmsh):
            try:
                if h is not None:
                    # gmsh.open clears the parser's variables; merge into the fresh model
                    gmsh.parser.setNumber("h", [h])
                    gmsh.merge(str(path))
                else:
                    gmsh.open(str(path))
                dim = gmsh.model.getDimension()
                if dim > 0 and path.suffix == ".geo":
                    gmsh.model.mesh.generate(dim)
            except Exception as exc:  # gmsh raises bare Exceptions with its log's last line
                raise BridgesolveInputError(
                    f"mesh file {str(path)!r} cannot be read by gmsh: {_one_line(exc)}"
                ) from None
            if dim < 1:
                raise BridgesolveInputError(
                    f"mesh file {str(path)!r} holds no geometry or mesh (dimension {dim}): "
                    f"expected a gmsh {'mesh' if path.suffix == '.msh' else 'geometry'} "
                    "of dimension 1, 2 or 3"
                )
            cells = sum(len(tags) for et in gmsh.model.mesh.getElementTypes(dim)
                        for tags in [gmsh.model.mesh.getElementsByType(et)[0]])
            if cells == 0:
                raise BridgesolveInputError(
                    f"mesh file {str(path)!r} has no {dim}D cells: expected a mesh of its "
                    f"{dim}D entities (a truncated file, or a .geo without surfaces/volumes?)"
                )
            if not gmsh.model.getPhysicalGroups(dim):
                # model_to_mesh reads cells from physical groups: tag all of them.
                gmsh.model.addPhysicalGroup(dim, [e[1] for e in gmsh.model.getEntities(dim)], 1)
            return dim

        mesh = _mesh_from_gmsh(build, comm)
        desc = {"type": "gmsh", "path": str(path), **({"h": h} if h is not None else {})}
        return cls(mesh, description=desc)

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

    @classmethod
    def from_description(cls, desc: dict, comm=None) -> Domain:
        """The mesh a :meth:`describe` record stands for (box, interval, disk, gmsh file);
        collective over ``comm``.

        Raises:
            BridgesolveInputError: when the record does not describe a rebuildable mesh.
        """
        desc = desc if isinstance(desc, dict) else {}
        kind = desc.get("type")
        if kind in ("box", "interval") and "cells" in desc:
            return cls.box(desc["lower"], desc["upper"], desc["cells"], comm=comm)
        if kind == "disk" and "radius" in desc and "h" in desc:
            return cls.disk(desc["radius"], desc["h"], center=desc.get("center", (0.0, 0.0)),
                            comm=comm)
        if kind == "gmsh" and "path" in desc:
            return cls.from_gmsh(desc["path"], h=desc.get("h"), comm=comm)
        raise BridgesolveInputError(f"domain description {desc!r}: cannot rebuild a mesh "
                                    "from it (expected a box, interval, disk or gmsh record)")

    def __repr__(self) -> str:
        return f"Domain({self.description.get('type')}, dim={self.dim}, cells={self.num_cells})"


def _file_problem(path: Path) -> str | None:
    """What makes ``path`` certainly not a gmsh file, or None. Checked before gmsh reads it:
    gmsh parses a ``.msh`` without a ``$MeshFormat`` header as a ``.geo`` script, and binary
    junk leaves its ``.geo`` parser broken for every later file of the process."""
    where = f"mesh file {str(path)!r}"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"{where} cannot be opened: {_one_line(exc)}"
    if not head.strip():
        return f"{where} is empty: expected a gmsh {path.suffix} file"
    if path.suffix == ".msh":
        if not head.lstrip().startswith((b"$MeshFormat", b"$NOD", b"$PTS")):
            return (f"{where} is not a gmsh mesh: expected a $MeshFormat header, found "
                    f"{head.lstrip()[:20]!r}")
        return None
    if b"\x00" in head:
        return f"{where} is not a text file (it holds NUL bytes): expected a gmsh .geo script"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the 4096-byte boundary
            return f"{where} is not a UTF-8 text file: expected a gmsh .geo script"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _mesh_from_gmsh(build, comm):
    """Run ``build(gmsh) -> dim`` on rank 0 and distribute the mesh over ``comm``.

    An error on rank 0 (a :class:`BridgesolveInputError` from ``build``) is raised on every
    rank, so that no rank waits for a mesh that never comes.
    """
    import gmsh

    dim, error = None, None
    if comm.rank == 0:
        gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        try:
            dim = build(gmsh)
        except BridgesolveInputError as exc:
            error = str(exc)
        except Exception:
            gmsh.finalize()
            comm.bcast((None, "mesh generation failed on rank 0"), root=0)
            raise
        if error is not None:
            gmsh.finalize()
    dim, error = comm.bcast((dim, error), root=0)
    collective_raise(None, error)
    try:
        data = dolfinx.io.gmsh.model_to_mesh(gmsh.model if comm.rank == 0 else None, comm, 0,
                                             gdim=dim)
    finally:
        if comm.rank == 0:
            gmsh.finalize()
    return data.mesh
