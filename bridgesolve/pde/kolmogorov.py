r"""Backward Kolmogorov equation with Feynman–Kac killing.

.. math::
    \partial_t \varphi + k(t) f_0\cdot\nabla\varphi + D(t)\,\Delta\varphi + V\varphi = 0,
    \qquad \varphi(\cdot, T) = \varphi_T,

so that ``φ(x, t) = E[exp(∫_t^T V(X_s, s) ds) φ_T(X_T) | X_t = x]``. Reflecting boundaries
mean ``∇φ·n = 0`` (natural); absorbing ones ``φ = 0`` (the process is killed there).
In reversed time the weak form is

.. math::
    (\partial_\tau \varphi, v) + D (\nabla\varphi, \nabla v) - k (f_0\cdot\nabla\varphi, v)
    - (V\varphi, v) = 0,

the transpose of the Fokker–Planck operator: the same engine, assembled once, stepped
from ``T`` down to 0. ``∫ φ(·, t) p(·, t) dx`` is then constant in time (duality).
"""

from __future__ import annotations

import time

from bridgesolve.pde.fokker_planck import (
    dirichlet_dofs,
    initial_function,
    mass_form,
    transport_terms,
)
from bridgesolve.pde.killing import killing_term
from bridgesolve.pde.stepping import ThetaStepper, evolve
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField


def solve_kolmogorov(problem: Problem, phi_T, *, killing=None, progress: bool = True,
                     name: str = "phi") -> SpaceTimeField:
    """Solve the backward Kolmogorov equation from ``φ(·, T) = phi_T`` down to t = 0.

    Args:
        problem: domain, process, time grid and discretization.
        phi_T: terminal value: a callable of points ``(N, d) -> (N,)``, a density-like
            object (its ``pdf`` is used, e.g. a :class:`GaussianMixture`), or a DOLFINx
            Function.
        killing: optional rate ``V`` (a number, ``V(x)``, ``V(x, t)`` or UFL); ``V < 0``
            discounts, as in Feynman–Kac.
        progress: progress bar over time steps (rank 0).

    Returns:
        φ at every time level; ``info`` has ``factorizations``, ``assemblies``, ``timings``.
    """
    t_start = time.perf_counter()
    V = problem.V
    phi = initial_function(problem, phi_T, name)
    terms = transport_terms(problem, adjoint=True)
    info = {"equation": "kolmogorov"}
    kt = killing_term(V, killing, sign=-1.0)
    if kt is not None:
        terms.append(kt[0])
        info.update(kt[1])
    bc = dirichlet_dofs(problem)
    if bc is not None:
        phi.x.array[bc] = 0.0
        phi.x.scatter_forward()
    stepper = ThetaStepper(mass_form(problem), terms, problem.theta,
                           dirichlet_dofs=bc, petsc_options=problem.petsc_options)
    setup = time.perf_counter() - t_start
    t_loop = time.perf_counter()
    values = evolve(stepper, problem.grid, phi, backward=True, desc="Kolmogorov",
                    progress=progress)
    info.update(factorizations=stepper.factorizations, assemblies=stepper.assemblies)
    stepper.destroy()
    info["timings"] = {"setup_s": setup, "stepping_s": time.perf_counter() - t_loop,
                       "total_s": time.perf_counter() - t_start}
    return SpaceTimeField(V, problem.grid, values, name=name, info=info)
