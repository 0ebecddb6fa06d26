"""Linear-solver choice: the PETSc option sets of the solvers the package uses, and the
default for a problem's size and number of ranks. DOLFINx-free (option dicts only), so
``problem``, ``config`` and ``pde`` all read it.

Two families:

* **direct** (today's default in range): PETSc's own LU serially, the interface solver
  (:mod:`bridgesolve.pde.interface_lu`) on a few ranks;
* **iterative**: Krylov (CG where the step matrix is symmetric, GMRES where a drift makes it
  non-symmetric) preconditioned by algebraic multigrid (PETSc's GAMG; hypre's BoomerAMG
  where the PETSc build has it) or by Jacobi where the step is mass-dominated. The choice
  of Krylov method and preconditioner is made per step matrix by
  :mod:`bridgesolve.pde.krylov`, which reads the private ``bs_*`` keys of these dicts (PETSc
  never sees them); options the user names win over the engine's choice.
"""

from __future__ import annotations

import itertools

#: The values of ``Problem(solver=...)`` and ``[discretization] solver``.
SOLVERS = ("auto", "direct", "iterative")

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
#: ``solver="auto"``: beyond this many ranks the dense interface system of the direct
#: solver grows with every rank (MUMPS takes over at 6000 interface dofs), so the iterative
#: path is the default there.
DIRECT_MAX_RANKS = 6
#: ``solver="auto"``: from this many dofs on the iterative path is the default on any rank
#: count. Not measured at 1e6 yet (benchmarks/README.md, "Iterative solvers"): PETSc's LU
#: took 51 s to factorize there; at 2e5 (2D P1, VP) the direct path stays the default: one
#: bridge iteration 1.42 s with LU against 33-36 s with GMRES + GAMG.
ITERATIVE_MIN_DOFS = 1_000_000

#: Relative residual of the iterative path outside a bridge (a bridge ties it to its
#: ``tol``: :func:`tied_to`), its absolute floor and its iteration limit.
ITERATIVE_RTOL = 1e-10
ITERATIVE_ATOL = 1e-50
ITERATIVE_MAX_IT = 2000
#: A bridge of marginal tolerance ``tol`` solves its linear systems to ``TOL_FACTOR · tol``
#: (relative), never looser than the problem's own ``ksp_rtol``.
TOL_FACTOR = 1e-3

#: Keys the engine may choose per matrix (``bs_auto``) unless the user named them.
_CHOSEN = ("ksp_type", "pc_type")


def iterative_options(user: dict | None = None) -> dict:
    """The iterative path's options: GMRES + AMG to :data:`ITERATIVE_RTOL`, with the
    Krylov method and preconditioner left to the engine (``bs_auto``) unless ``user`` names
    them; ``user`` entries win."""
    user = dict(user or {})
    base = {"ksp_type": "gmres", "pc_type": "gamg", "ksp_rtol": ITERATIVE_RTOL,
            "ksp_atol": ITERATIVE_ATOL, "ksp_max_it": ITERATIVE_MAX_IT,
            "ksp_gmres_restart": 100, "ksp_initial_guess_nonzero": True,
            "bs_solver": "iterative",
            "bs_auto": ",".join(k for k in _CHOSEN if k not in user)}
    return {**base, **user}


def is_iterative(options: dict) -> bool:
    """Whether ``options`` select the iterative path (a Krylov method, not ``preonly``)."""
    return options.get("bs_solver") == "iterative" or options.get(
        "ksp_type", "preonly") != "preonly"


def tied_to(options: dict, tol: float) -> dict:
    """``options`` with the relative tolerance of an iterative path tied to a bridge's
    marginal ``tol`` (:data:`TOL_FACTOR`), so the Sinkhorn fixed point does not move;
    direct options are returned unchanged."""
    if not is_iterative(options):
        return dict(options)
    rtol = min(float(options.get("ksp_rtol", ITERATIVE_RTOL)), TOL_FACTOR * float(tol))
    return {**options, "ksp_rtol": rtol}


def direct_options(serial: bool, ndofs: int) -> dict:
    """LU: PETSc's own serially below :data:`SERIAL_LU_MAX_DOFS`, else the interface solver."""
    if serial and ndofs < SERIAL_LU_MAX_DOFS:
        return {**DEFAULT_PETSC_OPTIONS, "pc_factor_mat_solver_type": SERIAL_LU}
    return dict(INTERFACE_LU_OPTIONS)


def default_solver(serial: bool, ndofs: int, ranks: int = 1) -> dict:
    """The ``solver="auto"`` options for ``ndofs`` dofs on ``ranks`` ranks: iterative beyond
    :data:`DIRECT_MAX_RANKS` ranks or from :data:`ITERATIVE_MIN_DOFS` dofs, else direct."""
    if ranks > DIRECT_MAX_RANKS or ndofs >= ITERATIVE_MIN_DOFS:
        return iterative_options()
    return direct_options(serial, ndofs)


def solver_options(solver: str, user: dict | None, *, ranks: int, ndofs: int) -> dict:
    """The PETSc options of ``Problem(solver=..., petsc_options=user)``.

    ``direct``: :func:`direct_options`; ``iterative``: :func:`iterative_options`; ``auto``:
    :func:`default_solver`. ``user`` options with a Krylov ``ksp_type`` (not ``preonly``)
    start from the iterative set; naming ``pc_type`` or ``pc_factor_mat_solver_type``
    otherwise starts from LU (MUMPS on several ranks), as before. ``user`` entries win.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver = {solver!r}: expected one of {SOLVERS}")
    user = dict(user or {})
    serial = ranks == 1
    if solver == "iterative" or user.get("ksp_type", "preonly") != "preonly":
        return iterative_options(user)
    if "pc_type" in user or "pc_factor_mat_solver_type" in user:
        base = {**DEFAULT_PETSC_OPTIONS,
                "pc_factor_mat_solver_type": SERIAL_LU if serial else PARALLEL_LU}
    elif solver == "direct":
        base = direct_options(serial, ndofs)
    else:
        base = default_solver(serial, ndofs, ranks)
    return {**base, **user}


_PREFIXES = itertools.count()


def options_prefix(kind: str) -> str:
    """A PETSc options prefix used once per process: DOLFINx's ``NonlinearProblem`` and
    ``LinearProblem`` leave their options in the global database, so a prefix built from
    ``id()`` (reused after garbage collection) let a later solver inherit an earlier one's
    options (a direct Newton solve ran GMRES + block Jacobi at rtol 1e-6)."""
    return f"bs_{kind}_{next(_PREFIXES)}_"
