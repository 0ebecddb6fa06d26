r"""Stochastic thermodynamics of diffusion processes on the mesh (Yu & Huang, PRE 111, 014111).

A process ``dX = F(X, t) dt + \sqrt{2 D(t)}\, dW`` with marginals ``p_t`` carries the
probability current ``J = F p - D \nabla p = p\,(F - D \nabla \log p)``. Its

.. math::
    \Pi = \int \frac{|J|^2}{D\,p}\,dx \;(\text{total entropy production}),\qquad
    \Phi = \int \frac{J\cdot F}{D}\,dx \;(\text{entropy flow to the medium}),\qquad
    \frac{dS}{dt} = \Pi - \Phi = -\int J\cdot\nabla\log p\,dx = \frac{d}{dt}\Big(-\int p\log p\Big).

**Reverse process.** The time reversal in ``s = T - t`` has the same marginals read
backwards, ``p_{T-s}``, drift ``F^* = -f + 2D\nabla\log p`` and current ``J^* = -J``: hence
``\Pi^* = \Pi``, ``\Phi^* = \Phi - 2\int J\cdot\nabla\log p = \Phi + 2\,dS/dt`` and
``dS^*/ds = -dS/dt``. *Time convention:* every result here is indexed by the forward time
``t`` of the marginal ``p_t`` (the reverse process is at ``s = T - t`` there), and reverse
rates are per unit of the reverse time ``s``.

**Discretization.** ``Π, Φ, dS/dt`` are assembled by quadrature on the owned cells of the
mesh (rank-independent sums) with the FE gradient of ``I_h \log \max(p_h, ε \max p_h)``,
the interpolant of the floored nodal logarithms (as :func:`bridgesolve.score.grad_log`: it
stays finite in the tails, where ``\nabla p_h / p_h`` divides round-off): with ``v = F -
D s_h``, ``Π = Σ w p_h |v|²/D``, ``Φ = Σ w p_h v·F/D``, ``dS/dt = -Σ w p_h v·s_h``. On affine
simplex meshes the Lagrange basis and its gradients are tabulated once (basix) and applied to
blocks of time levels with dense NumPy products: no per-level compilation or assembly (2D P2
at 1e5 dofs: ~15 ms a level). Other meshes use compiled ``fem.Expression`` objects (built once).

**Effective potential and speciation.** For a linear process (``f = -k(t)(x - c)``) the
reverse drift is ``-\nabla U`` with ``U(x, t) = -k(t)|x - c|^2/2 - g(t)^2 \log p_t(x)``.
The *speciation time* ``t_s`` is where ``∂²U/∂x²`` at a point changes sign (the potential
turns from one well into two); the *bimodality time* is where ``∂² \log p_t`` changes sign
there (``p_t`` itself stops being bimodal) — a different, earlier-in-reverse quantity.

**Trajectories.** Along a path ``x(·)``: ``ΔS_sys = \log p_{start}(x_{start}) - \log
p_{end}(x_{end})``, ``ΔS_E = \int (F/D)∘dx`` (Stratonovich, midpoint rule) and ``ΔS_tot =
ΔS_sys + ΔS_E``, with ``⟨e^{-ΔS_tot}⟩ = 1`` and ``⟨ΔS_tot⟩ = \int Π dt``.

**Franz–Parisi potential** of a planted point under the OU posterior: see
:func:`franz_parisi`.

The closed forms of the paper's symmetric two-Gaussian OU case are NumPy functions
(:class:`SymmetricTwoGaussianOU`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp, ndtr

from bridgesolve._validate import BridgesolveInputError, choice, positive, positive_int
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import OU, Process

#: Relative floor of nodal densities before logarithms (as :data:`bridgesolve.score.LOG_FLOOR`).
LOG_FLOOR = float(np.finfo(float).eps)

_GH_CACHE: dict = {}


def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite rule: ``E[h(Z)] ≈ Σ w_i h(z_i)``, ``Z ~ N(0, 1)``."""
    if n not in _GH_CACHE:
        z, w = np.polynomial.hermite_e.hermegauss(n)
        _GH_CACHE[n] = (z, w / math.sqrt(2.0 * math.pi))
    return _GH_CACHE[n]


