"""Smoke-size run of ``benchmarks/bridge_vs_pot.py``'s comparison (no timing asserted).

Between N((-0.75, 0.25), 0.3 I) and N((0.75, -0.25), 0.5 I) under ``dX = dW`` on [0, 1] the
bridge's end-point coupling is the entropic OT plan with ε = 1, and its barycentric map is
the closed-form affine map ``m1 + c/var0 (x - m0)``. POT on the mesh nodes reproduces the
closed form to ~1e-6 (spectral accuracy of the trapezoid-like lumped weights); bridgesolve's
plan converges to POT's at second order in h (P1, Crank–Nicolson, dt ∝ h).
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

pytest.importorskip("ot")

import bridge_vs_pot as bench  # noqa: E402
import pot_peer as pp  # noqa: E402

TARGET = 1e-9
VAR0, VAR1 = 0.3, 0.5
M0, M1 = np.array([-0.75, 0.25]), np.array([0.75, -0.25])


@pytest.fixture(scope="module")
def ladder():
    """Two grids of [-5, 5]² (16² and 24² cells, as many steps), log mode."""
    import bridgesolve as bs

    r0 = bs.GaussianMixture([1.0], [M0], [VAR0])
    r1 = bs.GaussianMixture([1.0], [M1], [VAR1])
    rows = []
    for cells in (16, 24):
        grid = bench.make_grid(cells, cells, 1.0, lower=-5.0, upper=5.0, rho0=r0, rho1=r1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = bench.run_bridgesolve(grid, TARGET, repeats=0, mode="log", rho0=r0, rho1=r1)
        pot = bench.run_pot(grid, TARGET)
        cmp = bench.compare_plans(grid.x, grid.m, grid.a, grid.b,
                                  *bench.bridge_end_potentials(res["bridge"]), pot["plan"],
                                  grid.eps, bench.control_map(res["bridge"], grid.x))
        rows.append({"grid": grid, "bs": res, "pot": pot, "cmp": cmp, "h": 10.0 / cells})
    return rows


def test_pot_iteration_count_is_the_first_below_target(ladder):
    for row in ladder:
        pot = row["pot"]
        assert pot["method"] == "sinkhorn"
        assert pot["col_L1"] <= TARGET < pot["previous_col_L1"], pot
        row_err, col_err = row["cmp"]["pot_marginals_L1"]
        assert row_err < 1e-14 and col_err <= TARGET


def test_pot_map_matches_the_gaussian_closed_form(ladder):
    slope = pp.gaussian_entropic_slope(VAR0, VAR1, 1.0)
    # Measured: rms 8.8e-7 (16²), 3.0e-8 (24²).
    for row in ladder:
        grid = row["grid"]
        exact = M1 + slope * (grid.x - M0)
        dist = pp.map_distance(row["cmp"]["pot_map"], exact, grid.a)
        assert dist["rms"] < 5e-6 and dist["max"] < 1e-5, dist


def test_bridgesolve_plan_converges_to_pot_at_second_order(ladder):
    """Measured: plan L1 2.14e-2, 9.42e-3 (order 2.02); map rms 2.52e-3, 1.11e-3 (2.02)."""
    plan = [r["cmp"]["plan_L1"] for r in ladder]
    maps = [r["cmp"]["map_kernel"]["rms"] for r in ladder]
    marg = [max(r["cmp"]["bs_marginals_L1"]) for r in ladder]
    hs = [r["h"] for r in ladder]
    for name, errors in (("plan L1", plan), ("map rms", maps), ("marginals", marg)):
        order = bench.observed_orders(hs, errors)[0]
        assert 1.7 < order < 2.4, f"{name}: errors {errors}, observed order {order:.2f}"
    assert plan[0] < 0.03 and maps[0] < 4e-3 and maps[1] < 1.5e-3, (plan, maps)
    for r in ladder:
        # bridgesolve's own discrete marginals are matched to the target like POT's.
        fe = r["bs"]["final_errors"]
        assert max(fe["err0_L1"], fe["errT_L1"]) < TARGET


def test_control_map_is_first_order(ladder):
    """``x + T u(x, 0)`` with the P1 gradient evaluated at the nodes: O(h) (measured 0.245,
    0.164: order 0.99), a cross-check of the control against an independent method."""
    errors = [r["cmp"]["map_control"]["rms"] for r in ladder]
    order = bench.observed_orders([r["h"] for r in ladder], errors)[0]
    assert errors[1] < 0.2 and 0.7 < order < 1.5, (errors, order)


def test_memory_formula():
    assert pp.pot_largest_n(8.0 * 5 * 1000**2 + 100, 5.0, 100) == 1000
    assert pp.pot_largest_n(10, 5.0, 100) == 0
    assert math.isclose(bench.observed_orders([0.2, 0.1], [4.0, 1.0])[0], 2.0)
