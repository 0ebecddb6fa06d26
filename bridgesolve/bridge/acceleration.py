"""Acceleration of the Sinkhorn–Fortet iteration: adaptive over-relaxation of both
half-updates and Anderson acceleration of ``log φ_T`` (:class:`~bridgesolve.bridge.sinkhorn.
SinkhornLoop` owns one of each)."""

from __future__ import annotations

import math

import numpy as np

from bridgesolve._dolfinx import MPI


class OverRelaxation:
    """Adaptive over-relaxation of both half-updates in the log domain (module doc of
    :mod:`bridgesolve.bridge`): ``log φ_T ← (1-ω) log φ_T + ω log(ρ1/φ̂_T)``, likewise φ̂_0.

    It owns ω, the error ratios of the plain iteration it has seen, and when (iteration,
    error) it switched ω on. Once the plain iteration is in its linear regime (three steady
    ratios, error well below its saturation at 2) it sets ``ω = 2/(1 + sqrt(1 - η))``
    (capped at :attr:`OMEGA_MAX`); it backs off to ω = 1 on sustained growth (SOR-type
    iterations may grow transiently) and can be switched off for good.

    Args:
        enabled: ``False`` keeps ω = 1 throughout (the plain iteration).
    """

    #: The largest ω used.
    OMEGA_MAX = 1.8
    #: ω closer to 1 than this is not worth switching on.
    OMEGA_MIN_GAIN = 1.05
    #: Stalls with ω > 1 after which ω is re-measured; one more switches it off for good.
    MAX_STALLS = 1

    def __init__(self, enabled: bool):
        self.omega = 1.0
        self.allowed = bool(enabled)
        self.samples: list[float] = []
        self.since: tuple[int, float] = (0, np.inf)
        self.stalls = 0

    @property
    def active(self) -> bool:
        return self.omega != 1.0

    def reset(self) -> None:
        """Back to the plain iteration, forgetting the rate (a new representation)."""
        self.omega = 1.0
        self.samples.clear()

    def stall(self) -> bool:
        """The iteration stagnated with ω > 1: back to ω = 1. The first time the rate is
        measured afresh and ω may return (the stall is often a transient of the phase
        that ω was fitted in: 2D σ = 0.1 stalled at a marginal error of 1e-3 after the
        tilted phase handed over to Newton, then needed 65 plain iterations at rate 0.95
        that ω = 1.64 would have done in ~10); the second time it is off for good.
        Returns whether it is off for good."""
        self.stalls += 1
        if self.stalls > self.MAX_STALLS:
            self.disable()
            return True
        self.reset()
        return False

    def disable(self) -> None:
        """Off for good: the discrete map can have eigenvalues near -1 (Crank–Nicolson's
        stiff modes) that ω > 1 amplifies into a stall."""
        self.omega, self.allowed = 1.0, False

    def observe(self, iteration: int, err: float, previous: float | None) -> str | None:
        """Update ω after ``iteration`` reached ``err``; ``previous`` is the error of the
        iteration before (None when the two are not comparable). Returns the event text
        when ω changes."""
        if self.active and (err > 3.0 * self.since[1] or
                            (iteration - self.since[0] >= 10 and err > self.since[1])):
            self.reset()
            return "no gain from over-relaxation: switched off (ω = 1)"
        if previous is None or not self.allowed or self.active:
            return None
        ratio = err / previous
        if not (0.0 < ratio < 1.0 and err < 1.0):
            return None
        self.samples.append(ratio)
        last = np.array(self.samples[-3:])
        if last.size < 3 or np.ptp(last) >= 0.05 * last.mean():
            return None
        eta = float(np.exp(np.mean(np.log(last))))
        candidate = min(self.OMEGA_MAX, 2.0 / (1.0 + math.sqrt(max(1.0 - eta, 0.0))))
        if candidate <= self.OMEGA_MIN_GAIN:
            return None
        self.omega, self.since = candidate, (iteration, err)
        return f"over-relaxation ω = {self.omega:.3f} (rate η = {eta:.4f})"


class Anderson:
    """Anderson acceleration (type II, Walker & Ni 2011) of the Sinkhorn map on ``log φ_T``.

    The map ``G(x) = log ρ1 - log φ̂_T(x)`` commutes with constants, and in log mode its
    fixed point exists only up to one (the mass defect), so residuals ``G(x) - x`` are
    taken with their ρ1-weighted mean removed. With the last ``memory`` differences of
    residuals ``ΔF`` and of images ``ΔG``, the next iterate is ``G(x) - ΔG γ`` with ``γ``
    the (Tikhonov-regularized) least-squares fit of the residual, in the ρ1-weighted
    norm (rank-independent: allreduced Gram matrices). The memory is cleared when the
    marginal error grows (``restart`` times its best).

    Args:
        weights: lumped weights of the owned dofs.
        m1: the marginal at t = T (``bridgesolve.bridge.sinkhorn._Marginal``).
        comm: the mesh communicator.
        memory: how many differences to keep.
    """

    #: Marginal error below which it starts (before: over-relaxation, far less erratic
    #: while the potentials are far from the fixed point).
    START = 0.1

    def __init__(self, weights: np.ndarray, m1, comm, *, memory: int = 6,
                 restart: float = 10.0):
        n = weights.size
        self.n, self.comm, self.memory, self.restart = n, comm, memory, restart
        self.w = weights * m1.value[:n]
        self.X: list[np.ndarray] = []  # residuals f_k (owned dofs, mean removed)
        self.G: list[np.ndarray] = []  # images G(x_k) (all local dofs)
        self.best = np.inf
        self.restarts = 0

    def reset(self) -> None:
        self.X.clear()
        self.G.clear()

    def update(self, x: np.ndarray, g: np.ndarray, err: float) -> np.ndarray:
        """The next ``log φ_T`` from the iterate ``x``, its image ``g = G(x)`` and the
        marginal error ``err`` of this iteration."""
        if err > self.restart * self.best:
            self.reset()
            self.restarts += 1
        self.best = min(self.best, err)
        n = self.n
        ok = np.isfinite(g) & np.isfinite(x)
        f = np.where(ok, g - x, 0.0)[:n]
        total = self.comm.allreduce(float(self.w.sum()), MPI.SUM)
        f = f - self.comm.allreduce(float(self.w @ f), MPI.SUM) / total
        self.X.append(f)
        self.G.append(np.where(ok, g, 0.0))
        if len(self.X) > self.memory + 1:
            self.X.pop(0)
            self.G.pop(0)
        if len(self.X) < 2:
            return g.copy()
        dF = np.array([b - a for a, b in zip(self.X[:-1], self.X[1:], strict=True)])
        gram = self.comm.allreduce((dF * self.w) @ dF.T, MPI.SUM)
        rhs = self.comm.allreduce((dF * self.w) @ f, MPI.SUM)
        scale = max(float(np.trace(gram)), 1e-300)
        try:
            gamma = np.linalg.solve(gram + 1e-10 * scale * np.eye(len(rhs)), rhs)
        except np.linalg.LinAlgError:
            self.reset()
            return g.copy()
        dG = np.array([b - a for a, b in zip(self.G[:-1], self.G[1:], strict=True)])
        out = g.copy()
        out[ok] = (g - gamma @ dG)[ok]
        return out
