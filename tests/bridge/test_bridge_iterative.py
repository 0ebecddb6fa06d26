"""Bridges with the iterative linear-solver path: the same marginals as the direct path in
every mode (linear: tied tolerance and positivity clipping; log: Newton–Krylov; auto: the
tilted sweeps too), against the closed-form Gaussian bridge, serially and under
``mpiexec -n 2`` (allreduced quantities only)."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI
from bridgesolve.bridge import gaussian_bridge
from bridgesolve.bridge.sweeps import _LinearSweeps

M0, V0, M1, V1 = [-1.0, 0.0], 0.5, [1.0, 0.5], 0.4
TOL = 1e-8


def _solve(solver: str, mode: str):
    dom = bs.Domain.box([-5.0, -5.0], [5.0, 5.0], (32, 32), comm=MPI.COMM_WORLD)
    scheme = "backward-euler" if mode == "linear" else "crank-nicolson"
    prob = bs.Problem(dom, bs.Brownian(1.0), bs.TimeGrid.uniform(1.0, 20), solver=solver,
                      scheme=scheme)
    r0 = bs.GaussianMixture([1.0], [M0], [V0])
    r1 = bs.GaussianMixture([1.0], [M1], [V1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # linear mode: steepness note
        return prob, bs.solve_bridge(prob, r0, r1, tol=TOL, mode=mode, progress=False)


def _rho_gap(a, b, prob) -> float:
    """L1 distance of the two bridges' ρ_t, max over t (lumped weights, all ranks)."""
    n = prob.V.dofmap.index_map.size_local
    from bridgesolve.bridge.sinkhorn import _lumped_weights

    w = _lumped_weights(prob)
    local = np.abs(a.rho.values[:, :n] - b.rho.values[:, :n]) @ w
    return float(np.max(prob.comm.allreduce(local, MPI.SUM)))


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["linear", "log", "auto"])
def test_iterative_bridge_has_the_direct_marginals(mode):
    prob, direct = _solve("direct", mode)
    _, iterative = _solve("iterative", mode)
    assert direct.converged and iterative.converged
    assert iterative.mode == direct.mode
    assert abs(iterative.iterations - direct.iterations) <= 1
    assert _rho_gap(direct, iterative, prob) <= 10 * TOL
    exact = gaussian_bridge(M0, V0 * np.eye(2), M1, V1 * np.eye(2), sigma=1.0, T=1.0)(0.5)
    errors = [b.rho.error(exact, 0.5, norm="L1") for b in (direct, iterative)]
    assert errors[1] == pytest.approx(errors[0], rel=1e-4, abs=10 * TOL)
    assert errors[0] < 0.1  # the closed form, to the discretization error (BE: 0.08)
    record = iterative.info["linear_solver"]
    assert record["solver"] == "iterative" and record["krylov_iterations"] > 0
    assert direct.info["linear_solver"]["solver"] == "direct"
    if mode == "linear":
        assert record["rtol"] == pytest.approx(1e-3 * TOL)  # tied to the bridge's tol
        assert all(k.startswith("cg+") for k in record["methods"])  # Brownian: symmetric


def test_clipping_keeps_positivity_and_warns_beyond_the_tolerance():
    """A sweep value below the solve's accuracy is set to it; a negative value beyond what
    the tolerance explains warns once, naming the value and the tolerance."""
    sweeps = _LinearSweeps.__new__(_LinearSweeps)
    sweeps.problem = types.SimpleNamespace(comm=MPI.COMM_SELF)
    sweeps.n_owned, sweeps.floor = 4, 1e-11
    sweeps.clipped = {"values": 0, "most_negative": 0.0, "warned": False}
    vals = np.array([1.0, 1e-12, -1e-13, 0.5])
    sweeps._clip(vals, 0.25)  # round-off negatives: silent
    assert np.all(vals > 0) and vals[1] == vals[2] == 1e-11
    assert sweeps.clipped["values"] == 2
    vals = np.array([1.0, -1e-3, 0.2, 0.5])
    with pytest.warns(RuntimeWarning, match=r"went negative at t = 0.5: -0.001"):
        sweeps._clip(vals, 0.5)
    assert vals[1] == 1e-11 and sweeps.clipped["most_negative"] == -1e-3
