r"""Forward Fokker–Planck equation.

.. math::
    \partial_t p = -\nabla\cdot(f p) + D(t)\,\Delta p + V p, \qquad p(\cdot, 0) = \rho_0,

with ``f(x, t) = k(t) f_0(x)``. Reflecting boundaries carry zero probability flux
``(f p - D\nabla p)\cdot n = 0``, which is the natural condition of the weak form

.. math::
    (\partial_t p, v) + D(t) (\nabla p, \nabla v) - k(t) (p f_0, \nabla v) - (V p, v) = 0
    \quad \forall v \in V_h .

Testing with ``v = 1`` gives ``d/dt ∫ p = ∫ V p``: without killing the discrete mass is
conserved exactly (to solver round-off). Absorbing boundaries set ``p = 0`` on ∂Ω.
"""

from __future__ import annotations

import time

import numpy as np

from bridgesolve._dolfinx import MPI, PETSc, dolfinx, fem, ufl
from bridgesolve._validate import BridgesolveInputError, warn
from bridgesolve.densities import is_probability_density
from bridgesolve.pde.killing import check_rate, killing_term
from bridgesolve.pde.stepping import Term, ThetaStepper, evolve
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField, as_numpy_callable
from bridgesolve.storage import level_blocks

#: Initial mass outside Ω above which a warning is issued.
MASS_OUTSIDE_WARN = 1e-6
#: Mass inside Ω below which the data are refused: most of the density is not in the domain.
MASS_INSIDE_REFUSE = 0.5
#: Most negative value, relative to the peak of its level, above which a warning is issued
#: (undershoots below 1 % of the peak are common on the coarse levels of convergence studies).
NEGATIVE_WARN = 1e-2
#: Estimated share of the mass that reached reflecting walls above which a warning is issued.
WALL_WARN = 1e-3
#: Crank–Nicolson steps taken as two backward-Euler half steps each when ρ0 is projected.
RANNACHER_STEPS = 2
#: Relative gap between ∫ I_h ρ0 and ∫_Ω ρ0 above which ρ0 counts as unresolved.
RESOLUTION_WARN = 1e-2


def initial_function(problem: Problem, rho0, name: str, *, label: str | None = None,
                     nonnegative: bool = False, report: dict | None = None) -> fem.Function:
    """``rho0`` (density, callable of points, or FE function) as a function of ``problem.V``.

    A callable is checked on its call (collectively): it must return one finite number per
    point (and no negative values when ``nonnegative``); ``label`` names it in messages.
    Discontinuous densities (``rho0.discontinuous``: boxes and images at ``t = 0``) are
    L2-projected (mass-conserving: exact on cells cut by the jumps of boxes and images,
    :mod:`~bridgesolve.pde.projection`), others interpolated;
    ``report`` (a dict) receives ``initial_projection`` with the L1 error of the projection
    and both masses.
    """
    label = label or f"initial value {name}"
    u = fem.Function(problem.V, name=name)
    if isinstance(rho0, fem.Function):
        u.interpolate(rho0)
    else:
        dim = problem.domain.dim
        if getattr(rho0, "dim", dim) != dim:
            raise BridgesolveInputError(
                f"{label} is {rho0.dim}D but the domain is {dim}D"
            )
        fn = as_numpy_callable(rho0, dim, name=label, nonnegative=nonnegative, deferred=True)
        if getattr(rho0, "discontinuous", False):
            from bridgesolve.densities.box_mass import jump_grid
            from bridgesolve.pde.projection import initial_error, l2_project

            points_fn = fn.checked  # the checked pdf, on points (N, d)
            edges = jump_grid(rho0)  # boxes and images: exact on cells cut by the jumps
            u = l2_project(problem, points_fn, name, edges=edges)
            fn.checked.raise_pending(problem.comm)
            if report is not None:
                report["initial_projection"] = initial_error(problem, u, points_fn,
                                                             edges=edges)
        else:
            u.interpolate(fn)
            fn.checked.raise_pending(problem.comm)
    if not np.all(np.isfinite(u.x.array)):
        raise BridgesolveInputError(f"{label} has non-finite values on the mesh")
    local = float(np.abs(u.x.array).max()) if u.x.array.size else 0.0
    if problem.comm.allreduce(local, MPI.MAX) == 0.0:
        raise BridgesolveInputError(
            f"{label} vanishes at every node of the mesh of {_bounds_text(problem)}: expected "
            "values that are nonzero somewhere in the domain (is the data outside it, or "
            "narrower than the cells?)"
        )
    return u


