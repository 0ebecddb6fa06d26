r"""The Schrödinger bridge on a mesh: Sinkhorn–Fortet iterations on the Schrödinger system.

Given marginals ρ0, ρ1 and a reference process ``dX = f dt + g dW`` (with an optional
killing/creation rate ``V``), find potentials φ, φ̂ with

.. math::
    \partial_t\varphi + f\cdot\nabla\varphi + D\Delta\varphi + V\varphi = 0, \qquad
    \partial_t\hat\varphi = -\nabla\cdot(f\hat\varphi) + D\Delta\hat\varphi + V\hat\varphi,

    \varphi(\cdot,0)\,\hat\varphi(\cdot,0) = \rho_0, \qquad
    \varphi(\cdot,T)\,\hat\varphi(\cdot,T) = \rho_1 .

Then ``ρ_t = φ φ̂`` are the bridge marginals, ``∇log ρ_t = ∇log φ + ∇log φ̂`` their score,
``f + g²∇log φ`` the optimal forward drift, ``f - g²∇log φ̂`` the backward one (reverse
time), ``f + D(∇log φ - ∇log φ̂)`` the probability-flow velocity, and (no killing)

.. math::
    \mathrm{KL}(P^*\,\|\,R_{\rho_0}) = \tfrac12\int_0^T\!\!\int g^2\rho_t|\nabla\log\varphi|^2
    = \int\rho_1\log\varphi_T - \int\rho_0\log\varphi_0 .

Fortet/Sinkhorn iteration: start from ``φ_T = 1``; repeat {backward solve → φ_0;
``φ̂_0 = ρ0/φ_0``; forward solve → φ̂_T; ``φ_T = ρ1/φ̂_T``}. The products are nodal (dof by
dof) and marginal errors are measured with the lumped mass weights ``m_i``:
``L1 = Σ_i m_i |φ_i φ̂_i - ρ_i|`` and ``L∞ = max_i |φ_i φ̂_i - ρ_i|``.

Two discretizations of the same system:

* ``mode="linear"``: φ and φ̂ by the θ-scheme with a *lumped* mass matrix. The backward
  matrix is the transpose of the forward one, so ``Σ_i m_i φ_i^n φ̂_i^n`` is the same at
  every level (discrete duality), which is exactly what makes the nodal Schrödinger
  system solvable to round-off: the Sinkhorn fixed point exists for the discrete problem.
  Every step is rescaled by its maximum (the scales are kept as logarithms), so nothing
  overflows; what cannot be rescaled away is a dynamic range beyond double precision
  *within* one time level, and values that turn non-positive (Crank–Nicolson is not
  positivity preserving; backward Euler with the lumped P1 mass is, on non-obtuse meshes
  when diffusion dominates the drift). Both are detected, never passed on silently.
* ``mode="log"``: ``S = log φ`` and ``Ŝ = log φ̂`` by the HJB solvers
  (:mod:`bridgesolve.pde.hjb`), robust when the potentials span hundreds of orders of
  magnitude (small noise). The HJB pair conserves ``∫φφ̂`` only up to discretization
  error, which is reported (``info["mass"]``).
* ``mode="auto"`` starts linear and switches to log on underflow, non-positive values,
  steepness or stagnation, continuing from the current potentials (recorded in
  ``history``). Its log phase replaces Newton, once near the fixed point, by *tilted*
  linear solves: the θ-steps linearized about the last iterate ``S̄`` (drift
  ``f + g²∇S̄``, exact residuals, factorizations reused; :class:`bridgesolve.pde.hjb.
  LogLinearization`, policy in :data:`bridgesolve._sweeps.TILT`). Same fixed point as
  ``"log"``, at close to the linear mode's cost; on failure it rolls back to its best
  iterate and continues with Newton.

Acceleration: over-relaxation of both half-updates in the log domain (Thibault et al.,
2017; Lehmann et al., 2021), ``log φ_T ← (1-ω) log φ_T + ω log(ρ1/φ̂_T)`` and likewise for
φ̂_0, ``ω = 2/(1 + sqrt(1 - η))`` from the observed rate η, back to ω = 1 when the error
grows; or Anderson acceleration of ``log φ_T`` (``acceleration="anderson"``). Small noise:
``continuation=[σ1, σ2, ...]`` (ε-scaling) starts from bridges at larger σ.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bridgesolve._dolfinx import MPI, fem, ufl
from bridgesolve._sinkhorn import (
    RESOLUTION,
    BridgeError,
    SinkhornLoop,
    _log_sum,
    _lumped_weights,
    _Marginal,
    _marginal,
    _marginal_error,
    _residual,
    _steepness,
)
from bridgesolve._sweeps import _finite, _LogSweeps
from bridgesolve._validate import BridgesolveInputError, choice, positive, positive_int
from bridgesolve._vocab import BRIDGE_MODES
from bridgesolve.densities import gaussian_bridge  # noqa: F401  (re-exported)
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField, as_numpy_callable

#: Relative gap of the two KL cost formulas above which a bridge is flagged under-resolved.
COST_GAP_WARNING = 0.1


@dataclass
class Bridge:
    """The solution of the Schrödinger system on a mesh.

    Attributes:
        problem: the discretized problem.
        log_phi, log_phi_hat: ``log φ`` and ``log φ̂`` at every level (log representation;
            the additive constant splitting ``log ρ`` between them is arbitrary).
        history: one record per iteration: ``iteration``, ``mode``, ``omega``, the marginal
            errors ``err0_L1``, ``err0_Linf`` (pair (φ_0 new, φ̂_0 old) against ρ0) and
            ``errT_L1``, ``errT_Linf`` (pair (φ_T, φ̂_T new) against ρ1), and ``event``
            when something happened (a mode switch, a relaxation change).
        converged: whether both errors fell below ``tol``.
        mode: the mode of the final iterations.
        info: timings, masses ``∫φφ̂`` per level, final marginal errors, Newton iterations.
    """

    problem: Problem
    log_phi: SpaceTimeField
    log_phi_hat: SpaceTimeField
    history: list[dict]
    converged: bool
    mode: str
    info: dict = field(default_factory=dict)
    killing: object = None

    @property
    def iterations(self) -> int:
        return len(self.history)

    @property
    def grid(self):
        return self.problem.grid

    def _linear(self, values: np.ndarray, name: str) -> SpaceTimeField:
        with np.errstate(over="ignore"):
            return SpaceTimeField(self.problem.V, self.grid, np.exp(values), name=name)

    @cached_property
    def phi(self) -> SpaceTimeField:
        """φ (linear representation; may under/overflow where the log does not)."""
        return self._linear(self.log_phi.values, "phi")

    @cached_property
    def phi_hat(self) -> SpaceTimeField:
        return self._linear(self.log_phi_hat.values, "phi_hat")

    @cached_property
    def log_rho(self) -> SpaceTimeField:
        return SpaceTimeField(self.problem.V, self.grid,
                              self.log_phi.values + self.log_phi_hat.values, name="log_rho",
                              representation="log")

    @cached_property
    def rho(self) -> SpaceTimeField:
        """The bridge marginals ``ρ_t = φ φ̂`` (nodal products)."""
        return self._linear(self.log_phi.values + self.log_phi_hat.values, "rho")

    # -- fields derived from the potentials -----------------------------------------
    # Fields and gradients are built once: each keeps its compiled forms, expressions and
    # point locators, which repeated evaluations and error norms reuse.
    @cached_property
    def _grad_pair(self):
        from bridgesolve.score import grad_log

        return grad_log(self.log_phi), grad_log(self.log_phi_hat)

    def _grads(self):
        return self._grad_pair

    def score(self):
        """``∇log ρ_t = ∇log φ + ∇log φ̂`` (a :class:`bridgesolve.score.VectorField`)."""
        from bridgesolve.score import drift_field

        gphi, ghat = self._grads()
        return drift_field(self.problem.process, [(1.0, gphi), (1.0, ghat)],
                           reference_drift=False)

    def control(self):
        """The optimal control ``u = g² ∇log φ``."""
        from bridgesolve.score import drift_field

        g2 = lambda t: float(self.problem.process.g(t)) ** 2  # noqa: E731
        return drift_field(self.problem.process, [(g2, self._grads()[0])],
                           reference_drift=False)

    def forward_drift(self):
        """``f + g² ∇log φ``: the drift of the bridge in forward time."""
        from bridgesolve.score import drift_field

        g2 = lambda t: float(self.problem.process.g(t)) ** 2  # noqa: E731
        return drift_field(self.problem.process, [(g2, self._grads()[0])])

    def backward_drift(self):
        """``f - g² ∇log φ̂``: the reverse-time SDE is ``dX = -(f - g²∇log φ̂) dτ + g dW̄``
        in forward-time coordinates, i.e. this drift integrated backwards."""
        from bridgesolve.score import drift_field

        g2 = lambda t: -float(self.problem.process.g(t)) ** 2  # noqa: E731
        return drift_field(self.problem.process, [(g2, self._grads()[1])])

    def velocity(self):
        """Probability-flow velocity ``f + D (∇log φ - ∇log φ̂)``."""
        from bridgesolve.score import drift_field

        proc = self.problem.process
        gphi, ghat = self._grads()
        D = lambda t: float(proc.diffusion(t))  # noqa: E731
        return drift_field(proc, [(D, gphi), (lambda t: -D(t), ghat)])

    def cost(self) -> dict:
        """``KL(P* ‖ R_ρ0)`` by both formulas of the Schrödinger system.

        ``kinetic = ½ ∫_0^T g² ∫ ρ_t |∇log φ|² dx dt`` (trapezoid rule in time over the
        grid levels, exact quadrature in space with ``ρ_t = exp(log φ + log φ̂)``) and
        ``boundary = ∫ρ_T log φ_T - ∫ρ_0 log φ_0`` (each average normalized by its mass,
        so the arbitrary constant in ``log φ`` drops out). They agree up to discretization
        error; ``relative_gap`` is their difference over the boundary value, and a gap
        above ``COST_GAP_WARNING`` (10 %) sets ``under_resolved`` and warns. Without
        killing only: with ``V`` the path measure has extra weights.
        """
        if self.killing is not None:
            raise BridgesolveInputError(
                "cost(): the KL formulas of the Schrödinger system hold without killing; "
                f"this bridge has killing = {self.killing!r}"
            )
        if "cost" in self.info:
            return self.info["cost"]
        V = self.problem.V
        comm = self.problem.comm
        S, Sh = fem.Function(V), fem.Function(V)
        rho = ufl.exp(S + Sh)
        kinetic_form = fem.form(rho * ufl.inner(ufl.grad(S), ufl.grad(S)) * ufl.dx)
        mass_form_ = fem.form(rho * ufl.dx)
        mean_form = fem.form(rho * S * ufl.dx)

        def assemble(form) -> float:
            return comm.allreduce(fem.assemble_scalar(form), MPI.SUM)

        times = self.grid.times
        g2 = np.array([float(self.problem.process.g(t)) ** 2 for t in times])
        density = np.empty(times.size)
        for n in range(times.size):
            S.x.array[:] = self.log_phi.values[n]
            Sh.x.array[:] = self.log_phi_hat.values[n]
            density[n] = assemble(kinetic_form)
        integrand = 0.5 * g2 * density
        kinetic = float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(times)))
        ends = []
        for n in (0, -1):
            S.x.array[:] = self.log_phi.values[n]
            Sh.x.array[:] = self.log_phi_hat.values[n]
            ends.append(assemble(mean_form) / assemble(mass_form_))
        boundary = float(ends[1] - ends[0])
        gap = abs(kinetic - boundary) / max(abs(boundary), 1e-300)
        out = {"kinetic": kinetic, "boundary": boundary, "relative_gap": gap,
               "under_resolved": bool(gap > COST_GAP_WARNING), "kinetic_rate": integrand}
        self.info["cost"] = out
        if out["under_resolved"]:
            # Both are exact identities of the continuous system: a converged discrete
            # bridge whose formulas disagree has unresolved (too steep) potentials.
            warnings.warn(
                f"Bridge.cost(): the two KL cost formulas differ by {100 * gap:.0f} % "
                f"(kinetic {kinetic:.4g}, boundary {boundary:.4g}): the mesh or time grid is "
                "too coarse for these potentials; refine them, or use mode='log'",
                RuntimeWarning, stacklevel=2)
        return out

    def summary(self) -> dict:
        """Numbers for reports: iterations, final errors, costs (when defined), timings."""
        out = {"converged": self.converged, "iterations": self.iterations,
               "mode": self.mode, **{k: v for k, v in self.info.items()
                                     if k in ("final_errors", "timings", "acceleration",
                                              "steepness",
                                              "mass_drift", "newton_iterations",
                                              "factorizations", "marginal_mass_given")}}
        if self.killing is None:
            c = self.cost()
            out["cost"] = {"kinetic": c["kinetic"], "boundary": c["boundary"],
                           "relative_gap": c["relative_gap"]}
        return out

    def __repr__(self) -> str:
        return (f"Bridge(mode={self.mode!r}, iterations={self.iterations}, "
                f"converged={self.converged}, {self.problem!r})")



def solve_bridge(
    problem: Problem,
    rho0,
    rho1,
    *,
    tol: float = 1e-8,
    max_iter: int = 500,
    mode: str = "auto",
    killing=None,
    acceleration: bool | str = True,
    progress: bool = True,
    newton_options: dict | None = None,
    initial_log_phi_T=None,
    continuation: Sequence[float] | None = None,
) -> Bridge:
    """Solve the Schrödinger system between ``rho0`` and ``rho1`` (module doc).

    Args:
        problem: domain, reference process, time grid and discretization (reflecting
            boundary).
        rho0, rho1: the marginals at t = 0 and t = T: Gaussian mixtures (taken in the log
            domain), callables of points ``(N, d) -> (N,)``, or DOLFINx Functions. Each is
            normalized to unit mass on the mesh (the given mass is in
            ``info["marginal_mass_given"]``); negative nodal values are set to zero.
        tol: stop when the L1 marginal errors at both ends are below ``tol``.
        max_iter: iteration limit; reaching it warns and returns ``converged=False``.
        mode: ``"linear"``, ``"log"`` or ``"auto"`` (module doc).
        killing: optional rate ``V`` (number, ``V(x)``, ``V(x, t)`` or UFL), the same in both
            equations.
        acceleration: adaptive over-relaxation (module doc); ``False`` for the plain
            iteration; ``"anderson"``: over-relaxation until the marginal error is below
            0.1, then Anderson acceleration of ``log φ_T`` (:class:`~bridgesolve._sinkhorn.
            Anderson`; experimental: fewer iterations at small noise, less robust).
        progress: a progress bar over iterations (rank 0).
        newton_options: SNES options for the log mode.
        initial_log_phi_T: optional starting ``log φ_T`` (callable of points or dof
            values); the default is ``φ_T = 1``.
        continuation: ε-scaling for small noise: noise levels σ, larger than the
            problem's and decreasing, whose bridges are solved first (to
            :data:`CONTINUATION_TOL`), each starting from the last one's ``log φ_T`` scaled
            by ``σ_prev²/σ²`` (potentials scale like 1/σ²); the problem's bridge then starts
            from the last. For processes with a number ``sigma`` (Brownian, OU). The
            stages are in ``info["continuation"]``; ``history`` is the final stage's.

    Returns:
        A :class:`Bridge`.

    Raises:
        BridgeError: on divergence, stagnation, or non-finite potentials, naming the
            iteration and the quantity; ``mode="linear"`` also on lost positivity or
            underflow.
    """
    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    mode = choice("mode", mode, BRIDGE_MODES)
    tol = positive("tol", tol)
    max_iter = positive_int("max_iter", max_iter)
    if problem.boundary != "reflecting":
        raise BridgesolveInputError(
            f"boundary = {problem.boundary!r}: the Schrödinger bridge needs 'reflecting' "
            "boundaries (potentials vanish on absorbing walls)"
        )
    t_start = time.perf_counter()
    for name, rho in (("rho0", rho0), ("rho1", rho1)):
        _check_mass_inside(problem, rho, name)
    weights = _lumped_weights(problem)
    m0 = _marginal(problem, rho0, "rho0", weights)
    m1 = _marginal(problem, rho1, "rho1", weights)
    for name, m in (("rho0", m0), ("rho1", m1)):
        if m.clipped:
            warnings.warn(f"{name}: {m.clipped} negative nodal values set to zero",
                          RuntimeWarning, stacklevel=2)
    log_phi_T = _initial_log_phi_T(problem, initial_log_phi_T, m1)
    stages = []
    if continuation:
        log_phi_T, stages = _continuation(
            problem, rho0, rho1, continuation, log_phi_T, mode=mode, killing=killing,
            acceleration=acceleration, newton_options=newton_options, max_iter=max_iter)
    loop = SinkhornLoop(problem, m0, m1, weights, mode=mode, tol=tol, max_iter=max_iter,
                        killing=killing, acceleration=acceleration,
                        newton_options=newton_options, progress=progress)
    setup_s = time.perf_counter() - t_start
    L_phi, L_hat = loop.run(log_phi_T)
    if not loop.converged:
        last = loop.history[-1]
        ends = ", ".join(f"t={end} {last[key]:.3g}" for end, key in
                         (("0", "err0_L1"), ("T", "errT_L1")) if np.isfinite(last[key]))
        warnings.warn(f"Schrödinger bridge: not converged after {max_iter} iterations "
                      f"(last L1 marginal errors: {ends}; tol {tol:g})", RuntimeWarning,
                      stacklevel=2)
    steep = _steepness(problem, L_phi, L_hat)
    if loop.current == "linear" and steep > RESOLUTION:
        warnings.warn(
            f"Schrödinger bridge (linear mode): log φ, log φ̂ change by {steep:.3g} per cell "
            f"(ρ-weighted RMS, > {RESOLUTION:g}): the linear representation is inaccurate "
            "here; use mode='log' (or 'auto'), or refine the mesh", RuntimeWarning,
            stacklevel=2)
    log_phi, log_phi_hat, info = _normalized_potentials(problem, L_phi, L_hat, m0, m1,
                                                        weights)
    info.update({
        "steepness": steep,
        "acceleration": acceleration if acceleration == "anderson" else bool(acceleration),
        "timings": {"setup_s": setup_s, "total_s": time.perf_counter() - t_start},
        "tol": tol,
    })
    if stages:
        info["continuation"] = stages
        info["iterations_total"] = len(loop.history) + sum(st["iterations"] for st in stages)
    if isinstance(loop.sweeps, _LogSweeps):
        info["newton_iterations"] = loop.sweeps.newton_iterations
        if loop.sweeps.counts["relinearizations"]:
            info["tilted"] = loop.sweeps.counters()
    return Bridge(problem=problem, log_phi=log_phi, log_phi_hat=log_phi_hat,
                  history=loop.history, converged=loop.converged, mode=loop.current,
                  info=info, killing=killing)


#: Mass of ρ0 or ρ1 outside the domain above which :func:`solve_bridge` refuses, and above
#: which it warns: the marginals are renormalized on the mesh, so mass outside is moved
#: inside silently. The warning band keeps the usual VP domain [-5, 5]² (prior mass 1.2e-6
#: outside) usable.
MASS_OUTSIDE_REFUSE = 1e-5
MASS_OUTSIDE_WARN = 1e-6


def _check_mass_inside(problem: Problem, rho, name: str) -> None:
    """Refuse a probability density (an object with ``pdf``, e.g. a Gaussian mixture) with
    more than :data:`MASS_OUTSIDE_REFUSE` of its mass outside the domain; warn above
    :data:`MASS_OUTSIDE_WARN`."""
    if not hasattr(rho, "pdf") or isinstance(rho, fem.Function | SpaceTimeField):
        return
    if getattr(rho, "dim", problem.domain.dim) != problem.domain.dim:
        return  # named by _marginal
    inside = problem.mass_inside(rho)
    outside = 1.0 - inside
    if outside <= MASS_OUTSIDE_WARN:
        return
    lo, hi = problem.domain.bounds
    box = " × ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(lo, hi, strict=True))
    text = (f"{name} has mass {outside:.3g} outside the domain {box} (mass inside "
            f"{inside:.6g}): the bridge renormalizes it onto the mesh and transports a "
            "different density; enlarge the domain or move the density inside")
    if outside > MASS_OUTSIDE_REFUSE:
        raise BridgesolveInputError(f"{text} (refused above {MASS_OUTSIDE_REFUSE:g})")
    warnings.warn(text, RuntimeWarning, stacklevel=3)


#: Marginal L1 error to which the stages of a continuation are solved: they only provide
#: the next stage's starting potentials.
CONTINUATION_TOL = 1e-3


def _continuation(problem: Problem, rho0, rho1, sigmas, log_phi_T: np.ndarray, **options
                  ) -> tuple[np.ndarray, list[dict]]:
    """Solve the bridges at the noise levels ``sigmas`` in turn (ε-scaling); returns the
    starting ``log φ_T`` for ``problem`` and one record per stage."""
    sigma = getattr(problem.process, "sigma", None)
    if isinstance(sigma, bool) or not isinstance(sigma, int | float):
        raise BridgesolveInputError(
            f"continuation = {sigmas!r}: needs a process with a noise level sigma (Brownian, "
            f"OU); {type(problem.process).__name__} has none")
    levels = [positive("continuation", s) for s in sigmas]
    if any(b >= a for a, b in zip([*levels, sigma][:-1], [*levels, sigma][1:], strict=True)):
        raise BridgesolveInputError(
            f"continuation = {sigmas!r}: expected noise levels decreasing towards the "
            f"problem's sigma = {sigma:g}")
    stages, previous = [], None
    for level in levels:
        process = copy.copy(problem.process)
        process.sigma = level
        stage_problem = Problem(problem.domain, process, problem.grid, degree=problem.degree,
                                boundary=problem.boundary, scheme=problem.theta,
                                petsc_options=problem.petsc_options)
        start = log_phi_T if previous is None else log_phi_T * (previous / level) ** 2
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an unconverged stage is fine
            stage = solve_bridge(stage_problem, rho0, rho1, tol=CONTINUATION_TOL,
                                 progress=False, initial_log_phi_T=start, **options)
        stages.append({"sigma": level, "iterations": stage.iterations, "mode": stage.mode,
                       "converged": stage.converged, "seconds": time.perf_counter() - tic})
        log_phi_T, previous = stage.log_phi.values[-1].copy(), level
    return log_phi_T * (previous / sigma) ** 2, stages


def _initial_log_phi_T(problem: Problem, initial, m1: _Marginal) -> np.ndarray:
    """The starting ``log φ_T``: zero (``φ_T = 1``), a callable of points, or dof values."""
    if initial is None:
        return np.zeros_like(m1.log)
    if callable(initial):
        u = fem.Function(problem.V)
        u.interpolate(as_numpy_callable(initial, problem.domain.dim))
        return u.x.array.copy()
    return np.asarray(initial, dtype=float).copy()


def _normalized_potentials(problem: Problem, L_phi: np.ndarray, L_hat: np.ndarray,
                           m0: _Marginal, m1: _Marginal, weights: np.ndarray
                           ) -> tuple[SpaceTimeField, SpaceTimeField, dict]:
    """The final log-potentials as fields: finite, the constant split so that log φ_0 has
    zero ρ0-mean, ρ_t of unit mass at every level; with the final errors and masses."""
    comm, n = problem.comm, weights.size
    # Zero marginal values leave log φ = -inf at an end level (linear mode): make the
    # fields finite (see _finite) so that gradients are.
    for L in (L_phi, L_hat):
        for row in L:
            row[:] = _finite(row, comm)
    # Split the arbitrary constant so that log φ_0 has zero ρ0-mean (tidy, shift-free).
    shift = comm.allreduce(float(weights @ (m0.value[:n] * L_phi[0][:n])), MPI.SUM)
    L_phi -= shift
    L_hat += shift
    # ∫φφ̂ per level: constant to round-off in linear mode (discrete duality), up to
    # discretization error in log mode. ρ_t is normalized to unit mass at every level by
    # a constant in log φ̂ (which leaves every gradient, hence every drift, unchanged).
    log_mass = np.array([
        _log_sum(L_phi[k, :n] + L_hat[k, :n], weights, comm) for k in range(L_phi.shape[0])])
    L_hat -= log_mass[:, None]
    mass = np.exp(log_mass)
    final = {
        "err0_L1": _marginal_error(_residual(L_phi[0], L_hat[0], m0), m0, weights, comm).L1,
        "errT_L1": _marginal_error(_residual(L_phi[-1], L_hat[-1], m1), m1, weights,
                                   comm).L1,
    }
    V, grid = problem.V, problem.grid
    log_phi = SpaceTimeField(V, grid, L_phi, name="log_phi", representation="log")
    log_phi_hat = SpaceTimeField(V, grid, L_hat, name="log_phi_hat", representation="log")
    info = {
        "final_errors": final,
        "mass": mass,
        "mass_drift": float(np.max(np.abs(mass - mass[0])) / mass[0]),
        "marginal_mass_given": {"rho0": m0.mass_given, "rho1": m1.mass_given},
    }
    return log_phi, log_phi_hat, info


__all__ = ["Bridge", "BridgeError", "gaussian_bridge", "solve_bridge"]
