r"""The action of a control and the identities of the action principle (PAPERS.md §C).

Premkumar ("Generative Diffusion From An Action Principle", arXiv 2310.04490) reads score
matching as optimal control. This module evaluates the action of *any* control from the
law of the process that control drives, and states each identity as a function.

**The controlled process and its action.** The reference SDE ``dX = f dt + g dW`` (forward
time ``t ∈ [0, T]``, data at ``t = 0``) and a control ``u(x, t)`` define a controlled
process ``Q^u`` whose density ``q`` is a Fokker–Planck solution on the mesh (no sampling
noise). Its action is

.. math::
    A[u] = \int \frac{1}{2 g(t)^2}\, E_{q_t} |u(\cdot, t)|^2 \, dt
         = \int \frac{1}{2 g^2} \int q(x, t)\, |u(x, t)|^2 \, dx\, dt ,

computed with ``q`` the controlled process's *own* law (mesh quadrature in ``x``, the
trapezoidal rule over the grid levels in ``t``). By Girsanov,
``KL(Q^u ‖ R) = KL(q_start ‖ r_start) + A[u]`` for the reference path measure ``R`` with
the same diffusion; ``KL(q_end ‖ r_end) ≤ KL(Q^u ‖ R)`` (data processing).

**References and time conventions** (``reference=``); ``u`` is always a function of the
forward time ``t``:

* ``"process"``: forward time. ``q(·, 0) = rho``; drift ``f + u``; start ``t = 0``, end
  ``t = T``. ``r_start = rho`` (so ``KL(Q‖R) = A``). The Schrödinger bridge is this case
  with ``u = g² ∇log φ``: its action is its kinetic energy ``KL(P*‖R_ρ0)``.
* ``"stationary"``: reverse time ``τ = T - t``. ``q(·, T) = rho``; the reference is the
  stationary (reversible) version of an OU/VP process, started from its invariant law
  ``p_∞``; its reverse-time drift is ``-f + g² ∇log p_∞`` (``= f`` for OU/VP), the
  controlled one ``-f + g² ∇log p_∞ + u``; start ``t = T``, end ``t = 0``;
  ``r_start = r_end = p_∞``. The optimal control that reproduces the marginals ``p_t``
  of the data is ``u* = g² (∇log p_t - ∇log p_∞)`` (:func:`score_control`).
* ``"reversed"``: reverse time. The reference is the time reversal of the diffusion of
  the data (``score=`` its score ``∇log p_t``): reverse-time drift ``-f + g² ∇log p_t``
  (Anderson), controlled ``-f + g² ∇log p_t + u``; ``q(·, T) = rho``; ``r_start = p_T``
  (``reference_start=``), ``r_end = p_0``. The control of a learned score ``s_θ`` is
  ``u = g² (s_θ - ∇log p_t)`` and its action is the explicit score-matching loss with
  weight ``g²/2`` under the sampler's own law.

**End cost.** Without an end condition ``u = 0`` minimizes the action; the control problem
adds the terminal cost ``Φ = log(r_end / target)`` at the end point, normalized so that it
vanishes when the process ends at ``target``:

.. math::
    E[u] = E_{q_{end}}[\log r_{end} - \log \mathrm{target}] + KL(\mathrm{target} ‖ r_{end})
         = KL(q_{end} ‖ \mathrm{target}) + \dots ,

and ``J[u] = A[u] + E[u]``. With ``P*`` the reference reweighted at its end by
``target / r_end`` (for ``"stationary"`` with target ``p_0`` and start ``p_T``: the true
reverse process), ``KL(q_start‖r_start) + J[u] = KL(Q^u ‖ P*) + KL(target ‖ r_end)``
(Girsanov plus the chain rule), so ``J`` is minimal exactly at the optimal control.

**The identities** (each a function here, each a test in ``tests/action/test_action.py``):

1. Minimal action = KL (de Bruijn): for OU/VP with the stationary reference,
   ``A[u*] = ∫ (g²/2) E_{p_t}|∇log p_t - ∇log p_∞|² dt = KL(p_0‖p_∞) - KL(p_T‖p_∞)``
   (:func:`minimal_action`, :func:`relative_fisher_rate`).
2. Excess action = explicit score matching: for the control ``g² (s - ∇log p_∞)`` started
   from ``p_T``, ``J[u] - A* = ∫ (g²/2) E_{q_t}|s - ∇log p_t|² dt`` exactly with the
   sampler's own law ``q`` (Girsanov against the true reverse process):
   ``excess_action(s, data, process, law=control_action(...))`` takes the expectation
   under ``q`` at every grid level, and the identity holds to discretization error. The
   validator's ``∫ (g²/2) E_{p_t}|s - ∇log p_t|² dt`` (``excess_action`` without ``law``)
   agrees with it only to third order in the score error (for a poorly trained network the
   two differ by an order of magnitude). Along ``s = ∇log p + δη``,
   ``J(δ) = A* + κ δ² + O(δ³)`` with ``κ = ∫ (g²/2) E_{p_t}|η|² dt``
   (:func:`perturbation_curvature`).
3. ``DSM - ESM = d/σ_t² - E_{p_t}|∇log p_t|²`` at every t for every score
   (:func:`denoising_gap`; the denoising loss by Gauss–Hermite quadrature,
   :func:`denoising_loss`).
4. The Schrödinger bridge's kinetic energy ``½∫g² E_ρ|∇log φ|² dt = KL(P*‖R)``; for
   Gaussians with a Brownian reference it equals the static entropic-OT value
   (:func:`bridgesolve.densities.gaussian_bridge_cost`): :func:`gaussian_bridge_kinetic`
   computes the dynamic side independently (below).

**Gaussian closed forms** (moment ODEs of a linear control, the Gaussian bridge's kinetic
energy by a Lyapunov equation): :mod:`bridgesolve.action.gaussian`.

**Layout.** :mod:`bridgesolve.action.control` holds the controlled Fokker–Planck solve
(:func:`control_action`, :class:`ActionResult`); references, laws, KL divergences and
controls live in :mod:`bridgesolve.action.common`, the identities in
:mod:`bridgesolve.action.identities`, the Gaussian closed forms in
:mod:`bridgesolve.action.gaussian`; every public name is re-exported here.
"""

from __future__ import annotations

from bridgesolve.action.common import (
    ACTION_REFERENCES,
    Control,
    gaussian_kl,
    kl_quadrature,
    score_control,
    stationary_law,
    trapezoid_weights,
)
from bridgesolve.action.control import ActionResult, control_action
from bridgesolve.action.gaussian import (
    gaussian_bridge_kinetic,
    gaussian_control_action,
    gaussian_optimal_control,
)
from bridgesolve.action.identities import (
    denoising_gap,
    denoising_loss,
    excess_action,
    explicit_loss,
    minimal_action,
    optimal_control,
    perturbation_curvature,
    relative_fisher_rate,
)

__all__ = ["ACTION_REFERENCES", "ActionResult", "Control", "control_action", "denoising_gap",
           "denoising_loss", "excess_action", "explicit_loss", "gaussian_bridge_kinetic",
           "gaussian_control_action", "gaussian_kl", "gaussian_optimal_control",
           "kl_quadrature", "minimal_action", "optimal_control", "perturbation_curvature",
           "relative_fisher_rate", "score_control", "stationary_law", "trapezoid_weights"]