def _bounds_text(problem: Problem) -> str:
    lo, hi = problem.domain.bounds
    box = " × ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(lo, hi, strict=True))
    kind = problem.domain.description.get("type")
    return box if kind in ("interval", "box") else f"(bounding box {box})"


def check_mass_inside(problem: Problem, density, what: str, sink: list | None) -> float | None:
    """``1 - ∫_Ω density`` for a probability density of :mod:`bridgesolve.densities`
    (None for other data: callables, unnormalized values), refused when
    less than :data:`MASS_INSIDE_REFUSE` of the mass lies in Ω and warned about (into
    ``sink`` too) above :data:`MASS_OUTSIDE_WARN`."""
    if not is_probability_density(density):
        return None
    inside = problem.mass_inside(density)
    outside = 1.0 - inside
    if inside < MASS_INSIDE_REFUSE:
        raise BridgesolveInputError(
            f"{what} has mass {inside:.3g} inside the domain {_bounds_text(problem)} "
            f"(a probability density: expected about 1; {outside:.3g} lies outside): "
            "enlarge the domain to contain it, or move the density into the domain"
        )
    if abs(outside) > MASS_OUTSIDE_WARN:
        warn(f"{what} has mass {outside:.3g} outside the domain {_bounds_text(problem)} "
             f"(> {MASS_OUTSIDE_WARN:g}; mass inside {inside:.6g}); enlarge the domain for a "
             "faithful solution", sink, stacklevel=4)
    return outside


def _level_extremes(field: SpaceTimeField) -> tuple[np.ndarray, np.ndarray]:
    n = field._n_owned
    lo, hi = np.full(len(field), np.inf), np.full(len(field), -np.inf)
    if n:
        for block in level_blocks(field.values):
            vals = field.values[block, :n]
            lo[block], hi[block] = vals.min(axis=1), vals.max(axis=1)
    glo, ghi = np.empty_like(lo), np.empty_like(hi)
    field.comm.Allreduce(lo, glo, op=MPI.MIN)
    field.comm.Allreduce(hi, ghi, op=MPI.MAX)
    return glo, ghi


def check_positivity(problem: Problem, field: SpaceTimeField, what: str,
                     sink: list | None, *, first: int = 0) -> None:
    """Warn (into ``sink`` too) when a field that should stay non-negative went negative by
    more than :data:`NEGATIVE_WARN` of its level's peak: the θ-scheme oscillates or the
    mesh does not resolve the solution. Levels before ``first`` are not checked (an L2
    projection of discontinuous data undershoots at its jumps by design)."""
    lo, hi = _level_extremes(field)
    lo, hi = lo.copy(), hi.copy()
    lo[:first], hi[:first] = 0.0, 0.0
    peak = np.maximum(np.abs(hi), np.abs(lo))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(peak > 0, -lo / peak, 0.0)
    n = int(np.argmax(rel))
    if rel[n] > NEGATIVE_WARN:
        dt = float(problem.grid.dt.max())
        h = problem.domain.hmax
        if problem.theta < 1.0:
            cause = (f"the solution is too steep for this step and mesh: the θ-scheme "
                     f"(θ = {problem.theta:g}) oscillates when Δt (up to {dt:.3g}) is large, "
                     f"finite elements undershoot when cells (h = {h:.3g}) are coarse")
            fix = 'use scheme = "backward-euler", more steps or a finer mesh'
        else:
            cause = (f"the mesh (h = {h:.3g}) does not resolve the solution (Δt up to "
                     f"{dt:.3g}): finite elements undershoot there")
            fix = "refine the mesh where the solution is steep, or take more steps"
        warn(f"{what} went negative: min {lo[n]:.3g} at t = {field.times[n]:.4g} "
             f"({rel[n]:.2%} of that level's peak {peak[n]:.3g}); {cause}; {fix}", sink,
             stacklevel=4)


