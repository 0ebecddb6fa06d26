r"""Closed forms of :mod:`bridgesolve.action` for Gaussians (re-exported there).

A Gaussian law under a linear process driven by a linear control ``u = K(t) x + b(t)`` stays
Gaussian ``N(m, P)`` with ``ṁ = (K - k I) m + b + k c``, ``Ṗ = (K - kI) P + P (K - kI)ᵀ + g² I``
in the direction of motion and action rate ``(tr(K P Kᵀ) + |K m + b|²) / (2 g²)``
(:func:`gaussian_control_action`, integrated to 1e-12). For the Gaussian Schrödinger bridge
between ``N(m_0, Σ_0)`` and ``N(m_1, Σ_1)`` (``dX = σ dW``) the optimal control is affine,
``u = H_t (x - μ_t) + μ̇_t`` with ``H_t`` symmetric (a gradient of the quadratic
``σ² log φ``); its Fokker–Planck equation ``Σ̇ = H Σ + Σ H + σ² I`` determines ``H_t`` from
the known marginal covariance ``Σ_t`` as the solution of a Lyapunov equation, and the
kinetic energy is ``∫ (tr(H Σ H) + |μ̇|²) / (2σ²) dt`` (:func:`gaussian_bridge_kinetic`).
"""

from __future__ import annotations

import numpy as np

from bridgesolve._validate import BridgesolveInputError, choice
from bridgesolve.action.common import ACTION_REFERENCES, _law_at, gaussian_kl, stationary_law
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import Process


def gaussian_control_action(mean, cov, process: Process, K, b, *, T: float,
                            reference: str = "process", target=None, data=None,
                            rtol: float = 1e-12) -> dict:
    r"""The action of the linear control ``u = K(t) x + b(t)`` for a Gaussian start law under
    a linear process (module doc: moment ODEs, integrated by ``solve_ivp`` to ``rtol``).

    Args:
        mean, cov: the start law (at ``t = 0`` for ``"process"``, at ``T`` otherwise).
        K, b: callables of forward ``t`` returning ``(d, d)`` and ``(d,)``.
        reference: ``"process"`` (forward), ``"stationary"`` (reverse time, drift ``f``) or
            ``"reversed"`` (reverse time, drift ``-f + g²∇log p_t`` of the Gaussian data
            ``data = (mean, cov)``: the stationary drift plus the data's optimal control).
        target: optional ``(mean, cov)`` for ``kl_end`` and the end cost (not for
            ``"reversed"``, whose end law is the data's).

    Returns:
        ``{"action", "mean_end", "cov_end", "kl_end", "end_cost", "total"}``.
    """
    from scipy.integrate import solve_ivp

    choice("reference", reference, ACTION_REFERENCES)
    m0 = np.atleast_1d(np.asarray(mean, float))
    if reference == "reversed":
        if data is None:
            raise BridgesolveInputError("reference='reversed' needs data=(mean, cov)")
        Kr, br = gaussian_optimal_control(data[0], data[1], process)
    else:
        Kr = br = None
    d = m0.size
    P0 = np.reshape(np.asarray(cov, float), (d, d))
    c = float(getattr(process, "center", 0.0))
    backward = reference != "process"

    def tt(s):  # forward time of the running time s
        return T - s if backward else s

    def rhs(s, y):
        t = tt(s)
        m, P = y[:d], y[d:d + d * d].reshape(d, d)
        kr = float(process.drift_rate(t))
        g2 = float(process.g(t)) ** 2
        Kt, bt = np.asarray(K(t), float).reshape(d, d), np.asarray(b(t), float).reshape(d)
        A = Kt - kr * np.eye(d)
        dm = A @ m + bt + kr * c
        if Kr is not None:  # the reversed reference's own drift g²(∇log p_t - ∇log p_∞)
            A = A + Kr(t)
            dm = A @ m + bt + br(t) + kr * c
        dP = A @ P + P @ A.T + g2 * np.eye(d)
        um = Kt @ m + bt
        rate = (np.trace(Kt @ P @ Kt.T) + um @ um) / (2.0 * g2)
        return np.concatenate([dm, dP.ravel(), [rate]])

    y0 = np.concatenate([m0, P0.ravel(), [0.0]])
    sol = solve_ivp(rhs, (0.0, T), y0, method="DOP853", rtol=rtol, atol=1e-14)
    y = sol.y[:, -1]
    m, P = y[:d], y[d:d + d * d].reshape(d, d)
    out = {"action": float(y[-1]), "mean_end": m, "cov_end": 0.5 * (P + P.T)}
    if target is not None and reference != "reversed":
        tm, tS = np.atleast_1d(target[0]).astype(float), np.reshape(target[1], (d, d))
        out["kl_end"] = gaussian_kl(m, P, tm, tS)
        if backward:
            pinf = stationary_law(process, d)
            rm, rS = pinf.means[0], pinf.covs[0]
        else:
            a, var = process.transition(T)
            rm = a * m0 + (1 - a) * c
            rS = a * a * P0 + var * np.eye(d)
        # E_q[log r - log target] + KL(target ‖ r) = KL(q‖target) - KL(q‖r) + KL(target‖r)
        out["end_cost"] = (out["kl_end"] - gaussian_kl(m, P, rm, rS)
                           + gaussian_kl(tm, tS, rm, rS))
        out["total"] = out["action"] + out["end_cost"]
    return out


