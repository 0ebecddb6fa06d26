"""Fixtures of the learn tests: CPU threads, an analytic NumPy reference bundle."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.reference import ReferenceBundle


@pytest.fixture(autouse=True)
def _few_threads():
    """The machine is shared: torch on 1 thread (restored afterwards)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tensor_gauss(lower: float, upper: float, cells: int, order: int, dim: int):
    """Composite Gauss–Legendre points ``(N, dim)`` and weights of ``[lower, upper]^dim``."""
    x, wq = np.polynomial.legendre.leggauss(order)
    h = (upper - lower) / cells
    left = lower + h * np.arange(cells)
    nodes = (left[:, None] + 0.5 * h * (x[None, :] + 1.0)).ravel()
    weights = np.tile(0.5 * h * wq, cells)
    grids = np.meshgrid(*([nodes] * dim), indexing="ij")
    wgrids = np.meshgrid(*([weights] * dim), indexing="ij")
    pts = np.stack([g.ravel() for g in grids], axis=1)
    w = np.prod(np.stack([g.ravel() for g in wgrids], axis=1), axis=1)
    return pts, w


def analytic_bundle(mixture: bs.GaussianMixture, process: bs.Process, *, T: float = 1.0,
                    nt: int = 40, box: float = 6.0, cells: int = 30, order: int = 4):
    """A reference bundle with the documented schema whose fields are exact: the mixture
    pushed through the linear SDE, on a tensor Gauss grid (no discretization error in the
    values; the quadrature itself is spectrally accurate)."""
    pts, w = tensor_gauss(-box, box, cells, order, mixture.dim)
    times = np.linspace(0.0, T, nt + 1)
    dens, logd, score = [], [], []
    for t in times:
        m = mixture.evolve(process, float(t))
        logd.append(m.log_pdf(pts))
        dens.append(np.exp(logd[-1]))
        score.append(m.score(pts))
    meta = {"kind": "diffusion", "process": process.describe(), "data": mixture.describe(),
            "domain": {"type": "box", "lower": [-box] * mixture.dim, "upper": [box] * mixture.dim},
            "discretization": {"analytic": True, "gauss_order": order, "cells": cells},
            "versions": {}}
    return ReferenceBundle(points=pts, weights=w, times=times, density=np.array(dens),
                           log_density=np.array(logd), score=np.array(score), metadata=meta)


@pytest.fixture
def mixture2d_learn():
    return bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
                              [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])


@pytest.fixture(scope="module")
def vp_bundle_2d():
    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
                             [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])
    return analytic_bundle(mix, bs.VP(), nt=40, box=6.0, cells=30, order=4)