def check_walls(problem: Problem, field: SpaceTimeField, sink: list | None) -> None:
    """Warn (into ``sink`` too) when mass reaches reflecting walls.

    The share of mass a wall turned back by ``t_n`` is estimated as
    ``ℓ_n ∫_∂Ω p ds / ∫_Ω p dx`` with the diffusion length ``ℓ_n = (2∫_0^{t_n} D)^½``
    (a Gaussian tail at distance a from its mean has ``∫_a^∞ p ≈ p(a) s²/a``); above
    :data:`WALL_WARN` a truncation of R^d no longer stands for R^d.
    """
    if problem.boundary != "reflecting":
        return
    # the compiled boundary form is kept on the problem (finding it in the JIT cache cost
    # 1.4 ms a solve: a fifth of a small one)
    vec = fem.assemble_vector(problem.form("wall_share",
                                           lambda: ufl.TestFunction(problem.V) * ufl.ds))
    vec.scatter_reverse(dolfinx.la.InsertMode.add)
    n = field._n_owned
    local = np.empty(len(field))
    for block in level_blocks(field.values):
        local[block] = field.values[block, :n] @ vec.array[:n]
    wall = field.comm.allreduce(local, MPI.SUM)
    mass = np.asarray(field.info["mass"], dtype=float)
    proc = problem.process
    t = field.times
    ell = np.sqrt(2.0 * np.array([max(proc.diffusion_integral(t[0], tk), 0.0) for tk in t]))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.abs(mass) > 0, ell * np.abs(wall) / np.abs(mass), 0.0)
    k = int(np.argmax(share))
    field.info["wall_share"] = float(share[k])
    if share[k] > WALL_WARN:
        warn(f"about {min(share[k], 1.0):.2g} of the mass reached the reflecting walls by "
             f"t = {t[k]:.4g} (∫_∂Ω p ds × diffusion length {ell[k]:.3g}); the walls of "
             f"{_bounds_text(problem)} change the solution if Ω stands for all of space: "
             "enlarge the domain or shorten T (ignore this if the walls are physical)", sink,
             stacklevel=4)


def dirichlet_dofs(problem: Problem) -> np.ndarray | None:
    """Owned boundary dofs for absorbing boundaries, else None."""
    if problem.boundary != "absorbing":
        return None
    mesh = problem.mesh
    facets = problem.domain.boundary_facets()
    dofs = fem.locate_dofs_topological(problem.V, mesh.topology.dim - 1, facets)
    return dofs[dofs < problem.V.dofmap.index_map.size_local]


def exact_mass_in_domain(problem: Problem, rho0) -> float | None:
    """``∫_Ω ρ0`` by mesh quadrature of the exact density (:meth:`Problem.mass_inside`), or
    None when ρ0 is not a probability density object (``.pdf``)."""
    if not hasattr(rho0, "pdf"):
        return None
    return problem.mass_inside(rho0)


def transport_terms(problem: Problem, *, adjoint: bool) -> list[Term]:
    """Diffusion and drift terms of ``-L*`` (forward) or ``-L`` (backward, ``adjoint=True``)."""
    proc = problem.process
    V = problem.V

    def diffusion():
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        return ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx

    terms = [Term(problem.form("diffusion", diffusion), proc.diffusion_integral)]
    if not (proc.linear and proc.drift_rate_integral(0.0, 1.0) == 0.0):
        def drift():
            u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
            f0 = proc.drift_shape_ufl(ufl.SpatialCoordinate(problem.mesh))
            if problem.domain.dim == 1 and f0.ufl_shape == ():
                f0 = ufl.as_vector([f0])
            if adjoint:
                return -ufl.inner(f0, ufl.grad(u)) * v * ufl.dx
            return -u * ufl.inner(f0, ufl.grad(v)) * ufl.dx

        terms.append(Term(problem.form(("drift", adjoint), drift), proc.drift_rate_integral))
    return terms


