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
* ``mode="auto"`` starts linear and switches to log on underflow, non-positive values or
  stagnation, continuing from the current potentials; the switch is recorded in
  ``history``.

Acceleration: over-relaxation of both half-updates in the log domain (Thibault et al.,
2017; Lehmann et al., 2021), ``log φ_T ← (1-ω) log φ_T + ω log(ρ1/φ̂_T)`` and likewise for
φ̂_0, with ``ω = 2/(1 + sqrt(1 - η))`` from the observed linear rate η of the plain
iteration, and a fall-back to ω = 1 whenever the error grows.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bridgesolve._dolfinx import MPI, fem, ufl
from bridgesolve._validate import BridgesolveInputError, choice, positive, positive_int
from bridgesolve.densities import gaussian_bridge  # noqa: F401  (re-exported)
from bridgesolve.pde.fokker_planck import mass_form, transport_terms
from bridgesolve.pde.hjb import LogEvolution
from bridgesolve.pde.killing import killing_term
from bridgesolve.pde.stepping import ThetaStepper, _lump
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField, as_numpy_callable

MODES = ("auto", "linear", "log")
#: Smallest positive value (relative to the maximum of its time level) that the linear
#: mode accepts; below it the level's dynamic range is about to leave double precision.
UNDERFLOW = 1e-250
#: Iterations over which the error must fall by 1 % or the iteration counts as stagnant.
STAGNATION_WINDOW = 15
#: ``mode="auto"`` moves to the log mode (and ``mode="linear"`` warns) when log φ or log φ̂
#: change by more than this across one cell, ρ-weighted RMS (:func:`_steepness`): the
#: linear interpolant of such a steep exponential is inaccurate; its logarithm is smooth.
RESOLUTION = 0.3
#: Newton options of the log mode on top of the HJB defaults: the Jacobian (and its LU
#: factorization) is rebuilt every third Newton iteration. Measured with the warm start
#: from the previous Sinkhorn iterate: 2D, 1849 dofs, 10 iterations 3.57 s -> 2.73 s; 1D
#: σ = 0.1 (P2, 641 dofs) 9.65 s -> 8.87 s; same results.
BRIDGE_NEWTON = {"snes_lag_jacobian": 3, "snes_max_it": 100}
_LOG_CAP = 700.0  # exp(700) ~ 1e304


class BridgeError(RuntimeError):
    """The Sinkhorn iteration failed (divergence, stagnation, non-finite values).

    Attributes:
        history: the per-iteration records up to the failure.
    """

    def __init__(self, message: str, history: list[dict]):
        super().__init__(message)
        self.history = history


@dataclass
class _Marginal:
    """A marginal at the dofs: log-values (``-inf`` where ρ = 0) and values, unit mass in
    the lumped weights."""

    log: np.ndarray
    value: np.ndarray
    mass_given: float
    clipped: int = 0


def _lumped_weights(problem: Problem) -> np.ndarray:
    """Lumped mass weights ``m_i`` of this rank's owned dofs."""
    from bridgesolve._dolfinx import dolfinx  # noqa: F401  (fem.petsc is loaded there)

    M = fem.petsc.assemble_matrix(mass_form(problem))
    M.assemble()
    _lump(M)
    diag = M.getDiagonal()
    weights = diag.array.copy()
    diag.destroy()
    M.destroy()
    return weights


