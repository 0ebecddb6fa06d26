"""Backward Kolmogorov with Feynman–Kac killing: duality, closed forms, Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI, fem, ufl
from bridgesolve.densities import ScaledMixture
from bridgesolve.studies import fitted_order, order_table

pytestmark = pytest.mark.mpi  # rank-independent assertions only

PHI1 = bs.GaussianMixture([0.5, 0.5], [[0.5], [-1.0]], [0.3, 0.2])
PHI2 = bs.GaussianMixture([0.6, 0.4], [[0.5, 0.0], [-1.0, 0.5]], [0.4, 0.3])
RHO1 = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])


def _pairing(p, phi, t) -> float:
    form = fem.form(p.at(t) * phi.at(t) * ufl.dx)
    return p.comm.allreduce(fem.assemble_scalar(form), MPI.SUM)


@pytest.mark.parametrize("killing", [None, -0.6, lambda x: -0.5 * np.sum(x**2, axis=1),
                                     lambda x, t: -(0.3 + t) * np.sum(x**2, axis=1)],
                         ids=["none", "constant", "V(x)", "V(x,t)"])
@pytest.mark.parametrize("scheme", ["crank-nicolson", "backward-euler"])
def test_duality_pairing_is_constant_in_time(killing, scheme):
    """∫ φ p dx is invariant. The θ-scheme pair (forward with A, backward with Aᵀ) keeps
    ⟨φⁿ, M pⁿ⟩ exactly: with B = M - (1-θ)A, C = M + θA one has B C⁻¹ M = M C⁻¹ B."""
    prob = bs.Problem(bs.Domain.box([-6, -6], [6, 6], (20, 20)), bs.OU(),
                      bs.TimeGrid.uniform(1.0, 40), degree=2, scheme=scheme)
    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]], [0.4, 0.3])
    p = bs.solve_fokker_planck(prob, mix, killing=killing, progress=False)
    phi = bs.solve_kolmogorov(prob, PHI2, killing=killing, progress=False)
    vals = np.array([_pairing(p, phi, t) for t in prob.grid.times[::8]])
    assert np.ptp(vals) / abs(vals.mean()) < 1e-10, vals


CASES = [
    # (id, process, degree, ladder, killing V, minimal order)
    ("1d-OU-P1", bs.OU(), 1, (40, 80, 160), None, 1.9),
    ("1d-OU-P2-V", bs.OU(), 2, (20, 40, 80), -0.7, 2.8),
    ("1d-VP-P2", bs.VP(), 2, (20, 40, 80), None, 2.8),
    ("1d-VE-P1-V", bs.VE(sigma_max=1.0), 1, (40, 80, 160), 0.4, 1.9),
]


@pytest.mark.parametrize("proc, degree, ladder, V, min_order",
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_closed_form_convergence_1d(proc, degree, ladder, V, min_order):
    """φ(x, 0) = exp(V T) E[φ_T(X_T) | X_0 = x] for a Gaussian-mixture φ_T."""
    T = 0.3 if isinstance(proc, bs.VP) else 0.5  # keep φ(·, 0) well inside [-8, 8]
    exact = PHI1.backward_expectation(proc, 0.0, T)
    factor = math.exp((V or 0.0) * T)
    grid = bs.TimeGrid.clock(proc.clock, T, 400)
    hs, errs = [], []
    for n in ladder:
        prob = bs.Problem(bs.Domain.interval(-8, 8, n), proc, grid, degree=degree)
        phi = bs.solve_kolmogorov(prob, PHI1, killing=V, progress=False)
        hs.append(16 / n)
        errs.append(phi.error(lambda x: factor * exact.pdf(x), 0.0))
    order = fitted_order(hs, errs)
    assert order >= min_order, f"order {order:.3f}\n" + order_table(hs, errs)


def test_closed_form_convergence_2d():
    proc, T = bs.OU(), 0.5
    exact = PHI2.backward_expectation(proc, 0.0, T)
    grid = bs.TimeGrid.uniform(T, 100)
    hs, errs = [], []
    for n in (12, 24, 48):
        prob = bs.Problem(bs.Domain.box([-7, -7], [7, 7], (n, n)), proc, grid, degree=2)
        phi = bs.solve_kolmogorov(prob, PHI2, progress=False)
        hs.append(14 / n)
        errs.append(phi.error(exact, 0.0))
    order = fitted_order(hs, errs)
    assert order >= 2.8, f"order {order:.3f}\n" + order_table(hs, errs)


def test_absorbing_boundary_sine_mode():
    L, sigma, T = 2.0, 0.8, 1.0
    decay = math.exp(-0.5 * sigma**2 * (math.pi / L) ** 2 * T)
    prob = bs.Problem(bs.Domain.interval(0, L, 64), bs.Brownian(sigma),
                      bs.TimeGrid.uniform(T, 200), degree=2, boundary="absorbing")
    phi = bs.solve_kolmogorov(prob, lambda x: np.sin(math.pi * x[:, 0] / L), progress=False)
    assert phi.error(lambda x: decay * np.sin(math.pi * x[:, 0] / L), 0.0) < 1e-6


def _feynman_kac_mc(x0, proc, T, phi_T, V, *, n_paths=100_000, steps=500, seed=0):
    """E[exp(∫ V(X_s) ds) φ_T(X_T) | X_0 = x0] by exact OU transitions and the trapezoid
    rule; returns the estimate and the half-width of its 99% confidence interval."""
    rng = np.random.default_rng(seed)
    dt = T / steps
    a, var = proc.transition(dt)
    x = np.tile(np.asarray(x0, dtype=float), (n_paths, 1))
    integral = 0.5 * V(x) * dt
    for _ in range(steps):
        x = a * x + math.sqrt(var) * rng.standard_normal(x.shape)
        integral += V(x) * dt
    integral -= 0.5 * V(x) * dt
    samples = np.exp(integral) * phi_T(x)
    return samples.mean(), 2.576 * samples.std(ddof=1) / math.sqrt(n_paths)


@pytest.mark.parametrize("dim, cells", [(1, 160), (2, 40)])
def test_feynman_kac_against_monte_carlo(dim, cells):
    """Non-constant killing V = -|x|²/2 has no closed form here: the PDE value must lie in
    the 99% confidence interval of a seeded Monte Carlo estimate with 1e5 paths."""
    proc, T = bs.OU(theta=1.0, sigma=1.0), 0.5
    bump = ScaledMixture.gaussian_bump([0.5] + [0.0] * (dim - 1), 0.7)

    def V(x):
        return -0.5 * np.sum(x**2, axis=1)

    prob = bs.Problem(bs.Domain.box([-6] * dim, [6] * dim, [cells] * dim), proc,
                      bs.TimeGrid.uniform(T, 100), degree=2)
    phi = bs.solve_kolmogorov(prob, bump, killing=V, progress=False)
    points = [[0.0] * dim, [0.8] + [-0.4] * (dim - 1), [-1.2] + [0.3] * (dim - 1)]
    pde = phi.evaluate(np.array(points), 0.0)
    for k, x0 in enumerate(points):
        mean, half = _feynman_kac_mc(x0, proc, T, bump.pdf, V, seed=k)
        assert abs(pde[k] - mean) < half, (x0, pde[k], mean, half)
