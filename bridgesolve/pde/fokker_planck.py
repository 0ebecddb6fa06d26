r"""Forward Fokker–Planck equation.

.. math::
    \partial_t p = -\nabla\cdot(f p) + D(t)\,\Delta p + V p, \qquad p(\cdot, 0) = \rho_0,

with ``f(x, t) = k(t) f_0(x)``. Reflecting boundaries carry zero probability flux
``(f p - D\nabla p)\cdot n = 0``, which is the natural condition of the weak form

.. math::
    (\partial_t p, v) + D(t) (\nabla p, \nabla v) - k(t) (p f_0, \nabla v) - (V p, v) = 0
    \quad \forall v \in V_h .

Testing with ``v = 1`` gives ``d/dt ∫ p = ∫ V p``: without killing the discrete mass is
conserved exactly (to solver round-off). Absorbing boundaries set ``p = 0`` on ∂Ω.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from bridgesolve._dolfinx import dolfinx, fem, ufl
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.pde.killing import killing_term
from bridgesolve.pde.stepping import Term, ThetaStepper, evolve
from bridgesolve.problem import Problem
from bridgesolve.quadrature import integrate
from bridgesolve.spacetime import SpaceTimeField, as_numpy_callable

#: Initial mass outside Ω above which a warning is issued.
MASS_OUTSIDE_WARN = 1e-6


def initial_function(problem: Problem, rho0, name: str) -> fem.Function:
    """``rho0`` (mixture, callable of points, or FE function) as a function of ``problem.V``."""
    u = fem.Function(problem.V, name=name)
    if isinstance(rho0, fem.Function):
        u.interpolate(rho0)
    else:
        dim = problem.domain.dim
        if getattr(rho0, "dim", dim) != dim:
            raise BridgesolveInputError(
                f"initial density is {rho0.dim}D but the domain is {dim}D"
            )
        u.interpolate(as_numpy_callable(rho0, dim))
    if not np.all(np.isfinite(u.x.array)):
        raise BridgesolveInputError(f"initial {name} has non-finite values on the mesh")
    return u


def dirichlet_dofs(problem: Problem) -> np.ndarray | None:
    """Owned boundary dofs for absorbing boundaries, else None."""
    if problem.boundary != "absorbing":
        return None
    mesh = problem.mesh
    facets = problem.domain.boundary_facets()
    dofs = fem.locate_dofs_topological(problem.V, mesh.topology.dim - 1, facets)
    return dofs[dofs < problem.V.dofmap.index_map.size_local]


def exact_mass_in_domain(problem: Problem, rho0) -> float | None:
    """``∫_Ω ρ0`` by mesh quadrature of the exact density (:meth:`Problem.mass_inside`), or
    None when ρ0 is not a probability density object (``.pdf``)."""
    if not hasattr(rho0, "pdf"):
        return None
    return problem.mass_inside(rho0)


def transport_terms(problem: Problem, *, adjoint: bool) -> list[Term]:
    """Diffusion and drift terms of ``-L*`` (forward) or ``-L`` (backward, ``adjoint=True``)."""
    proc = problem.process
    V = problem.V

    def diffusion():
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        return ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx

    terms = [Term(problem.form("diffusion", diffusion), proc.diffusion_integral)]
    if not (proc.linear and proc.drift_rate_integral(0.0, 1.0) == 0.0):
        def drift():
            u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
            f0 = proc.drift_shape_ufl(ufl.SpatialCoordinate(problem.mesh))
            if problem.domain.dim == 1 and f0.ufl_shape == ():
                f0 = ufl.as_vector([f0])
            if adjoint:
                return -ufl.inner(f0, ufl.grad(u)) * v * ufl.dx
            return -u * ufl.inner(f0, ufl.grad(v)) * ufl.dx

        terms.append(Term(problem.form(("drift", adjoint), drift), proc.drift_rate_integral))
    return terms


def mass_form(problem: Problem):
    def build():
        return ufl.TrialFunction(problem.V) * ufl.TestFunction(problem.V) * ufl.dx

    return problem.form("mass", build)


def solve_fokker_planck(
    problem: Problem,
    rho0,
    *,
    killing=None,
    progress: bool = True,
    check_mass: bool = True,
    name: str = "p",
) -> SpaceTimeField:
    """Solve the forward Fokker–Planck equation on ``problem`` from ``rho0``.

    Args:
        problem: domain, process, time grid and discretization.
        rho0: initial density: a :class:`GaussianMixture`, a callable of points
            ``(N, d) -> (N,)``, or a DOLFINx Function.
        killing: optional rate ``V`` (see :mod:`bridgesolve.pde.killing`); ``V > 0`` creates
            mass.
        progress: show a progress bar over time steps (rank 0 only).
        check_mass: estimate ``1 - ∫_Ω ρ0`` (the initial mass the domain misses) and warn
            above 1e-6; this costs a refined quadrature, comparable to a small solve.
        name: the field's name in output files.

    Returns:
        The density at every time level. ``info`` holds ``mass`` (∫p per level),
        ``mass_outside_initial`` (``1 - ∫_Ω ρ0``), ``factorizations``, ``assemblies`` and
        ``timings``.
    """
    timings = {}
    t_start = time.perf_counter()
    V = problem.V
    p_old = initial_function(problem, rho0, name)
    inside = exact_mass_in_domain(problem, rho0) if check_mass else None
    mass_outside = None if inside is None else 1.0 - inside
    if mass_outside is not None and abs(mass_outside) > MASS_OUTSIDE_WARN:
        warnings.warn(
            f"the initial density has mass {mass_outside:.3g} outside the domain "
            f"(> {MASS_OUTSIDE_WARN:g}); enlarge the domain for a faithful solution",
            RuntimeWarning,
            stacklevel=2,
        )

    terms = transport_terms(problem, adjoint=False)
    kt = killing_term(V, killing, sign=-1.0)
    killing_info = {}
    if kt is not None:
        terms.append(kt[0])
        killing_info = kt[1]
    bc = dirichlet_dofs(problem)
    stepper = ThetaStepper(mass_form(problem), terms, problem.theta,
                           dirichlet_dofs=bc, petsc_options=problem.petsc_options)
    if bc is not None:
        p_old.x.array[bc] = 0.0
        p_old.x.scatter_forward()
    timings["setup_s"] = time.perf_counter() - t_start

    t_loop = time.perf_counter()
    values = evolve(stepper, problem.grid, p_old, desc="Fokker-Planck", progress=progress)
    timings["stepping_s"] = time.perf_counter() - t_loop
    info = {
        "equation": "fokker-planck",
        "mass_outside_initial": mass_outside,
        "factorizations": stepper.factorizations,
        "assemblies": stepper.assemblies,
        **killing_info,
    }
    mass_vector = stepper.row_sums()
    stepper.destroy()
    field = SpaceTimeField(V, problem.grid, values, name=name, info=info)
    field.info["mass"] = field.integral(mass_vector)
    timings["total_s"] = time.perf_counter() - t_start
    field.info["timings"] = timings
    if not np.all(np.isfinite(values)):
        raise FloatingPointError("Fokker-Planck solution became non-finite")
    return field


__all__ = ["solve_fokker_planck"]
