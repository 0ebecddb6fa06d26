r"""The identities of the action principle (:mod:`bridgesolve.action`, PAPERS.md §C): the
minimal action as a KL difference, the excess action as explicit score matching (under the
data's law ``p`` or the controlled process's own law ``q``), the θ-independent gap between
denoising and explicit score matching. Re-exported by :mod:`bridgesolve.action`."""

from __future__ import annotations

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.action.common import (
    Control,
    _allsum,
    _as_callable,
    _fields,
    _law_at,
    _log_pdf,
    _quadrature,
    gaussian_kl,
    kl_quadrature,
    score_control,
    stationary_law,
    trapezoid_weights,
)
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import Process


def relative_fisher_rate(data: GaussianMixture, process: Process, times, *, problem=None,
                         degree: int | None = None) -> np.ndarray:
    r"""``(g²/2) E_{p_t}|∇log p_t - ∇log p_∞|²`` at ``times`` (= ``-d/dt KL(p_t‖p_∞)``):
    for one Gaussian ``N(m_t, Σ_t)`` and ``p_∞ = N(c, v I)`` the closed form
    ``(g²/2)(tr((I/v - Σ_t^{-1})² Σ_t) + |m_t - c|²/v²)``; mesh quadrature of the mixture
    otherwise (``problem`` needed)."""
    d = data.dim
    pinf = stationary_law(process, d)
    v = pinf.covs[0, 0, 0]
    c = pinf.means[0]
    out = []
    if data.n_components > 1:
        if problem is None:
            raise BridgesolveInputError("a mixture's relative Fisher information needs problem=")
        pts, w = _quadrature(problem, degree)
    for t in np.atleast_1d(times):
        law = _law_at(data, process, t)
        g2 = float(process.g(t)) ** 2
        if data.n_components == 1:
            S, m = law.covs[0], law.means[0] - c
            Si = np.linalg.inv(S)
            # E|-Σ⁻¹y + (y + m)/v|², y ~ N(0, Σ): tr((I/v - Σ⁻¹)² Σ) + |m|²/v²
            M = np.eye(d) / v - Si
            out.append(0.5 * g2 * (np.trace(M @ M @ S) + m @ m / v**2))
        else:
            loc = 0.0
            if w.size:
                lp, sc = _fields(law, pts)
                diff = sc + (pts - c) / v
                loc = float(w @ (np.exp(lp) * np.sum(diff * diff, axis=1)))
            out.append(0.5 * g2 * _allsum(problem.comm, loc))
    return np.asarray(out, dtype=float)


def minimal_action(data: GaussianMixture, process: Process, T: float, *, problem=None,
                   degree: int | None = None) -> dict:
    r"""Identity 1: ``A* = KL(p_0‖p_∞) - KL(p_T‖p_∞)`` for OU/VP (closed form for one
    Gaussian, mesh quadrature of ``problem`` otherwise).

    Returns ``{"kl0", "klT", "value"}``."""
    d = data.dim
    pinf = stationary_law(process, d)
    pT = data.evolve(process, float(T))
    if data.n_components == 1:
        kl0 = gaussian_kl(data.means[0], data.covs[0], pinf.means[0], pinf.covs[0])
        klT = gaussian_kl(pT.means[0], pT.covs[0], pinf.means[0], pinf.covs[0])
    else:
        if problem is None:
            raise BridgesolveInputError("a mixture's KL needs problem= (mesh quadrature)")
        kl0 = kl_quadrature(data, pinf, problem, degree=degree)
        klT = kl_quadrature(pT, pinf, problem, degree=degree)
    return {"kl0": kl0, "klT": klT, "value": kl0 - klT}


def optimal_control(data: GaussianMixture, process: Process) -> Control:
    """``u* = g² (∇log p_t - ∇log p_∞)`` of the data mixture under OU/VP (stationary
    reference)."""
    from bridgesolve.densities import mixture_score

    return score_control(mixture_score(data, process), process, reference="stationary")


