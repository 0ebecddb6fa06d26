r"""Image densities on many points: local windows for narrow kernels, panel-wise Chebyshev
interpolation for wide ones, each with a bound on its error at every point.

An image diffused by a linear process is ``p(x) = Σ_j M_j Π_i F_i(x_i, j_i)`` with the 1D
pixel factors ``F_i(x, j) = [Φ((u_j - x)/s) - Φ((l_j - x)/s)] / (u_j - l_j)``
(:func:`~bridgesolve.densities.boxes.log_interval`). The dense product costs
``Π n_i`` per point (a 512² image: 2.6e5 multiply-adds and 1024 factors per point). Two
exact-to-a-bound shortcuts:

* **window** (kernel narrow against the image): only the pixels within ``R s`` of ``x``
  on every axis are summed (:data:`R_WINDOW` = 10 stds). Every pixel outside is farther
  than ``R s`` on some axis, so the omitted sum is at most ``Σ_i Φ(-R)/h_i Π_{k≠i}
  max F_k`` (``Σ M = 1``), with the same for the gradient: a constant against which each
  point's density is compared.
* **interp** (kernel wide against the pixels): ``p`` is an entire function varying on
  the scale ``s``. On panels of half-width ``s`` it is interpolated at :data:`K_CHEB`
  Chebyshev points per axis (the node values by the dense product, at ``K^d`` nodes per
  panel instead of at every point), and each point costs ``K^d``. The interpolation error
  of every pixel's factor is measured on each panel at ``K + 1`` test points (the ends and
  the angle midpoints between the nodes, where it peaks)
  (``err_i[b, j]``), and the tables ``Σ_j M_j err_1 (max F_2 + err_2) + …`` bound the
  error of ``p`` and of its gradient per panel.

A point is accepted where its bound is below :data:`TOL` times its density (and density
over ``s`` for the gradient); the others (far tails, empty regions) return ``ok = False``
and are evaluated by the dense product, so the result is as accurate as that product
everywhere. :func:`plan` picks the cheapest of window, interp and dense by operation counts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from bridgesolve.densities._pixel_kernels import numba, window2d, window_factors

#: The 2D window and its factors run compiled (numba is installed).
COMPILED = numba is not None

#: Half-width of the summation window, in kernel stds (Φ(-10) = 7.6e-24).
R_WINDOW = 10.0
#: Chebyshev points per axis and panel (panels of half-width one kernel std).
K_CHEB = 20
#: Half-width of the interpolation panels, in kernel stds.
PANEL = 1.0
#: Relative error bound a point must meet (density; density / s for the gradient).
TOL = 1e-13
#: Points × window entries (or × K^d coefficients) per block.
CHUNK = 1 << 21
#: Largest coefficient table of the interpolation (entries).
MAX_TABLE = 1 << 24
_PHI0 = 1.0 / math.sqrt(2.0 * math.pi)


def _window_widths(edges, s: float) -> list[int]:
    return [min(e.size - 1, int(math.ceil(2.0 * R_WINDOW * s / (e[1] - e[0]))) + 2)
            for e in edges]


def _panels(edges, s: float, x: np.ndarray) -> list[tuple[float, int]]:
    """Per axis ``(lower end, panel count)`` covering the points within ``R s`` of the
    image (farther points are left to the dense product)."""
    out = []
    for i, e in enumerate(edges):
        lo = max(float(x[:, i].min()), e[0] - R_WINDOW * s)
        hi = min(float(x[:, i].max()), e[-1] + R_WINDOW * s)
        out.append((lo, max(1, int(math.ceil((hi - lo) / (2.0 * PANEL * s) + 1e-9)))))
    return out


def plan(edges, s: float, x: np.ndarray, score: bool) -> str:
    """``"window"``, ``"interp"`` or ``"dense"``: the fewest operations for these points
    (window and interp need at least a few thousand points to pay for their set-up)."""
    n, d = x.shape
    if s <= 0.0 or n < 2000:
        return "dense"
    sizes = [e.size - 1 for e in edges]
    grads = (1 + d) if score else 1
    dense = n * (math.prod(sizes) * grads + 40 * sum(sizes))
    w = _window_widths(edges, s)
    compiled = d == 2 and COMPILED
    # operation units calibrated on a 512² image (compiled 2D window: ~1.4 per entry)
    window = n * ((1.4 if compiled else 4) * math.prod(w) * grads + 20 * sum(w))
    counts = [b for _, b in _panels(edges, s, x)]
    nodes = [b * K_CHEB for b in counts]
    table = math.prod(counts) * K_CHEB ** d
    setup = sum(math.prod(nodes[: i + 1]) * math.prod(sizes[i:]) for i in range(d))
    setup += 2 * 60 * (K_CHEB + 1) * sum(b * m for b, m in zip(counts, sizes, strict=True))
    interp = setup * (1 + d) + n * 4 * K_CHEB ** d * grads if table <= MAX_TABLE else math.inf
    best = min(("dense", dense), ("window", window), ("interp", interp), key=lambda c: c[1])
    return best[0]


# -- the 1D factors, unscaled ----------------------------------------------------------------
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(6)
#: Pixels narrower than this many kernel stds integrate the Gaussian by 6-point
#: Gauss–Legendre (error ~ (h/s)^12 / 12!, and no cancellation of Φ(B) - Φ(A)).
GL_RATIO = 0.5


def _factors(lo: np.ndarray, hi: np.ndarray, x: np.ndarray, s: float):
    """``(F, dF/dx)`` of the pixels ``[lo, hi]`` at ``x`` (broadcasting): erf differences
    (taken in the tail where they do not cancel), or Gauss–Legendre for pixels narrow
    against the kernel (:data:`GL_RATIO`), whose erf differences would cancel."""
    if np.max(hi - lo) <= GL_RATIO * s:
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        F = dF = 0.0
        for g, w in zip(_GL_NODES, _GL_WEIGHTS, strict=True):
            z = (mid + half * g - x) / s
            k = (0.5 * w * _PHI0 / s) * np.exp(-0.5 * z * z)
            F = F + k
            dF = dF + k * (z / s)
        return F, dF
    A, B = (lo - x) / s, (hi - x) / s
    mirror = (A + B) > 0  # upper tail: Φ(B) - Φ(A) = Φ(-A) - Φ(-B)
    F = np.where(mirror, ndtr(-A) - ndtr(-B), ndtr(B) - ndtr(A)) / (hi - lo)
    dF = _PHI0 * (np.exp(-0.5 * A * A) - np.exp(-0.5 * B * B)) / (s * (hi - lo))
    return F, dF


#: Pixels between exact restarts of the geometric recurrences of the window's factors.
RESTART = 16


def _window_factors(e: np.ndarray, start: np.ndarray, x: np.ndarray, s: float, w: int):
    """``(F, dF/dx)``, ``(m, w)``, of the ``w`` pixels from ``start`` (per point) of the
    uniform edges ``e`` at the points ``x`` (``(m,)``). Narrow pixels (:data:`GL_RATIO`):
    6-point Gauss–Legendre with every exponential along the row a geometric recurrence
    (``e^{-(z + ε)²/2} = e^{-z²/2} e^{-zε - ε²/2}``), restarted from exact exponentials every
    :data:`RESTART` pixels; wider ones: :func:`_factors`."""
    h = (e[-1] - e[0]) / (e.size - 1)  # not e[1] - e[0]: its rounding grows along the row
    if h > GL_RATIO * s:
        k = start[:, None] + np.arange(w)
        return _factors(e[k], e[k + 1], x[:, None], s)
    eps = h / s
    z0 = (e[start] + 0.5 * h - x) / s
    coef = 0.5 * _GL_WEIGHTS * _PHI0 / s
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        out = window_factors(z0, eps, s, _GL_NODES, coef, RESTART, w)
    if out is not None:
        return out
    F, dF = np.zeros((x.size, w)), np.zeros((x.size, w))
    shrink = math.exp(-eps * eps)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for g, wq in zip(_GL_NODES, _GL_WEIGHTS, strict=True):
            c = 0.5 * wq * _PHI0 / s
            zq = z0 + 0.5 * eps * g
            for k in range(w):
                z = zq + k * eps
                if k % RESTART == 0:
                    E = c * np.exp(-0.5 * z * z)
                    r = np.exp(-z * eps - 0.5 * eps * eps)
                F[:, k] += E
                dF[:, k] += E * (z / s)
                E = E * r
                r = r * shrink
    return F, dF


def _bounds(h: float, s: float) -> dict:
    """Largest factor and derivative of one axis, inside and beyond ``R s``."""
    R = R_WINDOW
    return {"max": min(1.0 / h, _PHI0 / s),
            "dmax": min(2.0 * _PHI0 / (s * h), _PHI0 * math.exp(-0.5) / (s * s)),
            "out": ndtr(-R) / h, "dout": _PHI0 * math.exp(-0.5 * R * R) / (s * h)}


def _einsum_spec(d: int, table: str) -> str:
    """``"n<table>, na, nb, ... -> n"``: a table of ``d`` axes against one vector each."""
    letters = "abc"[:d]
    return f"n{table or letters}," + ",".join("n" + c for c in letters) + "->n"


def _values(T, vecs, dvecs, score: bool):
    """``(value, gradient)`` of per-point tables ``T`` (``(m, w_1, …, w_d)``) against one
    vector per axis (``dvecs``: their derivatives)."""
    d = len(vecs)
    spec = _einsum_spec(d, "")
    val = np.einsum(spec, T, *vecs)
    if not score:
        return val, None
    grad = np.empty((val.size, d))
    for i in range(d):
        grad[:, i] = np.einsum(spec, T, *[dvecs[j] if j == i else vecs[j] for j in range(d)])
    return val, grad


# -- window ----------------------------------------------------------------------------------
def _window(M, edges, s, x, score):
    n, d = x.shape
    widths = _window_widths(edges, s)
    strides = [int(np.prod(M.shape[i + 1:])) for i in range(d)]
    flat = M.ravel()
    val, grad = np.empty(n), (np.empty((n, d)) if score else None)
    compiled = d == 2 and COMPILED
    # the compiled kernel needs no gathered block: larger chunks amortize the factor loops
    block = max(1, (CHUNK // (4 * sum(widths))) if compiled else CHUNK // math.prod(widths))
    for lo in range(0, n, block):
        xs = x[lo:lo + block]
        F, D, starts = [], [], []
        for i, (e, w) in enumerate(zip(edges, widths, strict=True)):
            h = e[1] - e[0]
            j0 = np.floor((xs[:, i] - R_WINDOW * s - e[0]) / h).astype(np.int64)
            starts.append(np.clip(j0, 0, e.size - 1 - w))
            f, df = _window_factors(e, starts[-1], xs[:, i], s, w)
            F.append(f)
            D.append(df)
        out = window2d(M, *starts, F[0], D[0], F[1], D[1], score) if compiled else None
        if out is not None:
            val[lo:lo + block] = out[:, 0]
            if score:
                grad[lo:lo + block] = out[:, 1:]
            continue
        idx = 0
        for i, (j, w) in enumerate(zip(starts, widths, strict=True)):
            shape = [xs.shape[0]] + [1] * d
            shape[i + 1] = w
            idx = idx + ((j[:, None] + np.arange(w)) * strides[i]).reshape(shape)
        v, g = _values(flat[idx], F, D, score)
        val[lo:lo + block] = v
        if score:
            grad[lo:lo + block] = g
    b = [_bounds(e[1] - e[0], s) for e in edges]

    def others(*skip):
        return math.prod(b[k]["max"] for k in range(d) if k not in skip)

    ok = sum(b[i]["out"] * others(i) for i in range(d)) <= TOL * val
    if score:
        for i in range(d):
            gerr = b[i]["dout"] * others(i) + b[i]["dmax"] * sum(
                b[k]["out"] * others(i, k) for k in range(d) if k != i)
            ok &= gerr <= TOL * val / s
    return val, grad, ok


# -- interp ----------------------------------------------------------------------------------
def _chebyshev(K: int):
    """Chebyshev points of the first kind on [-1, 1] and the matrix from values there to
    coefficients."""
    q = np.arange(K)
    xi = np.cos(np.pi * (q + 0.5) / K)
    C = 2.0 / K * np.cos(np.pi * np.outer(q, q + 0.5) / K)
    C[0] *= 0.5
    return xi, C


def _basis(xi: np.ndarray, K: int, score: bool):
    """``T_k(ξ)`` and ``T_k'(ξ) = k U_{k-1}(ξ)`` for ``k < K`` (rows: points)."""
    T = np.empty((xi.size, K))
    T[:, 0], T[:, 1] = 1.0, xi
    for k in range(2, K):
        T[:, k] = 2.0 * xi * T[:, k - 1] - T[:, k - 2]
    if not score:
        return T, None
    U = np.empty_like(T)
    U[:, 0], U[:, 1] = 1.0, 2.0 * xi
    for k in range(2, K):
        U[:, k] = 2.0 * xi * U[:, k - 1] - U[:, k - 2]
    dT = np.zeros_like(T)
    dT[:, 1:] = U[:, :-1] * np.arange(1, K)
    return T, dT


