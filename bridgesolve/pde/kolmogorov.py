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

from bridgesolve._dolfinx import MPI
from bridgesolve.pde.fokker_planck import (
    check_mass_inside,
    check_positivity,
    dirichlet_dofs,
    initial_function,
    mass_form,
    transport_terms,
)
from bridgesolve.pde.killing import check_rate, killing_term
from bridgesolve.pde.stepping import ThetaStepper, evolve
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField


def solve_kolmogorov(problem: Problem, phi_T, *, killing=None, progress: bool = True,
                     name: str = "phi", method: str = "fe") -> SpaceTimeField:
    """Solve the backward Kolmogorov equation from ``φ(·, T) = phi_T`` down to t = 0.

    Args:
        problem: domain, process, time grid and discretization.
        phi_T: terminal value: a callable of points ``(N, d) -> (N,)``, a density-like
            object (its ``pdf`` is used, e.g. a :class:`GaussianMixture`), or a DOLFINx
            Function.
        killing: optional rate ``V`` (a number, ``V(x)``, ``V(x, t)`` or UFL); ``V < 0``
            discounts, as in Feynman–Kac.
        progress: progress bar over time steps (rank 0).
        method: ``"fe"``, ``"kernel"`` (``E[φ_T(X_T) | X_t]`` by the exact kernel of a
            linear process on a box, no killing) or ``"auto"`` (the kernel where it applies).

    Returns:
        φ at every time level; ``info`` has ``factorizations``, ``assemblies``, ``timings``,
        ``mass_outside_terminal`` (for a mixture ``phi_T``) and ``warnings``.

    Checks, as :func:`~bridgesolve.pde.fokker_planck.solve_fokker_planck`: a callable
    ``phi_T`` must return one finite number per point; a mixture ``phi_T`` with less than
    half its mass in Ω is refused, above 1e-6 outside warned about; creation rates with
    ``θ Δt V >= 1`` are refused, killing rates that make the amplification factor negative
    warned about; a non-negative ``phi_T`` whose φ goes negative (beyond 1 % of the peak)
    is warned about. Warnings are ``RuntimeWarning``s and are kept in ``info["warnings"]``.
    """
    from bridgesolve.kernel.fields import kolmogorov_field, use_kernel

    if use_kernel(method, problem, killing=killing):
        return kolmogorov_field(problem, phi_T, name=name)
    t_start = time.perf_counter()
    V = problem.V
    found: list[str] = []
    phi = initial_function(problem, phi_T, name, label="terminal value phi_T")
    outside = check_mass_inside(problem, phi_T, "the terminal value phi_T", found)
    terms = transport_terms(problem, adjoint=True)
    info = {"equation": "kolmogorov"}
    if outside is not None:
        info["mass_outside_terminal"] = outside
    kt = killing_term(V, killing, sign=-1.0)
    if kt is not None:
        terms.append(kt[0])
        info.update(kt[1])
        check_rate(kt[1], problem.theta, float(problem.grid.dt.max()), sink=found)
    bc = dirichlet_dofs(problem)
    if bc is not None:
        phi.x.array[bc] = 0.0
        phi.x.scatter_forward()
    stepper = ThetaStepper(mass_form(problem), terms, problem.theta,
                           dirichlet_dofs=bc, petsc_options=problem.petsc_options)
    setup = time.perf_counter() - t_start
    t_loop = time.perf_counter()
    values = evolve(stepper, problem.grid, phi, backward=True, desc="Kolmogorov",
                    progress=progress, out=problem.levels(phi.x.array.size, name=name))
    info.update(factorizations=stepper.factorizations, assemblies=stepper.assemblies,
                linear_solver=stepper.solver_info(), storage=problem.storage.kind)
    stepper.destroy()
    info["timings"] = {"setup_s": setup, "stepping_s": time.perf_counter() - t_loop,
                       "total_s": time.perf_counter() - t_start}
    field = SpaceTimeField(V, problem.grid, values, name=name, info=info)
    local_T = float(values[-1].min()) if values.shape[1] else 0.0
    lo_T = float(problem.comm.allreduce(local_T, op=MPI.MIN))
    if lo_T >= 0.0:  # a non-negative terminal value keeps φ >= 0 (maximum principle)
        check_positivity(problem, field, "phi", found)
    if info.get("killing") == "callable(x, t)":
        check_rate(info, problem.theta, float(problem.grid.dt.max()), sink=found, refuse=False)
    info["warnings"] = list(dict.fromkeys(found))
    return field
