"""The solved Schrödinger bridge: potentials, marginals, drifts, the KL cost and a summary."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bridgesolve._dolfinx import MPI, fem, ufl
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField
from bridgesolve.storage import map_levels

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

    def _linear(self, fn, values: tuple[np.ndarray, ...], name: str) -> SpaceTimeField:
        # in the potentials' storage: on disk, level by level (map_levels)
        with np.errstate(over="ignore"):
            return SpaceTimeField(self.problem.V, self.grid,
                                  map_levels(fn, *values, name=name), name=name)

    @cached_property
    def phi(self) -> SpaceTimeField:
        """φ (linear representation; may under/overflow where the log does not)."""
        return self._linear(np.exp, (self.log_phi.values,), "phi")

    @cached_property
    def phi_hat(self) -> SpaceTimeField:
        return self._linear(np.exp, (self.log_phi_hat.values,), "phi_hat")

    @cached_property
    def log_rho(self) -> SpaceTimeField:
        return SpaceTimeField(self.problem.V, self.grid,
                              map_levels(np.add, self.log_phi.values, self.log_phi_hat.values,
                                         name="log_rho"),
                              name="log_rho", representation="log")

    @cached_property
    def rho(self) -> SpaceTimeField:
        """The bridge marginals ``ρ_t = φ φ̂`` (nodal products)."""
        return self._linear(lambda a, b: np.exp(a + b),
                            (self.log_phi.values, self.log_phi_hat.values), "rho")

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
                                              "factorizations", "marginal_mass_given",
                                              "initial_projection", "fallback")}}
        if self.killing is None:
            c = self.cost()
            out["cost"] = {"kinetic": c["kinetic"], "boundary": c["boundary"],
                           "relative_gap": c["relative_gap"]}
        return out

    def __repr__(self) -> str:
        return (f"Bridge(mode={self.mode!r}, iterations={self.iterations}, "
                f"converged={self.converged}, {self.problem!r})")
