"""Schrödinger bridge: closed-form Gaussian bridges, duality, costs, reverse diffusion,
small noise, acceleration, failure reporting, and serial vs distributed runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.bridge import BridgeError, gaussian_bridge, solve_bridge
from bridgesolve.studies import fitted_order, order_table


def _gaussians_1d(m0, v0, m1, v1):
    return (bs.GaussianMixture([1.0], [[m0]], [v0]), bs.GaussianMixture([1.0], [[m1]], [v1]))


def _problem_1d(cells, steps, sigma, *, L=8.0, degree=1, scheme="crank-nicolson", comm=None):
    dom = bs.Domain.interval(-L, L, cells, comm=comm)
    return bs.Problem(dom, bs.Brownian(sigma), bs.TimeGrid.uniform(1.0, steps), degree=degree,
                      scheme=scheme)


# -- closed forms ------------------------------------------------------------------------
def test_gaussian_bridge_closed_form_limits():
    """The closed form hits both marginals, interpolates McCann's geodesic as σ → 0 and
    approaches the Brownian bridge variance for independent endpoints as σ → ∞."""
    m = gaussian_bridge([0.0, 1.0], np.diag([0.3, 0.5]), [2.0, -1.0], [[0.6, 0.2], [0.2, 0.4]],
                        sigma=0.7, T=2.0)
    assert np.allclose(m(0.0).covs[0], np.diag([0.3, 0.5]))
    assert np.allclose(m(2.0).covs[0], [[0.6, 0.2], [0.2, 0.4]])
    assert np.allclose(m(1.0).means[0], [1.0, 0.0])
    s0, s1, tau = 0.3, 0.8, 0.4
    tiny = gaussian_bridge([0.0], [[s0**2]], [0.0], [[s1**2]], sigma=1e-4)(tau).covs[0, 0, 0]
    assert tiny == pytest.approx(((1 - tau) * s0 + tau * s1) ** 2, rel=1e-6)
    big = 1e3
    wide = gaussian_bridge([0.0], [[s0**2]], [0.0], [[s1**2]], sigma=big)(tau).covs[0, 0, 0]
    brownian = (1 - tau) ** 2 * s0**2 + tau**2 * s1**2 + tau * (1 - tau) * big**2
    assert wide == pytest.approx(brownian, rel=1e-6)


def test_linear_mode_closed_form_order_and_duality():
    """Linear mode (lumped-mass θ-scheme): exact discrete duality, marginals to tol, and
    second-order convergence of the marginals to the closed-form bridge."""
    r0, r1 = _gaussians_1d(-1.5, 0.3, 1.5, 0.6)
    exact = gaussian_bridge([-1.5], [[0.3]], [1.5], [[0.6]], sigma=1.0)
    hs, errs = [], []
    for cells in (64, 128, 256):
        prob = _problem_1d(cells, cells // 2, 1.0)
        b = solve_bridge(prob, r0, r1, tol=1e-10, mode="linear", progress=False)
        assert b.converged and b.mode == "linear"
        assert max(b.info["final_errors"].values()) < 1e-9
        assert b.info["mass_drift"] < 1e-12, "∫φφ̂ must be constant in t (discrete duality)"
        assert abs(b.history[-1]["mass_defect"]) < 1e-12
        hs.append(16.0 / cells)
        errs.append(b.rho.error(exact(0.5), 0.5))
    order = fitted_order(hs, errs)
    assert order > 1.7, f"observed order {order:.2f}\n{order_table(hs, errs)}"


def test_log_mode_closed_form_order_and_costs():
    """Log mode (HJB): transport-dominated bridge (σ = 0.5, shift 6): second order for the
    marginals and for the gap between the two cost formulas."""
    r0, r1 = _gaussians_1d(-3.0, 0.25, 3.0, 0.16)
    exact = gaussian_bridge([-3.0], [[0.25]], [3.0], [[0.16]], sigma=0.5)
    hs, errs, gaps = [], [], []
    for cells in (64, 128, 256):
        prob = _problem_1d(cells, cells // 2, 0.5)
        b = solve_bridge(prob, r0, r1, tol=1e-8, mode="log", progress=False)
        assert b.converged and b.mode == "log"
        assert max(b.info["final_errors"].values()) < 1e-8
        hs.append(16.0 / cells)
        errs.append(max(b.rho.error(exact(t), t, norm="L1") for t in (0.25, 0.5, 0.75)))
        cost = b.cost()
        gaps.append(abs(cost["kinetic"] - cost["boundary"]))
    assert fitted_order(hs, errs) > 1.8, order_table(hs, errs)
    assert fitted_order(hs, gaps) > 1.7, order_table(hs, gaps)
    # Both formulas approach the closed-form KL of the Gaussian bridge (72.28).
    kl = bs.gaussian_bridge_cost([-3.0], [[0.25]], [3.0], [[0.16]], sigma=0.5)
    assert cost["boundary"] == pytest.approx(kl, rel=5e-4), (cost, kl)
    assert cost["kinetic"] == pytest.approx(kl, rel=3e-3), (cost, kl)
    assert errs[-1] < 2e-3


def test_log_mode_p2_is_accurate_for_gaussian_potentials():
    """Gaussian potentials are quadratic in log form: P2 represents them exactly in space."""
    r0, r1 = _gaussians_1d(-3.0, 0.25, 3.0, 0.16)
    exact = gaussian_bridge([-3.0], [[0.25]], [3.0], [[0.16]], sigma=0.5)
    b = solve_bridge(_problem_1d(128, 64, 0.5, degree=2), r0, r1, mode="log", progress=False)
    err = b.rho.error(exact(0.5), 0.5, norm="L1")
    cost = b.cost()
    assert err < 5e-4, err
    assert cost["relative_gap"] < 1e-4, cost
    kl = bs.gaussian_bridge_cost([-3.0], [[0.25]], [3.0], [[0.16]], sigma=0.5)  # 72.2832
    assert cost["boundary"] == pytest.approx(kl, rel=2e-4), (cost, kl)  # measured 8.5e-5


def test_2d_closed_form_full_covariances():
    """2D, non-commuting covariances, log mode P1: marginals and score at mid time against
    the closed form (Bunne et al. 2023)."""
    m0, c0 = [-1.0, -0.5], [[0.30, 0.10], [0.10, 0.20]]
    m1, c1 = [1.0, 0.5], [[0.20, -0.08], [-0.08, 0.35]]
    r0 = bs.GaussianMixture([1.0], [m0], [c0])
    r1 = bs.GaussianMixture([1.0], [m1], [c1])
    sigma = 0.8
    exact = gaussian_bridge(m0, c0, m1, c1, sigma=sigma)
    errs, score_errs = [], []
    for cells in (16, 32):
        dom = bs.Domain.box([-4.0, -4.0], [4.0, 4.0], [cells, cells])
        prob = bs.Problem(dom, bs.Brownian(sigma), bs.TimeGrid.uniform(1.0, cells // 2))
        b = solve_bridge(prob, r0, r1, tol=1e-8, mode="auto", progress=False)
        assert b.converged
        errs.append(b.rho.error(exact(0.5), 0.5, norm="L1"))
        mid = exact(0.5)
        score_errs.append(b.score().weighted_error(mid.score, 0.5, weight=mid.pdf))
    assert errs[1] < 0.35 * errs[0], errs  # second order: ratio 1/4
    assert errs[1] < 3.5e-2, errs  # measured 2.8e-2 (32x32 P1, 16 steps)
    # The ρ-weighted L2 error of the P1 score (piecewise constant gradients): first order.
    assert score_errs[1] < 0.6 * score_errs[0] and score_errs[1] < 0.4, score_errs


# -- the Schrödinger system's identities ---------------------------------------------------
def test_reverse_diffusion_gives_constant_phi_and_the_fokker_planck_score():
    """ρ1 = the diffused ρ0 (DESIGN.md §2.5): φ is constant to discretization error and the
    bridge score is the Fokker–Planck score."""
    from bridgesolve.score import grad_log

    mix = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])
    proc = bs.OU(theta=1.0, sigma=2.0**0.5)
    spreads = []
    for cells in (64, 128):
        prob = bs.Problem(bs.Domain.interval(-7, 7, cells), proc,
                          bs.TimeGrid.uniform(1.0, cells // 2), scheme="backward-euler")
        p = bs.solve_fokker_planck(prob, mix, progress=False, check_mass=False)
        b = solve_bridge(prob, mix, p.at(1.0), tol=1e-10, mode="linear", progress=False)
        # Spread of log φ where the bridge has mass, at t = 0.
        live = b.rho.values[0] > 1e-3
        spreads.append(float(np.ptp(b.log_phi.values[0][live])))
    assert spreads[-1] < 0.02 and spreads[-1] < 0.5 * spreads[0], spreads
    x = np.linspace(-3, 3, 13)[:, None]
    fp_score = grad_log(p).evaluate(x, 0.5)
    assert np.allclose(b.score().evaluate(x, 0.5), fp_score, atol=0.03)
    assert np.allclose(b.control().evaluate(x, 0.5), 0.0, atol=0.05)


def test_constant_killing_leaves_the_marginals_unchanged():
    """A constant rate V multiplies φ by e^{V(T-t)} and φ̂ by e^{Vt}: the same marginals.
    Discretely the killing matrix is lumped like the mass, so only Crank–Nicolson's
    rational factor differs from e^{VΔt}: the difference is O(Δt²)."""
    r0, r1 = _gaussians_1d(-1.0, 0.3, 1.0, 0.4)
    diffs = []
    for steps in (24, 48):
        prob = _problem_1d(96, steps, 1.0)
        plain = solve_bridge(prob, r0, r1, tol=1e-10, mode="linear", progress=False)
        killed = solve_bridge(prob, r0, r1, tol=1e-10, mode="linear", killing=-0.7,
                              progress=False)
        assert killed.converged
        diffs.append(np.max(np.abs(killed.rho.values - plain.rho.values)))
    assert diffs[1] < 1e-4 and diffs[1] < 0.3 * diffs[0], diffs
    with pytest.raises(bs.BridgesolveInputError, match="killing"):
        killed.cost()


def test_small_noise_converges_in_log_mode_where_linear_fails():
    """σ = 0.1 between well-separated Gaussians: the linear Crank–Nicolson iteration breaks
    down (reported, not silent); auto switches to log and converges to tol."""
    r0, r1 = _gaussians_1d(-1.0, 0.25, 1.0, 0.16)
    prob = _problem_1d(320, 128, 0.1, L=8.0, degree=2)
    with pytest.raises(BridgeError, match="linear mode") as info:
        solve_bridge(prob, r0, r1, mode="linear", progress=False)
    assert info.value.history is not None
    b = solve_bridge(prob, r0, r1, tol=1e-8, mode="auto", progress=False)
    assert b.converged and b.mode == "log"
    assert any("switched to log" in h.get("event", "") for h in b.history)
    exact = gaussian_bridge([-1.0], [[0.25]], [1.0], [[0.16]], sigma=0.1)
    assert b.rho.error(exact(0.5), 0.5, norm="L1") < 1e-4  # measured 1.1e-5 (P2, 320 cells)


def test_over_relaxation_saves_iterations():
    r0, r1 = _gaussians_1d(-1.0, 0.25, 1.0, 0.16)
    prob = _problem_1d(128, 32, 0.3, L=5.0, degree=2)
    plain = solve_bridge(prob, r0, r1, tol=1e-8, mode="log", acceleration=False,
                         progress=False)
    fast = solve_bridge(prob, r0, r1, tol=1e-8, mode="log", acceleration=True, progress=False)
    assert plain.converged and fast.converged
    assert fast.iterations < 0.7 * plain.iterations, (fast.iterations, plain.iterations)
    assert np.max(np.abs(fast.rho.values - plain.rho.values)) < 1e-6
    assert any("over-relaxation" in h.get("event", "") for h in fast.history)


def test_marginals_with_zeros_give_finite_potentials_and_fields():
    """Uniform marginals on intervals (zero elsewhere): the linear mode handles them, the
    log-potentials are floored (finite), and the score and cost are finite."""
    prob = _problem_1d(96, 24, 1.0, L=6.0)
    r0 = lambda x: np.where(np.abs(x[:, 0] + 1.0) < 1.0, 0.5, 0.0)  # noqa: E731
    r1 = lambda x: np.where(np.abs(x[:, 0] - 1.5) < 0.5, 1.0, 0.0)  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = solve_bridge(prob, r0, r1, mode="linear", progress=False)
    # No floating-point warnings from -inf arithmetic; the jumps of the marginals do make
    # the potentials steep, which the linear mode says.
    assert not [w for w in caught if "encountered" in str(w.message)], caught
    assert any("linear representation is inaccurate" in str(w.message) for w in caught)
    assert b.converged
    assert np.isfinite(b.log_phi.values).all() and np.isfinite(b.log_phi_hat.values).all()
    assert np.isfinite(b.score().evaluate(np.linspace(-3, 3, 7)[:, None], 0.5)).all()
    assert np.isfinite(b.cost()["boundary"])
    assert b.rho.integral() == pytest.approx(1.0, abs=1e-10)


# -- failures are reported -----------------------------------------------------------------
def test_bad_input_is_named():
    r0, r1 = _gaussians_1d(-1.0, 0.3, 1.0, 0.4)
    prob = _problem_1d(32, 8, 1.0)
    with pytest.raises(bs.BridgesolveInputError, match="mode"):
        solve_bridge(prob, r0, r1, mode="fast")
    with pytest.raises(bs.BridgesolveInputError, match="tol"):
        solve_bridge(prob, r0, r1, tol=-1.0)
    with pytest.raises(bs.BridgesolveInputError, match="rho1 has non-finite"):
        solve_bridge(prob, r0, lambda x: np.full(len(x), np.nan))
    with pytest.raises(bs.BridgesolveInputError, match="rho0 vanishes"):
        solve_bridge(prob, lambda x: np.zeros(len(x)), r1)
    absorbing = bs.Problem(prob.domain, prob.process, prob.grid, boundary="absorbing")
    with pytest.raises(bs.BridgesolveInputError, match="reflecting"):
        solve_bridge(absorbing, r0, r1)
    with pytest.raises(bs.BridgesolveInputError, match="2D"):
        solve_bridge(prob, bs.GaussianMixture([1.0], [[0.0, 0.0]], [1.0]), r1)


def test_iteration_limit_warns_and_says_so():
    r0, r1 = _gaussians_1d(-1.0, 0.3, 1.0, 0.4)
    with pytest.warns(RuntimeWarning, match="not converged after 2 iterations"):
        b = solve_bridge(_problem_1d(32, 8, 1.0), r0, r1, max_iter=2, mode="linear",
                         progress=False)
    assert not b.converged and b.iterations == 2
    assert np.all(np.isfinite(b.rho.values))


# -- serial and distributed runs agree -----------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["linear", "log"])
def test_serial_and_distributed_agree(mode):
    from bridgesolve._dolfinx import MPI

    r0 = bs.GaussianMixture([1.0], [[-1.0, 0.0]], [[[0.3, 0.1], [0.1, 0.25]]])
    r1 = bs.GaussianMixture([0.5, 0.5], [[1.0, 1.0], [1.0, -1.0]], [0.2, 0.2])
    results = []
    for comm in (MPI.COMM_SELF, MPI.COMM_WORLD):
        dom = bs.Domain.box([-4.0, -4.0], [4.0, 4.0], [20, 20], comm=comm)
        prob = bs.Problem(dom, bs.Brownian(1.0), bs.TimeGrid.uniform(1.0, 8))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            b = solve_bridge(prob, r0, r1, tol=1e-9, mode=mode, progress=False)
        cost = b.cost()
        results.append((b.iterations, b.rho.error(r1, 1.0, norm="L1"),
                        b.rho.integral()[4], cost["kinetic"], cost["boundary"]))
    (it_s, *serial), (it_d, *distributed) = results
    assert it_s == it_d
    assert np.allclose(serial, distributed, rtol=1e-7, atol=1e-10), (serial, distributed)


@pytest.mark.slow
@pytest.mark.parametrize("degree, expected", [(1, 1.8), (2, 2.5)])
def test_2d_convergence_table(degree, expected):
    """2D closed-form bridge, log mode: observed orders of the mid-time marginal (L1) and
    of the gap between the two cost formulas under joint refinement of h and Δt."""
    m0, c0 = [-1.0, -0.5], [[0.30, 0.10], [0.10, 0.20]]
    m1, c1 = [1.0, 0.5], [[0.20, -0.08], [-0.08, 0.35]]
    sigma = 0.8
    exact = gaussian_bridge(m0, c0, m1, c1, sigma=sigma)
    hs, errs, gaps = [], [], []
    for cells in ((12, 24, 48) if degree == 1 else (8, 16, 32)):
        dom = bs.Domain.box([-4.0, -4.0], [4.0, 4.0], [cells, cells])
        steps = cells if degree == 1 else 2 * cells
        prob = bs.Problem(dom, bs.Brownian(sigma), bs.TimeGrid.uniform(1.0, steps),
                          degree=degree)
        b = solve_bridge(prob, bs.GaussianMixture([1.0], [m0], [c0]),
                         bs.GaussianMixture([1.0], [m1], [c1]), mode="log", progress=False)
        assert b.converged
        hs.append(8.0 / cells)
        errs.append(b.rho.error(exact(0.5), 0.5, norm="L1"))
        cost = b.cost()
        gaps.append(abs(cost["kinetic"] - cost["boundary"]))
    print(f"\nP{degree} marginal L1 at t = 0.5\n{order_table(hs, errs)}")
    print(f"P{degree} |kinetic - boundary| cost\n{order_table(hs, gaps)}")
    assert fitted_order(hs, errs) > expected, order_table(hs, errs)
    assert gaps[-1] < gaps[0], order_table(hs, gaps)


@pytest.mark.slow
def test_2d_small_noise_converges():
    """σ = 0.1 in 2D (P2, 32², 24 steps). The over-relaxed iteration stalls near 5e-5 (the
    discrete map has eigenvalues near -1 that ω > 1 amplifies); ω is reset to 1 and
    re-measured at the first stall, switched off for good at the second (measured: 104
    iterations in all with the default ``mode="auto"``)."""
    m0, m1 = [-1.0, 0.0], [1.0, 0.0]
    c0, c1 = 0.25 * np.eye(2), 0.16 * np.eye(2)
    dom = bs.Domain.box([-3.5, -3.5], [3.5, 3.5], [32, 32])
    prob = bs.Problem(dom, bs.Brownian(0.1), bs.TimeGrid.uniform(1.0, 24), degree=2)
    b = solve_bridge(prob, bs.GaussianMixture([1.0], [m0], [c0]),
                     bs.GaussianMixture([1.0], [m1], [c1]), mode="auto", max_iter=300,
                     progress=False)
    assert b.converged and b.mode == "log"
    exact = gaussian_bridge(m0, c0, m1, c1, sigma=0.1)
    assert b.rho.error(exact(0.5), 0.5, norm="L1") < 3e-2  # measured 2.2e-2 (coarse: 32² P2)
