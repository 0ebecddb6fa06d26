"""A log-density source carried by transition kernels to any time: the source grid that
resolves each kernel, chosen and cached, and values or gradients on grids or points.

The trapezoid rule resolves ``∫ f(x) k(x, y) dx`` when its spacing resolves the integrand,
whose width is that of a product of the source's length scale ``ℓ`` and the kernel's width
``s = √v/a``: ``(ℓ^{-2} + s^{-2})^{-1/2}`` (:data:`~bridgesolve.kernel.grid.RESOLUTION`
nodes per standard deviation). Short times need fine grids: spacings are
``h_data / 2^m``, so few distinct grids are built, and capped at ``max_nodes`` (beyond, the
predicted aliasing error is reported instead of being negligible).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bridgesolve.kernel.convolution import Transition, convolve, convolve_with_gradient
from bridgesolve.kernel.grid import RESOLUTION, TensorGrid, trapezoid_error

#: Source nodes at most (all axes together) per propagated grid.
MAX_NODES = {1: 200_000, 2: 1_000_000, 3: 2_500_000}
#: Relative step of central differences for gradients of a source at zero variance.
_FD_STEP = 1e-5
#: Kernels narrower than this share of the source's length scale are integrated by
#: Gauss–Hermite quadrature in the kernel's variable (the source evaluated at shifted points)
#: instead of on a source grid.
HERMITE_BELOW = 0.25
#: Gauss–Hermite nodes per axis.
HERMITE_NODES = {1: 24, 2: 16, 3: 10}
_POINTS_PER_BLOCK = 1 << 14


def product_width(*widths: float) -> float:
    """The standard deviation of a product of Gaussians of the given widths: the integrand
    ``f(x) k(x, y)`` is narrower than either factor."""
    return float(sum(w**-2.0 for w in widths) ** -0.5)


class Propagator:
    """``log ∫ exp(log_source(x)) k(x, ·) dx`` (forward) or ``log ∫ k(·, y) exp(log_source
    (y)) dy`` (backward) for kernels of any width.

    Args:
        log_source: ``points (N, d) -> (N,)`` log values (``-inf`` for zeros).
        lower, upper: the box the source lives on.
        h_data: a spacing that resolves the source itself.
        direction: ``"forward"`` or ``"backward"``.
        on_grid: optional ``axes -> log values`` on their tensor grid, where the source
            has a faster (separable) form there than at points.
    """

    def __init__(self, log_source: Callable[[np.ndarray], np.ndarray], lower, upper,
                 h_data: float, direction: str, *, max_nodes: int | None = None,
                 on_grid: Callable[[tuple], np.ndarray] | None = None):
        self.log_source = log_source
        self.on_grid = on_grid
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.h_data = float(h_data)
        self.direction = direction
        self.max_nodes = max_nodes or MAX_NODES[self.lower.size]
        self._grids: dict[int, tuple[TensorGrid, np.ndarray]] = {}
        #: ``(integrand width / h)`` of the coarsest resolution met, for the error estimate.
        self.worst_ratio = math.inf

    def source(self, kernel: Transition) -> tuple[TensorGrid, np.ndarray]:
        """The source grid resolving ``kernel`` and the log source on it (cached)."""
        need = product_width(self.h_data * RESOLUTION, kernel.source_width) / RESOLUTION
        m = max(0, math.ceil(math.log2(self.h_data / need) - 1e-12))
        while True:
            h = self.h_data / 2**m
            n = np.ceil((self.upper - self.lower) / h) + 1
            if m == 0 or np.prod(n) <= self.max_nodes:
                break
            m -= 1
        if m not in self._grids:
            grid = TensorGrid.covering(self.lower, self.upper, h)
            self._grids[m] = grid, self._at(grid.axes)
        grid, values = self._grids[m]
        width = product_width(self.h_data * RESOLUTION, kernel.source_width)
        self.worst_ratio = min(self.worst_ratio, width / grid.spacing.max())
        return grid, values

    @property
    def aliasing_error(self) -> float:
        """The trapezoid rule's predicted relative error at the worst resolution used."""
        return trapezoid_error(self.worst_ratio) if np.isfinite(self.worst_ratio) else 0.0

    def values(self, kernel: Transition | None, out) -> np.ndarray:
        """Log values on ``out`` (a tuple of axes, or points); ``kernel=None`` is the
        source itself."""
        if kernel is None or kernel.var == 0.0:
            return self._at(out)
        if self._narrow(kernel):
            return self._on_out(out, lambda pts: self._hermite(kernel, pts)[0])
        grid, values = self.source(kernel)
        return convolve(values, grid, kernel, out, direction=self.direction)

    def gradient(self, kernel: Transition | None, points: np.ndarray) -> np.ndarray:
        """Gradients of the log values at ``points`` (central differences of the source at
        zero variance)."""
        if kernel is None or kernel.var == 0.0:
            return self._source_gradient(points)
        if self._narrow(kernel):
            return self._hermite(kernel, np.asarray(points, float))[1]
        grid, values = self.source(kernel)
        return convolve_with_gradient(values, grid, kernel, points,
                                      direction=self.direction)[1]

    def _narrow(self, kernel: Transition) -> bool:
        return kernel.source_width < HERMITE_BELOW * RESOLUTION * self.h_data

    @staticmethod
    def _on_out(out, fn) -> np.ndarray:
        if isinstance(out, tuple):
            grid = TensorGrid(tuple(np.asarray(a, float) for a in out))
            return fn(grid.points()).reshape(grid.shape)
        return fn(np.asarray(out, float))

    def _at(self, out) -> np.ndarray:
        if isinstance(out, tuple) and self.on_grid is not None:
            return self.on_grid(out)
        return self._on_out(out, self.log_source)

    def _hermite(self, kernel: Transition, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log values and gradients at ``pts`` by Gauss–Hermite quadrature over the kernel's
        Gaussian variable ``Z``: forward ``a^{-d} E f((y - b - √v Z)/a)``, backward
        ``E g(a z + b + √v Z)``; gradients by Stein's identity (``E[∂_Z h] = E[Z h]``)."""
        d = pts.shape[1]
        z, w = np.polynomial.hermite_e.hermegauss(HERMITE_NODES[d])
        zs = np.stack([m.ravel() for m in np.meshgrid(*[z] * d, indexing="ij")], axis=1)
        logw = np.log(np.prod(np.stack(np.meshgrid(*[w] * d, indexing="ij")), axis=0).ravel()
                      / (2 * np.pi) ** (d / 2))
        a, b, sd = kernel.a, (1.0 - kernel.a) * kernel.center, np.sqrt(kernel.var)
        logs, grads = [], []
        for lo in range(0, len(pts), _POINTS_PER_BLOCK):
            y = pts[lo:lo + _POINTS_PER_BLOCK]
            if self.direction == "forward":
                x = (y[:, None, :] - b - sd * zs[None]) / a
                sign, scale, jac = -1.0, 1.0 / sd, -d * np.log(a)
            else:
                x = a * y[:, None, :] + b + sd * zs[None]
                sign, scale, jac = 1.0, a / sd, 0.0
            h = self.log_source(x.reshape(-1, d)).reshape(len(y), -1) + logw
            top = np.max(h, axis=1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            e = np.exp(h - top)
            total = e.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                logs.append(np.log(total) + top[:, 0] + jac)
                grads.append(sign * scale * (e @ zs) / total[:, None])
        return np.concatenate(logs), np.concatenate(grads)

    def _source_gradient(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, float)
        step = _FD_STEP * max(1.0, float(np.abs(self.upper - self.lower).max()))
        grads = []
        for k in range(pts.shape[1]):
            e = np.zeros(pts.shape[1])
            e[k] = step
            grads.append((self.log_source(pts + e) - self.log_source(pts - e)) / (2 * step))
        return np.stack(grads, axis=-1)


__all__ = ["MAX_NODES", "Propagator"]
