r"""The Schrödinger bridge of a linear reference by its exact transition kernel: Sinkhorn in
the log domain on a tensor grid, separable kernels, ε-scaling, every time on demand.

With the reference kernel ``k = k_{0,T}`` the bridge is ``π(x, y) = φ̂_0(x) k(x, y) φ_T(y)``
with ``φ̂_0 φ_0 = ρ_0``, ``φ_T φ̂_T = ρ_1``, ``φ_0 = ∫ k(·, y) φ_T(y) dy`` and
``φ̂_T = ∫ φ̂_0(x) k(x, ·) dx``; the trapezoid rule on a grid that resolves the data and
the kernel turns these into Sinkhorn's iteration (two separable log-domain convolutions
each). Intermediate times need no stepping: ``φ_t = ∫ k_{t,T}(·, y) φ_T(y) dy`` and
``φ̂_t = ∫ φ̂_0(x) k_{0,t}(x, ·) dx`` (Chapman–Kolmogorov), evaluated anywhere, with
``φ_T = ρ_1/φ̂_T`` and ``φ̂_0 = ρ_0/φ_0`` extended off the grid by their formulas (so short
times get finer source grids, or Gauss–Hermite quadrature, from the same potentials).
The cost is ``KL(π ‖ ρ_0 k) = ∫ ρ_1 log φ_T - ∫ ρ_0 log φ_0``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._validate import BridgesolveInputError, positive, positive_int
from bridgesolve.kernel.convolution import Transition, convolve, log_sum
from bridgesolve.kernel.diffusion import MASS_OUTSIDE_WARN, _box, _points
from bridgesolve.kernel.grid import RESOLUTION, TensorGrid
from bridgesolve.kernel.propagate import Propagator, product_width
from bridgesolve.kernel.sinkhorn import bridge_mass_outside, sinkhorn
from bridgesolve.kernel.sources import data_spacing, log_source
from bridgesolve.kernel.start import gaussian_start

#: ε-scaling: the stages' variance factors shrink by this ratio; each stage to this tol.
SCALING_RATIO, STAGE_TOL = 4.0, 1e-3


@dataclass
class KernelBridge:
    """A Schrödinger bridge solved by :func:`kernel_bridge`.

    Attributes:
        grid: the Sinkhorn grid; ``log_phi_hat_0`` and ``log_phi_T`` live on its nodes.
        history: per iteration ``iteration``, ``err0_L1``, ``err0_Linf`` (the ρ0 marginal's
            errors; the ρ1 marginal is exact after each half step: ``errT_* = 0``),
            ``stage`` (ε-scaling factor).
        info: timings, the cost, mass outside the box, the predicted quadrature error.
    """

    process: object
    T: float
    lower: np.ndarray
    upper: np.ndarray
    grid: TensorGrid
    kernel: Transition
    log_rho0: np.ndarray
    log_rho1: np.ndarray
    log_phi_hat_0: np.ndarray
    log_phi_T: np.ndarray
    sources: tuple
    history: list = field(default_factory=list)
    converged: bool = False
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.dim = self.grid.dim
        h = float(self.grid.spacing.max())
        self._phi = Propagator(self._log_phi_T_at, self.lower, self.upper, h, "backward",
                               on_grid=self._log_phi_T_at)
        self._hat = Propagator(self._log_phi_hat_0_at, self.lower, self.upper, h, "forward",
                               on_grid=self._log_phi_hat_0_at)
        # the Sinkhorn grid is both propagators' base grid: its potentials are known there
        self._phi._grids[0] = (self.grid, self.log_phi_T)
        self._hat._grids[0] = (self.grid, self.log_phi_hat_0)

    # -- the end potentials off the grid (points, or a tuple of axes: separable) -------
    def _log_phi_T_at(self, y) -> np.ndarray:
        hat_T = convolve(self.log_phi_hat_0, self.grid, self.kernel, y, direction="forward")
        return _data_at(self.sources[1], y) - self.info["log_mass"][1] - hat_T

    def _log_phi_hat_0_at(self, x) -> np.ndarray:
        phi_0 = convolve(self.log_phi_T, self.grid, self.kernel, x, direction="backward")
        return _data_at(self.sources[0], x) - self.info["log_mass"][0] - phi_0

    def _kernels(self, t: float) -> tuple[Transition | None, Transition | None]:
        if not 0.0 <= t <= self.T:
            raise BridgesolveInputError(f"t = {t!r}: expected 0 <= t <= T = {self.T:g}")
        later = None if t == self.T else Transition.of(self.process, self.T, t)
        earlier = None if t == 0.0 else Transition.of(self.process, t, 0.0)
        return later, earlier

    # -- fields at any time ----------------------------------------------------------
    def log_phi(self, x, t: float) -> np.ndarray:
        return self._phi.values(self._kernels(t)[0], _points(x, self.dim))

    def log_phi_hat(self, x, t: float) -> np.ndarray:
        return self._hat.values(self._kernels(t)[1], _points(x, self.dim))

    def grad_log_phi(self, x, t: float) -> np.ndarray:
        return self._phi.gradient(self._kernels(t)[0], _points(x, self.dim))

    def grad_log_phi_hat(self, x, t: float) -> np.ndarray:
        return self._hat.gradient(self._kernels(t)[1], _points(x, self.dim))

    def log_rho(self, x, t: float) -> np.ndarray:
        """``log ρ_t = log φ_t + log φ̂_t`` (unit mass over R^d)."""
        return self.log_phi(x, t) + self.log_phi_hat(x, t)

    def rho(self, x, t: float) -> np.ndarray:
        return np.exp(self.log_rho(x, t))

    def score(self, x, t: float) -> np.ndarray:
        return self.grad_log_phi(x, t) + self.grad_log_phi_hat(x, t)

    def forward_drift(self, x, t: float) -> np.ndarray:
        """``f + g² ∇log φ_t``: the drift of the bridge forward in time."""
        pts = _points(x, self.dim)
        return self.process.drift(pts, t) + 2.0 * float(self.process.diffusion(t)) \
            * self.grad_log_phi(pts, t)

    def backward_drift(self, x, t: float) -> np.ndarray:
        """``f - g² ∇log φ̂_t``: the drift of the time-reversed bridge (in forward time)."""
        pts = _points(x, self.dim)
        return self.process.drift(pts, t) - 2.0 * float(self.process.diffusion(t)) \
            * self.grad_log_phi_hat(pts, t)

    def on_grid(self, axes: tuple, t: float) -> np.ndarray:
        """``log ρ_t`` on the tensor grid of ``axes`` (separable: the fast output)."""
        later, earlier = self._kernels(t)
        axes = tuple(map(np.asarray, axes))
        return self._phi.values(later, axes) + self._hat.values(earlier, axes)

    def mass_outside(self, t: float) -> float:
        """``1 - ∫_box ρ_t``: the share of the free-space bridge outside the box (0 at the
        ends, whose data were cut to the box: ``_check_data_mass`` warns about that)."""
        later, earlier = self._kernels(t)
        if later is None or earlier is None:
            return 0.0
        return bridge_mass_outside(self.log_rho0, self.log_phi_hat_0, self.log_phi_T,
                                   self.grid, earlier, later, self.lower, self.upper)

    @property
    def cost(self) -> float:
        """``KL(π ‖ ρ0 k_{0,T})``, the bridge's KL cost against the reference."""
        return self.info["cost"]

    @property
    def iterations(self) -> int:
        return len(self.history)