def excess_action(score, data: GaussianMixture, process: Process, times=None, *,
                  problem=None, law=None, degree: int | None = None) -> dict:
    r"""Identity 2's right side, the explicit score-matching loss with weight ``g²/2``,
    ``∫ (g²/2) E|s - ∇log p_t|² dt`` under the data's law ``p`` or the sampler's own ``q``.

    Under ``p`` (``law=None``: the validator's ESM) it equals the excess action
    ``J[g²(s - ∇log p_∞)] - J*`` only up to third order in the score error. Under the law
    ``q`` of the process that the control of ``s`` drives (``law=`` the :class:`ActionResult`
    of ``control_action(problem, p_T, score_control(s, process), reference="stationary")``
    or its density) the identity is exact (Girsanov), so the two sides agree to
    discretization error. ``q`` is a :class:`~bridgesolve.spacetime.SpaceTimeField` whose
    values are stored in forward-time order at its grid levels ``t_n`` (also for the
    reverse-time references, which start at ``t = T``); the score is evaluated at the same
    forward ``t_n``.

    Args:
        score: ``s(x, t)``: a callable, a VectorField or a torch module.
        data: the data mixture ``p_0`` (its marginals ``p_t`` give ``∇log p_t``).
        process: the forward process.
        times: the time levels (trapezoidal rule in ``t``); with ``law``: None (the law's grid
            levels) or those levels.
        problem: the mesh for the quadrature under ``p`` (unused with ``law``, whose mesh is
            used).
        law: None (weight ``p_t``), an :class:`ActionResult` or a SpaceTimeField ``q``.
        degree: quadrature degree in space (default: the one ``control_action`` used, else
            ``2k + 4``).

    Returns:
        ``{"rate": (g²/2) E|s - ∇log p_t|² per time, "value", "times", "law": "p" | "q"}``.
        Rank-independent; collective.
    """
    from bridgesolve.densities import mixture_score

    exact = mixture_score(data, process)
    fn, _ = _as_callable(score, data.dim, "score")
    if law is None:
        if problem is None or times is None:
            raise BridgesolveInputError(
                "excess_action under p needs times= and problem= (or pass law=, the "
                "ActionResult of control_action, for the sampler's own law q)")
        pts, w = _quadrature(problem, degree)
        times = np.asarray(times, dtype=float)
        dens = np.array([np.exp(_log_pdf(_law_at(data, process, t), pts)) for t in times])
        comm = problem.comm
    else:
        q = getattr(law, "density", law)
        if not all(hasattr(q, a) for a in ("space", "values", "grid")):
            raise BridgesolveInputError(
                f"law = {law!r}: expected an ActionResult (control_action) or its density, a "
                "SpaceTimeField")
        grid_t = np.asarray(q.grid.times, dtype=float)
        if times is not None and (np.shape(times) != grid_t.shape
                                  or not np.allclose(times, grid_t, rtol=0, atol=1e-12)):
            raise BridgesolveInputError(
                f"times = {np.asarray(times)!r}: with law= the expectation is taken at the "
                f"law's grid levels ({grid_t.size} levels on [{grid_t[0]}, {grid_t[-1]}]); "
                "pass times=None")
        times = grid_t
        info = getattr(law, "info", None) or {}
        degree = int(degree or info.get("quadrature_degree")
                     or 2 * (problem.degree if problem is not None
                             else q.space.ufl_element().embedded_superdegree) + 4)
        from bridgesolve.quadrature import mesh_quadrature, values_at_quadrature

        pts, w = mesh_quadrature(q.space.mesh, degree)
        dens = values_at_quadrature(q.space, q.values, degree)
        if getattr(q, "representation", "linear") == "log":
            dens = np.exp(dens)
        comm = q.space.mesh.comm
    rate = np.zeros(times.size)
    for n, t in enumerate(times):
        s = np.asarray(fn(pts, float(t)), float).reshape(pts.shape)  # collective for fields
        if w.size:
            diff = s - exact(pts, float(t))
            rate[n] = 0.5 * float(process.g(t)) ** 2 * float(
                w @ (dens[n] * np.sum(diff * diff, axis=1)))
    rate = np.asarray(_allsum(comm, rate), dtype=float)
    return {"rate": rate, "value": float(trapezoid_weights(times) @ rate), "times": times,
            "law": "p" if law is None else "q"}


