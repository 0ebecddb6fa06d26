r"""A Gaussian start for Sinkhorn: the potentials of the bridge between the Gaussians that
match the data's first two moments (Thornton & Cuturi 2022, "Rethinking initialization of
the Sinkhorn algorithm").

For a transition ``k(x, y) = N(y; a x + b, v I)`` and Gaussian end points ``N(m_0, S_0)``,
``N(m_1, S_1)`` the bridge's end-point coupling ``π = φ̂_0(x) k(x, y) φ_T(y)`` is Gaussian.
With ``x' = a x + b`` it is the entropic OT plan for ``|x' - y|²/2`` at ``ε = v``, whose
cross-covariance has a closed form (Janati et al. 2020; Mallasto et al. 2021):
``Cov(x', y) = ½ A^{1/2} D A^{-1/2} - (v/2) I`` with ``A = a² S_0``, ``B = S_1`` and
``D = (4 A^{1/2} B A^{1/2} + v² I)^{1/2}``. With ``Λ`` the precision of ``π``, the factor
``k`` takes the cross term (``Λ_xy = -(a/v) I``, checked in the tests) and

``log φ_T(y) = -½ yᵀ (Λ_yy - I/v) y + yᵀ (Λ_yy m_1 + Λ_yx m_0 - b/v) + const``.

For Gaussian data this is the fixed point up to the grid's quadrature, and Sinkhorn stops
after one or two iterations; for other data it starts from their Gaussian approximation.
"""

from __future__ import annotations

import numpy as np

from bridgesolve.kernel.convolution import Transition
from bridgesolve.kernel.grid import TensorGrid, _along


def grid_moments(log_rho: np.ndarray, grid: TensorGrid) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the normalized density ``exp(log_rho)`` on ``grid`` (its
    trapezoid weights), from its 1D and 2D marginals."""
    d = grid.dim
    P = np.exp(log_rho)
    for k in range(d):
        P *= _along(grid.weights_1d(k), k, d)
    P /= P.sum()
    axes = grid.axes
    mean = np.array([axes[k] @ P.sum(axis=tuple(j for j in range(d) if j != k))
                     for k in range(d)])
    cov = np.empty((d, d))
    for k in range(d):
        xk = axes[k] - mean[k]
        cov[k, k] = (xk**2) @ P.sum(axis=tuple(j for j in range(d) if j != k))
        for m in range(k + 1, d):
            pair = P.sum(axis=tuple(j for j in range(d) if j not in (k, m)))
            cov[k, m] = cov[m, k] = xk @ pair @ (axes[m] - mean[m])
    return mean, cov


def _sqrtm(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(0.5 * (S + S.T))
    return (V * np.sqrt(np.maximum(w, 0.0))) @ V.T


def gaussian_coupling(m0, S0, m1, S1, kernel: Transition) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the bridge's end-point coupling ``(X_0, X_T)`` between
    ``N(m0, S0)`` and ``N(m1, S1)`` under the transition ``kernel`` (module doc)."""
    m0, m1 = np.asarray(m0, float), np.asarray(m1, float)
    S0, S1 = np.atleast_2d(S0).astype(float), np.atleast_2d(S1).astype(float)
    d = m0.size
    a, v = kernel.a, kernel.var
    A = a * a * S0
    Ah = _sqrtm(A)
    D = _sqrtm(4.0 * Ah @ S1 @ Ah + v * v * np.eye(d))
    cross = (0.5 * Ah @ D @ np.linalg.inv(Ah) - 0.5 * v * np.eye(d)) / a  # Cov(X_0, X_T)
    cov = np.block([[S0, cross], [cross.T, S1]])
    return np.concatenate([m0, m1]), cov


def gaussian_start(lr0: np.ndarray, lr1: np.ndarray, grid: TensorGrid, kernel: Transition
                   ) -> np.ndarray | None:
    """``log φ_T`` on ``grid`` for the bridge between the Gaussians that match the
    normalized data ``exp(lr0)``, ``exp(lr1)``; None where it is not usable (a degenerate
    covariance: Sinkhorn then starts from ``φ_T = 1``)."""
    d = grid.dim
    (m0, S0), (m1, S1) = grid_moments(lr0, grid), grid_moments(lr1, grid)
    try:
        if min(np.linalg.eigvalsh(S0).min(), np.linalg.eigvalsh(S1).min()) <= 0:
            return None
        mean, cov = gaussian_coupling(m0, S0, m1, S1, kernel)
        prec = np.linalg.inv(cov)
    except np.linalg.LinAlgError:
        return None
    Lyy, Lyx = prec[d:, d:], prec[d:, :d]
    b = (1.0 - kernel.a) * kernel.center
    quad = Lyy - np.eye(d) / kernel.var
    lin = Lyy @ m1 + Lyx @ m0 - b / kernel.var
    g = np.zeros(grid.shape)
    ys = [_along(a, k, d) for k, a in enumerate(grid.axes)]
    for k in range(d):  # the quadratic form, a sum of separable terms on the grid
        g += ys[k] * (lin[k] - 0.5 * quad[k, k] * ys[k])
        for m in range(k + 1, d):
            g -= quad[k, m] * (ys[k] * ys[m])
    if not np.all(np.isfinite(g)):
        return None
    return g - g.max()


__all__ = ["gaussian_coupling", "gaussian_start", "grid_moments"]
