"""The exact density families (curves, boxes, images, KDEs) against independent references.

* Monte Carlo through the exact transition: samples of the data law (``.sample`` at t = 0)
  pushed by ``a y + (1 - a) μ + √v z`` in the test, against ``E[f]`` by quadrature of the
  family's evolved pdf on a fine grid (trapezoid: spectrally accurate for a smooth density
  when the grid step is below the kernel std).
* Curves: a brute-force Simpson rule in ``u`` (200k points, the curves' own ``fn``), with
  ``a`` and ``v`` from ``process.transition`` (not from the family's state).
* Boxes and images: a direct ``Φ`` product formula, the image as a box mixture of its
  pixels, the Gauss–Legendre pixel path against the erf path and the NumPy kernel against
  the compiled one, the checkerboard as a 0/1 image.
* KDEs against ``scipy.stats.gaussian_kde`` and, evolved, against a Gaussian mixture.
* Scores against central differences; ``describe`` round trips; bad input.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import bridgesolve as bs
from bridgesolve.densities import (
    BoxMixture,
    CurveMixture,
    GaussianKDE,
    GaussianMixture,
    ImageDensity,
    _pixel_kernels,
    boxes,
    checkerboard,
    circle,
    circles,
    density_from_description,
    image_from_file,
    kde_from_file,
    rings,
    s_curve,
    swiss_roll,
    two_moons,
)
from bridgesolve.densities.curves import Curve
from bridgesolve.densities.files import read_samples

VP = bs.VP()
OU = bs.OU(theta=0.7, sigma=1.2, mean=0.5)
VE = bs.VE(sigma_max=2.0)
BROWNIAN = bs.Brownian(0.8)
SUBVP = bs.SubVP()
COSINE = bs.Cosine()


def moon_samples(n: int = 200, seed: int = 7) -> np.ndarray:
    return two_moons(noise=0.08).sample(n, rng=seed)


def pixels(shape, seed: int) -> np.ndarray:
    """Random masses with some empty pixels."""
    m = np.random.default_rng(seed).random(shape) ** 2
    m[m < 0.05] = 0.0
    return m


FAMILIES = {
    "two_moons": lambda: two_moons(noise=0.08),
    "swiss_roll": swiss_roll,
    "rings": rings,
    "circle": circle,
    "circles": circles,
    "s_curve": s_curve,
    "checkerboard": checkerboard,
    "image2d": lambda: ImageDensity(pixels((16, 12), 5), [-1.0, -0.5], [1.0, 1.0]),
    "boxes3d": lambda: BoxMixture([0.5, 0.3, 0.2],
                                  [[-1.0, -1.0, -1.0], [0.0, 0.5, -0.5], [0.5, -1.0, 0.0]],
                                  [[0.0, 0.0, 1.0], [1.0, 1.0, 0.5], [1.5, -0.5, 0.3]]),
    "image3d": lambda: ImageDensity(pixels((6, 5, 4), 6), [-1.0, -1.0, -1.0], [1.0, 0.5, 1.5]),
    "kde_scott": lambda: GaussianKDE(moon_samples(), "scott"),
    "kde_h": lambda: GaussianKDE(moon_samples(), 0.15),
}
CURVES = ["two_moons", "swiss_roll", "rings", "circle", "circles", "s_curve"]
SMOOTH_AT_0 = CURVES + ["kde_scott", "kde_h"]

#: Evolutions: (process, t, s) steps, applied in order ("VE 0.5 + OU 0.2" composes two
#: processes); VP, OU, VE, sub-VP and cosine.
STEPS = {
    "data": [],
    "VP 0.05": [(VP, 0.05, 0.0)],
    "VP 0.4": [(VP, 0.4, 0.0)],
    "OU 0.1": [(OU, 0.1, 0.0)],
    "OU 0.6": [(OU, 0.6, 0.0)],
    "VE 0.5 + OU 0.2": [(VE, 0.5, 0.0), (OU, 0.2, 0.0)],
    "SubVP 0.3": [(SUBVP, 0.3, 0.0)],
    "Cosine 0.3": [(COSINE, 0.3, 0.0)],
}


def transition(steps) -> tuple[float, float, float]:
    """``(a, b, v)`` of ``x = a y + b + √v z`` after the steps, from the processes'
    transitions (independent of the families' affine state)."""
    a, b, v = 1.0, 0.0, 0.0
    for proc, t, s in steps:
        ap, vp = proc.transition(t, s)
        mu = proc.mean if isinstance(proc, bs.OU) else 0.0
        a, b, v = ap * a, ap * b + (1.0 - ap) * mu, ap * ap * v + vp
    return a, b, v


def evolved(density, steps):
    for proc, t, s in steps:
        density = density.evolve(proc, t, s)
    return density


def base_variance(density) -> float:
    """The smallest kernel variance of the data law (0 for boxes)."""
    if isinstance(density, CurveMixture):
        return density.noise**2
    if isinstance(density, GaussianKDE):
        return float(np.linalg.eigvalsh(density.H).min())
    return 0.0


def central_differences(fn, x: np.ndarray, h: float) -> np.ndarray:
    return np.stack([(fn(x + h * e) - fn(x - h * e)) / (2 * h) for e in np.eye(x.shape[1])],
                    axis=1)


# -- Monte Carlo through the exact transition ---------------------------------------------------
def probes(x: np.ndarray, scale: float, kernel_std: float) -> np.ndarray:
    """``(N, F)``: coordinates, second moments, and cos/sin modes at wave numbers 1/scale,
    3/scale and 1/kernel_std (at most 1/kernel_std, so that the grid resolves them)."""
    n, d = x.shape
    cols = [x[:, i] for i in range(d)]
    cols += [x[:, i] * x[:, j] for i in range(d) for j in range(i, d)]
    dirs = list(np.eye(d)) + [np.ones(d) / math.sqrt(d)]
    for k in sorted({min(1.0 / scale, 1.0 / kernel_std), min(3.0 / scale, 1.0 / kernel_std),
                     1.0 / kernel_std}):
        for e in dirs:
            phase = k * (x @ e)
            cols += [np.cos(phase), np.sin(phase)]
    return np.stack(cols, axis=1)


def mc_cases():
    for fam in FAMILIES:
        for name in STEPS:
            if name == "data" and fam not in SMOOTH_AT_0:
                continue  # a box's density jumps at t = 0: no grid quadrature
            yield pytest.param(fam, name, id=f"{fam}-{name}")


@pytest.mark.parametrize("family, steps", list(mc_cases()))
def test_evolved_pdf_matches_monte_carlo_through_the_exact_transition(family, steps):
    rng = np.random.default_rng(11)
    base = FAMILIES[family]()
    a, b, v = transition(STEPS[steps])
    n = 40_000
    x = a * base.sample(n, rng) + b + math.sqrt(v) * rng.standard_normal((n, base.dim))
    p = evolved(base, STEPS[steps])

    d = base.dim
    kstd = math.sqrt(a * a * base_variance(base) + v)
    h = kstd / 1.2  # trapezoid error ~ exp(-2π² (kstd/h)²), below 1e-12
    lo, hi = x.min(axis=0) - 5 * kstd, x.max(axis=0) + 5 * kstd
    axes = [np.arange(lo[i], hi[i] + h, h) for i in range(d)]
    assert np.prod([ax.size for ax in axes]) < 4e5, "grid too large for a fast test"
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
    w = p.pdf(grid) * h**d

    assert abs(w.sum() - 1.0) < 1e-6, w.sum()
    f_mc = probes(x, float(np.sqrt(x.var(axis=0).mean())), kstd)
    f_grid = probes(grid, float(np.sqrt(x.var(axis=0).mean())), kstd)
    exact = w @ f_grid
    mc = f_mc.mean(axis=0)
    se = f_mc.std(axis=0) / math.sqrt(n)
    z = np.abs(mc - exact) / se
    assert np.all(z < 5.0), f"{family} {steps}: worst |mc - exact| = {z.max():.2f} SE"


def test_monte_carlo_check_detects_a_wrong_evolution():
    """The same check fails when the density forgets OU's mean (b = 0): it has power."""
    rng = np.random.default_rng(12)
    base = FAMILIES["image2d"]()
    a, b, v = transition([(OU, 0.6, 0.0)])
    n = 40_000
    x = a * base.sample(n, rng) + b + math.sqrt(v) * rng.standard_normal((n, 2))
    wrong = base.evolve(bs.OU(theta=0.7, sigma=1.2, mean=0.0), 0.6)
    g = np.linspace(-4.0, 4.0, 161)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    exact = (wrong.pdf(grid) * (g[1] - g[0]) ** 2) @ grid
    se = x.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(x.mean(axis=0) - exact) > 20 * se)


