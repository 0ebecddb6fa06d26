"""Helpers of the learn tests: exact reference bundles on tensor Gauss grids."""

from __future__ import annotations

import numpy as np

import bridgesolve as bs
from bridgesolve.reference import ReferenceBundle


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
