"""PDE solvers on assembled PETSc operators: the stepping engine and one equation per file."""

from bridgesolve.pde.fokker_planck import solve_fokker_planck

__all__ = ["solve_fokker_planck"]
