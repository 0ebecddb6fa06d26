"""Reverse-time samplers against closed forms: flow-map orders (h = 0), weak orders
(h = 1), KS tests against the data law for every h, seeding, a PDE score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bridgesolve as bs
from bridgesolve.sampling import default_prior, sample
from bridgesolve.score import grad_log, mixture_score
from bridgesolve.studies import fitted_order, order_table

MIX1 = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])
MIX2 = bs.GaussianMixture(
    [0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
    [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]],
)


def _marginal_cdf(mix, i):
    sd = np.sqrt(mix.covs[:, i, i])
    return lambda z: mix.weights @ stats.norm.cdf((np.asarray(z)[None, :] - mix.means[:, i:i + 1])
                                                  / sd[:, None])


def _ks(samples, mix):
    """Largest per-coordinate KS statistic and smallest p-value against the mixture."""
    res = [stats.kstest(samples[:, i], _marginal_cdf(mix, i)) for i in range(mix.dim)]
    return max(r.statistic for r in res), min(r.pvalue for r in res)


@pytest.mark.parametrize("method, expected", [("euler", 1.0), ("heun", 2.0)])
def test_probability_flow_order(method, expected):
    # h = 0 is an ODE: the error of the flow map (same prior points) against a fine Heun
    # solve is deterministic. Measured: Euler 1.13e-2 ... 1.33e-3 (order 1.01-1.05),
    # Heun 2.49e-3 ... 3.95e-5 (order 1.98-2.00).
    proc = bs.VP()
    s = mixture_score(MIX1, proc)
    x_T = MIX1.evolve(proc, 1.0).sample(2000, 0)
    ref = sample(proc, s, 0.0, x_T, steps=4000, method="heun", progress=False)
    steps = (25, 50, 100, 200)
    errs = [np.sqrt(np.mean((sample(proc, s, 0.0, x_T, steps=n, method=method,
                                    progress=False) - ref) ** 2)) for n in steps]
    order = fitted_order([1 / n for n in steps], errs)
    assert abs(order - expected) < 0.1, order_table([1 / n for n in steps], errs, "dt")


def test_weak_order_of_reverse_sde():
    # h = 1 on a Gaussian under OU: the error in the variance of the samples at t = 0.
    # With 4e5 particles its Monte-Carlo standard error is ~1.1e-3, far below the biases
    # on these ladders (measured Euler 2.5e-1, 1.1e-1, 5.3e-2; Heun 9.8e-2, 2.4e-2, 6.3e-3).
    gauss = bs.GaussianMixture([1.0], [[0.5]], [0.5])
    proc = bs.OU()
    s = mixture_score(gauss, proc)
    prior = gauss.evolve(proc, 1.0)
    steps = (4, 8, 16)
    errs = {}
    for method in ("euler", "heun"):
        errs[method] = [abs(np.var(sample(proc, s, 1.0, 400_000, prior=prior, steps=n,
                                          T=1.0, method=method, rng=2, progress=False))
                            - 0.5) for n in steps]
    dts = [1 / n for n in steps]
    o_euler, o_heun = fitted_order(dts, errs["euler"]), fitted_order(dts, errs["heun"])
    table = (f"euler\n{order_table(dts, errs['euler'], 'dt')}\n"
             f"heun\n{order_table(dts, errs['heun'], 'dt')}")
    assert 0.8 < o_euler < 1.3, table
    assert 1.7 < o_heun < 2.3, table
    assert errs["heun"][-1] < 0.2 * errs["euler"][-1], table


# (h, method, dim, particles, steps): with the exact score every h carries p_T to ρ0.
KS_CASES = [
    (0.0, "euler", 1, 100_000, 200),
    (1.0, "euler", 1, 100_000, 200),
    (0.5, "heun", 1, 100_000, 50),
    (0.0, "heun", 2, 50_000, 50),
    (1.0, "heun", 2, 50_000, 50),
]


@pytest.mark.parametrize("h, method, dim, n, steps", KS_CASES)
def test_samples_match_data_law(h, method, dim, n, steps):
    """KS test per coordinate at 1% (and a statistic below 0.01, about 3x the 1e5-sample
    critical value: discretization bias included). Measured 1D: p = 0.57 (h = 0),
    0.90 (h = 1)."""
    mix = MIX1 if dim == 1 else MIX2
    proc = bs.VP()
    x = sample(proc, mixture_score(mix, proc), h, n, prior=mix.evolve(proc, 1.0),
               steps=steps, method=method, rng=7, progress=False)
    assert x.shape == (n, dim)
    stat, pvalue = _ks(x, mix)
    assert stat < 0.01 and pvalue > 0.01, (stat, pvalue)
    assert np.allclose(x.mean(axis=0), mix.mean(), atol=0.02)


def test_seeding_and_inputs_untouched():
    proc = bs.VP()
    s = mixture_score(MIX1, proc)
    x_T = default_prior(proc, 1.0, 1).sample(1000, 3)
    keep = x_T.copy()
    a = sample(proc, s, 0.7, x_T, steps=20, rng=11, progress=False)
    b = sample(proc, s, 0.7, x_T, steps=20, rng=np.random.default_rng(11), progress=False)
    c = sample(proc, s, 0.7, x_T, steps=20, rng=12, progress=False)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert np.array_equal(x_T, keep)
    # the default prior of VP at T = 1: N(0, 1 - exp(-B(1)))
    assert default_prior(proc, 1.0, 2).covs[0, 0, 0] == pytest.approx(-np.expm1(-10.05))


def test_pde_score_field_as_score_callable():
    # The score of the Fokker–Planck solution (a VectorField, evaluated at the particles)
    # drives the sampler as well as the exact score does: KS statistic at 2e4 samples.
    proc = bs.OU()
    prob = bs.Problem(bs.Domain.interval(-7, 7, 140), proc, bs.TimeGrid.uniform(1.0, 50),
                      degree=2)
    p = bs.solve_fokker_planck(prob, MIX1, progress=False)
    x = sample(proc, grad_log(p), 1.0, 20_000, prior=MIX1.evolve(proc, 1.0), grid=prob.grid,
               method="heun", rng=5, progress=False)
    stat, pvalue = _ks(x, MIX1)
    assert stat < 0.015 and pvalue > 0.01, (stat, pvalue)


def test_bad_inputs():
    proc = bs.VP()
    s = mixture_score(MIX1, proc)
    with pytest.raises(bs.BridgesolveInputError, match="h = 1.5"):
        sample(proc, s, 1.5, 10, dim=1, steps=2)
    with pytest.raises(bs.BridgesolveInputError, match="method = 'rk4'"):
        sample(proc, s, 1.0, 10, dim=1, steps=2, method="rk4")
    with pytest.raises(bs.BridgesolveInputError, match="grid= or steps="):
        sample(proc, s, 1.0, 10, dim=1)
    with pytest.raises(bs.BridgesolveInputError, match="pass dim="):
        sample(proc, s, 1.0, 10, steps=2)
    with pytest.raises(bs.BridgesolveInputError, match="expected \\(N, d\\)"):
        sample(proc, s, 1.0, np.zeros((2, 2, 2)), steps=2)
    with pytest.raises(bs.BridgesolveInputError, match="t_end = 2.0"):
        sample(proc, s, 1.0, 10, dim=1, steps=2, t_end=2.0)
    with pytest.raises(bs.BridgesolveInputError, match="no Gaussian transition"):
        default_prior(bs.Custom(lambda x: -x, g=1.0), 1.0, 1)
