r"""Separable Gaussian convolutions in the log domain: the transition kernels of linear SDEs.

A linear process has ``X_t | X_s = x ~ N(a x + (1 - a) c, v I)`` with ``(a, v)`` from
:meth:`~bridgesolve.process.Process.transition` and ``c`` its centre, so its kernel is a
product of 1D Gaussians and every integral against it is applied axis by axis (the
convolutional method of Solomon et al., 2015): for ``n`` nodes per axis in ``d``
dimensions one application costs ``d n^{d+1}`` instead of ``n^{2d}``. Values stay in the log
domain (a log-sum-exp per axis through a shifted matrix product; entries where the shifted
product underflows are recomputed exactly), so potentials of any size are safe.

Two directions, with trapezoid weights ``w`` on the source grid:

.. math::
    \text{forward: } \log \sum_i w_i f(x_i)\, k(x_i, y), \qquad
    \text{backward: } \log \sum_j w_j g(y_j)\, k(z, y_j),

onto a tensor grid (separable throughout) or onto arbitrary points (Nyström extension: the
quadrature formula evaluated at ``y`` or ``z``). Gradients come from posterior means:
``∇_y log F = -(y - (1-a) c - a E[x | y])/v`` and ``∇_z log G = a (E[y | z] - a z - (1-a) c)/v``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, ndtr

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.kernel.grid import TensorGrid, _along

#: Shifted products below this are recomputed by an exact log-sum-exp.
_UNDERFLOW = 1e-200
#: Entries per temporary block when points are the output.
_BLOCK = 1 << 23


@dataclass(frozen=True)
class Transition:
    """The Gaussian kernel of a linear process from time ``s`` to time ``t``."""

    a: float
    var: float
    center: float = 0.0

    @classmethod
    def of(cls, process, t: float, s: float = 0.0) -> Transition:
        if not getattr(process, "linear", False):
            raise BridgesolveInputError(f"process {process!r}: the kernel path needs a linear "
                                        "process (Gaussian transitions)")
        a, var = process.transition(float(t), float(s))
        return cls(float(a), float(var), float(getattr(process, "center", 0.0)))

    @property
    def source_width(self) -> float:
        """The kernel's standard deviation as a function of the source point, ``√v / a``."""
        return math.sqrt(self.var) / self.a

    def log_matrix(self, src: np.ndarray, out: np.ndarray, direction: str) -> np.ndarray:
        """``(len(out), len(src))`` 1D log-kernel: ``log N(out; a src + b, v)`` (forward) or
        ``log N(src; a out + b, v)`` (backward)."""
        b = (1.0 - self.a) * self.center
        x, y = (src[None, :], out[:, None]) if direction == "forward" else (out[:, None],
                                                                               src[None, :])
        return -0.5 * (y - self.a * x - b) ** 2 / self.var - 0.5 * math.log(
            2 * math.pi * self.var)


def log_sum(values: np.ndarray) -> float:
    """``log Σ exp(values)`` over all entries (``-inf`` for an empty or all ``-inf``
    array); scipy's ``logsumexp`` costs 0.15 ms per call in array-API checks."""
    top = float(np.max(values, initial=-np.inf))
    if not np.isfinite(top):
        return top
    return top + math.log(float(np.exp(values - top).sum()))


