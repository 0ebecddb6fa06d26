"""Train -> reference -> validate for every data set the trainer offers: a briefly trained
network validates against its data set's bundle (built from the exact formulas on a mesh)
without an "other data" note, and against another data set's bundle with one. Every named
set, a sample file (its KDE), an image file and an explicit Gaussian mixture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("torch")

import bridgesolve as bs  # noqa: E402
from bridgesolve.learn import train, validate  # noqa: E402
from bridgesolve.learn.config import DATA_TYPES  # noqa: E402
from bridgesolve.learn.data import TOY_SETS  # noqa: E402
from bridgesolve.process import VP  # noqa: E402
from bridgesolve.reference import exact_bundle  # noqa: E402
from bridgesolve.timegrid import TimeGrid  # noqa: E402

PROBLEMS = {}


def _problem(dim: int):
    if dim not in PROBLEMS:
        dom = bs.Domain.box([-6.0] * dim, [6.0] * dim, 12 if dim == 2 else 48)
        PROBLEMS[dim] = bs.Problem(dom, VP(), TimeGrid.uniform(1.0, 4), degree=1)
    return PROBLEMS[dim]


def _data(kind: str, folder) -> dict:
    """The ``[data]`` table of ``kind``; the files of ``file`` and ``image`` in ``folder``."""
    if kind == "file":  # samples -> their Gaussian KDE
        np.save(folder / "points.npy", bs.densities.two_moons(noise=0.1).sample(300, rng=0))
        return {"type": "file", "path": str(folder / "points.npy"), "bandwidth": 0.2}
    if kind == "image":
        np.save(folder / "image.npy", np.random.default_rng(2).random((12, 10)))
        return {"type": "image", "path": str(folder / "image.npy"), "lower": [-2.0, -2.0],
                "upper": [2.0, 2.0]}
    if kind == "gaussian_mixture":
        return {"type": "gaussian_mixture", "weights": [0.5, 0.5],
                "means": [[-1.0, 0.0], [1.0, 0.0]], "covs": [0.3, 0.3]}
    return {"type": kind}


def _config(kind: str, out, data: dict | None = None) -> dict:
    return {"data": data or {"type": kind}, "process": {"type": "VP"},
            "model": {"width": 16, "depth": 1, "fourier_features": 4},
            "train": {"steps": 5, "batch_size": 64, "warmup": 1, "checkpoint_every": 5,
                      "device": "cpu", "amp": False},
            "output": {"directory": str(out)}}


def _validate(ckpt, bundle):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = validate(ckpt, bundle, hs=(), n_mc=32, progress=False, device="cpu")
    return rep, [str(w.message) for w in caught]


def test_every_trainer_data_set_is_a_named_density():
    assert set(TOY_SETS) == set(bs.densities.catalog.NAMED)
    assert set(DATA_TYPES) == set(bs.densities.catalog.TYPES)
    for kind, factory in TOY_SETS.items():
        assert factory().density is not None, kind


ROUND_TRIP = ["two_moons", "checkerboard", "swiss_roll", "rings", "circle", "circles",
              "s_curve", "eight_gaussians", "twenty_five_gaussians", "mixture1d", "file",
              "image", "gaussian_mixture"]


def test_the_round_trip_covers_every_trainer_data_type():
    assert set(ROUND_TRIP) == set(DATA_TYPES)


@pytest.mark.parametrize("kind", ROUND_TRIP)
def test_trained_network_validates_against_its_own_data_bundle(kind, tmp_path):
    data = _data(kind, tmp_path)
    result = train(_config(kind, tmp_path / "run", data), progress=False, overwrite=True)
    density = bs.densities.catalog.density_from_config(data)
    if kind in TOY_SETS:  # the config's density is the trainer's named set
        assert density.describe() == TOY_SETS[kind]().density.describe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coarse quadrature at t = 0
        bundle = exact_bundle(_problem(density.dim), density)
    rep, messages = _validate(result.checkpoint, bundle)
    assert not any("was trained on" in m for m in messages + rep["notes"]), messages
    assert rep["exact"] is not None and rep["esm"]["integrated"] > 0
    if kind == "two_moons":  # the check can fail: another data set's bundle is flagged
        other = bs.densities.checkerboard()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            wrong = exact_bundle(_problem(2), other)
        rep, messages = _validate(result.checkpoint, wrong)
        assert any("was trained on" in m for m in messages + rep["notes"]), messages