# -- curves: brute-force quadrature -------------------------------------------------------------
def simpson_log_pdf(curve_mixture, x, a, b, v, n=200_001):
    """``log Σ_j w_j ∫_0^1 N(x; a c_j(u) + b, (a²σ² + v) I) du``, Simpson in ``u``."""
    u = np.linspace(0.0, 1.0, n)
    wq = np.ones(n)
    wq[1:-1:2], wq[2:-1:2] = 4.0, 2.0
    wq /= 3.0 * (n - 1)
    var = a * a * curve_mixture.noise**2 + v
    d = curve_mixture.dim
    parts = []
    for curve, wj in zip(curve_mixture.curves, curve_mixture.weights, strict=True):
        m = a * np.asarray(curve.fn(u)) + b
        r2 = np.sum((x[:, None, :] - m[None, :, :]) ** 2, axis=2)
        parts.append(math.log(wj) + logsumexp(-0.5 * r2 / var, b=wq[None, :], axis=1))
    return logsumexp(np.stack(parts), axis=0) - 0.5 * d * math.log(2 * math.pi * var)


CURVE_STEPS = {"data": [], "VP 0.05": [(VP, 0.05, 0.0)], "VP 0.6": [(VP, 0.6, 0.0)],
               "OU 1": [(OU, 1.0, 0.0)], "Brownian 0.5": [(BROWNIAN, 0.5, 0.0)],
               "SubVP 0.3": [(SUBVP, 0.3, 0.0)], "Cosine 0.5": [(COSINE, 0.5, 0.0)]}