# =========================================================================================
# Closed forms: the symmetric two-Gaussian data under dx = -x dt + √2 dW
# =========================================================================================
@dataclass(frozen=True)
class SymmetricTwoGaussianOU:
    r"""``p_0 = ½N(μ, σ²) + ½N(-μ, σ²)`` under the OU process ``dx = -x dt + √2 dW``.

    With ``a = μ e^{-t}`` and ``v = 1 - e^{-2t} + σ² e^{-2t}``: ``p_t = ½N(a, v) + ½N(-a, v)``,
    ``∂_x \log p_t = [a \tanh(a x / v) - x] / v``. With the Fisher information
    ``I(t) = E_{p_t}[(∂_x \log p_t)^2]`` (Gauss–Hermite, 96 nodes, to round-off):

    * ``Φ(t) = E[x²] - 1 = e^{-2t}(μ² + σ² - 1)``,
    * ``dS/dt = I - 1``, ``Π = Φ + dS/dt = e^{-2t}(μ² + σ² - 1) + I - 1``,
    * reverse: ``Π^* = Π``, ``Φ^* = Φ + 2(I - 1)``, ``dS^*/ds = 1 - I``,
    * ``t_s = ½ \log(μ² + \sqrt{(1 - σ²)² + μ⁴})`` (``∂²_x U(0, t) = 0``),
      ``t_b = ½ \log(μ² + 1 - σ²)`` (``∂²_x \log p_t(0) = 0``).

    Args:
        mu: the half-distance of the two modes.
        sigma2: the variance ``σ²`` of each mode.
    """

    mu: float
    sigma2: float

    def __post_init__(self):
        positive("mu", self.mu, allow_zero=True)
        positive("sigma2", self.sigma2)

    @property
    def data(self) -> GaussianMixture:
        return GaussianMixture([0.5, 0.5], [[self.mu], [-self.mu]], [self.sigma2] * 2)

    @property
    def process(self) -> OU:
        return OU()

    def a(self, t):
        return self.mu * np.exp(-np.asarray(t, dtype=float))

    def v(self, t):
        e = np.exp(-2.0 * np.asarray(t, dtype=float))
        return 1.0 - e + self.sigma2 * e

    def log_pdf(self, x, t):
        x = np.asarray(x, dtype=float)
        a, v = self.a(t), self.v(t)
        return (np.logaddexp(-(x - a) ** 2 / (2 * v), -(x + a) ** 2 / (2 * v))
                - 0.5 * np.log(2 * np.pi * v) - np.log(2.0))

    def pdf(self, x, t):
        return np.exp(self.log_pdf(x, t))

    def score(self, x, t):
        x = np.asarray(x, dtype=float)
        a, v = self.a(t), self.v(t)
        return (a * np.tanh(a * x / v) - x) / v

    def d2_log_pdf(self, x, t):
        """``∂²_x \\log p_t(x)``."""
        x = np.asarray(x, dtype=float)
        a, v = self.a(t), self.v(t)
        return (a * a / v / np.cosh(a * x / v) ** 2 - 1.0) / v

    def potential(self, x, t):
        """``U(x, t) = -x²/2 - 2 \\log p_t(x)`` (reverse drift ``-∂_x U``)."""
        x = np.asarray(x, dtype=float)
        return -0.5 * x * x - 2.0 * self.log_pdf(x, t)

    def d2_potential(self, x, t):
        return -1.0 - 2.0 * self.d2_log_pdf(x, t)

    def _expect(self, fn, t, n: int = 96):
        """``E_{p_t}[fn(x, t)]`` by symmetry over the component ``N(a, v)``."""
        z, w = _hermite(n)
        t = np.atleast_1d(np.asarray(t, dtype=float))
        out = np.empty(t.shape)
        for i, ti in enumerate(t):
            x = self.a(ti) + np.sqrt(self.v(ti)) * z
            out[i] = w @ fn(x, ti)
        return out

    def fisher(self, t):
        """``I(t) = E[(∂_x \\log p_t)^2]``."""
        return self._expect(lambda x, s: self.score(x, s) ** 2, t)

    def flow(self, t):
        """``Φ(t) = E[x²] - 1``."""
        return np.exp(-2.0 * np.asarray(t, dtype=float)) * (self.mu**2 + self.sigma2 - 1.0)

    def system(self, t):
        """``dS/dt = I - 1``."""
        return self.fisher(t) - 1.0

    def total(self, t):
        """``Π(t)``."""
        return self.flow(t) + self.system(t)

    def flow_reverse(self, t):
        """``Φ^*`` at forward time ``t`` (reverse time ``T - t``)."""
        return self.flow(t) + 2.0 * self.system(t)

    def kl_to_normal(self, t):
        """``KL(p_t ‖ N(0, 1))``; ``∫_t^∞ Π = KL(p_t ‖ N(0, 1))``."""
        return self._expect(lambda x, s: self.log_pdf(x, s) + 0.5 * x * x
                            + 0.5 * np.log(2 * np.pi), t)

    def entropy(self, t):
        """Shannon entropy ``-∫ p_t \\log p_t``."""
        return -self._expect(self.log_pdf, t)

    @property
    def speciation_time(self) -> float:
        return speciation_time_closed(self.mu, self.sigma2)

    @property
    def bimodality_time(self) -> float:
        return bimodality_time_closed(self.mu, self.sigma2)

    def reverse_flow_minimum(self, t_max: float = 10.0) -> tuple[float, float]:
        """``(t*, min Φ*)``: where the reverse entropy flow is smallest on ``[0, t_max]``."""
        from scipy.optimize import minimize_scalar

        ts = np.linspace(0.0, t_max, 2001)
        vals = self.flow_reverse(ts)
        i = int(np.argmin(vals))
        lo, hi = ts[max(i - 1, 0)], ts[min(i + 1, ts.size - 1)]
        if i in (0, ts.size - 1):
            return float(ts[i]), float(vals[i])
        res = minimize_scalar(lambda s: float(self.flow_reverse(s)[0]), bounds=(lo, hi),
                              method="bounded", options={"xatol": 1e-10})
        return float(res.x), float(res.fun)


def speciation_time_closed(mu, sigma2):
    """``t_s = ½ \\log(μ² + \\sqrt{(1 - σ²)² + μ⁴})`` (negative: no symmetry breaking)."""
    mu2 = np.asarray(mu, dtype=float) ** 2
    return 0.5 * np.log(mu2 + np.sqrt((1.0 - np.asarray(sigma2, dtype=float)) ** 2 + mu2**2))


