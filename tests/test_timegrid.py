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
])
def test_invalid_grids(make, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        make()


def test_index_names_the_nearest_time():
    with pytest.raises(bs.BridgesolveInputError, match=r"nearest is t\[1\] = 0.5"):
        bs.TimeGrid.uniform(1.0, 2).index(0.55)
