"""The evolved families' scores against Tweedie's identity, by Monte Carlo through the exact
transition (independently of the families' log p and its finite differences).

For ``x_t = a x_0 + b + √v z``, ``E[a x_0 + b | x_t] = x_t + v ∇log p_t(x_t)``, so for every
test function ``f``

    E[(a x_0 + b - x_t - v s(x_t)) f(x_t)] = 0,

with ``(a, b, v)`` from ``process.transition`` and ``x_0`` from the data law's sampler. The
probes ``f`` are 1, Gaussian bumps of the kernel's width at points of the cloud, and the
score itself (``f = s``, summed over the coordinates); each mean must be within 5 standard
errors of 0 (the pairs give the SE). A score of the wrong time, or 5 % too large, is
rejected by the same check (its power)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve import densities as D

VP = bs.VP()
OU = bs.OU(theta=0.7, sigma=1.2, mean=0.5)
FAMILIES = {"two_moons": lambda: D.two_moons(noise=0.08), "checkerboard": D.checkerboard}
N = 100_000


def _pairs(rho, proc, t, rng):
    a, v = proc.transition(t)
    b = (1.0 - a) * (proc.mean if isinstance(proc, bs.OU) else 0.0)
    x0 = rho.sample(N, rng)
    xt = a * x0 + b + math.sqrt(v) * rng.standard_normal(x0.shape)
    return a * x0 + b, xt, v


def _probes(xt, width, rng):
    """(N, F): 1 and 24 Gaussian bumps of ``width`` at cloud points."""
    centres = xt[rng.choice(xt.shape[0], 24, replace=False)]
    r2 = ((xt[:, None, :] - centres[None]) ** 2).sum(axis=2)
    return np.hstack([np.ones((xt.shape[0], 1)), np.exp(-0.5 * r2 / width**2)])


def _z(denoised, xt, v, score, f):
    """``|mean| / SE`` of ``(denoised - x_t - v s) f`` per probe and coordinate, and of
    ``(denoised - x_t - v s)·s`` (the score as its own probe: the direction of its error)."""
    r = denoised - xt - v * score
    g = np.hstack([(r[:, None, :] * f[:, :, None]).reshape(xt.shape[0], -1),
                   (r * score).sum(axis=1, keepdims=True)])
    return np.abs(g.mean(axis=0)) / (g.std(axis=0) / math.sqrt(xt.shape[0]))


@pytest.mark.parametrize("proc, t", [(VP, 0.05), (VP, 0.4), (OU, 0.3)],
                         ids=["VP 0.05", "VP 0.4", "OU 0.3"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_score_satisfies_tweedie_identity_by_monte_carlo(family, proc, t):
    rng = np.random.default_rng(21)
    rho = FAMILIES[family]()
    denoised, xt, v = _pairs(rho, proc, t, rng)
    law = rho.evolve(proc, t)
    f = _probes(xt, math.sqrt(v), rng)
    z = _z(denoised, xt, v, law.score(xt), f)
    # measured worst |z|: two moons 2.93, 1.82, 2.21; checkerboard 2.45, 2.54, 2.27
    assert np.all(z < 5.0), f"{family} {t}: worst {z.max():.2f} SE"
    # power: the score of a time 20 % off fails the same check (measured worst |z| 12 ...
    # 101), and so does the right score 2 % too large (8.0 ... 29.5)
    wrong = rho.evolve(proc, 1.2 * t).score(xt)
    assert _z(denoised, xt, v, wrong, f).max() > 8.0
    assert _z(denoised, xt, v, 1.05 * law.score(xt), f).max() > 8.0
