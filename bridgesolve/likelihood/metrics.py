"""Distances and closed forms: ``KL(ρ0‖q)`` by mesh quadrature, the score-matching bound,
the 2-Wasserstein distance and the 1D Gaussian model of Hirono et al.

Private part of :mod:`bridgesolve.likelihood` (import from there).
"""

from __future__ import annotations

import numpy as np

from bridgesolve._dolfinx import MPI
from bridgesolve._validate import BridgesolveInputError, positive
from bridgesolve.likelihood.characteristics import Score, _log_density
from bridgesolve.problem import Problem
from bridgesolve.quadrature import mesh_quadrature
from bridgesolve.sampling import user_score
from bridgesolve.spacetime import SpaceTimeField


# -- functionals -------------------------------------------------------------------------
def _quadrature_values(field: SpaceTimeField, t: float, degree: int):
    from bridgesolve.quadrature import values_at_quadrature

    n = field.grid.index(t)
    pts, wts = mesh_quadrature(field.mesh, degree)
    vals = values_at_quadrature(field.space, field.values[n:n + 1], degree)[0]
    return pts, wts, vals


def _floored_log(vals: np.ndarray, comm) -> np.ndarray:
    """``log max(q, ε max q)``: values below round-off of the peak are floored."""
    peak = comm.allreduce(float(vals.max()) if vals.size else -np.inf, MPI.MAX)
    return np.log(np.maximum(vals, max(np.finfo(float).eps * peak, 1e-300)))


def kl_divergence(rho0, q: SpaceTimeField, *, t: float = 0.0, degree: int | None = None
                  ) -> float:
    r"""``KL(ρ0 ‖ q(·, t)) = ∫_Ω ρ0 (\log ρ0 - \log q) dx`` by mesh quadrature
    (rank-independent). ``rho0`` needs ``pdf`` and ``log_pdf`` (a Gaussian mixture);
    ``q`` is floored at ε times its peak before the logarithm."""
    if not (hasattr(rho0, "pdf") and hasattr(rho0, "log_pdf")):
        raise BridgesolveInputError(f"rho0 = {rho0!r}: expected a density with pdf and log_pdf")
    k = q.space.ufl_element().embedded_superdegree
    pts, wts, vals = _quadrature_values(q, t, degree or 2 * k + 4)
    logq = _floored_log(vals, q.comm)
    local = float(wts @ (rho0.pdf(pts) * (rho0.log_pdf(pts) - logq))) if wts.size else 0.0
    return float(q.comm.allreduce(local, MPI.SUM))


def score_matching_bound(problem: Problem, score: Score, data, prior, *,
                         degree: int | None = None) -> dict:
    r"""Both terms of ``KL(ρ0‖q_1) ≤ KL(p_T‖π) + ½ ∫_0^T g² E_{p_t}|s - ∇log p_t|² dt``.

    ``p_t`` is the exact law of the data mixture under the (linear) process, the integrals
    in x are mesh quadratures and the one in t the trapezoidal rule on the problem's grid.

    Returns:
        ``{"prior_kl", "score_term", "bound", "score_error": (nt + 1,) E_{p_t}|s - ∇log p_t|²}``.
    """
    from bridgesolve.densities import mixture_score

    score = user_score(score, problem.domain.dim)
    proc = problem.process
    exact = mixture_score(data, proc)
    pts, wts = mesh_quadrature(problem.mesh, degree or 2 * problem.degree + 2)
    comm = problem.comm
    times = problem.grid.times
    errs = np.zeros(times.size)
    for n, t in enumerate(times):
        p_t = data.evolve(proc, t) if t > 0 else data
        if wts.size:
            diff = np.asarray(score(pts, float(t)), dtype=float).reshape(pts.shape) - exact(
                pts, float(t))
            errs[n] = wts @ (p_t.pdf(pts) * np.sum(diff * diff, axis=1))
    errs = comm.allreduce(errs, MPI.SUM)
    g2 = 2.0 * np.asarray(proc.diffusion(times), dtype=float) * np.ones_like(times)
    integrand = 0.5 * g2 * errs
    score_term = float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(times)))
    p_T = data.evolve(proc, float(times[-1]))
    log_pi = _log_density(prior)
    local = float(wts @ (p_T.pdf(pts) * (p_T.log_pdf(pts) - log_pi(pts)))) if wts.size else 0.0
    prior_kl = float(comm.allreduce(local, MPI.SUM))
    return {"prior_kl": prior_kl, "score_term": score_term, "bound": prior_kl + score_term,
            "score_error": errs}