def mass_form(problem: Problem):
    def build():
        return ufl.TrialFunction(problem.V) * ufl.TestFunction(problem.V) * ufl.dx

    return problem.form("mass", build)


def user_drift_term(problem: Problem, drift, name: str) -> Term:
    """``-(q b, ∇v)`` of a drift ``b(x (N, d), t) -> (N, d)`` on NumPy points, interpolated
    (vector Lagrange, the problem's degree, a function named ``name``) at each step's
    midpoint; coefficient ``Δt``. A ``drift`` with ``raise_pending(comm)``
    (:func:`~bridgesolve._validate.deferred_checks`) raises its error on every rank."""
    d, comm = problem.domain.dim, problem.comm
    W = fem.functionspace(problem.mesh, ("Lagrange", problem.degree, (d,)))
    b_fun = fem.Function(W, name=name)
    u, v = ufl.TrialFunction(problem.V), ufl.TestFunction(problem.V)
    form = fem.form(-u * ufl.inner(b_fun, ufl.grad(v)) * ufl.dx)

    def update(t):
        if comm.size > 1:
            PETSc.garbage_cleanup(comm)  # as in the sampler's equation: free old solvers
        b_fun.interpolate(lambda x: np.asarray(drift(np.ascontiguousarray(x[:d].T), t),
                                               dtype=float).reshape(-1, d).T)
        if hasattr(drift, "raise_pending"):
            drift.raise_pending(comm)  # the same error on every rank (collective)

    return Term(form, lambda a, b: b - a, update=update)


def density_stepper(problem: Problem, terms: list[Term], q0) -> ThetaStepper:
    """The θ-scheme stepper of ``(∂_t q, v) + Σ terms = 0`` on ``problem`` (its mass form,
    θ, PETSc options; absorbing walls: Dirichlet dofs, where ``q0`` is set to 0 in place)."""
    bc = dirichlet_dofs(problem)
    stepper = ThetaStepper(mass_form(problem), terms, problem.theta, dirichlet_dofs=bc,
                           petsc_options=problem.petsc_options)
    if bc is not None:
        q0.x.array[bc] = 0.0
        q0.x.scatter_forward()
    return stepper


