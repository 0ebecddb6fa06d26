r"""Sinkhorn's iteration on a tensor grid with a separable kernel: in the scaling domain
where the numbers allow it, in the log domain otherwise.

The iteration alternates ``log φ̂_0 = log ρ_0 - log K φ_T`` and ``log φ_T = log ρ_1 -
log K^T φ̂_0`` (trapezoid weights inside ``K``). In the log domain each application is a
log-sum-exp per axis (:func:`~bridgesolve.kernel.convolution.convolve`): safe for any sizes
but a few times the cost of the products themselves. In the scaling domain the potentials
are ``u = e^{f - f_s}``, ``v = e^{g - g_s}`` with scalar offsets, and each application is
``d`` matrix products with the 1D kernel matrices (scaled so that their largest entry is the
node's weight), built once per stage. Scalars factor out of a separable kernel, so the
offsets keep the arrays near 1; what the scaling domain cannot survive is an underflow of
``K v`` or ``K^T u`` where the data are positive. That is checked after every half step
(finite values, and no value below :data:`_TINY` where the data live): on failure the run
goes on in the log domain from the last good potentials, and ``domain`` records it.
The error, the stop rule and the fixed point are the same in both domains.
"""

from __future__ import annotations

import math

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.kernel.convolution import Transition, contract_axis, convolve, log_sum
from bridgesolve.kernel.grid import TensorGrid

#: A scaling-domain product below this (where the data are positive) counts as underflow.
_TINY = 1e-280
#: Log values beyond this are capped in the error (which is then far above any tol).
_LOG_CAP = 300.0
#: The scaling domain is not tried when the kernel matrices span more than this in log.
_SAFE_LOG_RANGE = 600.0


class ScaledKernel:
    """The 1D kernel matrices of a transition on a grid, with weights and scalar shifts
    taken out: ``K φ = e^{shift} A_d ⋯ A_1 φ`` applied axis by axis."""

    def __init__(self, grid: TensorGrid, kernel: Transition):
        self.forward: list[np.ndarray] = []
        self.backward: list[np.ndarray] = []
        self.shift = 0.0
        self.log_range = 0.0
        for k, axis in enumerate(grid.axes):
            M = kernel.log_matrix(axis, axis, "forward")  # M[j, i] = log k(x_i, y_j)
            top = float(M.max())
            self.shift += top
            self.log_range += top - float(M.min())
            w = grid.weights_1d(k)
            E = np.exp(M - top)
            self.forward.append(E * w[None, :])
            self.backward.append(np.ascontiguousarray(E.T) * w[None, :])

    @property
    def safe(self) -> bool:
        return self.log_range < _SAFE_LOG_RANGE

    @staticmethod
    def apply(V: np.ndarray, mats: list[np.ndarray], out: np.ndarray | None = None,
              work: np.ndarray | None = None) -> np.ndarray:
        """``A_d ⋯ A_1 V`` with ``A_k`` acting on axis ``k``: one matrix product per axis,
        no transposed copies, written into ``out`` (and ``work``, both of ``V``'s shape,
        distinct from ``V``) when given. Fresh arrays cost: at 64³ the page faults of
        one new array per product took as long as the products."""
        s = V.shape
        d = len(s)
        bufs = [np.empty(s) if b is None else b for b in (out, work)]
        # the last product lands in ``out``: alternate backwards from it
        targets = [bufs[(d - 1 - k) % 2] for k in range(d)]
        for k, A in enumerate(mats):
            dst = targets[k]
            if k == d - 1:
                np.matmul(V.reshape(-1, s[k]), A.T, out=dst.reshape(-1, s[k]))
            else:
                lead = math.prod(s[:k])
                np.matmul(A, V.reshape(lead, s[k], -1), out=dst.reshape(lead, s[k], -1))
            V = dst
        return V


def _record(history: list, err: float, gap_max: float, stage: float) -> None:
    history.append({"iteration": len(history) + 1, "err0_L1": err, "err0_Linf": gap_max,
                    "errT_L1": 0.0, "errT_Linf": 0.0, "stage": stage})
    if not np.isfinite(err):
        raise BridgesolveInputError("kernel bridge: the marginal error became non-finite")


def _iterate_log(lr0, lr1, grid, kernel, g, tol, max_iter, history, stage, f=None
                 ) -> tuple:
    """Sinkhorn in the log domain from ``log φ_T = g`` (computed from ``log φ̂_0 = f``,
    default ``lr0``); returns ``(f, g, converged)``."""
    w = grid.weights()
    rho0 = np.exp(lr0)
    f = lr0 if f is None else f
    for _ in range(max_iter):
        lphi0 = convolve(g, grid, kernel, grid.axes, direction="backward")
        # capped: a stage's first (f, g) pair need not match, and may be far from ρ0
        gap = np.abs(np.exp(np.minimum(f + lphi0, _LOG_CAP)) - rho0)
        _record(history, float(np.sum(w * gap)), float(gap.max()), stage)
        f = lr0 - lphi0
        if history[-1]["err0_L1"] < tol and len(history) > 1:
            return f, g, True
        g = lr1 - convolve(f, grid, kernel, grid.axes, direction="forward")
    return f, g, False