def _data_at(source, out) -> np.ndarray:
    if isinstance(out, tuple):
        grid = TensorGrid(out)
        return source(grid.points()).reshape(grid.shape)
    return source(out)


def _sinkhorn_grid(process, rho0, rho1, lo, hi, T, h) -> tuple[TensorGrid, Transition]:
    kernel = Transition.of(process, T, 0.0)
    scale = data_spacing([rho0, rho1], lo, hi, h) * RESOLUTION
    step = product_width(scale, min(kernel.source_width, math.sqrt(kernel.var))) / RESOLUTION
    return TensorGrid.covering(lo, hi, step), kernel


def _normalized(log_values: np.ndarray, grid: TensorGrid, name: str) -> tuple[np.ndarray,
                                                                              float]:
    lm = log_sum(log_values + grid.log_weights())
    if not np.isfinite(lm):
        raise BridgesolveInputError(f"{name} has no mass on the grid {grid.shape} of the box: "
                                    "expected a density with mass inside it")
    return log_values - lm, lm


def kernel_bridge(process, rho0, rho1, lower, upper, T: float = 1.0, *,
                  h: float | None = None, tol: float = 1e-10, max_iter: int = 20_000,
                  scaling: float | None = None, domain: str = "auto", start: str = "gaussian"
                  ) -> KernelBridge:
    """The Schrödinger bridge between ``rho0`` and ``rho1`` under the linear ``process``
    on ``[0, T]`` (module doc); the data are sampled on the box ``[lower, upper]``.

    Args:
        h: a spacing that resolves the data (default: their length scale over
            :data:`~bridgesolve.kernel.grid.RESOLUTION`); the Sinkhorn grid's spacing is
            finer, ``product_width(RESOLUTION h, kernel width) / RESOLUTION``, so that it
            resolves the product of data and kernel.
        tol: stop when the L1 error of the ρ0 marginal is below ``tol`` (ρ1's is exact).
        max_iter: iteration limit (all stages); reaching it warns.
        scaling: ε-scaling: start with the reference variance times ``scaling`` (> 1) and
            divide it by :data:`SCALING_RATIO` per stage, each solved to :data:`STAGE_TOL`;
            potentials carried over scaled like 1/ε. None: no scaling.
        domain: where Sinkhorn runs: ``"scaling"`` (matrix products), ``"log"``
            (log-sum-exp) or ``"auto"`` (scaling where the kernel's range allows it, log
            after an underflow; :mod:`bridgesolve.kernel.sinkhorn`). ``info["domain"]``
            says what ran, per ε-stage.
        start: the first ``log φ_T``: ``"gaussian"``, the bridge between the Gaussians that
            match the data's moments (:mod:`bridgesolve.kernel.start`; one or two
            iterations for Gaussian data), or ``"ones"`` (``φ_T = 1``). ``info["start"]``
            says which was used (``"ones"`` where the moments are degenerate).
    """
    t0 = time.perf_counter()
    T, tol = positive("T", T), positive("tol", tol)
    max_iter = positive_int("max_iter", max_iter)
    lo, hi = _box(lower, upper)
    sources = (log_source(rho0, lo.size, "rho0"), log_source(rho1, lo.size, "rho1"))
    grid, kernel = _sinkhorn_grid(process, rho0, rho1, lo, hi, T, h)
    pts = grid.points()
    (lr0, m0), (lr1, m1) = (_normalized(s(pts).reshape(grid.shape), grid, n)
                            for s, n in zip(sources, ("rho0", "rho1"), strict=True))
    _check_data_mass(((rho0, "rho0", m0), (rho1, "rho1", m1)))
    history: list[dict] = []
    factors = _stages(scaling)
    g, started = _start(start, lr0, lr1, grid, Transition(kernel.a, kernel.var * factors[0],
                                                           kernel.center))
    domains = []
    t_iter = time.perf_counter()
    for i, lam in enumerate(factors):
        k = Transition(kernel.a, kernel.var * lam, kernel.center)
        last = i == len(factors) - 1
        f, g, converged, used = sinkhorn(lr0, lr1, grid, k, g, tol if last else STAGE_TOL,
                                         max_iter - len(history), history, lam, domain)
        domains.append(used)
        if not last:
            g = g * lam / factors[i + 1]
    w = grid.log_weights()
    lphi0 = lr0 - f
    info = {"log_mass": (m0, m1), "grid": list(grid.shape), "h": grid.spacing.tolist(),
            "cost": float(np.exp(lr1 + w).ravel() @ g.ravel()
                          - np.exp(lr0 + w).ravel() @ lphi0.ravel()),
            "final_errors": {"err0_L1": history[-1]["err0_L1"], "errT_L1": 0.0},
            "domain": domains if len(domains) > 1 else domains[0], "start": started,
            "timings": {"sinkhorn_s": time.perf_counter() - t_iter}}
    bridge = KernelBridge(process, T, lo, hi, grid, kernel, lr0, lr1, f, g, sources,
                          history, converged, info)
    if not converged:
        warnings.warn(f"kernel bridge: {len(history)} iterations without reaching tol = "
                      f"{tol:g} (L1 error {history[-1]['err0_L1']:.3g}); raise max_iter or "
                      "use ε-scaling (scaling=...)", RuntimeWarning, stacklevel=2)
    _check_walls(bridge)
    info["timings"]["total_s"] = time.perf_counter() - t0
    return bridge


