r"""The action of a control and the identities of the action principle (PAPERS.md §C).

Premkumar ("Generative Diffusion From An Action Principle", arXiv 2310.04490) reads score
matching as optimal control. This module evaluates the action of *any* control from the
law of the process that control drives, and states each identity as a function.

**The controlled process and its action.** The reference SDE ``dX = f dt + g dW`` (forward
time ``t ∈ [0, T]``, data at ``t = 0``) and a control ``u(x, t)`` define a controlled
process ``Q^u`` whose density ``q`` is a Fokker–Planck solution on the mesh (no sampling
noise). Its action is

.. math::
    A[u] = \int \frac{1}{2 g(t)^2}\, E_{q_t} |u(\cdot, t)|^2 \, dt
         = \int \frac{1}{2 g^2} \int q(x, t)\, |u(x, t)|^2 \, dx\, dt ,

computed with ``q`` the controlled process's *own* law (mesh quadrature in ``x``, the
trapezoidal rule over the grid levels in ``t``). By Girsanov,
``KL(Q^u ‖ R) = KL(q_start ‖ r_start) + A[u]`` for the reference path measure ``R`` with
the same diffusion; ``KL(q_end ‖ r_end) ≤ KL(Q^u ‖ R)`` (data processing).

**References and time conventions** (``reference=``); ``u`` is always a function of the
forward time ``t``:

* ``"process"``: forward time. ``q(·, 0) = rho``; drift ``f + u``; start ``t = 0``, end
  ``t = T``. ``r_start = rho`` (so ``KL(Q‖R) = A``). The Schrödinger bridge is this case
  with ``u = g² ∇log φ``: its action is its kinetic energy ``KL(P*‖R_ρ0)``.
* ``"stationary"``: reverse time ``τ = T - t``. ``q(·, T) = rho``; the reference is the
  stationary (reversible) version of an OU/VP process, started from its invariant law
  ``p_∞``; its reverse-time drift is ``-f + g² ∇log p_∞`` (``= f`` for OU/VP), the
  controlled one ``-f + g² ∇log p_∞ + u``; start ``t = T``, end ``t = 0``;
  ``r_start = r_end = p_∞``. The optimal control that reproduces the marginals ``p_t``
  of the data is ``u* = g² (∇log p_t - ∇log p_∞)`` (:func:`score_control`).
* ``"reversed"``: reverse time. The reference is the time reversal of the diffusion of
  the data (``score=`` its score ``∇log p_t``): reverse-time drift ``-f + g² ∇log p_t``
  (Anderson), controlled ``-f + g² ∇log p_t + u``; ``q(·, T) = rho``; ``r_start = p_T``
  (``reference_start=``), ``r_end = p_0``. The control of a learned score ``s_θ`` is
  ``u = g² (s_θ - ∇log p_t)`` and its action is the explicit score-matching loss with
  weight ``g²/2`` under the sampler's own law.

**End cost.** Without an end condition ``u = 0`` minimizes the action; the control problem
adds the terminal cost ``Φ = log(r_end / target)`` at the end point, normalized so that it
vanishes when the process ends at ``target``:

.. math::
    E[u] = E_{q_{end}}[\log r_{end} - \log \mathrm{target}] + KL(\mathrm{target} ‖ r_{end})
         = KL(q_{end} ‖ \mathrm{target}) + \dots ,

and ``J[u] = A[u] + E[u]``. With ``P*`` the reference reweighted at its end by
``target / r_end`` (for ``"stationary"`` with target ``p_0`` and start ``p_T``: the true
reverse process), ``KL(q_start‖r_start) + J[u] = KL(Q^u ‖ P*) + KL(target ‖ r_end)``
(Girsanov plus the chain rule), so ``J`` is minimal exactly at the optimal control.

**The identities** (each a function here, each a test in ``tests/test_action.py``):

1. Minimal action = KL (de Bruijn): for OU/VP with the stationary reference,
   ``A[u*] = ∫ (g²/2) E_{p_t}|∇log p_t - ∇log p_∞|² dt = KL(p_0‖p_∞) - KL(p_T‖p_∞)``
   (:func:`minimal_action`, :func:`relative_fisher_rate`).
2. Excess action = explicit score matching: for the control ``g² (s - ∇log p_∞)`` started
   from ``p_T``, ``J[u] - A* = ∫ (g²/2) E_{q_t}|s - ∇log p_t|² dt`` exactly with the
   sampler's own law ``q``; the validator's ``∫ (g²/2) E_{p_t}|s - ∇log p_t|² dt``
   (:func:`excess_action`) agrees with it to third order in the score error. Along
   ``s = ∇log p + δη``, ``J(δ) = A* + κ δ² + O(δ³)`` with
   ``κ = ∫ (g²/2) E_{p_t}|η|² dt`` (:func:`perturbation_curvature`).
3. ``DSM - ESM = d/σ_t² - E_{p_t}|∇log p_t|²`` at every t for every score
   (:func:`denoising_gap`; the denoising loss by Gauss–Hermite quadrature,
   :func:`denoising_loss`).
4. The Schrödinger bridge's kinetic energy ``½∫g² E_ρ|∇log φ|² dt = KL(P*‖R)``; for
   Gaussians with a Brownian reference it equals the static entropic-OT value
   (:func:`bridgesolve.densities.gaussian_bridge_cost`): :func:`gaussian_bridge_kinetic`
   computes the dynamic side independently (below).

**Gaussian closed forms.** A Gaussian law under a linear process driven by a linear control
``u = K(t) x + b(t)`` stays Gaussian ``N(m, P)`` with
``ṁ = (K - k I) m + b + k c``, ``Ṗ = (K - kI) P + P (K - kI)ᵀ + g² I`` in the direction of
motion and action rate ``(tr(K P Kᵀ) + |K m + b|²) / (2 g²)``
(:func:`gaussian_control_action`, integrated to 1e-12). For the Gaussian Schrödinger bridge
between ``N(m_0, Σ_0)`` and ``N(m_1, Σ_1)`` (``dX = σ dW``) the optimal control is affine,
``u = H_t (x - μ_t) + μ̇_t`` with ``H_t`` symmetric (a gradient of the quadratic
``σ² log φ``); its Fokker–Planck equation ``Σ̇ = H Σ + Σ H + σ² I`` determines ``H_t`` from
the known marginal covariance ``Σ_t`` as the solution of a Lyapunov equation, and the
kinetic energy is ``∫ (tr(H Σ H) + |μ̇|²) / (2σ²) dt``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._validate import BridgesolveInputError, choice
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import OU, VP, Process

#: ``control_action(reference=...)``.
ACTION_REFERENCES = ("process", "stationary", "reversed")

Control = Callable[[np.ndarray, float], np.ndarray]


def trapezoid_weights(t: np.ndarray) -> np.ndarray:
    """Weights ``ω`` with ``Σ ω_n f(t_n) ≈ ∫ f`` (trapezoidal rule; any spacing)."""
    t = np.asarray(t, dtype=float)
    w = np.zeros_like(t)
    dt = np.diff(t)
    w[:-1] += 0.5 * dt
    w[1:] += 0.5 * dt
    return w


# -- laws --------------------------------------------------------------------------------
def stationary_law(process: Process, dim: int) -> GaussianMixture:
    """The invariant law ``p_∞ = N(c, (D/k) I)`` of an OU or VP process (whose reverse-time
    stationary drift ``-f + g²∇log p_∞`` equals ``f``)."""
    if isinstance(process, OU):
        var = process.sigma**2 / (2.0 * process.theta)
    elif isinstance(process, VP) and type(process) is VP:
        var = 1.0
    else:
        raise BridgesolveInputError(
            f"process {process!r}: the stationary reference needs an OU or VP process "
            "(a reversible process with an invariant Gaussian law)")
    c = float(getattr(process, "center", 0.0))
    return GaussianMixture([1.0], [[c] * dim], [var])


def _fields(law, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(log p, ∇log p)`` at points: einsum-vectorized for mixtures (no BLAS calls, which
    oversubscribe shared machines), else ``(law.log_pdf(x), None)``."""
    if isinstance(law, GaussianMixture):
        from bridgesolve.learn._validation_bundles import mixture_fields  # NumPy only

        return mixture_fields(law, x)
    return np.asarray(law.log_pdf(x), dtype=float), None


