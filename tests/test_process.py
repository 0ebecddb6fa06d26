"""Processes: closed-form step integrals and transitions agree with quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.process import Process

PROCS = [bs.Brownian(0.7), bs.OU(1.3, 0.9, 0.2), bs.VP(), bs.SubVP(), bs.VE()]


@pytest.mark.parametrize("proc", PROCS, ids=lambda p: type(p).__name__)
def test_closed_forms_match_generic_quadrature(proc):
    for t0, t1 in [(0.0, 0.3), (0.1, 0.8), (0.5, 1.0)]:
        assert proc.diffusion_integral(t0, t1) == pytest.approx(
            Process.diffusion_integral(proc, t0, t1), rel=1e-6)
        assert proc.drift_rate_integral(t0, t1) == pytest.approx(
            Process.drift_rate_integral(proc, t0, t1), rel=1e-9, abs=1e-14)
        a, var = proc.transition(t1, t0)
        a2, var2 = Process.transition(proc, t1, t0)
        assert a == pytest.approx(a2, rel=1e-9)
        assert var == pytest.approx(var2, rel=1e-5)


def test_vp_prior_is_standard_normal():
    a, var = bs.VP().transition(1.0)
    assert a == pytest.approx(math.exp(-0.5 * (0.1 + 0.5 * 19.9)))
    assert var == pytest.approx(1 - a * a)


def test_clock_grid_has_equal_clock_steps():
    proc = bs.VP()
    grid = bs.TimeGrid.clock(proc.clock, 1.0, 50)
    ds = np.diff(proc.clock(grid.times))
    assert np.allclose(ds, ds.mean(), rtol=1e-9)
    assert grid.times[0] == 0.0 and grid.times[-1] == 1.0


@pytest.mark.parametrize("make, match", [
    (lambda: bs.VP(beta_min=-1), "beta_min = -1"),
    (lambda: bs.VP(beta_min=2, beta_max=1), "beta_max"),
    (lambda: bs.VE(sigma_min=1, sigma_max=0.5), "sigma_max"),
    (lambda: bs.OU(theta=0), "theta = 0"),
    (lambda: bs.Brownian(sigma=float("nan")), "sigma"),
    (lambda: bs.Custom(3.0, g=1.0), "drift = 3.0"),
])
def test_invalid_parameters(make, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        make()