@pytest.mark.parametrize("steps", list(CURVE_STEPS))
@pytest.mark.parametrize("family", CURVES)
def test_curve_log_pdf_matches_brute_force_quadrature(family, steps):
    base = FAMILIES[family]()
    a, b, v = transition(CURVE_STEPS[steps])
    p = evolved(base, CURVE_STEPS[steps])
    std = math.sqrt(a * a * base.noise**2 + v)
    assert p.variance == pytest.approx(std**2, rel=1e-14)
    near = p.sample(10, rng=3)
    far = near[:4] + 4 * std * np.array([0.6, 0.8])  # 4 kernel stds off the cloud
    x = np.vstack([near, far])
    ref = simpson_log_pdf(base, x, a, b, v)
    assert np.max(np.abs(p.log_pdf(x) - ref)) < 1e-9
    qerr = p.quadrature_error(x)
    assert np.all(qerr < (1e-8 if steps in ("data", "VP 0.05") else 1e-6)), qerr.max()


@pytest.mark.parametrize("family", CURVES)
def test_curve_score_matches_finite_differences(family):
    p = FAMILIES[family]().evolve(VP, 0.05)
    x = p.sample(30, rng=4)
    std = math.sqrt(p.variance)
    fd = central_differences(p.log_pdf, x, 1e-5 * std)
    assert np.allclose(p.score(x), fd, rtol=1e-6, atol=1e-6 / std)
    logp, score = p.log_pdf_and_score(x)
    assert np.array_equal(logp, p.log_pdf(x)) and np.array_equal(score, p.score(x))


