"""Gaussian mixtures: pdf, score, sampling, exact evolution, input validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bridgesolve as bs

with pytest.warns(UserWarning, match=r"sum to 4, not 1: normalized to \[0.25, 0.75\]"):
    MIX = bs.GaussianMixture([1.0, 3.0], [[-1.0, 0.0], [2.0, 1.0]],
                             [[[0.3, 0.1], [0.1, 0.2]], [[0.5, 0.0], [0.0, 0.4]]])


def test_pdf_matches_scipy_and_normalizes_weights():
    x = np.random.default_rng(1).normal(size=(50, 2))
    ref = sum(w * stats.multivariate_normal(m, c).pdf(x)
              for w, m, c in zip([0.25, 0.75], MIX.means, MIX.covs, strict=True))
    assert np.allclose(MIX.pdf(x), ref, rtol=1e-12)
    assert MIX.weights.tolist() == [0.25, 0.75]


def test_log_pdf_is_finite_far_in_the_tails():
    x = np.array([[60.0, -60.0]])
    assert MIX.pdf(x)[0] == 0.0
    assert np.isfinite(MIX.log_pdf(x)[0]) and MIX.log_pdf(x)[0] < -1e3


def test_score_matches_finite_differences_of_log_pdf():
    x = np.random.default_rng(2).normal(size=(20, 2)) * 2
    h = 1e-6
    fd = np.stack([(MIX.log_pdf(x + h * e) - MIX.log_pdf(x - h * e)) / (2 * h)
                   for e in np.eye(2)], axis=1)
    assert np.allclose(MIX.score(x), fd, atol=1e-7)


def test_samples_pass_a_ks_test_per_coordinate():
    s = MIX.sample(20000, rng=3)
    for i in range(2):
        grid_cdf = lambda v, i=i: sum(  # noqa: E731
            w * stats.norm(m[i], np.sqrt(c[i, i])).cdf(v)
            for w, m, c in zip(MIX.weights, MIX.means, MIX.covs, strict=True))
        assert stats.kstest(s[:, i], grid_cdf).pvalue > 0.01


@pytest.mark.parametrize("proc", [bs.OU(theta=0.7, sigma=1.2, mean=0.5), bs.VP(), bs.SubVP(),
                                  bs.VE(sigma_max=2.0), bs.Brownian(0.8)],
                         ids=lambda p: type(p).__name__)
def test_evolve_matches_euler_maruyama_moments(proc):
    """Independent check of the closed-form marginals: simulate the SDE."""
    rng = np.random.default_rng(4)
    n, steps, t0, t1 = 100_000, 400, 0.1, 0.9
    x = MIX.evolve(proc, t0).sample(n, rng)
    ts = np.linspace(t0, t1, steps + 1)
    for a, b in zip(ts[:-1], ts[1:], strict=True):
        dt = b - a
        x = x + proc.drift(x, a) * dt + proc.g(a) * np.sqrt(dt) * rng.standard_normal(x.shape)
    exact = MIX.evolve(proc, t1)
    mean = exact.mean()
    cov = sum(w * (c + np.outer(m, m)) for w, m, c in
              zip(exact.weights, exact.means, exact.covs, strict=True)) - np.outer(mean, mean)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * se + 5e-3 * np.sqrt(np.diag(cov)))
    assert np.allclose(np.cov(x.T), cov, rtol=0.03, atol=0.01)


def test_evolve_composes():
    proc = bs.VP()
    a = MIX.evolve(proc, 0.7)
    b = MIX.evolve(proc, 0.3).evolve(proc, 0.7, 0.3)
    assert np.allclose(a.means, b.means) and np.allclose(a.covs, b.covs)


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": [0.5, -0.5]}, "non-negative"),
    ({"weights": [0.0, 0.0]}, "positive sum"),
    ({"means": [[0.0, 0.0]]}, r"means has shape \(1, 2\): expected \(2, d\)"),
    ({"covs": [[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]},
     r"covs\[0\].*positive definite"),
    ({"covs": [[[1.0, 0.2], [0.1, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]}, r"covs\[0\].*symmetric"),
    ({"covs": [[1.0], [1.0, 2.0]]}, "rectangular"),
    ({"covs": [[[np.nan, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]},
     r"contains NaN: expected finite numbers"),
])
def test_invalid_mixtures_name_the_value(kwargs, match):
    args = {"weights": [0.5, 0.5], "means": [[0.0, 0.0], [1.0, 1.0]], "covs": [1.0, 1.0]}
    args.update(kwargs)
    with pytest.raises(bs.BridgesolveInputError, match=match):
        bs.GaussianMixture(**args)


def test_scalar_and_diagonal_covariances():
    a = bs.GaussianMixture([1], [[0.0, 0.0]], [2.0])
    b = bs.GaussianMixture([1], [[0.0, 0.0]], [[2.0, 2.0]])
    assert np.allclose(a.covs, b.covs) and np.allclose(a.covs[0], 2 * np.eye(2))


def _rows_sorted(a):
    a = np.round(np.asarray(a, dtype=float), 12) + 0.0  # -0.0 -> 0.0 for the sort
    return a[np.lexsort(a.T[::-1])]


def test_eight_gaussians_follow_ffjord():
    """FFJORD's / WGAN-GP's ``8gaussians``: centres 4 (cos, sin) of the 8 compass directions
    (the diagonals 4 (±1/√2, ±1/√2)), point = centre + 0.5 z, then all divided by 1.414
    (literally, not √2): means at radius 4/1.414 ≈ 2.829, std 0.5/1.414 ≈ 0.354."""
    mix = bs.densities.eight_gaussians()
    s = 1.0 / np.sqrt(2.0)
    centres = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s),
                              (-s, -s)]) / 1.414
    assert mix.dim == 2 and mix.n_components == 8
    np.testing.assert_allclose(_rows_sorted(mix.means), _rows_sorted(centres), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(mix.means, axis=1), 4.0 / 1.414, rtol=1e-14)
    np.testing.assert_array_equal(mix.weights, np.full(8, 1 / 8))
    np.testing.assert_allclose(mix.covs, np.broadcast_to((0.5 / 1.414) ** 2 * np.eye(2),
                                                         (8, 2, 2)), rtol=1e-14)
    from bridgesolve.densities import catalog

    assert mix.describe() == catalog.density_from_config({"type": "eight_gaussians"}).describe()


def test_twenty_five_gaussians_follow_wgan_gp():
    """The ``/2.828`` convention of WGAN-GP's ``25gaussians`` generator (the preset's
    docstring: Hirono et al.'s): centres (2i, 2j), i, j ∈ {-2..2},
    point = centre + 0.05 z, then all divided by 2.828: a 5×5 grid of spacing 2/2.828 ≈
    0.707 from -1.414 to 1.414, std 0.05/2.828 ≈ 0.0177."""
    mix = bs.densities.twenty_five_gaussians()
    g = np.arange(-2, 3)
    centres = np.array([(2.0 * i, 2.0 * j) for i in g for j in g]) / 2.828
    assert mix.dim == 2 and mix.n_components == 25
    np.testing.assert_allclose(_rows_sorted(mix.means), _rows_sorted(centres), atol=1e-12)
    assert np.max(np.abs(mix.means)) == pytest.approx(4.0 / 2.828, rel=1e-14)
    np.testing.assert_array_equal(mix.weights, np.full(25, 1 / 25))
    np.testing.assert_allclose(mix.covs, np.broadcast_to((0.05 / 2.828) ** 2 * np.eye(2),
                                                         (25, 2, 2)), rtol=1e-14)
    # the samples are the papers' generator's: centre + std z, moments of the mixture
    x = mix.sample(20_000, rng=0)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    var = np.mean(centres[:, 0] ** 2) + (0.05 / 2.828) ** 2  # 2/2.828² + std²
    np.testing.assert_allclose(x.var(axis=0), var, rtol=0.03)
