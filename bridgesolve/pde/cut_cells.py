r"""Exact quadrature of piecewise-constant data on meshes whose cells cut the jumps.

Data constant on the boxes of a tensor grid (a box mixture or an image at ``t = 0``:
:func:`~bridgesolve.densities.box_mass.jump_grid`) have no smooth quadrature on a cell that
a jump crosses. Here each owned cell is intersected with every grid box its bounding box
meets: the simplex is clipped by the box's ``2d`` axis-aligned half-spaces (:func:`_clip`:
a simplex cut by a plane keeps a simplex or a prism, split into simplices), and a
Gauss rule on every piece integrates polynomials times the box's constant value exactly.
The grid is extended by the mesh's bounding box, so the pieces tile every owned cell.

:func:`cut_quadrature` returns the pieces' points in the reference coordinates of their
cells, weights and data values; :mod:`bridgesolve.pde.projection` assembles ``(ρ, φ_i)``
from them (an exact right-hand side for any Lagrange degree on affine cells).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from bridgesolve._dolfinx import basix, dolfinx

#: Owned cells per block of pieces (bounds the work arrays).
CELL_BLOCK = 4096

# Sub-simplices of the kept part of a simplex: vertices are indices of kept (first k) or
# dropped vertices, or pairs (kept, dropped) naming the cut point on that edge.
_PIECES = {
    1: {1: [(0, (0, 1))]},
    2: {1: [(0, (0, 1), (0, 2))],
        2: [(0, 1, (1, 2)), (0, (1, 2), (0, 2))]},
    3: {1: [(0, (0, 1), (0, 2), (0, 3))],
        # prisms (p0 p1 p2 | q0 q1 q2) as (p0 p1 p2 q0), (p1 p2 q0 q1), (p2 q0 q1 q2)
        2: [(0, (0, 2), (0, 3), 1), ((0, 2), (0, 3), 1, (1, 2)),
            ((0, 3), 1, (1, 2), (1, 3))],
        3: [(0, 1, 2, (0, 3)), (1, 2, (0, 3), (1, 3)), (2, (0, 3), (1, 3), (2, 3))]},
}


def _clip(simplices: np.ndarray, owner: np.ndarray, axis: int, value: np.ndarray,
          above: bool) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``simplices`` ``(S, d+1, d)`` with ``x[axis] >= value`` (``above``) or
    ``<= value`` (per simplex ``value``), as simplices with their ``owner`` indices."""
    d = simplices.shape[2]
    dist = simplices[:, :, axis] - value[:, None]
    if not above:
        dist = -dist
    kept = dist >= 0.0
    k = kept.sum(axis=1)
    out, own = [simplices[k == d + 1]], [owner[k == d + 1]]
    for kk, pieces in _PIECES[d].items():
        sel = np.flatnonzero(k == kk)
        if not sel.size:
            continue
        order = np.argsort(~kept[sel], axis=1, kind="stable")  # kept vertices first
        S = np.take_along_axis(simplices[sel], order[:, :, None], axis=1)
        D = np.take_along_axis(dist[sel], order, axis=1)
        v = value[sel]

        def vertex(spec, S=S, D=D, v=v):
            if isinstance(spec, int):
                return S[:, spec]
            i, j = spec
            t = D[:, i] / (D[:, i] - D[:, j])  # D_i >= 0 > D_j
            p = S[:, i] + t[:, None] * (S[:, j] - S[:, i])
            p[:, axis] = v
            return p

        for piece in pieces:
            out.append(np.stack([vertex(spec) for spec in piece], axis=1))
            own.append(owner[sel])
    return np.concatenate(out), np.concatenate(own)


def _volumes(simplices: np.ndarray) -> np.ndarray:
    """``|det J|`` of each simplex (d! times its volume)."""
    J = simplices[:, 1:] - simplices[:, :1]
    return np.abs(np.linalg.det(J))