def test_s_curve_kink_is_a_panel_end():
    """The S-curve's curvature jumps at u = 1/2: without a panel end there the rule is
    ~1e-7 off (log p) at small noise."""
    p = s_curve(noise=0.05)
    x = np.array([[0.0, 0.0], [0.05, -0.02], [-0.03, 0.04]])  # at the kink
    ref = simpson_log_pdf(p, x, 1.0, 0.0, 0.0)
    assert np.max(np.abs(p.log_pdf(x) - ref)) < 1e-11


def test_curve_samples_follow_the_preset_curves():
    """``sample`` at t = 0: distance to the curve is noise-sized (the data law itself)."""
    p = two_moons(noise=0.08)
    y = p.sample(1000, rng=5)
    u = np.linspace(0.0, 1.0, 2001)
    pts = np.concatenate([c.fn(u) for c in p.curves])
    dist = np.min(np.linalg.norm(y[:, None, :] - pts[None, :, :], axis=2), axis=1)
    # |z| of a 2D standard normal projected on the normal: E[dist] ≈ 0.08 √(2/π)
    assert abs(dist.mean() - 0.08 * math.sqrt(2 / math.pi)) < 0.004


# -- boxes and images ---------------------------------------------------------------------------
def box_pdf_direct(weights, lower, upper, x, a, b, v):
    """``Σ_k w_k Π_i [Φ((a u + b - x)/s) - Φ((a l + b - x)/s)] / (a (u - l))``."""
    s = math.sqrt(v)
    out = np.zeros(x.shape[0])
    for w, lo, hi in zip(weights, lower, upper, strict=True):
        f = np.ones(x.shape[0])
        for i in range(x.shape[1]):
            A, B = (a * lo[i] + b - x[:, i]) / s, (a * hi[i] + b - x[:, i]) / s
            f *= (stats.norm.cdf(B) - stats.norm.cdf(A)) / (a * (hi[i] - lo[i]))
        out += w * f
    return out


def image_as_boxes(img: ImageDensity) -> BoxMixture:
    idx = np.stack(np.unravel_index(np.arange(img.masses.size), img.masses.shape), axis=1)
    h = (img.upper - img.lower) / np.array(img.masses.shape)
    lo = img.lower + idx * h
    return BoxMixture(img.masses.ravel(), lo, lo + h)


BOX_STEPS = {"VP 0.05": [(VP, 0.05, 0.0)], "OU 0.6": [(OU, 0.6, 0.0)],
             "VE 0.5 + OU 0.2": [(VE, 0.5, 0.0), (OU, 0.2, 0.0)]}


@pytest.mark.parametrize("steps", list(BOX_STEPS))
@pytest.mark.parametrize("family", ["checkerboard", "boxes3d", "image2d", "image3d"])
def test_box_and_image_pdfs_match_the_direct_formula(family, steps):
    base = FAMILIES[family]()
    a, b, v = transition(BOX_STEPS[steps])
    boxes_ = image_as_boxes(base) if isinstance(base, ImageDensity) else base
    p = evolved(base, BOX_STEPS[steps])
    x = p.sample(40, rng=6)
    ref = box_pdf_direct(boxes_.weights, boxes_.lower, boxes_.upper, x, a, b, v)
    assert np.allclose(p.pdf(x), ref, rtol=1e-10, atol=0)
    # and the separable image evaluation equals the box mixture of its pixels, tails too
    far = x[:5] + 6 * math.sqrt(v)
    y = np.vstack([x, far])
    assert np.allclose(p.log_pdf(y), evolved(boxes_, BOX_STEPS[steps]).log_pdf(y),
                       rtol=0, atol=1e-10)


