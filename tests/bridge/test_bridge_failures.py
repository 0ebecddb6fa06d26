"""How a bridge refuses, fails and reports: marginals with mass outside the domain, Newton
failures as :class:`BridgeError` with advice, an unconverged run's warning, and a progress
bar that measures the marginal error against the tolerance (not iterations to max_iter)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.bridge import BridgeError, solve_bridge


def _problem(cells=32, steps=8, sigma=1.0, L=6.0):
    return bs.Problem(bs.Domain.interval(-L, L, cells), bs.Brownian(sigma),
                      bs.TimeGrid.uniform(1.0, steps))


def _gaussian(mean, var):
    return bs.GaussianMixture([1.0], [[mean]], [var])


@pytest.mark.parametrize("which", ["rho0", "rho1"])
def test_mass_outside_the_domain_is_refused_with_the_mass_and_the_domain(which):
    inside, outside = _gaussian(-1.0, 0.3), _gaussian(5.0, 0.5)  # 8e-3 beyond x = 6
    r0, r1 = (outside, inside) if which == "rho0" else (inside, outside)
    with pytest.raises(bs.BridgesolveInputError) as info:
        solve_bridge(_problem(), r0, r1, progress=False)
    text = str(info.value)
    assert text.startswith(which) and "[-6, 6]" in text, text
    found = float(re.search(r"has mass ([0-9.e+-]+) outside", text).group(1))
    assert found == pytest.approx(0.0786, rel=0.05), text  # P(N(5, 0.5) > 6) = 0.0786


def test_mass_just_inside_is_accepted_and_a_little_outside_warned():
    b = solve_bridge(_problem(), _gaussian(-1.0, 0.3), _gaussian(1.0, 0.3), tol=1e-6,
                     progress=False)
    assert b.converged
    # N(3.5, 0.31): 3.6e-6 beyond x = 6 (between the warning and the refusal thresholds)
    with pytest.warns(RuntimeWarning, match=r"rho1 has mass 3.\d+e-06 outside"):
        solve_bridge(_problem(), _gaussian(-1.0, 0.3), _gaussian(3.5, 0.31), tol=1e-6,
                     mode="log", progress=False)


def test_newton_failure_is_a_bridge_error_with_advice():
    prob = _problem(cells=16, steps=2, sigma=0.3)
    with pytest.raises(BridgeError) as info:
        solve_bridge(prob, _gaussian(-2.0, 0.2), _gaussian(2.0, 0.2), mode="log",
                     progress=False, newton_options={"snes_max_it": 1, "snes_rtol": 1e-15,
                                                     "snes_atol": 1e-300, "snes_stol": 0.0})
    text = str(info.value)
    assert "Newton did not converge" in text and "log mode" in text, text
    assert "Sinkhorn update" in text and "TimeGrid.graded" in text, text
    assert isinstance(info.value.history, list)


@pytest.mark.filterwarnings("ignore:.*linear representation is inaccurate")
def test_unconverged_warning_prints_only_finite_errors():
    with pytest.warns(RuntimeWarning, match="not converged after 1 iterations") as caught:
        solve_bridge(_problem(), _gaussian(-1.0, 0.3), _gaussian(1.0, 0.4), max_iter=1,
                     mode="linear", progress=False)
    text = " ".join(str(w.message) for w in caught)
    assert "nan" not in text and "t=T" in text and "tol" in text, text


@pytest.mark.filterwarnings("ignore:.*linear representation is inaccurate")
def test_progress_bar_counts_decades_of_the_error_not_iterations(capsys):
    b = solve_bridge(_problem(), _gaussian(-1.0, 0.3), _gaussian(1.0, 0.4), tol=1e-8,
                     max_iter=500, mode="linear", progress=True)
    err = capsys.readouterr().err
    assert b.converged
    assert "→ tol 1e-08" in err and "/500" not in err, err[-400:]
    assert np.isfinite(b.history[-1]["errT_L1"])


def test_python_api_flags_an_under_resolved_bridge():
    """σ = 0.1 on 60 P1 cells in linear mode converges to tol, but the two KL formulas of
    the continuous system disagree (the CLI test measured 2.60 vs 45.2): ``cost()`` flags
    it and warns, as the command line does; a resolved bridge is not flagged."""
    rho0 = bs.GaussianMixture([1.0], [[-1.0]], [0.3])
    rho1 = bs.GaussianMixture([1.0], [[1.5]], [0.5])
    dom = bs.Domain.interval(-6.0, 6.0, cells=60)
    grid = bs.TimeGrid.uniform(1.0, 30)
    coarse = bs.solve_bridge(bs.Problem(dom, bs.Brownian(sigma=0.1), grid), rho0, rho1,
                             mode="linear", progress=False)
    with pytest.warns(RuntimeWarning, match="KL cost formulas differ"):
        cost = coarse.cost()
    assert coarse.converged and cost["under_resolved"] and cost["relative_gap"] > 0.5, cost
    fine = bs.solve_bridge(bs.Problem(dom, bs.Brownian(sigma=1.0), grid), rho0, rho1,
                           tol=1e-9, progress=False)
    assert not fine.cost()["under_resolved"], fine.cost()["relative_gap"]