def _log_pdf(law, x):
    return _fields(law, x)[0]


def _law_at(data: GaussianMixture, process: Process, t: float) -> GaussianMixture:
    return data.evolve(process, float(t)) if t > 0 else data


def gaussian_kl(m0, S0, m1, S1) -> float:
    """``KL(N(m0, S0) ‖ N(m1, S1))``."""
    m0, m1 = np.atleast_1d(m0).astype(float), np.atleast_1d(m1).astype(float)
    d = m0.size
    S0, S1 = np.reshape(S0, (d, d)), np.reshape(S1, (d, d))
    S1i = np.linalg.inv(S1)
    dm = m1 - m0
    return float(0.5 * (np.trace(S1i @ S0) + dm @ S1i @ dm - d
                        + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]))


def _quadrature(problem, degree: int | None):
    from bridgesolve.quadrature import mesh_quadrature

    return mesh_quadrature(problem.mesh, degree or 2 * problem.degree + 4)


def _allsum(comm, value):
    from bridgesolve._dolfinx import MPI

    return comm.allreduce(value, MPI.SUM)


def kl_quadrature(p, q, problem, *, degree: int | None = None) -> float:
    """``KL(p ‖ q) = ∫ p (log p - log q)`` by mesh quadrature (``p``, ``q`` with ``pdf`` and
    ``log_pdf``; a single Gaussian pair uses the closed form). Rank-independent."""
    if (isinstance(p, GaussianMixture) and isinstance(q, GaussianMixture)
            and p.n_components == 1 and q.n_components == 1):
        return gaussian_kl(p.means[0], p.covs[0], q.means[0], q.covs[0])
    pts, w = _quadrature(problem, degree)
    if w.size:
        lp = _log_pdf(p, pts)
        local = float(w @ (np.exp(lp) * (lp - _log_pdf(q, pts))))
    else:
        local = 0.0
    return float(_allsum(problem.comm, local))


