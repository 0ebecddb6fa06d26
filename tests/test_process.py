"""Processes: closed-form step integrals and transitions agree with quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.process import Cosine, Process

PROCS = [bs.Brownian(0.7), bs.OU(1.3, 0.9, 0.2), bs.VP(), bs.SubVP(), bs.VE(),
         bs.VP(0.0, 20.0), Cosine()]


@pytest.mark.parametrize("proc", PROCS, ids=lambda p: type(p).__name__)
def test_closed_forms_match_generic_quadrature(proc):
    last = (0.4, 0.6) if isinstance(proc, Cosine) else (0.5, 1.0)  # tan's pole at t = 1
    for t0, t1 in [(0.0, 0.3), (0.1, 0.5), last]:
        assert proc.diffusion_integral(t0, t1) == pytest.approx(
            Process.diffusion_integral(proc, t0, t1), rel=1e-6)
        assert proc.drift_rate_integral(t0, t1) == pytest.approx(
            Process.drift_rate_integral(proc, t0, t1), rel=1e-9, abs=1e-14)
        a, var = proc.transition(t1, t0)
        a2, var2 = Process.transition(proc, t1, t0)
        assert a == pytest.approx(a2, rel=1e-9)
        assert var == pytest.approx(var2, rel=1e-5)


@pytest.mark.parametrize("t", [0.01, 0.3, 0.7, 1.0])
def test_simple_vp_schedule_closed_form(t):
    """Hirono et al.'s "SIMPLE" schedule: β = 20 t, α_t = e^{-5t²}, σ_t² = 1 - e^{-10t²}."""
    proc = bs.VP(beta_min=0.0, beta_max=20.0)
    a, var = proc.transition(t)
    assert a == pytest.approx(math.exp(-5 * t * t), rel=1e-14)
    assert var == pytest.approx(-math.expm1(-10 * t * t), rel=1e-14)
    assert 2 * proc.diffusion(t) == pytest.approx(20 * t)
    assert proc.drift_rate(0.0) == 0.0


@pytest.mark.parametrize("t, s", [(0.01, 0.0), (0.5, 0.0), (0.999, 0.0), (0.9, 0.3)])
def test_cosine_schedule_closed_form(t, s):
    """α_t = cos(πt/2), σ_t = sin(πt/2); g² = π tan(πt/2), f = -(π/2) tan(πt/2) x."""
    proc = Cosine()
    a, var = proc.transition(t, s)
    a_exp = math.cos(math.pi * t / 2) / math.cos(math.pi * s / 2)
    assert a == pytest.approx(a_exp, rel=1e-14)
    assert var == pytest.approx(1 - a_exp**2, rel=1e-12)
    if s == 0.0:
        assert math.sqrt(var) == pytest.approx(math.sin(math.pi * t / 2), rel=1e-12)
    assert 2 * proc.diffusion(t) == pytest.approx(math.pi * math.tan(math.pi * t / 2))
    x = np.array([[1.5]])
    assert proc.drift(x, t)[0, 0] == pytest.approx(-0.75 * math.pi * math.tan(math.pi * t / 2))
    mix = bs.GaussianMixture([1.0], [[2.0]], [0.3]).evolve(proc, t, s)
    assert mix.means[0, 0] == pytest.approx(2 * a_exp) and mix.covs[0, 0, 0] == pytest.approx(
        0.3 * a_exp**2 + 1 - a_exp**2)


def test_cosine_rebuilds_from_description_and_clock_grid():
    proc = bs.process.process_from_description(Cosine(0.99).describe())
    assert isinstance(proc, Cosine) and proc.T == 0.99
    grid = bs.TimeGrid.clock(proc.clock, proc.T, 20, t_min=0.01)
    ds = np.diff(proc.clock(grid.times))
    assert grid.times[0] == 0.01 and np.allclose(ds, ds.mean(), rtol=1e-9)


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
    (lambda: bs.VP(beta_min=-1), "beta_min = -1: expected a finite positive number or 0"),
    (lambda: Cosine(T=1.0), "T = 1.0: expected a horizon below 1"),
    (lambda: bs.VP(beta_min=2, beta_max=1), "beta_max"),
    (lambda: bs.VE(sigma_min=1, sigma_max=0.5), "sigma_max"),
    (lambda: bs.OU(theta=0), "theta = 0"),
    (lambda: bs.Brownian(sigma=float("nan")), "sigma"),
    (lambda: bs.Custom(3.0, g=1.0), "drift = 3.0"),
])
def test_invalid_parameters(make, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        make()