def bimodality_time_closed(mu, sigma2):
    """``t_b = ½ \\log(μ² + 1 - σ²)``: where ``p_t`` stops being bimodal (NaN if never)."""
    arg = np.asarray(mu, dtype=float) ** 2 + 1.0 - np.asarray(sigma2, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * np.log(np.where(arg > 0, arg, np.nan))


def no_breaking_boundary(sigma):
    """``μ(σ)`` of the boundary ``μ² = σ²(2 - σ²)/2`` (``t_s = 0``); σ the standard deviation."""
    s2 = np.asarray(sigma, dtype=float) ** 2
    return np.sqrt(np.clip(s2 * (2.0 - s2) / 2.0, 0.0, None))


#: The standard deviation above which ``e^{-U(·, 0)}`` is not normalizable (``σ² > 2``).
UNSTABLE_SIGMA = math.sqrt(2.0)


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


# =========================================================================================
# Effective potential, speciation and bimodality
# =========================================================================================
def _linear_process(process: Process) -> Process:
    if not isinstance(process, Process):
        raise BridgesolveInputError(f"process = {process!r}: expected a bridgesolve process")
    if not process.linear:
        raise BridgesolveInputError(
            f"process {process!r}: the effective potential needs a linear drift "
            "f = -k(t)(x - c) (a gradient); custom drifts have none in general")
    return process


def effective_potential(p, t: float, *, process: Process | None = None, x=None,
                        floor: float = LOG_FLOOR):
    r"""``U(x, t) = -k(t)|x - c|²/2 - g(t)² \log p_t(x)``: the reverse drift is ``-∇U``.

    For the paper's OU (``k = 1``, ``g² = 2``) this is ``-x²/2 - 2 \log p_t``.

    Args:
        p: a density :class:`~bridgesolve.SpaceTimeField` (linear or log).
        t: a grid time.
        process: the linear reference process.
        x: points ``(N, d)``: return ``U`` there (collective; NaN outside the mesh). Without
            it a DOLFINx Function of ``p``'s space holds the nodal ``U``.
        floor: relative floor of nodal densities before the logarithm.
    """
    process = _linear_process(_process_of(p, process))
    k, g2 = float(process.drift_rate(t)), 2.0 * float(process.diffusion(t))
    c = float(getattr(process, "center", 0.0))
    if x is not None:
        from bridgesolve._validate import points

        pts = points("x", x, p.mesh.geometry.dim)
        if p.representation == "log":
            logp = p.evaluate(pts, t)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                logp = np.log(np.maximum(p.evaluate(pts, t), 1e-300))
        return -0.5 * k * np.sum((pts - c) ** 2, axis=1) - g2 * logp
    from bridgesolve._dolfinx import fem

    n = p.grid.index(t)
    logs = _log_nodal(p, np.array([n]), floor)[0]
    coords = p.space.tabulate_dof_coordinates()[:, : p.mesh.geometry.dim]
    U = fem.Function(p.space, name="U")
    U.x.array[:] = -0.5 * k * np.sum((coords - c) ** 2, axis=1) - g2 * logs
    return U


def _monomials(dim: int, degree: int) -> list[tuple[int, ...]]:
    from itertools import product

    return [e for e in product(range(degree + 1), repeat=dim) if sum(e) <= degree]


def log_density_curvature(p, *, x=None, direction=None, nodes: int | None = None,
                          floor: float = LOG_FLOOR) -> np.ndarray:
    r"""``e·∇² \log p_t(x)\,e`` at every level (rank-independent).

    A total-degree-4 polynomial is fitted by least squares to the (floored) nodal
    logarithms of the ``nodes`` owned dofs nearest ``x`` (default twice the number
    of monomials plus one, all ties included), and its Hessian at ``x`` is read off: accurate to
    the nodal error of ``p_h`` over the fit radius squared plus ``O(r⁴)``, with no
    second derivatives of the piecewise polynomial (which jump across facets).

    Args:
        p: a density field.
        x: the point (default the origin).
        direction: a vector ``e`` (normalized; default the first axis).
        nodes: how many nearest nodes to fit.
    """
    dim = p.mesh.geometry.dim
    x0 = np.zeros(dim) if x is None else np.asarray(x, dtype=float).reshape(dim)
    e = np.eye(dim)[0] if direction is None else np.asarray(direction, float).reshape(dim)
    e = e / np.linalg.norm(e)
    mons = _monomials(dim, 4)
    m = positive_int("nodes", nodes) if nodes is not None else 2 * len(mons) + 1
    n_owned = p.space.dofmap.index_map.size_local
    coords = p.space.tabulate_dof_coordinates()[:n_owned, :dim]
    dist = np.linalg.norm(coords - x0, axis=1)
    order = np.argsort(dist, kind="stable")[: 2 * m]
    logs = _log_nodal(p, np.arange(len(p)), floor)[:, :n_owned][:, order]
    gathered = p.comm.allgather((coords[order], dist[order], logs))
    C = np.concatenate([g[0] for g in gathered])
    R = np.concatenate([g[1] for g in gathered])
    Lv = np.concatenate([g[2] for g in gathered], axis=1)
    # the same selection and ordering on every rank: sort by distance, then coordinates
    keys = np.lexsort((*C.T[::-1], np.round(R, 12)))
    C, R, Lv = C[keys], R[keys], Lv[:, keys]
    if C.shape[0] < len(mons):
        raise BridgesolveInputError(
            f"log_density_curvature: only {C.shape[0]} nodes, need {len(mons)}")
    r = R[min(m, R.size) - 1]
    sel = R <= r * (1 + 1e-9) + 1e-14
    Y = (C[sel] - x0) / r
    A = np.stack([np.prod(Y ** np.array(mon), axis=1) for mon in mons], axis=1)
    coef = np.linalg.lstsq(A, Lv[:, sel].T, rcond=None)[0]  # (n_mon, levels)
    out = np.zeros(len(p))
    for i, mon in enumerate(mons):
        if sum(mon) != 2:
            continue
        idx = [j for j, a in enumerate(mon) for _ in range(a)]
        # y_i y_j (i ≠ j) and y_i² both contribute 2 c e_i e_j to e·H·e
        out += coef[i] * 2.0 * e[idx[0]] * e[idx[1]]
    return out / (r * r)


def potential_curvature(p, *, process: Process | None = None, x=None, direction=None,
                        nodes: int | None = None) -> np.ndarray:
    """``e·∇²U(x, t)\\,e = -k(t) - g(t)² e·∇²\\log p_t(x)\\,e`` at every level."""
    process = _linear_process(_process_of(p, process))
    t = p.times
    k = np.array([float(process.drift_rate(s)) for s in t])
    g2 = np.array([2.0 * float(process.diffusion(s)) for s in t])
    return -k - g2 * log_density_curvature(p, x=x, direction=direction, nodes=nodes)


def sign_change_time(times: np.ndarray, values: np.ndarray) -> float:
    """The latest time where ``values`` changes sign (the first the reverse dynamics meets),
    by root-finding on the cubic through the four levels around the bracketing pair
    (linear at the ends of the grid); NaN when the sign never changes."""
    from scipy.optimize import brentq

    t, y = np.asarray(times, float), np.asarray(values, float)
    idx = np.flatnonzero(np.sign(y[:-1]) * np.sign(y[1:]) < 0)
    exact = np.flatnonzero(y == 0.0)
    if idx.size == 0:
        return float(t[exact[-1]]) if exact.size else float("nan")
    n = int(idx[-1])
    lo, hi = max(0, n - 1), min(t.size, n + 3)
    if hi - lo < 4:
        return float(t[n] - y[n] * (t[n + 1] - t[n]) / (y[n + 1] - y[n]))
    coef = np.polyfit(t[lo:hi] - t[n], y[lo:hi], 3)
    return float(t[n] + brentq(lambda s: np.polyval(coef, s), 0.0, t[n + 1] - t[n]))


def speciation_time(p, *, process: Process | None = None, x=None, direction=None,
                    nodes: int | None = None) -> float:
    r"""The time ``t_s`` where ``∂²U/∂e²`` at ``x`` changes sign (one well ↔ two wells).

    Root-found between the grid levels (cubic interpolation of the curvature in t); the
    latest crossing if several; NaN if none (no symmetry breaking on the grid). For the
    symmetric two-Gaussian OU data: ``½ \log(μ² + \sqrt{(1 - σ²)² + μ⁴})``.
    """
    return sign_change_time(p.times, potential_curvature(
        p, process=process, x=x, direction=direction, nodes=nodes))


def bimodality_time(p, *, x=None, direction=None, nodes: int | None = None) -> float:
    r"""The time where ``∂² \log p_t/∂e²`` at ``x`` changes sign (``p_t`` turns bimodal
    there); ``½ \log(μ² + 1 - σ²)`` for the symmetric two-Gaussian OU data. Not the
    speciation time: that one is about the potential ``U`` of the reverse dynamics."""
    return sign_change_time(p.times, log_density_curvature(
        p, x=x, direction=direction, nodes=nodes))


# =========================================================================================
# Trajectory entropies and the integral fluctuation theorem
# =========================================================================================
@dataclass
class PathEntropies:
    """Entropy changes along sampled paths (one value per path).

    Attributes:
        system: ``ΔS_sys = \\log p_start(x_start) - \\log p_end(x_end)``.
        medium: ``ΔS_E = ∫ (F/D)∘dx`` (Stratonovich, midpoint rule).
        total: ``ΔS_tot = ΔS_sys + ΔS_E``.
        reverse: whether the paths ran the reverse process (from ``T`` down to ``t_0``).
        x_start, x_end: the paths' first and last points ``(N, d)``.
        info: scheme, steps, timings.
    """

    system: np.ndarray
    medium: np.ndarray
    total: np.ndarray
    reverse: bool = False
    x_start: np.ndarray | None = None
    x_end: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.total.size)

    def ift(self) -> tuple[float, float]:
        """``(⟨e^{-ΔS_tot}⟩, its standard error)``; the integral fluctuation theorem says 1."""
        w = np.exp(-self.total)
        return float(w.mean()), float(w.std(ddof=1) / math.sqrt(w.size))

    def mean_total(self) -> tuple[float, float]:
        """``(⟨ΔS_tot⟩, its standard error)``; equals ``∫ Π dt`` over the paths' interval."""
        return float(self.total.mean()), float(self.total.std(ddof=1) / math.sqrt(self.n))

    def running_ift(self) -> np.ndarray:
        """``⟨e^{-ΔS_tot}⟩`` over the first ``1, 2, ..., n`` paths."""
        return np.cumsum(np.exp(-self.total)) / np.arange(1, self.n + 1)