def solve_fokker_planck(
    problem: Problem,
    rho0,
    *,
    killing=None,
    progress: bool = True,
    check_mass: bool = True,
    name: str = "p",
    method: str = "fe",
) -> SpaceTimeField:
    """Solve the forward Fokker–Planck equation on ``problem`` from ``rho0``.

    Args:
        problem: domain, process, time grid and discretization.
        rho0: initial density: a :class:`GaussianMixture`, a callable of points
            ``(N, d) -> (N,)``, or a DOLFINx Function.
        killing: optional rate ``V`` (see :mod:`bridgesolve.pde.killing`); ``V > 0`` creates
            mass.
        progress: show a progress bar over time steps (rank 0 only).
        check_mass: estimate ``1 - ∫_Ω ρ0`` (the initial mass the domain misses) and warn
            above 1e-6; this costs a refined quadrature, comparable to a small solve.
        name: the field's name in output files.
        method: ``"fe"`` (finite elements), ``"kernel"`` (the exact transition kernel of a
            linear process on a box, :mod:`bridgesolve.kernel`: free space, no stepping;
            ``info["mass_outside"]`` per level) or ``"auto"`` (the kernel where it applies).

    Returns:
        The density at every time level. ``info`` holds ``mass`` (∫p per level),
        ``mass_outside_initial`` (``1 - ∫_Ω ρ0``), ``factorizations``, ``assemblies``,
        ``timings``, ``wall_share`` and ``warnings`` (the messages of the checks below).

    Checks (refused with :class:`BridgesolveInputError`, or warned about with a
    ``RuntimeWarning`` whose text is also kept in ``info["warnings"]``):

    - ``rho0`` as a callable must return one finite, non-negative number per point;
    - a mixture ``rho0`` with less than half its mass in Ω is refused; above 1e-6 outside,
      a warning; a mesh whose interpolant of ρ0 misses its mass by 1 % is warned about;
    - a creation rate with ``θ Δt V >= 1`` is refused (the step's matrix is singular); a
      killing rate that makes the amplification factor negative is warned about;
    - after the run: negative densities beyond 1 % of the peak (θ-scheme oscillations) and
      mass reaching reflecting walls (above 0.1 %, estimated) are warned about.
    """
    from bridgesolve.kernel.fields import fokker_planck_field, use_kernel

    if use_kernel(method, problem, killing=killing):
        return fokker_planck_field(problem, rho0, name=name)
    timings = {}
    t_start = time.perf_counter()
    V = problem.V
    found: list[str] = []
    projection: dict = {}
    p_old = initial_function(problem, rho0, name, label="initial density rho0",
                             nonnegative=True, report=projection)
    mass_outside = (check_mass_inside(problem, rho0, "the initial density rho0", found)
                    if check_mass else None)

    terms = transport_terms(problem, adjoint=False)
    kt = killing_term(V, killing, sign=-1.0)
    killing_info = {}
    if kt is not None:
        terms.append(kt[0])
        killing_info = kt[1]
        check_rate(killing_info, problem.theta, float(problem.grid.dt.max()), sink=found)
    bc = dirichlet_dofs(problem)
    stepper = ThetaStepper(mass_form(problem), terms, problem.theta,
                           dirichlet_dofs=bc, petsc_options=problem.petsc_options)
    if bc is not None:
        p_old.x.array[bc] = 0.0
        p_old.x.scatter_forward()
    timings["setup_s"] = time.perf_counter() - t_start

    t_loop = time.perf_counter()
    # Rough (projected) data: Rannacher's start-up keeps Crank–Nicolson from carrying the
    # projection's high frequencies along (observed orders on the checkerboard: docs).
    startup = RANNACHER_STEPS if projection and problem.theta < 1.0 else 0
    values = evolve(stepper, problem.grid, p_old, desc="Fokker-Planck", progress=progress,
                    startup=startup, out=problem.levels(p_old.x.array.size, name=name))
    if startup:
        projection["startup"] = f"{startup} steps as {2 * startup} backward-Euler half steps"
    timings["stepping_s"] = time.perf_counter() - t_loop
    info = {
        "equation": "fokker-planck",
        "mass_outside_initial": mass_outside,
        **projection,
        "factorizations": stepper.factorizations,
        "assemblies": stepper.assemblies,
        "linear_solver": stepper.solver_info(),
        "storage": problem.storage.kind,
        **killing_info,
    }
    mass_vector = stepper.row_sums()
    stepper.destroy()
    field = SpaceTimeField(V, problem.grid, values, name=name, info=info)
    field.info["mass"] = field.integral(mass_vector)
    timings["total_s"] = time.perf_counter() - t_start
    field.info["timings"] = timings
    _check_solution(problem, field, mass_outside, projection, killing_info, found)
    field.info["warnings"] = list(dict.fromkeys(found))
    return field


def _check_solution(problem: Problem, field: SpaceTimeField, mass_outside, projection: dict,
                    killing_info: dict, found: list[str]) -> None:
    """The after-run checks of :func:`solve_fokker_planck` (its docstring lists them)."""
    values = field.values
    if not all(np.all(np.isfinite(values[block])) for block in level_blocks(values)):
        raise FloatingPointError("Fokker-Planck solution became non-finite")
    if mass_outside is not None and field.info["mass"][0] > 0:
        inside = 1.0 - mass_outside
        gap = abs(field.info["mass"][0] - inside) / inside
        if gap > RESOLUTION_WARN:
            warn(f"the mesh does not resolve the initial density: its interpolant has mass "
                 f"{field.info['mass'][0]:.4g} where rho0 has {inside:.4g} in the domain "
                 f"({gap:.1%} apart; h = {problem.domain.hmax:.3g}); refine the mesh where "
                 "rho0 is narrow", found)
    check_positivity(problem, field, "the density", found, first=1 if projection else 0)
    check_walls(problem, field, found)
    if killing_info.get("killing") == "callable(x, t)":
        check_rate(killing_info, problem.theta, float(problem.grid.dt.max()), sink=found,
                   refuse=False)  # V(x, t): the rates met during the run


__all__ = ["solve_fokker_planck"]
