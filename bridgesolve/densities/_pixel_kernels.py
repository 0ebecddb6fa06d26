r"""The 1D pixel factors of an image density, compiled when numba is present.

On a uniform grid (centres ``c_j = c_0 + j h``, ``ζ_j = (c_j - x)/s``, ``ε = h/s``) the
4-point Gauss–Legendre average of ``N(y; x, s²)`` over pixel ``j`` is (two ``±δ_p`` pairs)

    F_j ∝ e^{-(ζ_j² - ζ_*²)/2} Σ_p c_p (u_{pj} + 1/u_{pj}),   u_{pj} = e^{ζ_j δ_p},

with ``c_p = w_p e^{-δ_p²/2}`` and ``ζ_*`` the nearest centre (the row scale). Along a row
every exponential is a geometric recurrence (``e^{-ζ_{j+1}²/2} = e^{-ζ_j²/2}
e^{-ε ζ_j - ε²/2}``, ``u_{p,j+1} = u_{pj} e^{ε δ_p}``), so the kernel multiplies instead of
calling ``exp``; the recurrences restart from exact exponentials every :data:`RESTART`
pixels, which keeps the accumulated rounding below ``RESTART`` ulps. Without numba the same
sums are taken with NumPy (three exponentials per pixel).
"""

from __future__ import annotations

import math

import numpy as np

#: Pixels between exact restarts of the recurrences.
RESTART = 16
_G, _W = np.polynomial.legendre.leggauss(4)
_G, _W = np.ascontiguousarray(_G[2:]), np.ascontiguousarray(_W[2:])  # one node per ± pair

try:  # pragma: no cover - exercised where numba is installed
    import numba
except ImportError:  # pragma: no cover
    numba = None


def _constants(eps: float):
    delta = 0.5 * _G * eps
    return delta, _W * np.exp(-0.5 * delta * delta)


def _factors_numpy(x, c0, h, s, n, delta, c):
    zeta = (c0 + h * np.arange(n))[None, :] / s - (x / s)[:, None]
    den = np.zeros_like(zeta)
    num = np.zeros_like(zeta)
    for dp, cp in zip(delta, c, strict=True):
        u = np.exp(zeta * dp)
        inv = 1.0 / u
        den += cp * (u + inv)
        num += (cp * dp) * (u - inv)
    zs = zeta[np.arange(x.size), np.clip(np.rint((x - c0) / h), 0, n - 1).astype(int)]
    E = np.exp(-0.5 * (zeta * zeta - (zs * zs)[:, None]))
    return 0.5 * E * den, (zeta * den - num) / (den * s), -0.5 * zs * zs


if numba is not None:  # pragma: no branch

    @numba.njit(parallel=True, cache=True)
    def _factors_compiled(x, c0, h, s, n, delta, c, score, F, D, top):  # pragma: no cover
        eps = h / s
        r = math.exp(-eps * eps)
        rho0, rho1 = math.exp(eps * delta[0]), math.exp(eps * delta[1])
        ir0, ir1 = 1.0 / rho0, 1.0 / rho1
        ca, cb = c[0], c[1]
        na, nb = c[0] * delta[0], c[1] * delta[1]
        for i in numba.prange(x.size):
            xi = x[i]
            js = min(max(round((xi - c0) / h), 0), n - 1)
            zs = (c0 + js * h - xi) / s
            top[i] = -0.5 * zs * zs
            z0 = (c0 - xi) / s
            for b in range(0, n, RESTART):
                z = z0 + b * eps
                G = math.exp(-0.5 * (z * z - zs * zs))
                q = math.exp(-eps * z - 0.5 * eps * eps)
                u0 = math.exp(z * delta[0])
                u1 = math.exp(z * delta[1])
                v0, v1 = 1.0 / u0, 1.0 / u1
                for j in range(b, min(n, b + RESTART)):
                    den = ca * (u0 + v0) + cb * (u1 + v1)
                    F[i, j] = 0.5 * G * den
                    if score:
                        num = na * (u0 - v0) + nb * (u1 - v1)
                        D[i, j] = (z - num / den) / s
                        z += eps
                    G *= q
                    q *= r
                    u0 *= rho0
                    v0 *= ir0
                    u1 *= rho1
                    v1 *= ir1
    @numba.njit(parallel=True, cache=True)
    def _window2d_compiled(M, j1, j2, F1, D1, F2, D2, score, out):  # pragma: no cover
        for i in numba.prange(j1.size):
            v = g1 = g2 = 0.0
            for a in range(F1.shape[1]):
                row = j1[i] + a
                inner = dinner = 0.0
                for b in range(F2.shape[1]):
                    m = M[row, j2[i] + b]
                    inner += m * F2[i, b]
                    if score:
                        dinner += m * D2[i, b]
                v += F1[i, a] * inner
                if score:
                    g1 += D1[i, a] * inner
                    g2 += F1[i, a] * dinner
            out[i, 0], out[i, 1], out[i, 2] = v, g1, g2
    @numba.njit(parallel=True, cache=True)
    def _window_factors_compiled(z0, eps, s, nodes, coef, restart, F, D):  # pragma: no cover
        shrink = math.exp(-eps * eps)
        for i in numba.prange(z0.size):
            for k in range(F.shape[1]):
                F[i, k] = 0.0
                D[i, k] = 0.0
            for q in range(nodes.size):
                zq = z0[i] + 0.5 * eps * nodes[q]
                E = r = 0.0
                for k in range(F.shape[1]):
                    z = zq + k * eps
                    if k % restart == 0:
                        E = coef[q] * math.exp(-0.5 * z * z)
                        r = math.exp(-z * eps - 0.5 * eps * eps)
                    F[i, k] += E
                    D[i, k] += E * (z / s)
                    E *= r
                    r *= shrink
