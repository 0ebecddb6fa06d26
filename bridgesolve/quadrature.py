"""Quadrature points and weights of a mesh (owned cells of this rank)."""

from __future__ import annotations

import numpy as np

from bridgesolve._dolfinx import MPI, basix, dolfinx, fem, ufl


def mesh_quadrature(mesh, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Physical quadrature points ``(N, d)`` and weights ``(N,)`` of this rank's owned cells.

    The union over ranks is the quadrature of the whole mesh (no duplicates), so sums of
    ``w * f(x)`` allreduced over ranks are rank-independent integrals.
    """
    tdim, gdim = mesh.topology.dim, mesh.geometry.dim
    cell = dolfinx.cpp.mesh.to_string(mesh.topology.cell_type)
    X, w_ref = basix.make_quadrature(getattr(basix.CellType, cell), degree)
    ncells = mesh.topology.index_map(tdim).size_local
    cells = np.arange(ncells, dtype=np.int32)
    xq = fem.Expression(ufl.SpatialCoordinate(mesh), X).eval(mesh, cells)
    detj = fem.Expression(abs(ufl.JacobianDeterminant(mesh)), X).eval(mesh, cells)
    pts = np.asarray(xq).reshape(ncells, X.shape[0], gdim).reshape(-1, gdim)
    weights = (np.asarray(detj).reshape(ncells, X.shape[0]) * w_ref[None, :]).reshape(-1)
    return pts, weights


def integrate(mesh, fn, degree: int = 12) -> float:
    """``∫_Ω fn(x) dx`` for a callable of points ``(N, d) -> (N,)`` (rank-independent)."""
    pts, w = mesh_quadrature(mesh, degree)
    local = float(w @ np.asarray(fn(pts), dtype=float)) if w.size else 0.0
    return mesh.comm.allreduce(local, MPI.SUM)


def values_at_quadrature(space, values: np.ndarray, degree: int) -> np.ndarray:
    """``(levels, Nq)`` values of the FE functions with nodal ``values`` at the quadrature
    points of this rank's owned cells (ordering of ``mesh_quadrature``)."""
    mesh = space.mesh
    X, _ = basix.make_quadrature(
        getattr(basix.CellType, dolfinx.cpp.mesh.to_string(mesh.topology.cell_type)), degree)
    cells = np.arange(mesh.topology.index_map(mesh.topology.dim).size_local, dtype=np.int32)
    u = fem.Function(space)
    expr = fem.Expression(u, X)
    out = np.zeros((values.shape[0], cells.size * X.shape[0]))
    if cells.size:
        for n in range(values.shape[0]):
            u.x.array[:] = values[n]
            out[n] = np.asarray(expr.eval(mesh, cells)).reshape(-1)
    return out