# -- controls ----------------------------------------------------------------------------
def _as_callable(control, dim: int, name: str = "control"):
    """``(fn(x (N, d), t) -> (N, d), kind)`` for a callable, a VectorField or a torch
    module (through :mod:`bridgesolve.learn`, imported only then)."""
    score_mod = sys.modules.get("bridgesolve.score")
    if score_mod is not None and isinstance(control, score_mod.VectorField):
        return control, "vectorfield"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(control, torch.nn.Module):
        from bridgesolve.learn._validation_scores import as_numpy_score

        return as_numpy_score(control, device="cpu"), "torch"
    if not callable(control):
        raise BridgesolveInputError(
            f"{name} = {control!r}: expected a callable u(x, t), a VectorField or a torch "
            "module")

    def fn(x, t):
        out = np.asarray(control(x, t), dtype=float)
        if out.shape != x.shape:
            out = out.reshape(x.shape) if out.size == x.size else out
        if out.shape != x.shape:
            raise BridgesolveInputError(
                f"{name}(x, t) returned shape {out.shape}: expected {x.shape}, the shape of x")
        return out

    return fn, "callable"


def score_control(score, process: Process, *, reference: str = "stationary",
                  reference_score=None, dim: int | None = None) -> Control:
    """The control of a score ``s`` relative to a reference.

    ``"stationary"``: ``u = g² (s - ∇log p_∞)`` (the reverse SDE ``-f + g² s`` written
    against the stationary OU/VP reference); ``"reversed"``: ``u = g² (s - s_ref)`` with
    ``reference_score`` the reference's own score ``∇log p_t``; ``"process"``: ``u = g² s``.
    ``score`` may be a callable, a VectorField or a torch module (the model returns scores).
    """
    choice("reference", reference, ACTION_REFERENCES)
    fn, _ = _as_callable(score, dim or 1, "score")
    ref_fn = None
    if reference == "reversed":
        if reference_score is None:
            raise BridgesolveInputError("reference='reversed' needs reference_score= (∇log p_t)")
        ref_fn, _ = _as_callable(reference_score, dim or 1, "reference_score")
    elif reference == "stationary":
        stationary_law(process, 1)  # checks the process
    var = (stationary_law(process, 1).covs[0, 0, 0] if reference == "stationary" else None)
    c = float(getattr(process, "center", 0.0))

    def u(x, t):
        x = np.asarray(x, dtype=float)
        g2 = float(process.g(t)) ** 2
        s = np.asarray(fn(x, t), dtype=float).reshape(x.shape)
        if reference == "stationary":
            return g2 * (s + (x - c) / var)
        if reference == "reversed":
            return g2 * (s - np.asarray(ref_fn(x, t), dtype=float).reshape(x.shape))
        return g2 * s

    return u


# -- the controlled Fokker–Planck solve -------------------------------------------------------
@dataclass
class ActionResult:
    """What :func:`control_action` measured.

    Attributes:
        action: ``A[u] = ∫ E_{q_t}|u|²/(2g²) dt``.
        rate: ``E_{q_t}|u|²/(2g²)`` at every grid level (forward-time order).
        times: the grid levels.
        reference: ``"process"``, ``"stationary"`` or ``"reversed"``.
        kl_start: ``KL(q_start ‖ r_start)`` (None when ``r_start`` is unknown).
        path_kl: ``kl_start + action`` = ``KL(Q^u ‖ R)`` (Girsanov).
        kl_end: ``KL(q_end ‖ target)`` (None without ``target``).
        kl_end_reference: ``KL(q_end ‖ r_end)`` ≤ ``path_kl`` (None when unknown).
        end_cost: ``E_{q_end}[log r_end - log target] + KL(target ‖ r_end)`` (None without
            ``target`` and ``r_end``); ``total = action + end_cost``.
        density: the controlled density ``q`` (a SpaceTimeField).
        info: masses, timings, the solver's counts.
    """

    action: float
    rate: np.ndarray
    times: np.ndarray
    reference: str
    kl_start: float | None = None
    path_kl: float | None = None
    kl_end: float | None = None
    kl_end_reference: float | None = None
    end_cost: float | None = None
    density: object = field(default=None, repr=False)
    info: dict = field(default_factory=dict)

    @property
    def total(self) -> float | None:
        """``J[u] = action + end_cost`` (None without an end cost)."""
        return None if self.end_cost is None else self.action + self.end_cost

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in ("action", "reference", "kl_start", "path_kl",
                                              "kl_end", "kl_end_reference", "end_cost",
                                              "total")}


