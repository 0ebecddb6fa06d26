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


def test_over_relaxation_is_measured_afresh_after_its_first_stall():
    from bridgesolve.bridge.acceleration import OverRelaxation

    relax = OverRelaxation(True)
    errors = [1e-2 * 0.95**k for k in range(6)]
    for k, err in enumerate(errors[1:], 1):
        relax.observe(k, err, errors[k - 1])
    assert relax.active and relax.omega > 1.5
    assert not relax.stall() and not relax.active and relax.allowed
    for k, err in enumerate(errors[1:], 1):
        relax.observe(10 + k, err, errors[k - 1])
    assert relax.active, "ω returns after the first stall"
    assert relax.stall() and not relax.active and not relax.allowed
    for k, err in enumerate(errors[1:], 1):
        relax.observe(20 + k, err, errors[k - 1])
    assert not relax.active, "off for good after the second"


def _two_d(sigma: float, cells: int):
    """The 2D set-up of examples/bridge_small_noise.py (P2, 24 steps, [-3.5, 3.5]²)."""
    r0 = bs.GaussianMixture([1.0], [[-1.0, 0.0]], [0.25 * np.eye(2)])
    r1 = bs.GaussianMixture([1.0], [[1.0, 0.0]], [0.16 * np.eye(2)])
    prob = bs.Problem(bs.Domain.box([-3.5, -3.5], [3.5, 3.5], (cells, cells)),
                      bs.Brownian(sigma), bs.TimeGrid.uniform(1.0, 24), degree=2)
    return prob, r0, r1


def test_2d_sigma_007_on_32_cells_fails_as_a_named_blowup():
    """On 32² P2 cells the discrete forward HJB cannot carry the potentials of the
    σ = 0.07 bridge: the corner node (-3.5, -3.5) blows up (bridgesolve.pde.hjb, "Blow-up";
    it does so from the σ = 0.1 fixed point scaled to σ = 0.07 too, with 4x the time steps
    and with backward Euler, so no Newton variant can pass it). The failure says so and
    names the place: the corner, or since the smoothed outflow switch
    (``bridgesolve.pde.hjb.OUTFLOW_SMOOTHING``) the node next to it, (-3.281, -3.281)."""
    prob, r0, r1 = _two_d(0.07, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(bs.BridgeError, match=r"blows up .* x = \(-3\.(5|281), -3\.(5|281)\)"):
            solve_bridge(prob, r0, r1, tol=1e-8, max_iter=300, progress=False)


@pytest.mark.slow
def test_2d_sigma_007_converges_where_the_mesh_resolves_the_corners():
    """64² cells (measured: 234 iterations, 515–655 s on the loaded 2-core machine; L1 error
    of ρ_{T/2} 4.1e-3)."""
    prob, r0, r1 = _two_d(0.07, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bridge = solve_bridge(prob, r0, r1, tol=1e-8, max_iter=300, progress=False)
    assert bridge.converged
    exact = gaussian_bridge([-1.0, 0.0], 0.25 * np.eye(2), [1.0, 0.0], 0.16 * np.eye(2),
                            sigma=0.07)
    assert bridge.rho.error(exact(0.5), 0.5, norm="L1") < 1e-2
