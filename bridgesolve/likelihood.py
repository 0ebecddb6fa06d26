r"""Exact generated densities of the interpolating sampler, and likelihoods from them.

The sampler of :mod:`bridgesolve.sampling` integrates, in reverse time from the prior
``π`` at ``t = T``,

.. math::
    dX = b_h(X, t)\, dt + h\, g\, d\bar W, \qquad
    b_h = f - \frac{1 + h^2}{2}\, g^2\, s, \qquad h \in [0, 1].

Its law ``q_h(·, t)`` is computed here without sampling noise.

**h > 0: the Fokker–Planck equation of the sampler.** In reverse time ``τ = T - t``
(``q(·, T) = π``)

.. math::
    \partial_\tau q = \nabla\cdot(b_h\, q) + h^2 D(t)\, \Delta q,

whose weak form with zero total flux through ∂Ω (reflecting; absorbing sets ``q = 0``) is

.. math::
    (\partial_\tau q, v) + h^2 D\,(\nabla q, \nabla v) + k(t)\,(q f_0, \nabla v)
    - \frac{1 + h^2}{2} g^2\, (q\, s, \nabla v) = 0 \quad \forall v \in V_h .

It is stepped by the θ-scheme engine (:class:`~bridgesolve.pde.stepping.ThetaStepper`):
the mass, diffusion and reference-drift matrices are assembled once; the score term's
matrix is re-assembled every step with ``s`` interpolated (vector Lagrange, the problem's
degree) at the step midpoint — it changes with t, so that is the minimum. With the exact
score, ``q_h = p`` solves it for every ``h`` (``∇·(p ∇log p) = Δp``).

**h = 0: transport of log q, or characteristics.** The probability-flow ODE
``ẋ = v = f - ½ g² s`` transports densities by the instantaneous change of variables,

.. math::
    \log q_0(\cdot, t)(x) = \log \pi(X_T(x)) + \int_t^T \nabla\cdot v(X_r(x), r)\, dr,
    \qquad X_t(x) = x .

With ``levels="all"`` (the default) every level comes from the linear transport equation
of ``log q_0`` on the mesh (:func:`generated_log_density` with 𝔥 = 0, one assembly and
solve per step: O(nt), like h > 0; measured on 96² P1 with 200 steps: 33 s against 21 s
for h = 0.5, where the characteristics from every node and level took O(nt²), 179 s for
only 50 steps). With ``levels="initial"`` the characteristics are run from the mesh nodes
(Heun's method on the time grid for ``X``, the trapezoidal rule for the integral; ``∇·v``
by central differences of the callable unless ``divergence=`` is given). A mesh score
(:class:`~bridgesolve.score.VectorField`) jumps across facets, where central differences
would blow up: it is first made continuous
(:meth:`~bridgesolve.score.VectorField.continuous`). Characteristics that leave the mesh of
a mesh score give ``q = 0`` at their node (``info["lost_nodes"]`` counts them).

From ``q_h``: ``KL(ρ0 ‖ q_h(·, 0))`` by mesh quadrature (:func:`kl_divergence`) and the
score-matching bound ``KL(ρ0‖q_1) ≤ KL(p_T‖π) + ½∫ g² E_{p_t}|s - ∇log p_t|² dt``
(:func:`score_matching_bound`).

**The path-integral view (Hirono, Tanaka & Fukushima, ICML 2024).** Their interpolating
parameter 𝔥 ("Planck's constant", ``hbar=`` here) is ``h²``: noise ``√𝔥 g``, drift
``f - (1+𝔥)/2 g² s``. Every function below takes exactly one of ``h`` or ``hbar``
(:func:`hbar_of`).

* :func:`nll` — the exact ``NLL(𝔥) = -E_{ρ0} log q^𝔥_{t_min}`` in the log domain (no
  logarithm of a linear field: finite and accurate in the far tails), for a mixture
  (quadrature) or samples; :func:`generated_log_density` gives ``log q^𝔥`` at every level
  (:mod:`bridgesolve.pde.generated`), :func:`log_likelihood_characteristics` ``log q^0`` at
  any points.
* :func:`wkb_coefficient` — ``C(x)`` of ``log q^𝔥 = log q^0 + 𝔥 C + O(𝔥²)`` along the
  characteristics, in the paper's δx form and in the equivalent transport form;
  :func:`nll_slope` ``= dNLL/d𝔥|₀ = -E_{ρ0} C``.
* :func:`wasserstein2` (the 1D quantile formula, POT's exact EMD otherwise; ``squared=True``
  is the paper's plotted "W2"), :func:`wasserstein2_1d_densities` (two tabulated 1D
  densities).
* :func:`gaussian_model` — the closed form of the paper's 1D Gaussian model.

Layout (private modules, everything importable from here):
``_likelihood_fokker_planck`` (h > 0 on the mesh), ``_likelihood_characteristics`` (h = 0:
characteristics, ``log q_0`` at points, the WKB coefficient), ``_likelihood_nll``
(``hbar_of``, ``generated_log_density``, ``nll``, ``nll_of_field``, ``nll_slope``),
``_likelihood_metrics`` (KL, the score-matching bound, W2, the Gaussian model); this module
holds :func:`generated_density`, :func:`perturbed_score` and :func:`likelihood_table`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from bridgesolve._likelihood_characteristics import Score as Score
from bridgesolve._likelihood_characteristics import (
    _characteristics,
    log_likelihood_characteristics,
    wkb_coefficient,
)
from bridgesolve._likelihood_fokker_planck import _collective as _collective
from bridgesolve._likelihood_fokker_planck import _fokker_planck_of_sampler
from bridgesolve._likelihood_metrics import (
    gaussian_model,
    kl_divergence,
    score_matching_bound,
    wasserstein2,
    wasserstein2_1d_densities,
)
from bridgesolve._likelihood_nll import (
    generated_log_density,
    hbar_of,
    nll,
    nll_of_field,
    nll_slope,
)
from bridgesolve._validate import BridgesolveInputError, choice, positive
from bridgesolve.problem import Problem
from bridgesolve.sampling import check_h, user_score
from bridgesolve.spacetime import SpaceTimeField


def generated_density(problem: Problem, score: Score, h: float, prior, *,
                      progress: bool = True, name: str = "q", levels: str = "all",
                      divergence: Callable | None = None, fd_step: float = 1e-4,
                      method: str = "auto") -> SpaceTimeField:
    """The density ``q_h`` of the interpolating sampler at every level of the time grid.

    Args:
        problem: domain, process, time grid and discretization (the sampler runs on its
            grid, from ``T`` down to ``t_0``).
        score: ``s(x (N, d), t) -> (N, d)``: analytic, PDE
            (:class:`~bridgesolve.score.VectorField`), bundle interpolant or learned.
        h: the interpolation parameter in [0, 1].
        prior: the law at ``T``: a :class:`~bridgesolve.GaussianMixture` (or any object
            with ``pdf``/``log_pdf``), or a callable of points (a density).
        progress: progress bar (rank 0).
        name: the field's name.
        levels: ``h = 0`` only: ``"all"`` (every level) or ``"initial"`` (the field then
            has the two levels ``t_0`` and ``T``; the characteristics still use every step
            of the problem's grid).
        divergence: ``h = 0`` characteristics only: ``∇·s(x, t)`` as a callable; default
            central differences of ``score`` with step ``fd_step``.
        method: ``h = 0`` only: ``"transport"`` (the default with ``levels="all"``: the
            linear transport equation of ``log q_0`` on the mesh,
            :func:`generated_log_density` with 𝔥 = 0, O(nt): one assembly and solve per
            step like h > 0), or ``"characteristics"`` (the default with
            ``levels="initial"``: trajectories from the nodes, O(nt) for one level but
            O(nt²) for all of them). A mesh score is first made continuous
            (:meth:`~bridgesolve.score.VectorField.continuous`) either way.

    Returns:
        A linear :class:`~bridgesolve.SpaceTimeField`; ``info`` holds ``h``, ``mass`` per
        level, timings (and for h > 0 the stepper's counts).
    """
    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    h = check_h(h)
    score = user_score(score, problem.domain.dim)
    if levels not in ("all", "initial"):
        raise BridgesolveInputError(f"levels = {levels!r}: expected 'all' or 'initial'")
    t_start = time.perf_counter()
    choice("method", method, ("auto", "transport", "characteristics"))
    if h > 0:
        field = _fokker_planck_of_sampler(problem, score, h, prior, progress, name)
    else:
        from bridgesolve.score import VectorField

        if isinstance(score, VectorField) and divergence is None:
            score = score.continuous()  # bounded derivatives, partition-independent nodes
        if method == "auto":
            method = "transport" if levels == "all" else "characteristics"
        if method == "transport":
            if levels != "all":
                raise BridgesolveInputError(
                    f"levels = {levels!r} with method = 'transport': the transport solve "
                    "gives every level (levels='all')")
            log_field = generated_log_density(problem, score, prior, hbar=0.0,
                                              progress=progress, name=name)
            field = SpaceTimeField(problem.V, problem.grid, np.exp(log_field.values),
                                   name=name, info={**log_field.info,
                                                    "log_values": log_field.values,
                                                    "equation": "log-density transport"})
        else:
            field = _characteristics(problem, score, prior, progress, name, levels,
                                     divergence, positive("fd_step", fd_step))
    field.info["h"] = h
    field.info["mass"] = field.integral()
    field.info.setdefault("timings", {})["total_s"] = time.perf_counter() - t_start
    return field


def perturbed_score(score: Score, *, scale: float = 1.0, amplitude: float = 0.0,
                    wavenumber: float = 1.0) -> Score:
    r"""``scale · s(x, t) + amplitude · sin(wavenumber · x)`` (componentwise): a smooth,
    deliberately wrong score for studies of ``q_h`` against ``h``."""
    from bridgesolve.score import VectorField

    if not callable(score):
        raise BridgesolveInputError(f"score = {score!r}: expected a callable s(x, t)")
    scale, amplitude, wavenumber = float(scale), float(amplitude), float(wavenumber)

    def s(x, t):
        x = np.asarray(x, dtype=float)
        return scale * np.asarray(score(x, t), dtype=float).reshape(x.shape) + \
            amplitude * np.sin(wavenumber * x)

    # a perturbed mesh field is NaN outside its mesh like the field: not checked for it
    s.nan_outside_mesh = isinstance(score, VectorField) or getattr(score, "nan_outside_mesh",
                                                                   False)
    return s


def likelihood_table(problem: Problem, score: Score, hs: Sequence[float], data, prior, *,
                     samples=None, progress: bool = False) -> list[dict]:
    """For each h: ``KL(ρ0‖q_h)``, ``‖q_h - ρ0‖_L1`` at t = 0, the mass of ``q_h`` and, with
    ``samples`` (this rank's), their mean NLL under ``q_h`` (collective)."""
    score = user_score(score, problem.domain.dim)
    rows = []
    for h in hs:
        t0 = time.perf_counter()
        q = generated_density(problem, score, h, prior, progress=progress,
                              levels="initial")
        row = {"h": float(h), "kl": kl_divergence(data, q),
               "l1": q.error(data, 0.0, norm="L1"), "mass": float(q.info["mass"][0])}
        if samples is not None:
            row["nll"] = nll_of_field(q, samples)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


__all__ = ["gaussian_model", "generated_density", "generated_log_density", "hbar_of",
           "kl_divergence", "likelihood_table", "log_likelihood_characteristics", "nll",
           "nll_of_field", "nll_slope", "perturbed_score", "score_matching_bound",
           "wasserstein2", "wasserstein2_1d_densities", "wkb_coefficient"]