def _marginal(problem: Problem, rho, name: str, weights: np.ndarray) -> _Marginal:
    """``rho`` at the dofs, normalized to unit lumped mass.

    Density-like objects with ``log_pdf`` (Gaussian mixtures) are taken in the log domain,
    so that values far below double precision keep their logarithm.
    """
    V, dim = problem.V, problem.domain.dim
    u = fem.Function(V)
    clipped = 0
    if isinstance(rho, SpaceTimeField):
        raise BridgesolveInputError(
            f"{name} is a SpaceTimeField: pass one time level, e.g. field.at(field.times[-1])"
        )
    if isinstance(rho, fem.Function) or not hasattr(rho, "log_pdf"):
        if isinstance(rho, fem.Function):
            u.interpolate(rho)
        else:
            if getattr(rho, "dim", dim) != dim:
                raise BridgesolveInputError(f"{name} is {rho.dim}D but the domain is {dim}D")
            u.interpolate(as_numpy_callable(rho, dim))
        value = u.x.array.copy()
        if not np.all(np.isfinite(value)):
            raise BridgesolveInputError(f"{name} has non-finite values on the mesh")
        negative = value < 0.0
        clipped = int(problem.comm.allreduce(int(negative[: weights.size].sum()), MPI.SUM))
        value[negative] = 0.0
        with np.errstate(divide="ignore"):
            log = np.log(value)
    else:
        if getattr(rho, "dim", dim) != dim:
            raise BridgesolveInputError(f"{name} is {rho.dim}D but the domain is {dim}D")
        f = rho.log_pdf
        u.interpolate(lambda x: np.asarray(f(np.ascontiguousarray(x[:dim].T)), dtype=float))
        log = u.x.array.copy()
        if np.any(np.isnan(log)) or np.any(log == np.inf):
            raise BridgesolveInputError(f"{name}: log-density has NaN or +inf values on the mesh")
    # Unit lumped mass, computed in the log domain.
    n = weights.size
    top = problem.comm.allreduce(float(np.max(log[:n], initial=-np.inf)), MPI.MAX)
    if not np.isfinite(top):
        raise BridgesolveInputError(f"{name} vanishes on the whole mesh (no mass in the domain)")
    local = float(weights @ np.exp(log[:n] - top))
    log_mass = top + math.log(problem.comm.allreduce(local, MPI.SUM))
    log = log - log_mass
    return _Marginal(log=log, value=np.exp(log), mass_given=math.exp(log_mass),
                     clipped=clipped)


class _LinearSweeps:
    """φ backward and φ̂ forward with the lumped θ-scheme, rescaled at every step."""

    def __init__(self, problem: Problem, killing):
        self.problem = problem
        steppers = []
        for adjoint in (True, False):
            terms = transport_terms(problem, adjoint=adjoint)
            kt = killing_term(problem.V, killing, sign=-1.0)
            if kt is not None:
                kt[0].lump = True  # V M_L: a constant rate is then a uniform factor
                terms.append(kt[0])
            steppers.append(ThetaStepper(mass_form(problem), terms, problem.theta,
                                         petsc_options=problem.petsc_options, lumped=True))
        self.backward, self.forward = steppers
        self.u_old = fem.Function(problem.V)
        self.u_new = fem.Function(problem.V)
        self.n_owned = problem.V.dofmap.index_map.size_local

    def sweep(self, start_log: np.ndarray, *, backward: bool) -> tuple[np.ndarray, str | None]:
        """Log-values at every level and a problem description (None when all is well)."""
        comm, grid = self.problem.comm, self.problem.grid
        stepper = self.backward if backward else self.forward
        n = self.n_owned
        times = grid.times
        out = np.empty((times.size, start_log.size))
        first = -1 if backward else 0
        out[first] = start_log
        scale = comm.allreduce(float(np.max(start_log[:n], initial=-np.inf)), MPI.MAX)
        self.u_old.x.array[:] = np.exp(start_log - scale)
        levels = range(grid.steps - 1, -1, -1) if backward else range(grid.steps)
        smallest, where = np.inf, None
        for k in levels:
            stepper.step(self.u_old, self.u_new, times[k], times[k + 1])
            vals = self.u_new.x.array
            top = comm.allreduce(float(np.max(np.abs(vals[:n]), initial=0.0)), MPI.MAX)
            if not (np.isfinite(top) and top > 0.0):
                return out, f"non-finite or vanishing values at t = {times[k]:.6g}"
            vals /= top
            scale += math.log(top)
            level = k if backward else k + 1
            low = comm.allreduce(float(np.min(vals[:n], initial=np.inf)), MPI.MIN)
            if low < smallest:
                smallest, where = low, times[level]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[level] = np.log(vals) + scale
            self.u_old, self.u_new = self.u_new, self.u_old
        if smallest <= 0.0:
            return out, f"non-positive values (min {smallest:.3g} of the level's maximum) " \
                        f"at t = {where:.6g}"
        if smallest < UNDERFLOW:
            return out, f"underflow: values down to {smallest:.3g} of the level's maximum " \
                        f"at t = {where:.6g}"
        return out, None

    def close(self) -> None:
        self.backward.destroy()
        self.forward.destroy()


