""":func:`solve_bridge`: set-up (mass checks, marginals, continuation), the Sinkhorn loop,
normalization."""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Sequence

import numpy as np

from bridgesolve._dolfinx import MPI, fem
from bridgesolve._validate import BridgesolveInputError, choice, positive, positive_int
from bridgesolve._vocab import BRIDGE_MODES
from bridgesolve.bridge.marginals import _lumped_weights, _Marginal, _marginal
from bridgesolve.bridge.result import Bridge
from bridgesolve.bridge.sinkhorn import (
    RESOLUTION,
    SinkhornLoop,
    _log_sum,
    _marginal_error,
    _residual,
    _steepness,
)
from bridgesolve.bridge.sweeps import _finite, _LogSweeps
from bridgesolve.pde.krylov import merge
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField, as_numpy_callable
from bridgesolve.storage import BRIDGE_FIELDS


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
    method: str = "fe",
) -> Bridge:
    """Solve the Schrödinger system between ``rho0`` and ``rho1`` (module doc).

    Args:
        problem: domain, reference process, time grid and discretization (reflecting
            boundary).
        rho0, rho1: the marginals at t = 0 and t = T: Gaussian mixtures (taken in the log
            domain), callables of points ``(N, d) -> (N,)``, or DOLFINx Functions. Each is
            normalized to unit mass on the mesh (the given mass is in
            ``info["marginal_mass_given"]``); negative nodal values are set to zero.
            Discontinuous densities (box mixtures, images: the checkerboard) are
            L2-projected as by the Fokker–Planck solver, their initial error in
            ``info["initial_projection"]`` (:mod:`bridgesolve.bridge.marginals`).
        tol: stop when the L1 marginal errors at both ends are below ``tol``.
        max_iter: iteration limit; reaching it warns and returns ``converged=False``.
        mode: ``"linear"``, ``"log"`` or ``"auto"`` (module doc).
        killing: optional rate ``V`` (number, ``V(x)``, ``V(x, t)`` or UFL), the same in both
            equations.
        acceleration: adaptive over-relaxation (module doc); ``False`` for the plain
            iteration; ``"anderson"``: over-relaxation until the marginal error is below
            0.1, then Anderson acceleration of ``log φ_T`` (:class:`~bridgesolve.bridge.sinkhorn.
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
        method: ``"fe"`` (the modes above), ``"kernel"`` (Sinkhorn with the exact kernel of
            a linear process on a box, :func:`bridgesolve.kernel.kernel_bridge`; fields at
            the dofs of every level; the grid solution in ``bridge.kernel_bridge``) or
            ``"auto"`` (the kernel where it applies).

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
    from bridgesolve.bridge.kernel import bridge_on_mesh
    from bridgesolve.kernel.fields import use_kernel

    if use_kernel(method, problem, killing=killing):
        return bridge_on_mesh(problem, rho0, rho1, tol=tol, max_iter=max_iter)
    if problem.boundary != "reflecting":
        raise BridgesolveInputError(
            f"boundary = {problem.boundary!r}: the Schrödinger bridge needs 'reflecting' "
            "boundaries (potentials vanish on absorbing walls)"
        )
    # disk storage: room for the iterates and results, before any sweep
    problem.storage.check(problem.comm, fields=BRIDGE_FIELDS)
    t_start = time.perf_counter()
    weights, m0, m1 = _marginals(problem, rho0, rho1)
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
    steep = _warn_unresolved(problem, loop, L_phi, L_hat, tol, max_iter)
    log_phi, log_phi_hat, info = _normalized_potentials(problem, L_phi, L_hat, m0, m1,
                                                        weights)
    info.update(_loop_info(loop, steep, stages, acceleration, tol))
    info["timings"] = {"setup_s": setup_s, "total_s": time.perf_counter() - t_start}
    return Bridge(problem=problem, log_phi=log_phi, log_phi_hat=log_phi_hat,
                  history=loop.history, converged=loop.converged, mode=loop.current,
                  info=info, killing=killing)


def _marginals(problem: Problem, rho0, rho1):
    """The lumped weights and both marginals on the mesh, after the mass-inside checks; clipped
    negative nodal values are warned about (at the caller of :func:`solve_bridge`)."""
    for name, rho in (("rho0", rho0), ("rho1", rho1)):
        _check_mass_inside(problem, rho, name)
    weights = _lumped_weights(problem)
    m0 = _marginal(problem, rho0, "rho0", weights)
    m1 = _marginal(problem, rho1, "rho1", weights)
    for name, m in (("rho0", m0), ("rho1", m1)):
        if m.clipped:
            warnings.warn(f"{name}: {m.clipped} negative nodal values set to zero",
                          RuntimeWarning, stacklevel=3)
    return weights, m0, m1


def _warn_unresolved(problem, loop, L_phi, L_hat, tol, max_iter) -> float:
    """Warn when the loop stopped unconverged, or when the linear representation is too
    coarse for the potentials' steepness (returned)."""
    if not loop.converged:
        last = loop.history[-1]
        ends = ", ".join(f"t={end} {last[key]:.3g}" for end, key in
                         (("0", "err0_L1"), ("T", "errT_L1")) if np.isfinite(last[key]))
        warnings.warn(f"Schrödinger bridge: not converged after {max_iter} iterations "
                      f"(last L1 marginal errors: {ends}; tol {tol:g})", RuntimeWarning,
                      stacklevel=3)
    steep = _steepness(problem, L_phi, L_hat)
    if loop.fallback:
        warnings.warn(
            f"Schrödinger bridge (mode='auto'): solved in the linear mode because "
            f"{loop.fallback}; the log-potentials are too steep for this mesh (h = "
            f"{problem.domain.hmax:.3g}) where the marginals' log-densities are far below "
            "their peaks: refine the mesh, or use mode='linear' to skip the attempt",
            RuntimeWarning, stacklevel=3)
    if loop.current == "linear" and steep > RESOLUTION:
        fix = ("refine the mesh" if loop.linear_only else
               "use mode='log' (or 'auto'), or refine the mesh")
        stays = (f" (mode='auto' stays linear: {loop.linear_only})"
                 if loop.linear_only and not loop.fallback else "")
        warnings.warn(
            f"Schrödinger bridge (linear mode): log φ, log φ̂ change by {steep:.3g} per cell "
            f"(ρ-weighted RMS, > {RESOLUTION:g}): the linear representation is inaccurate "
            f"here{stays}; {fix}", RuntimeWarning, stacklevel=3)
    return steep


def _loop_info(loop, steep: float, stages, acceleration, tol) -> dict:
    """The loop's entries of ``Bridge.info``: steepness, acceleration, continuation stages,
    Newton and tilted-sweep counts."""
    info = {"steepness": steep,
            "acceleration": acceleration if acceleration == "anderson" else bool(acceleration),
            "tol": tol, "linear_solver": merge(loop.solver_records)}
    if loop.linear_only:
        info["fallback"] = loop.linear_only
    if stages:
        info["continuation"] = stages
        info["iterations_total"] = len(loop.history) + sum(st["iterations"] for st in stages)
    if isinstance(loop.sweeps, _LogSweeps):
        info["newton_iterations"] = loop.sweeps.newton_iterations
        if loop.sweeps.counts["relinearizations"]:
            info["tilted"] = loop.sweeps.counters()
    return info


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
                                petsc_options=problem.petsc_options,
                                **problem.storage_options())
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
    projected = {name: m.projection for name, m in (("rho0", m0), ("rho1", m1))
                 if m.projection is not None}
    if projected:
        info["initial_projection"] = projected
    return log_phi, log_phi_hat, info


__all__ = ["solve_bridge"]
