r"""Curve mixtures: a point on a parametrized curve plus isotropic Gaussian noise.

The data law is ``x = c_j(u) + σ z`` with curve ``j`` drawn with weight ``w_j``, ``u``
uniform on ``[0, 1]`` and ``z ~ N(0, I)``: two moons, the Swiss roll, rings, a circle, two
circles (``make_circles``), the S-curve. Under a linear process
(``x_t = a x_0 + b + \sqrt{v} z``) the law is again a curve mixture, the curves mapped by
``a c + b`` and the variance ``a²σ² + v``:

.. math::
    p_t(x) = \sum_j w_j \int_0^1 N\big(x;\, a c_j(u) + b,\, (a^2σ^2 + v) I\big)\, du .

The integral is a composite Gauss–Legendre rule in ``u`` whose panels have equal arc length,
at most :data:`PANEL_STD` standard deviations of the kernel long (8 nodes each): the
integrand is a Gaussian bump of that width along the curve, which the rule integrates to
about round-off. Where the kernel is wide against the curve (late times), the curve's own
bends set the count: a panel turns by at most :data:`PANEL_TURNING`, and ends at the
curve's ``breaks`` (kinks). The sum over nodes is taken in the log domain, so small noise
and far tails stay finite. :meth:`CurveMixture.quadrature_error` compares with the rule of
half the panels (a bound on the coarse rule's error, hence conservative for the one used).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bridgesolve._validate import BridgesolveInputError, positive, positive_int
from bridgesolve.densities._gaussian_sums import Affine, EqualCovarianceSum, check_points
from bridgesolve.densities.protocol import register_preset

#: Panel length along the curve, in kernel standard deviations (8 Gauss nodes a panel).
PANEL_STD = 1.0
#: Largest turning of the tangent within one panel (radians).
PANEL_TURNING = math.pi / 8
GAUSS_NODES = 8
#: Most quadrature nodes of one evaluation (a kernel much narrower than the curve is long).
MAX_NODES = 200_000
_ARC_SAMPLES = 4097


@dataclass(frozen=True)
class Curve:
    """``c(u)`` for ``u`` in [0, 1], vectorized: ``(n,) -> (n, d)``; ``weight`` its mass;
    ``breaks`` the parameters in (0, 1) where ``c`` is not smooth (panels end there: a rule
    across a kink would lose its accuracy)."""

    fn: Callable[[np.ndarray], np.ndarray]
    weight: float = 1.0
    breaks: tuple[float, ...] = ()


class CurveMixture:
    """A weighted set of curves plus isotropic Gaussian noise (module doc).

    Args:
        curves: the :class:`Curve` pieces (weights are normalized).
        noise: the noise standard deviation σ > 0 (a curve without noise has no density).
        name, params: the preset and its parameters (for :meth:`describe`).
        state: the affine state of a linear process (set by :meth:`evolve`).
    """

    def __init__(self, curves: Sequence[Curve], noise: float, *, name: str = "curves",
                 params: dict | None = None, state: Affine | None = None):
        if not curves:
            raise BridgesolveInputError("curve mixture: no curves")
        noise = float(noise)
        if not (np.isfinite(noise) and noise > 0):
            raise BridgesolveInputError(
                f"noise = {noise!r}: a curve mixture needs noise > 0 (a curve alone has no "
                "density: its law is singular)")
        w = np.array([c.weight for c in curves], dtype=float)
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise BridgesolveInputError(f"curve weights = {w.tolist()}: expected "
                                        "non-negative numbers, not all zero")
        self.curves = list(curves)
        self.weights = w / w.sum()
        self.noise = noise
        self.name, self.params = name, dict(params or {})
        self.state = state or Affine()
        probe = np.asarray(self.curves[0].fn(np.linspace(0.0, 1.0, 3)), dtype=float)
        self._dim = probe.shape[1]
        self._arc = [self._arc_table(c) for c in self.curves]
        self._rules: dict[tuple, EqualCovarianceSum] = {}

    # -- the protocol -----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def length_scale(self) -> float:
        """The kernel std (features narrower than the curve's own bends)."""
        return math.sqrt(self.variance)

    @property
    def variance(self) -> float:
        """The kernel variance ``a²σ² + v`` of the current time."""
        return self.state.a**2 * self.noise**2 + self.state.v

    def log_pdf(self, x) -> np.ndarray:
        return self._rule().log_pdf(check_points(x, self.dim))

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.log_pdf(x))

    def score(self, x) -> np.ndarray:
        return self._rule().log_pdf_and_score(check_points(x, self.dim))[1]

    def log_pdf_and_score(self, x) -> tuple[np.ndarray, np.ndarray]:
        return self._rule().log_pdf_and_score(check_points(x, self.dim))

    def sample(self, n: int, rng=None) -> np.ndarray:
        n = positive_int("n", n)
        rng = np.random.default_rng(rng)
        j = rng.choice(len(self.curves), size=n, p=self.weights)
        u = rng.random(n)
        y = np.empty((n, self.dim))
        for k, curve in enumerate(self.curves):
            sel = j == k
            if sel.any():
                y[sel] = curve.fn(u[sel])
        y += self.noise * rng.standard_normal(y.shape)
        st = self.state
        return st.a * y + st.shift(self.dim) + math.sqrt(st.v) * rng.standard_normal(y.shape)

    def evolve(self, process, t: float, s: float = 0.0) -> CurveMixture:
        return CurveMixture(self.curves, self.noise, name=self.name, params=self.params,
                            state=self.state.then(process, t, s, self.dim))

    def describe(self) -> dict:
        out = {"type": self.name, **self.params}
        if not self.state.identity:
            out["state"] = self.state.describe()
        return out

    # -- quadrature -------------------------------------------------------------------------
    def quadrature_error(self, x) -> np.ndarray:
        """``|log p - log p_coarse|`` at ``x``: the rule against the one with half the
        panels (a bound on the coarse rule's error; the rule used is far more accurate)."""
        x = check_points(x, self.dim)
        return np.abs(self._rule().log_pdf(x) - self.coarse_rule().log_pdf(x))

    def coarse_rule(self) -> EqualCovarianceSum:
        """The rule with half the panels (for error estimates): ``log_pdf``,
        ``log_pdf_and_score`` on checked points."""
        return self._rule([max(1, p // 2) for p in self._panel_counts()])

    @property
    def n_nodes(self) -> int:
        return GAUSS_NODES * (sum(self._panel_counts()) + sum(len(c.breaks) for c in self.curves))

    def _arc_table(self, curve: Curve) -> tuple[np.ndarray, np.ndarray, float]:
        u = np.linspace(0.0, 1.0, _ARC_SAMPLES)
        pts = np.asarray(curve.fn(u), dtype=float)
        if pts.ndim != 2 or pts.shape != (u.size, getattr(self, "_dim", pts.shape[1])):
            raise BridgesolveInputError(f"curve {self.name!r}: c(u) returned shape "
                                        f"{pts.shape}, expected ({u.size}, d)")
        if not np.all(np.isfinite(pts)):
            raise BridgesolveInputError(f"curve {self.name!r}: c(u) is not finite")
        steps = np.diff(pts, axis=0)
        lengths = np.linalg.norm(steps, axis=1)
        arc = np.concatenate([[0.0], np.cumsum(lengths)])
        tangents = steps[lengths > 0] / lengths[lengths > 0, None]
        turning = float(np.sum(np.arccos(np.clip(
            np.sum(tangents[1:] * tangents[:-1], axis=1), -1.0, 1.0))))
        return u, arc, turning

    def _panel_counts(self) -> list[int]:
        std = math.sqrt(self.variance)
        return [max(2, math.ceil(abs(self.state.a) * arc[-1] / (PANEL_STD * std)),
                    math.ceil(turning / PANEL_TURNING))
                for _, arc, turning in self._arc]

    def _rule(self, panels: list[int] | None = None) -> EqualCovarianceSum:
        panels = panels or self._panel_counts()
        key = tuple(panels)
        if key in self._rules:
            return self._rules[key]
        total = GAUSS_NODES * (sum(panels) + sum(len(c.breaks) for c in self.curves))
        if total > MAX_NODES:
            raise BridgesolveInputError(
                f"curve mixture {self.name!r}: the kernel std {math.sqrt(self.variance):.3g} "
                f"is so small against the curve length that {total} quadrature nodes are "
                f"needed (at most {MAX_NODES}); use a larger noise")
        g, gw = np.polynomial.legendre.leggauss(GAUSS_NODES)
        nodes, logw = [], []
        for curve, wj, (u_tab, arc, _), p in zip(self.curves, self.weights, self._arc, panels,
                                              strict=True):
            if wj == 0:
                continue
            # panel ends at equal arc length (u uniform carries the mass, arc places nodes)
            ends = np.interp(np.linspace(0.0, arc[-1], p + 1), arc, u_tab) if arc[-1] > 0 \
                else np.linspace(0.0, 1.0, p + 1)
            if curve.breaks:
                ends = np.union1d(ends, curve.breaks)
            lo, hi = ends[:-1, None], ends[1:, None]
            u = (0.5 * (hi - lo) * g[None, :] + 0.5 * (hi + lo)).ravel()
            w = (0.5 * (hi - lo) * gw[None, :]).ravel()
            nodes.append(np.asarray(curve.fn(u), dtype=float))
            logw.append(np.log(wj) + np.log(np.maximum(w, 1e-300)))
        st = self.state
        means = st.a * np.concatenate(nodes) + st.shift(self.dim)
        rule = EqualCovarianceSum(np.concatenate(logw), means, self.variance)
        self._rules[key] = rule
        return rule

    @classmethod
    def from_description(cls, desc: dict) -> CurveMixture:
        params = {k: v for k, v in desc.items() if k not in ("type", "state")}
        base = PRESETS[desc["type"]](**params)
        base.state = Affine.from_description(desc.get("state"))
        return base

    def __repr__(self) -> str:
        return f"CurveMixture({self.name!r}, curves={len(self.curves)}, noise={self.noise:g})"


# -- presets (the trainer's conventions: `bridgesolve.learn.data`) ------------------------------
def two_moons(noise: float = 0.1, scale: float = 1.0) -> CurveMixture:
    """Two interleaved half circles ``(cos πu, sin πu)`` and ``(1 - cos πu, ½ - sin πu)``,
    centred (shifted by ``(-½, -¼)``), plus noise; everything times ``scale``."""
    noise, scale = _noise(noise), positive("scale", scale)

    def upper(u):
        return scale * np.stack([np.cos(np.pi * u) - 0.5, np.sin(np.pi * u) - 0.25], axis=1)

    def lower(u):
        return scale * np.stack([0.5 - np.cos(np.pi * u), 0.25 - np.sin(np.pi * u)], axis=1)

    return CurveMixture([Curve(upper, 0.5), Curve(lower, 0.5)], scale * noise,
                        name="two_moons", params={"noise": noise, "scale": scale})


def swiss_roll(noise: float = 0.1, scale: float = 1.0) -> CurveMixture:
    """``r (cos r, sin r) / 5`` with ``r = 1.5π (1 + 2u)``, plus noise, times ``scale``.
    Hirono et al.'s set (``make_swiss_roll(noise=0.5)[:, [0, 2]] / 6.865``) is
    ``swiss_roll(noise=0.1, scale=5 / 6.865)``."""
    noise, scale = _noise(noise), positive("scale", scale)

    def roll(u):
        r = 1.5 * np.pi * (1.0 + 2.0 * u)
        return scale * np.stack([r * np.cos(r), r * np.sin(r)], axis=1) / 5.0

    return CurveMixture([Curve(roll)], scale * noise, name="swiss_roll",
                        params={"noise": noise, "scale": scale})


def rings(n_rings: int = 3, noise: float = 0.08, scale: float = 1.0) -> CurveMixture:
    """Concentric circles of radii ``k`` (k = 1..n_rings), mass ∝ radius (uniform along the
    arcs), plus isotropic noise; times ``scale``."""
    n_rings = positive_int("n_rings", n_rings)
    noise, scale = _noise(noise), positive("scale", scale)

    def circle(r):
        return lambda u: scale * r * np.stack([np.cos(2 * np.pi * u), np.sin(2 * np.pi * u)],
                                              axis=1)

    curves = [Curve(circle(float(k)), float(k)) for k in range(1, n_rings + 1)]
    return CurveMixture(curves, scale * noise, name="rings",
                        params={"n_rings": n_rings, "noise": noise, "scale": scale})


def circle(radius: float = 1.0, noise: float = 0.1) -> CurveMixture:
    """A circle of ``radius`` about the origin plus noise."""
    radius, noise = positive("radius", radius), _noise(noise)

    def fn(u):
        return radius * np.stack([np.cos(2 * np.pi * u), np.sin(2 * np.pi * u)], axis=1)

    return CurveMixture([Curve(fn)], noise, name="circle",
                        params={"radius": radius, "noise": noise})


def circles(factor: float = 0.5, noise: float = 0.05, scale: float = 1.0) -> CurveMixture:
    """scikit-learn's ``make_circles`` (DSB's ``circle`` set): the unit circle and one of
    radius ``factor`` < 1, half the mass on each (uniform along each), plus isotropic noise;
    everything times ``scale``. DSB uses ``factor=0.5`` with ``noise=0.05, scale=0.8`` (its
    ``noise=0`` variant has no density)."""
    factor, noise, scale = positive("factor", factor), _noise(noise), positive("scale", scale)
    if factor >= 1.0:
        raise BridgesolveInputError(f"factor = {factor!r}: the inner circle's radius must be "
                                    "< 1 (the outer one is 1)")

    def ring(r):
        return lambda u: scale * r * np.stack([np.cos(2 * np.pi * u), np.sin(2 * np.pi * u)],
                                              axis=1)

    return CurveMixture([Curve(ring(1.0), 0.5), Curve(ring(factor), 0.5)], scale * noise,
                        name="circles",
                        params={"factor": factor, "noise": noise, "scale": scale})


def s_curve(noise: float = 0.1, scale: float = 1.0) -> CurveMixture:
    """scikit-learn's S-curve seen from above: ``(sin t, sign(t)(cos t - 1))``,
    ``t = 3π(u - ½)``, plus noise, times ``scale``."""
    noise, scale = _noise(noise), positive("scale", scale)

    def fn(u):
        t = 3.0 * np.pi * (u - 0.5)
        return scale * np.stack([np.sin(t), np.sign(t) * (np.cos(t) - 1.0)], axis=1)

    return CurveMixture([Curve(fn, breaks=(0.5,))], scale * noise, name="s_curve",
                        params={"noise": noise, "scale": scale})


def _noise(noise) -> float:
    v = positive("noise", noise, allow_zero=True)
    if v == 0:
        raise BridgesolveInputError(
            "noise = 0: a curve without noise has no density (its law is singular); "
            "give noise > 0")
    return v


PRESETS: dict[str, Callable[..., CurveMixture]] = {
    "two_moons": two_moons, "swiss_roll": swiss_roll, "rings": rings, "circle": circle,
    "s_curve": s_curve, "circles": circles}
for _name in PRESETS:
    register_preset(_name, CurveMixture)
