r"""The θ-scheme engine shared by every linear evolution equation.

A linear equation ``M \dot u = -\sum_k c_k(t) A_k u`` with constant matrices ``A_k`` and
scalar rates ``c_k`` is advanced over ``[t_n, t_{n+1}]`` by

.. math::
    (M + θ \sum_k R_k A_k)\, u^{n+1} = (M - (1-θ) \sum_k R_k A_k)\, u^n,
    \qquad R_k = \int_{t_n}^{t_{n+1}} c_k(t)\,dt,

i.e. the θ-scheme applied to the step-averaged operator (the first Magnus term, so
Crank–Nicolson stays second order for time-dependent rates). The ``A_k`` are assembled once;
a step only combines them, and the factorization of the left-hand side is cached by the
``R_k``: grids uniform in the process clock factorize once for the whole run. Terms whose
matrix itself depends on time (a killing rate ``V(x, t)``) are re-assembled at the step
midpoint into their existing matrix; only they are.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._dolfinx import PETSc, fem
from bridgesolve.pde.krylov import (
    JACOBI_MAX_STIFFNESS,
    KrylovCounter,
    make_ksp,
    stiffness_ratio,
)
from bridgesolve.solvers import is_iterative

_SAME = PETSc.Mat.Structure.SAME_NONZERO_PATTERN

#: Wall time (s) this process spent inside PETSc in every :class:`ThetaStepper`: matrix
#: assembly, building and factorizing step operators (``setup_s``), and per step the
#: right-hand-side product (``mult_s``) and the linear solve (``solve_s``). Two
#: ``perf_counter`` calls per PETSc call; benchmarks read it (``benchmarks/scaling.py``).
PETSC_TIME = {"assemble_s": 0.0, "setup_s": 0.0, "mult_s": 0.0, "solve_s": 0.0}


def reset_petsc_time() -> None:
    """Zero :data:`PETSC_TIME`."""
    for key in PETSC_TIME:
        PETSC_TIME[key] = 0.0


@dataclass
class Term:
    """One ``c(t) A`` of the operator.

    Attributes:
        form: the compiled bilinear form of ``A``.
        rate_integral: ``(t0, t1) -> ∫ c``.
        update: for a time-dependent matrix, ``t -> None`` refreshing the form's
            coefficients before re-assembly; ``None`` for a constant matrix.
    """

    form: fem.Form
    rate_integral: Callable[[float, float], float]
    update: Callable[[float], None] | None = None
    lump: bool = False  # lump this matrix too when the stepper lumps its mass (a ∫V u v term)
    matrix: PETSc.Mat | None = field(default=None, repr=False)


#: Step solvers kept per stepper: LU factorizations (memory-heavy) and preconditioners.
DIRECT_CACHE, ITERATIVE_CACHE = 4, 16


class ThetaStepper:
    """Advances ``u`` with the θ-scheme; assembles once and reuses factorizations.

    Args:
        mass_form: the compiled mass form ``∫ u v``.
        terms: the operator terms.
        theta: 1/2 (Crank–Nicolson) ... 1 (backward Euler).
        dirichlet_dofs: local indices of owned dofs held at zero (absorbing boundary).
        petsc_options: KSP/PC options, set under a private prefix (direct or iterative:
            :mod:`bridgesolve.pde.krylov` chooses CG/GMRES and Jacobi/AMG per step matrix
            where the options leave it open; the preconditioner is cached like a
            factorization, and each solve starts from the level before).
        cache_size: how many distinct factorizations to keep (default: 4 direct ones, 16
            preconditioners, so that a graded time grid's steps, mirrored or not, each
            keep theirs: with 4, a 30-step grid graded at both ends rebuilt GAMG for 184
            of its 240 solves).
        lumped: replace the mass matrix by its diagonal lumping (row sums for P1; the
            diagonal scaled to the total mass, "HRZ", for higher degrees, whose row sums
            can vanish). With a lumped mass, nodal products are exact pairings
            (``Σ_i m_i u_i w_i``), and for P1 with backward Euler the step matrix is an
            M-matrix on non-obtuse meshes when diffusion dominates, so positivity is kept.
    """

    _count = 0

    def __init__(self, mass_form, terms: list[Term], theta: float, *,
                 dirichlet_dofs: np.ndarray | None = None, petsc_options: dict,
                 cache_size: int | None = None, lumped: bool = False):
        self.theta = float(theta)
        self.terms = terms
        tic = time.perf_counter()
        self.M = fem.petsc.assemble_matrix(mass_form)
        self.M.assemble()
        self.lumped = lumped
        if lumped:
            _lump(self.M)
        for term in terms:
            term.matrix = fem.petsc.assemble_matrix(term.form)
            term.matrix.assemble()
            if lumped and term.lump:
                _lump(term.matrix)
        PETSC_TIME["assemble_s"] += time.perf_counter() - tic
        self.comm = self.M.getComm()
        self.bc_rows = (np.asarray(dirichlet_dofs, dtype=np.int32)
                        if dirichlet_dofs is not None else np.zeros(0, dtype=np.int32))
        self.petsc_options = dict(petsc_options)
        self.iterative = is_iterative(self.petsc_options)
        self.krylov = KrylovCounter()
        self._cache: OrderedDict[tuple, tuple[PETSc.KSP, PETSc.Mat]] = OrderedDict()
        self.cache_size = cache_size or (ITERATIVE_CACHE if self.iterative else DIRECT_CACHE)
        self.factorizations = 0
        self.assemblies = 1 + len(terms)
        self._b = self.M.createVecLeft()
        # A lumped mass keeps its sparsity pattern (for cheap axpy); its product is the
        # pointwise one with the diagonal (2e5 dofs: 0.2 ms against 1.5 ms).
        self._diagonal = self.M.getDiagonal() if lumped else None
        self._last: tuple = (None, None)
        ThetaStepper._count += 1
        self._prefix = f"bs_theta{ThetaStepper._count}_"

    @property
    def dynamic(self) -> bool:
        return any(t.update is not None for t in self.terms)

    def _operators(self, rates: tuple[float, ...], theta: float) -> tuple[PETSc.KSP, PETSc.Mat]:
        key = (theta, *rates)
        if not self.dynamic and key == self._last[0]:
            return self._last[1]  # the common case: the same step as before
        ops = self._lookup(key)
        self._last = (key, ops)
        return ops

    def _lookup(self, rates: tuple[float, ...]) -> tuple[PETSc.KSP, PETSc.Mat]:
        """The step solver of ``rates = (θ, rate_1, ...)``, from the cache or factorized."""
        # Steps equal up to round-off (linspace) share one factorization.
        if not self.dynamic:
            for key, ops in self._cache.items():
                if all(abs(r - k) <= 1e-11 * max(abs(r), abs(k)) for r, k in
                       zip(rates, key, strict=True)):
                    self._cache.move_to_end(key)
                    return ops
        key = rates
        theta, rates = rates[0], rates[1:]
        tic = time.perf_counter()
        lhs = self.M.copy()
        rhs = self.M.copy() if theta < 1.0 else None
        for term, r in zip(self.terms, rates, strict=True):
            if r == 0.0:
                continue
            lhs.axpy(theta * r, term.matrix, _SAME)
            if rhs is not None:
                rhs.axpy(-(1.0 - theta) * r, term.matrix, _SAME)
        if self.bc_rows.size:
            lhs.zeroRowsColumnsLocal(self.bc_rows, diag=1.0)
        mass = (stiffness_ratio(lhs, self.M, self.bc_rows) <= JACOBI_MAX_STIFFNESS
                if self.iterative else None)
        ksp = make_ksp(lhs, self.petsc_options, self._prefix, mass_dominated=mass)
        self.krylov.built(ksp)
        PETSC_TIME["setup_s"] += time.perf_counter() - tic
        self.factorizations += 1
        if self.dynamic:
            # The operator changes every step: free the previous factorization now (MUMPS
            # holds an MPI communicator per solver; leaking them exhausts MPI's supply).
            self._clear_cache()
        self._cache[key] = (ksp, rhs)
        while len(self._cache) > self.cache_size:
            self._last = (None, None)
            _free(*self._cache.popitem(last=False)[1])
        return ksp, rhs

    def step(self, u_old: fem.Function, u_new: fem.Function, t0: float, t1: float, *,
             theta: float | None = None) -> None:
        """``u_new`` ← one θ-step of ``u_old`` from ``t0`` to ``t1`` (``theta`` overrides
        the stepper's, e.g. backward-Euler start-up steps)."""
        theta = self.theta if theta is None else float(theta)
        for term in self.terms:
            if term.update is not None:
                term.update(0.5 * (t0 + t1))
                tic = time.perf_counter()
                term.matrix.zeroEntries()
                fem.petsc.assemble_matrix(term.matrix, term.form)
                term.matrix.assemble()
                if self.lumped and term.lump:
                    _lump(term.matrix)
                PETSC_TIME["assemble_s"] += time.perf_counter() - tic
                self.assemblies += 1
        rates = tuple(term.rate_integral(t0, t1) for term in self.terms)
        ksp, rhs = self._operators(rates, theta)
        tic = time.perf_counter()
        if rhs is None and self._diagonal is not None:
            self._b.pointwiseMult(self._diagonal, u_old.x.petsc_vec)
        else:
            (rhs or self.M).mult(u_old.x.petsc_vec, self._b)
        toc = time.perf_counter()
        PETSC_TIME["mult_s"] += toc - tic
        if self.bc_rows.size:
            self._b.array[self.bc_rows] = 0.0
        if self.iterative:  # the level before is the initial guess
            u_old.x.petsc_vec.copy(u_new.x.petsc_vec)
        ksp.solve(self._b, u_new.x.petsc_vec)
        PETSC_TIME["solve_s"] += time.perf_counter() - toc
        self.krylov.add(ksp, f"step to t = {t1:.6g}")
        u_new.x.scatter_forward()

    def solver_info(self) -> dict:
        """The ``linear_solver`` record: path, methods built, Krylov iterations per step."""
        return self.krylov.info(self.petsc_options)

    def row_sums(self) -> np.ndarray:
        """``M · 1`` on this rank's rows: the weights of ``∫ u dx = Σ_i (M·1)_i u_i``."""
        ones, out = self.M.createVecs()
        ones.set(1.0)
        self.M.mult(ones, out)
        return out.array.copy()

    def _clear_cache(self) -> None:
        self._last = (None, None)
        for ksp, rhs in self._cache.values():
            _free(ksp, rhs)
        self._cache.clear()

    def destroy(self) -> None:
        self._clear_cache()
        for mat in [self.M, *(t.matrix for t in self.terms)]:
            if mat is not None:
                mat.destroy()
        self._b.destroy()
        if self._diagonal is not None:
            self._diagonal.destroy()


def _free(ksp: PETSc.KSP, rhs: PETSc.Mat | None) -> None:
    """Destroy a cached step solver: its operator, the solver and the right-hand matrix."""
    ksp.getOperators()[0].destroy()
    ksp.destroy()
    if rhs is not None:
        rhs.destroy()


def _lump(M: PETSc.Mat) -> None:
    """Replace ``M`` in place by its HRZ lumping: the diagonal scaled so that the total mass
    is kept (equal to row-sum lumping for P1 simplices). The sparsity pattern is kept so
    that later ``axpy`` calls with other operators stay cheap."""
    ones, rows = M.createVecs()
    ones.set(1.0)
    M.mult(ones, rows)
    diag = M.getDiagonal()
    scale = rows.sum() / diag.sum()
    diag.scale(scale)
    M.zeroEntries()
    M.setDiagonal(diag)
    M.assemble()
    for vec in (ones, rows, diag):
        vec.destroy()


def evolve(stepper: ThetaStepper, grid, u_init: fem.Function, *, backward: bool = False,
           desc: str = "", progress: bool = True, startup: int = 0,
           out: np.ndarray | None = None) -> np.ndarray:
    """Run ``stepper`` over every step of ``grid`` and return the ``(nt + 1, n_local)`` values.

    Forward runs start from ``u_init`` at ``t_0``; backward runs (``backward=True``) start
    from ``u_init`` at ``t_N`` and fill the levels downwards. A progress bar shows on rank 0.
    ``startup``: the first that many steps are each taken as two backward-Euler half steps
    (Rannacher's start-up: Crank–Nicolson does not damp the high frequencies of rough data,
    the implicit half steps do, and the scheme stays second order).
    ``out``: the array to fill (e.g. ``problem.levels()``, on disk for disk storage: each
    level is written as it is computed and its pages released, so that resident memory does
    not grow with the number of levels); default: a new in-memory array.
    """
    from tqdm.auto import tqdm

    from bridgesolve.storage import release

    times = grid.times
    values = np.empty((times.size, u_init.x.array.size)) if out is None else out
    if values.shape != (times.size, u_init.x.array.size):
        raise ValueError(f"evolve: out has shape {values.shape}, expected "
                         f"{(times.size, u_init.x.array.size)}")
    u_old = u_init.copy()
    u_new = u_init.copy()
    levels = range(grid.steps - 1, -1, -1) if backward else range(grid.steps)
    values[-1 if backward else 0] = u_old.x.array
    bar = tqdm(total=grid.steps, desc=desc, unit="step", leave=False,
               disable=not progress or stepper.comm.rank != 0)
    try:
        for i, n in enumerate(levels):
            if i < startup and stepper.theta < 1.0:
                t0, t1 = (times[n + 1], times[n]) if backward else (times[n], times[n + 1])
                mid = 0.5 * (t0 + t1)
                stepper.step(u_old, u_new, *sorted((t0, mid)), theta=1.0)
                u_old, u_new = u_new, u_old
                stepper.step(u_old, u_new, *sorted((mid, t1)), theta=1.0)
            else:
                stepper.step(u_old, u_new, times[n], times[n + 1])
            values[n if backward else n + 1] = u_new.x.array
            release(values)  # on disk: the level leaves memory
            u_old, u_new = u_new, u_old
            bar.update()
    finally:
        bar.close()
    return values