def _pairs(lo: np.ndarray, hi: np.ndarray, edges: list[np.ndarray]):
    """``(cell, box index per axis)`` of every grid box that a cell's bounding box
    ``[lo, hi]`` (``(C, d)``) meets."""
    first, count = [], []
    for i, e in enumerate(edges):
        j0 = np.clip(np.searchsorted(e, lo[:, i], side="right") - 1, 0, e.size - 2)
        j1 = np.clip(np.searchsorted(e, hi[:, i], side="left") - 1, 0, e.size - 2)
        first.append(j0)
        count.append(j1 - j0 + 1)
    count = np.stack(count, axis=1)
    total = np.prod(count, axis=1)
    cell = np.repeat(np.arange(lo.shape[0]), total)
    rank = np.arange(cell.size) - np.repeat(np.cumsum(total) - total, total)
    index = np.empty((cell.size, len(edges)), dtype=np.int64)
    for i in range(len(edges) - 1, -1, -1):  # mixed radix: the last axis fastest
        c = count[cell, i]
        index[:, i] = first[i][cell] + rank % c
        rank //= c
    return cell, index


def cut_quadrature(mesh, edges: list[np.ndarray], fn: Callable, degree: int
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks ``(cells, X, w, values)`` of a quadrature of degree ``degree`` on the pieces
    of this rank's owned cells cut by the tensor grid ``edges`` (per-axis sorted arrays):
    ``X`` the points in the reference coordinates of their ``cells``, ``w`` the weights,
    ``values`` of ``fn`` (callable of points ``(N, d)``; evaluated at box centres) on the
    pieces' boxes. Affine (degree-1 geometry) simplex meshes only."""
    tdim = mesh.topology.dim
    x = mesh.geometry.x[:, :tdim]
    cells = mesh.geometry.dofmaps[0][: mesh.topology.index_map(tdim).size_local]
    cell_type = dolfinx.cpp.mesh.to_string(mesh.topology.cell_type)
    Xq, wq = basix.make_quadrature(getattr(basix.CellType, cell_type), degree)
    span = (x.max(axis=0) - x.min(axis=0)) if x.size else np.ones(tdim)
    outer = [np.unique(np.concatenate([[x[:, i].min() - span[i] - 1.0], e,
                                       [x[:, i].max() + span[i] + 1.0]]))
             for i, e in enumerate(edges)] if x.size else edges
    for start in range(0, cells.shape[0], CELL_BLOCK):
        block = np.arange(start, min(start + CELL_BLOCK, cells.shape[0]))
        V = x[cells[block]]  # (C, d+1, d)
        cell, index = _pairs(V.min(axis=1), V.max(axis=1), outer)
        lo = np.stack([outer[i][index[:, i]] for i in range(tdim)], axis=1)
        hi = np.stack([outer[i][index[:, i] + 1] for i in range(tdim)], axis=1)
        values = np.asarray(fn(0.5 * (lo + hi)), dtype=float)
        S, own = V[cell], np.arange(cell.size)
        for i in range(tdim):
            inside_lo = np.all(V[cell][:, :, i] >= lo[:, i:i + 1], axis=1)
            inside_hi = np.all(V[cell][:, :, i] <= hi[:, i:i + 1], axis=1)
            for bound, above, skip in ((lo, True, inside_lo), (hi, False, inside_hi)):
                if np.all(skip[own]):
                    continue
                S, own = _clip(S, own, i, bound[own, i], above)
        vol = _volumes(S)
        keep = vol > 1e-14 * _volumes(V[cell[own]])
        S, own, vol = S[keep], own[keep], vol[keep]
        pts = S[:, :1] + np.einsum("sjd,qj->sqd", S[:, 1:] - S[:, :1], Xq)  # (P, q, d)
        Vc = V[cell[own]]
        Jinv = np.linalg.inv(np.transpose(Vc[:, 1:] - Vc[:, :1], (0, 2, 1)))
        X = np.einsum("sde,sqe->sqd", Jinv, pts - Vc[:, :1])
        yield (np.repeat(block[cell[own]], Xq.shape[0]), X.reshape(-1, tdim),
               (vol[:, None] * wq[None, :]).reshape(-1),
               np.repeat(values[own], Xq.shape[0]))


__all__ = ["cut_quadrature"]