def _contract(M, mats):
    """``Σ_j M_j Π_i A_i[p_i, j_i]``: the tensor ``(P_1, …, P_d)``."""
    T = M
    for i, A in enumerate(mats):
        T = np.moveaxis(np.tensordot(A, T, axes=([1], [i])), 0, i)
    return T


def _axis(e: np.ndarray, s: float, lo: float, B: int):
    """One axis of the interpolation: per panel ``b`` the Chebyshev coefficients of every
    pixel's factor (``(B, K, n)``) and, from ``K + 1`` test points, their interpolation
    errors and maxima (value and derivative; each ``(B, n)``)."""
    K = K_CHEB
    xi, C = _chebyshev(K)
    half = PANEL * s
    centres = lo + (2.0 * np.arange(B) + 1.0) * half
    nodes = centres[:, None] + half * xi[None, :]
    F, dF = _factors(e[None, None, :-1], e[None, None, 1:], nodes[:, :, None], s)
    coef = np.einsum("kq,bqj->bkj", C, F)
    dcoef = np.einsum("kq,bqj->bkj", C, dF)
    xt = np.cos(np.pi * np.arange(K + 1) / K)  # ends and midpoints between the nodes
    Tt = _basis(xt, K, False)[0]
    Ft, dFt = _factors(e[None, None, :-1], e[None, None, 1:],
                       (centres[:, None] + half * xt[None, :])[:, :, None], s)
    err = np.abs(np.einsum("tk,bkj->btj", Tt, coef) - Ft).max(axis=1)
    derr = np.abs(np.einsum("tk,bkj->btj", Tt, dcoef) - dFt).max(axis=1)
    return {"coef": coef, "dcoef": dcoef, "err": err, "derr": derr,
            "max": Ft.max(axis=1) + err, "dmax": np.abs(dFt).max(axis=1) + derr}


