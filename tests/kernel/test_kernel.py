"""The kernel path against closed forms: Gaussian mixtures through every linear process,
Kolmogorov expectations of Gaussians, the Gaussian Schrödinger bridge (marginals, scores,
drifts, cost), ε-scaling, short times, walls, bad input. NumPy only (no mesh)."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.kernel import TensorGrid, kernel_bridge, kernel_fokker_planck
from bridgesolve.kernel.convolution import Transition, log_matmul
from bridgesolve.kernel.diffusion import KernelExpectation
from bridgesolve.kernel.grid import lattice

MIX = bs.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]],
                         [np.eye(2) * 0.25, np.diag([0.5, 0.2])])
PROCESSES = [bs.VP(), bs.SubVP(), bs.Cosine(), bs.OU(), bs.Brownian(1.0), bs.VE()]
# Gaussians the box [-10, 10]^2 holds to round-off: the bridge is then R^2's.
M0, M1 = np.array([-2.5, 0.0]), np.array([2.5, 0.5])
S0, S1 = np.diag([0.5, 0.8]), np.array([[0.6, 0.2], [0.2, 0.4]])
R0 = bs.GaussianMixture([1.0], [M0], [S0])
R1 = bs.GaussianMixture([1.0], [M1], [S1])
BOX = ([-10.0, -10.0], [10.0, 10.0])


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_forward_law_is_the_exact_mixture_at_every_time(process):
    """log p_t and ∇log p_t at the mixture's own samples, from t = 0.001 (Gauss–Hermite:
    the kernel is narrower than the data) to t = 1 (source grids)."""
    law = kernel_fokker_planck(process, MIX, [-8, -8], [8, 8])
    for t in (0.0, 0.001, 0.05, 0.3, 1.0):
        exact = MIX.evolve(process, t) if t > 0 else MIX
        pts = exact.sample(400, np.random.default_rng(3))
        assert np.abs(law.log_pdf(pts, t) - exact.log_pdf(pts)).max() < 1e-9, t
        tol = 1e-5 if t == 0 else 1e-8  # central differences of the data at t = 0
        assert np.abs(law.score(pts, t) - exact.score(pts)).max() < tol, t
    assert law.aliasing_error < 1e-12


def test_the_evolved_law_is_a_density_object_and_its_tensor_output_agrees():
    law = kernel_fokker_planck(bs.VP(), MIX, [-8, -8], [8, 8])
    marginal = law.evolve(bs.VP(), 0.4)
    axes = (np.linspace(-3, 3, 7), np.linspace(-2, 2, 5))
    pts = TensorGrid(axes).points()
    assert np.allclose(law.on_grid(axes, 0.4).ravel(), marginal.log_pdf(pts), atol=1e-12)
    assert np.allclose(marginal.pdf(pts), MIX.evolve(bs.VP(), 0.4).pdf(pts), atol=1e-12)
    with pytest.raises(bs.BridgesolveInputError, match="evolves under"):
        law.evolve(bs.OU(), 0.4)


def test_mass_outside_the_box_is_the_free_space_law_leaving_it():
    """Brownian σ = 1 from N(0, 0.09) on [-3, 3] (the box holds the data to 1e-23): the
    exact share outside at t = 1 is 2 Φ(-3/√1.09)."""
    from scipy.stats import norm

    g = bs.GaussianMixture([1.0], [[0.0]], [[[0.09]]])
    law = kernel_fokker_planck(bs.Brownian(1.0), g, [-3.0], [3.0])
    assert law.mass_outside(1.0) == pytest.approx(2 * norm.cdf(-3 / np.sqrt(1.09)),
                                                  rel=1e-10)
    assert law.mass_outside(0.0) == 0.0


def test_kolmogorov_expectation_of_signed_gaussians():
    """u(t, z) = E[φ_T(X_T) | X_t = z] for φ_T = N(m, S) - 0.5 N(m', S): each term is
    N(a z + b; m, S + v I) under a linear process."""
    A = bs.GaussianMixture([1.0], [[0.5, 0.0]], [np.eye(2) * 0.3])
    B = bs.GaussianMixture([1.0], [[-1.0, 1.0]], [np.eye(2) * 0.3])
    process, T = bs.OU(), 1.0
    u = KernelExpectation(process, lambda x: A.pdf(x) - 0.5 * B.pdf(x), [-8, -8], [8, 8], T,
                          h=0.2)
    z = np.random.default_rng(0).normal(size=(300, 2))
    for t in (0.0, 0.5, 0.95, 1.0):
        a, v = process.transition(T, t)
        mean = a * z + (1 - a) * process.center

        def term(g, mean=mean, v=v):
            return bs.GaussianMixture([1.0], g.means, g.covs + v * np.eye(2)).pdf(mean)
        exact = term(A) - 0.5 * term(B)
        assert np.abs(u(z, t) - exact).max() < 1e-11, t


def test_gaussian_bridge_marginals_scores_drifts_and_cost():
    b = kernel_bridge(bs.Brownian(1.0), R0, R1, *BOX, 1.0, tol=1e-12)
    assert b.converged and b.iterations < 60
    exact = bs.gaussian_bridge(M0, S0, M1, S1, 1.0, 1.0)
    fine = TensorGrid.covering(*BOX, 0.1)
    for t in (0.0, 0.1, 0.5, 0.9, 1.0):
        law = exact(t)
        l1 = fine.integrate(np.abs(np.exp(b.on_grid(fine.axes, t)) - law.pdf(fine.points())
                                   .reshape(fine.shape)))
        assert l1 < 1e-10, (t, l1)
        pts = law.sample(300, np.random.default_rng(1))
        assert np.abs(b.score(pts, t) - law.score(pts)).max() < 1e-8, t
    assert b.cost == pytest.approx(bs.gaussian_bridge_cost(M0, S0, M1, S1, 1.0, 1.0),
                                   rel=1e-9)
    # drifts: forward f + g²∇log φ and backward f - g²∇log φ̂ differ by g² ∇log ρ_t
    pts = exact(0.5).sample(50, np.random.default_rng(2))
    diff = b.forward_drift(pts, 0.5) - b.backward_drift(pts, 0.5)
    assert np.allclose(diff, b.score(pts, 0.5), atol=1e-9)
    assert max(map(abs, b.info["mass_outside"].values())) < 1e-10


def test_epsilon_scaling_reaches_the_same_bridge_at_small_noise():
    """σ = 0.5 (ε = 0.25): the scaled run stops at the same plan as the plain one."""
    plain = kernel_bridge(bs.Brownian(0.5), R0, R1, *BOX, 1.0, tol=1e-10)
    scaled = kernel_bridge(bs.Brownian(0.5), R0, R1, *BOX, 1.0, tol=1e-10, scaling=16.0)
    assert scaled.converged and {h["stage"] for h in scaled.history} == {16.0, 4.0, 1.0}
    pts = bs.gaussian_bridge(M0, S0, M1, S1, 0.5, 1.0)(0.5).sample(200,
                                                                    np.random.default_rng(0))
    assert np.abs(plain.log_rho(pts, 0.5) - scaled.log_rho(pts, 0.5)).max() < 1e-7
    assert scaled.cost == pytest.approx(bs.gaussian_bridge_cost(M0, S0, M1, S1, 0.5, 1.0),
                                        rel=1e-8)


def test_bridge_under_vp_keeps_its_marginals():
    """A VP reference (a ≠ 1): the marginals at both ends are the data's."""
    b = kernel_bridge(bs.VP(), R0, R1, *BOX, 1.0, tol=1e-11)
    for t, r in ((0.0, R0), (1.0, R1)):
        pts = r.sample(300, np.random.default_rng(4))
        assert np.abs(b.log_rho(pts, t) - r.log_pdf(pts)).max() < 1e-8


def test_a_box_too_small_for_the_bridge_warns():
    with pytest.warns(RuntimeWarning, match="outside the box"):
        b = kernel_bridge(bs.Brownian(3.0), R0, R1, [-4, -4], [4, 4], 1.0, tol=1e-8)
    assert max(b.info["mass_outside"].values()) > 1e-3


def test_log_matmul_is_exact_where_the_shifted_product_underflows():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 7)) * 400
    B = rng.normal(size=(7, 3)) * 400
    from scipy.special import logsumexp

    exact = logsumexp(A[:, :, None] + B[None, :, :], axis=1)
    assert np.allclose(log_matmul(A, B), exact, rtol=1e-12, atol=1e-9)
    A[1] = -np.inf
    assert np.all(log_matmul(A, B)[1] == -np.inf)