def perturbation_curvature(eta, data: GaussianMixture, process: Process, times, *, problem,
                           degree: int | None = None) -> float:
    r"""``κ = ∫ (g²/2) E_{p_t}|η|² dt``: ``J(δ) = A* + κ δ² + O(δ³)`` along
    ``s = ∇log p + δ η``."""
    from bridgesolve.densities import mixture_score

    exact = mixture_score(data, process)
    fn, _ = _as_callable(eta, data.dim, "eta")
    return excess_action(lambda x, t: exact(x, t) + np.asarray(fn(x, t), float).reshape(x.shape),
                         data, process, times, problem=problem, degree=degree)["value"]


def denoising_gap(data: GaussianMixture, process: Process, t: float, *, points=None,
                  weights=None) -> float:
    r"""Identity 3: ``C_t = DSM(t) - ESM(t) = d/σ_t² - E_{p_t}|∇log p_t|²`` (per unit
    weight; kernel ``N(a_t x_0 + (1 - a_t) c, σ_t² I)``), independent of the score. Closed
    form ``d/σ² - tr Σ_t^{-1}`` for one Gaussian; quadrature (``points``, ``weights``)
    otherwise."""
    law = _law_at(data, process, t)
    var = process.transition(float(t))[1]
    d = data.dim
    if data.n_components == 1:
        return float(d / var - np.trace(np.linalg.inv(law.covs[0])))
    if points is None or weights is None:
        raise BridgesolveInputError("a mixture's denoising gap needs points= and weights=")
    lp, s = _fields(law, np.asarray(points, dtype=float))
    return float(d / var - weights @ (np.exp(lp) * np.sum(s * s, axis=1)))


def denoising_loss(score, data: GaussianMixture, process: Process, t: float, *,
                   nodes: int = 12) -> float:
    r"""``DSM(t) = E_{x_0} E_ε |s(a x_0 + (1-a) c + σ ε, t) + ε/σ|²`` by tensor
    Gauss–Hermite quadrature over ``(x_0, ε)`` (``nodes`` per dimension, ``nodes^{2d}``
    per mixture component): no Monte Carlo noise, spectrally accurate for smooth scores."""
    d = data.dim
    a, var = process.transition(float(t))
    sig = np.sqrt(var)
    c = float(getattr(process, "center", 0.0))
    z, wz = np.polynomial.hermite_e.hermegauss(int(nodes))
    wz = wz / wz.sum()
    grids = np.meshgrid(*([z] * (2 * d)), indexing="ij")
    wgrid = np.meshgrid(*([wz] * (2 * d)), indexing="ij")
    Z = np.stack([g.ravel() for g in grids], axis=1)
    Wt = np.prod(np.stack([g.ravel() for g in wgrid], axis=1), axis=1)
    fn, _ = _as_callable(score, d, "score")
    total = 0.0
    for wk, m, L in zip(data.weights, data.means, np.linalg.cholesky(data.covs), strict=True):
        x0 = m + Z[:, :d] @ L.T
        eps = Z[:, d:]
        x = a * x0 + (1 - a) * c + sig * eps
        r = np.asarray(fn(x, float(t)), float).reshape(x.shape) + eps / sig
        total += wk * float(Wt @ np.sum(r * r, axis=1))
    return total


def explicit_loss(score, data: GaussianMixture, process: Process, t: float, *,
                  points, weights) -> float:
    """``ESM(t) = E_{p_t}|s - ∇log p_t|²`` by the quadrature ``points``, ``weights``."""
    law = _law_at(data, process, t)
    fn, _ = _as_callable(score, data.dim, "score")
    lp, sc = _fields(law, np.asarray(points, dtype=float))
    diff = np.asarray(fn(points, float(t)), float).reshape(points.shape) - sc
    return float(weights @ (np.exp(lp) * np.sum(diff * diff, axis=1)))

