from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs


def test_uniform_and_graded():
    g = bs.TimeGrid.uniform(2.0, 4)
    assert np.allclose(g.times, [0, 0.5, 1, 1.5, 2]) and g.steps == 4 and g.T == 2.0
    h = bs.TimeGrid.graded(1.0, 10, power=2.0)
    assert h.dt[0] < h.dt[-1] and h.times[-1] == 1.0
    assert g.index(1.5) == 3


@pytest.mark.parametrize("make, match", [
    (lambda: bs.TimeGrid.uniform(0.0, 10), "T = 0.0"),
    (lambda: bs.TimeGrid.uniform(-1.0, 10), "T = -1.0"),
    (lambda: bs.TimeGrid.uniform(1.0, 0), "steps = 0"),
    (lambda: bs.TimeGrid.uniform(1.0, 2.5), "steps = 2.5"),
    (lambda: bs.TimeGrid.from_times([0.0, 0.5, 0.4]), "strictly increasing"),
    (lambda: bs.TimeGrid.from_times([0.1, 0.5]), "times"),
    (lambda: bs.TimeGrid.graded(1.0, 5, power=0.5), "power"),
    (lambda: bs.TimeGrid.uniform(1.0, 5, t_min=1.0), "t_min = 1.0: expected a time below T"),
    (lambda: bs.TimeGrid.uniform(1.0, 5, t_min=-0.1), "t_min = -0.1"),
    (lambda: bs.TimeGrid.from_times([0.1, 0.5], t_min=0.2), "expected t_min = 0.2"),
])
def test_invalid_grids(make, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        make()


def test_index_names_the_nearest_time():
    with pytest.raises(bs.BridgesolveInputError, match=r"nearest is t\[1\] = 0.5"):
        bs.TimeGrid.uniform(1.0, 2).index(0.55)


def test_grids_from_t_min():
    g = bs.TimeGrid.uniform(1.0, 99, t_min=0.01)
    assert g.t_min == 0.01 and g.times[0] == 0.01 and g.T == 1.0
    assert np.allclose(g.dt, 0.01) and "t_min=0.01" in repr(g)
    h = bs.TimeGrid.graded(1.0, 10, t_min=0.01)
    assert h.times[0] == 0.01 and h.times[-1] == 1.0 and h.dt[0] < h.dt[-1]
    e = bs.TimeGrid.graded(1.0, 10, t_min=0.01, near="end")
    assert e.times[0] == pytest.approx(0.01) and e.dt[-1] < e.dt[0]
    c = bs.TimeGrid.clock(bs.VP(0.0, 20.0).clock, 1.0, 10, t_min=0.01)
    assert c.times[0] == 0.01 and c.times[-1] == 1.0
    assert bs.TimeGrid.from_times([0.01, 0.5, 1.0], t_min=0.01).t_min == 0.01
    assert bs.TimeGrid.uniform(2.0, 4).t_min == 0.0


@pytest.mark.parametrize("steps", [10, 11])
def test_graded_near_both_ends_is_mirrored(steps):
    g = bs.TimeGrid.graded(2.0, steps, power=2.0, near="both")
    assert g.times[0] == 0.0 and g.times[-1] == pytest.approx(2.0)
    assert np.all(g.dt > 0) and np.allclose(g.dt, g.dt[::-1])
    assert g.dt[0] < 0.5 * g.dt[steps // 2]
    # the first half is the start's grading of [0, T/2]
    if steps % 2 == 0:
        half = bs.TimeGrid.graded(1.0, steps // 2, power=2.0)
        assert np.allclose(g.times[: steps // 2 + 1], half.times)
    with pytest.raises(bs.BridgesolveInputError, match="near = 'middle'"):
        bs.TimeGrid.graded(1.0, 10, near="middle")