@pytest.mark.parametrize("steps", list(BOX_STEPS))
@pytest.mark.parametrize("family", ["checkerboard", "boxes3d", "image2d", "image3d"])
def test_box_and_image_scores_match_finite_differences(family, steps):
    p = evolved(FAMILIES[family](), BOX_STEPS[steps])
    s = math.sqrt(p.state.v)
    x = p.sample(30, rng=7)
    x = np.vstack([x, x[:3] + 5 * s])  # tails too
    fd = central_differences(p.log_pdf, x, 1e-5 * s)
    logp, score = p.log_pdf_and_score(x)
    assert np.allclose(score, fd, rtol=1e-6, atol=1e-6 / s)
    assert np.array_equal(score, p.score(x)) and np.allclose(logp, p.log_pdf(x), rtol=1e-15)


def gl_evolution(image: ImageDensity, ratio: float, vp_first: bool):
    """Brownian motion (after VP to 0.5 if ``vp_first``) to the time where the widest
    pixel is ``ratio`` kernel stds wide."""
    a, steps = 1.0, []
    if vp_first:
        a, v = VP.transition(0.5)
        steps = [(VP, 0.5, 0.0)]
    width = a * np.max((image.upper - image.lower) / np.array(image.masses.shape))
    steps.append((bs.Brownian(1.0), (width / ratio) ** 2 - (v if vp_first else 0.0), 0.0))
    return evolved(image, steps)


@pytest.mark.parametrize("ratio, vp_first", [(0.04, False), (0.1, False), (0.149, False),
                                             (0.03, True)])
@pytest.mark.parametrize("family", ["image2d", "image3d"])
def test_image_gauss_legendre_path_equals_erf_path(family, ratio, vp_first, monkeypatch):
    p = gl_evolution(FAMILIES[family](), ratio, vp_first)
    s = math.sqrt(p.state.v)
    widths = p.state.a * (p.upper - p.lower) / np.array(p.masses.shape)
    assert np.max(widths / s) == pytest.approx(ratio)
    assert np.max(widths / s) <= boxes.GL_MAX_RATIO  # the GL path is the one taken
    x = p.sample(100, rng=8)
    d = p.dim
    corner = p.state.a * p.upper + np.array(p.state.b)
    out = [corner + z * s * np.ones(d) / math.sqrt(d) for z in (1, 3, 5, 7, 7.9, 8.1, 30, 1e3)]
    x = np.vstack([x, out, -np.array(out)])

    calls = []
    real = boxes._gl_factors
    monkeypatch.setattr(boxes, "_gl_factors", lambda *a, **k: calls.append(1) or real(*a, **k))
    logp, score = p.log_pdf_and_score(x)
    assert calls, "the Gauss-Legendre path was not taken"
    monkeypatch.setattr(boxes, "GL_MAX_RATIO", -1.0)
    calls.clear()
    logp_erf, score_erf = p.log_pdf_and_score(x)
    assert not calls
    assert np.all(np.isfinite(logp)) and logp.min() < -1e4  # far points stay finite
    assert np.max(np.abs(logp - logp_erf)) < 1e-12
    assert np.allclose(score, score_erf, rtol=1e-11, atol=1e-12 / s)


