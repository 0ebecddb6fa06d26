"""``describe()`` and ``from_description`` are inverses: problems, domains, processes and
densities rebuild from the records bundles and summaries store."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.densities import Density, density_from_description
from bridgesolve.process import Cosine, Process, SubVP

PROCESSES = [bs.Brownian(sigma=0.7), bs.OU(theta=1.5, sigma=0.5, mean=0.2), bs.VP(0.1, 20.0),
             bs.VE(0.01, 5.0), SubVP(0.1, 20.0), Cosine()]


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_process_round_trip(process):
    back = Process.from_description(process.describe())
    assert type(back) is type(process) and back.describe() == process.describe()
    t = np.linspace(0.05, 0.9, 5)
    assert np.allclose([back.g(s) for s in t], [process.g(s) for s in t], rtol=1e-14)


@pytest.mark.mpi
@pytest.mark.parametrize("domain", [lambda: bs.Domain.box([-2.0, -1.0], [2.0, 3.0], [6, 5]),
                                    lambda: bs.Domain.interval(-3.0, 3.0, 17),
                                    lambda: bs.Domain.disk(1.5, 0.4)],
                         ids=["box", "interval", "disk"])
def test_problem_round_trip(domain):
    prob = bs.Problem(domain(), bs.OU(theta=1.0, sigma=0.8), bs.TimeGrid.uniform(0.5, 7),
                      degree=2, scheme="backward-euler")
    back = bs.Problem.from_description(prob.describe(), comm=prob.comm)
    assert back.describe() == prob.describe()
    assert back.ndofs == prob.ndofs and np.array_equal(back.grid.times, prob.grid.times)
    graded = bs.TimeGrid.graded(1.0, 6)
    prob2 = bs.Problem(domain(), bs.VP(), graded, degree=1)
    with pytest.raises(bs.BridgesolveInputError, match="not uniform"):
        bs.Problem.from_description(prob2.describe())
    back2 = bs.Problem.from_description(prob2.describe(), times=graded.times)
    assert np.array_equal(back2.grid.times, graded.times) and back2.degree == 1


def test_bad_descriptions_are_named():
    with pytest.raises(bs.BridgesolveInputError, match="cannot rebuild a mesh"):
        bs.Domain.from_description({"type": "torus"})
    with pytest.raises(bs.BridgesolveInputError, match="no element degree"):
        bs.Problem.from_description({"discretization": {"element": "Q?"}})
    with pytest.raises(bs.BridgesolveInputError, match="needs T"):
        bs.Problem.from_description({"discretization": {"element": "P1"}, "time": {}})
    with pytest.raises(bs.BridgesolveInputError, match="density type 'Moons'"):
        density_from_description({"type": "Moons"})
    with pytest.raises(bs.BridgesolveInputError, match="missing"):
        density_from_description({"type": "GaussianMixture", "weights": [1.0]})


def test_mixture_round_trip_and_protocol():
    mix = bs.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.2, 0.0]],
                             [np.eye(2) * 0.2, [[0.3, 0.1], [0.1, 0.4]]])
    back = density_from_description(mix.describe())
    x = np.random.default_rng(0).normal(size=(50, 2))
    assert np.array_equal(back.log_pdf(x), mix.log_pdf(x))
    assert isinstance(mix, Density)
    assert not isinstance(object(), Density)
