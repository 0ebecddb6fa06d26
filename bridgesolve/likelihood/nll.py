"""The path-integral view (Hirono, Tanaka & Fukushima, ICML 2024): ``log q^𝔥`` in the log
domain, the exact ``NLL(𝔥)`` and its slope at 𝔥 = 0.

Private part of :mod:`bridgesolve.likelihood` (import from there).
"""

from __future__ import annotations

import time

import numpy as np

from bridgesolve._dolfinx import MPI
from bridgesolve._validate import BridgesolveInputError, positive
from bridgesolve.likelihood.characteristics import (
    Score,
    _log_density,
    log_likelihood_characteristics,
    wkb_coefficient,
)
from bridgesolve.problem import Problem
from bridgesolve.quadrature import mesh_quadrature
from bridgesolve.sampling import check_h, user_score
from bridgesolve.spacetime import SpaceTimeField

# == the path-integral view (Hirono, Tanaka & Fukushima, ICML 2024) ======================
#
# The paper's interpolating parameter 𝔥 ("Planck's constant", ``hbar`` here) is h² of this
# module's sampler: noise √𝔥 g = h g, drift f - (1+𝔥)/2 g² s = f - (1+h²)/2 g² s. 𝔥 = 0 is
# the probability-flow ODE, 𝔥 = 1 the reverse SDE.

def hbar_of(h: float | None = None, hbar: float | None = None) -> float:
    """The paper's ``𝔥 = h²`` from exactly one of ``h`` (bridgesolve's noise level, in
    [0, 1]) or ``hbar`` (Hirono et al.'s 𝔥 ≥ 0)."""
    if (h is None) == (hbar is None):
        raise BridgesolveInputError(
            f"h = {h!r}, hbar = {hbar!r}: pass exactly one of h (noise h·g) or hbar "
            "(Hirono et al.'s 𝔥 = h²)")
    if h is not None:
        return check_h(h) ** 2
    return positive("hbar", hbar, allow_zero=True)


def generated_log_density(problem: Problem, score: Score, prior, *, h: float | None = None,
                          hbar: float | None = None, progress: bool = False,
                          name: str = "log_q", newton_options: dict | None = None
                          ) -> SpaceTimeField:
    r"""``log q^𝔥`` of the interpolating sampler at every level, in the log domain.

    Solves ``∂_τ L = ∇·b + b·∇L + 𝔥D(ΔL + |∇L|²)`` (``τ = T - t``, ``L(·, T) = log π``,
    ``b = f - (1+𝔥)/2 g² s``) by the θ-scheme with Newton per step
    (:class:`bridgesolve.pde.generated.GeneratedLogDensity`; open walls, see there). It
    never takes the logarithm of a linear field, so it is finite in the far tails, and
    with ``𝔥 = 0`` it is the O(nt) transport of ``log q_0`` (every level at the cost of
    one linear solve per step).

    Args:
        problem: domain, process, time grid (from ``t_min``) and discretization
            (``"reflecting"`` boundary, which here means open walls).
        score: ``s(x (N, d), t) -> (N, d)``: analytic, mesh or learned.
        prior: the law at ``T`` (``log_pdf``), or a callable ``log π`` of points.
        h, hbar: exactly one: ``h ∈ [0, 1]`` (noise ``h g``) or Hirono et al.'s
            ``𝔥 = h²`` (noise ``√𝔥 g``).

    Returns:
        A :class:`~bridgesolve.SpaceTimeField` in log representation; ``info`` holds
        ``hbar``, Newton iterations and timings.
    """
    from bridgesolve.pde.generated import GeneratedLogDensity

    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    score = user_score(score, problem.domain.dim)
    hb = hbar_of(h, hbar)
    t0 = time.perf_counter()
    log_pi = _log_density(prior) if hasattr(prior, "log_pdf") else prior
    if not callable(log_pi):
        raise BridgesolveInputError(
            f"prior = {prior!r}: expected a GaussianMixture (log_pdf) or a callable log π")
    d = problem.domain.dim
    nodes = problem.V.tabulate_dof_coordinates()[:, :d].copy()
    start = np.asarray(log_pi(nodes), dtype=float).reshape(-1)
    if not np.all(np.isfinite(start)):
        raise BridgesolveInputError("log π is not finite at every node of the mesh")
    ev = GeneratedLogDensity(problem, score, hb, newton_options=newton_options)
    try:
        field = ev.run(start, progress=progress, name=name)
    finally:
        ev.close()
    field.info["timings"]["total_s"] = time.perf_counter() - t0
    return field


def _data_expectation(problem: Problem, data, values_at, *, degree: int | None):
    """``E_data[values_at(x)]``: quadrature over the mesh for a density (``pdf``), the mean
    over all ranks' samples otherwise. ``values_at(x)`` is called collectively."""
    comm = problem.comm
    if hasattr(data, "pdf"):
        pts, wts = mesh_quadrature(problem.mesh, degree or 2 * problem.degree + 6)
        vals = values_at(pts)
        rho = np.asarray(data.pdf(pts), dtype=float) if wts.size else np.zeros(0)
        prod = np.where(rho > 0, rho * np.where(rho > 0, vals, 0.0), 0.0)
        local = np.array([float(wts @ prod) if wts.size else 0.0,
                          float(wts @ rho) if wts.size else 0.0])
        total = comm.allreduce(local, MPI.SUM)
        return float(total[0] / total[1]), float(total[1])
    x = np.asarray(data, dtype=float)
    if x.ndim == 1:
        x = x[:, None] if problem.domain.dim == 1 else x[None, :]
    vals = values_at(x)
    total = comm.allreduce(np.array([float(np.sum(vals)), float(vals.size)]), MPI.SUM)
    return float(total[0] / total[1]), 1.0