def _error_tables(M, axes, score: bool):
    """Per panel: the bound on the error of ``p`` and of each gradient component."""
    d = len(axes)
    full = [a["max"] for a in axes]

    def swap(**repl):
        return _contract(M, [repl.get(f"a{i}", full[i]) for i in range(d)]).ravel()

    val = sum(swap(**{f"a{i}": axes[i]["err"]}) for i in range(d))
    if not score:
        return val, None
    grads = []
    for i in range(d):
        g = swap(**{f"a{i}": axes[i]["derr"]})
        for k in range(d):
            if k != i:
                g = g + swap(**{f"a{i}": axes[i]["dmax"], f"a{k}": axes[k]["err"]})
        grads.append(g)
    return val, grads


def _table(M, axes, which):
    """Chebyshev coefficients of ``Σ_j M_j Π_i G_i`` per panel tuple, ``(Π B, K, …, K)``,
    ``G_i`` the factor of axis ``i`` or (``which[i]``) its derivative."""
    d, K = len(axes), K_CHEB
    mats = [a["dcoef" if w else "coef"] for a, w in zip(axes, which, strict=True)]
    coef = _contract(M, [c.reshape(-1, c.shape[2]) for c in mats])
    counts = [a["coef"].shape[0] for a in axes]
    shape = [v for B in counts for v in (B, K)]
    order = list(range(0, 2 * d, 2)) + list(range(1, 2 * d, 2))
    return coef.reshape(shape).transpose(order).reshape(math.prod(counts), *([K] * d))


