r"""Exact generated densities of the interpolating sampler, and likelihoods from them.

The sampler of :mod:`bridgesolve.sampling` integrates, in reverse time from the prior
``π`` at ``t = T``,

.. math::
    dX = b_h(X, t)\, dt + h\, g\, d\bar W, \qquad
    b_h = f - \frac{1 + h^2}{2}\, g^2\, s, \qquad h \in [0, 1].

Its law ``q_h(·, t)`` is computed here without sampling noise.

**h > 0: the Fokker–Planck equation of the sampler.** In reverse time ``τ = T - t``
(``q(·, T) = π``)

.. math::
    \partial_\tau q = \nabla\cdot(b_h\, q) + h^2 D(t)\, \Delta q,

whose weak form with zero total flux through ∂Ω (reflecting; absorbing sets ``q = 0``) is

.. math::
    (\partial_\tau q, v) + h^2 D\,(\nabla q, \nabla v) + k(t)\,(q f_0, \nabla v)
    - \frac{1 + h^2}{2} g^2\, (q\, s, \nabla v) = 0 \quad \forall v \in V_h .

It is stepped by the θ-scheme engine (:class:`~bridgesolve.pde.stepping.ThetaStepper`):
the mass, diffusion and reference-drift matrices are assembled once; the score term's
matrix is re-assembled every step with ``s`` interpolated (vector Lagrange, the problem's
degree) at the step midpoint — it changes with t, so that is the minimum. With the exact
score, ``q_h = p`` solves it for every ``h`` (``∇·(p ∇log p) = Δp``).

**h = 0: characteristics.** The probability-flow ODE ``ẋ = v = f - ½ g² s`` transports
densities by the instantaneous change of variables,

.. math::
    \log q_0(\cdot, t)(x) = \log \pi(X_T(x)) + \int_t^T \nabla\cdot v(X_r(x), r)\, dr,
    \qquad X_t(x) = x,

evaluated at the mesh nodes (Heun's method on the time grid for ``X``, the trapezoidal
rule for the integral; ``∇·v`` by central differences of the callable unless
``divergence=`` is given). A mesh score (:class:`~bridgesolve.score.VectorField`) jumps
across facets, where central differences would blow up: it is first made continuous
(:meth:`~bridgesolve.score.VectorField.continuous`). Characteristics that leave the mesh of
a mesh score give ``q = 0`` at their node (``info["lost_nodes"]`` counts them).

From ``q_h``: ``KL(ρ0 ‖ q_h(·, 0))`` by mesh quadrature (:func:`kl_divergence`), the
negative log-likelihood of data samples (:func:`nll`), and the score-matching bound
``KL(ρ0‖q_1) ≤ KL(p_T‖π) + ½∫ g² E_{p_t}|s - ∇log p_t|² dt`` (:func:`score_matching_bound`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from bridgesolve._dolfinx import MPI, PETSc, fem, ufl
from bridgesolve._validate import BridgesolveInputError, positive
from bridgesolve.pde.fokker_planck import dirichlet_dofs, initial_function, mass_form
from bridgesolve.pde.fokker_planck import transport_terms as _transport_terms
from bridgesolve.pde.stepping import Term, ThetaStepper, evolve
from bridgesolve.problem import Problem
from bridgesolve.quadrature import mesh_quadrature
from bridgesolve.sampling import check_h
from bridgesolve.spacetime import SpaceTimeField
from bridgesolve.timegrid import TimeGrid

Score = Callable[[np.ndarray, float], np.ndarray]


def generated_density(problem: Problem, score: Score, h: float, prior, *,
                      progress: bool = True, name: str = "q", levels: str = "all",
                      divergence: Callable | None = None, fd_step: float = 1e-4
                      ) -> SpaceTimeField:
    """The density ``q_h`` of the interpolating sampler at every level of the time grid.

    Args:
        problem: domain, process, time grid and discretization (the sampler runs on its
            grid, from ``T`` down to ``t_0``).
        score: ``s(x (N, d), t) -> (N, d)``: analytic, PDE
            (:class:`~bridgesolve.score.VectorField`), bundle interpolant or learned.
        h: the interpolation parameter in [0, 1].
        prior: the law at ``T``: a :class:`~bridgesolve.GaussianMixture` (or any object
            with ``pdf``/``log_pdf``), or a callable of points (a density).
        progress: progress bar (rank 0).
        name: the field's name.
        levels: ``h = 0`` only: ``"all"`` (every level; cost grows like ``nt²``) or
            ``"initial"`` (the field then has the two levels ``t_0`` and ``T``; the
            characteristics still use every step of the problem's grid).
        divergence: ``h = 0`` only: ``∇·s(x, t)`` as a callable; default central differences
            of ``score`` with step ``fd_step``.

    Returns:
        A linear :class:`~bridgesolve.SpaceTimeField`; ``info`` holds ``h``, ``mass`` per
        level, timings (and for h > 0 the stepper's counts).
    """
    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    h = check_h(h)
    if not callable(score):
        raise BridgesolveInputError(f"score = {score!r}: expected a callable s(x, t)")
    if levels not in ("all", "initial"):
        raise BridgesolveInputError(f"levels = {levels!r}: expected 'all' or 'initial'")
    t_start = time.perf_counter()
    if h > 0:
        field = _fokker_planck_of_sampler(problem, score, h, prior, progress, name)
    else:
        from bridgesolve.score import VectorField

        if isinstance(score, VectorField) and divergence is None:
            score = score.continuous()  # bounded finite-difference divergence
        field = _characteristics(problem, score, prior, progress, name, levels, divergence,
                                 positive("fd_step", fd_step))
    field.info["h"] = h
    field.info["mass"] = field.integral()
    field.info.setdefault("timings", {})["total_s"] = time.perf_counter() - t_start
    return field


# -- h > 0 -------------------------------------------------------------------------------
def _fokker_planck_of_sampler(problem, score, h, prior, progress, name) -> SpaceTimeField:
    proc = problem.process
    V, mesh, d = problem.V, problem.mesh, problem.domain.dim
    c = 0.5 * (1.0 + h * h)
    timings = {}
    t0 = time.perf_counter()
    q_T = initial_function(problem, prior, name)
    base = _transport_terms(problem, adjoint=False)  # [diffusion, (drift: -(u f0, ∇v))]
    terms = [Term(base[0].form, lambda a, b: h * h * proc.diffusion_integral(a, b))]
    if len(base) > 1:
        # the sampler's drift enters as +k (q f0, ∇v): the same matrix with rate -∫k
        terms.append(Term(base[1].form, lambda a, b: -proc.drift_rate_integral(a, b)))
    W = fem.functionspace(mesh, ("Lagrange", problem.degree, (d,)))
    s_fun = fem.Function(W, name="score")
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    score_form = fem.form(-u * ufl.inner(s_fun, ufl.grad(v)) * ufl.dx)

    comm = problem.comm

    def update(t):
        if comm.size > 1:
            # The stepper drops the previous step's solver when its operator changes;
            # petsc4py defers destroying parallel objects, and each MUMPS factorization
            # holds duplicated communicators: free them now (collective, same step on
            # every rank) instead of running out of communicators after ~1000 steps.
            PETSc.garbage_cleanup(comm)
        s_fun.interpolate(lambda x: np.asarray(score(np.ascontiguousarray(x[:d].T), t),
                                               dtype=float).reshape(-1, d).T)

    terms.append(Term(score_form, lambda a, b: 2.0 * c * proc.diffusion_integral(a, b),
                      update=update))
    bc = dirichlet_dofs(problem)
    stepper = ThetaStepper(mass_form(problem), terms, problem.theta, dirichlet_dofs=bc,
                           petsc_options=problem.petsc_options)
    if bc is not None:
        q_T.x.array[bc] = 0.0
        q_T.x.scatter_forward()
    timings["setup_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        values = evolve(stepper, problem.grid, q_T, backward=True,
                        desc=f"generated density h={h:g}", progress=progress)
    finally:
        info = {"equation": "sampler-fokker-planck", "factorizations": stepper.factorizations,
                "assemblies": stepper.assemblies}
        mass_vector = stepper.row_sums()
        stepper.destroy()
    timings["stepping_s"] = time.perf_counter() - t1
    if not np.all(np.isfinite(values)):
        raise FloatingPointError("generated density became non-finite (score blew up?)")
    field = SpaceTimeField(V, problem.grid, values, name=name, info={**info,
                                                                    "timings": timings})
    field.integral(mass_vector)
    return field


# -- h = 0 -------------------------------------------------------------------------------
def _log_density(prior) -> Callable[[np.ndarray], np.ndarray]:
    """``log π`` at points; a DOLFINx Function is evaluated collectively, as 0 outside its
    mesh."""
    if hasattr(prior, "log_pdf"):
        return prior.log_pdf
    if isinstance(prior, fem.Function):
        from bridgesolve.spacetime import PointLocator

        def log_fe(x):
            vals = PointLocator(prior.function_space.mesh, x)(prior)
            with np.errstate(divide="ignore"):
                return np.log(np.maximum(np.nan_to_num(vals, nan=0.0), 0.0))

        return log_fe
    f = prior.pdf if hasattr(prior, "pdf") else prior
    if not callable(f):
        raise BridgesolveInputError(
            f"prior = {prior!r}: expected a GaussianMixture or a callable density")

    def logf(x):
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(np.asarray(f(x), dtype=float), 0.0))

    return logf


def _characteristics(problem, score, prior, progress, name, levels, divergence, eps
                     ) -> SpaceTimeField:
    """``log q_0(x, t_n) = log π(X_T) + ∫_{t_n}^T ∇·v`` from every node and level at once:
    at step m all trajectories started at levels ≤ m advance together."""
    from tqdm.auto import tqdm

    proc = problem.process
    d = problem.domain.dim
    V = problem.V
    nodes = V.tabulate_dof_coordinates()[:, :d].copy()
    nn = nodes.shape[0]
    times = problem.grid.times
    N = times.size - 1
    n_levels = N if levels == "all" else 1  # levels that need characteristics
    log_pi = _log_density(prior)

    def vel(x, t):
        s = np.asarray(score(x, t), dtype=float).reshape(x.shape)
        return proc.drift(x, t) - float(proc.diffusion(t)) * s  # f - ½ g² s

    def vel_div(x, t):
        """``v`` and ``∇·v`` at ``x`` (one score call on the stencil)."""
        if divergence is not None:
            v = vel(x, t)
            fdiv = _fd_divergence(lambda y: proc.drift(y, t), x, eps)
            return v, fdiv - float(proc.diffusion(t)) * np.asarray(divergence(x, t), float)
        M = x.shape[0]
        stencil = [x]
        for i in range(d):
            e = np.zeros(d)
            e[i] = eps
            stencil += [x + e, x - e]
        allv = vel(np.concatenate(stencil), t)
        v = allv[:M]
        div = np.zeros(M)
        for i in range(d):
            plus = allv[(1 + 2 * i) * M:(2 + 2 * i) * M, i]
            minus = allv[(2 + 2 * i) * M:(3 + 2 * i) * M, i]
            # one-sided where a stencil point leaves a mesh score's domain (NaN there)
            div += np.where(np.isnan(plus), (v[:, i] - minus) / eps,
                            np.where(np.isnan(minus), (plus - v[:, i]) / eps,
                                     (plus - minus) / (2 * eps)))
        return v, div

    t_start = time.perf_counter()
    X = np.empty((n_levels, nn, d))
    acc = np.zeros((n_levels, nn))
    vcur = np.empty((n_levels, nn, d))
    dcur = np.empty((n_levels, nn))
    bar = tqdm(total=N, desc="characteristics h=0", unit="step", leave=False,
               disable=not progress or problem.comm.rank != 0)
    try:
        for m in range(N):
            tm, tn = float(times[m]), float(times[m + 1])
            dt = tn - tm
            if m < n_levels:  # trajectories of level m start at the nodes
                X[m] = nodes
                vcur[m], dcur[m] = vel_div(nodes, tm)
            act = min(m + 1, n_levels)
            x = X[:act].reshape(-1, d)
            v0 = vcur[:act].reshape(-1, d)
            pred = x + dt * v0
            v_pred = vel(pred, tn)
            x_new = x + 0.5 * dt * (v0 + v_pred)
            v_new, d_new = vel_div(x_new, tn)
            acc[:act] += 0.5 * dt * (dcur[:act] + d_new.reshape(act, nn))
            X[:act] = x_new.reshape(act, nn, d)
            vcur[:act] = v_new.reshape(act, nn, d)
            dcur[:act] = d_new.reshape(act, nn)
            bar.update()
    finally:
        bar.close()
    logs = np.empty((n_levels + 1, nn))
    ends = X.reshape(-1, d)
    inside = np.all(np.isfinite(ends), axis=1)  # NaN: left the domain of a mesh score
    log_end = np.full(ends.shape[0], np.nan)
    if inside.any():
        log_end[inside] = log_pi(ends[inside])
    logs[:n_levels] = log_end.reshape(n_levels, nn) + acc
    logs[n_levels] = log_pi(nodes)
    # Characteristics that leave the domain of a mesh score carry no information (NaN):
    # their nodes get q = 0 (they start in the tails, where the flow points outwards).
    lost = ~np.isfinite(logs) & ~np.isneginf(logs)
    logs[lost] = -np.inf
    # "initial": the levels t_0 and T only (both computed), so that the field evaluates
    grid = problem.grid if levels == "all" else TimeGrid(np.array([times[0], times[-1]]))
    info = {"equation": "probability-flow characteristics", "log_values": logs,
            "lost_nodes": int(problem.comm.allreduce(int(lost[0].sum()), MPI.SUM)),
            "timings": {"stepping_s": time.perf_counter() - t_start}}
    return SpaceTimeField(V, grid, np.exp(logs), name=name, info=info)


def _fd_divergence(fn, x, eps):
    d = x.shape[1]
    div = np.zeros(x.shape[0])
    for i in range(d):
        e = np.zeros(d)
        e[i] = eps
        div += (fn(x + e)[:, i] - fn(x - e)[:, i]) / (2 * eps)
    return div


# -- functionals -------------------------------------------------------------------------
def _quadrature_values(field: SpaceTimeField, t: float, degree: int):
    from bridgesolve.reference import _scalar_at_quadrature

    n = field.grid.index(t)
    pts, wts = mesh_quadrature(field.mesh, degree)
    vals = _scalar_at_quadrature(field.space, field.values[n:n + 1], degree)[0]
    return pts, wts, vals


def _floored_log(vals: np.ndarray, comm) -> np.ndarray:
    """``log max(q, ε max q)``: values below round-off of the peak are floored."""
    peak = comm.allreduce(float(vals.max()) if vals.size else -np.inf, MPI.MAX)
    return np.log(np.maximum(vals, max(np.finfo(float).eps * peak, 1e-300)))


def kl_divergence(rho0, q: SpaceTimeField, *, t: float = 0.0, degree: int | None = None
                  ) -> float:
    r"""``KL(ρ0 ‖ q(·, t)) = ∫_Ω ρ0 (\log ρ0 - \log q) dx`` by mesh quadrature
    (rank-independent). ``rho0`` needs ``pdf`` and ``log_pdf`` (a Gaussian mixture);
    ``q`` is floored at ε times its peak before the logarithm."""
    if not (hasattr(rho0, "pdf") and hasattr(rho0, "log_pdf")):
        raise BridgesolveInputError(f"rho0 = {rho0!r}: expected a density with pdf and log_pdf")
    k = q.space.ufl_element().embedded_superdegree
    pts, wts, vals = _quadrature_values(q, t, degree or 2 * k + 4)
    logq = _floored_log(vals, q.comm)
    local = float(wts @ (rho0.pdf(pts) * (rho0.log_pdf(pts) - logq))) if wts.size else 0.0
    return float(q.comm.allreduce(local, MPI.SUM))


def nll(q: SpaceTimeField, samples, *, t: float = 0.0) -> float:
    """Mean negative log-likelihood ``-(1/n) Σ log q(x_i, t)`` of samples (collective;
    every rank passes its own samples; the mean is over all of them). Samples outside the
    mesh count as ``+inf``."""
    vals = q.evaluate(samples, t)
    peak = q.comm.allreduce(float(np.nanmax(q.values[q.grid.index(t)], initial=-np.inf)),
                            MPI.MAX)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isnan(vals), -np.inf,
                        np.log(np.maximum(vals, max(np.finfo(float).eps * peak, 1e-300))))
    total = q.comm.allreduce(float(-logs.sum()), MPI.SUM)
    count = q.comm.allreduce(int(logs.size), MPI.SUM)
    return total / count


def score_matching_bound(problem: Problem, score: Score, data, prior, *,
                         degree: int | None = None) -> dict:
    r"""Both terms of ``KL(ρ0‖q_1) ≤ KL(p_T‖π) + ½ ∫_0^T g² E_{p_t}|s - ∇log p_t|² dt``.

    ``p_t`` is the exact law of the data mixture under the (linear) process, the integrals
    in x are mesh quadratures and the one in t the trapezoidal rule on the problem's grid.

    Returns:
        ``{"prior_kl", "score_term", "bound", "score_error": (nt + 1,) E_{p_t}|s - ∇log p_t|²}``.
    """
    from bridgesolve.score import mixture_score

    proc = problem.process
    exact = mixture_score(data, proc)
    pts, wts = mesh_quadrature(problem.mesh, degree or 2 * problem.degree + 2)
    comm = problem.comm
    times = problem.grid.times
    errs = np.zeros(times.size)
    for n, t in enumerate(times):
        p_t = data.evolve(proc, t) if t > 0 else data
        if wts.size:
            diff = np.asarray(score(pts, float(t)), dtype=float).reshape(pts.shape) - exact(
                pts, float(t))
            errs[n] = wts @ (p_t.pdf(pts) * np.sum(diff * diff, axis=1))
    errs = comm.allreduce(errs, MPI.SUM)
    g2 = 2.0 * np.asarray(proc.diffusion(times), dtype=float) * np.ones_like(times)
    integrand = 0.5 * g2 * errs
    score_term = float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(times)))
    p_T = data.evolve(proc, float(times[-1]))
    log_pi = _log_density(prior)
    local = float(wts @ (p_T.pdf(pts) * (p_T.log_pdf(pts) - log_pi(pts)))) if wts.size else 0.0
    prior_kl = float(comm.allreduce(local, MPI.SUM))
    return {"prior_kl": prior_kl, "score_term": score_term, "bound": prior_kl + score_term,
            "score_error": errs}


def perturbed_score(score: Score, *, scale: float = 1.0, amplitude: float = 0.0,
                    wavenumber: float = 1.0) -> Score:
    r"""``scale · s(x, t) + amplitude · sin(wavenumber · x)`` (componentwise): a smooth,
    deliberately wrong score for studies of ``q_h`` against ``h``."""
    scale, amplitude, wavenumber = float(scale), float(amplitude), float(wavenumber)

    def s(x, t):
        x = np.asarray(x, dtype=float)
        return scale * np.asarray(score(x, t), dtype=float) + amplitude * np.sin(wavenumber * x)

    return s


def likelihood_table(problem: Problem, score: Score, hs: Sequence[float], data, prior, *,
                     samples=None, progress: bool = False) -> list[dict]:
    """For each h: ``KL(ρ0‖q_h)``, ``‖q_h - ρ0‖_L1`` at t = 0, the mass of ``q_h`` and, with
    ``samples`` (this rank's), their mean NLL under ``q_h`` (collective)."""
    rows = []
    for h in hs:
        t0 = time.perf_counter()
        q = generated_density(problem, score, h, prior, progress=progress,
                              levels="initial")
        row = {"h": float(h), "kl": kl_divergence(data, q),
               "l1": q.error(data, 0.0, norm="L1"), "mass": float(q.info["mass"][0])}
        if samples is not None:
            row["nll"] = nll(q, samples)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


__all__ = ["generated_density", "kl_divergence", "likelihood_table", "nll",
           "perturbed_score", "score_matching_bound"]
