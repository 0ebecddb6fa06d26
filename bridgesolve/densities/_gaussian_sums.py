r"""Shared machinery of the exact families: the affine state a linear process adds, and the
log-domain evaluation of equal-covariance Gaussian sums.

**Linear processes.** Every linear reference (Brownian, OU, VP, VE, sub-VP, cosine) moves a
law by ``X_t = a X_s + (1 - a) c + \sqrt{v} Z``. A family keeps its law at the data time
and the accumulated :class:`Affine` state ``x = a y + b + \sqrt{v} z`` (``y`` from the data
law): evolving composes two states, so every family is exact at every time.

**Equal-covariance sums.** Curve mixtures (quadrature nodes along a curve) and KDEs (one
node per sample) are sums ``\sum_k w_k N(x; m_k, C)`` with one covariance ``C``. After
whitening (``C = L L^T``) the exponents are ``-|L^{-1}(x - m_k)|^2/2``, computed with one
matrix product per chunk of points (``|x|^2 - 2 x\cdot m + |m|^2``) and summed by
log-sum-exp: log-pdf and score stay finite in far tails and at small noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from bridgesolve._validate import BridgesolveInputError, points

#: Points per block in the chunked evaluations (bounds the (points × nodes) work arrays).
CHUNK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class Affine:
    """``x = a y + b + sqrt(v) z``: the law of ``x`` from the data variable ``y``."""

    a: float = 1.0
    b: tuple = ()
    v: float = 0.0

    def shift(self, dim: int) -> np.ndarray:
        return np.asarray(self.b, dtype=float) if self.b else np.zeros(dim)

    def then(self, process, t: float, s: float, dim: int) -> Affine:
        """This state followed by the process's exact transition from ``s`` to ``t``."""
        if not getattr(process, "linear", False):
            raise BridgesolveInputError(
                f"evolve under {type(process).__name__}: exact only for linear processes "
                "(Brownian, OU, VP, VE, sub-VP, cosine); solve a non-linear drift by FE")
        a_p, v_p = process.transition(t, s)
        c = float(getattr(process, "center", 0.0))
        b = a_p * self.shift(dim) + (1.0 - a_p) * c
        return Affine(a=float(a_p * self.a), b=tuple(float(x) for x in b),
                      v=float(a_p * a_p * self.v + v_p))

    def describe(self) -> dict:
        return {"a": self.a, "b": list(self.b), "v": self.v}

    @classmethod
    def from_description(cls, desc: dict | None) -> Affine:
        if not desc:
            return cls()
        return cls(a=float(desc["a"]), b=tuple(float(x) for x in desc.get("b", ())),
                   v=float(desc["v"]))

    @property
    def identity(self) -> bool:
        return self.a == 1.0 and not any(self.b) and self.v == 0.0


def check_points(x, dim: int) -> np.ndarray:
    """``x`` as ``(N, dim)`` float64 (a 1D array of N points in 1D)."""
    return points("x", x, dim)


class EqualCovarianceSum:
    """``\\sum_k w_k N(x; m_k, C)`` with one covariance ``C`` (d × d, or a scalar variance).

    Args:
        log_weights: ``(K,)`` logarithms of the weights (need not be normalized).
        means: ``(K, d)``.
        cov: ``(d, d)`` or a positive number (isotropic).
    """

    def __init__(self, log_weights: np.ndarray, means: np.ndarray, cov):
        self.means = np.asarray(means, dtype=float)
        self.dim = self.means.shape[1]
        lw = np.asarray(log_weights, dtype=float)
        self.log_weights = lw - logsumexp(lw)
        cov = np.asarray(cov, dtype=float)
        if cov.ndim == 0:
            cov = float(cov) * np.eye(self.dim)
        self.cov = cov
        self.L = np.linalg.cholesky(cov)
        self.log_norm = -0.5 * self.dim * math.log(2.0 * math.pi) - float(
            np.sum(np.log(np.diag(self.L))))
        self._mw = solve_triangular(self.L, self.means.T, lower=True).T  # whitened means
        self._m2 = 0.5 * np.sum(self._mw**2, axis=1)

    def _blocks(self, n: int):
        step = max(1, CHUNK_ELEMENTS // max(1, self.means.shape[0]))
        for lo in range(0, n, step):
            yield slice(lo, min(n, lo + step))

    def _exponents(self, xw: np.ndarray) -> np.ndarray:
        """``log w_k - |x_w - m_{w,k}|²/2`` for whitened points (N, K)."""
        e = xw @ self._mw.T
        e -= self._m2[None, :]
        e -= 0.5 * np.sum(xw**2, axis=1)[:, None]
        e += self.log_weights[None, :]
        return e

    def _reduce(self, xw: np.ndarray, with_score: bool):
        """``(log Σ_k e_k, Σ_k r_k m_k)`` per point of a block (one exp pass, in place)."""
        e = self._exponents(xw)
        mx = e.max(axis=1)
        e -= mx[:, None]
        np.exp(e, out=e)
        total = e.sum(axis=1)
        lse = mx + np.log(total)
        return lse, ((e @ self.means) / total[:, None] if with_score else None)

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = np.empty(x.shape[0])
        xw = solve_triangular(self.L, x.T, lower=True).T
        for sl in self._blocks(x.shape[0]):
            out[sl] = self._reduce(xw[sl], False)[0]
        return out + self.log_norm

    def log_pdf_and_score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log p`` and ``∇ log p = C^{-1} (E_post[m] - x)``."""
        x = np.asarray(x, dtype=float)
        logp = np.empty(x.shape[0])
        post = np.empty_like(x)
        xw = solve_triangular(self.L, x.T, lower=True).T
        for sl in self._blocks(x.shape[0]):
            logp[sl], post[sl] = self._reduce(xw[sl], True)
        score = np.linalg.solve(self.cov, (post - x).T).T
        return logp + self.log_norm, score

    def sample_noise(self, n: int, rng) -> np.ndarray:
        return rng.standard_normal((n, self.dim)) @ self.L.T