def log_matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``log(exp(A) @ exp(B))`` without overflow; exact where the shifted product underflows."""
    am = A.max(axis=1, keepdims=True)
    bm = B.max(axis=0, keepdims=True)
    am = np.where(np.isfinite(am), am, 0.0)
    bm = np.where(np.isfinite(bm), bm, 0.0)
    with np.errstate(under="ignore"):
        S = np.exp(A - am) @ np.exp(B - bm)
    with np.errstate(divide="ignore"):
        R = np.log(S) + am + bm
    bad = S < _UNDERFLOW
    if bad.any():
        live = np.isfinite(A).any(axis=1)[:, None] & np.isfinite(B).any(axis=0)[None, :]
        rows, cols = np.nonzero(bad & live)
        for lo in range(0, rows.size, 4096):
            r, c = rows[lo:lo + 4096], cols[lo:lo + 4096]
            R[r, c] = logsumexp(A[r, :] + B[:, c].T, axis=1)
    return R


def contract_axis(G: np.ndarray, M: np.ndarray, k: int) -> np.ndarray:
    """``log Σ_i exp(G[..., i, ...] + M[j, i])`` along axis ``k`` (tensor output)."""
    moved = np.moveaxis(G, k, -1)
    flat = log_matmul(moved.reshape(-1, moved.shape[-1]), M.T)
    return np.moveaxis(flat.reshape(*moved.shape[:-1], M.shape[0]), -1, k)


def _contract_points(G: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
    """``log Σ_i exp(G[i] + Σ_k M_k[p, i_k])`` for every point ``p`` (Nyström output)."""
    d = G.ndim
    H = log_matmul(G.reshape(-1, G.shape[-1]), mats[-1].T).reshape(*G.shape[:-1], -1)
    for k in range(d - 2, -1, -1):
        H = logsumexp(H + mats[k].T.reshape((1,) * k + mats[k].T.shape), axis=k)
    return H


def convolve(log_f: np.ndarray, src: TensorGrid, kernel: Transition, out, *,
             direction: str = "forward") -> np.ndarray:
    """The log of the kernel integral of ``exp(log_f)`` (nodal values on ``src``).

    Args:
        log_f: ``log f`` at the nodes of ``src`` (shape ``src.shape``; ``-inf`` for zeros).
        src: the source grid and its trapezoid weights.
        kernel: the transition.
        out: a tuple of 1D coordinate arrays (a tensor grid; the result has its shape) or
            points ``(N, d)`` (the result has shape ``(N,)``).
        direction: ``"forward"`` (integrate over the kernel's start) or ``"backward"``
            (over its end).
    """
    G = np.asarray(log_f, dtype=float) + src.log_weights()
    if kernel.var == 0.0:
        raise BridgesolveInputError("convolve: zero variance (t = s); use the values themselves")
    if isinstance(out, tuple):
        for k in range(src.dim):
            G = contract_axis(G, kernel.log_matrix(src.axes[k], out[k], direction), k)
        return G
    pts = np.asarray(out, dtype=float)
    per = max(1, _BLOCK // max(1, src.size // src.shape[-1]))
    parts = [_contract_points(G, [kernel.log_matrix(src.axes[k], chunk[:, k], direction)
                                  for k in range(src.dim)])
             for chunk in np.array_split(pts, max(1, -(-len(pts) // per)))]
    return np.concatenate(parts) if parts else np.empty(0)


def _coordinates(out) -> list[np.ndarray]:
    """Per-axis coordinates of ``out`` shaped to broadcast with its results."""
    if isinstance(out, tuple):
        return [_along(a, k, len(out)) for k, a in enumerate(out)]
    pts = np.asarray(out, dtype=float)
    return [pts[:, k] for k in range(pts.shape[1])]


def convolve_with_gradient(log_f: np.ndarray, src: TensorGrid, kernel: Transition, out, *,
                           direction: str = "forward") -> tuple[np.ndarray, np.ndarray]:
    """:func:`convolve` and the gradient of the result in the output variable (posterior
    means of the source coordinate: ``d + 1`` convolutions). The gradient has a trailing
    axis of length ``d``."""
    base = convolve(log_f, src, kernel, out, direction=direction)
    b = (1.0 - kernel.a) * kernel.center
    grads = []
    for k, y in enumerate(_coordinates(out)):
        shift = src.lower[k] - 1.0  # a positive factor keeps the log domain
        factor = _along(np.log(src.axes[k] - shift), k, src.dim)
        with np.errstate(invalid="ignore"):
            mean = np.exp(convolve(log_f + factor, src, kernel, out, direction=direction)
                          - base) + shift
        if direction == "forward":
            grads.append(-(y - b - kernel.a * mean) / kernel.var)
        else:
            grads.append(kernel.a * (mean - kernel.a * y - b) / kernel.var)
    return base, np.stack(np.broadcast_arrays(*grads), axis=-1)


def mass_outside(log_f: np.ndarray, src: TensorGrid, kernel: Transition, lower, upper
                 ) -> float:
    """``∫ f(x) P(a x + b + √v Z ∉ [lower, upper]) dx / ∫ f``: the share of the free-space
    solution that leaves the box (the reflecting-wall approximation's size)."""
    G = np.asarray(log_f, dtype=float) + src.log_weights()
    top = G.max()
    if not np.isfinite(top):
        return 0.0
    f = np.exp(G - top)
    inside = f
    b, sd = (1.0 - kernel.a) * kernel.center, math.sqrt(kernel.var)
    for k in reversed(range(src.dim)):
        mu = kernel.a * src.axes[k] + b
        q = ndtr((upper[k] - mu) / sd) - ndtr((lower[k] - mu) / sd)
        inside = inside @ q
        f = f.sum(axis=-1)
    return float(max(0.0, 1.0 - inside / f))


__all__ = ["Transition", "contract_axis", "convolve", "convolve_with_gradient", "log_matmul",
           "log_sum", "mass_outside"]