@pytest.mark.parametrize("family", ["image2d", "image3d"])
def test_numpy_pixel_kernel_equals_the_compiled_one(family, monkeypatch):
    p = FAMILIES[family]().evolve(VP, 0.4)
    x = np.vstack([p.sample(200, rng=9), [[5.0] * p.dim, [-40.0] * p.dim]])
    logp, score = p.log_pdf_and_score(x)
    calls = []
    real = _pixel_kernels._factors_numpy
    monkeypatch.setattr(_pixel_kernels, "_factors_compiled", None)
    monkeypatch.setattr(_pixel_kernels, "_factors_numpy",
                        lambda *a: calls.append(1) or real(*a))
    logp_np, score_np = p.log_pdf_and_score(x)
    assert calls, "the NumPy kernel was not taken"
    assert np.max(np.abs(logp - logp_np)) < 1e-12
    assert np.allclose(score, score_np, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("steps", ["VP 0.05", "OU 0.6", "VE 0.5 + OU 0.2"])
def test_checkerboard_equals_its_zero_one_image(steps):
    board = np.array([[1.0 if (i + j) % 2 == 0 else 0.0 for j in range(4)] for i in range(4)])
    img = evolved(ImageDensity(board, [-2.0, -2.0], [2.0, 2.0]), STEPS[steps])
    cb = evolved(checkerboard(), STEPS[steps])
    x = np.vstack([cb.sample(200, rng=10), [[9.0, -7.0], [0.5, 30.0]]])
    assert np.max(np.abs(cb.log_pdf(x) - img.log_pdf(x))) < 1e-12
    assert np.allclose(cb.score(x), img.score(x), rtol=1e-10, atol=1e-10)
    # the data laws agree too: the black squares are those with even floor(x) + floor(y)
    y = checkerboard().sample(1000, rng=10)
    assert np.all(np.floor(y).sum(axis=1) % 2 == 0)


@pytest.mark.parametrize("family", ["checkerboard", "image2d"])
def test_2d_box_pdf_integrates_to_one(family):
    p = FAMILIES[family]().evolve(VP, 0.05)
    g = np.linspace(-4.0, 4.0, 321)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    assert abs(p.pdf(grid).sum() * (g[1] - g[0]) ** 2 - 1.0) < 1e-9


# -- KDE ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["scott", "silverman"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_kde_equals_scipy_gaussian_kde(rule, dim):
    rng = np.random.default_rng(13)
    data = rng.standard_normal((200, dim)) @ np.triu(np.ones((dim, dim))) + 0.3
    kde = GaussianKDE(data[:, 0] if dim == 1 else data, rule)
    ref = stats.gaussian_kde(data.T, bw_method=rule)
    x = rng.standard_normal((300, dim)) * 1.5
    assert np.allclose(kde.pdf(x), ref(x.T), rtol=1e-12, atol=0)
    assert np.allclose(kde.log_pdf(x), ref.logpdf(x.T), rtol=0, atol=1e-12)
    assert np.allclose(kde.H, ref.covariance, rtol=1e-14)


@pytest.mark.parametrize("steps", ["VP 0.05", "OU 0.6", "VE 0.5 + OU 0.2"])
@pytest.mark.parametrize("bandwidth", ["scott", 0.15])
def test_evolved_kde_equals_the_evolved_gaussian_mixture(bandwidth, steps):
    data = moon_samples()
    kde = GaussianKDE(data, bandwidth)
    H = (0.15**2 * np.eye(2) if bandwidth == 0.15
         else 200 ** (-2.0 / 6.0) * np.cov(data.T))
    mix = GaussianMixture(np.full(200, 1 / 200), data, [H] * 200)
    p, q = evolved(kde, STEPS[steps]), evolved(mix, STEPS[steps])
    x = np.vstack([p.sample(100, rng=14), [[6.0, -5.0]]])
    assert np.allclose(p.log_pdf(x), q.log_pdf(x), rtol=0, atol=1e-11)
    assert np.allclose(p.score(x), q.score(x), rtol=1e-9, atol=1e-9)
    fd = central_differences(p.log_pdf, x, 1e-6)
    assert np.allclose(p.score(x), fd, rtol=1e-6, atol=1e-5)


# -- descriptions -------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", ["data", "VP 0.05", "VE 0.5 + OU 0.2"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_description_round_trip_gives_identical_log_pdf(family, steps):
    p = evolved(FAMILIES[family](), STEPS[steps])
    desc = json.loads(json.dumps(p.describe()))  # plain JSON
    q = density_from_description(desc)
    assert type(q) is type(p) and q.describe() == desc
    x = p.sample(50, rng=15)
    assert np.array_equal(q.log_pdf(x), p.log_pdf(x))
    if steps != "data" or family in SMOOTH_AT_0:
        assert np.array_equal(q.score(x), p.score(x))


def test_file_backed_descriptions_round_trip(tmp_path):
    np.save(tmp_path / "img.npy", pixels((16, 12), 5))
    np.save(tmp_path / "pts.npy", moon_samples())
    np.savetxt(tmp_path / "pts.csv", moon_samples(), delimiter=",", header="x,y",
               comments="")
    dens = [image_from_file(tmp_path / "img.npy", [-1.0, -0.5], [1.0, 1.0]),
            kde_from_file(tmp_path / "pts.npy", 0.15), kde_from_file(tmp_path / "pts.csv")]
    assert np.allclose(read_samples(tmp_path / "pts.csv"), moon_samples(), rtol=1e-15)
    for p in dens:
        p = p.evolve(OU, 0.3)
        desc = json.loads(json.dumps(p.describe()))
        assert "path" in desc and "masses" not in desc and "samples" not in desc
        x = p.sample(40, rng=16)
        assert np.array_equal(density_from_description(desc).log_pdf(x), p.log_pdf(x))
    img = FAMILIES["image2d"]().evolve(OU, 0.3)
    assert np.array_equal(dens[0].evolve(OU, 0.3).log_pdf(x), img.log_pdf(x))


def test_evolution_composes_like_one_transition():
    """Evolving in two steps is the one-step law (VP from 0 to 0.1 to 0.4)."""
    for family in FAMILIES:
        p = FAMILIES[family]()
        one, two = p.evolve(VP, 0.4), p.evolve(VP, 0.1).evolve(VP, 0.4, 0.1)
        x = one.sample(20, rng=17)
        assert np.allclose(one.log_pdf(x), two.log_pdf(x), rtol=0, atol=1e-12), family


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", [two_moons, swiss_roll, rings, circle, circles, s_curve])
@pytest.mark.parametrize("noise, match", [
    (0, r"noise = 0: a curve without noise has no density"),
    (0.0, r"noise = 0: a curve without noise has no density"),
    (-0.1, r"noise = -0.1: expected a finite non-negative number"),
    (float("nan"), r"noise = nan: expected a finite non-negative number"),
])
def test_curve_noise_must_be_positive(preset, noise, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        preset(noise=noise)


def test_circles_follow_make_circles():
    """scikit-learn's ``make_circles`` (DSB's circle set): radii 1 and ``factor``, half the
    mass on each; a factor >= 1 is refused by name."""
    r = np.linalg.norm(circles(factor=0.5, noise=1e-9).sample(4000, rng=18), axis=1)
    inner = r < 0.75
    assert np.allclose(r[inner], 0.5, atol=1e-7) and np.allclose(r[~inner], 1.0, atol=1e-7)
    assert abs(inner.mean() - 0.5) < 4 * math.sqrt(0.25 / 4000)
    with pytest.raises(bs.BridgesolveInputError, match=r"factor = 1.0: the inner circle's "
                                                       r"radius must be < 1"):
        circles(factor=1.0)


@pytest.mark.parametrize("noise", [0.0, -0.2, float("nan")])
def test_curve_mixture_noise_must_be_positive(noise):
    curve = Curve(lambda u: np.stack([u, u], axis=1))
    with pytest.raises(bs.BridgesolveInputError,
                       match=rf"noise = {noise!r}: a curve mixture needs noise > 0"):
        CurveMixture([curve], noise)


def test_zero_volume_boxes_are_refused():
    with pytest.raises(bs.BridgesolveInputError,
                       match=r"box 1: lower \[1.0, 1.0\] and upper \[2.0, 1.0\] give zero "
                             r"volume \(need upper > lower"):
        BoxMixture([1.0, 1.0], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 1.0], [2.0, 1.0]])
    with pytest.raises(bs.BridgesolveInputError,
                       match=r"box 0: lower \[0.0, 0.0, 0.0\] and upper \[1.0, 2.0, 0.0\] give "
                             r"zero volume"):
        ImageDensity(np.ones((3, 3, 3)), [0.0, 0.0, 0.0], [1.0, 2.0, 0.0])


