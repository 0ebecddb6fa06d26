"""Entropy production ``Π``, ``Φ``, ``dS/dt`` of mesh densities: quadrature of FE fields on the
owned cells (DOLFINx only inside the functions); re-exported by :mod:`bridgesolve.thermo`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._validate import BridgesolveInputError, choice, positive, positive_int
from bridgesolve.process import Process

#: Relative floor of nodal densities before logarithms (as :data:`bridgesolve.score.LOG_FLOOR`).
LOG_FLOOR = float(np.finfo(float).eps)

# =========================================================================================
# Quadrature of FE fields on the owned cells
# =========================================================================================
class _CellQuadrature:
    """Values and gradients of FE coefficient vectors at the quadrature points of this
    rank's owned cells, in the ordering of :func:`bridgesolve.quadrature.mesh_quadrature`.

    Affine simplex meshes with Lagrange elements without dof transformations (P1, P2):
    the reference basis is tabulated once and mapped by each cell's inverse Jacobian.
    Otherwise compiled ``fem.Expression`` objects evaluate a work function.
    """

    def __init__(self, space, degree: int, *, tabulate: bool = True):
        from bridgesolve._dolfinx import basix, dolfinx
        from bridgesolve.quadrature import mesh_quadrature

        mesh = space.mesh
        self.space = space
        self.comm = mesh.comm
        tdim, gdim = mesh.topology.dim, mesh.geometry.dim
        self.gdim = gdim
        self.ncells = mesh.topology.index_map(tdim).size_local
        self.degree = degree
        self.points, self.weights = mesh_quadrature(mesh, degree)
        cell = getattr(basix.CellType, dolfinx.cpp.mesh.to_string(mesh.topology.cell_type))
        X, _ = basix.make_quadrature(cell, degree)
        self.X = X
        self.nq = X.shape[0]
        affine = mesh.geometry.cmaps[0].degree == 1 and tdim == gdim
        self.fast = tabulate and affine and not space.element.needs_dof_transformations \
            and space.dofmap.index_map_bs == 1
        if self.fast:
            import scipy.sparse as sp

            tab = space.ufl_element().tabulate(1, X)  # (1 + tdim, nq, ndofs_cell)
            phi, dphi = tab[0], tab[1:]  # (nq, nd), (tdim, nq, nd)
            dofs = np.asarray(space.dofmap.list)[: self.ncells]
            g = mesh.geometry.x[mesh.geometry.dofmaps[0][: self.ncells]][:, :, :gdim]
            J = np.swapaxes(g[:, 1:] - g[:, :1], 1, 2)  # (c, gdim, tdim)
            K = np.linalg.inv(J) if self.ncells else np.zeros((0, tdim, gdim))
            n_local = space.dofmap.index_map.size_local + space.dofmap.index_map.num_ghosts
            nd = phi.shape[1]
            rows = np.repeat(np.arange(self.ncells * self.nq), nd)
            cols = np.repeat(dofs[:, None, :], self.nq, axis=1).reshape(-1)
            shape = (self.ncells * self.nq, n_local)

            def matrix(entries):
                return sp.csr_matrix((entries.reshape(-1), (rows, cols)), shape=shape)

            # (Nq, n_local) sparse maps from coefficients to values / gradient components
            self.P = matrix(np.broadcast_to(phi, (self.ncells, *phi.shape)))
            self.G = [matrix(np.einsum("cj,jqn->cqn", K[:, :, i], dphi)) for i in range(gdim)]
        else:
            from bridgesolve._dolfinx import fem, ufl

            self._u = fem.Function(space)
            self._ev = fem.Expression(self._u, X)
            self._eg = fem.Expression(ufl.grad(self._u), X)
            self._cells = np.arange(self.ncells, dtype=np.int32)

    def values(self, U: np.ndarray) -> np.ndarray:
        """``(Nq, L)`` values of the ``(L, n_local)`` coefficient vectors ``U``."""
        if self.fast:
            return self.P @ np.ascontiguousarray(U.T)
        out = np.zeros((self.points.shape[0], U.shape[0]))
        for i, row in enumerate(U):
            self._u.x.array[:] = row
            if self.ncells:
                out[:, i] = np.asarray(self._ev.eval(self.space.mesh, self._cells)).reshape(-1)
        return out

    def gradients(self, U: np.ndarray) -> list[np.ndarray]:
        """The ``gdim`` gradient components, each ``(Nq, L)``, of the vectors ``U``."""
        if self.fast:
            Ut = np.ascontiguousarray(U.T)
            return [G @ Ut for G in self.G]
        out = np.zeros((self.gdim, self.points.shape[0], U.shape[0]))
        for i, row in enumerate(U):
            self._u.x.array[:] = row
            if self.ncells:
                vals = np.asarray(self._eg.eval(self.space.mesh, self._cells))
                out[:, :, i] = vals.reshape(-1, self.gdim).T
        return list(out)


def _log_nodal(field, rows: np.ndarray, floor: float) -> np.ndarray:
    """``log max(u, floor · peak_n)`` of the nodal values (peaks global over ranks)."""
    from bridgesolve._dolfinx import MPI

    vals = field.values[rows]
    if field.representation == "log":
        return vals
    local = vals.max(axis=1) if vals.shape[1] else np.full(len(rows), -np.inf)
    peak = np.empty_like(local)
    field.comm.Allreduce(local, peak, op=MPI.MAX)
    return np.log(np.maximum(vals, np.maximum(1e-300, floor * peak)[:, None]))


def _coef(value, name: str) -> Callable[[float], float]:
    if value is None:
        return None
    if callable(value):
        return lambda t: float(np.asarray(value(t)))
    v = positive(name, value)
    return lambda t: v


def _process_of(p, process) -> Process:
    process = process if process is not None else p.info.get("process")
    if not isinstance(process, Process):
        raise BridgesolveInputError(
            f"process = {process!r}: pass the bridgesolve process whose Fokker–Planck "
            f"solution {getattr(p, 'name', p)!r} is (the field does not carry it)")
    return process


# =========================================================================================
# Entropy production on the mesh
# =========================================================================================
@dataclass
class EntropyProduction:
    """Entropy production rates at every level of a time grid.

    Attributes:
        times: forward times ``t_n`` of the marginals ``p_{t_n}``.
        total: ``Π(t_n)`` (``Π^*`` for the reverse process; equal to ``Π``).
        flow: ``Φ(t_n)`` (``Φ^*`` for the reverse process at reverse time ``T - t_n``).
        system: ``dS/dt`` (``dS^*/ds = -dS/dt`` for the reverse process).
        reverse: whether these are the reverse process's rates.
        info: quadrature degree, timings.
    """

    times: np.ndarray
    total: np.ndarray
    flow: np.ndarray
    system: np.ndarray
    reverse: bool = False
    info: dict = field(default_factory=dict)

    def integral(self, quantity: str = "total") -> float:
        """``∫ q dt`` over the grid (trapezoidal rule) for ``quantity`` in total/flow/system."""
        choice("quantity", quantity, ("total", "flow", "system"))
        y = getattr(self, quantity)
        return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(self.times)))

    def argmin(self, quantity: str = "flow") -> tuple[float, float]:
        """``(t, value)`` at the minimum of ``quantity``, refined by a parabola through the
        smallest level and its neighbours."""
        choice("quantity", quantity, ("total", "flow", "system"))
        return _refined_extremum(self.times, getattr(self, quantity))

    def as_dict(self) -> dict:
        return {"times": self.times.tolist(), "total": self.total.tolist(),
                "flow": self.flow.tolist(), "system": self.system.tolist(),
                "reverse": self.reverse}


def _refined_extremum(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    i = int(np.argmin(y))
    if 0 < i < y.size - 1:
        tt, yy = t[i - 1: i + 2], y[i - 1: i + 2]
        c2, c1, c0 = np.polyfit(tt, yy, 2)
        if c2 > 0:
            tm = float(np.clip(-c1 / (2 * c2), tt[0], tt[-1]))
            return tm, float(c0 + c1 * tm + c2 * tm * tm)
    return float(t[i]), float(y[i])


def entropy_production(
    p,
    *,
    process: Process | None = None,
    reverse: bool = False,
    drift=None,
    diffusion=None,
    degree: int | None = None,
    floor: float = LOG_FLOOR,
    chunk: int | None = None,
) -> EntropyProduction:
    r"""``Π``, ``Φ`` and ``dS/dt`` of the process whose marginals are ``p``, at every level.

    Args:
        p: a :class:`~bridgesolve.SpaceTimeField` of densities (linear, e.g. a Fokker–Planck
            solution or a generated density ``q_h``; or log, e.g. ``bridge.log_rho``), any
            dimension and Lagrange degree.
        process: the reference process (drift ``f``, diffusion ``D``); required unless both
            ``drift`` and ``diffusion`` are given.
        reverse: the time-reversed process in ``s = T - t``: drift
            ``F^* = -f + 2D\nabla\log p_h`` (unless ``drift`` is given), current ``-J``.
            Results stay indexed by the forward time ``t`` of ``p_t``; rates are per unit
            of ``s`` (so ``system`` is ``dS^*/ds = -dS/dt``).
        drift: the drift ``F`` of the dynamics whose marginals are ``p``, in that dynamics'
            own time direction, as a function of the forward time: a
            :class:`~bridgesolve.score.VectorField` on ``p``'s mesh and grid (evaluated at
            the quadrature points) or a callable ``F(x (N, d), t) -> (N, d)``. Use it where
            the process is not the reference: a bridge's ``forward_drift()`` with
            ``p = bridge.rho``, or for a generated density ``q_h`` of the sampler with a
            learned score ``s_θ``: ``reverse=True``, ``drift = -f + (1 + h²) D s_θ`` and
            ``diffusion = h² D``.
        diffusion: ``D(t)`` (number or callable) of that dynamics (default the process's).
        degree: quadrature degree (default ``k + 2 max(1, k - 1)``, exact for linear fields
            with a linear drift; +2 for log fields).
        floor: relative floor of nodal densities before the logarithm.
        chunk: time levels processed per block (default: ~4e6 quadrature values a block).

    Returns:
        :class:`EntropyProduction` (rank-independent).
    """
    from bridgesolve.spacetime import SpaceTimeField

    if not isinstance(p, SpaceTimeField):
        raise BridgesolveInputError(f"p = {p!r}: expected a SpaceTimeField of densities")
    if drift is None or diffusion is None:
        process = _process_of(p, process)
    D = _coef(diffusion, "diffusion") or (lambda t: float(process.diffusion(t)))
    t_start = time.perf_counter()
    k = p.space.ufl_element().embedded_superdegree
    if degree is None:
        degree = k + 2 * max(1, k - 1) + (2 if p.representation == "log" else 0)
    quad = _CellQuadrature(p.space, positive_int("degree", degree))
    times = p.times
    nlev = times.size
    nq = quad.points.shape[0]
    if chunk is None:
        chunk = max(1, min(nlev, int(4e6 // max(1, nq * quad.gdim))))
    drift_at = _drift_at_quadrature(drift, process, quad, p)
    total, flow = np.empty(nlev), np.empty(nlev)
    t_setup = time.perf_counter() - t_start
    from bridgesolve._dolfinx import MPI

    for start in range(0, nlev, chunk):
        rows = np.arange(start, min(nlev, start + chunk))
        logs = _log_nodal(p, rows, floor)
        if p.representation == "log":
            # P2 interpolants of logs overshoot next to steep tails: cap at the level's peak
            local_peak = np.max(logs, axis=1, initial=-np.inf)
            peak = np.empty_like(local_peak)
            p.comm.Allreduce(local_peak, peak, op=MPI.MAX)
            dens = np.exp(np.minimum(quad.values(logs), peak[None, :]))
        else:
            dens = np.maximum(quad.values(p.values[rows]), 0.0)
        wd = quad.weights[:, None] * dens  # (Nq, L)
        s = quad.gradients(logs)  # d × (Nq, L)
        Dn = np.array([D(float(times[n])) for n in rows])
        F = _drift_components(drift_at, process, quad, times, rows)  # d × (Nq, L)
        if reverse and drift_at is None:
            F = [2.0 * Dn * si - Fi for Fi, si in zip(F, s, strict=True)]
        vel = [Fi - Dn * si for Fi, si in zip(F, s, strict=True)]
        vv = sum(vi * vi for vi in vel)
        vF = sum(vi * Fi for vi, Fi in zip(vel, F, strict=True))
        local = np.stack([np.einsum("ql,ql->l", wd, vv), np.einsum("ql,ql->l", wd, vF)])
        glob = np.empty_like(local)
        quad.comm.Allreduce(local, glob, op=MPI.SUM)
        total[rows] = glob[0] / Dn
        flow[rows] = glob[1] / Dn
    # dS/dt = Π - Φ = -∫ p v·s exactly (v = F - D s)
    system = total - flow
    info = {"degree": degree, "quadrature_points": int(quad.comm.allreduce(nq)),
            "fast_tabulation": quad.fast,
            "timings": {"setup_s": t_setup, "total_s": time.perf_counter() - t_start}}
    return EntropyProduction(times.copy(), total, flow, system, reverse=bool(reverse),
                             info=info)


def _f0_at(process: Process, quad: _CellQuadrature) -> np.ndarray:
    """``f_0`` at the quadrature points (NumPy, or the UFL drift shape by an Expression),
    kept on ``quad`` for the next block of levels."""
    hit = getattr(quad, "_f0", None)
    if hit is not None and hit[0] is process:
        return hit[1]
    try:
        f0 = np.asarray(process.drift_shape(quad.points), dtype=float).reshape(-1, quad.gdim)
    except BridgesolveInputError:
        from bridgesolve._dolfinx import fem, ufl

        mesh = quad.space.mesh
        expr = process.drift_shape_ufl(ufl.SpatialCoordinate(mesh))
        cells = np.arange(quad.ncells, dtype=np.int32)
        f0 = np.asarray(fem.Expression(expr, quad.X).eval(mesh, cells)).reshape(-1, quad.gdim)
    quad._f0 = (process, f0)
    return f0


def _drift_components(drift_at, process, quad, times, rows) -> list[np.ndarray]:
    """The drift at the quadrature points of the levels ``rows``: ``d × (Nq, L)``."""
    if drift_at is None:
        f0 = _f0_at(process, quad)
        k = np.array([float(process.drift_rate(float(times[n]))) for n in rows])
        return [f0[:, i][:, None] * k[None, :] for i in range(quad.gdim)]
    vals = np.stack([drift_at(n, float(times[n])) for n in rows], axis=-1)  # (Nq, d, L)
    return [np.ascontiguousarray(vals[:, i, :]) for i in range(quad.gdim)]


def _drift_at_quadrature(drift, process, quad: _CellQuadrature, p):
    """``None`` (use the process) or ``(n, t) -> F (Nq, d)`` at the quadrature points."""
    if drift is None:
        return None
    from bridgesolve.score import VectorField

    if isinstance(drift, VectorField) and drift.mesh is not None:
        if drift.mesh is not p.mesh:
            raise BridgesolveInputError("drift: a mesh VectorField must live on p's mesh")

        def at(n, t):
            _, _, vals = drift.at_quadrature(quad.degree, times=[t])
            return vals[0]

        return at
    if not callable(drift):
        raise BridgesolveInputError(f"drift = {drift!r}: expected a VectorField or F(x, t)")

    def at_np(n, t):
        if not quad.points.shape[0]:
            return np.zeros((0, quad.gdim))
        return np.asarray(drift(quad.points, t), dtype=float).reshape(-1, quad.gdim)

    return at_np