class _LogSweeps:
    """S = log φ backward and Ŝ = log φ̂ forward by the HJB solvers."""

    def __init__(self, problem: Problem, killing, newton_options: dict | None):
        options = {**BRIDGE_NEWTON, **(newton_options or {})}
        self.backward = LogEvolution(problem, forward=False, killing=killing, name="log_phi",
                                     newton_options=options)
        self.forward = LogEvolution(problem, forward=True, killing=killing,
                                    name="log_phi_hat", newton_options=options)
        self.newton_iterations = 0
        self.comm = problem.comm
        self.previous: dict[str, np.ndarray] = {}

    def sweep(self, start_log: np.ndarray, *, backward: bool) -> tuple[np.ndarray, str | None]:
        evolution = self.backward if backward else self.forward
        # Newton starts from the previous iterate at the same level: late in the Sinkhorn
        # loop it is far closer than the level before.
        key = "backward" if backward else "forward"
        result = evolution.run(_finite(start_log, self.comm), progress=False,
                               guess=self.previous.get(key))
        self.previous[key] = result.values
        self.newton_iterations += int(result.info["newton_iterations"].sum())
        return result.values, None

    def close(self) -> None:
        self.backward.close()
        self.forward.close()


@dataclass
class _Errors:
    L1: float
    Linf: float
    defect: float = 0.0


def _residual(log_phi: np.ndarray, log_phi_hat: np.ndarray, marginal: _Marginal) -> np.ndarray:
    """``log φ + log φ̂ - log ρ``; where ρ = 0 (``-inf - -inf``) the value is unused."""
    with np.errstate(invalid="ignore"):
        return log_phi + log_phi_hat - marginal.log


def _marginal_error(residual_log: np.ndarray, marginal: _Marginal, weights: np.ndarray,
                    comm) -> _Errors:
    """Errors of the product ``ρ·exp(r)`` against ρ, ``r = log(φ φ̂) - log ρ`` (owned dofs),
    after normalizing the product to unit mass.

    The normalization matters in log mode: the HJB pair conserves ``∫φφ̂`` only up to
    discretization error, so the Sinkhorn map (which commutes with ``log φ → log φ + c``)
    has a fixed point only up to such a constant; ``defect`` is ``log ∫ρ e^r``, the mass
    the product gained (a discretization diagnostic; round-off in linear mode).
    """
    n = weights.size
    rho = marginal.value[:n]
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.where(rho > 0.0, np.minimum(residual_log[:n], _LOG_CAP), 0.0)
        mass = comm.allreduce(float(weights @ (rho * np.exp(r))), MPI.SUM)
        defect = math.log(mass) if mass > 0 and np.isfinite(mass) else np.inf
        dev = rho * np.abs(np.expm1(r - defect))
    if not (np.isfinite(defect) and np.all(np.isfinite(dev))):
        return _Errors(np.inf, np.inf, np.inf)
    return _Errors(L1=comm.allreduce(float(weights @ dev), MPI.SUM),
                   Linf=comm.allreduce(float(np.max(dev, initial=0.0)), MPI.MAX),
                   defect=defect)


def _steepness(problem: Problem, L_phi: np.ndarray, L_hat: np.ndarray) -> float:
    """ρ-weighted RMS change of log φ and log φ̂ across one cell, at nine levels over [0, T].

    A linear interpolant of ``e^S`` whose logarithm changes by ``J`` across a cell is off by
    about ``J²/8`` relative to its size there, so a value above 0.3 means the linear
    representation misplaces mass at the 1 % level where the bridge has it; the log
    representation is smooth there (Gaussian potentials are quadratic). Owned cells only,
    allreduced: rank-independent.
    """
    tdim = problem.mesh.topology.dim
    cells = problem.V.dofmap.list[: problem.mesh.topology.index_map(tdim).size_local]
    num = den = 0.0
    # Nine levels spread over [0, T] describe the steepness well and keep the check far
    # cheaper than an iteration.
    for k in np.unique(np.linspace(0, L_phi.shape[0] - 1, 9).round().astype(int)):
        log_rho = L_phi[k] + L_hat[k]
        top = problem.comm.allreduce(float(np.max(log_rho, initial=-np.inf)), MPI.MAX)
        if not cells.size:
            continue
        with np.errstate(invalid="ignore"):
            w = np.exp(np.max(log_rho[cells], axis=1) - top)
            w = np.where(np.isfinite(w), w, 0.0)
            for values in (L_phi[k], L_hat[k]):
                jump = np.ptp(values[cells], axis=1)
                num += float(w @ np.where(np.isfinite(jump), jump, 0.0) ** 2)
        den += 2.0 * float(w.sum())
    num, den = problem.comm.allreduce(num, MPI.SUM), problem.comm.allreduce(den, MPI.SUM)
    return math.sqrt(num / den) if den > 0 else 0.0