#: Mass of a normalized density outside the box above which a run warns (as the FE path).
DATA_OUTSIDE_WARN = 1e-6


def _check_data_mass(items) -> None:
    """Warn when a density of bridgesolve.densities has mass outside the box (the bridge
    is then one between the data cut to the box)."""
    from bridgesolve.densities import is_probability_density

    for rho, name, log_mass in items:
        outside = 1.0 - math.exp(log_mass)
        if is_probability_density(rho) and outside > DATA_OUTSIDE_WARN:
            warnings.warn(f"{name} has mass {outside:.3g} outside the box (> "
                          f"{DATA_OUTSIDE_WARN:g}): the bridge is between the data cut to "
                          "it; enlarge the box", RuntimeWarning, stacklevel=4)


def _start(start: str, lr0, lr1, grid: TensorGrid, kernel: Transition
           ) -> tuple[np.ndarray, str]:
    if start not in ("gaussian", "ones"):
        raise BridgesolveInputError(f"start = {start!r}: expected 'gaussian' or 'ones'")
    g = gaussian_start(lr0, lr1, grid, kernel) if start == "gaussian" else None
    return (np.zeros(grid.shape), "ones") if g is None else (g, "gaussian")


def _stages(scaling: float | None) -> list[float]:
    if scaling is None:
        return [1.0]
    if not (np.isfinite(scaling) and scaling > 1):
        raise BridgesolveInputError(f"scaling = {scaling!r}: expected a factor > 1 or None")
    n = max(1, math.ceil(math.log(scaling) / math.log(SCALING_RATIO)))
    return [scaling / SCALING_RATIO**j for j in range(n)] + [1.0]


def _check_walls(bridge: KernelBridge) -> None:
    """Warn when the free-space bridge has left the box at T/2 (a reflecting-wall FE solve
    would differ there; one time only: in 3D the check costs more than the Sinkhorn)."""
    share = {0.5: bridge.mass_outside(0.5 * bridge.T)}  # the widest bridge marginal
    bridge.info["mass_outside"] = {f"{f:g} T": v for f, v in share.items()}
    worst = max(share, key=share.get)
    out = share[worst]
    if out > MASS_OUTSIDE_WARN:
        warnings.warn(f"the kernel bridge has mass {out:.3g} outside the box at t = {worst:g} T "
                      f"(> {MASS_OUTSIDE_WARN:g}): the data or the bridge are not held by "
                      "the box; enlarge it", RuntimeWarning, stacklevel=3)


__all__ = ["KernelBridge", "kernel_bridge"]
