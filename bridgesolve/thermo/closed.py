"""Closed forms of the symmetric two-Gaussian data under the OU process ``dx = -x dt + √2 dW``
(Yu & Huang 2025), NumPy only; re-exported by :mod:`bridgesolve.thermo`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bridgesolve._validate import positive
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import OU

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