else:  # pragma: no cover
    _factors_compiled = None
    _window2d_compiled = None
    _window_factors_compiled = None


def window_factors(z0, eps: float, s: float, nodes, coef, restart: int, w: int):
    """Gauss–Legendre factors ``(F, dF/dx)`` of ``w`` pixels of width ``eps`` stds from the
    first centre at ``z0`` stds (per point; ``F = Σ_q coef_q e^{-z_q²/2}``), by geometric
    recurrences restarted every ``restart`` pixels: compiled where numba is present, else
    ``None``."""
    if _window_factors_compiled is None:
        return None
    F, D = np.empty((z0.size, w)), np.empty((z0.size, w))
    _window_factors_compiled(np.ascontiguousarray(z0, dtype=float), float(eps), float(s),
                             np.ascontiguousarray(nodes), np.ascontiguousarray(coef),
                             int(restart), F, D)
    return F, D


def window2d(M, j1, j2, F1, D1, F2, D2, score: bool):
    """``(p, ∂_1 p, ∂_2 p)`` per point of a 2D image from the factors of its window (pixels
    ``j1[i] + a``, ``j2[i] + b``): compiled where numba is present, else ``None``."""
    if _window2d_compiled is None:
        return None
    out = np.empty((j1.size, 3))
    _window2d_compiled(M, j1, j2, F1, D1, F2, D2, score, out)
    return out


def pixel_factors(x: np.ndarray, c0: float, h: float, s: float, n: int, *,
                  score: bool = True, buffers: dict | None = None):
    """``(F̃, d log F or None, log row scale)`` of ``n`` pixels of width ``h`` (first centre
    ``c0``) for points ``x`` and kernel std ``s`` (module doc); ``F̃`` lacks the constant
    ``1/(s√(2π))``, which the caller adds to the log row scale. ``buffers`` (a dict kept
    by the caller across chunks) holds the work arrays: fresh ones per chunk cost page
    faults comparable to the arithmetic."""
    delta, c = _constants(h / s)
    x = np.ascontiguousarray(x, dtype=float)
    if _factors_compiled is None:
        F, D, top = _factors_numpy(x, c0, h, s, n, delta, c)
        return F, (D if score else None), top
    buffers = {} if buffers is None else buffers
    m = x.size
    if buffers.get("F", np.empty((0, 0))).shape[0] < m or buffers["F"].shape[1] != n:
        buffers["F"], buffers["D"] = np.empty((m, n)), np.empty((m, n))
        buffers["top"] = np.empty(m)
    F, top = buffers["F"][:m], buffers["top"][:m]
    D = buffers["D"][:m] if score else buffers["D"][:1, :1]
    _factors_compiled(x, float(c0), float(h), float(s), int(n), delta, c, score, F, D, top)
    return F, (D if score else None), top
