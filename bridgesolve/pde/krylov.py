r"""KSP construction for every linear solve of the package, direct or iterative.

:func:`make_ksp` turns an option dict of :mod:`bridgesolve.solvers` into a set-up PETSc KSP
for one matrix. For the iterative path it chooses, per matrix, what the user left open
(``bs_auto``):

* the Krylov method: CG when the matrix is symmetric (diffusion, mass, killing terms),
  GMRES when a drift makes it non-symmetric;
* the preconditioner: Jacobi when the step matrix ``A = M + θΔt K`` is *mass-dominated*
  — the operator adds at most :data:`JACOBI_MAX_STIFFNESS` times the mass to every
  diagonal entry, ``max_i (A_ii / M_ii) − 1 ≤ s``; the Jacobi-scaled mass matrix is
  well conditioned (``[1/2, 2]`` for consistent P1 masses, 1 lumped), so CG then needs a
  small number of iterations whatever h is — else algebraic multigrid (hypre's BoomerAMG
  where the PETSc build has it, PETSc's GAMG otherwise). Without a mass matrix (a
  Jacobian) the test is the rows' off-diagonal sum against the diagonal
  (:func:`offdiagonal_ratio` ≤ s/(1 + s), its value for a lumped mass);
* GAMG's level smoother on non-symmetric steps: Richardson + SOR
  (:data:`NONSYMMETRIC_GAMG_SMOOTHER`) instead of Chebyshev, which needs a real spectrum.

The KSP (with its preconditioner) is built once per matrix; the callers cache it across
time steps and Sinkhorn iterations exactly as they cache factorizations.

:class:`KrylovCounter` keeps the iterations of every solve and :func:`check` raises
:class:`KrylovError` naming the reason, the iterations and the residual when a solve fails.
"""

from __future__ import annotations

import numpy as np

from bridgesolve._dolfinx import MPI, PETSc
from bridgesolve.solvers import is_iterative

#: Jacobi instead of AMG when the operator adds at most this times the mass on the diagonal
#: (lumped: κ(D⁻¹A) ≤ 1 + 2s = 3, CG contracts by ``(√κ − 1)/(√κ + 1) ≤ 0.27`` per
#: iteration).
JACOBI_MAX_STIFFNESS = 1.0

#: GAMG's level smoother for non-symmetric (drift) steps, unless the user names one.
#: GAMG's default, Chebyshev/Jacobi, targets an interval of a real spectrum; the
#: transport term makes the step non-symmetric (cell Péclet ``|f| h / D`` about 3 near the
#: walls of a 15³-cell VP box on [-5, 5]³) and GMRES + GAMG then stalled (2000 iterations,
#: residual 5e-5 of 1e-10 on the first Crank–Nicolson clock step). Richardson with PETSc's
#: local symmetric SOR sweep needs no eigenvalue estimate: 3 iterations on that step;
#: 2D (100² cells) 8.1 per step instead of 11.2 (benchmarks/README.md, issue 24).
NONSYMMETRIC_GAMG_SMOOTHER = {"mg_levels_ksp_type": "richardson",
                              "mg_levels_pc_type": "sor"}

_REASONS = {getattr(PETSc.KSP.ConvergedReason, name): name
            for name in dir(PETSc.KSP.ConvergedReason) if not name.startswith("_")}


class KrylovError(RuntimeError):
    """A linear solve did not converge (reason, iterations and residual in the message)."""


def amg() -> str:
    """The algebraic multigrid of this PETSc build: ``"hypre"`` (BoomerAMG) or ``"gamg"``."""
    return "hypre" if PETSc.Sys.hasExternalPackage("hypre") else "gamg"


