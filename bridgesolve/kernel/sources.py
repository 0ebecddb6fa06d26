"""User data as log sources for the kernel path: checked log values, and the spacing that
resolves them."""

from __future__ import annotations

import math

import numpy as np

from bridgesolve._validate import BridgesolveInputError

#: Nodes per box side when the data say nothing of their length scale.
DEFAULT_NODES = 129


def log_source(rho, dim: int, name: str):
    """``points -> log rho(points)``, checked: one finite, non-negative value per point."""
    if hasattr(rho, "log_pdf"):
        def logged(x):
            return _checked(np.asarray(rho.log_pdf(x), dtype=float), x, name, log=True)
        return logged
    f = rho.pdf if hasattr(rho, "pdf") else rho
    if not callable(f):
        raise BridgesolveInputError(f"{name} = {rho!r}: expected a density of "
                                    "bridgesolve.densities or a callable of points (N, d)")

    def call(x):
        values = _checked(np.asarray(f(x), dtype=float), x, name, log=False)
        with np.errstate(divide="ignore"):
            return np.log(values)
    return call


def _checked(values: np.ndarray, x: np.ndarray, name: str, *, log: bool) -> np.ndarray:
    n = x.shape[0]
    if values.shape not in ((n,), (n, 1)):
        raise BridgesolveInputError(f"{name} returned shape {values.shape} for {n} points: "
                                    f"expected ({n},)")
    values = values.reshape(n)
    bad = np.isnan(values) | (values == np.inf) if log else ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise BridgesolveInputError(
            f"{name}({x[i].tolist()}) = {values[i]!r}: expected a finite, non-negative "
            f"{'log-' if log else ''}density value")
    return values


def length_scale(rho) -> float | None:
    """The narrowest feature of ``rho`` when it says (densities of bridgesolve.densities)."""
    scale = getattr(rho, "length_scale", None)
    if scale is not None:
        return float(scale)
    covs = getattr(rho, "covs", None)
    if covs is not None:
        return float(math.sqrt(min(np.linalg.eigvalsh(c).min() for c in np.asarray(covs))))
    return None


def data_spacing(rhos, lower, upper, h: float | None) -> float:
    """The source spacing: ``h`` when given, else the data's narrowest length scale over
    :data:`~bridgesolve.kernel.grid.RESOLUTION`, else the box side over 128 (callables say
    nothing of their scale: pass ``h`` for narrower data)."""
    from bridgesolve.kernel.grid import RESOLUTION

    if h is not None:
        if not (np.isfinite(h) and h > 0):
            raise BridgesolveInputError(f"h = {h!r}: expected a positive spacing")
        return float(h)
    side = float(np.max(np.asarray(upper, float) - np.asarray(lower, float)))
    scales = [s for s in map(length_scale, rhos) if s is not None]
    return min(scales) / RESOLUTION if scales else side / (DEFAULT_NODES - 1)


__all__ = ["data_spacing", "length_scale", "log_source"]
