"""The interface solver (local SuperLU factors + dense interface Schur system) is an exact
direct solver: it agrees with PETSc's LU / MUMPS to round-off, serially and on 2 ranks, on
nonsymmetric advection-diffusion step matrices (P1, P2, Dirichlet rows), falls back to
MUMPS when told to, and is the default of a distributed :class:`bridgesolve.Problem`."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI, PETSc, dolfinx, fem, ufl
from bridgesolve.pde import interface_lu

pytestmark = pytest.mark.mpi
_KEEP: list = []


def _step_matrix(n: int, degree: int, dirichlet: bool) -> PETSc.Mat:
    """M + ½Δt (K + advection): an OU Fokker–Planck θ-step, nonsymmetric."""
    mesh = dolfinx.mesh.create_rectangle(MPI.COMM_WORLD, [[-3.0, -2.0], [3.0, 2.0]], [n, n])
    V = fem.functionspace(mesh, ("Lagrange", degree))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(mesh)
    drift = ufl.as_vector((-x[0] + 0.5 * x[1], -2.0 * x[1]))
    a = (u * v + 0.05 * (ufl.inner(ufl.grad(u), ufl.grad(v))
                         - u * ufl.inner(drift, ufl.grad(v)))) * ufl.dx
    A = fem.petsc.assemble_matrix(fem.form(a))
    A.assemble()
    if dirichlet:
        facets = dolfinx.mesh.locate_entities_boundary(
            mesh, 1, lambda y: np.isclose(y[0], -3.0) | np.isclose(y[1], 2.0))
        dofs = fem.locate_dofs_topological(V, 1, facets)
        owned = dofs[dofs < V.dofmap.index_map.size_local]
        A.zeroRowsColumnsLocal(owned.astype(np.int32), diag=1.0)
    _KEEP.append(mesh)  # the matrix lives on the mesh's communicator
    return A


def _solve(A: PETSc.Mat, options: dict, b: PETSc.Vec) -> tuple[PETSc.Vec, PETSc.KSP]:
    ksp = PETSc.KSP().create(A.getComm())
    ksp.setOperators(A)
    prefix = f"t_ilu_{id(ksp)}_"
    ksp.setOptionsPrefix(prefix)
    db = PETSc.Options()
    for key, val in options.items():
        db[prefix + key] = val
    ksp.setFromOptions()
    for key in options:
        del db[prefix + key]
    x = b.duplicate()
    ksp.solve(b, x)
    return x, ksp


def _reference(A: PETSc.Mat, b: PETSc.Vec) -> PETSc.Vec:
    package = "petsc" if A.getComm().getSize() == 1 else "mumps"
    x, ksp = _solve(A, {"ksp_type": "preonly", "pc_type": "lu",
                        "pc_factor_mat_solver_type": package}, b)
    ksp.destroy()
    return x


def _rhs(A: PETSc.Mat) -> PETSc.Vec:
    b = A.createVecLeft()
    start, end = A.getOwnershipRange()
    b.array[:] = np.sin(0.37 * np.arange(start, end)) + 1.5  # rank-independent
    return b


@pytest.mark.parametrize(("degree", "dirichlet"), [(1, False), (2, False), (1, True)])
def test_agrees_with_lu_to_round_off(degree, dirichlet):
    A = _step_matrix(24, degree, dirichlet)
    b = _rhs(A)
    x, ksp = _solve(A, interface_lu.OPTIONS, b)
    ref = _reference(A, b)
    ctx = ksp.getPC().getPythonContext()
    assert ctx.fallback is None
    if A.getComm().getSize() > 1:
        assert 0 < ctx.interface_size < A.getSize()[0] // 4
    else:
        assert ctx.interface_size == 0
    r = b.duplicate()
    A.mult(x, r)
    r.axpy(-1.0, b)
    assert r.norm() <= 1e-12 * b.norm()
    x.axpy(-1.0, ref)
    assert x.norm() <= 1e-12 * ref.norm()
    # A second solve with the same factors (the time-stepping case) and a new right side.
    b.scale(-2.0)
    y = b.duplicate()
    ksp.solve(b, y)
    ref.scale(-2.0)
    y.axpy(-1.0, _reference(A, b))
    assert y.norm() <= 1e-12 * ref.norm()
    ksp.destroy()


def test_refactorizes_when_the_operator_changes():
    A = _step_matrix(16, 1, False)
    b = _rhs(A)
    x, ksp = _solve(A, interface_lu.OPTIONS, b)
    A.shift(3.0)  # a new operator (a Newton Jacobian, a new step size)
    ksp.setOperators(A)
    ksp.solve(b, x)
    x.axpy(-1.0, _reference(A, b))
    assert x.norm() <= 1e-12 * b.norm()
    ksp.destroy()


def test_falls_back_to_mumps_when_the_interface_is_too_large(monkeypatch):
    monkeypatch.setattr(interface_lu, "MAX_INTERFACE", -1)
    A = _step_matrix(16, 1, True)
    b = _rhs(A)
    x, ksp = _solve(A, interface_lu.OPTIONS, b)
    ctx = ksp.getPC().getPythonContext()
    assert ctx.fallback is not None and "interface" in ctx.fallback
    x.axpy(-1.0, _reference(A, b))
    assert x.norm() <= 1e-12 * b.norm()
    ksp.destroy()


def test_problem_defaults(comm):
    dom = bs.Domain.box([-2.0, -2.0], [2.0, 2.0], (8, 8), comm=comm)
    grid = bs.TimeGrid.uniform(1.0, 4)
    prob = bs.Problem(dom, bs.OU(), grid)
    if comm.size == 1:
        assert prob.petsc_options["pc_type"] == "lu"
        assert prob.petsc_options["pc_factor_mat_solver_type"] == "petsc"
    else:
        assert prob.petsc_options == interface_lu.OPTIONS
    # Naming a factorization package (or a preconditioner) starts from LU.
    mumps = bs.Problem(dom, bs.OU(), grid, petsc_options={"pc_factor_mat_solver_type": "mumps"})
    assert mumps.petsc_options["pc_type"] == "lu"
    gamg = bs.Problem(dom, bs.OU(), grid, petsc_options={"ksp_type": "gmres", "pc_type": "gamg"})
    assert gamg.petsc_options["pc_type"] == "gamg"
    assert "pc_python_type" not in gamg.petsc_options


def test_bridge_is_the_same_with_mumps(comm):
    """A Schrödinger bridge (linear mode) with the interface solver and with MUMPS."""
    dom = bs.Domain.box([-4.0, -4.0], [4.0, 4.0], (20, 20), comm=comm)
    grid = bs.TimeGrid.uniform(1.0, 8)
    rho0 = bs.GaussianMixture([1.0], [[-1.0, 0.0]], [0.4])
    rho1 = bs.GaussianMixture([1.0], [[1.0, 0.5]], [0.3])
    runs = []
    for options in (interface_lu.OPTIONS, {"pc_factor_mat_solver_type": "mumps"}):
        prob = bs.Problem(dom, bs.Brownian(1.0), grid, scheme="backward-euler",
                          petsc_options=options)
        runs.append(bs.solve_bridge(prob, rho0, rho1, mode="linear", tol=1e-10,
                                    progress=False))
    a, b = runs
    assert a.converged and b.converged
    assert a.iterations == b.iterations
    diff = a.rho.values - b.rho.values
    size = comm.allreduce(np.abs(diff).max(), op=MPI.MAX)
    scale = comm.allreduce(np.abs(b.rho.values).max(), op=MPI.MAX)
    assert size <= 1e-9 * scale
    assert a.cost()["kinetic"] == pytest.approx(b.cost()["kinetic"], rel=1e-9)


def test_tiny_partitions_fall_back_together(comm):
    """A mesh so small that a rank has no interior dofs: every rank falls back to MUMPS
    (a collective decision), and the answer is still exact."""
    A = _step_matrix(1, 1, False)  # 4 vertices
    b = _rhs(A)
    x, ksp = _solve(A, interface_lu.OPTIONS, b)
    ctx = ksp.getPC().getPythonContext()
    if comm.size > 1:
        assert ctx.fallback is not None
    x.axpy(-1.0, _reference(A, b))
    assert x.norm() <= 1e-12 * b.norm()
    ksp.destroy()
