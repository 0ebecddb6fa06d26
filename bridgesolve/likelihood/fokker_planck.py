"""``q_h`` for h > 0: the sampler's Fokker–Planck equation, stepped on the mesh.

Private part of :mod:`bridgesolve.likelihood` (import from there); the weak form and the
θ-scheme are described in that module's docstring.
"""

from __future__ import annotations

import time

import numpy as np

from bridgesolve._dolfinx import PETSc, fem, ufl
from bridgesolve._validate import deferred_checks
from bridgesolve.pde.fokker_planck import density_stepper, initial_function
from bridgesolve.pde.fokker_planck import transport_terms as _transport_terms
from bridgesolve.pde.stepping import Term, evolve
from bridgesolve.spacetime import SpaceTimeField


def _fokker_planck_of_sampler(problem, score, h, prior, progress, name) -> SpaceTimeField:
    proc = problem.process
    V, mesh, d = problem.V, problem.mesh, problem.domain.dim
    c = 0.5 * (1.0 + h * h)
    timings = {}
    t0 = time.perf_counter()
    q_T = initial_function(problem, prior, name)
    base = _transport_terms(problem, adjoint=False)  # [diffusion, (drift: -(u f0, ∇v))]
    terms = [Term(base[0].form, lambda a, b: h * h * proc.diffusion_integral(a, b))]
    if len(base) > 1:
        # the sampler's drift enters as +k (q f0, ∇v): the same matrix with rate -∫k
        terms.append(Term(base[1].form, lambda a, b: -proc.drift_rate_integral(a, b)))
    W = fem.functionspace(mesh, ("Lagrange", problem.degree, (d,)))
    s_fun = fem.Function(W, name="score")
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    score_form = fem.form(-u * ufl.inner(s_fun, ufl.grad(v)) * ufl.dx)

    comm = problem.comm
    s_nodes = deferred_checks(score)

    def update(t):
        if comm.size > 1:
            # The stepper drops the previous step's solver when its operator changes;
            # petsc4py defers destroying parallel objects, and each MUMPS factorization
            # holds duplicated communicators: free them now (collective, same step on
            # every rank) instead of running out of communicators after ~1000 steps.
            PETSc.garbage_cleanup(comm)
        s_fun.interpolate(lambda x: np.asarray(s_nodes(np.ascontiguousarray(x[:d].T), t),
                                               dtype=float).reshape(-1, d).T)
        if s_nodes is not score:
            s_nodes.raise_pending(comm)  # the same error on every rank (collective)

    terms.append(Term(score_form, lambda a, b: 2.0 * c * proc.diffusion_integral(a, b),
                      update=update))
    stepper = density_stepper(problem, terms, q_T)
    timings["setup_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        values = evolve(stepper, problem.grid, q_T, backward=True,
                        desc=f"generated density h={h:g}", progress=progress)
    finally:
        info = {"equation": "sampler-fokker-planck", "factorizations": stepper.factorizations,
                "assemblies": stepper.assemblies}
        mass_vector = stepper.row_sums()
        stepper.destroy()
    timings["stepping_s"] = time.perf_counter() - t1
    if not np.all(np.isfinite(values)):
        raise FloatingPointError("generated density became non-finite (score blew up?)")
    field = SpaceTimeField(V, problem.grid, values, name=name, info={**info,
                                                                    "timings": timings})
    field.integral(mass_vector)
    return field
