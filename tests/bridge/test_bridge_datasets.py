"""Bridges between the data sets of :mod:`bridgesolve.densities`: discontinuous marginals
are L2-projected (initial error reported), a misaligned mesh no longer refuses the
checkerboard, and ``mode="auto"`` solves in the linear mode where the log mode cannot
(marginals vanishing at nodes; HJB solves that fail on under-resolved log-densities),
saying why. Serial and under ``mpiexec -n 2``."""

from __future__ import annotations

import warnings

import pytest

import bridgesolve as bs
from bridgesolve import densities as D

pytestmark = pytest.mark.mpi


def _problem(cells: int, steps: int = 12):
    dom = bs.Domain.box([-5, -5], [5, 5], [cells, cells])  # h = 10/cells: cuts the jumps
    return bs.Problem(dom, bs.Brownian(1.0), bs.TimeGrid.uniform(1.0, steps), degree=1)


def _solve(problem, rho0, rho1, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bridge = bs.solve_bridge(problem, rho0, rho1, progress=False, tol=1e-8,
                                 max_iter=200, **options)
    return bridge, [str(w.message) for w in caught]


@pytest.mark.parametrize("mode", ["linear", "auto"])
def test_checkerboard_to_two_moons_is_projected_and_converges(mode):
    bridge, messages = _solve(_problem(24), D.checkerboard(), D.two_moons(noise=0.3),
                              mode=mode)
    assert bridge.converged and bridge.mode == "linear"
    errors = bridge.info["final_errors"]
    assert errors["err0_L1"] < 1e-8 and errors["errT_L1"] < 1e-8
    proj = bridge.summary()["initial_projection"]
    assert list(proj) == ["rho0"]  # two moons are smooth: interpolated
    p0 = proj["rho0"]
    assert p0["rhs"] == "exact on cut cells"
    assert p0["mass_fe"] == pytest.approx(1.0, abs=1e-10)  # 24 cells cut every jump
    assert 0.05 < p0["l1_projection"] <= p0["l1"] < 1.0 and p0["min"] < 0 < p0["clipped"]
    assert not [m for m in messages if "outside" in m or "negative nodal" in m], messages
    if mode == "auto":  # the zeros of the projection keep auto linear, and it says so
        assert "rho0 vanishes at" in bridge.info["fallback"]


def test_two_moons_to_eight_gaussians_converges():
    bridge, _ = _solve(_problem(24), D.two_moons(noise=0.3), D.eight_gaussians())
    assert bridge.converged
    errors = bridge.info["final_errors"]
    assert errors["err0_L1"] < 1e-8 and errors["errT_L1"] < 1e-8
    assert "initial_projection" not in bridge.info


def test_auto_falls_back_to_linear_when_the_log_mode_fails():
    """Two moons σ = 0.15 on a 40² mesh (h = 0.25 > σ): log ρ0 falls to -779 in the corners
    and the HJB solves started from the linear iterate fail (audit of issue 21); the linear
    mode converges."""
    problem = _problem(40, steps=20)
    r0, r1 = D.two_moons(noise=0.15), D.eight_gaussians()
    bridge, messages = _solve(problem, r0, r1)
    assert bridge.converged and bridge.mode == "linear"
    assert bridge.info["final_errors"]["errT_L1"] < 1e-8
    assert "the log mode failed" in bridge.info["fallback"]
    assert any("solved in the linear mode because the log mode failed" in m
               for m in messages), messages
    assert any("back to the linear mode" in h.get("event", "") for h in bridge.history)
    # the log mode itself fails on such data: KDE (bandwidth 0.2) -> circles (noise 0.1)
    kde = D.GaussianKDE(D.two_moons(noise=0.1).sample(200, rng=0), 0.2)
    with pytest.raises(bs.bridge.BridgeError, match="Newton did not converge"):
        _solve(problem, kde, D.circles(noise=0.1), mode="log")
