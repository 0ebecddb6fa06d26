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

**h = 0: transport of log q, or characteristics.** The probability-flow ODE
``ẋ = v = f - ½ g² s`` transports densities by the instantaneous change of variables,

.. math::
    \log q_0(\cdot, t)(x) = \log \pi(X_T(x)) + \int_t^T \nabla\cdot v(X_r(x), r)\, dr,
    \qquad X_t(x) = x .

With ``levels="all"`` (the default) every level comes from the linear transport equation
of ``log q_0`` on the mesh (:func:`generated_log_density` with 𝔥 = 0, one assembly and
solve per step: O(nt), like h > 0; measured on 96² P1 with 200 steps: 33 s against 21 s
for h = 0.5, where the characteristics from every node and level took O(nt²), 179 s for
only 50 steps). With ``levels="initial"`` the characteristics are run from the mesh nodes
(Heun's method on the time grid for ``X``, the trapezoidal rule for the integral; ``∇·v``
by central differences of the callable unless ``divergence=`` is given). A mesh score
(:class:`~bridgesolve.score.VectorField`) jumps across facets, where central differences
would blow up: it is first made continuous
(:meth:`~bridgesolve.score.VectorField.continuous`). Characteristics that leave the mesh of
a mesh score give ``q = 0`` at their node (``info["lost_nodes"]`` counts them).

From ``q_h``: ``KL(ρ0 ‖ q_h(·, 0))`` by mesh quadrature (:func:`kl_divergence`) and the
score-matching bound ``KL(ρ0‖q_1) ≤ KL(p_T‖π) + ½∫ g² E_{p_t}|s - ∇log p_t|² dt``
(:func:`score_matching_bound`).

**The path-integral view (Hirono, Tanaka & Fukushima, ICML 2024).** Their interpolating
parameter 𝔥 ("Planck's constant", ``hbar=`` here) is ``h²``: noise ``√𝔥 g``, drift
``f - (1+𝔥)/2 g² s``. Every function below takes exactly one of ``h`` or ``hbar``
(:func:`hbar_of`).

* :func:`nll` — the exact ``NLL(𝔥) = -E_{ρ0} log q^𝔥_{t_min}`` in the log domain (no
  logarithm of a linear field: finite and accurate in the far tails), for a mixture
  (quadrature) or samples; :func:`generated_log_density` gives ``log q^𝔥`` at every level
  (:mod:`bridgesolve.pde.generated`), :func:`log_likelihood_characteristics` ``log q^0`` at
  any points.
* :func:`wkb_coefficient` — ``C(x)`` of ``log q^𝔥 = log q^0 + 𝔥 C + O(𝔥²)`` along the
  characteristics, in the paper's δx form and in the equivalent transport form;
  :func:`nll_slope` ``= dNLL/d𝔥|₀ = -E_{ρ0} C``.
* :func:`wasserstein2` (the 1D quantile formula, POT's exact EMD otherwise; ``squared=True``
  is the paper's plotted "W2"), :func:`wasserstein2_1d_densities` (two tabulated 1D
  densities).
* :func:`gaussian_model` — the closed form of the paper's 1D Gaussian model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from bridgesolve._dolfinx import MPI, PETSc, fem, ufl
from bridgesolve._validate import BridgesolveInputError, choice, points, positive, positive_int
from bridgesolve.pde.fokker_planck import dirichlet_dofs, initial_function, mass_form
from bridgesolve.pde.fokker_planck import transport_terms as _transport_terms
from bridgesolve.pde.stepping import Term, ThetaStepper, evolve
from bridgesolve.problem import Problem
from bridgesolve.quadrature import mesh_quadrature
from bridgesolve.sampling import check_h, user_score
from bridgesolve.spacetime import SpaceTimeField
from bridgesolve.timegrid import TimeGrid

Score = Callable[[np.ndarray, float], np.ndarray]


