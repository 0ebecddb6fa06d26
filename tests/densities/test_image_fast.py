"""Images on many points (``densities/_image_fast``): windows for narrow kernels and
panel-wise Chebyshev interpolation for wide ones agree with the dense product to round-off,
in 1D, 2D and 3D, with the points their bounds do not cover (far tails, empty regions) sent
back to the dense product; an inaccurate road (too small a window, too few Chebyshev points)
is caught by its own bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.densities import ImageDensity
from bridgesolve.densities import _image_fast as fast

VP = bs.VP()


def image(shape, seed=3, empty=0.2):
    m = np.random.default_rng(seed).random(shape) ** 2
    m[m < empty] = 0.0  # empty pixels: regions where the density is small
    d = len(shape)
    return ImageDensity(m, [-1.0] * d, [1.0, 0.5, 1.5][:d])


def points(p: ImageDensity, n: int, seed=4) -> np.ndarray:
    """Samples of ``p`` plus far points (the tails and beyond the image's reach)."""
    rng = np.random.default_rng(seed)
    x = p.sample(n, rng)
    far = rng.uniform(-6.0, 6.0, size=(n // 20, p.dim))
    return np.concatenate([x, far])


def edges_of(p: ImageDensity):
    st = p.state
    return [st.a * g + st.shift(p.dim)[i] for i, g in enumerate(p._grid)]


CASES = {  # name: (image shape, VP time, points, the road the plan takes)
    "1d_window": ((400,), 1e-5, 4000, "window"),
    "1d_interp": ((400,), 0.05, 4000, "interp"),
    "2d_window": ((96, 80), 1e-4, 4000, "window"),
    "2d_interp": ((96, 80), 0.05, 4000, "interp"),
    "2d_interp_wide": ((96, 80), 0.8, 4000, "interp"),
    "3d_window": ((24, 20, 16), 1e-4, 4000, "window"),
    "3d_interp": ((48, 40, 32), 0.3, 12000, "interp"),  # K³ per point: pays off later
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_roads_equal_the_dense_product(case):
    shape, t, n, road = CASES[case]
    p = image(shape).evolve(VP, t)
    x = points(p, n)
    s = math.sqrt(p.state.v)
    assert fast.plan(edges_of(p), s, x, True) == road
    logp, score = p.log_pdf_and_score(x)
    ref_logp, ref_score = p._dense(x, True)
    _, _, ok = fast.evaluate(p.masses, edges_of(p), s, x, True, road)
    finite = np.isfinite(ref_logp)
    print(f"{case}: {ok.mean():.3f} of the points on the {road} road; max |Δ log p| "
          f"{np.max(np.abs(logp - ref_logp)[finite]):.1e}")
    assert ok.mean() > 0.8  # the road carries most points ...
    assert not ok[-(x.shape[0] // 21):].all()  # ... and the far ones are sent back
    finite = np.isfinite(ref_logp)  # thousands of stds out the dense product underflows
    assert finite[:n].all() and np.array_equal(np.isfinite(logp), finite)
    np.testing.assert_allclose(logp[finite], ref_logp[finite], rtol=0, atol=1e-11)
    scale = np.max(np.abs(ref_score[finite]))
    np.testing.assert_allclose(score[finite], ref_score[finite], rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(p.log_pdf(x)[finite], ref_logp[finite], rtol=0, atol=1e-11)


@pytest.mark.parametrize("t", [1e-4, 0.02])  # erf factors; Gauss–Legendre recurrences
def test_the_numpy_window_equals_the_compiled_one(t, monkeypatch):
    p = image((96, 80)).evolve(VP, t)
    x = points(p, 3000)
    s = math.sqrt(p.state.v)
    compiled = fast.evaluate(p.masses, edges_of(p), s, x, True, "window")
    monkeypatch.setattr(fast, "COMPILED", False)  # as without numba: the gathered block
    monkeypatch.setattr(fast, "window_factors", lambda *args: None)  # NumPy recurrences
    plain = fast.evaluate(p.masses, edges_of(p), s, x, True, "window")
    np.testing.assert_array_equal(compiled[2], plain[2])
    ok = compiled[2]
    np.testing.assert_allclose(compiled[0][ok], plain[0][ok], rtol=0, atol=1e-13)
    np.testing.assert_allclose(compiled[1][ok], plain[1][ok], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("road, setting, value", [("window", "R_WINDOW", 2.0),
                                                  ("interp", "K_CHEB", 6)])
def test_an_inaccurate_road_is_caught_by_its_bound(road, setting, value, monkeypatch):
    """A window of 2 stds drops ~5 % of the mass, 6 Chebyshev points miss by ~1e-3: the
    bounds reject every point, and the density is still right (the dense product)."""
    t = 1e-4 if road == "window" else 0.05
    p = image((96, 80)).evolve(VP, t)
    x = points(p, 3000)
    s = math.sqrt(p.state.v)
    ref_logp, ref_score = p._dense(x, True)
    monkeypatch.setattr(fast, setting, value)
    logp_road, _, ok = fast.evaluate(p.masses, edges_of(p), s, x, True, road)
    assert np.nanmax(np.abs(logp_road - ref_logp)) > 1e-4  # the road is wrong ...
    assert not ok.any()  # ... and says so at every point
    monkeypatch.setattr(fast, "plan", lambda *args: road)
    logp, score = p.log_pdf_and_score(x)
    np.testing.assert_allclose(logp, ref_logp, rtol=0, atol=1e-11)
    np.testing.assert_allclose(score, ref_score, rtol=0, atol=1e-10 * np.abs(ref_score).max())


def test_small_calls_and_point_masses_take_the_dense_product():
    p = image((96, 80))
    x = p.sample(5000, 1)
    assert fast.plan(edges_of(p), 0.0, x, True) == "dense"  # t = 0: no kernel
    q = p.evolve(VP, 0.05)
    assert fast.plan(edges_of(q), math.sqrt(q.state.v), x[:500], True) == "dense"


def test_pixel_positions_do_not_drift_along_a_row():
    """``e[1] - e[0]`` of ``a * linspace`` edges is off by an ulp; stepped 500 pixels along a
    row it shifted the far pixels by ~1e-11 stds (log p off by 5e-12 beyond the image's right
    edge). Both the window's recurrences and the dense Gauss–Legendre factors take the mean
    pixel width and the window's own first edge."""
    from bridgesolve.densities.boxes import _gl_factors, log_interval

    e = 0.9997 * np.linspace(-2.0, 2.0, 513)
    s = 0.0197
    x = np.array([2.0414, 1.99, -2.03, 0.3])
    w = fast._window_widths([e], s)[0]
    h = e[1] - e[0]
    start = np.clip(np.floor((x - fast.R_WINDOW * s - e[0]) / h).astype(np.int64), 0,
                    e.size - 1 - w)
    k = start[:, None] + np.arange(w)
    exact = np.exp(log_interval(e[k], e[k + 1], x[:, None], s)[0])
    F = fast._window_factors(e, start, x, s, w)[0]
    assert np.max(np.abs(F - exact).sum(axis=1) / exact.sum(axis=1)) < 5e-14
    s_wide = 0.2  # h/s = 0.04: the dense product's Gauss–Legendre path
    F_gl, _, top, _ = _gl_factors(e, x, s_wide, score=False)
    dense = F_gl * np.exp(top)[:, None]
    exact = np.exp(log_interval(e[None, :-1], e[None, 1:], x[:, None], s_wide)[0])
    assert np.max(np.abs(dense - exact).sum(axis=1) / exact.sum(axis=1)) < 5e-14
