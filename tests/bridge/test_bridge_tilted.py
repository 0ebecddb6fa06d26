"""``mode="auto"`` once it has moved to the log representation: the tilted linear solves
(the HJB θ-steps linearized about the last iterate,
:class:`bridgesolve.pde.linearized.LogLinearization`)
reach the log mode's fixed point, converge to the closed-form Gaussian bridge at the log
mode's order, and agree between serial and distributed runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.bridge import gaussian_bridge, solve_bridge
from bridgesolve.studies import fitted_order, order_table

M0, C0 = [-1.0, -0.5], [[0.30, 0.10], [0.10, 0.20]]
M1, C1 = [1.5, 0.5], [[0.20, -0.08], [-0.08, 0.35]]


def _solve(prob, r0, r1, mode, tol=1e-10):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return solve_bridge(prob, r0, r1, tol=tol, mode=mode, progress=False)


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def test_tilted_solves_reach_the_log_mode_fixed_point():
    """2D, σ = 0.6, potentials too steep for the linear representation (auto switches):
    marginals, both cost formulas and the score equal the log mode's to 1e-6 relative."""
    dom = bs.Domain.box([-4.0, -4.0], [4.0, 4.0], [20, 20])
    prob = bs.Problem(dom, bs.Brownian(0.6), bs.TimeGrid.uniform(1.0, 16))
    r0 = bs.GaussianMixture([1.0], [M0], [C0])
    r1 = bs.GaussianMixture([0.5, 0.5], [[1.5, 1.0], [1.5, -1.0]], [0.15, 0.15])
    log, auto = _solve(prob, r0, r1, "log"), _solve(prob, r0, r1, "auto")
    assert log.converged and auto.converged and auto.mode == "log"
    tilted = auto.info["tilted"]
    assert tilted["linear_sweeps"] > auto.iterations, tilted  # most sweeps were linear
    assert auto.info["newton_iterations"] < 0.3 * log.info["newton_iterations"]
    rho = _rel(auto.rho.values, log.rho.values)
    assert rho < 1e-6, f"marginals differ by {rho:.2e} (relative to max ρ)"
    for key in ("kinetic", "boundary"):
        a, b = auto.cost()[key], log.cost()[key]
        assert abs(a - b) < 1e-6 * abs(b), (key, a, b)
    x = np.array([[-1.0, -0.5], [0.0, 0.0], [1.5, 1.0], [0.5, -0.5]])
    for t in (0.0, 0.5, 1.0):
        s_auto, s_log = auto.score().evaluate(x, t), log.score().evaluate(x, t)
        assert _rel(s_auto, s_log) < 1e-6, (t, s_auto, s_log)


def test_tilted_solves_converge_to_the_closed_form_bridge():
    """1D transport-dominated Gaussian bridge (σ = 0.5, shift 6): auto moves to log and
    solves linearized steps; mid-time marginals and the KL cost converge at second order."""
    r0 = bs.GaussianMixture([1.0], [[-3.0]], [0.25])
    r1 = bs.GaussianMixture([1.0], [[3.0]], [0.16])
    exact = gaussian_bridge([-3.0], [[0.25]], [3.0], [[0.16]], sigma=0.5)
    kl = bs.gaussian_bridge_cost([-3.0], [[0.25]], [3.0], [[0.16]], sigma=0.5)
    hs, errs, cost_errs = [], [], []
    for cells in (64, 128, 256):
        prob = bs.Problem(bs.Domain.interval(-8.0, 8.0, cells), bs.Brownian(0.5),
                          bs.TimeGrid.uniform(1.0, cells // 2))
        b = _solve(prob, r0, r1, "auto", tol=1e-9)
        assert b.converged and b.mode == "log" and b.info["tilted"]["linear_sweeps"] > 0
        hs.append(16.0 / cells)
        errs.append(max(b.rho.error(exact(t), t, norm="L1") for t in (0.25, 0.5, 0.75)))
        cost_errs.append(abs(b.cost()["boundary"] - kl))
    order = fitted_order(hs, errs)
    assert order > 1.8, f"observed order {order:.2f}\n{order_table(hs, errs)}"
    assert errs[-1] < 2e-3, order_table(hs, errs)
    cost_order = fitted_order(hs, cost_errs)
    assert cost_order > 1.7, f"cost order {cost_order:.2f}\n{order_table(hs, cost_errs)}"


@pytest.mark.mpi
def test_tilted_serial_and_distributed_agree():
    from bridgesolve._dolfinx import MPI

    r0 = bs.GaussianMixture([1.0], [M0], [C0])
    r1 = bs.GaussianMixture([1.0], [M1], [C1])
    results = []
    for comm in (MPI.COMM_SELF, MPI.COMM_WORLD):
        dom = bs.Domain.box([-4.0, -4.0], [4.0, 4.0], [16, 16], comm=comm)
        prob = bs.Problem(dom, bs.Brownian(0.6), bs.TimeGrid.uniform(1.0, 12))
        b = _solve(prob, r0, r1, "auto", tol=1e-9)
        assert b.converged and b.info["tilted"]["linear_sweeps"] > 0
        cost = b.cost()
        results.append((b.iterations, b.rho.error(r1, 1.0, norm="L1"), b.rho.integral()[6],
                        cost["kinetic"], cost["boundary"]))
    (it_s, *serial), (it_d, *distributed) = results
    assert it_s == it_d
    assert np.allclose(serial, distributed, rtol=1e-7, atol=1e-10), (serial, distributed)
