"""Richardson extrapolation of Crank–Nicolson: observed order 4 in time against closed forms
(Fokker–Planck of an OU mixture; Kolmogorov expectation of a Gaussian), on a P4 mesh whose
space error lies below the time error; serial and MPI-2."""

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


def test_halved_grid_and_refusals():
    g = bs.TimeGrid.graded(1.0, 5)
    h = halved(g)
    assert h.steps == 10 and np.allclose(h.times[::2], g.times)
    prob = bs.Problem(bs.Domain.interval(-4.0, 4.0, 8), bs.OU(), g, scheme="backward-euler")
    with pytest.raises(bs.BridgesolveInputError, match="Crank–Nicolson"):
        bs.extrapolated(bs.solve_fokker_planck, prob, MIX, progress=False)