def _controlled_density(problem, rho, control_fn, kind, reference, extra_fn, progress, name):
    """``q`` of the controlled process (module doc), stepped by the θ-scheme engine with the
    control term re-assembled at every step midpoint."""
    from bridgesolve._dolfinx import PETSc, fem, ufl
    from bridgesolve.pde.fokker_planck import (
        dirichlet_dofs,
        initial_function,
        mass_form,
        transport_terms,
    )
    from bridgesolve.pde.stepping import Term, ThetaStepper, evolve
    from bridgesolve.spacetime import SpaceTimeField

    proc = problem.process
    V, mesh, d = problem.V, problem.mesh, problem.domain.dim
    backward = reference != "process"
    q_init = initial_function(problem, rho, name)
    base = transport_terms(problem, adjoint=False)  # [diffusion ∫D, (drift -(u f0,∇v), ∫k)]
    terms = [base[0]]
    if len(base) > 1:
        if reference == "process":
            terms.append(base[1])
        elif reference == "stationary":
            # reverse-time drift -f + g²∇log p_∞ = +f: the forward drift matrix, rate +∫k
            terms.append(Term(base[1].form, proc.drift_rate_integral))
        else:
            terms.append(Term(base[1].form, lambda a, b: -proc.drift_rate_integral(a, b)))
    W = fem.functionspace(mesh, ("Lagrange", problem.degree, (d,)))
    w_fun = fem.Function(W, name="control")
    u_, v_ = ufl.TrialFunction(V), ufl.TestFunction(V)
    form = fem.form(-u_ * ufl.inner(w_fun, ufl.grad(v_)) * ufl.dx)
    comm = problem.comm

    def total_drift(x, t):
        out = np.asarray(control_fn(x, t), dtype=float).reshape(x.shape)
        if extra_fn is not None:
            out = out + np.asarray(extra_fn(x, t), dtype=float).reshape(x.shape)
        return out

    def update(t):
        if comm.size > 1:
            PETSc.garbage_cleanup(comm)  # see bridgesolve.likelihood
        w_fun.interpolate(lambda x: total_drift(np.ascontiguousarray(x[:d].T), t).T)

    terms.append(Term(form, lambda a, b: b - a, update=update))
    bc = dirichlet_dofs(problem)
    stepper = ThetaStepper(mass_form(problem), terms, problem.theta, dirichlet_dofs=bc,
                           petsc_options=problem.petsc_options)
    if bc is not None:
        q_init.x.array[bc] = 0.0
        q_init.x.scatter_forward()
    try:
        values = evolve(stepper, problem.grid, q_init, backward=backward,
                        desc=f"controlled density ({reference})", progress=progress)
        mass_vector = stepper.row_sums()
        counts = {"factorizations": stepper.factorizations, "assemblies": stepper.assemblies}
    finally:
        stepper.destroy()
    if not np.all(np.isfinite(values)):
        raise FloatingPointError("the controlled density became non-finite (control blew up?)")
    field_ = SpaceTimeField(V, problem.grid, values, name=name, info=counts)
    field_.info["mass"] = field_.integral(mass_vector)
    return field_


def _control_at_quadrature(control_fn, kind, pts, degree, times):
    """``(levels, Nq, d)`` values of the control at this rank's quadrature points."""
    if kind == "vectorfield" and control_fn.mesh is not None:
        _, _, vals = control_fn.at_quadrature(degree, times=times)
        return vals
    out = np.empty((len(times), *pts.shape))
    for n, t in enumerate(times):
        out[n] = np.asarray(control_fn(pts, float(t)), dtype=float).reshape(pts.shape) \
            if pts.shape[0] else 0.0
    return out


def _log_floor(vals: np.ndarray, comm) -> np.ndarray:
    from bridgesolve._dolfinx import MPI

    peak = comm.allreduce(float(vals.max()) if vals.size else -np.inf, MPI.MAX)
    return np.log(np.maximum(vals, max(np.finfo(float).eps * peak, 1e-300)))