@pytest.mark.parametrize("value, match", [
    (-0.5, r"image has negative pixels \(e.g. -0.5 at index \[2, 3\]\): masses must be >= 0"),
    (float("nan"), r"image has 1 NaN or infinite pixels \(first at index \[2, 3\]\)"),
    (float("inf"), r"image has 1 NaN or infinite pixels \(first at index \[2, 3\]\)"),
])
def test_bad_pixels_are_named(value, match, tmp_path):
    m = pixels((16, 12), 5)
    m[2, 3] = value
    with pytest.raises(bs.BridgesolveInputError, match=match):
        ImageDensity(m)
    np.save(tmp_path / "bad.npy", m)
    with pytest.raises(bs.BridgesolveInputError, match=r"image file '.*bad.npy': " + match):
        image_from_file(tmp_path / "bad.npy")


def test_an_empty_image_is_refused():
    with pytest.raises(bs.BridgesolveInputError, match=r"image: every pixel is zero \(no mass\)"):
        ImageDensity(np.zeros((4, 5)))


def write_samples(path, arr):
    if path.suffix == ".npy":
        np.save(path, arr)
    else:
        np.savetxt(path, arr, delimiter=",")


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
@pytest.mark.parametrize("case, match", [
    ("nan_row", r"samples contain NaN or infinite values \(1 row\(s\), first: row 3\)"),
    ("one_row", r"samples have shape \(1, 2\): expected \(n, d\) with n >= 2 points"),
    ("five_columns", r"samples have shape \(10, 5\): expected \(n, d\) with n >= 2 points in "
                     r"d = 1, 2 or 3 dimensions"),
])
def test_bad_sample_files_are_named(suffix, case, match, tmp_path):
    arr = {"nan_row": np.vstack([np.ones((3, 2)), [[np.nan, 1.0]], np.ones((4, 2))]),
           "one_row": np.array([[0.5, 1.5]]),
           "five_columns": np.arange(50.0).reshape(10, 5)}[case]
    path = tmp_path / f"{case}{suffix}"
    write_samples(path, arr)
    full = r"samples file '.*" + re.escape(f"{case}{suffix}") + "': " + match
    with pytest.raises(bs.BridgesolveInputError, match=full):
        read_samples(path)
    with pytest.raises(bs.BridgesolveInputError, match=full):
        kde_from_file(path)


