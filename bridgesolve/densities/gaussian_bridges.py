"""The Schrödinger bridge between two Gaussians under Brownian motion: closed-form marginals
and cost."""

from __future__ import annotations

import numpy as np

from bridgesolve.densities.gaussian_mixture import GaussianMixture


def _sqrtm(A: np.ndarray) -> np.ndarray:
    w, U = np.linalg.eigh(0.5 * (A + A.T))
    return (U * np.sqrt(np.maximum(w, 0.0))) @ U.T


def _gaussian_coupling(mean0, cov0, mean1, cov1, sigma: float, T: float):
    """``(m0, m1, Σ0, Σ1, C, ε)``: the end-point law of the Gaussian Schrödinger bridge is
    ``N((m0, m1), [[Σ0, C], [Cᵀ, Σ1]])`` with ``ε = σ² T`` and
    ``C = ½(Σ0^½ D Σ0^-½ - ε I)``, ``D = (4 Σ0^½ Σ1 Σ0^½ + ε² I)^½`` (Bunne et al., 2023)."""
    m0 = np.atleast_1d(np.asarray(mean0, float))
    m1 = np.atleast_1d(np.asarray(mean1, float))
    d = m0.size
    S0 = np.asarray(cov0, float).reshape(d, d)
    S1 = np.asarray(cov1, float).reshape(d, d)
    eps = sigma**2 * T
    eye = np.eye(d)
    r0 = _sqrtm(S0)
    C = 0.5 * (r0 @ _sqrtm(4.0 * r0 @ S1 @ r0 + eps**2 * eye) @ np.linalg.inv(r0) - eps * eye)
    return m0, m1, S0, S1, C, eps


def gaussian_bridge(mean0, cov0, mean1, cov1, sigma: float, T: float = 1.0):
    r"""Closed-form marginals of the Schrödinger bridge between Gaussians, Brownian reference.

    For ``dX = σ dW`` on [0, T] between ``N(m0, Σ0)`` and ``N(m1, Σ1)`` the bridge marginals
    are Gaussian with mean ``(1-τ) m0 + τ m1`` and covariance (Bunne et al., 2023,
    "The Schrödinger bridge between Gaussian measures has a closed form", with
    ``σ² → σ² T``)

    .. math::
        Σ_τ = (1-τ)^2 Σ_0 + τ^2 Σ_1 + τ(1-τ)\,(C + C^\top + σ^2 T I),\qquad τ = t/T,

    with the cross-covariance ``C`` of the end points (:func:`_gaussian_coupling`).

    Returns:
        ``t -> GaussianMixture`` (one component) giving the marginal at time t.
    """
    m0, m1, S0, S1, C, eps = _gaussian_coupling(mean0, cov0, mean1, cov1, sigma, T)
    eye = np.eye(m0.size)

    def marginal(t: float) -> GaussianMixture:
        tau = float(t) / T
        cov = (1 - tau) ** 2 * S0 + tau**2 * S1 + tau * (1 - tau) * (C + C.T + eps * eye)
        return GaussianMixture([1.0], [(1 - tau) * m0 + tau * m1], [cov])

    return marginal


def gaussian_bridge_cost(mean0, cov0, mean1, cov1, sigma: float, T: float = 1.0) -> float:
    r"""``KL(P* ‖ R_ρ0)`` of the Schrödinger bridge between Gaussians, Brownian reference.

    ``P*`` is the static plan ``π*`` composed with reference bridges, so the path KL is the
    KL of the joint laws of ``(X_0, X_T)``: ``π* = N((m_0, m_1), [[Σ_0, C], [Cᵀ, Σ_1]])``
    against the reference ``N((m_0, m_0), [[Σ_0, Σ_0], [Σ_0, Σ_0 + σ² T I]])``:

    .. math::
        KL = \tfrac12\big[\operatorname{tr}(Q^{-1}P) + Δμ^\top Q^{-1} Δμ - 2d
        + \log(\det Q / \det P)\big].
    """
    m0, m1, S0, S1, C, eps = _gaussian_coupling(mean0, cov0, mean1, cov1, sigma, T)
    d = m0.size
    P = np.block([[S0, C], [C.T, S1]])
    Q = np.block([[S0, S0], [S0, S0 + eps * np.eye(d)]])
    dmu = np.concatenate([np.zeros(d), m1 - m0])
    Qi = np.linalg.inv(Q)
    _, logdet_q = np.linalg.slogdet(Q)
    _, logdet_p = np.linalg.slogdet(P)
    return float(0.5 * (np.trace(Qi @ P) + dmu @ Qi @ dmu - 2 * d + logdet_q - logdet_p))
