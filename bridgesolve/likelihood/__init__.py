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

Layout (one concern per module, everything importable from here):
``fokker_planck`` (h > 0 on the mesh), ``characteristics`` (h = 0: characteristics,
``log q_0`` at points, the WKB coefficient), ``nll`` (``hbar_of``,
``generated_log_density``, ``nll``, ``nll_of_field``, ``nll_slope``), ``metrics`` (KL, the
score-matching bound, W2, the Gaussian model) and ``generated`` (:func:`generated_density`,
:func:`perturbed_score`, :func:`likelihood_table`).
"""

from __future__ import annotations

from bridgesolve.likelihood.characteristics import Score as Score
from bridgesolve.likelihood.characteristics import (
    log_likelihood_characteristics,
    wkb_coefficient,
)
from bridgesolve.likelihood.generated import generated_density, likelihood_table, perturbed_score
from bridgesolve.likelihood.metrics import (
    gaussian_model,
    kl_divergence,
    score_matching_bound,
    wasserstein2,
    wasserstein2_1d_densities,
)
from bridgesolve.likelihood.nll import (
    generated_log_density,
    hbar_of,
    nll,
    nll_of_field,
    nll_slope,
)

__all__ = ["gaussian_model", "generated_density", "generated_log_density", "hbar_of",
           "kl_divergence", "likelihood_table", "log_likelihood_characteristics", "nll",
           "nll_of_field", "nll_slope", "perturbed_score", "score_matching_bound",
           "wasserstein2", "wasserstein2_1d_densities", "wkb_coefficient"]
