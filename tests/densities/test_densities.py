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
