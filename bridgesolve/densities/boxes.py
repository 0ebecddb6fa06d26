r"""Box mixtures: uniform laws on axis-aligned boxes (the checkerboard), and images.

A box ``[l, u] ⊂ R^d`` pushed through a linear process (``x_t = a x_0 + b + \sqrt{v} z``)
has the density ``\prod_i [Φ((a u_i + b_i - x_i)/s) - Φ((a l_i + b_i - x_i)/s)] /
(a (u_i - l_i))`` with ``s = \sqrt{v}``: a product of erf differences, taken in the log
domain (:func:`log_interval`: ``log(Φ(B) - Φ(A))`` from ``log_ndtr`` and ``expm1``, mirrored
into the lower tail) so that far tails and narrow boxes stay accurate. At ``s = 0`` it is the
indicator over the volume.

An image (a 1D/2D/3D array of non-negative masses on a box, one pixel a cell of a regular
grid) is a box mixture whose boxes are the pixels. It is evaluated separably: per axis a
matrix ``F_i`` (points × pixels of that axis) of the 1D factors, and ``p = F_1 M F_2^T``
row by row (2D), one matrix product per chunk of points (two for the score). Rows are scaled
by their maxima (kept as logarithms), so ``log p`` is finite wherever one pixel reaches.
Many points at once take a cheaper road where there is one
(:mod:`~bridgesolve.densities._image_fast`: a window of pixels for narrow kernels, panel-wise
Chebyshev interpolation for wide ones), each point checked against that road's error bound
and sent back to the dense product where the bound is not small against its density.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.special import log_ndtr, logsumexp

from bridgesolve._validate import BridgesolveInputError, positive, positive_int
from bridgesolve.densities import _image_fast
from bridgesolve.densities._gaussian_sums import Affine, check_points
from bridgesolve.densities._pixel_kernels import pixel_factors
from bridgesolve.densities.protocol import register, register_preset

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: Points × (pixels of the other axes) per block of an image evaluation.
IMAGE_CHUNK_ELEMENTS = 1 << 22


def _log_diff_ndtr(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """``log(Φ(hi) - Φ(lo))`` for ``hi >= lo``, accurate in both tails and for hi ≈ lo."""
    mirror = (hi + lo) > 0  # the upper tail: Φ(hi) - Φ(lo) = Φ(-lo) - Φ(-hi)
    a = np.where(mirror, -lo, hi)
    b = np.where(mirror, -hi, lo)
    la, lb = log_ndtr(a), log_ndtr(b)
    with np.errstate(divide="ignore"):
        return la + np.log(-np.expm1(lb - la))


def log_interval(lo, hi, x, s: float) -> tuple[np.ndarray, np.ndarray]:
    """The 1D factor of a box: ``log f`` and ``d log f / dx`` of the uniform law on
    ``[lo, hi]`` convolved with ``N(0, s²)``, at points ``x``. Broadcasts (``x`` (N, 1),
    edges (1, K) → (N, K))."""
    lo, hi, x = np.asarray(lo, float), np.asarray(hi, float), np.asarray(x, float)
    width = hi - lo
    if s == 0.0:
        inside = (x >= lo) & (x <= hi)
        with np.errstate(divide="ignore"):
            logf = np.where(inside, -np.log(width), -np.inf)
        return logf, np.zeros(np.broadcast(lo, hi, x).shape)
    A, B = (lo - x) / s, (hi - x) / s
    L = _log_diff_ndtr(B, A)
    with np.errstate(over="ignore", invalid="ignore"):
        d = (np.exp(-0.5 * A * A - _LOG_SQRT_2PI - L)
             - np.exp(-0.5 * B * B - _LOG_SQRT_2PI - L)) / s
    return L - np.log(width), np.nan_to_num(d, nan=0.0)


def _check_boxes(lower, upper) -> tuple[np.ndarray, np.ndarray]:
    lo = np.atleast_2d(np.asarray(lower, dtype=float))
    hi = np.atleast_2d(np.asarray(upper, dtype=float))
    if lo.shape != hi.shape or not 1 <= lo.shape[1] <= 3:
        raise BridgesolveInputError(f"boxes: lower {lo.shape} and upper {hi.shape} must have "
                                    "the same shape (K, d), d = 1, 2 or 3")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise BridgesolveInputError("boxes: lower and upper must be finite")
    thin = np.flatnonzero(np.any(hi <= lo, axis=1))
    if thin.size:
        k = int(thin[0])
        raise BridgesolveInputError(
            f"box {k}: lower {lo[k].tolist()} and upper {hi[k].tolist()} give zero volume "
            "(need upper > lower on every axis)")
    return lo, hi


@register
class BoxMixture:
    """``\\sum_k w_k U([l_k, u_k])`` (module doc).

    Args:
        weights: ``(K,)`` non-negative masses (normalized).
        lower, upper: ``(K, d)`` box corners, ``upper > lower``.
        name, params: a preset and its parameters (for :meth:`describe`).
        state: the affine state of a linear process (set by :meth:`evolve`).
    """

    def __init__(self, weights, lower, upper, *, name: str = "BoxMixture",
                 params: dict | None = None, state: Affine | None = None):
        self.lower, self.upper = _check_boxes(lower, upper)
        w = np.atleast_1d(np.asarray(weights, dtype=float))
        if w.shape != (self.lower.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0) \
                or w.sum() <= 0:
            raise BridgesolveInputError(f"box weights = {w.tolist()}: expected {len(self.lower)}"
                                        " non-negative numbers, not all zero")
        self.weights = w / w.sum()
        self.name, self.params = name, dict(params or {})
        self.state = state or Affine()

    @property
    def dim(self) -> int:
        return self.lower.shape[1]

    @property
    def discontinuous(self) -> bool:
        """Uniform on boxes (no noise yet): FE solvers project instead of interpolating."""
        return self.state.v == 0.0

    @property
    def length_scale(self) -> float:
        """The narrowest feature: the kernel std, else the thinnest box side."""
        side = float(np.min(self.state.a * (self.upper - self.lower)))
        return min(side, math.sqrt(self.state.v)) if self.state.v > 0 else side

    def _edges(self):
        st = self.state
        b = st.shift(self.dim)
        return st.a * self.lower + b, st.a * self.upper + b, math.sqrt(st.v)

    def log_pdf_and_score(self, x) -> tuple[np.ndarray, np.ndarray]:
        x = check_points(x, self.dim)
        lo, hi, s = self._edges()
        logc = np.log(np.maximum(self.weights, 1e-300))[None, :] + np.zeros((x.shape[0], 1))
        dlog = np.empty((x.shape[0], lo.shape[0], self.dim))
        for i in range(self.dim):
            lf, d = log_interval(lo[None, :, i], hi[None, :, i], x[:, i:i + 1], s)
            logc = logc + lf
            dlog[:, :, i] = d
        logp = logsumexp(logc, axis=1)
        with np.errstate(invalid="ignore"):
            r = np.exp(logc - logp[:, None])
        r = np.nan_to_num(r, nan=0.0)
        return logp, np.einsum("nk,nki->ni", r, dlog)

    def log_pdf(self, x) -> np.ndarray:
        return self.log_pdf_and_score(x)[0]

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.log_pdf(x))

    def score(self, x) -> np.ndarray:
        return self.log_pdf_and_score(x)[1]

    def sample(self, n: int, rng=None) -> np.ndarray:
        n = positive_int("n", n)
        rng = np.random.default_rng(rng)
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        y = self.lower[k] + (self.upper[k] - self.lower[k]) * rng.random((n, self.dim))
        st = self.state
        return st.a * y + st.shift(self.dim) + math.sqrt(st.v) * rng.standard_normal(y.shape)

    def evolve(self, process, t: float, s: float = 0.0) -> BoxMixture:
        return BoxMixture(self.weights, self.lower, self.upper, name=self.name,
                          params=self.params, state=self.state.then(process, t, s, self.dim))

    def describe(self) -> dict:
        if self.name == "BoxMixture":
            out = {"type": "BoxMixture", "weights": self.weights.tolist(),
                   "lower": self.lower.tolist(), "upper": self.upper.tolist()}
        else:
            out = {"type": self.name, **self.params}
        if not self.state.identity:
            out["state"] = self.state.describe()
        return out

    @classmethod
    def from_description(cls, desc: dict) -> BoxMixture:
        state = Affine.from_description(desc.get("state"))
        if desc["type"] == "BoxMixture":
            missing = [k for k in ("weights", "lower", "upper") if k not in desc]
            if missing:
                raise BridgesolveInputError(f"BoxMixture description: missing {missing}")
            return cls(desc["weights"], desc["lower"], desc["upper"], state=state)
        params = {k: v for k, v in desc.items() if k not in ("type", "state")}
        out = PRESETS[desc["type"]](**params)
        out.state = state
        return out

    def __repr__(self) -> str:
        return f"BoxMixture({self.name!r}, boxes={self.weights.size}, d={self.dim})"


def checkerboard(scale: float = 1.0) -> BoxMixture:
    """Uniform on the 8 black squares of a 4×4 board on ``[-2, 2]^2`` (times ``scale``): the
    squares whose column ``floor(x)`` and row ``floor(y)`` have an even sum."""
    scale = positive("scale", scale)
    lower = [(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0]
    lo = scale * np.array(lower, dtype=float)
    return BoxMixture(np.ones(len(lo)), lo, lo + scale, name="checkerboard",
                      params={"scale": scale})


#: Gauss–Legendre pixel integration when pixel width / kernel std is at most this.
GL_MAX_RATIO = 0.15
#: Points whose nearest pixel is farther than this many kernel stds take erf differences.
GL_NEAR = 8.0
#: ... and so do points farther than ``GL_TAIL / (h/s)`` stds: the rule's relative error
#: grows like ``(ζ h/s)^8`` with the distance ``ζ`` (about 1e-13 at ``ζ h/s = 0.4``).
GL_TAIL = 0.4


def _gl_factors(edges: np.ndarray, x: np.ndarray, s: float, score: bool = True,
                buffers: dict | None = None):
    """``(F̃, d log F, log row max, near)`` of a uniform pixel grid by 4-point
    Gauss–Legendre in each pixel (:mod:`~bridgesolve.densities._pixel_kernels`);
    ``near`` marks the rows whose nearest pixel centre is within :data:`GL_NEAR` stds and
    :data:`GL_TAIL` ``s/h`` stds (the others lose accuracy in the pair sums and in the rule,
    and take the erf path)."""
    h = (edges[-1] - edges[0]) / (edges.size - 1)  # e[1] - e[0] rounds: it grows along a row
    n = edges.size - 1
    F, d, top = pixel_factors(x, edges[0] + 0.5 * h, h, s, n, score=score, buffers=buffers)
    reach = min(GL_NEAR, GL_TAIL * s / abs(h))
    near = top >= -0.5 * reach * reach
    return F, d, top - math.log(s) - 0.5 * math.log(2.0 * math.pi), near


def _erf_factors(edges: np.ndarray, x: np.ndarray, s: float):
    """``(F̃, d log F, log row max)`` of a pixel grid from erf differences (any width)."""
    logf, d = log_interval(edges[None, :-1], edges[None, 1:], x[:, None], s)
    mx = np.max(logf, axis=1)
    safe = np.where(np.isfinite(mx), mx, 0.0)
    return np.exp(logf - safe[:, None]), d, np.where(np.isfinite(mx), mx, -np.inf)


@register
class ImageDensity:
    """The law of an image: pixel masses ``(n_1[, n_2[, n_3]])`` on the box
    ``[lower, upper]`` (module doc), uniform inside each pixel.

    Args:
        masses: a 1D, 2D or 3D array of non-negative finite numbers, not all zero (axis
            ``i`` runs along coordinate ``i``: index ``[ix, iy]``).
        lower, upper: the corners of the image's box (default ``[0, 1]^d``).
        path: the file it came from (``describe`` then names it instead of the pixels).
    """

    def __init__(self, masses, lower=None, upper=None, *, path: str | None = None,
                 state: Affine | None = None):
        M = np.asarray(masses, dtype=float)
        if not 1 <= M.ndim <= 3 or M.size == 0:
            raise BridgesolveInputError(f"image has shape {M.shape}: expected a 1D, 2D or 3D "
                                        "array of pixel masses")
        bad = ~np.isfinite(M)
        if bad.any():
            raise BridgesolveInputError(f"image has {int(bad.sum())} NaN or infinite pixels "
                                        f"(first at index {np.argwhere(bad)[0].tolist()})")
        if np.any(M < 0):
            idx = np.argwhere(M < 0)[0].tolist()
            raise BridgesolveInputError(f"image has negative pixels (e.g. {M[tuple(idx)]:g} at "
                                        f"index {idx}): masses must be >= 0")
        if M.sum() <= 0:
            raise BridgesolveInputError("image: every pixel is zero (no mass)")
        d = M.ndim
        lower = np.zeros(d) if lower is None else np.atleast_1d(np.asarray(lower, float))
        upper = np.ones(d) if upper is None else np.atleast_1d(np.asarray(upper, float))
        _check_boxes(lower[None, :], upper[None, :])
        if lower.size != d:
            raise BridgesolveInputError(f"image is {d}D but lower/upper have {lower.size} "
                                        "entries")
        self.masses = M / M.sum()
        self.lower, self.upper, self.path = lower, upper, path
        self.state = state or Affine()
        self._grid = [np.linspace(lower[i], upper[i], M.shape[i] + 1) for i in range(d)]

    @property
    def dim(self) -> int:
        return self.masses.ndim

    @property
    def discontinuous(self) -> bool:
        """Piecewise constant (no noise yet): FE solvers project instead of interpolating."""
        return self.state.v == 0.0

    @property
    def length_scale(self) -> float:
        """The narrowest feature: the kernel std, else the smallest pixel side."""
        pix = float(np.min(self.state.a * (self.upper - self.lower) / self.masses.shape))
        return min(pix, math.sqrt(self.state.v)) if self.state.v > 0 else pix

    def _factors(self, x: np.ndarray, i: int, score: bool = True,
                 buffers: dict | None = None):
        """Row-scaled 1D factors of axis ``i``: ``(F̃, d log F, log row max)``.

        Pixels narrow against the kernel (``h/s <=`` :data:`GL_MAX_RATIO`) integrate the
        Gaussian over each pixel by 4-point Gauss–Legendre (exponentials only; error
        ``~(h/s)^8/8!``, below 1e-13); wider pixels, and points beyond :data:`GL_NEAR`
        stds of every pixel, take erf differences.
        """
        st = self.state
        e = st.a * self._grid[i] + st.shift(self.dim)[i]
        s = math.sqrt(st.v)
        if s > 0 and (e[1] - e[0]) / s <= GL_MAX_RATIO:
            F, d, shift, near = _gl_factors(e, x[:, i], s, score, buffers)
            if near.all():
                return F, d, shift
            far = ~near
            F[far], d_far, shift[far] = _erf_factors(e, x[far, i], s)
            if d is not None:
                d[far] = d_far
            return F, d, shift
        return _erf_factors(e, x[:, i], s)

    def log_pdf_and_score(self, x, *, score: bool = True):
        """Windows or panel-wise interpolation where they are cheaper than the dense
        product (:mod:`~bridgesolve.densities._image_fast`), each point checked against its
        error bound; the points that fail it, and small calls, take the dense product."""
        x = check_points(x, self.dim)
        st = self.state
        s = math.sqrt(st.v)
        edges = [st.a * g + st.shift(self.dim)[i] for i, g in enumerate(self._grid)]
        method = _image_fast.plan(edges, s, x, score)
        if method == "dense":
            return self._dense(x, score)
        logp, grad, ok = _image_fast.evaluate(self.masses, edges, s, x, score, method)
        if not ok.all():
            rest = ~ok
            logp[rest], g = self._dense(x[rest], score)
            if score:
                grad[rest] = g
        return logp, grad

    def _dense(self, x: np.ndarray, score: bool):
        """``(log p, score)`` by the per-axis factor matrices (module doc)."""
        n, d = x.shape
        logp = np.empty(n)
        grad = np.zeros((n, d)) if score else None
        other = int(np.prod(self.masses.shape[1:])) if d > 1 else 1
        step = max(1, IMAGE_CHUNK_ELEMENTS // other)
        M = self.masses.reshape(self.masses.shape[0], -1)
        buffers = [{} for _ in range(d)]  # per-axis work arrays, reused by every chunk
        for lo in range(0, n, step):
            sl = slice(lo, min(n, lo + step))
            parts = [self._factors(x[sl], i, score, buffers[i]) for i in range(d)]
            logp[sl], g = self._block(M, parts, score)
            if score:
                grad[sl] = g
        return logp, grad

    def _block(self, M, parts, score: bool):
        F = [p[0] for p in parts]
        shift = sum(p[2] for p in parts)
        H = F[0] @ M  # (m, n2 * n3)
        m, d = F[0].shape[0], len(F)
        H = H.reshape(m, *self.masses.shape[1:])
        rest = "".join("jk"[: d - 1])
        spec = f"n{rest}," + ",".join(f"n{c}" for c in rest) + "->n"

        def contract(T, factors):
            return np.einsum(spec, T, *factors) if d > 1 else T.reshape(m)

        val = contract(H, F[1:])
        with np.errstate(divide="ignore"):
            logp = np.log(val) + shift
        if not score:
            return logp, None
        grad = np.zeros((m, d))
        with np.errstate(invalid="ignore", divide="ignore"):
            H1 = ((F[0] * parts[0][1]) @ M).reshape(H.shape)
            grad[:, 0] = contract(H1, F[1:]) / val
            for i in range(1, d):
                fac = [F[j] * parts[j][1] if j == i else F[j] for j in range(1, d)]
                grad[:, i] = contract(H, fac) / val
        return logp, np.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)

    def log_pdf(self, x) -> np.ndarray:
        return self.log_pdf_and_score(x, score=False)[0]

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.log_pdf(x))

    def score(self, x) -> np.ndarray:
        return self.log_pdf_and_score(x)[1]

    def sample(self, n: int, rng=None) -> np.ndarray:
        n = positive_int("n", n)
        rng = np.random.default_rng(rng)
        flat = rng.choice(self.masses.size, size=n, p=self.masses.ravel())
        idx = np.stack(np.unravel_index(flat, self.masses.shape), axis=1)
        h = (self.upper - self.lower) / np.array(self.masses.shape)
        y = self.lower + (idx + rng.random((n, self.dim))) * h
        st = self.state
        return st.a * y + st.shift(self.dim) + math.sqrt(st.v) * rng.standard_normal(y.shape)

    def evolve(self, process, t: float, s: float = 0.0) -> ImageDensity:
        out = ImageDensity.__new__(ImageDensity)
        out.__dict__.update(self.__dict__)
        out.state = self.state.then(process, t, s, self.dim)
        return out

    def describe(self) -> dict:
        out = {"type": "ImageDensity", "lower": self.lower.tolist(),
               "upper": self.upper.tolist()}
        if self.path is not None:
            out["path"] = self.path
        else:
            out["masses"] = self.masses.tolist()
        if not self.state.identity:
            out["state"] = self.state.describe()
        return out

    @classmethod
    def from_description(cls, desc: dict) -> ImageDensity:
        state = Affine.from_description(desc.get("state"))
        if "path" in desc:
            out = image_from_file(desc["path"], desc.get("lower"), desc.get("upper"))
            out.state = state
            return out
        if "masses" not in desc:
            raise BridgesolveInputError("ImageDensity description: needs 'path' or 'masses'")
        return cls(desc["masses"], desc.get("lower"), desc.get("upper"), state=state)

    def __repr__(self) -> str:
        return f"ImageDensity(shape={self.masses.shape}, box={self.lower.tolist()}.." \
               f"{self.upper.tolist()})"


def image_from_file(path, lower=None, upper=None) -> ImageDensity:
    """An image density from a ``.npy`` array (masses) or a ``.png`` picture (dark pixels
    carry mass: ``1 - gray``; row 0 is the top, mapped to the upper edge of y)."""
    p = Path(path)
    where = f"image file {str(p)!r}"
    if not p.is_file():
        raise BridgesolveInputError(f"{where} does not exist")
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BridgesolveInputError(f"{where}: not a NumPy array ({exc})") from None
    elif p.suffix.lower() == ".png":
        import matplotlib.image as mpimg

        img = np.asarray(mpimg.imread(p), dtype=float)
        gray = img[..., :3].mean(axis=-1) if img.ndim == 3 else img
        arr = (1.0 - gray)[::-1].T  # index [ix, iy], y upwards
    else:
        raise BridgesolveInputError(f"{where}: expected a .npy or .png file")
    try:
        return ImageDensity(arr, lower, upper, path=str(p))
    except BridgesolveInputError as exc:
        raise BridgesolveInputError(f"{where}: {exc}") from None


PRESETS = {"checkerboard": checkerboard}
register_preset("checkerboard", BoxMixture)