def _iterate_scaling(lr0, lr1, grid, K: ScaledKernel, g, tol, max_iter, history, stage
                     ) -> tuple:
    """Sinkhorn in the scaling domain from ``log φ_T = g``; returns ``(f, g, converged,
    ok)``: ``ok`` is False when a product underflowed, and ``(f, g)`` are then the last
    good pair (``g`` computed from ``f``) to go on from in the log domain. Every array of
    the loop is allocated once (two products and five elementwise passes per iteration)."""
    w = grid.weights()
    rho0, rho1 = np.exp(lr0), np.exp(lr1)
    live0, live1 = rho0 > 0, rho1 > 0
    full0, full1 = bool(live0.all()), bool(live1.all())
    gs = float(np.max(g[live1])) if live1.any() else 0.0
    prod, work, gap = np.empty(g.shape), np.empty(g.shape), np.empty(g.shape)
    u_new = np.empty(g.shape)
    with np.errstate(under="ignore", over="ignore", invalid="ignore", divide="ignore"):
        v = np.exp(g - gs)
        u, fs = rho0.copy(), 0.0  # f = lr0, as in the log domain
        for _ in range(max_iter):
            Kv = K.apply(v, K.backward, prod, work)  # φ0 = Kv e^{gs + shift}
            if not _healthy(Kv, live0):
                return np.log(u) + fs, np.log(v) + gs, False, False
            np.multiply(u, Kv, out=gap)
            gap *= math.exp(fs + gs + K.shift)  # fs + gs + shift: the change of gs, small
            gap -= rho0
            np.abs(gap, out=gap)
            _record(history, float(np.vdot(w, gap)), float(gap.max()), stage)
            _ratio(rho0, Kv, live0, full0, out=u_new)
            u, u_new = u_new, u  # u_new keeps the f that g came from
            fs_prev, fs = fs, -(gs + K.shift)
            if history[-1]["err0_L1"] < tol and len(history) > 1:
                return np.log(u) + fs, np.log(v) + gs, True, True
            Ku = K.apply(u, K.forward, prod, work)  # φ̂_T = Ku e^{fs + shift}
            if not _healthy(Ku, live1):
                return np.log(u_new) + fs_prev, np.log(v) + gs, False, False
            _ratio(rho1, Ku, live1, full1, out=v)
            top = float(v.max())
            v /= top
            gs = -(fs + K.shift) + math.log(top)
        return np.log(u) + fs, np.log(v) + gs, False, True


def _ratio(data: np.ndarray, values: np.ndarray, live: np.ndarray, full: bool,
           out: np.ndarray) -> np.ndarray:
    """``data / values`` into ``out``, zero where the data are (values may underflow
    there; ``full``: the data are positive everywhere)."""
    if full or values.min() > 0:
        return np.divide(data, values, out=out)
    out.fill(0.0)
    return np.divide(data, values, out=out, where=live)


def _healthy(values: np.ndarray, live: np.ndarray) -> bool:
    """Finite, and above :data:`_TINY` where the data are positive."""
    if not values.max() < np.inf:
        return False
    return bool(values.min() > _TINY or values[live].min(initial=np.inf) > _TINY)


def sinkhorn(lr0: np.ndarray, lr1: np.ndarray, grid: TensorGrid, kernel: Transition,
             g: np.ndarray, tol: float, max_iter: int, history: list, stage: float,
             domain: str = "auto") -> tuple[np.ndarray, np.ndarray, bool, str]:
    """Sinkhorn from ``log φ_T = g`` to an L1 error of the ρ0 marginal below ``tol``.

    Args:
        domain: ``"scaling"``, ``"log"`` or ``"auto"`` (scaling where the kernel's range
            allows it, falling back to log on underflow).

    Returns:
        ``(log φ̂_0, log φ_T, converged, domain used)`` where the domain is ``"scaling"``,
        ``"log"`` or ``"scaling, then log"``.
    """
    if domain not in ("auto", "scaling", "log"):
        raise BridgesolveInputError(f"domain = {domain!r}: expected 'auto', 'scaling' or 'log'")
    if domain != "log":
        K = ScaledKernel(grid, kernel)
        if domain == "scaling" or K.safe:
            start = len(history)
            f, g_out, converged, ok = _iterate_scaling(lr0, lr1, grid, K, g, tol, max_iter,
                                                       history, stage)
            if ok:
                return f, g_out, converged, "scaling"
            f, g_out, converged = _iterate_log(lr0, lr1, grid, kernel, g_out, tol,
                                               max_iter - (len(history) - start), history,
                                               stage, f)
            return f, g_out, converged, "scaling, then log"
    f, g_out, converged = _iterate_log(lr0, lr1, grid, kernel, g, tol, max_iter, history,
                                       stage)
    return f, g_out, converged, "log"


