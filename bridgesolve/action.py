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
   sampler's own law ``q`` (Girsanov against the true reverse process):
   ``excess_action(s, data, process, law=control_action(...))`` takes the expectation
   under ``q`` at every grid level, and the identity holds to discretization error. The
   validator's ``∫ (g²/2) E_{p_t}|s - ∇log p_t|² dt`` (``excess_action`` without ``law``)
   agrees with it only to third order in the score error (for a poorly trained network the
   two differ by an order of magnitude). Along ``s = ∇log p + δη``,
   ``J(δ) = A* + κ δ² + O(δ³)`` with ``κ = ∫ (g²/2) E_{p_t}|η|² dt``
   (:func:`perturbation_curvature`).
3. ``DSM - ESM = d/σ_t² - E_{p_t}|∇log p_t|²`` at every t for every score
   (:func:`denoising_gap`; the denoising loss by Gauss–Hermite quadrature,
   :func:`denoising_loss`).
4. The Schrödinger bridge's kinetic energy ``½∫g² E_ρ|∇log φ|² dt = KL(P*‖R)``; for
   Gaussians with a Brownian reference it equals the static entropic-OT value
   (:func:`bridgesolve.densities.gaussian_bridge_cost`): :func:`gaussian_bridge_kinetic`
   computes the dynamic side independently (below).

**Gaussian closed forms** (moment ODEs of a linear control, the Gaussian bridge's kinetic
energy by a Lyapunov equation): :mod:`bridgesolve._action_gaussian`.

**Layout.** This module holds the controlled Fokker–Planck solve (:func:`control_action`,
:class:`ActionResult`); references, laws, KL divergences and controls live in
:mod:`bridgesolve._action_common`, the identities in :mod:`bridgesolve._action_identities`,
the Gaussian closed forms in :mod:`bridgesolve._action_gaussian`; every public name is
re-exported here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._action_common import (
    ACTION_REFERENCES,
    Control,
    _allsum,
    _as_callable,
    _log_pdf,
    _quadrature,
    gaussian_kl,
    kl_quadrature,
    score_control,
    stationary_law,
    trapezoid_weights,
)
from bridgesolve._action_gaussian import (
    gaussian_bridge_kinetic,
    gaussian_control_action,
    gaussian_optimal_control,
)
from bridgesolve._action_identities import (
    denoising_gap,
    denoising_loss,
    excess_action,
    explicit_loss,
    minimal_action,
    optimal_control,
    perturbation_curvature,
    relative_fisher_rate,
)
from bridgesolve._validate import BridgesolveInputError, choice
from bridgesolve.densities import GaussianMixture


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


__all__ = ["ACTION_REFERENCES", "ActionResult", "Control", "control_action", "denoising_gap",
           "denoising_loss", "excess_action", "explicit_loss", "gaussian_bridge_kinetic",
           "gaussian_control_action", "gaussian_kl", "gaussian_optimal_control",
           "kl_quadrature", "minimal_action", "optimal_control", "perturbation_curvature",
           "relative_fisher_rate", "score_control", "stationary_law", "trapezoid_weights"]
