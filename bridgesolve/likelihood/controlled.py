r"""The law of a forward SDE with a user drift: ``dX = b(X, t) dt + g(t) dW``, ``X_0 ~ ρ0``.

A learned Schrödinger bridge (DSB, SB-FBSDE, bridge matching) is a forward drift network
``b ≈ f + g² ∇log φ``; the law it generates solves

.. math::
    \partial_t q = -\nabla\cdot(b\, q) + D(t)\, \Delta q, \qquad q(\cdot, 0) = ρ_0,

with zero total flux ``(b q - D ∇q)·n = 0`` on reflecting walls (absorbing: ``q = 0``). Weak
form, stepped by the θ-scheme engine like the sampler's equation of
:mod:`bridgesolve.likelihood.fokker_planck`:

.. math::
    (\partial_t q, v) + D\,(\nabla q, \nabla v) - (q\, b, \nabla v) = 0
    \quad \forall v \in V_h .

The mass and diffusion matrices are assembled once; the drift term's matrix every step,
with ``b`` interpolated (vector Lagrange, the problem's degree) at the step midpoint. The
whole drift comes from ``b`` (the process's own ``f`` is not added): ``b`` is what the
network learned.
"""

from __future__ import annotations

import time

import numpy as np

from bridgesolve._validate import BridgesolveInputError, deferred_checks
from bridgesolve.pde.fokker_planck import density_stepper, initial_function, user_drift_term
from bridgesolve.pde.fokker_planck import transport_terms as _transport_terms
from bridgesolve.pde.stepping import evolve
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField


def controlled_density(problem: Problem, drift, rho0, *, progress: bool = True,
                       name: str = "q") -> SpaceTimeField:
    """The density of ``dX = drift(X, t) dt + g dW`` from ``rho0`` at every grid level.

    Args:
        problem: domain, process (its ``g`` only), time grid and discretization.
        drift: ``b(x (N, d), t) -> (N, d)`` on NumPy points (a network read through
            :func:`~bridgesolve.learn.as_numpy_score`, a closed form, a
            :class:`~bridgesolve.score.VectorField`).
        rho0: the initial density (as :func:`~bridgesolve.solve_fokker_planck` takes it).
        progress: progress bar (rank 0).
        name: the field's name.

    Returns:
        A linear :class:`~bridgesolve.SpaceTimeField`; ``info`` holds ``mass`` per level,
        the stepper's counts and timings. Collective.
    """
    from bridgesolve.sampling import user_score

    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    d = problem.domain.dim
    b_nodes = deferred_checks(user_score(drift, d, name="drift"))
    t0 = time.perf_counter()
    q0 = initial_function(problem, rho0, name, label="initial density rho0", nonnegative=True)
    diffusion = _transport_terms(problem, adjoint=False)[0]
    stepper = density_stepper(problem, [diffusion, user_drift_term(problem, b_nodes, "drift")],
                              q0)
    setup = time.perf_counter() - t0
    try:
        values = evolve(stepper, problem.grid, q0, desc="controlled Fokker-Planck",
                        progress=progress)
    finally:
        info = {"equation": "controlled-fokker-planck", "factorizations": stepper.factorizations,
                "assemblies": stepper.assemblies}
        mass_vector = stepper.row_sums()
        stepper.destroy()
    if not np.all(np.isfinite(values)):
        raise FloatingPointError("the controlled density became non-finite (drift blew up?)")
    info["timings"] = {"setup_s": setup, "total_s": time.perf_counter() - t0}
    field = SpaceTimeField(problem.V, problem.grid, values, name=name, info=info)
    field.info["mass"] = field.integral(mass_vector)
    return field


__all__ = ["controlled_density"]
