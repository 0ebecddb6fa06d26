r"""L2 projection of data onto the finite-element space, for discontinuous data.

Interpolating a discontinuous density (the checkerboard, an image at ``t = 0``) takes its
value at the nodes: the interpolant's mass depends on where the nodes fall. The L2
projection ``u_h ∈ V_h``, ``(u_h, v) = (ρ, v)`` for all ``v``, conserves mass (``v = 1`` is in
``V_h``) up to the quadrature of ``(ρ, v)``, a degree-:data:`DEGREE` rule on the solver's
mesh (exact where cells do not cut a jump; where they do, good to the rule's resolution of
the jump). :func:`initial_error` reports ``∫|u_h - ρ|`` by the same quadrature.
"""

from __future__ import annotations

import numpy as np

from bridgesolve._dolfinx import MPI, basix, dolfinx, fem, ufl
from bridgesolve.solvers import options_prefix

#: Quadrature degree of the right-hand side ``(ρ, v)``.
DEGREE = 8


def _quadrature_function(mesh, fn, degree: int) -> fem.Function:
    """``fn`` (NumPy callable of points ``(N, d)``) at the quadrature points of ``degree``."""
    qe = basix.ufl.quadrature_element(mesh.basix_cell(), value_shape=(), degree=degree)
    Q = fem.functionspace(mesh, qe)
    g = fem.Function(Q)
    d = mesh.geometry.dim
    g.interpolate(lambda x: np.asarray(fn(np.ascontiguousarray(x[:d].T)), dtype=float))
    return g


def l2_project(problem, fn, name: str, *, degree: int = DEGREE) -> fem.Function:
    """The L2 projection of ``fn`` (NumPy callable of points) onto ``problem.V``
    (collective; a conjugate-gradient solve of the mass matrix to round-off)."""
    V = problem.V
    g = _quadrature_function(problem.mesh, fn, degree)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.dx(metadata={"quadrature_degree": degree})
    out = fem.Function(V, name=name)
    solver = dolfinx.fem.petsc.LinearProblem(u * v * ufl.dx, g * v * dx, u=out,
                           petsc_options_prefix=options_prefix("project"),
                           petsc_options={"ksp_type": "cg", "pc_type": "jacobi",
                                          "ksp_rtol": 1e-14, "ksp_atol": 1e-300,
                                          "ksp_max_it": 2000})
    solver.solve()
    out.x.scatter_forward()
    solver.solver.destroy()
    return out


def initial_error(problem, u: fem.Function, fn, *, degree: int = DEGREE) -> dict:
    """``{"l1": ∫|u - ρ|, "mass_fe": ∫u, "mass_data": ∫_Ω ρ, "min": min u}`` by
    degree-``degree`` quadrature on the mesh (rank-independent; ``min`` over the nodes shows
    the projection's undershoot at jumps)."""
    g = _quadrature_function(problem.mesh, fn, degree)
    dx = ufl.dx(metadata={"quadrature_degree": degree})
    comm = problem.comm

    def total(form) -> float:
        return comm.allreduce(fem.assemble_scalar(fem.form(form)), MPI.SUM)

    # |u - g| in UFL takes abs of a quadrature-space difference: exact at the points
    n = problem.V.dofmap.index_map.size_local
    low = comm.allreduce(float(u.x.array[:n].min()) if n else np.inf, MPI.MIN)
    return {"l1": float(total(abs(u - g) * dx)), "mass_fe": float(total(u * dx)),
            "mass_data": float(total(g * dx)), "min": low}


__all__ = ["initial_error", "l2_project"]
