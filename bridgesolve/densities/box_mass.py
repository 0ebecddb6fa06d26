r"""Exact masses of box mixtures and images inside a box, and their jump grids.

A box family (:class:`~bridgesolve.densities.boxes.BoxMixture`, the checkerboard;
:class:`~bridgesolve.densities.boxes.ImageDensity`) is a sum of products of 1D factors,
the uniform law on ``[l, u]`` (edges after the affine state ``a, b``) convolved with
``N(0, s²)``. The mass of one factor in ``[L, H]`` is closed-form: with
``G(z) = ∫_{-∞}^z Φ = z Φ(z) + φ(z)`` (:func:`_G`, stable in both tails), the mass left of
``L`` is ``s [G((L - l)/s) - G((L - u)/s)] / (u - l)`` and right of ``H`` is
``s [G((u - H)/s) - G((l - H)/s)] / (u - l)``; at ``s = 0`` it is the overlap length over
``u - l``. :func:`mass_in_box` multiplies the factors over axes and sums over boxes (pixels):
``∫_{[L, H]} ρ`` to round-off, where quadrature on a mesh whose cells cut the jumps is only
good to the cells' resolution of the jumps.

:func:`jump_grid` gives the per-axis edges of the tensor grid on whose boxes a box family
at ``s = 0`` is constant (the L2 projection integrates it exactly cell piece by cell piece:
:mod:`bridgesolve.pde.cut_cells`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfcx

from bridgesolve.densities.boxes import BoxMixture, ImageDensity

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _G(z: np.ndarray) -> np.ndarray:
    """``∫_{-∞}^z Φ(t) dt = z Φ(z) + φ(z)``: ``e^{-z²/2} (1/√(2π) + z erfcx(-z/√2)/2)``
    for ``z <= 0`` (no underflow of Φ), ``z + G(-z)`` above."""
    z = np.asarray(z, dtype=float)
    m = -np.abs(z)
    with np.errstate(under="ignore"):
        low = np.exp(-0.5 * m * m) * (_INV_SQRT_2PI + 0.5 * m * erfcx(-m / math.sqrt(2.0)))
    return np.where(z > 0, z + low, low)


def _factor_mass(lo: np.ndarray, hi: np.ndarray, s: float, L: float, H: float) -> np.ndarray:
    """Mass in ``[L, H]`` of the uniform law on ``[lo, hi]`` (arrays) convolved with
    ``N(0, s²)``."""
    width = hi - lo
    if s == 0.0:
        return np.clip(np.minimum(hi, H) - np.maximum(lo, L), 0.0, None) / width
    left = s * (_G((L - lo) / s) - _G((L - hi) / s)) / width if np.isfinite(L) else 0.0
    right = s * (_G((hi - H) / s) - _G((lo - H) / s)) / width if np.isfinite(H) else 0.0
    return np.clip(1.0 - left - right, 0.0, 1.0)


def _edges(density, lower: np.ndarray, upper: np.ndarray):
    st = density.state
    b = st.shift(density.dim)
    return st.a * lower + b, st.a * upper + b, math.sqrt(st.v)


def mass_in_box(density, lower, upper) -> float | None:
    """``∫_{[lower, upper]} density`` in closed form for box mixtures and images (any
    state of a linear process); None for other densities."""
    L = np.atleast_1d(np.asarray(lower, dtype=float))
    H = np.atleast_1d(np.asarray(upper, dtype=float))
    if isinstance(density, BoxMixture):
        lo, hi, s = _edges(density, density.lower, density.upper)
        if L.size != density.dim:
            return None
        per_box = np.ones(density.weights.size)
        for i in range(density.dim):
            per_box = per_box * _factor_mass(lo[:, i], hi[:, i], s, L[i], H[i])
        return float(density.weights @ per_box)
    if isinstance(density, ImageDensity):
        if L.size != density.dim:
            return None
        M = density.masses
        st = density.state
        shift = st.shift(density.dim)
        s = math.sqrt(st.v)
        for i in range(density.dim):
            grid = st.a * np.linspace(density.lower[i], density.upper[i],
                                      density.masses.shape[i] + 1) + shift[i]
            f = _factor_mass(grid[:-1], grid[1:], s, L[i], H[i])
            M = np.tensordot(f, M, axes=([0], [0]))  # contracts axis i (now the first)
        return float(M)
    return None


def jump_grid(density) -> list[np.ndarray] | None:
    """Per-axis sorted edges of the tensor grid on whose boxes ``density`` is constant: box
    mixtures and images before any noise (``state.v == 0``); None otherwise."""
    if not isinstance(density, BoxMixture | ImageDensity) or density.state.v != 0.0:
        return None
    st = density.state
    shift = st.shift(density.dim)
    if isinstance(density, BoxMixture):
        return [np.unique(st.a * np.concatenate([density.lower[:, i], density.upper[:, i]])
                          + shift[i]) for i in range(density.dim)]
    return [st.a * np.linspace(density.lower[i], density.upper[i], density.masses.shape[i] + 1)
            + shift[i] for i in range(density.dim)]


__all__ = ["jump_grid", "mass_in_box"]