def _finite(log_values: np.ndarray, comm) -> np.ndarray:
    """``log_values`` with ``-inf`` entries (zero marginal values) replaced by 700 below the
    smallest finite value (a factor 1e-304). Finite values are never touched: in log mode
    each factor spans thousands of units while their product is moderate."""
    bad = ~np.isfinite(log_values)
    if not comm.allreduce(int(bad.any()), MPI.MAX):
        return log_values
    low = comm.allreduce(float(np.min(log_values[~bad], initial=np.inf)), MPI.MIN)
    out = log_values.copy()
    out[bad] = low - _LOG_CAP
    return out


def _log_sum(log_values: np.ndarray, weights: np.ndarray, comm) -> float:
    """``log Σ_i m_i exp(v_i)`` over all ranks, without overflow."""
    top = comm.allreduce(float(np.max(log_values, initial=-np.inf)), MPI.MAX)
    local = float(weights @ np.exp(log_values - top))
    return top + math.log(comm.allreduce(local, MPI.SUM))


def _relax(old: np.ndarray | None, target: np.ndarray, omega: float) -> np.ndarray:
    """``(1-ω) old + ω target`` in the log domain (``-inf`` stays where the target is)."""
    if old is None or omega == 1.0:
        return target.copy()
    out = target.copy()
    ok = np.isfinite(target) & np.isfinite(old)
    out[ok] = (1.0 - omega) * old[ok] + omega * target[ok]
    return out


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
        error; ``relative_gap`` is their difference over the boundary value. Without
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
        out = {"kinetic": kinetic, "boundary": boundary,
               "relative_gap": abs(kinetic - boundary) / max(abs(boundary), 1e-300),
               "kinetic_rate": integrand}
        self.info["cost"] = out
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
    acceleration: bool = True,
    progress: bool = True,
    newton_options: dict | None = None,
    initial_log_phi_T=None,
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
            iteration.
        progress: a progress bar over iterations (rank 0).
        newton_options: SNES options for the log mode.
        initial_log_phi_T: optional starting ``log φ_T`` (callable of points or dof
            values); the default is ``φ_T = 1``.

    Returns:
        A :class:`Bridge`.

    Raises:
        BridgeError: on divergence, stagnation, or non-finite potentials, naming the
            iteration and the quantity; ``mode="linear"`` also on lost positivity or
            underflow.
    """
    from tqdm.auto import tqdm

    if not isinstance(problem, Problem):
        raise BridgesolveInputError(f"problem = {problem!r}: expected a bridgesolve.Problem")
    mode = choice("mode", mode, MODES)
    tol = positive("tol", tol)
    max_iter = positive_int("max_iter", max_iter)
    if problem.boundary != "reflecting":
        raise BridgesolveInputError(
            f"boundary = {problem.boundary!r}: the Schrödinger bridge needs 'reflecting' "
            "boundaries (potentials vanish on absorbing walls)"
        )
    t_start = time.perf_counter()
    comm = problem.comm
    weights = _lumped_weights(problem)
    n = weights.size
    m0 = _marginal(problem, rho0, "rho0", weights)
    m1 = _marginal(problem, rho1, "rho1", weights)
    for name, m in (("rho0", m0), ("rho1", m1)):
        if m.clipped:
            warnings.warn(f"{name}: {m.clipped} negative nodal values set to zero",
                          RuntimeWarning, stacklevel=2)

    if initial_log_phi_T is None:
        log_phi_T = np.zeros_like(m1.log)
    elif callable(initial_log_phi_T):
        u = fem.Function(problem.V)
        u.interpolate(as_numpy_callable(initial_log_phi_T, problem.domain.dim))
        log_phi_T = u.x.array.copy()
    else:
        log_phi_T = np.asarray(initial_log_phi_T, dtype=float).copy()
    current = "log" if mode == "log" else "linear"
    sweeps = (_LogSweeps(problem, killing, newton_options) if current == "log"
              else _LinearSweeps(problem, killing))
    history: list[dict] = []
    log_phi_hat_0 = None
    omega, rate_samples = 1.0, []
    accel = (0, np.inf)  # (iteration, error) when over-relaxation was switched on
    relax_allowed = bool(acceleration)
    stall_from = 0  # stagnation is judged on the history from here on
    converged = False
    L_phi = L_hat = None
    setup_s = time.perf_counter() - t_start
    bar = tqdm(total=max_iter, desc=f"Sinkhorn ({current})", unit="it", leave=False,
               disable=not progress or comm.rank != 0)

    def fail(message: str):
        raise BridgeError(f"Schrödinger bridge: {message}", history)

    def switch_to_log(reason: str) -> None:
        nonlocal sweeps, current, omega
        if mode != "auto":
            fail(f"iteration {len(history) + 1} ({current} mode): {reason}. Use mode='log' "
                 "(or 'auto'), or scheme='backward-euler' for positivity")
        sweeps.close()
        sweeps = _LogSweeps(problem, killing, newton_options)
        current, omega = "log", 1.0
        rate_samples.clear()
        events.append(f"switched to log mode: {reason}")
        bar.set_description("Sinkhorn (log)")

    events: list[str] = []
    try:
        while len(history) < max_iter:
            it = len(history) + 1
            L_phi, problem_text = sweeps.sweep(log_phi_T, backward=True)
            if problem_text is not None:
                switch_to_log(f"φ: {problem_text}")
                continue
            if not np.all(np.isfinite(L_phi[:-1])):
                fail(f"iteration {it}: log φ became non-finite in the backward solve")
            log_phi_0 = L_phi[0]
            err0 = (_marginal_error(_residual(log_phi_0, log_phi_hat_0, m0), m0, weights, comm)
                    if log_phi_hat_0 is not None else _Errors(np.nan, np.nan))
            log_phi_hat_0 = _relax(log_phi_hat_0, m0.log - log_phi_0, omega)
            L_hat, problem_text = sweeps.sweep(log_phi_hat_0, backward=False)
            if problem_text is not None:
                switch_to_log(f"φ̂: {problem_text}")
                continue
            if not np.all(np.isfinite(L_hat[1:])):
                fail(f"iteration {it}: log φ̂ became non-finite in the forward solve")
            errT = _marginal_error(_residual(log_phi_T, L_hat[-1], m1), m1, weights, comm)
            record = {"iteration": it, "mode": current, "omega": omega,
                      "err0_L1": err0.L1, "err0_Linf": err0.Linf,
                      "errT_L1": errT.L1, "errT_Linf": errT.Linf,
                      "mass_defect": errT.defect}
            if events:
                record["event"] = "; ".join(events)
                events.clear()
            history.append(record)
            err = max(errT.L1, err0.L1 if np.isfinite(err0.L1) else errT.L1)
            bar.set_postfix(err=f"{err:.2e}", omega=f"{omega:.2f}")
            bar.update()
            if not np.isfinite(errT.L1):
                fail(f"iteration {it}: the marginal error at t = T is not finite "
                     f"({current} mode)")
            due = it == 2 or it % 8 == 0 or (err < tol and np.isfinite(err0.L1))
            if current == "linear" and mode == "auto" and due:
                steep = _steepness(problem, L_phi, L_hat)
                if steep > RESOLUTION:
                    switch_to_log(f"log φ, log φ̂ change by {steep:.3g} per cell (ρ-weighted "
                                  "RMS) where the bridge has mass: too steep for the linear "
                                  "representation, smooth in the log one")
                    log_phi_T = _relax(log_phi_T, m1.log - L_hat[-1], 1.0)
                    continue
            if err < tol and np.isfinite(err0.L1):
                converged = True
                break
            same = [max(h["errT_L1"], h["err0_L1"]) for h in history[1:]
                    if h["mode"] == current and np.isfinite(h["err0_L1"])]
            best = min(same, default=np.inf)
            if len(same) > 5 and err > 1e3 * best:
                fail(f"iteration {it}: diverging — marginal L1 error {err:.3g} vs best "
                     f"{best:.3g} ({current} mode, ω = {omega:.3g})")
            # Acceleration: once the plain iteration is in its linear regime (steady error
            # ratios, error well below its saturation at 2), over-relax; back off on growth.
            # SOR-type iterations may grow transiently: back off only on sustained growth.
            prev = history[-2] if len(history) > 1 else None
            if omega != 1.0 and (err > 3.0 * accel[1] or
                                 (it - accel[0] >= 10 and err > accel[1])):
                omega = 1.0
                rate_samples.clear()
                events.append("no gain from over-relaxation: switched off (ω = 1)")
            elif prev is not None and np.isfinite(err0.L1) and np.isfinite(prev["err0_L1"]):
                ratio = err / max(prev["errT_L1"], prev["err0_L1"])
                if relax_allowed and omega == 1.0 and 0.0 < ratio < 1.0 and err < 1.0:
                    rate_samples.append(ratio)
                    last = np.array(rate_samples[-3:])
                    if last.size == 3 and np.ptp(last) < 0.05 * last.mean():
                        eta = float(np.exp(np.mean(np.log(last))))
                        candidate = min(1.8, 2.0 / (1.0 + math.sqrt(max(1.0 - eta, 0.0))))
                        if candidate > 1.05:
                            omega, accel = candidate, (it, err)
                            events.append(f"over-relaxation ω = {omega:.3f} (rate η = "
                                          f"{eta:.4f})")
            window = [max(h["errT_L1"], h["err0_L1"] if np.isfinite(h["err0_L1"]) else 0)
                      for h in history[stall_from:] if h["mode"] == current]
            # Best error of the last window against the best before it (transients of the
            # over-relaxation are not stagnation).
            if len(window) > STAGNATION_WINDOW and \
                    min(window[-STAGNATION_WINDOW:]) > 0.99 * min(window[:-STAGNATION_WINDOW]):
                reason = (f"stagnation: marginal L1 error {window[-1]:.3g} fell by < 1 % "
                          f"over {STAGNATION_WINDOW} iterations")
                if omega != 1.0:
                    # The discrete map can have eigenvalues near -1 (Crank–Nicolson's stiff
                    # modes), which over-relaxation amplifies: continue without it.
                    omega, relax_allowed, stall_from = 1.0, False, len(history)
                    events.append(f"{reason} with over-relaxation: switched off for good")
                elif current == "linear" and mode == "auto":
                    switch_to_log(reason)
                    continue
                else:
                    fail(f"iteration {it}: {reason} ({current} mode); the discrete problem "
                         "may be too coarse for the marginals (refine mesh or time grid)")
            log_phi_T = _relax(log_phi_T, m1.log - L_hat[-1], omega)
    finally:
        bar.close()
        sweeps.close()

    if L_phi is None or L_hat is None:  # pragma: no cover - max_iter >= 1
        fail("no iteration completed")
    if not converged:
        warnings.warn(f"Schrödinger bridge: not converged after {max_iter} iterations "
                      f"(last L1 errors: t=0 {history[-1]['err0_L1']:.3g}, "
                      f"t=T {history[-1]['errT_L1']:.3g})", RuntimeWarning, stacklevel=2)
    steep = _steepness(problem, L_phi, L_hat)
    if current == "linear" and steep > RESOLUTION:
        warnings.warn(
            f"Schrödinger bridge (linear mode): log φ, log φ̂ change by {steep:.3g} per cell "
            f"(ρ-weighted RMS, > {RESOLUTION:g}): the linear representation is inaccurate "
            "here; use mode='log' (or 'auto'), or refine the mesh", RuntimeWarning,
            stacklevel=2)
    V, grid = problem.V, problem.grid
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
    log_phi = SpaceTimeField(V, grid, L_phi, name="log_phi", representation="log")
    log_phi_hat = SpaceTimeField(V, grid, L_hat, name="log_phi_hat", representation="log")
    info = {
        "final_errors": final,
        "steepness": steep,
        "mass": mass,
        "mass_drift": float(np.max(np.abs(mass - mass[0])) / mass[0]),
        "marginal_mass_given": {"rho0": m0.mass_given, "rho1": m1.mass_given},
        "acceleration": bool(acceleration),
        "timings": {"setup_s": setup_s, "total_s": time.perf_counter() - t_start},
        "tol": tol,
    }
    if isinstance(sweeps, _LogSweeps):
        info["newton_iterations"] = sweeps.newton_iterations
    return Bridge(problem=problem, log_phi=log_phi, log_phi_hat=log_phi_hat, history=history,
                  converged=converged, mode=current, info=info, killing=killing)


__all__ = ["Bridge", "BridgeError", "gaussian_bridge", "solve_bridge"]