def control_action(problem, rho, control, *, reference: str = "process", score=None,
                   target=None, reference_start=None, reference_end=None,
                   degree: int | None = None, progress: bool = False,
                   name: str = "q") -> ActionResult:
    r"""The action ``E∫|u|²/(2g²) dt`` of ``control`` under the law of the process it drives.

    Args:
        problem: domain, reference process, time grid and discretization; the controlled
            Fokker–Planck equation is solved on it (module doc, reflecting or absorbing).
        rho: the law where the controlled process starts (``t = 0`` for ``"process"``,
            ``t = T`` otherwise): a GaussianMixture, a callable density or an FE function.
        control: ``u(x (N, d), t) -> (N, d)`` in forward time ``t``: a callable, a mesh
            :class:`~bridgesolve.score.VectorField` (on the problem's mesh and grid: its
            quadrature values are exact) or a torch module (``model(x, t)`` returns ``u``;
            use :func:`score_control` for a score network). Collective callables (a
            VectorField) are called on every rank at the same times.
        reference: ``"process"``, ``"stationary"`` or ``"reversed"`` (module doc).
        score: ``"reversed"`` only: the reference's score ``∇log p_t`` (callable or
            VectorField).
        target: the law the controlled process should end in (``ρ1`` of a bridge, the data
            ``p_0`` of a generative process), for ``kl_end`` and ``end_cost``.
        reference_start, reference_end: the reference's laws at the start and end;
            defaults: ``"process"``: ``rho`` and (for a mixture under a linear process) its
            evolution to ``T``; ``"stationary"``: ``p_∞`` both; ``"reversed"``: none
            (pass ``p_T`` and ``p_0``).
        degree: quadrature degree in space (default ``2k + 4``).
        progress: a progress bar over the time steps (rank 0).
        name: the controlled density's name.

    Returns:
        An :class:`ActionResult`. Rank-independent numbers; collective.
    """
    from bridgesolve.problem import Problem
    from bridgesolve.reference import _scalar_at_quadrature

    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    choice("reference", reference, ACTION_REFERENCES)
    proc = problem.process
    d = problem.domain.dim
    t_start = time.perf_counter()
    control_fn, kind = _as_callable(control, d)
    extra_fn = None
    if reference == "reversed":
        if score is None:
            raise BridgesolveInputError(
                "reference='reversed': pass score= (the reference's own score ∇log p_t); its "
                "reverse-time drift is -f + g² ∇log p_t")
        s_fn, _ = _as_callable(score, d, "score")

        def extra_fn(x, t):  # noqa: F811 - the reference's g²∇log p_t
            return float(proc.g(t)) ** 2 * np.asarray(s_fn(x, t), dtype=float).reshape(x.shape)
    elif reference == "stationary":
        p_inf = stationary_law(proc, d)
        reference_start = reference_start if reference_start is not None else p_inf
        reference_end = reference_end if reference_end is not None else p_inf
    else:
        reference_start = reference_start if reference_start is not None else rho
        if (reference_end is None and isinstance(rho, GaussianMixture) and proc.linear):
            reference_end = rho.evolve(proc, problem.grid.T)
    q = _controlled_density(problem, rho, control_fn, kind, reference, extra_fn, progress,
                            name)
    solve_s = time.perf_counter() - t_start

    # -- the action by quadrature -----------------------------------------------------------
    k = problem.degree
    degree = int(degree or 2 * k + 4)
    pts, w = _quadrature(problem, degree)
    times = problem.grid.times
    qv = _scalar_at_quadrature(q.space, q.values, degree)
    uq = _control_at_quadrature(control_fn, kind, pts, degree, times)
    g2 = np.array([float(proc.g(t)) ** 2 for t in times])
    local = (qv * np.sum(uq * uq, axis=2)) @ w if w.size else np.zeros(times.size)
    rate = np.asarray(_allsum(problem.comm, local), dtype=float) / (2.0 * g2)
    action = float(trapezoid_weights(times) @ rate)

    # -- the KL terms ---------------------------------------------------------------------------
    end = 0 if reference != "process" else -1
    start = -1 if reference != "process" else 0
    out = ActionResult(action=action, rate=rate, times=np.asarray(times), reference=reference,
                       density=q)

    def kl_of_level(n, law):
        vals = qv[n]
        logq = _log_floor(vals, problem.comm)
        loc = float(w @ (vals * (logq - _log_pdf(law, pts)))) if w.size else 0.0
        return float(_allsum(problem.comm, loc))

    if reference == "process" and reference_start is rho:
        out.kl_start = 0.0  # the same start law by definition
        out.path_kl = action
    elif reference_start is not None and hasattr(reference_start, "log_pdf"):
        out.kl_start = kl_of_level(start, reference_start)
        out.path_kl = out.kl_start + action
    if target is not None:
        out.kl_end = kl_of_level(end, target)
    if reference_end is not None and hasattr(reference_end, "log_pdf"):
        out.kl_end_reference = kl_of_level(end, reference_end)
        if target is not None:
            vals = qv[end]
            loc = (float(w @ (vals * (_log_pdf(reference_end, pts) - _log_pdf(target, pts))))
                   if w.size else 0.0)
            out.end_cost = (float(_allsum(problem.comm, loc))
                            + kl_quadrature(target, reference_end, problem, degree=degree))
    out.info = {"mass": q.info["mass"], "factorizations": q.info["factorizations"],
                "timings": {"solve_s": solve_s, "total_s": time.perf_counter() - t_start},
                "control": kind, "quadrature_degree": degree}
    return out


# -- identities ------------------------------------------------------------------------------
def relative_fisher_rate(data: GaussianMixture, process: Process, times, *, problem=None,
                         degree: int | None = None) -> np.ndarray:
    r"""``(g²/2) E_{p_t}|∇log p_t - ∇log p_∞|²`` at ``times`` (= ``-d/dt KL(p_t‖p_∞)``):
    for one Gaussian ``N(m_t, Σ_t)`` and ``p_∞ = N(c, v I)`` the closed form
    ``(g²/2)(tr((I/v - Σ_t^{-1})² Σ_t) + |m_t - c|²/v²)``; mesh quadrature of the mixture
    otherwise (``problem`` needed)."""
    d = data.dim
    pinf = stationary_law(process, d)
    v = pinf.covs[0, 0, 0]
    c = pinf.means[0]
    out = []
    if data.n_components > 1:
        if problem is None:
            raise BridgesolveInputError("a mixture's relative Fisher information needs problem=")
        pts, w = _quadrature(problem, degree)
    for t in np.atleast_1d(times):
        law = _law_at(data, process, t)
        g2 = float(process.g(t)) ** 2
        if data.n_components == 1:
            S, m = law.covs[0], law.means[0] - c
            Si = np.linalg.inv(S)
            # E|-Σ⁻¹y + (y + m)/v|², y ~ N(0, Σ): tr((I/v - Σ⁻¹)² Σ) + |m|²/v²
            M = np.eye(d) / v - Si
            out.append(0.5 * g2 * (np.trace(M @ M @ S) + m @ m / v**2))
        else:
            loc = 0.0
            if w.size:
                lp, sc = _fields(law, pts)
                diff = sc + (pts - c) / v
                loc = float(w @ (np.exp(lp) * np.sum(diff * diff, axis=1)))
            out.append(0.5 * g2 * _allsum(problem.comm, loc))
    return np.asarray(out, dtype=float)