class _Marginals:
    """``\\log p_t`` and ``∇\\log p_t`` at points: closed form (a mixture under a linear
    process) or a mesh field (collective evaluation; ``∇`` by :func:`grad_log`)."""

    def __init__(self, density, process):
        from bridgesolve.score import mixture_score

        self.field = None
        if isinstance(density, GaussianMixture):
            self.data = density
            self.process = process
            self._score = mixture_score(density, process)
            self._cache: dict = {}
        else:
            from bridgesolve.score import grad_log
            from bridgesolve.spacetime import SpaceTimeField

            if not isinstance(density, SpaceTimeField):
                raise BridgesolveInputError(
                    f"density = {density!r}: expected a GaussianMixture (data at t = 0) or a "
                    "SpaceTimeField of marginals")
            self.field = density
            self._grad = grad_log(density)

    def mixture(self, t):
        if t not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[t] = self.data.evolve(self.process, t) if t > 0 else self.data
        return self._cache[t]

    def log_pdf(self, x, t):
        if self.field is None:
            return self.mixture(float(t)).log_pdf(x)
        vals = self.field.evaluate(x, t)
        if self.field.representation == "log":
            return vals
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(vals, 1e-300))

    def score(self, x, t):
        if self.field is None:
            return self._score(x, t)
        return self._grad.evaluate(x, t)