def log_inside_kernel(grid: TensorGrid, early: Transition, late: Transition, lower, upper
                      ) -> list[np.ndarray]:
    r"""Per-axis ``log k_{0,T}(x, z) + log P(X_t ∈ [lo, hi] | X_0 = x, X_T = z)`` (rows
    ``z``, columns ``x``) for the transitions ``early`` (0 → t) and ``late`` (t → T) of
    one linear process: ``X_t`` given both ends is Gaussian with precision ``1/v_1 +
    a_2²/v_2``, so the bridge's mass inside the box at ``t`` is one separable contraction
    of the potentials with these matrices."""
    from scipy.special import ndtr

    a1, v1, a2, v2 = early.a, early.var, late.a, late.var
    b1, b2 = (1 - a1) * early.center, (1 - a2) * late.center
    prec = 1.0 / v1 + a2**2 / v2
    sd = prec**-0.5
    whole = Transition(a1 * a2, a2**2 * v1 + v2, early.center)  # Chapman–Kolmogorov
    mats = []
    for k, axis in enumerate(grid.axes):
        x, z = axis[None, :], axis[:, None]
        mean = ((a1 * x + b1) / v1 + a2 * (z - b2) / v2) / prec
        hi, lo = (upper[k] - mean) / sd, (lower[k] - mean) / sd
        # the difference of the two tails that keeps its digits on either side
        inside = np.where(mean < 0.5 * (lower[k] + upper[k]), ndtr(hi) - ndtr(lo),
                          ndtr(-lo) - ndtr(-hi))
        with np.errstate(divide="ignore"):
            mats.append(whole.log_matrix(axis, axis, "forward") + np.log(inside))
    return mats


def bridge_mass_outside(lr0: np.ndarray, f: np.ndarray, g: np.ndarray, grid: TensorGrid,
                        early: Transition, late: Transition, lower, upper) -> float:
    """``1 - ∫_box ρ_t / ∫ ρ_t`` for the discrete bridge ``φ̂_0(x) k(x, z) φ_T(z)`` on
    ``grid``: one separable contraction, by matrix products where nothing underflows (as
    in the scaling domain), else in the log domain. ``∫ ρ_t`` over all space is the ρ0
    marginal's mass, ``Σ w ρ_0`` (exactly, when ``f`` was computed from ``g``: at
    convergence)."""
    lw = grid.log_weights()
    mats = log_inside_kernel(grid, early, late, lower, upper)
    inside = _log_contraction_scaled(f + lw, g + lw, mats)
    if inside is None:
        inside = _log_contraction(f + lw, g + lw, mats)
    inside -= log_sum(lr0 + lw)
    return float(max(0.0, -math.expm1(inside)))


def _log_contraction(A: np.ndarray, B: np.ndarray, mats: list[np.ndarray]) -> float:
    """``log Σ_{x,z} exp(A[x] + Σ_k M_k[z_k, x_k] + B[z])`` by log-sum-exp per axis."""
    for k, M in enumerate(mats):
        A = contract_axis(A, M, k)
    return log_sum(A + B)


def _log_contraction_scaled(A: np.ndarray, B: np.ndarray, mats: list[np.ndarray]
                            ) -> float | None:
    """:func:`_log_contraction` by matrix products of the shifted exponentials; None where
    the matrices' log range is unsafe or the sum is too small to trust (terms lost to
    underflow are below ``1e-300`` of the largest, so a sum above ``1e-250`` keeps them
    negligible)."""
    tops = [float(M.max()) for M in mats]
    span = sum(t - float(M[np.isfinite(M)].min()) for t, M in zip(tops, mats, strict=True))
    if not span < _SAFE_LOG_RANGE:
        return None
    sa, sb = float(A.max()), float(B.max())
    with np.errstate(under="ignore"):
        H = ScaledKernel.apply(np.exp(A - sa), [np.exp(M - t) for t, M in
                                                zip(tops, mats, strict=True)])
        S = float(np.vdot(H, np.exp(B - sb)))
    if not (1e-250 < S < np.inf):
        return None
    return math.log(S) + sa + sb + sum(tops)


__all__ = ["ScaledKernel", "bridge_mass_outside", "sinkhorn"]

