"""Linear-solver choice: the PETSc option sets of the solvers the package uses, and the
default for a problem's size and number of ranks. DOLFINx-free (option dicts only), so
``problem`` and ``pde`` both read it."""

from __future__ import annotations

#: Options selecting :class:`bridgesolve.pde.interface_lu.InterfaceLU` (a PETSc Python PC).
INTERFACE_LU_OPTIONS = {"ksp_type": "preonly", "pc_type": "python",
                        "pc_python_type": "bridgesolve.pde.interface_lu.InterfaceLU"}

DEFAULT_PETSC_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu"}
# PETSc's own sparse LU is sequential. Measured serially on 2D problems of 1e3-7e4 dofs,
# it steps 1.5-2x faster than MUMPS, and on 2e5 dofs it solves in 16-20 ms where MUMPS
# takes 60 ms (45-50 ms on 2 ranks).
SERIAL_LU, PARALLEL_LU = "petsc", "mumps"
# ... but at 1e6 dofs PETSc's LU took 51 s to factorize where MUMPS took 7.5 s
# (benchmarks/scaling.py): from this size on, and on several ranks, the interface solver
# (local SuperLU factors, PETSc's triangular solves, a dense interface Schur system;
# MUMPS when the interface is too large) is the default.
SERIAL_LU_MAX_DOFS = 200_000


def default_solver(serial: bool, ndofs: int) -> dict:
    """The default linear-solver options for a problem of ``ndofs`` dofs."""
    if serial and ndofs < SERIAL_LU_MAX_DOFS:
        return {**DEFAULT_PETSC_OPTIONS, "pc_factor_mat_solver_type": SERIAL_LU}
    return dict(INTERFACE_LU_OPTIONS)
