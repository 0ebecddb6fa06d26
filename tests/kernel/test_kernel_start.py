"""The kernel bridge's Gaussian start (the bridge between moment-matched Gaussians) and
the wall check's two contractions."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.kernel import Transition, kernel_bridge
from bridgesolve.kernel.grid import TensorGrid
from bridgesolve.kernel.sinkhorn import _log_contraction, _log_contraction_scaled, log_inside_kernel
from bridgesolve.kernel.start import gaussian_coupling, grid_moments

M0, M1 = np.array([-2.0, 0.3]), np.array([2.0, 0.5])
S0, S1 = np.diag([0.4, 0.3]), np.array([[0.3, 0.1], [0.1, 0.35]])
R0, R1 = bs.GaussianMixture([1.0], [M0], [S0]), bs.GaussianMixture([1.0], [M1], [S1])
BOX = ([-8.0, -8.0], [8.0, 8.0])


@pytest.mark.parametrize("a, v", [(1.0, 1.0), (0.6, 0.64), (0.2, 2.5)])
def test_the_coupling_has_the_kernels_cross_precision_and_the_marginals(a, v):
    """``π = φ̂_0(x) k(x, y) φ_T(y)`` holds iff ``Λ_xy = -(a/v) I``: the cross term of
    ``log k`` is ``a x·y / v``; the blocks on the diagonal are the data's covariances."""
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    A, B = X @ X.T + 0.2 * np.eye(3), Y @ Y.T + 0.3 * np.eye(3)
    mean, cov = gaussian_coupling(np.ones(3), A, -np.ones(3), B, Transition(a, v, 0.4))
    prec = np.linalg.inv(cov)
    assert np.abs(prec[:3, 3:] + a / v * np.eye(3)).max() < 1e-12
    assert np.allclose(cov[:3, :3], A) and np.allclose(cov[3:, 3:], B)
    assert np.allclose(mean, [1, 1, 1, -1, -1, -1])


def test_grid_moments_of_a_gaussian():
    grid = TensorGrid.box(*BOX, 81)
    lr = R1.log_pdf(grid.points()).reshape(grid.shape)
    mean, cov = grid_moments(lr, grid)
    assert np.abs(mean - M1).max() < 1e-12 and np.abs(cov - S1).max() < 1e-12


@pytest.mark.parametrize("process", [bs.Brownian(1.0), bs.VP(), bs.OU(1.0, 0.8)],
                         ids=["Brownian", "VP", "OU"])
def test_gaussian_data_converge_in_two_iterations_to_the_same_bridge(process):
    ones = kernel_bridge(process, R0, R1, *BOX, 1.0, tol=1e-11, start="ones")
    gauss = kernel_bridge(process, R0, R1, *BOX, 1.0, tol=1e-11)
    assert gauss.info["start"] == "gaussian" and ones.info["start"] == "ones"
    assert gauss.converged and gauss.iterations <= 3 < ones.iterations
    pts = bs.gaussian_bridge(M0, S0, M1, S1, 1.0, 1.0)(0.5).sample(
        300, np.random.default_rng(3))
    assert np.abs(gauss.log_rho(pts, 0.5) - ones.log_rho(pts, 0.5)).max() < 1e-9
    assert gauss.cost == pytest.approx(ones.cost, rel=1e-9)


def test_mixture_data_reach_the_same_fixed_point_from_either_start():
    """Bimodal data: the Gaussian start is only an approximation, and the fixed point
    must not depend on it."""
    r0 = bs.GaussianMixture([0.5, 0.5], [[-2.5, -1.0], [-2.5, 1.5]], [0.2, 0.3])
    r1 = bs.GaussianMixture([0.3, 0.7], [[2.0, -1.5], [1.5, 1.0]], [0.25, 0.2])
    ones = kernel_bridge(bs.Brownian(1.0), r0, r1, *BOX, 1.0, tol=1e-11, start="ones")
    gauss = kernel_bridge(bs.Brownian(1.0), r0, r1, *BOX, 1.0, tol=1e-11)
    assert gauss.converged and gauss.iterations <= ones.iterations
    pts = np.random.default_rng(5).uniform(-4, 4, size=(400, 2))
    assert np.abs(np.exp(gauss.log_rho(pts, 0.5)) - np.exp(ones.log_rho(pts, 0.5))).max() < 1e-9


def test_a_bad_start_is_named():
    with pytest.raises(BridgesolveInputError, match="start = 'zero'"):
        kernel_bridge(bs.Brownian(1.0), R0, R1, *BOX, 1.0, start="zero")


def test_the_wall_checks_two_contractions_agree_and_the_products_refuse_a_wide_range():
    grid = TensorGrid.box(*BOX, 41)
    rng = np.random.default_rng(6)
    A, B = rng.normal(size=grid.shape) * 20, rng.normal(size=grid.shape) * 20
    early = Transition.of(bs.Brownian(1.0), 0.4)
    late = Transition.of(bs.Brownian(1.0), 1.0, 0.4)
    mats = log_inside_kernel(grid, early, late, [-3.0, -3.0], [3.0, 3.0])
    scaled = _log_contraction_scaled(A, B, mats)
    assert scaled == pytest.approx(_log_contraction(A, B, mats), abs=1e-12)
    narrow = log_inside_kernel(grid, Transition.of(bs.Brownian(0.1), 0.4),
                               Transition.of(bs.Brownian(0.1), 1.0, 0.4), *BOX)
    assert _log_contraction_scaled(A, B, narrow) is None
