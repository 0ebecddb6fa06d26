"""Point location on affine simplex meshes: a box tree and the inverse affine map of every
local cell (cached per mesh), and the :class:`~bridgesolve.spacetime.PointLocator` built on
them (no per-call DOLFINx collision search beyond the tree)."""

from __future__ import annotations

import numpy as np

from bridgesolve._dolfinx import MPI, dolfinx

_GEOMETRY: dict = {}


def affine_geometry(mesh):
    """Box tree and inverse affine maps ``λ = B (x - x_0)`` of every local cell (cached per
    mesh)."""
    key = id(mesh)
    hit = _GEOMETRY.get(key)
    if hit is not None and hit[0] is mesh:
        return hit[1]
    tdim, gdim = mesh.topology.dim, mesh.geometry.dim
    im = mesh.topology.index_map(tdim)
    ncells = im.size_local + im.num_ghosts
    verts = mesh.geometry.x[mesh.geometry.dofmaps[0][:ncells]][:, :, :gdim]  # (c, d+1, d)
    origin = verts[:, 0]
    B = np.linalg.inv(np.swapaxes(verts[:, 1:] - origin[:, None], 1, 2))  # (c, d, d)
    tree = dolfinx.geometry.bb_tree(mesh, tdim)
    if len(_GEOMETRY) > 8:
        _GEOMETRY.clear()
    _GEOMETRY[key] = (mesh, (tree, origin, B))
    return tree, origin, B


class AffineLocator:
    """:class:`~bridgesolve.spacetime.PointLocator` for affine simplex meshes, with the
    same attributes and the same collective ownership rule (lowest rank that finds a
    point evaluates it)."""

    def __init__(self, mesh, pts: np.ndarray, geometry):
        tree, origin, B = geometry
        comm = mesh.comm
        dim = mesh.geometry.dim
        self.comm = comm
        self.n_local = pts.shape[0]
        if comm.size > 1:
            counts = comm.allgather(self.n_local)
            self.offset = int(sum(counts[: comm.rank]))
            gathered = np.concatenate(comm.allgather(np.ascontiguousarray(pts, dtype=float)))
        else:
            self.offset, gathered = 0, np.ascontiguousarray(pts, dtype=float)
        n = gathered.shape[0]
        p3 = np.zeros((n, 3))
        p3[:, :dim] = gathered.reshape(n, dim)
        cand = dolfinx.geometry.compute_collisions_points(tree, p3)
        offsets = np.asarray(cand.offsets)
        cells_c = np.asarray(cand.array)
        point_c = np.repeat(np.arange(n), np.diff(offsets))
        lam = np.einsum("cij,cj->ci", B[cells_c], p3[point_c, :dim] - origin[cells_c])
        tol = 1e-10
        inside = (lam.min(axis=1) >= -tol) & (lam.sum(axis=1) <= 1.0 + tol)
        cells = np.full(n, -1, dtype=np.int32)
        # the first containing candidate of each point (reverse assignment keeps the first)
        ok = np.flatnonzero(inside)[::-1]
        cells[point_c[ok]] = cells_c[ok]
        has = cells >= 0
        owner = np.where(has, comm.rank, comm.size).astype(np.int32)
        if comm.size > 1:
            global_owner = np.empty_like(owner)
            comm.Allreduce(owner, global_owner, op=MPI.MIN)
        else:
            global_owner = owner
        self.mine = global_owner == comm.rank
        self.found = global_owner < comm.size
        self.p3 = p3[self.mine]
        self.cells = cells[self.mine]
        self.n_total = n