def minimal_action(data: GaussianMixture, process: Process, T: float, *, problem=None,
                   degree: int | None = None) -> dict:
    r"""Identity 1: ``A* = KL(p_0‖p_∞) - KL(p_T‖p_∞)`` for OU/VP (closed form for one
    Gaussian, mesh quadrature of ``problem`` otherwise).

    Returns ``{"kl0", "klT", "value"}``."""
    d = data.dim
    pinf = stationary_law(process, d)
    pT = data.evolve(process, float(T))
    if data.n_components == 1:
        kl0 = gaussian_kl(data.means[0], data.covs[0], pinf.means[0], pinf.covs[0])
        klT = gaussian_kl(pT.means[0], pT.covs[0], pinf.means[0], pinf.covs[0])
    else:
        if problem is None:
            raise BridgesolveInputError("a mixture's KL needs problem= (mesh quadrature)")
        kl0 = kl_quadrature(data, pinf, problem, degree=degree)
        klT = kl_quadrature(pT, pinf, problem, degree=degree)
    return {"kl0": kl0, "klT": klT, "value": kl0 - klT}


def optimal_control(data: GaussianMixture, process: Process) -> Control:
    """``u* = g² (∇log p_t - ∇log p_∞)`` of the data mixture under OU/VP (stationary
    reference)."""
    from bridgesolve.score import mixture_score

    return score_control(mixture_score(data, process), process, reference="stationary")


def excess_action(score, data: GaussianMixture, process: Process, times, *, problem,
                  degree: int | None = None) -> dict:
    r"""Identity 2's right side under ``p``: ``∫ (g²/2) E_{p_t}|s - ∇log p_t|² dt`` (the
    validator's ESM with weight ``g²/2``; trapezoidal rule on ``times``, mesh quadrature).

    Returns ``{"rate": per time, "value"}``."""
    from bridgesolve.score import mixture_score

    exact = mixture_score(data, process)
    fn, _ = _as_callable(score, data.dim, "score")
    pts, w = _quadrature(problem, degree)
    times = np.asarray(times, dtype=float)
    rate = np.zeros(times.size)
    for n, t in enumerate(times):
        if w.size:
            diff = np.asarray(fn(pts, float(t)), float).reshape(pts.shape) - exact(pts, float(t))
            dens = np.exp(_log_pdf(_law_at(data, process, t), pts))
            rate[n] = 0.5 * float(process.g(t)) ** 2 * float(
                w @ (dens * np.sum(diff * diff, axis=1)))
    rate = np.asarray(_allsum(problem.comm, rate), dtype=float)
    return {"rate": rate, "value": float(trapezoid_weights(times) @ rate)}


def perturbation_curvature(eta, data: GaussianMixture, process: Process, times, *, problem,
                           degree: int | None = None) -> float:
    r"""``κ = ∫ (g²/2) E_{p_t}|η|² dt``: ``J(δ) = A* + κ δ² + O(δ³)`` along
    ``s = ∇log p + δ η``."""
    from bridgesolve.score import mixture_score

    exact = mixture_score(data, process)
    fn, _ = _as_callable(eta, data.dim, "eta")
    return excess_action(lambda x, t: exact(x, t) + np.asarray(fn(x, t), float).reshape(x.shape),
                         data, process, times, problem=problem, degree=degree)["value"]


def denoising_gap(data: GaussianMixture, process: Process, t: float, *, points=None,
                  weights=None) -> float:
    r"""Identity 3: ``C_t = DSM(t) - ESM(t) = d/σ_t² - E_{p_t}|∇log p_t|²`` (per unit
    weight; kernel ``N(a_t x_0 + (1 - a_t) c, σ_t² I)``), independent of the score. Closed
    form ``d/σ² - tr Σ_t^{-1}`` for one Gaussian; quadrature (``points``, ``weights``)
    otherwise."""
    law = _law_at(data, process, t)
    var = process.transition(float(t))[1]
    d = data.dim
    if data.n_components == 1:
        return float(d / var - np.trace(np.linalg.inv(law.covs[0])))
    if points is None or weights is None:
        raise BridgesolveInputError("a mixture's denoising gap needs points= and weights=")
    lp, s = _fields(law, np.asarray(points, dtype=float))
    return float(d / var - weights @ (np.exp(lp) * np.sum(s * s, axis=1)))


