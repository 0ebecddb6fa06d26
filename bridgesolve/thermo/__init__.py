r"""Stochastic thermodynamics of diffusion processes on the mesh (Yu & Huang, PRE 111, 014111).

A process ``dX = F(X, t) dt + \sqrt{2 D(t)}\, dW`` with marginals ``p_t`` carries the
probability current ``J = F p - D \nabla p = p\,(F - D \nabla \log p)``. Its

.. math::
    \Pi = \int \frac{|J|^2}{D\,p}\,dx \;(\text{total entropy production}),\qquad
    \Phi = \int \frac{J\cdot F}{D}\,dx \;(\text{entropy flow to the medium}),\qquad
    \frac{dS}{dt} = \Pi - \Phi = -\int J\cdot\nabla\log p\,dx = \frac{d}{dt}\Big(-\int p\log p\Big).

**Reverse process.** The time reversal in ``s = T - t`` has the same marginals read
backwards, ``p_{T-s}``, drift ``F^* = -f + 2D\nabla\log p`` and current ``J^* = -J``: hence
``\Pi^* = \Pi``, ``\Phi^* = \Phi - 2\int J\cdot\nabla\log p = \Phi + 2\,dS/dt`` and
``dS^*/ds = -dS/dt``. *Time convention:* every result here is indexed by the forward time
``t`` of the marginal ``p_t`` (the reverse process is at ``s = T - t`` there), and reverse
rates are per unit of the reverse time ``s``.

**Discretization.** ``Π, Φ, dS/dt`` are assembled by quadrature on the owned cells of the
mesh (rank-independent sums) with the FE gradient of ``I_h \log \max(p_h, ε \max p_h)``,
the interpolant of the floored nodal logarithms (as :func:`bridgesolve.score.grad_log`: it
stays finite in the tails, where ``\nabla p_h / p_h`` divides round-off): with ``v = F -
D s_h``, ``Π = Σ w p_h |v|²/D``, ``Φ = Σ w p_h v·F/D``, ``dS/dt = -Σ w p_h v·s_h``. On affine
simplex meshes the Lagrange basis and its gradients are tabulated once (basix) and applied to
blocks of time levels with dense NumPy products: no per-level compilation or assembly (2D P2
at 1e5 dofs: ~15 ms a level). Other meshes use compiled ``fem.Expression`` objects (built once).

**Effective potential and speciation.** For a linear process (``f = -k(t)(x - c)``) the
reverse drift is ``-\nabla U`` with ``U(x, t) = -k(t)|x - c|^2/2 - g(t)^2 \log p_t(x)``.
The *speciation time* ``t_s`` is where ``∂²U/∂x²`` at a point changes sign (the potential
turns from one well into two); the *bimodality time* is where ``∂² \log p_t`` changes sign
there (``p_t`` itself stops being bimodal) — a different, earlier-in-reverse quantity.

**Trajectories.** Along a path ``x(·)``: ``ΔS_sys = \log p_{start}(x_{start}) - \log
p_{end}(x_{end})``, ``ΔS_E = \int (F/D)∘dx`` (Stratonovich, midpoint rule) and ``ΔS_tot =
ΔS_sys + ΔS_E``, with ``⟨e^{-ΔS_tot}⟩ = 1`` and ``⟨ΔS_tot⟩ = \int Π dt``.

**Franz–Parisi potential** of a planted point under the OU posterior: see
:func:`franz_parisi`.

The closed forms of the paper's symmetric two-Gaussian OU case are NumPy functions
(:class:`SymmetricTwoGaussianOU`).

**Where things live.** This package's ``__init__`` is the public face; the code sits in
modules by concern: ``closed`` (the symmetric two-Gaussian OU closed forms),
``mesh`` (quadrature of FE fields, :func:`entropy_production`),
``potential`` (effective potential, curvatures, speciation and bimodality times, the
phase diagram), ``paths`` (path entropies and the fluctuation theorem) and
``franz_parisi`` (the Franz–Parisi potential).
"""

from __future__ import annotations

from bridgesolve.thermo.closed import (
    UNSTABLE_SIGMA,
    SymmetricTwoGaussianOU,
    bimodality_time_closed,
    no_breaking_boundary,
    speciation_time_closed,
)
from bridgesolve.thermo.franz_parisi import FranzParisi, franz_parisi, franz_parisi_monte_carlo
from bridgesolve.thermo.mesh import (
    LOG_FLOOR,
    EntropyProduction,
    entropy_production,
)
from bridgesolve.thermo.mesh import _CellQuadrature as _CellQuadrature  # for tests
from bridgesolve.thermo.paths import PathEntropies, path_entropies
from bridgesolve.thermo.potential import (
    REGIONS,
    PhaseDiagram,
    bimodality_time,
    closed_form_region,
    effective_potential,
    log_density_curvature,
    phase_diagram,
    potential_curvature,
    sign_change_time,
    solve_two_gaussian_ou,
    speciation_time,
)

__all__ = [
    "EntropyProduction", "FranzParisi", "LOG_FLOOR", "PathEntropies", "PhaseDiagram",
    "REGIONS", "SymmetricTwoGaussianOU", "UNSTABLE_SIGMA", "bimodality_time",
    "bimodality_time_closed", "closed_form_region", "effective_potential",
    "entropy_production", "franz_parisi", "franz_parisi_monte_carlo", "log_density_curvature",
    "no_breaking_boundary", "path_entropies", "phase_diagram", "potential_curvature",
    "sign_change_time", "solve_two_gaussian_ou", "speciation_time", "speciation_time_closed",
]
