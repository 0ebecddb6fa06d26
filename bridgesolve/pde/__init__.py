"""PDE solvers on assembled PETSc operators: the stepping engine and one equation per file."""

from bridgesolve.pde.fokker_planck import solve_fokker_planck
from bridgesolve.pde.hjb import solve_hjb, solve_hjb_forward
from bridgesolve.pde.kolmogorov import solve_kolmogorov
from bridgesolve.pde.richardson import extrapolated

__all__ = ["extrapolated", "solve_fokker_planck", "solve_hjb", "solve_hjb_forward",
           "solve_kolmogorov"]