def denoising_loss(score, data: GaussianMixture, process: Process, t: float, *,
                   nodes: int = 12) -> float:
    r"""``DSM(t) = E_{x_0} E_ε |s(a x_0 + (1-a) c + σ ε, t) + ε/σ|²`` by tensor
    Gauss–Hermite quadrature over ``(x_0, ε)`` (``nodes`` per dimension, ``nodes^{2d}``
    per mixture component): no Monte Carlo noise, spectrally accurate for smooth scores."""
    d = data.dim
    a, var = process.transition(float(t))
    sig = np.sqrt(var)
    c = float(getattr(process, "center", 0.0))
    z, wz = np.polynomial.hermite_e.hermegauss(int(nodes))
    wz = wz / wz.sum()
    grids = np.meshgrid(*([z] * (2 * d)), indexing="ij")
    wgrid = np.meshgrid(*([wz] * (2 * d)), indexing="ij")
    Z = np.stack([g.ravel() for g in grids], axis=1)
    Wt = np.prod(np.stack([g.ravel() for g in wgrid], axis=1), axis=1)
    fn, _ = _as_callable(score, d, "score")
    total = 0.0
    for wk, m, L in zip(data.weights, data.means, np.linalg.cholesky(data.covs), strict=True):
        x0 = m + Z[:, :d] @ L.T
        eps = Z[:, d:]
        x = a * x0 + (1 - a) * c + sig * eps
        r = np.asarray(fn(x, float(t)), float).reshape(x.shape) + eps / sig
        total += wk * float(Wt @ np.sum(r * r, axis=1))
    return total


def explicit_loss(score, data: GaussianMixture, process: Process, t: float, *,
                  points, weights) -> float:
    """``ESM(t) = E_{p_t}|s - ∇log p_t|²`` by the quadrature ``points``, ``weights``."""
    law = _law_at(data, process, t)
    fn, _ = _as_callable(score, data.dim, "score")
    lp, sc = _fields(law, np.asarray(points, dtype=float))
    diff = np.asarray(fn(points, float(t)), float).reshape(points.shape) - sc
    return float(weights @ (np.exp(lp) * np.sum(diff * diff, axis=1)))


# -- Gaussian closed forms -----------------------------------------------------------------
def gaussian_control_action(mean, cov, process: Process, K, b, *, T: float,
                            reference: str = "process", target=None, data=None,
                            rtol: float = 1e-12) -> dict:
    r"""The action of the linear control ``u = K(t) x + b(t)`` for a Gaussian start law under
    a linear process (module doc: moment ODEs, integrated by ``solve_ivp`` to ``rtol``).

    Args:
        mean, cov: the start law (at ``t = 0`` for ``"process"``, at ``T`` otherwise).
        K, b: callables of forward ``t`` returning ``(d, d)`` and ``(d,)``.
        reference: ``"process"`` (forward), ``"stationary"`` (reverse time, drift ``f``) or
            ``"reversed"`` (reverse time, drift ``-f + g²∇log p_t`` of the Gaussian data
            ``data = (mean, cov)``: the stationary drift plus the data's optimal control).
        target: optional ``(mean, cov)`` for ``kl_end`` and the end cost (not for
            ``"reversed"``, whose end law is the data's).

    Returns:
        ``{"action", "mean_end", "cov_end", "kl_end", "end_cost", "total"}``.
    """
    from scipy.integrate import solve_ivp

    choice("reference", reference, ACTION_REFERENCES)
    m0 = np.atleast_1d(np.asarray(mean, float))
    if reference == "reversed":
        if data is None:
            raise BridgesolveInputError("reference='reversed' needs data=(mean, cov)")
        Kr, br = gaussian_optimal_control(data[0], data[1], process)
    else:
        Kr = br = None
    d = m0.size
    P0 = np.reshape(np.asarray(cov, float), (d, d))
    c = float(getattr(process, "center", 0.0))
    backward = reference != "process"

    def tt(s):  # forward time of the running time s
        return T - s if backward else s

    def rhs(s, y):
        t = tt(s)
        m, P = y[:d], y[d:d + d * d].reshape(d, d)
        kr = float(process.drift_rate(t))
        g2 = float(process.g(t)) ** 2
        Kt, bt = np.asarray(K(t), float).reshape(d, d), np.asarray(b(t), float).reshape(d)
        A = Kt - kr * np.eye(d)
        dm = A @ m + bt + kr * c
        if Kr is not None:  # the reversed reference's own drift g²(∇log p_t - ∇log p_∞)
            A = A + Kr(t)
            dm = A @ m + bt + br(t) + kr * c
        dP = A @ P + P @ A.T + g2 * np.eye(d)
        um = Kt @ m + bt
        rate = (np.trace(Kt @ P @ Kt.T) + um @ um) / (2.0 * g2)
        return np.concatenate([dm, dP.ravel(), [rate]])

    y0 = np.concatenate([m0, P0.ravel(), [0.0]])
    sol = solve_ivp(rhs, (0.0, T), y0, method="DOP853", rtol=rtol, atol=1e-14)
    y = sol.y[:, -1]
    m, P = y[:d], y[d:d + d * d].reshape(d, d)
    out = {"action": float(y[-1]), "mean_end": m, "cov_end": 0.5 * (P + P.T)}
    if target is not None and reference != "reversed":
        tm, tS = np.atleast_1d(target[0]).astype(float), np.reshape(target[1], (d, d))
        out["kl_end"] = gaussian_kl(m, P, tm, tS)
        if backward:
            pinf = stationary_law(process, d)
            rm, rS = pinf.means[0], pinf.covs[0]
        else:
            a, var = process.transition(T)
            rm = a * m0 + (1 - a) * c
            rS = a * a * P0 + var * np.eye(d)
        # E_q[log r - log target] + KL(target ‖ r) = KL(q‖target) - KL(q‖r) + KL(target‖r)
        out["end_cost"] = (out["kl_end"] - gaussian_kl(m, P, rm, rS)
                           + gaussian_kl(tm, tS, rm, rS))
        out["total"] = out["action"] + out["end_cost"]
    return out