def test_lattice_of_structured_points_and_not_of_scattered_ones():
    g = TensorGrid.box([0, 0], [1, 2], [4, 5])
    pts = g.points()[::-1]
    axes, idx = lattice(pts)
    assert [a.size for a in axes] == [4, 5]
    assert np.allclose(TensorGrid(axes).points()[idx], pts)
    assert lattice(np.random.default_rng(0).random((200, 2))) is None


def test_bad_inputs_are_named():
    with pytest.raises(bs.BridgesolveInputError, match="linear process"):
        Transition.of(bs.Custom(lambda x: -x ** 3, 1.0), 1.0)
    with pytest.raises(bs.BridgesolveInputError, match="expected a finite, non-negative"):
        kernel_fokker_planck(bs.VP(), lambda x: np.full(len(x), np.nan), [-1, -1],
                             [1, 1]).log_pdf(np.zeros((1, 2)), 0.3)
    with pytest.raises(bs.BridgesolveInputError, match="returned shape"):
        kernel_fokker_planck(bs.VP(), lambda x: np.ones((len(x), 2)), [-1, -1],
                             [1, 1]).log_pdf(np.zeros((3, 2)), 0.3)
    with pytest.raises(bs.BridgesolveInputError, match="lower < upper"):
        kernel_fokker_planck(bs.VP(), MIX, [1, 1], [-1, -1])
    with pytest.raises(bs.BridgesolveInputError, match="no mass on the grid"):
        kernel_bridge(bs.Brownian(1.0), lambda x: np.zeros(len(x)), R1, *BOX)
    with pytest.raises(bs.BridgesolveInputError, match="scaling"):
        kernel_bridge(bs.Brownian(1.0), R0, R1, *BOX, scaling=0.5)
    with pytest.raises(bs.BridgesolveInputError, match="expected 0 <= t <= T"):
        kernel_bridge(bs.Brownian(1.0), R0, R1, *BOX, tol=1e-6).rho(np.zeros((1, 2)), 2.0)
    with pytest.raises(bs.BridgesolveInputError, match="expected \\(N, 2\\)"):
        kernel_fokker_planck(bs.VP(), MIX, [-5, -5], [5, 5]).pdf(np.zeros((4, 3)), 0.5)