def nll(problem, score=None, prior=None, data=None, *, h: float | None = None,
        hbar: float | None = None, degree: int | None = None, method: str = "auto",
        progress: bool = False, t: float = 0.0) -> float:
    r"""Exact negative log-likelihood ``-E_{x∼ρ0} log q^𝔥_{t_min}(x)`` of data under the
    interpolating sampler (Hirono et al.'s NLL(𝔥)).

    ``q^𝔥_{t_min}`` is the sampler's law at the first level ``t_min`` of the problem's grid
    (likelihoods at ``t_min = 0.01`` as in the paper: ``TimeGrid.uniform(T, n,
    t_min=0.01)``). It is computed in the log domain, so the result is finite and accurate
    wherever data lie, far tails included:

    * ``method="pde"`` (default for 𝔥 > 0): :func:`generated_log_density` on the mesh;
    * ``method="characteristics"`` (default for 𝔥 = 0): ``log q_0 = log π(X_T) + ∫∇·v``
      along the probability-flow characteristics from the data points themselves
      (:func:`log_likelihood_characteristics`; no mesh interpolation).

    Args:
        problem: domain, process, time grid, discretization.
        score: ``s(x, t)``.
        prior: the law at ``T``.
        data: a density with ``pdf`` (a :class:`~bridgesolve.GaussianMixture`: the
            expectation by mesh quadrature, normalized by the mass the mesh holds) or
            samples ``(n, d)`` (each rank its own; the mean over all).
        h, hbar: exactly one: ``h`` (noise ``h g``) or the paper's ``𝔥 = h²``.
        degree: quadrature degree for densities (default ``2k + 6``).

    Returns:
        The NLL in nats (per sample; not per dimension).

    ``nll(q_field, samples, t=...)`` (a computed :class:`SpaceTimeField` first) is the
    older form, :func:`nll_of_field`.
    """
    if isinstance(problem, SpaceTimeField):
        return nll_of_field(problem, score, t=t)
    hb = hbar_of(h, hbar)
    if data is None:
        raise BridgesolveInputError("nll: pass data (a GaussianMixture or samples)")
    if method == "auto":
        method = "characteristics" if hb == 0.0 else "pde"
    if method not in ("pde", "characteristics"):
        raise BridgesolveInputError(
            f"method = {method!r}: expected 'auto', 'pde' or 'characteristics'")
    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    score = user_score(score, problem.domain.dim)
    t_min = float(problem.grid.times[0])
    if method == "characteristics":
        if hb != 0.0:
            raise BridgesolveInputError(
                f"method = 'characteristics' needs 𝔥 = 0 (got {hb!r}): use 'pde'")

        def values_at(x):
            return log_likelihood_characteristics(problem, score, prior, x)
    else:
        L = generated_log_density(problem, score, prior, hbar=hb, progress=progress)
        if hasattr(data, "pdf"):
            from bridgesolve.quadrature import values_at_quadrature

            deg = degree or 2 * problem.degree + 6

            def values_at(x):
                return values_at_quadrature(L.space, L.values[:1], deg)[0]
        else:
            def values_at(x):
                v = L.evaluate(x, t_min)
                return np.where(np.isnan(v), -np.inf, v)
    mean, _ = _data_expectation(problem, data, values_at, degree=degree)
    return -mean


def nll_slope(problem: Problem, score: Score, prior, data, *, degree: int | None = None,
              **kwargs) -> float:
    r"""``d NLL/d𝔥`` at 𝔥 = 0: ``-E_data C`` (:func:`wkb_coefficient`; mesh quadrature for
    a density, the mean over all ranks' samples otherwise). Collective."""
    score = user_score(score, problem.domain.dim)

    def values_at(x):
        return wkb_coefficient(problem, score, prior, x, **kwargs) if x.shape[0] else \
            np.zeros(0)

    mean, _ = _data_expectation(problem, data, values_at, degree=degree)
    return -mean


def nll_of_field(q: SpaceTimeField, samples, *, t: float = 0.0) -> float:
    """Mean negative log-likelihood ``-(1/n) Σ log q(x_i, t)`` of samples under a computed
    density field (collective; every rank passes its own samples; the mean is over all of
    them). Samples outside the mesh count as ``+inf``. A linear field is floored at ε times
    its peak (round-off); prefer :func:`nll`, which works in the log domain."""
    if q.representation == "log":
        vals = q.evaluate(samples, t)
        logs = np.where(np.isnan(vals), -np.inf, vals)
        total = q.comm.allreduce(float(-logs.sum()), MPI.SUM)
        return total / q.comm.allreduce(int(logs.size), MPI.SUM)
    vals = q.evaluate(samples, t)
    peak = q.comm.allreduce(float(np.nanmax(q.values[q.grid.index(t)], initial=-np.inf)),
                            MPI.MAX)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isnan(vals), -np.inf,
                        np.log(np.maximum(vals, max(np.finfo(float).eps * peak, 1e-300))))
    total = q.comm.allreduce(float(-logs.sum()), MPI.SUM)
    count = q.comm.allreduce(int(logs.size), MPI.SUM)
    return total / count
