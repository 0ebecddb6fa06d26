"""Small noise: ε-scaling (``continuation``) starts from the bridges at larger σ and
reaches the same fixed point; Anderson acceleration reaches it too, in fewer iterations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.bridge import gaussian_bridge, solve_bridge

R0 = bs.GaussianMixture([1.0], [[-1.0]], [0.25])
R1 = bs.GaussianMixture([1.0], [[1.0]], [0.16])


def _problem(sigma, cells=160, steps=48):
    return bs.Problem(bs.Domain.interval(-6.0, 6.0, cells), bs.Brownian(sigma),
                      bs.TimeGrid.uniform(1.0, steps), degree=2)


def _solve(prob, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return solve_bridge(prob, R0, R1, tol=1e-10, progress=False, **options)


@pytest.fixture(scope="module")
def plain():
    return _solve(_problem(0.2), mode="log")


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_continuation_does_not_change_the_answer(plain):
    cont = _solve(_problem(0.2), mode="log", continuation=[0.6, 0.35])
    assert plain.converged and cont.converged
    stages = cont.info["continuation"]
    assert [s["sigma"] for s in stages] == [0.6, 0.35]
    assert cont.info["iterations_total"] == cont.iterations + sum(s["iterations"]
                                                                 for s in stages)
    diff = _rel(cont.rho.values, plain.rho.values)
    assert diff < 1e-6, f"marginals differ by {diff:.2e}"
    cost, ref = cont.cost()["boundary"], plain.cost()["boundary"]
    assert abs(cost - ref) < 1e-6 * abs(ref), (cost, ref)
    exact = gaussian_bridge([-1.0], [[0.25]], [1.0], [[0.16]], sigma=0.2)
    assert cont.rho.error(exact(0.5), 0.5, norm="L1") < 1e-3


def test_anderson_reaches_the_same_fixed_point(plain):
    fast = _solve(_problem(0.2), mode="log", acceleration="anderson")
    assert fast.converged
    assert any("Anderson" in h.get("event", "") for h in fast.history)
    diff = _rel(fast.rho.values, plain.rho.values)
    assert diff < 1e-6, f"marginals differ by {diff:.2e}"


def test_continuation_needs_decreasing_noise_levels_and_a_sigma():
    with pytest.raises(bs.BridgesolveInputError, match="decreasing"):
        _solve(_problem(0.2), continuation=[0.1])
    vp = bs.Problem(bs.Domain.interval(-6.0, 6.0, 32), bs.VP(), bs.TimeGrid.uniform(1.0, 8))
    with pytest.raises(bs.BridgesolveInputError, match="sigma"):
        _solve(vp, continuation=[0.5])
