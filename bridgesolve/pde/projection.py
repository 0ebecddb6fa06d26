r"""L2 projection of data onto the finite-element space, for discontinuous data.

Interpolating a discontinuous density (the checkerboard, an image at ``t = 0``) takes its
value at the nodes: the interpolant's mass depends on where the nodes fall. The L2
projection ``u_h ∈ V_h``, ``(u_h, v) = (ρ, v)`` for all ``v``, conserves mass (``v = 1`` is in
``V_h``): ``∫u_h = ∫_Ω ρ`` as accurately as the right-hand side ``(ρ, v)`` is integrated.

Data constant on the boxes of a tensor grid (``edges``: box mixtures and images,
:func:`~bridgesolve.densities.box_mass.jump_grid`) are integrated exactly on affine meshes:
cells cut by the jumps are split into pieces inside single boxes
(:mod:`~bridgesolve.pde.cut_cells`), so ``∫u_h`` is the exact mass in Ω to round-off on
any mesh, aligned with the jumps or not. Other data take a degree-:data:`DEGREE` rule on
the solver's mesh (exact where cells do not cut a jump; where they do, good to the rule's
resolution of the jump: on a 32² mesh of [-5, 5]² the checkerboard's mass came out
0.99965). Rescaling that projection to the exact mass instead was not done: it would hide
the same local error on the cut cells. :func:`initial_error` reports ``∫|u_h - ρ|`` by the
same quadrature (on the pieces where there are any).
"""

from __future__ import annotations

import numpy as np

from bridgesolve._dolfinx import MPI, PETSc, basix, dolfinx, fem, ufl

#: Quadrature degree of the right-hand side ``(ρ, v)`` and of the L1 error.
DEGREE = 8


def _quadrature_function(mesh, fn, degree: int) -> fem.Function:
    """``fn`` (NumPy callable of points ``(N, d)``) at the quadrature points of ``degree``."""
    qe = basix.ufl.quadrature_element(mesh.basix_cell(), value_shape=(), degree=degree)
    Q = fem.functionspace(mesh, qe)
    g = fem.Function(Q)
    d = mesh.geometry.dim
    g.interpolate(lambda x: np.asarray(fn(np.ascontiguousarray(x[:d].T)), dtype=float))
    return g


def exact_pieces(problem, edges) -> bool:
    """Whether the cut-cell quadrature applies: grid ``edges`` given, an affine simplex
    mesh of the domain's dimension, and Lagrange basis functions without dof
    transformations."""
    mesh = problem.mesh
    return (edges is not None and len(edges) == mesh.topology.dim == mesh.geometry.dim
            and mesh.geometry.cmaps[0].degree == 1
            and not problem.V.element.needs_dof_transformations
            and problem.V.dofmap.index_map_bs == 1)


def _pieces_rhs(problem, fn, edges, degree: int) -> tuple[fem.Function, float]:
    """``(ρ, φ_i)`` from the cut-cell pieces (ghost contributions summed to their owners),
    and ``∫_Ω ρ`` from the same pieces (rank-independent)."""
    from bridgesolve.pde.cut_cells import cut_quadrature

    V = problem.V
    b = fem.Function(V)
    dofs = V.dofmap.list
    element = V.element.basix_element
    mass = 0.0
    for cells, X, w, values in cut_quadrature(problem.mesh, edges, fn, degree):
        phi = element.tabulate(0, X)[0, :, :, 0]  # (points, dofs of a cell)
        np.add.at(b.x.array, dofs[cells], (w * values)[:, None] * phi)
        mass += float(w @ values)
    b.x.scatter_reverse(dolfinx.la.InsertMode.add)
    b.x.scatter_forward()
    return b, problem.comm.allreduce(mass, MPI.SUM)


def _solve_mass(problem, rhs, out: fem.Function) -> None:
    """``M out = rhs`` by conjugate gradients to round-off (``rhs`` a PETSc vector)."""
    V = problem.V
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    A = dolfinx.fem.petsc.assemble_matrix(problem.form("projection_mass",
                                                       lambda: u * v * ufl.dx))
    A.assemble()
    ksp = PETSc.KSP().create(problem.comm)
    ksp.setOperators(A)
    ksp.setType("cg")
    ksp.getPC().setType("jacobi")
    ksp.setTolerances(rtol=1e-14, atol=1e-300, max_it=2000)
    ksp.solve(rhs, out.x.petsc_vec)
    out.x.scatter_forward()
    ksp.destroy()
    A.destroy()


def l2_project(problem, fn, name: str, *, degree: int = DEGREE,
               edges=None) -> fem.Function:
    """The L2 projection of ``fn`` (NumPy callable of points) onto ``problem.V``
    (collective; a conjugate-gradient solve of the mass matrix to round-off). With
    ``edges`` (the per-axis jumps of data constant on the boxes of that grid) the
    right-hand side is exact on cut cells (module doc)."""
    out = fem.Function(problem.V, name=name)
    if exact_pieces(problem, edges):
        b = _pieces_rhs(problem, fn, edges, degree)[0]
        _solve_mass(problem, b.x.petsc_vec, out)
        return out
    g = _quadrature_function(problem.mesh, fn, degree)
    v = ufl.TestFunction(problem.V)
    vec = dolfinx.fem.petsc.assemble_vector(fem.form(
        g * v * ufl.dx(metadata={"quadrature_degree": degree})))
    vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    _solve_mass(problem, vec, out)
    vec.destroy()
    return out


def initial_error(problem, u: fem.Function, fn, *, degree: int = DEGREE,
                  edges=None) -> dict:
    """``{"l1": ∫|u - ρ|, "mass_fe": ∫u, "mass_data": ∫_Ω ρ, "min": min u, "rhs": how the
    data were integrated}`` by degree-``degree`` quadrature, on the cut-cell pieces where
    ``edges`` apply (``mass_data`` then exact), else on the mesh (rank-independent; ``min``
    over the nodes shows the projection's undershoot at jumps)."""
    comm = problem.comm

    def total(form) -> float:
        return comm.allreduce(fem.assemble_scalar(fem.form(form)), MPI.SUM)

    n = problem.V.dofmap.index_map.size_local
    low = comm.allreduce(float(u.x.array[:n].min()) if n else np.inf, MPI.MIN)
    mass_fe = float(total(u * ufl.dx))
    if exact_pieces(problem, edges):
        from bridgesolve.pde.cut_cells import cut_quadrature

        dofs, element = problem.V.dofmap.list, problem.V.element.basix_element
        l1 = mass = 0.0
        for cells, X, w, values in cut_quadrature(problem.mesh, edges, fn, degree):
            phi = element.tabulate(0, X)[0, :, :, 0]
            uq = np.einsum("qi,qi->q", phi, u.x.array[dofs[cells]])
            l1 += float(w @ np.abs(uq - values))
            mass += float(w @ values)
        return {"l1": comm.allreduce(l1, MPI.SUM), "mass_fe": mass_fe,
                "mass_data": comm.allreduce(mass, MPI.SUM), "min": low,
                "rhs": "exact on cut cells"}
    g = _quadrature_function(problem.mesh, fn, degree)
    dx = ufl.dx(metadata={"quadrature_degree": degree})
    # |u - g| in UFL takes abs of a quadrature-space difference: exact at the points
    return {"l1": float(total(abs(u - g) * dx)), "mass_fe": mass_fe,
            "mass_data": float(total(g * dx)), "min": low,
            "rhs": f"degree-{degree} quadrature"}


__all__ = ["exact_pieces", "initial_error", "l2_project"]