def offdiagonal_ratio(A: PETSc.Mat) -> float:
    """``max_i Σ_{j≠i} |a_ij| / |a_ii|`` over all rows (collective)."""
    indptr, cols, vals = A.getValuesCSR()
    start = A.getOwnershipRange()[0]
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    diag = np.zeros(indptr.size - 1)
    on = cols == rows + start
    np.add.at(diag, rows[on], vals[on])
    off = np.zeros_like(diag)
    np.add.at(off, rows[~on], np.abs(vals[~on]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diag != 0.0, off / np.abs(diag), np.inf)
    return float(A.getComm().tompi4py().allreduce(float(ratio.max(initial=0.0)), MPI.MAX))


def is_symmetric(A: PETSc.Mat) -> bool:
    """Whether ``A`` equals its transpose up to round-off (collective)."""
    At = A.transpose(PETSc.Mat())
    At.axpy(-1.0, A)
    gap = At.norm(PETSc.NormType.INFINITY)
    At.destroy()
    return gap <= 1e-12 * max(A.norm(PETSc.NormType.INFINITY), 1e-300)


def stiffness_ratio(A: PETSc.Mat, M: PETSc.Mat, skip: np.ndarray | None = None) -> float:
    """``max_i A_ii / M_ii − 1`` over all ranks' rows but the local rows ``skip``
    (Dirichlet rows, whose diagonal is 1)."""
    a, m = A.getDiagonal(), M.getDiagonal()
    keep = np.ones(a.array.size, dtype=bool)
    if skip is not None:
        keep[skip] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        local = float(np.max(a.array[keep] / m.array[keep] - 1.0, initial=0.0))
    a.destroy()
    m.destroy()
    return float(A.getComm().tompi4py().allreduce(local, MPI.MAX))


def resolve(options: dict, A: PETSc.Mat | None = None, *, symmetric: bool | None = None,
            mass_dominated: bool | None = None) -> dict:
    """The PETSc options for ``A``: the private ``bs_*`` keys removed and, on the iterative
    path, the open choices (``bs_auto``) made from ``A`` (or ``symmetric`` and
    ``mass_dominated`` given; without ``A`` the safe choices: GMRES and AMG)."""
    out = {k: v for k, v in options.items() if not k.startswith("bs_")}
    if not is_iterative(options):
        return out
    free = set(filter(None, str(options.get("bs_auto", "")).split(",")))
    if "ksp_type" in free:
        if symmetric is None:
            symmetric = A is not None and is_symmetric(A)
        out["ksp_type"] = "cg" if symmetric else "gmres"
    if "pc_type" in free:
        if mass_dominated is None:
            mass_dominated = A is not None and offdiagonal_ratio(A) <= (
                JACOBI_MAX_STIFFNESS / (1.0 + JACOBI_MAX_STIFFNESS))
        out["pc_type"] = "jacobi" if mass_dominated else amg()
    if out.get("ksp_type") != "gmres":
        out.pop("ksp_gmres_restart", None)
    elif out.get("pc_type") == "gamg" and not any(k.startswith("mg_levels_") for k in out):
        out.update(NONSYMMETRIC_GAMG_SMOOTHER)
    return out


#: Newton–Krylov (HJB, log and tilted modes, generated densities): GMRES on the Jacobian,
#: preconditioned by block Jacobi with ILU(0) blocks unless the user chose. Measured on the
#: backward HJB from a Gaussian (2D, 32² and 64² P1, Brownian σ = 1): GAMG's aggregation
#: does not handle the Jacobian's transport ``2D∇S̄·∇δ`` (|∇S̄| ~ 15 near the walls):
#: 500 GMRES iterations without convergence on the first Newton step, then divergence;
#: block ILU converges in 6–8. Newton's own residual test decides convergence, so the
#: inner tolerance only sets the rate (1e-6: 3 Newton iterations, as with LU); 1e-10 of a
#: residual already near round-off is out of GMRES's reach. The previous Newton step is a
#: bad initial guess (it exceeded PETSc's divergence test): every inner solve starts at 0.
NEWTON_KRYLOV = {"ksp_rtol": 1e-6, "ksp_max_it": 500, "ksp_initial_guess_nonzero": False}
NEWTON_PC = "bjacobi"


def newton_options(options: dict, *, rtol: float | None = None) -> dict:
    """The KSP/PC options of a Newton solve (non-symmetric Jacobian) from a problem's
    ``options``: on the iterative path GMRES + :data:`NEWTON_PC` (unless named) with
    :data:`NEWTON_KRYLOV` (``rtol`` overrides its tolerance)."""
    out = {k: v for k, v in resolve(options, symmetric=False).items()
           if k.startswith(("ksp_", "pc_"))}
    if not is_iterative(options):
        return out
    out.update(NEWTON_KRYLOV)
    if "pc_type" in str(options.get("bs_auto", "")):
        out["pc_type"] = NEWTON_PC
    if rtol is not None:
        out["ksp_rtol"] = rtol
    return out


def make_ksp(A: PETSc.Mat, options: dict, prefix: str, *, symmetric: bool | None = None,
             mass_dominated: bool | None = None) -> PETSc.KSP:
    """A set-up KSP for ``A`` (factorized or preconditioned now) with ``options``
    (:func:`resolve`), set under ``prefix`` and removed from the global database again."""
    ksp = PETSc.KSP().create(A.getComm())
    ksp.setOperators(A)
    ksp.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    resolved = resolve(options, A, symmetric=symmetric, mass_dominated=mass_dominated)
    for k, v in resolved.items():
        opts[f"{prefix}{k}"] = v
    ksp.setFromOptions()
    # Multigrid reads its level options (``mg_levels_*``, ``mg_coarse_*``) when it builds
    # the levels in setUp, not in setFromOptions: remove them only after.
    ksp.setUp()
    for k in resolved:
        del opts[f"{prefix}{k}"]
    return ksp


def describe(ksp: PETSc.KSP) -> str:
    """``"cg+jacobi"``, ``"gmres+gamg"``, ``"preonly+lu"``: what a KSP runs."""
    return f"{ksp.getType()}+{ksp.getPC().getType()}"


def check(ksp: PETSc.KSP, what: str) -> int:
    """The iterations of the last solve of ``ksp``; raises :class:`KrylovError` naming
    ``what``, PETSc's reason, the iterations and the residual norm when it failed."""
    reason = ksp.getConvergedReason()
    its = ksp.getIterationNumber()
    if reason < 0:
        rtol, atol, _, max_it = ksp.getTolerances()
        raise KrylovError(
            f"{what}: the linear solve ({describe(ksp)}) failed: PETSc reason {reason} "
            f"({_REASONS.get(reason, '?')}) after {its} iterations, residual norm "
            f"{ksp.getResidualNorm():.3e} (rtol {rtol:.1e}, atol {atol:.1e}, max_it "
            f"{max_it}); try solver='direct', shorter time steps, or another "
            "preconditioner (petsc_options={'pc_type': ...})")
    return its


class KrylovCounter:
    """Krylov iterations of every solve of one solver (0 per solve on the direct path)."""

    def __init__(self):
        self.iterations: list[int] = []
        self.methods: dict[str, int] = {}
        self.rtol = float("nan")  # of the KSPs built

    def add(self, ksp: PETSc.KSP, what: str) -> None:
        self.iterations.append(check(ksp, what))

    def built(self, ksp: PETSc.KSP) -> None:
        name = describe(ksp)
        self.rtol = ksp.getTolerances()[0]
        self.methods[name] = self.methods.get(name, 0) + 1

    def info(self, options: dict) -> dict:
        """The ``linear_solver`` record of a solver's info: path, methods, iterations."""
        its = np.asarray(self.iterations, dtype=int)
        record = {"solver": "iterative" if is_iterative(options) else "direct",
                  "methods": dict(self.methods), "solves": int(its.size)}
        if record["solver"] == "iterative":
            record.update(rtol=float(self.rtol),
                          krylov_iterations=int(its.sum()),
                          per_step_mean=float(its.mean()) if its.size else 0.0,
                          per_step_max=int(its.max(initial=0)))
        return record


#: The l2 retry of a failed Newton solve (:func:`newton_step`) may take this many times
#: ``snes_max_it`` iterations.
RETRY_MAX_IT = 4


def newton_step(nl, u, start: np.ndarray, comm, accept=None,
                linear: list[int] | None = None) -> tuple[int, bool, bool]:
    """Newton for ``nl`` (a DOLFINx ``NonlinearProblem`` solving for ``u``) from the local
    values ``start``: ``(iterations, accepted, retried)``.

    The verdict is collective (a NaN on one rank must send every rank into the caller's
    halving): converged, finite, and ``accept(u.x.array)`` where given. Full Newton steps
    (``basic`` line search) wander on some steps: the residual stalls near 1e-3 and cycles,
    and whether they land within ``snes_max_it`` then turns on round-off, so that halving
    such steps made 1 and 2 ranks solve different discretizations (the 8-step CN error
    of ``tests/pde/test_richardson.py``: 0.217 serially, 0.086 on 2 ranks). A failed
    ``basic`` solve is therefore done again from ``start`` with the ``l2`` line search
    and :data:`RETRY_MAX_IT` times the iterations; it converges to the same discrete
    solution (a solution of the same equations). l2 stays off where full steps converge:
    it costs two residuals per iteration (log-mode bridges were 1.5-2.8x slower with it
    always on). ``linear`` collects the linear iterations of every solve."""
    snes = nl.solver

    def attempt() -> bool:
        u.x.array[:] = start
        nl.solve()
        if linear is not None:
            linear.append(snes.getLinearSolveIterations())
        with np.errstate(invalid="ignore", over="ignore"):
            ok = (snes.getConvergedReason() > 0 and bool(np.all(np.isfinite(u.x.array)))
                  and (accept is None or bool(accept(u.x.array))))
        return bool(comm.allreduce(int(ok), op=MPI.MIN))

    ok = attempt()
    its = snes.getIterationNumber()
    line_search = snes.getLineSearch()
    if ok or line_search.getType() != "basic":
        return its, ok, False
    max_it = snes.getTolerances()[3]
    line_search.setType("l2")
    snes.setTolerances(max_it=RETRY_MAX_IT * max_it)
    try:
        ok = attempt()
    finally:
        line_search.setType("basic")
        snes.setTolerances(max_it=max_it)
    return its + snes.getIterationNumber(), ok, True


def newton_record(options: dict, iterations: list[int], nl) -> dict:
    """The ``linear_solver`` record of Newton steps: ``iterations`` are the Krylov iterations
    of each step's Newton solve (all its linear solves), ``nl`` the DOLFINx problem."""
    counter = KrylovCounter()
    counter.iterations = list(iterations)
    if nl is not None:
        counter.built(nl.solver.getKSP())
    return counter.info(options)


def merge(records: list[dict]) -> dict:
    """One ``linear_solver`` record from several solvers' (a bridge's sweeps)."""
    records = [r for r in records if r]
    if not records:
        return {}
    out = {"solver": records[0]["solver"], "methods": {}, "solves": 0}
    for r in records:
        for k, n in r["methods"].items():
            out["methods"][k] = out["methods"].get(k, 0) + n
        out["solves"] += r["solves"]
    if out["solver"] == "iterative":
        total = sum(r["krylov_iterations"] for r in records)
        out.update(rtol=min(r["rtol"] for r in records), krylov_iterations=total,
                   per_step_mean=total / max(out["solves"], 1),
                   per_step_max=max(r["per_step_max"] for r in records))
    return out