def generated_density(problem: Problem, score: Score, h: float, prior, *,
                      progress: bool = True, name: str = "q", levels: str = "all",
                      divergence: Callable | None = None, fd_step: float = 1e-4,
                      method: str = "auto") -> SpaceTimeField:
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
        levels: ``h = 0`` only: ``"all"`` (every level) or ``"initial"`` (the field then
            has the two levels ``t_0`` and ``T``; the characteristics still use every step
            of the problem's grid).
        divergence: ``h = 0`` characteristics only: ``∇·s(x, t)`` as a callable; default
            central differences of ``score`` with step ``fd_step``.
        method: ``h = 0`` only: ``"transport"`` (the default with ``levels="all"``: the
            linear transport equation of ``log q_0`` on the mesh,
            :func:`generated_log_density` with 𝔥 = 0, O(nt): one assembly and solve per
            step like h > 0), or ``"characteristics"`` (the default with
            ``levels="initial"``: trajectories from the nodes, O(nt) for one level but
            O(nt²) for all of them). A mesh score is first made continuous
            (:meth:`~bridgesolve.score.VectorField.continuous`) either way.

    Returns:
        A linear :class:`~bridgesolve.SpaceTimeField`; ``info`` holds ``h``, ``mass`` per
        level, timings (and for h > 0 the stepper's counts).
    """
    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    h = check_h(h)
    score = user_score(score, problem.domain.dim)
    if levels not in ("all", "initial"):
        raise BridgesolveInputError(f"levels = {levels!r}: expected 'all' or 'initial'")
    t_start = time.perf_counter()
    choice("method", method, ("auto", "transport", "characteristics"))
    if h > 0:
        field = _fokker_planck_of_sampler(problem, score, h, prior, progress, name)
    else:
        from bridgesolve.score import VectorField

        if isinstance(score, VectorField) and divergence is None:
            score = score.continuous()  # bounded derivatives, partition-independent nodes
        if method == "auto":
            method = "transport" if levels == "all" else "characteristics"
        if method == "transport":
            if levels != "all":
                raise BridgesolveInputError(
                    f"levels = {levels!r} with method = 'transport': the transport solve "
                    "gives every level (levels='all')")
            log_field = generated_log_density(problem, score, prior, hbar=0.0,
                                              progress=progress, name=name)
            field = SpaceTimeField(problem.V, problem.grid, np.exp(log_field.values),
                                   name=name, info={**log_field.info,
                                                    "log_values": log_field.values,
                                                    "equation": "log-density transport"})
        else:
            field = _characteristics(problem, score, prior, progress, name, levels,
                                     divergence, positive("fd_step", fd_step))
    field.info["h"] = h
    field.info["mass"] = field.integral()
    field.info.setdefault("timings", {})["total_s"] = time.perf_counter() - t_start
    return field


# -- h > 0 -------------------------------------------------------------------------------
def _collective(score):
    """A checked score whose problems are recorded during a (collective) interpolation on
    the mesh and raised on every rank by ``raise_pending(comm)``; other callables as they
    are."""
    from bridgesolve._validate import CheckedCallable

    if not isinstance(score, CheckedCallable):
        return score
    return CheckedCallable(score.name, score.fn, dim=score.dim, deferred=True,
                           nonnegative=score.nonnegative, finite=score.finite)


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
    s_nodes = _collective(score)

    def update(t):
        if comm.size > 1:
            # The stepper drops the previous step's solver when its operator changes;
            # petsc4py defers destroying parallel objects, and each MUMPS factorization
            # holds duplicated communicators: free them now (collective, same step on
            # every rank) instead of running out of communicators after ~1000 steps.
            PETSc.garbage_cleanup(comm)
        s_fun.interpolate(lambda x: np.asarray(s_nodes(np.ascontiguousarray(x[:d].T), t),
                                               dtype=float).reshape(-1, d).T)
        if s_nodes is not score:
            s_nodes.raise_pending(comm)  # the same error on every rank (collective)

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


def nll_of_field(q: SpaceTimeField, samples, *, t: float = 0.0) -> float:
    """Mean negative log-likelihood ``-(1/n) Σ log q(x_i, t)`` of samples under a computed
    density field (collective; every rank passes its own samples; the mean is over all of
    them). Samples outside the mesh count as ``+inf``. A linear field is floored at ε times
    its peak (round-off); prefer :func:`nll`, which works in the log domain."""
    if q.representation == "log":
        vals = q.evaluate(samples, t)
        logs = np.where(np.isnan(vals), -np.inf, vals)
        total = q.comm.allreduce(float(-logs.sum()), MPI.SUM)
        return total / q.comm.allreduce(int(logs.size), MPI.SUM)
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

    score = user_score(score, problem.domain.dim)
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
    from bridgesolve.score import VectorField

    if not callable(score):
        raise BridgesolveInputError(f"score = {score!r}: expected a callable s(x, t)")
    scale, amplitude, wavenumber = float(scale), float(amplitude), float(wavenumber)

    def s(x, t):
        x = np.asarray(x, dtype=float)
        return scale * np.asarray(score(x, t), dtype=float).reshape(x.shape) + \
            amplitude * np.sin(wavenumber * x)

    # a perturbed mesh field is NaN outside its mesh like the field: not checked for it
    s.nan_outside_mesh = isinstance(score, VectorField) or getattr(score, "nan_outside_mesh",
                                                                   False)
    return s


def likelihood_table(problem: Problem, score: Score, hs: Sequence[float], data, prior, *,
                     samples=None, progress: bool = False) -> list[dict]:
    """For each h: ``KL(ρ0‖q_h)``, ``‖q_h - ρ0‖_L1`` at t = 0, the mass of ``q_h`` and, with
    ``samples`` (this rank's), their mean NLL under ``q_h`` (collective)."""
    score = user_score(score, problem.domain.dim)
    rows = []
    for h in hs:
        t0 = time.perf_counter()
        q = generated_density(problem, score, h, prior, progress=progress,
                              levels="initial")
        row = {"h": float(h), "kl": kl_divergence(data, q),
               "l1": q.error(data, 0.0, norm="L1"), "mass": float(q.info["mass"][0])}
        if samples is not None:
            row["nll"] = nll_of_field(q, samples)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


__all__ = ["gaussian_model", "generated_density", "generated_log_density", "hbar_of",
           "kl_divergence", "likelihood_table", "log_likelihood_characteristics", "nll",
           "nll_of_field", "nll_slope", "perturbed_score", "score_matching_bound",
           "wasserstein2", "wasserstein2_1d_densities", "wkb_coefficient"]


# == the path-integral view (Hirono, Tanaka & Fukushima, ICML 2024) ======================
#
# The paper's interpolating parameter 𝔥 ("Planck's constant", ``hbar`` here) is h² of this
# module's sampler: noise √𝔥 g = h g, drift f - (1+𝔥)/2 g² s = f - (1+h²)/2 g² s. 𝔥 = 0 is
# the probability-flow ODE, 𝔥 = 1 the reverse SDE.

def hbar_of(h: float | None = None, hbar: float | None = None) -> float:
    """The paper's ``𝔥 = h²`` from exactly one of ``h`` (bridgesolve's noise level, in
    [0, 1]) or ``hbar`` (Hirono et al.'s 𝔥 ≥ 0)."""
    if (h is None) == (hbar is None):
        raise BridgesolveInputError(
            f"h = {h!r}, hbar = {hbar!r}: pass exactly one of h (noise h·g) or hbar "
            "(Hirono et al.'s 𝔥 = h²)")
    if h is not None:
        return check_h(h) ** 2
    return positive("hbar", hbar, allow_zero=True)


def generated_log_density(problem: Problem, score: Score, prior, *, h: float | None = None,
                          hbar: float | None = None, progress: bool = False,
                          name: str = "log_q", newton_options: dict | None = None
                          ) -> SpaceTimeField:
    r"""``log q^𝔥`` of the interpolating sampler at every level, in the log domain.

    Solves ``∂_τ L = ∇·b + b·∇L + 𝔥D(ΔL + |∇L|²)`` (``τ = T - t``, ``L(·, T) = log π``,
    ``b = f - (1+𝔥)/2 g² s``) by the θ-scheme with Newton per step
    (:class:`bridgesolve.pde.generated.GeneratedLogDensity`; open walls, see there). It
    never takes the logarithm of a linear field, so it is finite in the far tails, and
    with ``𝔥 = 0`` it is the O(nt) transport of ``log q_0`` (every level at the cost of
    one linear solve per step).

    Args:
        problem: domain, process, time grid (from ``t_min``) and discretization
            (``"reflecting"`` boundary, which here means open walls).
        score: ``s(x (N, d), t) -> (N, d)``: analytic, mesh or learned.
        prior: the law at ``T`` (``log_pdf``), or a callable ``log π`` of points.
        h, hbar: exactly one: ``h ∈ [0, 1]`` (noise ``h g``) or Hirono et al.'s
            ``𝔥 = h²`` (noise ``√𝔥 g``).

    Returns:
        A :class:`~bridgesolve.SpaceTimeField` in log representation; ``info`` holds
        ``hbar``, Newton iterations and timings.
    """
    from bridgesolve.pde.generated import GeneratedLogDensity

    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    score = user_score(score, problem.domain.dim)
    hb = hbar_of(h, hbar)
    t0 = time.perf_counter()
    log_pi = _log_density(prior) if hasattr(prior, "log_pdf") else prior
    if not callable(log_pi):
        raise BridgesolveInputError(
            f"prior = {prior!r}: expected a GaussianMixture (log_pdf) or a callable log π")
    d = problem.domain.dim
    nodes = problem.V.tabulate_dof_coordinates()[:, :d].copy()
    start = np.asarray(log_pi(nodes), dtype=float).reshape(-1)
    if not np.all(np.isfinite(start)):
        raise BridgesolveInputError("log π is not finite at every node of the mesh")
    ev = GeneratedLogDensity(problem, score, hb, newton_options=newton_options)
    try:
        field = ev.run(start, progress=progress, name=name)
    finally:
        ev.close()
    field.info["timings"]["total_s"] = time.perf_counter() - t0
    return field


def _data_expectation(problem: Problem, data, values_at, *, degree: int | None):
    """``E_data[values_at(x)]``: quadrature over the mesh for a density (``pdf``), the mean
    over all ranks' samples otherwise. ``values_at(x)`` is called collectively."""
    comm = problem.comm
    if hasattr(data, "pdf"):
        pts, wts = mesh_quadrature(problem.mesh, degree or 2 * problem.degree + 6)
        vals = values_at(pts)
        rho = np.asarray(data.pdf(pts), dtype=float) if wts.size else np.zeros(0)
        prod = np.where(rho > 0, rho * np.where(rho > 0, vals, 0.0), 0.0)
        local = np.array([float(wts @ prod) if wts.size else 0.0,
                          float(wts @ rho) if wts.size else 0.0])
        total = comm.allreduce(local, MPI.SUM)
        return float(total[0] / total[1]), float(total[1])
    x = np.asarray(data, dtype=float)
    if x.ndim == 1:
        x = x[:, None] if problem.domain.dim == 1 else x[None, :]
    vals = values_at(x)
    total = comm.allreduce(np.array([float(np.sum(vals)), float(vals.size)]), MPI.SUM)
    return float(total[0] / total[1]), 1.0


def nll(problem, score=None, prior=None, data=None, *, h: float | None = None,
        hbar: float | None = None, degree: int | None = None, method: str = "auto",
        progress: bool = False, t: float = 0.0) -> float:
    r"""Exact negative log-likelihood ``-E_{x∼ρ0} log q^𝔥_{t_min}(x)`` of data under the
    interpolating sampler (Hirono et al.'s NLL(𝔥)).

    ``q^𝔥_{t_min}`` is the sampler's law at the first level ``t_min`` of the problem's grid
    (likelihoods at ``t_min = 0.01`` as in the paper: ``TimeGrid.uniform(T, n,
    t_min=0.01)``). It is computed in the log domain, so the result is finite and accurate
    wherever data lie, far tails included:

    * ``method="pde"`` (default for 𝔥 > 0): :func:`generated_log_density` on the mesh;
    * ``method="characteristics"`` (default for 𝔥 = 0): ``log q_0 = log π(X_T) + ∫∇·v``
      along the probability-flow characteristics from the data points themselves
      (:func:`log_likelihood_characteristics`; no mesh interpolation).

    Args:
        problem: domain, process, time grid, discretization.
        score: ``s(x, t)``.
        prior: the law at ``T``.
        data: a density with ``pdf`` (a :class:`~bridgesolve.GaussianMixture`: the
            expectation by mesh quadrature, normalized by the mass the mesh holds) or
            samples ``(n, d)`` (each rank its own; the mean over all).
        h, hbar: exactly one: ``h`` (noise ``h g``) or the paper's ``𝔥 = h²``.
        degree: quadrature degree for densities (default ``2k + 6``).

    Returns:
        The NLL in nats (per sample; not per dimension).

    ``nll(q_field, samples, t=...)`` (a computed :class:`SpaceTimeField` first) is the
    older form, :func:`nll_of_field`.
    """
    if isinstance(problem, SpaceTimeField):
        return nll_of_field(problem, score, t=t)
    hb = hbar_of(h, hbar)
    if data is None:
        raise BridgesolveInputError("nll: pass data (a GaussianMixture or samples)")
    if method == "auto":
        method = "characteristics" if hb == 0.0 else "pde"
    if method not in ("pde", "characteristics"):
        raise BridgesolveInputError(
            f"method = {method!r}: expected 'auto', 'pde' or 'characteristics'")
    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    score = user_score(score, problem.domain.dim)
    t_min = float(problem.grid.times[0])
    if method == "characteristics":
        if hb != 0.0:
            raise BridgesolveInputError(
                f"method = 'characteristics' needs 𝔥 = 0 (got {hb!r}): use 'pde'")

        def values_at(x):
            return log_likelihood_characteristics(problem, score, prior, x)
    else:
        L = generated_log_density(problem, score, prior, hbar=hb, progress=progress)
        if hasattr(data, "pdf"):
            from bridgesolve.reference import _scalar_at_quadrature

            deg = degree or 2 * problem.degree + 6

            def values_at(x):
                return _scalar_at_quadrature(L.space, L.values[:1], deg)[0]
        else:
            def values_at(x):
                v = L.evaluate(x, t_min)
                return np.where(np.isnan(v), -np.inf, v)
    mean, _ = _data_expectation(problem, data, values_at, degree=degree)
    return -mean


# -- characteristics: log q_0 and the WKB coefficient -------------------------------------
_FD1 = np.array([1.0, -8.0, 0.0, 8.0, -1.0]) / 12.0
_FD2 = np.array([-1.0, 16.0, -30.0, 16.0, -1.0]) / 12.0
_FD3 = np.array([-1.0, 2.0, 0.0, -2.0, 1.0]) / 2.0
_FD0 = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
_FDS = [_FD0, _FD1, _FD2, _FD3]


class _Jet:
    """``v``, its first, second and third derivatives at points, by tensor-product
    5-point central differences of a vector field (5^d evaluations per point)."""

    def __init__(self, fn, d: int, eps: float):
        self.fn, self.d, self.eps = fn, d, eps
        grids = np.meshgrid(*[np.arange(-2, 3)] * d, indexing="ij")
        self.offsets = eps * np.stack([g.reshape(-1) for g in grids], axis=1)  # (5^d, d)

    def __call__(self, x: np.ndarray, t: float):
        d, eps = self.d, self.eps
        N = x.shape[0]
        pts = (x[None, :, :] + self.offsets[:, None, :]).reshape(-1, d)
        vals = np.asarray(self.fn(pts, t), dtype=float).reshape((5,) * d + (N, d))

        def deriv(alpha):
            out = vals
            for order in alpha:
                out = np.tensordot(_FDS[order], out, axes=([0], [0])) / eps**order
            return out  # (N, d)

        v = deriv((0,) * d)
        J = np.zeros((N, d, d))  # J[:, i, j] = ∂_j v_i
        H2 = np.zeros((N, d, d, d))  # H2[:, i, j, k] = ∂_j ∂_k v_i
        T3 = np.zeros((N, d, d, d))  # T3[:, i, j, k] = ∂_j ∂_k ∂_i v_i summed later
        for j in range(d):
            a = [0] * d
            a[j] += 1
            J[:, :, j] = deriv(tuple(a))
            for k in range(d):
                b = list(a)
                b[k] += 1
                H2[:, :, j, k] = deriv(tuple(b))
                for i in range(d):
                    c = list(b)
                    c[i] += 1
                    if max(c) <= 3:
                        T3[:, i, j, k] = deriv(tuple(c))[:, i]
                    else:  # not needed by the d ≤ 3 loops below
                        T3[:, i, j, k] = np.nan
        div = np.trace(J, axis1=1, axis2=2)
        grad_div = np.einsum("niij->nj", H2)  # ∂_j Σ_i ∂_i v_i
        hess_div = T3.sum(axis=1)  # ∂_j ∂_k ∇·v
        return v, J, H2, div, grad_div, hess_div


def _pf_velocity(problem: Problem, score: Score):
    proc = problem.process

    def vel(x, t):
        s = np.asarray(score(x, t), dtype=float).reshape(x.shape)
        return proc.drift(x, t) - float(proc.diffusion(t)) * s

    return vel


def _prior_jet(prior, x: np.ndarray, eps: float):
    """``log π``, ``∇ log π`` and ``∇² log π`` at points (closed form for a one-component
    Gaussian prior, else finite differences of ``log_pdf``)."""
    log_pi = _log_density(prior)
    N, d = x.shape
    logv = np.asarray(log_pi(x), dtype=float)
    if hasattr(prior, "covs") and getattr(prior, "n_components", 2) == 1:
        P = np.linalg.inv(prior.covs[0])
        return logv, -(x - prior.means[0]) @ P, np.broadcast_to(-P, (N, d, d)).copy()
    g = np.zeros((N, d))
    H = np.zeros((N, d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = eps
        g[:, i] = (np.asarray(log_pi(x + e)) - np.asarray(log_pi(x - e))) / (2 * eps)
        for j in range(d):
            f = np.zeros(d)
            f[j] = eps
            H[:, i, j] = (np.asarray(log_pi(x + e + f)) - np.asarray(log_pi(x + e - f))
                          - np.asarray(log_pi(x - e + f)) + np.asarray(log_pi(x - e - f))
                          ) / (4 * eps * eps)
    return logv, g, H


def _characteristic_pass(problem: Problem, score: Score, prior, x0: np.ndarray, *,
                         fd_step: float, substeps: int, need_wkb: bool):
    """Trajectories of ``ẋ = v = f - ½g²s`` from ``x0`` at ``t_min`` to ``T`` (Heun on the
    grid refined ``substeps`` times) and, backwards along them, ``∇L0``, ``∇²L0`` and the
    WKB quantities."""
    proc = problem.process
    vel = _pf_velocity(problem, score)
    d = x0.shape[1]
    times = problem.grid.times
    fine = np.concatenate([np.linspace(times[i], times[i + 1], substeps + 1)[:-1]
                           for i in range(times.size - 1)] + [times[-1:]])
    M = fine.size
    jet = _Jet(vel, d, fd_step)
    X = np.empty((M, *x0.shape))
    X[0] = x0
    if need_wkb:
        data = [jet(x0, float(fine[0]))]
    else:
        v0 = vel(x0, float(fine[0]))
        div0 = _div_fd(vel, x0, float(fine[0]), fd_step)
        data = [(v0, None, None, div0, None, None)]
    acc = np.zeros(x0.shape[0])
    for m in range(M - 1):
        t0, t1 = float(fine[m]), float(fine[m + 1])
        dt = t1 - t0
        v0 = data[m][0]
        pred = X[m] + dt * v0
        X[m + 1] = X[m] + 0.5 * dt * (v0 + vel(pred, t1))
        if need_wkb:
            data.append(jet(X[m + 1], t1))
        else:
            data.append((vel(X[m + 1], t1), None, None,
                         _div_fd(vel, X[m + 1], t1, fd_step), None, None))
        acc += 0.5 * dt * (data[m][3] + data[m + 1][3])
    logT, G_T, H_T = _prior_jet(prior, X[-1], fd_step)
    L0 = logT + acc
    if not need_wkb:
        return L0, None, None
    # backwards: dG/dt = -Jᵀ G - ∇(∇·v); dH/dt = -Jᵀ H - H J - Σ_k G_k ∇²v_k - ∇²(∇·v);
    # du/dt = -[D ΔL0 + ∇·v - ∇·f + G·(D G + v - f)]  (u = ∂_𝔥 log q^𝔥 at 𝔥 = 0, u(T) = 0)
    def rhs(m, G, H):
        v, J, H2, div, gdiv, hdiv = data[m]
        t = float(fine[m])
        Dt = float(proc.diffusion(t))
        f = proc.drift(X[m], t)
        divf = _div_fd(lambda y, tt: proc.drift(y, tt), X[m], t, fd_step)
        dG = -np.einsum("nij,ni->nj", J, G) - gdiv
        JtH = np.einsum("nki,nkj->nij", J, H)
        dH = -JtH - np.swapaxes(JtH, 1, 2) - np.einsum("nk,nkij->nij", G, H2) - hdiv
        lap = np.trace(H, axis1=1, axis2=2)
        du = -(Dt * lap + div - divf + np.einsum("ni,ni->n", G, Dt * G + v - f))
        return dG, dH, du, (Dt, lap, div, divf, v, f, J, gdiv)

    G, H, u = G_T.copy(), H_T.copy(), np.zeros(x0.shape[0])
    Gs = [None] * M
    Hs = [None] * M
    Gs[-1], Hs[-1] = G.copy(), H.copy()
    for m in range(M - 1, 0, -1):
        dt = float(fine[m] - fine[m - 1])
        dG1, dH1, du1, _ = rhs(m, G, H)
        Gp, Hp = G - dt * dG1, H - dt * dH1
        dG2, dH2, du2, _ = rhs(m - 1, Gp, Hp)
        G = G - 0.5 * dt * (dG1 + dG2)
        H = H - 0.5 * dt * (dH1 + dH2)
        u = u - 0.5 * dt * (du1 + du2)
        Gs[m - 1], Hs[m - 1] = G.copy(), H.copy()
    # the paper's form: δẋ = J δx - D(s - ∇L0), δx(t_min) = 0;
    # C = δx_T·∇log π(x_T) + ∫ [δx·∇(∇·v) - D(∇·s - ΔL0)] dt, with D s = f - v
    dx = np.zeros_like(x0)
    integ = np.zeros(x0.shape[0])

    def paper_terms(m, dx):
        v, J, H2, div, gdiv, hdiv = data[m]
        t = float(fine[m])
        Dt = float(proc.diffusion(t))
        f = proc.drift(X[m], t)
        divf = _div_fd(lambda y, tt: proc.drift(y, tt), X[m], t, fd_step)
        Ds = f - v
        ddx = np.einsum("nij,nj->ni", J, dx) - (Ds - Dt * Gs[m])
        lap = np.trace(Hs[m], axis1=1, axis2=2)
        integrand = np.einsum("ni,ni->n", dx, gdiv) - (divf - div) + Dt * lap
        return ddx, integrand

    for m in range(M - 1):
        dt = float(fine[m + 1] - fine[m])
        d1, i1 = paper_terms(m, dx)
        dxp = dx + dt * d1
        d2, i2 = paper_terms(m + 1, dxp)
        dx = dx + 0.5 * dt * (d1 + d2)
        integ += 0.5 * dt * (i1 + i2)
    C_paper = np.einsum("ni,ni->n", dx, G_T) + integ
    return L0, u, C_paper


def _div_fd(fn, x, t, eps):
    d = x.shape[1]
    div = np.zeros(x.shape[0])
    for i in range(d):
        e = np.zeros(d)
        e[i] = eps
        div += (np.asarray(fn(x + e, t))[:, i] - np.asarray(fn(x - e, t))[:, i]) / (2 * eps)
    return div


def log_likelihood_characteristics(problem: Problem, score: Score, prior, x, *,
                                   fd_step: float = 1e-4, substeps: int = 1) -> np.ndarray:
    r"""``log q_0(x, t_min) = log π(X_T) + ∫_{t_min}^T ∇·v(X_t, t) dt`` along the
    probability-flow characteristics ``Ẋ = v = f - ½ g² s``, ``X_{t_min} = x`` (Heun on the
    problem's grid refined ``substeps`` times; ``∇·v`` by central differences). Exact up
    to the ODE and difference errors at any points, far tails included (local; not
    collective)."""
    x = points("x", x, problem.domain.dim)
    score = user_score(score, problem.domain.dim)
    return _characteristic_pass(problem, score, prior, x, fd_step=fd_step,
                                substeps=positive_int("substeps", substeps),
                                need_wkb=False)[0]


def wkb_coefficient(problem: Problem, score: Score, prior, x, *, fd_step: float = 1e-3,
                    substeps: int = 1, form: str = "transport", full: bool = False):
    r"""The first WKB coefficient ``C(x)`` of Hirono et al.:
    ``log q^𝔥_{t_min}(x) = log q^0_{t_min}(x) + 𝔥 C(x) + O(𝔥²)`` (𝔥 = h²).

    Along the probability-flow characteristic ``ẋ = v = f - ½g²s`` from ``x`` at
    ``t_min`` to ``T``, with ``L0 = log q^0`` and its gradient ``G`` and Hessian carried
    backwards from the prior (``dG/dt = -(∇v)ᵀG - ∇(∇·v)``, ``dH/dt = -(∇v)ᵀH - H∇v -
    Σ_k G_k ∇²v_k - ∇²(∇·v)``), two equivalent forms:

    * ``form="paper"`` (PAPERS.md §A): ``C = δx_T·∇log π(x_T) + ∫ [(δx·∇)(∇·v) -
      (g²/2)(∇·s - ΔL0)] dt`` with ``δẋ = (∇v)δx - (g²/2)(s - ∇L0)``, ``δx(t_min) = 0``;
    * ``form="transport"`` (default): differentiating the log-density equation in 𝔥,
      ``C = ∫ (g²/2) [ΔL0 - ∇·s + ∇L0·(∇L0 - s)] dt`` along the same characteristic —
      the paper's form after integrating ``d(δx·∇L0)/dt`` by parts (no δx).

    They agree to the ODE error (checked in ``tests/test_wkb.py``); both vanish for the
    exact score (``s = ∇L0``). Derivatives of ``v`` up to third order are 5-point central
    differences with step ``fd_step`` (a float64 score is needed).

    Args:
        x: points ``(N, d)``.
        full: also return ``log q^0_{t_min}(x)`` and the other form, as a dict.

    Returns:
        ``C`` ``(N,)`` (or with ``full`` a dict ``{"C", "C_paper", "C_transport",
        "log_q0"}``). Local, not collective.
    """
    x = points("x", x, problem.domain.dim)
    choice("form", form, ("transport", "paper"))
    score = user_score(score, problem.domain.dim)
    L0, C_t, C_p = _characteristic_pass(problem, score, prior, x, fd_step=positive(
        "fd_step", fd_step), substeps=positive_int("substeps", substeps), need_wkb=True)
    C = C_t if form == "transport" else C_p
    if full:
        return {"C": C, "C_transport": C_t, "C_paper": C_p, "log_q0": L0}
    return C


def nll_slope(problem: Problem, score: Score, prior, data, *, degree: int | None = None,
              **kwargs) -> float:
    r"""``d NLL/d𝔥`` at 𝔥 = 0: ``-E_data C`` (:func:`wkb_coefficient`; mesh quadrature for
    a density, the mean over all ranks' samples otherwise). Collective."""
    score = user_score(score, problem.domain.dim)

    def values_at(x):
        return wkb_coefficient(problem, score, prior, x, **kwargs) if x.shape[0] else \
            np.zeros(0)

    mean, _ = _data_expectation(problem, data, values_at, degree=degree)
    return -mean


# -- Wasserstein distances ------------------------------------------------------------------
def wasserstein2(x, y, *, squared: bool = False) -> float:
    r"""The 2-Wasserstein distance between two empirical measures (uniform weights).

    1D: the quantile formula ``W2² = ∫_0^1 |F_x^{-1}(u) - F_y^{-1}(u)|² du`` (exact for
    empirical measures, any sizes); otherwise POT's exact EMD with the squared Euclidean
    cost (``pip install pot``: an optional "bench" dependency).

    Args:
        squared: return ``W2²`` (the EMD cost, which Hirono et al. plotted as "W2") instead
            of ``W2``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or not x.size or not y.size:
        raise BridgesolveInputError(
            f"samples of shapes {x.shape} and {y.shape}: expected (n, d) and (m, d)")
    if x.shape[1] == 1:
        xs, ys = np.sort(x[:, 0]), np.sort(y[:, 0])
        u = np.union1d(np.arange(1, xs.size + 1) / xs.size, np.arange(1, ys.size + 1) / ys.size)
        du = np.diff(np.concatenate([[0.0], u]))
        mid = u - 0.5 * du
        qx = xs[np.minimum((mid * xs.size).astype(int), xs.size - 1)]
        qy = ys[np.minimum((mid * ys.size).astype(int), ys.size - 1)]
        w2 = float(du @ (qx - qy) ** 2)
    else:
        try:
            import ot
        except ImportError:
            raise ImportError(
                "wasserstein2 in d > 1 needs POT (Python Optimal Transport): "
                "pip install pot (bridgesolve's 'bench' extra)") from None
        M = ot.dist(x, y, metric="sqeuclidean")
        a = np.full(x.shape[0], 1.0 / x.shape[0])
        b = np.full(y.shape[0], 1.0 / y.shape[0])
        w2 = float(ot.emd2(a, b, M, numItermax=10_000_000))
    return w2 if squared else float(np.sqrt(max(w2, 0.0)))


def wasserstein2_1d_densities(xs: np.ndarray, p: np.ndarray, q: np.ndarray, *,
                              squared: bool = False, n_quantiles: int = 20001) -> float:
    r"""``W2`` between two 1D densities tabulated on the sorted points ``xs`` (e.g. a
    generated density and the data density on a fine grid), by the quantile formula
    ``W2² = ∫_0^1 |F_p^{-1}(u) - F_q^{-1}(u)|² du`` with trapezoidal CDFs (normalized)."""
    xs = np.asarray(xs, dtype=float)

    def quantiles(f):
        f = np.maximum(np.asarray(f, dtype=float), 0.0)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(xs))])
        cdf /= cdf[-1]
        u = (np.arange(n_quantiles) + 0.5) / n_quantiles
        keep = np.concatenate([[True], np.diff(cdf) > 0])
        return np.interp(u, cdf[keep], xs[keep])

    w2 = float(np.mean((quantiles(p) - quantiles(q)) ** 2))
    return w2 if squared else float(np.sqrt(w2))


# -- the 1D Gaussian model of Hirono et al. --------------------------------------------------
def gaussian_model(*, beta: float, v0: float, eps: float, T: float, hbar: float,
                   prior_var: float = 1.0, t: float = 0.0) -> dict:
    r"""Closed form of the 1D Gaussian model: ``f = -βx/2``, ``g² = β``, data ``N(0, v₀)``,
    score ``s = -(1+ε)x/v_t`` with ``v_t = 1 + (v₀ - 1)e^{-βt}``, prior ``N(0, w_T)``.

    The sampler's law stays ``N(0, w_t)`` with
    ``dw/dt = β[(1+𝔥)(1+ε)/v_t - 1] w - 𝔥β`` (backwards from ``w_T``), solved exactly with
    ``U(t) = e^{βt} + v₀ - 1`` and ``c = (1+𝔥)(1+ε)``:

    .. math::
        w_t = U(t)^c e^{-βt}\Big[w_T U(T)^{-c} e^{βT}
              + 𝔥\,\frac{U(T)^{1-c} - U(t)^{1-c}}{1 - c}\Big]

    (``\log(U(T)/U(t))`` when ``c = 1``). Then ``NLL = ½ log(2π w_t) + v₀/(2 w_t)`` (data
    against ``q_t``) and ``W2 = |√w_t - √v₀|``.

    Returns:
        ``{"var", "nll", "w2", "w2_squared", "entropy"}`` (entropy of the data, the NLL's
        minimum).
    """
    beta, v0 = positive("beta", beta), positive("v0", v0)
    T, hb, wT = positive("T", T), positive("hbar", hbar, allow_zero=True), positive(
        "prior_var", prior_var)
    c = (1.0 + hb) * (1.0 + float(eps))

    def U(r):
        return np.exp(beta * r) + v0 - 1.0

    if abs(c - 1.0) > 1e-12:
        integ = (U(T) ** (1.0 - c) - U(t) ** (1.0 - c)) / (1.0 - c)
    else:
        integ = np.log(U(T) / U(t))
    w = float(U(t) ** c * np.exp(-beta * t) * (wT * U(T) ** (-c) * np.exp(beta * T)
                                               + hb * integ))
    nll_value = 0.5 * np.log(2 * np.pi * w) + v0 / (2 * w)
    w2 = abs(np.sqrt(w) - np.sqrt(v0))
    return {"var": w, "nll": float(nll_value), "w2": float(w2), "w2_squared": float(w2 * w2),
            "entropy": float(0.5 * np.log(2 * np.pi * np.e * v0))}
