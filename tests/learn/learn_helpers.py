"""Helpers of the learn tests: exact reference bundles on tensor Gauss grids."""

from __future__ import annotations

import numpy as np

import bridgesolve as bs
from bridgesolve.learn.validation import mixture_fields
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
        log_p, s = mixture_fields(mixture.evolve(process, float(t)) if t > 0 else mixture, pts)
        logd.append(log_p)
        dens.append(np.exp(log_p))
        score.append(s)
    meta = {"kind": "diffusion", "process": process.describe(), "data": mixture.describe(),
            "domain": {"type": "box", "lower": [-box] * mixture.dim, "upper": [box] * mixture.dim},
            "discretization": {"analytic": True, "gauss_order": order, "cells": cells},
            "versions": {}}
    return ReferenceBundle(points=pts, weights=w, times=times, density=np.array(dens),
                           log_density=np.array(logd), score=np.array(score), metadata=meta)


def exact_score(mixture: bs.GaussianMixture, process: bs.Process, factor: float = 1.0,
                shift=0.0):
    """``factor · ∇log p_t + shift`` of the mixture pushed through the linear process."""
    cache: dict = {}

    def score(x, t):
        if t not in cache:
            cache[t] = mixture.evolve(process, t) if t > 0 else mixture
        return factor * mixture_fields(cache[t], x)[1] + shift

    return score
