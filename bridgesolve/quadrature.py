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
