r"""The Schrödinger bridge on a mesh: Sinkhorn–Fortet iterations on the Schrödinger system.

Given marginals ρ0, ρ1 and a reference process ``dX = f dt + g dW`` (with an optional
killing/creation rate ``V``), find potentials φ, φ̂ with

.. math::
    \partial_t\varphi + f\cdot\nabla\varphi + D\Delta\varphi + V\varphi = 0, \qquad
    \partial_t\hat\varphi = -\nabla\cdot(f\hat\varphi) + D\Delta\hat\varphi + V\hat\varphi,

    \varphi(\cdot,0)\,\hat\varphi(\cdot,0) = \rho_0, \qquad
    \varphi(\cdot,T)\,\hat\varphi(\cdot,T) = \rho_1 .

Then ``ρ_t = φ φ̂`` are the bridge marginals, ``∇log ρ_t = ∇log φ + ∇log φ̂`` their score,
``f + g²∇log φ`` the optimal forward drift, ``f - g²∇log φ̂`` the backward one (reverse
time), ``f + D(∇log φ - ∇log φ̂)`` the probability-flow velocity, and (no killing)

.. math::
    \mathrm{KL}(P^*\,\|\,R_{\rho_0}) = \tfrac12\int_0^T\!\!\int g^2\rho_t|\nabla\log\varphi|^2
    = \int\rho_1\log\varphi_T - \int\rho_0\log\varphi_0 .

Fortet/Sinkhorn iteration: start from ``φ_T = 1``; repeat {backward solve → φ_0;
``φ̂_0 = ρ0/φ_0``; forward solve → φ̂_T; ``φ_T = ρ1/φ̂_T``}. The products are nodal (dof by
dof) and marginal errors are measured with the lumped mass weights ``m_i``:
``L1 = Σ_i m_i |φ_i φ̂_i - ρ_i|`` and ``L∞ = max_i |φ_i φ̂_i - ρ_i|``.

Two discretizations of the same system:

* ``mode="linear"``: φ and φ̂ by the θ-scheme with a *lumped* mass matrix. The backward
  matrix is the transpose of the forward one, so ``Σ_i m_i φ_i^n φ̂_i^n`` is the same at
  every level (discrete duality), which is exactly what makes the nodal Schrödinger
  system solvable to round-off: the Sinkhorn fixed point exists for the discrete problem.
  Every step is rescaled by its maximum (the scales are kept as logarithms), so nothing
  overflows; what cannot be rescaled away is a dynamic range beyond double precision
  *within* one time level, and values that turn non-positive (Crank–Nicolson is not
  positivity preserving; backward Euler with the lumped P1 mass is, on non-obtuse meshes
  when diffusion dominates the drift). Both are detected, never passed on silently.
* ``mode="log"``: ``S = log φ`` and ``Ŝ = log φ̂`` by the HJB solvers
  (:mod:`bridgesolve.pde.hjb`), robust when the potentials span hundreds of orders of
  magnitude (small noise). The HJB pair conserves ``∫φφ̂`` only up to discretization
  error, which is reported (``info["mass"]``).
* ``mode="auto"`` starts linear and switches to log on underflow, non-positive values,
  steepness or stagnation, continuing from the current potentials (recorded in
  ``history``). Its log phase replaces Newton, once near the fixed point, by *tilted*
  linear solves: the θ-steps linearized about the last iterate ``S̄`` (drift
  ``f + g²∇S̄``, exact residuals, factorizations reused; :class:`bridgesolve.pde.
  linearized.LogLinearization`, policy in :data:`bridgesolve.bridge.sweeps.TILT`).
  Same fixed point as ``"log"``, at close to the linear mode's cost; on failure it rolls
  back to its best iterate and continues with Newton.

Acceleration: over-relaxation of both half-updates in the log domain (Thibault et al.,
2017; Lehmann et al., 2021), ``log φ_T ← (1-ω) log φ_T + ω log(ρ1/φ̂_T)`` and likewise for
φ̂_0, ``ω = 2/(1 + sqrt(1 - η))`` from the observed rate η, back to ω = 1 when the error
grows; or Anderson acceleration of ``log φ_T`` (``acceleration="anderson"``). Small noise:
``continuation=[σ1, σ2, ...]`` (ε-scaling) starts from bridges at larger σ.


**Where things live.** :mod:`~bridgesolve.bridge.solve` (:func:`solve_bridge`: set-up,
mass checks, continuation, normalization), :mod:`~bridgesolve.bridge.sinkhorn` (the loop,
marginals, errors), :mod:`~bridgesolve.bridge.sweeps` (one backward/forward sweep per mode),
:mod:`~bridgesolve.bridge.acceleration` (over-relaxation, Anderson) and
:mod:`~bridgesolve.bridge.result` (:class:`Bridge`).
"""

from __future__ import annotations

from bridgesolve.bridge.result import COST_GAP_WARNING, Bridge
from bridgesolve.bridge.sinkhorn import BridgeError
from bridgesolve.bridge.solve import (
    CONTINUATION_TOL,
    MASS_OUTSIDE_REFUSE,
    MASS_OUTSIDE_WARN,
    solve_bridge,
)
from bridgesolve.densities import gaussian_bridge

__all__ = ["COST_GAP_WARNING", "CONTINUATION_TOL", "MASS_OUTSIDE_REFUSE", "MASS_OUTSIDE_WARN",
           "Bridge", "BridgeError", "gaussian_bridge", "solve_bridge"]