def gaussian_optimal_control(mean, cov, process: Process):
    """``(K(t), b(t))`` of ``u* = g²(∇log p_t - ∇log p_∞)`` for Gaussian data ``N(mean,
    cov)`` under OU/VP: ``K = g²(I/v - Σ_t^{-1})``, ``b = g²(Σ_t^{-1} m_t - c/v)``."""
    data = GaussianMixture([1.0], [np.atleast_1d(mean)], [np.atleast_2d(cov)])
    d = data.dim
    pinf = stationary_law(process, d)
    v, c = pinf.covs[0, 0, 0], pinf.means[0]

    def parts(t):
        law = _law_at(data, process, t)
        Si = np.linalg.inv(law.covs[0])
        return float(process.g(t)) ** 2, Si, law.means[0]

    def K(t):
        g2, Si, _ = parts(t)
        return g2 * (np.eye(d) / v - Si)

    def b(t):
        g2, Si, m = parts(t)
        return g2 * (Si @ m - c / v)

    return K, b


def gaussian_bridge_kinetic(mean0, cov0, mean1, cov1, sigma: float, T: float = 1.0, *,
                            nodes: int = 64, times=None) -> dict:
    r"""The kinetic energy ``½∫ g² E_ρ|∇log φ|² dt`` of the Gaussian Schrödinger bridge
    (Brownian reference ``dX = σ dW``), computed dynamically: the control is
    ``u = H_t (x - μ_t) + μ̇_t`` with ``H_t`` the symmetric solution of the Lyapunov equation
    ``H Σ_t + Σ_t H = Σ̇_t - σ² I`` (``Σ_t`` from :func:`bridgesolve.densities.gaussian_bridge`,
    ``Σ̇`` exact), and the energy is ``∫ (tr(H Σ H) + |μ̇|²)/(2σ²) dt`` by ``nodes``-point
    Gauss–Legendre. Equals ``gaussian_bridge_cost`` (the static entropic-OT value).

    Returns ``{"value", "times", "rate" (at times), "H" (callable of t)}``."""
    from scipy.linalg import solve_continuous_lyapunov

    from bridgesolve.densities import _gaussian_coupling

    m0, m1, S0, S1, C, eps = _gaussian_coupling(mean0, cov0, mean1, cov1, sigma, T)
    d = m0.size
    eye = np.eye(d)
    mdot = (m1 - m0) / T
    X = C + C.T + eps * eye

    def sig(t):
        tau = t / T
        return (1 - tau) ** 2 * S0 + tau**2 * S1 + tau * (1 - tau) * X

    def H(t):
        tau = t / T
        dS = (-2 * (1 - tau) * S0 + 2 * tau * S1 + (1 - 2 * tau) * X) / T
        # solve_continuous_lyapunov(A, Q) solves A X + X Aᵀ = Q: here Σ H + H Σ = Σ̇ - σ²I
        Hs = solve_continuous_lyapunov(sig(t), dS - sigma**2 * eye)
        return 0.5 * (Hs + Hs.T)

    def rate(t):
        Ht = H(t)
        return (np.trace(Ht @ sig(t) @ Ht) + mdot @ mdot) / (2.0 * sigma**2)

    x, wq = np.polynomial.legendre.leggauss(int(nodes))
    ts = 0.5 * T * (x + 1.0)
    value = float(0.5 * T * wq @ np.array([rate(t) for t in ts]))
    tgrid = np.linspace(0.0, T, 101) if times is None else np.asarray(times, float)
    return {"value": value, "times": tgrid, "rate": np.array([rate(t) for t in tgrid]), "H": H,
            "mean": lambda t: m0 + (m1 - m0) * t / T, "cov": sig}


__all__ = ["ACTION_REFERENCES", "ActionResult", "control_action", "denoising_gap",
           "denoising_loss", "excess_action", "explicit_loss", "gaussian_bridge_kinetic",
           "gaussian_control_action", "gaussian_kl", "gaussian_optimal_control",
           "kl_quadrature", "minimal_action", "optimal_control", "perturbation_curvature",
           "relative_fisher_rate", "score_control", "stationary_law"]
