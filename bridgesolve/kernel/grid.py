"""Tensor grids of quadrature nodes on a box, and the lattice a set of points lies on.

A :class:`TensorGrid` holds equispaced nodes per axis with trapezoid weights. On a box that
holds the data (values and kernels negligible at the walls) the trapezoid rule is
spectrally accurate for smooth integrands: its error for a Gaussian factor of standard
deviation ``s`` sampled at spacing ``h`` is about ``2 exp(-2π² s²/h²)`` (4e-14 at
``s/h = 1.25``, :data:`RESOLUTION`), which is why the kernel path chooses ``h`` from the
narrowest width met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bridgesolve._validate import BridgesolveInputError

#: Nodes per standard deviation of the narrowest Gaussian factor (aliasing ~ 4e-14).
RESOLUTION = 1.25


def trapezoid_error(s_over_h: float) -> float:
    """The trapezoid rule's relative error on a Gaussian of std ``s`` at spacing ``h``."""
    return 2.0 * math.exp(-2.0 * math.pi**2 * s_over_h**2)


@dataclass(frozen=True)
class TensorGrid:
    """Equispaced nodes ``axes[k]`` on ``[lower[k], upper[k]]`` with trapezoid weights."""

    axes: tuple[np.ndarray, ...]

    @classmethod
    def box(cls, lower, upper, n) -> TensorGrid:
        lo, hi = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
        n = np.broadcast_to(np.asarray(n, dtype=int), lo.shape)
        if lo.shape != hi.shape or np.any(hi <= lo) or np.any(n < 2):
            raise BridgesolveInputError(
                f"grid box [{lo.tolist()}, {hi.tolist()}] with {n.tolist()} nodes: expected "
                "lower < upper and at least 2 nodes per axis")
        return cls(tuple(np.linspace(a, b, int(m)) for a, b, m in zip(lo, hi, n, strict=True)))

    @classmethod
    def covering(cls, lower, upper, h: float, *, at_least: int = 9) -> TensorGrid:
        """The grid of spacing at most ``h`` on the box (``at_least`` nodes per axis)."""
        lo, hi = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
        n = np.maximum(np.ceil((hi - lo) / h).astype(int) + 1, at_least)
        return cls.box(lo, hi, n)

    @property
    def dim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def spacing(self) -> np.ndarray:
        return np.array([a[1] - a[0] for a in self.axes])

    @property
    def lower(self) -> np.ndarray:
        return np.array([a[0] for a in self.axes])

    @property
    def upper(self) -> np.ndarray:
        return np.array([a[-1] for a in self.axes])

    def weights_1d(self, k: int) -> np.ndarray:
        a = self.axes[k]
        w = np.full(a.size, a[1] - a[0])
        w[[0, -1]] *= 0.5
        return w

    def log_weights(self) -> np.ndarray:
        """``log`` of the tensor trapezoid weights, of shape :attr:`shape` (computed once;
        read-only)."""
        return self._log_weights

    def weights(self) -> np.ndarray:
        """The tensor trapezoid weights, of shape :attr:`shape` (computed once; read-only)."""
        return self._weights

    @cached_property
    def _log_weights(self) -> np.ndarray:
        out = np.zeros(self.shape)
        for k in range(self.dim):
            out += _along(np.log(self.weights_1d(k)), k, self.dim)
        out.setflags(write=False)
        return out

    @cached_property
    def _weights(self) -> np.ndarray:
        out = np.exp(self._log_weights)
        out.setflags(write=False)
        return out

    def points(self) -> np.ndarray:
        """All nodes as ``(size, dim)`` points (C order: the last axis fastest)."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def integrate(self, values: np.ndarray) -> float:
        """The trapezoid integral of nodal ``values`` (of shape :attr:`shape`)."""
        out = np.asarray(values, dtype=float)
        for k in reversed(range(self.dim)):
            out = out @ self.weights_1d(k)
        return float(out)

    def coarse(self) -> TensorGrid:
        """Every other node (spacing 2h) where the node count allows, for error estimates."""
        return TensorGrid(tuple(a[::2] if a.size % 2 else a for a in self.axes))


def _along(v: np.ndarray, k: int, d: int) -> np.ndarray:
    """``v`` shaped to broadcast along axis ``k`` of a ``d``-dimensional array."""
    shape = [1] * d
    shape[k] = v.size
    return v.reshape(shape)


def lattice(points: np.ndarray, *, max_ratio: float = 4.0):
    """The tensor grid of the distinct coordinates of ``points`` and each point's index in
    it, when that grid is at most ``max_ratio`` times larger than the point set (the dofs
    of Lagrange spaces on structured box meshes); ``None`` otherwise.

    Returns:
        ``(axes, flat_index)``: sorted distinct coordinates per axis, and the C-order index
        of every point in their tensor grid.
    """
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return None
    axes, idx = [], []
    for k in range(pts.shape[1]):
        scale = max(1.0, float(np.abs(pts[:, k]).max()))
        key = np.round(pts[:, k] / (scale * 1e-10)).astype(np.int64)
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        axes.append(pts[first, k])
        idx.append(inverse.ravel())
    if math.prod(a.size for a in axes) > max_ratio * max(len(pts), 64):
        return None
    return tuple(axes), np.ravel_multi_index(tuple(idx), tuple(a.size for a in axes))


__all__ = ["RESOLUTION", "TensorGrid", "lattice", "trapezoid_error"]
