"""Richardson extrapolation of Crank–Nicolson: observed order 4 in time against closed forms
(Fokker–Planck of an OU mixture; Kolmogorov expectation of a Gaussian and its logarithm, the
HJB solution; the Gaussian Schrödinger bridge in both modes), on meshes whose space error
lies below the time error; serial and MPI-2."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("bridgesolve._dolfinx")

import bridgesolve as bs  # noqa: E402
from bridgesolve.pde.richardson import halved  # noqa: E402

MIX = bs.GaussianMixture([0.4, 0.6], [[-1.0], [1.2]], [[[0.2]], [[0.3]]])


def _orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


def _problem(steps, process=None):
    return bs.Problem(bs.Domain.interval(-8.0, 8.0, 160), process or bs.OU(),
                      bs.TimeGrid.uniform(1.0, steps), degree=4)


@pytest.mark.mpi
def test_fokker_planck_reaches_fourth_order():
    exact = MIX.evolve(bs.OU(), 1.0)
    cn, rich = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for steps in (8, 16, 32):
            prob = _problem(steps)
            cn.append(bs.solve_fokker_planck(prob, MIX, progress=False).error(exact, 1.0))
            r = bs.extrapolated(bs.solve_fokker_planck, prob, MIX, progress=False)
            rich.append(r.error(exact, 1.0))
    assert r.info["time_order"] == 4 and r.info["richardson"]["steps"] == [32, 64]
    assert np.all(np.abs(_orders(cn) - 2.0) < 0.1), cn
    assert np.all(_orders(rich) > 3.8), rich  # measured 4.6, 4.0
    assert rich[-1] < 1e-2 * cn[-1]


@pytest.mark.mpi
def test_kolmogorov_reaches_fourth_order():
    """u(0, z) = N(a z + b; m, S + v) for φ_T = N(m, S) under OU."""
    target = bs.GaussianMixture([1.0], [[0.5]], [[[0.3]]])
    proc = bs.OU()
    a, v = proc.transition(1.0, 0.0)

    def exact(x):
        return bs.GaussianMixture([1.0], [[0.5]], [[[0.3 + v]]]).pdf(a * x)

    errors = []
    for steps in (8, 16, 32):
        r = bs.extrapolated(bs.solve_kolmogorov, _problem(steps, proc), target,
                            progress=False)
        # away from the walls, whose reflection the free-space closed form does not know
        errors.append(r.error(exact, 0.0, weight=lambda x: (np.abs(x[:, 0]) < 3.0) * 1.0))
    assert np.all(_orders(errors) > 3.7), errors  # measured 4.02, 4.01


@pytest.mark.mpi
def test_hjb_reaches_fourth_order():
    """S = log u of the Kolmogorov test above, by the HJB solver (Newton at every step).

    Full Newton steps wander on a few steps here (up to 50 iterations, then failure), and
    which of them fail turns on round-off: halving those steps made 1 and 2 ranks solve
    different discretizations (8-step CN error 0.217 serially, 0.086 on 2 ranks). Failed
    steps are now solved again with the l2 line search: no step is halved, and the errors
    are the same on any number of ranks."""
    target = bs.GaussianMixture([1.0], [[0.5]], [[[0.3]]])
    proc = bs.OU()
    a, v = proc.transition(1.0, 0.0)
    solution = bs.GaussianMixture([1.0], [[0.5]], [[[0.3 + v]]])

    def exact(x):
        return solution.log_pdf(a * x)

    cn, rich, retries = [], [], 0
    for steps in (8, 16, 32):
        prob = _problem(steps, proc)
        inner = {"weight": lambda x: (np.abs(x[:, 0]) < 3.0) * 1.0}
        S = bs.solve_hjb(prob, target, progress=False)
        assert np.all(S.info["substeps"] == 1), S.info["substeps"]
        retries += S.info["line_search_retries"]
        cn.append(S.error(exact, 0.0, **inner))
        r = bs.extrapolated(bs.solve_hjb, prob, target, progress=False)
        rich.append(r.error(exact, 0.0, **inner))
    assert retries > 0  # measured: 4 serially, 4 on 2 ranks (at different steps)
    # the discretization's own error, the same on 1 and 2 ranks (was 0.217 / 0.086)
    assert cn[0] == pytest.approx(0.21739, rel=1e-3), cn
    assert np.all(np.abs(_orders(cn) - 2.0) < 0.4), cn  # measured 2.18, 2.04
    assert np.all(_orders(rich) > 3.8), rich
    assert rich[-1] < 1e-2 * cn[-1]


# The Gaussian bridge N(-1, 0.3) -> N(1, 0.4) under Brownian motion, σ = 1, T = 1: ρ_{T/2}
# in closed form. Linear mode on P2 (lumped mass: P3 and up lose positivity there), fine
# enough that the space error (6e-7) lies below the time error; log mode on P4.
BRIDGE_ENDS = ([-1.0], [[0.3]], [1.0], [[0.4]])
BRIDGE_CASES = {"linear": (2, 400, (4, 8, 16)), "log": (4, 80, (8, 16, 32))}


@pytest.mark.parametrize("mode", sorted(BRIDGE_CASES))
def test_bridge_reaches_fourth_order(mode):
    """Richardson on the converged fixed points of the Δt and Δt/2 bridges (module doc of
    bridgesolve.pde.richardson): ρ_{T/2} converges at order 4."""
    m0, S0, m1, S1 = BRIDGE_ENDS
    rho0 = bs.GaussianMixture([1.0], [m0], [S0])
    rho1 = bs.GaussianMixture([1.0], [m1], [S1])
    exact = bs.gaussian_bridge(m0, S0, m1, S1, 1.0, 1.0)(0.5)
    degree, cells, ladder = BRIDGE_CASES[mode]
    cn, rich = [], []
    for steps in ladder:
        prob = bs.Problem(bs.Domain.interval(-7.0, 7.0, cells), bs.Brownian(1.0),
                          bs.TimeGrid.uniform(1.0, steps), degree=degree)
        options = {"mode": mode, "tol": 1e-12, "progress": False}
        b = bs.solve_bridge(prob, rho0, rho1, **options)
        r = bs.extrapolated(bs.solve_bridge, prob, (rho0, rho1), **options)
        assert b.mode == mode and r.converged and r.info["time_order"] == 4
        cn.append(b.rho.error(exact, 0.5))
        rich.append(r.rho.error(exact, 0.5))
    assert r.info["richardson"]["steps"] == [ladder[-1], 2 * ladder[-1]]
    assert np.all(np.abs(_orders(cn) - 2.0) < 0.1), cn  # measured 1.92, 2.00 / 2.04, 2.01
    assert np.all(_orders(rich) > 3.8), rich  # measured 4.29, 3.99 / 4.05, 3.91
    assert rich[-1] < 1e-2 * cn[-1]


def test_halved_grid_and_refusals():
    g = bs.TimeGrid.graded(1.0, 5)
    h = halved(g)
    assert h.steps == 10 and np.allclose(h.times[::2], g.times)
    prob = bs.Problem(bs.Domain.interval(-4.0, 4.0, 8), bs.OU(), g, scheme="backward-euler")
    with pytest.raises(bs.BridgesolveInputError, match="Crank–Nicolson"):
        bs.extrapolated(bs.solve_fokker_planck, prob, MIX, progress=False)