@pytest.mark.parametrize("bandwidth, match", [
    (0, r"bandwidth = 0: must be > 0"),
    (0.0, r"bandwidth = 0.0: must be > 0"),
    (-0.3, r"bandwidth = -0.3: must be > 0"),
    (float("nan"), r"bandwidth = nan: must be > 0"),
    ("scot", r"bandwidth = 'scot': expected 'scott', 'silverman' or a number > 0"),
    ("Scott", r"bandwidth = 'Scott': expected 'scott', 'silverman' or a number > 0"),
    ([0.1, 0.2], r"bandwidth = \[0.1, 0.2\]: expected 'scott', 'silverman' or a number"),
])
def test_bad_kde_bandwidths_are_named(bandwidth, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        GaussianKDE(moon_samples(), bandwidth)


def test_kde_samples_are_checked():
    with pytest.raises(bs.BridgesolveInputError, match=r"samples contain NaN or infinite "
                                                       r"values \(1 row\(s\), first: row 2\)"):
        GaussianKDE([[0.0, 0.0], [1.0, 1.0], [np.inf, 0.0]])
    with pytest.raises(bs.BridgesolveInputError,
                       match=r"samples span fewer than 2 dimensions \(singular covariance\)"):
        GaussianKDE([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], "scott")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_non_linear_processes_are_refused(family):
    custom = bs.Custom(lambda x: -x * x, 1.0, drift_numpy=lambda x: -x * x)
    with pytest.raises(bs.BridgesolveInputError,
                       match=r"evolve under Custom: exact only for linear processes"):
        FAMILIES[family]().evolve(custom, 0.5)