def path_entropies(
    process: Process,
    density,
    n_paths: int | np.ndarray,
    *,
    T: float | None = None,
    steps: int | None = None,
    grid=None,
    reverse: bool = False,
    method: str | None = None,
    drift: Callable | None = None,
    start=None,
    rng: np.random.Generator | int | None = 0,
    progress: bool = True,
) -> PathEntropies:
    r"""Sample paths of the forward (or reverse) process and their entropy changes.

    Forward: ``dx = F dt + \sqrt{2D} dW`` on ``[t_0, T]`` from ``x ~ p_{t_0}``, ``F = f``.
    Reverse: in ``s = T - t`` from ``x ~ p_T``, ``dx = F^* ds + \sqrt{2D} dW`` with
    ``F^* = -f + 2D ∇\log p``. ``ΔS_E = Σ F(x̄_n, t̄_n)·Δx_n / D(t̄_n)`` at the midpoints
    ``x̄_n = (x_n + x_{n+1})/2`` (Stratonovich) and ``ΔS_sys`` from ``\log p`` at the ends.

    Args:
        process: the reference process (``f``, ``D``).
        density: the marginals ``p_t``: a :class:`GaussianMixture` of the data at ``t = 0``
            pushed through the (linear) process in closed form, or a density
            :class:`~bridgesolve.SpaceTimeField` (mesh solution; collective evaluations,
            NaN if a path leaves the mesh).
        n_paths: number of paths, or the start points ``(N, d)``.
        T, steps, grid: the time levels (default the field's grid; or ``steps`` uniform
            steps on ``[0, T]``).
        reverse: run the reverse process.
        method: ``"exact"`` (Gaussian transitions of a linear process; forward only, the
            default there), ``"heun"`` (stochastic Heun, weak order 2; the default
            otherwise) or ``"euler"``.
        drift: replace ``F`` (forward) or ``F^*`` (reverse): ``F(x, t)`` with ``t`` forward.
        start: start sampler with ``.sample(n, rng)`` (default ``p`` at the start time, in
            closed form for a mixture; required for a mesh density unless ``n_paths`` holds
            the points).
        rng: a Generator or a seed.
        progress: a progress bar over the steps.
    """
    from tqdm.auto import tqdm

    if not isinstance(process, Process):
        raise BridgesolveInputError(f"process = {process!r}: expected a bridgesolve process")
    marg = _Marginals(density, process)
    if grid is None:
        if marg.field is not None and steps is None:
            grid = marg.field.grid
        else:
            from bridgesolve.timegrid import TimeGrid

            if T is None or steps is None:
                raise BridgesolveInputError("path_entropies: pass grid=, or T= and steps=")
            grid = TimeGrid.uniform(T, steps)
    times = np.asarray(grid.times, dtype=float)
    if method is None:
        method = "exact" if (not reverse and drift is None and process.linear) else "heun"
    choice("method", method, ("exact", "heun", "euler"))
    if method == "exact" and (reverse or drift is not None or not process.linear):
        raise BridgesolveInputError(
            "method='exact' needs forward paths of a linear process with its own drift")
    rng = np.random.default_rng(rng)
    t_first = float(times[-1] if reverse else times[0])
    if isinstance(n_paths, int | np.integer) and not isinstance(n_paths, bool):
        n = positive_int("n_paths", n_paths)
        if start is None:
            if marg.field is not None:
                raise BridgesolveInputError(
                    "path_entropies on a mesh density: pass start= (a sampler of p at the "
                    "start time) or the start points as n_paths")
            start = marg.mixture(t_first)
        x = np.asarray(start.sample(n, rng), dtype=float)
    else:
        x = np.array(n_paths, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
    x_start = x.copy()

    def F(y, t):
        if drift is not None:
            return np.asarray(drift(y, t), dtype=float).reshape(y.shape)
        f = process.drift(y, t)
        if not reverse:
            return f
        return -f + 2.0 * float(process.diffusion(t)) * np.asarray(marg.score(y, t)).reshape(
            y.shape)

    medium = np.zeros(x.shape[0])
    order = range(times.size - 2, -1, -1) if reverse else range(times.size - 1)
    t0 = time.perf_counter()
    bar = tqdm(total=times.size - 1, desc="reverse paths" if reverse else "forward paths",
               unit="step", leave=False, disable=not progress)
    try:
        for n_ in order:
            ta, tb = (times[n_ + 1], times[n_]) if reverse else (times[n_], times[n_ + 1])
            ta, tb = float(ta), float(tb)
            h = abs(tb - ta)
            var = 2.0 * process.diffusion_integral(min(ta, tb), max(ta, tb))
            xi = math.sqrt(var) * rng.standard_normal(x.shape)
            if method == "exact":
                a, tv = process.transition(tb, ta)
                c = float(getattr(process, "center", 0.0))
                x_new = a * x + (1 - a) * c + math.sqrt(tv) * rng.standard_normal(x.shape)
            else:
                Fa = F(x, ta)
                pred = x + Fa * h + xi
                x_new = pred if method == "euler" else x + 0.5 * (Fa + F(pred, tb)) * h + xi
            tm = 0.5 * (ta + tb)
            mid = 0.5 * (x + x_new)
            medium += np.sum(F(mid, tm) * (x_new - x), axis=1) / float(process.diffusion(tm))
            x = x_new
            bar.update()
    finally:
        bar.close()
    t_start, t_end = (float(times[-1]), float(times[0])) if reverse else (
        float(times[0]), float(times[-1]))
    system = marg.log_pdf(x_start, t_start) - marg.log_pdf(x, t_end)
    info = {"method": method, "steps": times.size - 1, "T": float(times[-1]),
            "t0": float(times[0]), "paths": int(x.shape[0]),
            "timings": {"total_s": time.perf_counter() - t0}}
    return PathEntropies(system, medium, system + medium, reverse=bool(reverse),
                         x_start=x_start, x_end=x, info=info)


# =========================================================================================
# Franz–Parisi potential
# =========================================================================================
def _mixture_log_derivs(mix: GaussianMixture, x: np.ndarray):
    """``\\log ρ``, ``(\\log ρ)'`` and ``(\\log ρ)''`` of a 1D mixture at ``x`` (any shape)."""
    w = mix.weights
    m = mix.means[:, 0]
    s2 = mix.covs[:, 0, 0]
    xs = x[..., None]
    lc = np.log(w) - 0.5 * np.log(2 * np.pi * s2) - (xs - m) ** 2 / (2 * s2)
    lse = logsumexp(lc, axis=-1)
    r = np.exp(lc - lse[..., None])
    g = -(xs - m) / s2  # component scores
    d1 = np.sum(r * g, axis=-1)
    d2 = np.sum(r * (g * g - 1.0 / s2), axis=-1) - d1 * d1
    return lse, d1, d2


_GL_CACHE: dict = {}


def _laguerre(n: int):
    if n not in _GL_CACHE:
        from scipy.special import roots_laguerre  # stable beyond NumPy's ~180 nodes

        _GL_CACHE[n] = roots_laguerre(n)
    return _GL_CACHE[n]


def _softplus_moments(c0: np.ndarray, c1: np.ndarray, n: int):
    r"""For ``y = c0 + c1 Z``, ``Z ~ N(0, 1)`` (``c1 > 0``): ``E[sp(y)]``, ``E[σ(y)]``,
    ``E[σ'(y)]``, ``E[Zσ'(y)]``, ``E[Z²σ'(y)]`` with ``sp = \\log(1 + e^y)`` and ``σ`` the
    logistic function.

    Small ``c1`` (< 2): Gauss–Hermite in ``Z`` (the integrands are analytic in a strip of
    half-width ``π/c1``). Large ``c1``: ``sp = max(y, 0) + e^{-|y|}ψ(|y|)`` and ``σ =
    H(y) - \\mathrm{sign}(y) e^{-|y|}ψ_σ(|y|)`` with smooth ``ψ``: the piecewise-linear parts
    in closed form and the exponentially small rest by Gauss–Laguerre in ``|y|`` against the
    (wide, smooth) Gaussian density of ``y``.
    """
    out = [np.empty(c0.shape) for _ in range(5)]
    small = c1 < 2.0
    if np.any(small):
        z, w = _hermite(n)
        a, b = c0[small][..., None], c1[small][..., None]
        y = a + b * z
        sig = 0.5 * (1.0 + np.tanh(0.5 * y))
        dsig = sig * (1.0 - sig)
        vals = [np.logaddexp(0.0, y), sig, dsig, z * dsig, z * z * dsig]
        for o, v in zip(out, vals, strict=True):
            o[small] = v @ w
    big = ~small
    if np.any(big):
        u, w = _laguerre(n)
        a, b = c0[big][..., None], c1[big][..., None]
        r = a / b[..., 0][..., None]
        dens_p = np.exp(-0.5 * ((u - a) / b) ** 2) / (b * math.sqrt(2 * math.pi))
        dens_m = np.exp(-0.5 * ((-u - a) / b) ** 2) / (b * math.sqrt(2 * math.pi))
        eu = np.exp(-u)
        with np.errstate(invalid="ignore", divide="ignore"):
            psi_sp = np.where(eu > 1e-12, np.log1p(eu) / np.where(eu > 0, eu, 1.0), 1.0 - eu / 2)
        psi_s = 1.0 / (1.0 + eu)
        psi_d = psi_s * psi_s
        a0, b0, r0 = a[..., 0], b[..., 0], r[..., 0]
        relu = a0 * ndtr(r0) + b0 * np.exp(-0.5 * r0 * r0) / math.sqrt(2 * math.pi)
        out[0][big] = relu + (psi_sp * (dens_p + dens_m)) @ w
        out[1][big] = ndtr(r0) - (psi_s * (dens_p - dens_m)) @ w
        zp, zm = (u - a) / b, (-u - a) / b
        out[2][big] = (psi_d * (dens_p + dens_m)) @ w
        out[3][big] = (psi_d * (zp * dens_p + zm * dens_m)) @ w
        out[4][big] = (psi_d * (zp * zp * dens_p + zm * zm * dens_m)) @ w
    return out


@dataclass
class FranzParisi:
    """``V(q)`` and its first two derivatives (:func:`franz_parisi`)."""

    q: np.ndarray
    V: np.ndarray
    dV: np.ndarray
    d2V: np.ndarray
    t: float
    info: dict = field(default_factory=dict)

    def extrema(self) -> dict:
        """Interior local minima and maxima of ``V`` on the q grid (sign changes of ``V'``,
        linearly interpolated), inflection points ``(q, V')`` (sign changes of ``V''``), and
        the global minimum on the grid."""
        out = {"minima": [], "maxima": [], "inflections": []}
        s = np.sign(self.dV)
        for i in np.flatnonzero(s[:-1] * s[1:] < 0):
            w = self.dV[i] / (self.dV[i] - self.dV[i + 1])
            qe = float(self.q[i] + w * (self.q[i + 1] - self.q[i]))
            Ve = float(self.V[i] + w * (self.V[i + 1] - self.V[i]))
            out["minima" if self.dV[i] < 0 else "maxima"].append((qe, Ve))
        s2 = np.sign(self.d2V)
        for i in np.flatnonzero(s2[:-1] * s2[1:] < 0):
            w = self.d2V[i] / (self.d2V[i] - self.d2V[i + 1])
            out["inflections"].append((float(self.q[i] + w * (self.q[i + 1] - self.q[i])),
                                       float(self.dV[i] + w * (self.dV[i + 1] - self.dV[i]))))
        j = int(np.argmin(self.V))
        out["global_min"] = (float(self.q[j]), float(self.V[j]))
        return out


def _fp_setup(rho0, process, t):
    if not isinstance(rho0, GaussianMixture) or rho0.dim != 1:
        raise BridgesolveInputError(f"rho0 = {rho0!r}: expected a 1D GaussianMixture")
    if not isinstance(process, Process) or not process.linear:
        raise BridgesolveInputError(f"process = {process!r}: expected a linear process")
    t = positive("t", t)
    a, var = process.transition(t, 0.0)
    b = (1.0 - a) * float(getattr(process, "center", 0.0))
    return t, a, var, b


def franz_parisi(rho0: GaussianMixture, process: Process, t: float, q, *,
                 order: int = 200) -> FranzParisi:
    r"""The Franz–Parisi potential ``V(q) = -E_{x_0', x_t} \log Z(q)`` and ``V'``, ``V''``.

    Planted ``x_0' ~ ρ_0``, disorder ``x_t | x_0' ~ N(a x_0' + b, Δ)`` (the process's
    transition over ``[0, t]``; OU: ``a = e^{-t}``, ``Δ = 1 - e^{-2t}``), Hamiltonian
    ``H(x_0; x_t) = (x_t - a x_0 - b)²/(2Δ) - \log ρ_0(x_0)`` and
    ``Z(q) = [e^{-H(x_0' + \sqrt q)} + e^{-H(x_0' - \sqrt q)}]/(2\sqrt q)``.

    With ``u = \sqrt q``, ``x_t = a x_0' + b + \sqrt Δ z`` and ``ℓ_± = \log ρ_0(x_0' ± u)``,
    ``\log Z = ℓ_- - z²/2 - a²u²/(2Δ) + sp(c_0 + c_1 z) - \log 2 - \log u`` with ``c_0 =
    ℓ_+ - ℓ_-``, ``c_1 = 2au/\sqrt Δ`` and ``sp`` the softplus. The expectation over the
    disorder ``z`` is one Gaussian expectation of the softplus (exact handling of its kink
    when ``c_1`` is large: :func:`_softplus_moments`); the planted point is integrated by
    Gauss–Hermite over each mixture component. ``V'`` and ``V''`` are the derivatives under
    the integral (chain rule in ``u``), not finite differences.

    Args:
        rho0: the 1D data mixture.
        process: a linear process (the paper's OU).
        t: the diffusion time (> 0).
        q: the values of ``q > 0``.
        order: Gauss–Hermite / Gauss–Laguerre nodes. For the paper's cases (σ² = 0.1) orders
            200 and 300 agree to 1e-7 in V, 2e-6 in V' and 1.3e-4 in V'' (of up to 31).
    """
    t, a, var, b = _fp_setup(rho0, process, t)
    q = np.atleast_1d(np.asarray(q, dtype=float))
    if np.any(q <= 0):
        raise BridgesolveInputError("q: expected positive values")
    order = positive_int("order", order)
    u = np.sqrt(q)[None, :]
    z, wz = _hermite(order)
    sd = math.sqrt(var)
    EV = np.zeros(q.size)
    E1 = np.zeros(q.size)
    E2 = np.zeros(q.size)
    for wk, mk, sk in zip(rho0.weights, rho0.means[:, 0], rho0.covs[:, 0, 0], strict=True):
        x0 = (mk + math.sqrt(sk) * z)[:, None]  # planted points (n, 1)
        lp, d1p, d2p = _mixture_log_derivs(rho0, x0 + u)
        lm, d1m, d2m = _mixture_log_derivs(rho0, x0 - u)
        c0 = lp - lm
        c1 = np.broadcast_to(2.0 * a * u / sd, c0.shape)
        S, S0, S00, S01, S11 = _softplus_moments(c0, np.ascontiguousarray(c1), order)
        beta = a * a / (2.0 * var)
        G = lm - 0.5 - beta * u * u + S - math.log(2.0) - np.log(u)
        # derivatives in u: dℓ_-/du = -ℓ'(x0 - u), dc0/du = ℓ'(x+) + ℓ'(x-), dc1/du = c1/u
        c0u = d1p + d1m
        c0uu = d2p - d2m
        c1u = 2.0 * a / sd
        Su = S0 * c0u + (c1 * S00) * c1u  # E[z σ(y)] = c1 E[σ'(y)] (Stein)
        Suu = (S00 * c0u * c0u + 2.0 * S01 * c0u * c1u + S11 * c1u * c1u + S0 * c0uu)
        Gu = -d1m - 2.0 * beta * u + Su - 1.0 / u
        Guu = d2m - 2.0 * beta + Suu + 1.0 / (u * u)
        EV += wk * (wz @ G)
        E1 += wk * (wz @ Gu)
        E2 += wk * (wz @ Guu)
    # V(q) = -E[G(u)], d/dq = (1/(2u)) d/du
    uu = u[0]
    V = -EV
    dV = -E1 / (2.0 * uu)
    d2V = -(E2 / (4.0 * uu * uu) - E1 / (4.0 * uu**3))
    return FranzParisi(q, V, dV, d2V, t, info={"order": order, "a": a, "var": var})


def franz_parisi_monte_carlo(rho0: GaussianMixture, process: Process, t: float, q, *,
                             n: int = 100_000, rng: np.random.Generator | int | None = 0
                             ) -> tuple[np.ndarray, np.ndarray]:
    """``(V(q), standard error)`` by plain Monte Carlo over ``(x_0', x_t)`` (a cross-check
    of :func:`franz_parisi`)."""
    t, a, var, b = _fp_setup(rho0, process, t)
    q = np.atleast_1d(np.asarray(q, dtype=float))
    rng = np.random.default_rng(rng)
    x0 = rho0.sample(positive_int("n", n), rng)[:, 0]
    xt = a * x0 + b + math.sqrt(var) * rng.standard_normal(x0.size)
    V, err = np.empty(q.size), np.empty(q.size)
    for i, qi in enumerate(q):
        u = math.sqrt(qi)
        hp = (xt - a * (x0 + u) - b) ** 2 / (2 * var) - _mixture_log_derivs(rho0, x0 + u)[0]
        hm = (xt - a * (x0 - u) - b) ** 2 / (2 * var) - _mixture_log_derivs(rho0, x0 - u)[0]
        lnZ = np.logaddexp(-hp, -hm) - math.log(2.0 * u)
        V[i] = -lnZ.mean()
        err[i] = lnZ.std(ddof=1) / math.sqrt(lnZ.size)
    return V, err


# =========================================================================================
# Phase diagram of the symmetric two-Gaussian data
# =========================================================================================
def solve_two_gaussian_ou(mu: float, sigma2: float, *, T: float = 3.0, steps: int = 300,
                          cells: int | None = None, degree: int = 2,
                          half_width: float | None = None, progress: bool = False, comm=None):
    """The Fokker–Planck solution of ``½N(μ, σ²) + ½N(-μ, σ²)`` under the paper's OU
    (``dx = -x dt + √2 dW``) on ``[-L, L]``, ``L = μ + 6 max(σ, 1)`` by default, with
    about twelve nodes per standard deviation ``σ`` (at least 128 cells)."""
    from bridgesolve.domain import Domain
    from bridgesolve.pde.fokker_planck import solve_fokker_planck
    from bridgesolve.problem import Problem
    from bridgesolve.timegrid import TimeGrid

    case = SymmetricTwoGaussianOU(mu, sigma2)
    sigma = math.sqrt(sigma2)
    L = half_width if half_width is not None else mu + 6.0 * max(sigma, 1.0)
    if cells is None:
        cells = max(128, int(math.ceil(2 * L * 12.0 / (degree * sigma))))
    dom = Domain.interval(-L, L, cells, comm=comm)
    prob = Problem(dom, OU(), TimeGrid.uniform(T, steps), degree=degree)
    p = solve_fokker_planck(prob, case.data, progress=progress, check_mass=False)
    p.info["process"] = prob.process
    return p


@dataclass
class PhaseDiagram:
    """Speciation over the (μ, σ) plane, from FE solves, with the closed forms.

    Attributes:
        mu, sigma: the axes (σ the standard deviation of each mode).
        t_s: ``(len(sigma), len(mu))`` speciation times from the mesh (NaN: no crossing on
            the grid, i.e. no symmetry breaking).
        t_s_closed: the closed form ``½ \\log(μ² + \\sqrt{(1 - σ²)² + μ⁴})``.
        region: 0 no symmetry breaking, 1 symmetry breaking, 2 unstable (``e^{-U(·, 0)}``
            not normalizable: ``∂²U < 0`` far out at ``t = 0``), from the mesh.
        region_closed: the same from the closed forms.
    """

    mu: np.ndarray
    sigma: np.ndarray
    t_s: np.ndarray
    t_s_closed: np.ndarray
    region: np.ndarray
    region_closed: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        """Fraction of grid points whose mesh region equals the closed-form region."""
        return float(np.mean(self.region == self.region_closed))


REGIONS = ("no symmetry breaking", "symmetry breaking", "unstable")


def closed_form_region(mu, sigma) -> np.ndarray:
    """The closed-form region codes (see :class:`PhaseDiagram`) at ``(μ, σ)``."""
    mu, sigma = np.broadcast_arrays(np.asarray(mu, float), np.asarray(sigma, float))
    out = np.where(mu > no_breaking_boundary(sigma), 1, 0)
    return np.where(sigma > UNSTABLE_SIGMA, 2, out)


def phase_diagram(mus: Sequence[float], sigmas: Sequence[float], *, T: float = 2.0,
                  steps: int = 200, degree: int = 2, cells: int | None = None,
                  progress: bool = True) -> PhaseDiagram:
    """Solve the Fokker–Planck equation at every ``(μ, σ)`` and classify it.

    At each point: ``t_s`` from :func:`speciation_time` at ``x = 0``; the point is
    "unstable" where ``∂²U(x, 0) < 0`` at ``x = μ + 3σ`` (the tail, where one mode
    dominates and ``∂²U → 2/σ² - 1``), else "symmetry breaking" if ``∂²U(0, t)`` changes
    sign on ``(0, T]`` (equivalently ``∂²U(0, 0) < 0``), else "no symmetry breaking".
    """
    from tqdm.auto import tqdm

    mus = np.asarray(mus, dtype=float)
    sigmas = np.asarray(sigmas, dtype=float)
    ts = np.full((sigmas.size, mus.size), np.nan)
    region = np.zeros((sigmas.size, mus.size), dtype=int)
    t0 = time.perf_counter()
    with tqdm(total=ts.size, desc="phase diagram", unit="solve", leave=False,
              disable=not progress) as bar:
        for i, s in enumerate(sigmas):
            for j, m in enumerate(mus):
                p = solve_two_gaussian_ou(float(m), float(s) ** 2, T=T, steps=steps,
                                          degree=degree, cells=cells)
                proc = p.info["process"]
                curv0 = potential_curvature(p, process=proc)
                far = potential_curvature(p, process=proc, x=[m + 3.0 * s])[0]
                if far < 0:
                    region[i, j] = 2
                elif curv0[0] < 0:
                    region[i, j] = 1
                ts[i, j] = sign_change_time(p.times, curv0)
                bar.update()
    M, S = np.meshgrid(mus, sigmas)
    return PhaseDiagram(mus, sigmas, ts, speciation_time_closed(M, S * S), region,
                        closed_form_region(M, S),
                        info={"T": T, "steps": steps, "degree": degree,
                              "total_s": time.perf_counter() - t0})


__all__ = [
    "EntropyProduction", "FranzParisi", "LOG_FLOOR", "PathEntropies", "PhaseDiagram",
    "REGIONS", "SymmetricTwoGaussianOU", "UNSTABLE_SIGMA", "bimodality_time",
    "bimodality_time_closed", "closed_form_region", "effective_potential",
    "entropy_production", "franz_parisi", "franz_parisi_monte_carlo", "log_density_curvature",
    "no_breaking_boundary", "path_entropies", "phase_diagram", "potential_curvature",
    "sign_change_time", "solve_two_gaussian_ou", "speciation_time", "speciation_time_closed",
]