# -- Wasserstein distances ------------------------------------------------------------------
def wasserstein2(x, y, *, squared: bool = False) -> float:
    r"""The 2-Wasserstein distance between two empirical measures (uniform weights).

    1D: the quantile formula ``W2² = ∫_0^1 |F_x^{-1}(u) - F_y^{-1}(u)|² du`` (exact for
    empirical measures, any sizes); otherwise POT's exact EMD with the squared Euclidean
    cost (``pip install pot``: an optional "bench" dependency).

    Args:
        squared: return ``W2²`` (the EMD cost, which Hirono et al. plotted as "W2") instead
            of ``W2``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not x.size or not y.size:
        raise BridgesolveInputError(
            f"samples of shapes {x.shape} and {y.shape}: expected (n, d) and (m, d)")
    if x.shape[1] == 1:
        xs, ys = np.sort(x[:, 0]), np.sort(y[:, 0])
        u = np.union1d(np.arange(1, xs.size + 1) / xs.size, np.arange(1, ys.size + 1) / ys.size)
        du = np.diff(np.concatenate([[0.0], u]))
        mid = u - 0.5 * du
        qx = xs[np.minimum((mid * xs.size).astype(int), xs.size - 1)]
        qy = ys[np.minimum((mid * ys.size).astype(int), ys.size - 1)]
        w2 = float(du @ (qx - qy) ** 2)
    else:
        try:
            import ot
        except ImportError:
            raise ImportError(
                "wasserstein2 in d > 1 needs POT (Python Optimal Transport): "
                "pip install pot (bridgesolve's 'bench' extra)") from None
        M = ot.dist(x, y, metric="sqeuclidean")
        a = np.full(x.shape[0], 1.0 / x.shape[0])
        b = np.full(y.shape[0], 1.0 / y.shape[0])
        w2 = float(ot.emd2(a, b, M, numItermax=10_000_000))
    return w2 if squared else float(np.sqrt(max(w2, 0.0)))


def wasserstein2_1d_densities(xs: np.ndarray, p: np.ndarray, q: np.ndarray, *,
                              squared: bool = False, n_quantiles: int = 20001) -> float:
    r"""``W2`` between two 1D densities tabulated on the sorted points ``xs`` (e.g. a
    generated density and the data density on a fine grid), by the quantile formula
    ``W2² = ∫_0^1 |F_p^{-1}(u) - F_q^{-1}(u)|² du`` with trapezoidal CDFs (normalized)."""
    xs = np.asarray(xs, dtype=float)

    def quantiles(f):
        f = np.maximum(np.asarray(f, dtype=float), 0.0)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(xs))])
        cdf /= cdf[-1]
        u = (np.arange(n_quantiles) + 0.5) / n_quantiles
        keep = np.concatenate([[True], np.diff(cdf) > 0])
        return np.interp(u, cdf[keep], xs[keep])

    w2 = float(np.mean((quantiles(p) - quantiles(q)) ** 2))
    return w2 if squared else float(np.sqrt(w2))


# -- the 1D Gaussian model of Hirono et al. --------------------------------------------------
def gaussian_model(*, beta: float, v0: float, eps: float, T: float, hbar: float,
                   prior_var: float = 1.0, t: float = 0.0) -> dict:
    r"""Closed form of the 1D Gaussian model: ``f = -βx/2``, ``g² = β``, data ``N(0, v₀)``,
    score ``s = -(1+ε)x/v_t`` with ``v_t = 1 + (v₀ - 1)e^{-βt}``, prior ``N(0, w_T)``.

    The sampler's law stays ``N(0, w_t)`` with
    ``dw/dt = β[(1+𝔥)(1+ε)/v_t - 1] w - 𝔥β`` (backwards from ``w_T``), solved exactly with
    ``U(t) = e^{βt} + v₀ - 1`` and ``c = (1+𝔥)(1+ε)``:

    .. math::
        w_t = U(t)^c e^{-βt}\Big[w_T U(T)^{-c} e^{βT}
              + 𝔥\,\frac{U(T)^{1-c} - U(t)^{1-c}}{1 - c}\Big]

    (``\log(U(T)/U(t))`` when ``c = 1``). Then ``NLL = ½ log(2π w_t) + v₀/(2 w_t)`` (data
    against ``q_t``) and ``W2 = |√w_t - √v₀|``.

    Returns:
        ``{"var", "nll", "w2", "w2_squared", "entropy"}`` (entropy of the data, the NLL's
        minimum).
    """
    beta, v0 = positive("beta", beta), positive("v0", v0)
    T, hb, wT = positive("T", T), positive("hbar", hbar, allow_zero=True), positive(
        "prior_var", prior_var)
    c = (1.0 + hb) * (1.0 + float(eps))

    def U(r):
        return np.exp(beta * r) + v0 - 1.0

    if abs(c - 1.0) > 1e-12:
        integ = (U(T) ** (1.0 - c) - U(t) ** (1.0 - c)) / (1.0 - c)
    else:
        integ = np.log(U(T) / U(t))
    w = float(U(t) ** c * np.exp(-beta * t) * (wT * U(T) ** (-c) * np.exp(beta * T)
                                               + hb * integ))
    nll_value = 0.5 * np.log(2 * np.pi * w) + v0 / (2 * w)
    w2 = abs(np.sqrt(w) - np.sqrt(v0))
    return {"var": w, "nll": float(nll_value), "w2": float(w2), "w2_squared": float(w2 * w2),
            "entropy": float(0.5 * np.log(2 * np.pi * np.e * v0))}
