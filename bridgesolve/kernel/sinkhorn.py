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
from bridgesolve.kernel.convolution import Transition, convolve
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
    def apply(V: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        """``A_d ⋯ A_1 V`` with ``A_k`` acting on axis ``k`` (one matrix product per axis,
        no transposed copies)."""
        s = V.shape
        for k, A in enumerate(mats):
            if k == len(s) - 1:
                V = (V.reshape(-1, s[k]) @ A.T).reshape(s)
            else:
                V = np.matmul(A, V.reshape(math.prod(s[:k]), s[k], -1)).reshape(s)
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
    w = np.exp(grid.log_weights())
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
    good pair (``g`` computed from ``f``) to go on from in the log domain."""
    w = np.exp(grid.log_weights())
    rho0, rho1 = np.exp(lr0), np.exp(lr1)
    live0, live1 = rho0 > 0, rho1 > 0
    gs = float(np.max(g[live1])) if live1.any() else 0.0
    with np.errstate(under="ignore", over="ignore", invalid="ignore", divide="ignore"):
        v = np.exp(g - gs)
        u, fs = rho0, 0.0  # f = lr0, as in the log domain
        for _ in range(max_iter):
            Kv = ScaledKernel.apply(v, K.backward)  # φ0 = Kv e^{gs + shift}
            if not _healthy(Kv, live0):
                return np.log(u) + fs, g, False, False
            gap = u * Kv
            gap *= math.exp(fs + gs + K.shift)  # fs + gs + shift: the change of gs, small
            gap -= rho0
            np.abs(gap, out=gap)
            _record(history, float(np.vdot(w, gap)), float(gap.max()), stage)
            f_prev = np.log(u) + fs  # the f that g came from
            u, fs = _ratio(rho0, Kv, live0), -(gs + K.shift)
            if history[-1]["err0_L1"] < tol and len(history) > 1:
                return np.log(u) + fs, g, True, True
            Ku = ScaledKernel.apply(u, K.forward)  # φ̂_T = Ku e^{fs + shift}
            if not _healthy(Ku, live1):
                return f_prev, g, False, False
            v = _ratio(rho1, Ku, live1)
            top = float(v.max())
            v /= top
            gs = -(fs + K.shift) + math.log(top)
            g = np.log(v) + gs
        return np.log(u) + fs, g, False, True


def _ratio(data: np.ndarray, values: np.ndarray, live: np.ndarray) -> np.ndarray:
    """``data / values``, zero where the data are (values may underflow there)."""
    if values.min() > 0:
        return data / values
    return np.divide(data, values, out=np.zeros_like(data), where=live)


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
    ``grid``: one log-domain contraction. ``∫ ρ_t`` over all space is the ρ0 marginal's
    mass, ``Σ w ρ_0`` (exactly, when ``f`` was computed from ``g``: at convergence)."""
    from scipy.special import logsumexp

    from bridgesolve.kernel.convolution import _contract_axis

    lw = grid.log_weights()
    H = f + lw
    for k, M in enumerate(log_inside_kernel(grid, early, late, lower, upper)):
        H = _contract_axis(H, M, k)
    inside = logsumexp(H + g + lw) - logsumexp(lr0 + lw)
    return float(max(0.0, -math.expm1(inside)))


__all__ = ["ScaledKernel", "bridge_mass_outside", "sinkhorn"]

