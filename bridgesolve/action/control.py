"""The action of a control: the controlled Fokker–Planck solve (:func:`control_action`,
:class:`ActionResult`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._validate import BridgesolveInputError, choice
from bridgesolve.action.common import (
    ACTION_REFERENCES,
    _allsum,
    _as_callable,
    _log_pdf,
    _quadrature,
    kl_quadrature,
    stationary_law,
    trapezoid_weights,
)
from bridgesolve.densities import GaussianMixture


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
    from bridgesolve.pde.fokker_planck import (
        density_stepper,
        initial_function,
        transport_terms,
        user_drift_term,
    )
    from bridgesolve.pde.stepping import Term, evolve
    from bridgesolve.spacetime import SpaceTimeField

    proc = problem.process
    V = problem.V
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

    def total_drift(x, t):
        out = np.asarray(control_fn(x, t), dtype=float).reshape(x.shape)
        if extra_fn is not None:
            out = out + np.asarray(extra_fn(x, t), dtype=float).reshape(x.shape)
        return out

    terms.append(user_drift_term(problem, total_drift, "control"))
    stepper = density_stepper(problem, terms, q_init)
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


def _kl_terms(out, problem, rho, qv, pts, w, degree, start, end, target, reference_start,
              reference_end) -> None:
    """Fill the KL entries of ``out`` (start, end, end cost) by quadrature of the controlled
    density's levels ``qv``."""
    reference = out.reference
    action = out.action

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


def _reference_laws(problem, rho, reference, score, reference_start, reference_end):
    """``(extra_fn, reference_start, reference_end)``: the reference's extra drift
    (``"reversed"``: ``g² ∇log p_t``) and its laws at the start and end (defaults in
    :func:`control_action`)."""
    proc, d = problem.process, problem.domain.dim
    extra_fn = None
    if reference == "reversed":
        if score is None:
            raise BridgesolveInputError(
                "reference='reversed': pass score= (the reference's own score ∇log p_t); its "
                "reverse-time drift is -f + g² ∇log p_t")
        s_fn, _ = _as_callable(score, d, "score")

        def extra_fn(x, t):  # the reference's g²∇log p_t
            return float(proc.g(t)) ** 2 * np.asarray(s_fn(x, t), dtype=float).reshape(x.shape)
    elif reference == "stationary":
        p_inf = stationary_law(proc, d)
        reference_start = reference_start if reference_start is not None else p_inf
        reference_end = reference_end if reference_end is not None else p_inf
    else:
        reference_start = reference_start if reference_start is not None else rho
        if (reference_end is None and isinstance(rho, GaussianMixture) and proc.linear):
            reference_end = rho.evolve(proc, problem.grid.T)
    return extra_fn, reference_start, reference_end


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
    from bridgesolve.quadrature import values_at_quadrature

    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    choice("reference", reference, ACTION_REFERENCES)
    proc = problem.process
    d = problem.domain.dim
    t_start = time.perf_counter()
    control_fn, kind = _as_callable(control, d)
    extra_fn, reference_start, reference_end = _reference_laws(
        problem, rho, reference, score, reference_start, reference_end)
    q = _controlled_density(problem, rho, control_fn, kind, reference, extra_fn, progress,
                            name)
    solve_s = time.perf_counter() - t_start

    # -- the action by quadrature -----------------------------------------------------------
    k = problem.degree
    degree = int(degree or 2 * k + 4)
    pts, w = _quadrature(problem, degree)
    times = problem.grid.times
    qv = values_at_quadrature(q.space, q.values, degree)
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

    _kl_terms(out, problem, rho, qv, pts, w, degree, start, end, target, reference_start,
              reference_end)
    out.info = {"mass": q.info["mass"], "factorizations": q.info["factorizations"],
                "timings": {"solve_s": solve_s, "total_s": time.perf_counter() - t_start},
                "control": kind, "quadrature_degree": degree}
    return out
