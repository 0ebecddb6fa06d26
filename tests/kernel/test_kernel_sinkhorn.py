"""The kernel bridge's Sinkhorn domains (scaling, log, the fallback between them) and its
wall check (the bridge's mass outside the box at any time) against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

import bridgesolve as bs
from bridgesolve.kernel import kernel_bridge
from bridgesolve.kernel.sinkhorn import ScaledKernel, sinkhorn

M0, M1 = np.array([-2.5, 0.0]), np.array([2.5, 0.5])
S0, S1 = np.diag([0.5, 0.8]), np.array([[0.6, 0.2], [0.2, 0.4]])
R0 = bs.GaussianMixture([1.0], [M0], [S0])
R1 = bs.GaussianMixture([1.0], [M1], [S1])
BOX = ([-10.0, -10.0], [10.0, 10.0])


def _same_bridge(a, b, tol):
    assert a.iterations == b.iterations
    pts = R0.sample(300, np.random.default_rng(1)) * 0.5 + R1.sample(
        300, np.random.default_rng(2)) * 0.5
    assert np.abs(a.log_rho(pts, 0.5) - b.log_rho(pts, 0.5)).max() < tol
    assert a.cost == pytest.approx(b.cost, rel=tol)


@pytest.mark.parametrize("process", [bs.Brownian(1.0), bs.VP()], ids=["Brownian", "VP"])
def test_scaling_and_log_domains_reach_the_same_bridge(process):
    scaled = kernel_bridge(process, R0, R1, *BOX, 1.0, tol=1e-11)
    logged = kernel_bridge(process, R0, R1, *BOX, 1.0, tol=1e-11, domain="log")
    assert scaled.info["domain"] == "scaling" and logged.info["domain"] == "log"
    assert scaled.converged and logged.converged
    _same_bridge(scaled, logged, 1e-10)


def test_a_narrow_kernel_runs_in_the_log_domain_and_a_forced_scaling_run_falls_back():
    """σ = 0.3 on a box of side 20: the kernel spans e^{-4400} per axis, beyond float64
    (the first ε-stage, 16 times wider, does not)."""
    process = bs.Brownian(0.3)
    auto = kernel_bridge(process, R0, R1, *BOX, 1.0, tol=1e-6, scaling=16.0)
    assert auto.info["domain"][0] == "scaling" and auto.info["domain"][-1] == "log"
    forced = kernel_bridge(process, R0, R1, *BOX, 1.0, tol=1e-6, scaling=16.0,
                           domain="scaling")
    assert forced.info["domain"][-1] == "scaling, then log"
    assert forced.converged and auto.converged
    pts = bs.gaussian_bridge(M0, S0, M1, S1, 0.3, 1.0)(0.5).sample(
        200, np.random.default_rng(3))
    assert np.abs(auto.log_rho(pts, 0.5) - forced.log_rho(pts, 0.5)).max() < 1e-4
    truth = bs.gaussian_bridge_cost(M0, S0, M1, S1, 0.3, 1.0)
    assert forced.cost == pytest.approx(truth, rel=1e-4)


def test_an_underflow_in_the_scaling_domain_is_detected():
    """Data far apart under a kernel too narrow to reach: K v underflows where ρ0 lives."""
    grid = bs.kernel.TensorGrid.box([-10.0], [10.0], 201)
    x = grid.axes[0]
    lr0 = -0.5 * (x + 8) ** 2 / 0.1
    lr1 = -0.5 * (x - 8) ** 2 / 0.1
    lr0 -= np.log(np.sum(np.exp(lr0 + grid.log_weights())))
    lr1 -= np.log(np.sum(np.exp(lr1 + grid.log_weights())))
    kernel = bs.kernel.Transition(1.0, 0.2)
    assert not ScaledKernel(grid, kernel).safe
    history: list = []
    f, g, converged, used = sinkhorn(lr0, lr1, grid, kernel, np.zeros(grid.shape), 1e-9, 500,
                                     history, 1.0, domain="scaling")
    assert used == "scaling, then log" and np.isfinite(f).all() and np.isfinite(g).all()
    with pytest.raises(bs.BridgesolveInputError, match="domain = 'exp'"):
        sinkhorn(lr0, lr1, grid, kernel, g, 1e-9, 5, [], 1.0, domain="exp")


def _outside(mean, cov, lower, upper):
    """Mass of N(mean, diag cov) outside the box."""
    sd = np.sqrt(np.diag(cov))
    inside = np.prod(ndtr((np.asarray(upper) - mean) / sd) - ndtr((np.asarray(lower) - mean)
                                                                  / sd))
    return 1.0 - inside


@pytest.mark.parametrize("t", [0.25, 0.5, 0.8])
def test_mass_outside_the_box_is_the_free_space_bridge_leaving_it(t):
    """Narrow data well inside [-4, 4]² (1e-20 outside), σ = 3: the free-space bridge is
    the closed form, N(m_t, s_t I), and a few per cent of it is outside the box."""
    r0 = bs.GaussianMixture([1.0], [[-1.0, 0.0]], [np.eye(2) * 0.1])
    r1 = bs.GaussianMixture([1.0], [[1.0, 0.5]], [np.eye(2) * 0.1])
    lo, hi = [-4.0, -4.0], [4.0, 4.0]
    with pytest.warns(RuntimeWarning, match="outside the box"):
        b = kernel_bridge(bs.Brownian(3.0), r0, r1, lo, hi, 1.0, tol=1e-12)
    law = bs.gaussian_bridge(r0.means[0], r0.covs[0], r1.means[0], r1.covs[0], 3.0, 1.0)(t)
    exact = _outside(law.means[0], law.covs[0], lo, hi)
    assert 1e-3 < exact < 0.2
    assert b.mass_outside(t) == pytest.approx(exact, rel=1e-8)
    assert b.mass_outside(0.0) == 0.0 == b.mass_outside(1.0)