def _interp(M, edges, s, x, score):
    n, d = x.shape
    K = K_CHEB
    panels = _panels(edges, s, x)
    axes = [_axis(e, s, lo, B) for e, (lo, B) in zip(edges, panels, strict=True)]
    tables = [_table(M, axes, [False] * d)]
    if score:
        tables += [_table(M, axes, [k == i for k in range(d)]) for i in range(d)]
    verr, gerr = _error_tables(M, axes, score)
    inside = np.ones(n, dtype=bool)
    flat = np.zeros(n, dtype=np.int64)
    bases = []
    for i, (lo, B) in enumerate(panels):
        u = (x[:, i] - lo) / (2.0 * PANEL * s)
        b = np.floor(u).astype(np.int64)
        inside &= (b >= 0) & (b < B)
        b = np.clip(b, 0, B - 1)
        flat = flat * B + b
        bases.append(_basis(np.clip(2.0 * (u - b) - 1.0, -1.0, 1.0), K, False)[0])
    out = np.empty((len(tables), n))
    spec = _einsum_spec(d, "")
    block = max(1, CHUNK // K ** d)
    for lo in range(0, n, block):
        sl = slice(lo, lo + block)
        vecs = [T[sl] for T in bases]
        for r, table in enumerate(tables):
            out[r, sl] = np.einsum(spec, table[flat[sl]], *vecs)
    val = out[0]
    ok = inside & (verr[flat] <= TOL * val)
    if score:
        for i in range(d):
            ok &= gerr[i][flat] <= TOL * val / s
    return val, (out[1:].T.copy() if score else None), ok


def evaluate(M: np.ndarray, edges, s: float, x: np.ndarray, score: bool, method: str):
    """``(log p, ∇ log p or None, ok)`` of the image ``M`` (masses summing to 1) with pixel
    edges ``edges`` (per axis, uniform, increasing) and kernel std ``s`` at ``x`` by
    ``method`` (``"window"`` or ``"interp"``); rows with ``ok = False`` are not to be
    trusted (module doc) and must be evaluated by the dense product."""
    run = {"window": _window, "interp": _interp}[method]
    val, grad, ok = run(M, edges, s, x, score)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(val)
        if score:
            grad = grad / val[:, None]
    ok &= np.isfinite(logp)
    return logp, grad, ok
