"""``(log p, ∇log p)`` of any exact density at many points, with a fast path for Gaussian
mixtures (the bundles' and the validator's exact columns)."""

from __future__ import annotations

import numpy as np

from bridgesolve.densities.gaussian_mixture import GaussianMixture


def exact_fields(law, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log p, ∇log p)`` of ``law`` at points ``(N, d)``: one pass for the families that
    have ``log_pdf_and_score``, column-wise products for Gaussian mixtures."""
    x = np.asarray(x, dtype=float)
    if isinstance(law, GaussianMixture):
        return _mixture_fields(law, x)
    if hasattr(law, "log_pdf_and_score"):
        return law.log_pdf_and_score(x)
    return law.log_pdf(x), law.score(x)


def _mixture_fields(mix: GaussianMixture, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log ρ, ∇log ρ)`` of a Gaussian mixture at points ``(N, d)``: one pass per
    component with column-wise products (the bundle's 49,152 points x 101 levels of the
    default 2D problem in about a second)."""
    d = x.shape[1]
    prec = np.linalg.inv(mix.covs)
    logdet = np.linalg.slogdet(mix.covs)[1]
    logc = np.empty((x.shape[0], mix.weights.size), order="F")
    grads = []
    for k in range(mix.weights.size):
        diff = x - mix.means[k]
        pd = diff @ prec[k]  # Σ_k^{-1}(x - m_k)
        grads.append(pd)
        maha = diff[:, 0] * pd[:, 0]
        for j in range(1, d):
            maha += diff[:, j] * pd[:, j]
        logc[:, k] = np.log(mix.weights[k]) - 0.5 * (maha + logdet[k] + d * np.log(2 * np.pi))
    top = logc[:, 0].copy()  # column loops: reductions over a short axis are slow
    for k in range(1, logc.shape[1]):
        np.maximum(top, logc[:, k], out=top)
    r = [np.exp(logc[:, k] - top) for k in range(logc.shape[1])]
    total = r[0].copy()
    for rk in r[1:]:
        total += rk
    score = np.zeros_like(x)
    for rk, pd in zip(r, grads, strict=True):
        score -= (rk / total)[:, None] * pd
    return top + np.log(total), score