def gaussian_optimal_control(mean, cov, process: Process):
    """``(K(t), b(t))`` of ``u* = g²(∇log p_t - ∇log p_∞)`` for Gaussian data ``N(mean,
    cov)`` under OU/VP: ``K = g²(I/v - Σ_t^{-1})``, ``b = g²(Σ_t^{-1} m_t - c/v)``."""
    data = GaussianMixture([1.0], [np.atleast_1d(mean)], [np.atleast_2d(cov)])
    d = data.dim
    pinf = stationary_law(process, d)
    v, c = pinf.covs[0, 0, 0], pinf.means[0]

    def parts(t):
        law = _law_at(data, process, t)
        Si = np.linalg.inv(law.covs[0])
        return float(process.g(t)) ** 2, Si, law.means[0]

    def K(t):
        g2, Si, _ = parts(t)
        return g2 * (np.eye(d) / v - Si)

    def b(t):
        g2, Si, m = parts(t)
        return g2 * (Si @ m - c / v)

    return K, b


def gaussian_bridge_kinetic(mean0, cov0, mean1, cov1, sigma: float, T: float = 1.0, *,
                            nodes: int = 64, times=None) -> dict:
    r"""The kinetic energy ``½∫ g² E_ρ|∇log φ|² dt`` of the Gaussian Schrödinger bridge
    (Brownian reference ``dX = σ dW``), computed dynamically: the control is
    ``u = H_t (x - μ_t) + μ̇_t`` with ``H_t`` the symmetric solution of the Lyapunov equation
    ``H Σ_t + Σ_t H = Σ̇_t - σ² I`` (``Σ_t`` from :func:`bridgesolve.densities.gaussian_bridge`,
    ``Σ̇`` exact), and the energy is ``∫ (tr(H Σ H) + |μ̇|²)/(2σ²) dt`` by ``nodes``-point
    Gauss–Legendre. Equals ``gaussian_bridge_cost`` (the static entropic-OT value).

    Returns ``{"value", "times", "rate" (at times), "H" (callable of t)}``."""
    from scipy.linalg import solve_continuous_lyapunov

    from bridgesolve.densities.gaussian_bridges import _gaussian_coupling

    m0, m1, S0, S1, C, eps = _gaussian_coupling(mean0, cov0, mean1, cov1, sigma, T)
    d = m0.size
    eye = np.eye(d)
    mdot = (m1 - m0) / T
    X = C + C.T + eps * eye

    def sig(t):
        tau = t / T
        return (1 - tau) ** 2 * S0 + tau**2 * S1 + tau * (1 - tau) * X

    def H(t):
        tau = t / T
        dS = (-2 * (1 - tau) * S0 + 2 * tau * S1 + (1 - 2 * tau) * X) / T
        # solve_continuous_lyapunov(A, Q) solves A X + X Aᵀ = Q: here Σ H + H Σ = Σ̇ - σ²I
        Hs = solve_continuous_lyapunov(sig(t), dS - sigma**2 * eye)
        return 0.5 * (Hs + Hs.T)

    def rate(t):
        Ht = H(t)
        return (np.trace(Ht @ sig(t) @ Ht) + mdot @ mdot) / (2.0 * sigma**2)

    x, wq = np.polynomial.legendre.leggauss(int(nodes))
    ts = 0.5 * T * (x + 1.0)
    value = float(0.5 * T * wq @ np.array([rate(t) for t in ts]))
    tgrid = np.linspace(0.0, T, 101) if times is None else np.asarray(times, float)
    return {"value": value, "times": tgrid, "rate": np.array([rate(t) for t in tgrid]), "H": H,
            "mean": lambda t: m0 + (m1 - m0) * t / T, "cov": sig}

