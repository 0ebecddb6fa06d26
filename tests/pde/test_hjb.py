"""HJB (S = log φ) and its forward twin (Ŝ = log φ̂): orders, cross-checks, underflow."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI
from bridgesolve.densities import ScaledMixture
from bridgesolve.pde.hjb import LogEvolution
from bridgesolve.studies import fitted_order, order_table

pytestmark = pytest.mark.mpi  # rank-independent assertions only

PHI1 = bs.GaussianMixture([0.5, 0.5], [[0.5], [-1.0]], [0.3, 0.2])
PHI2 = bs.GaussianMixture([0.6, 0.4], [[0.5, 0.0], [-1.0, 0.5]], [0.4, 0.3])


def inner(radius):
    """Indicator of the interior |x|_∞ ≤ radius: log-errors are measured away from the
    wall layer where the free-space closed form and any bounded-domain solution differ.
    Radii avoid mesh nodes: a jump at a dof coordinate would depend on its round-off."""
    return lambda x: (np.max(np.abs(x), axis=1) <= radius).astype(float)


def _log_of(field, t):
    """log of a linear solution; Crank–Nicolson leaves tiny negative values far in the
    tails (outside the weighted region), clipped here so they do not turn into NaN."""
    u = field.at(t)
    u.x.array[:] = np.log(np.maximum(u.x.array, 1e-300))
    return u


def test_hjb_matches_closed_form_and_log_kolmogorov_1d():
    proc, T = bs.OU(), 0.5
    exact = PHI1.backward_expectation(proc, 0.0, T)
    hs, e_exact, e_linear, iters = [], [], [], []
    for n in (40, 80, 160):
        prob = bs.Problem(bs.Domain.interval(-8, 8, n), proc, bs.TimeGrid.uniform(T, 200))
        S = bs.solve_hjb(prob, PHI1, progress=False)
        phi = bs.solve_kolmogorov(prob, PHI1, progress=False)
        hs.append(16 / n)
        e_exact.append(S.error(exact.log_pdf, 0.0, weight=inner(3.95)))
        e_linear.append(S.error(_log_of(phi, 0.0), 0.0, weight=inner(3.95)))
        iters.append(S.info["newton_iterations"].max())
    for errs in (e_exact, e_linear):
        order = fitted_order(hs, errs)
        assert order >= 1.9, f"P1 order {order:.3f}\n" + order_table(hs, errs)
    assert max(iters) <= 4  # Newton from the previous step converges quadratically


def test_hjb_2d_and_constant_killing():
    proc, T, V = bs.OU(), 0.5, -0.8
    exact = PHI2.backward_expectation(proc, 0.0, T)
    hs, errs = [], []
    for n in (16, 32, 64):
        prob = bs.Problem(bs.Domain.box([-6, -6], [6, 6], (n, n)), proc,
                          bs.TimeGrid.uniform(T, 50))
        S = bs.solve_hjb(prob, PHI2, killing=V, progress=False)
        hs.append(12 / n)
        errs.append(S.error(lambda x: exact.log_pdf(x) + V * T, 0.0, weight=inner(2.95)))
    order = fitted_order(hs, errs)
    assert order >= 1.9, f"order {order:.3f}\n" + order_table(hs, errs)


def test_forward_hjb_is_log_of_fokker_planck():
    proc, T = bs.OU(), 0.5
    rho0 = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])
    exact = rho0.evolve(proc, T)
    hs, e_exact, e_linear = [], [], []
    for n in (40, 80, 160):
        prob = bs.Problem(bs.Domain.interval(-8, 8, n), proc, bs.TimeGrid.uniform(T, 200))
        Sh = bs.solve_hjb_forward(prob, rho0, progress=False)
        p = bs.solve_fokker_planck(prob, rho0, progress=False)
        hs.append(16 / n)
        e_exact.append(Sh.error(exact.log_pdf, T, weight=inner(3.95)))
        e_linear.append(Sh.error(_log_of(p, T), T, weight=inner(3.95)))
    for errs in (e_exact, e_linear):
        order = fitted_order(hs, errs)
        assert order >= 1.9, f"order {order:.3f}\n" + order_table(hs, errs)


def test_hjb_stays_finite_where_phi_underflows():
    """φ_T = exp(-x²/(2·0.02²)) on [-5, 5]: φ spans e^{-31250}; the linear solve returns
    non-positive values where φ > 0 (log φ unusable), HJB stays finite and matches log φ."""
    s, T = 0.02, 1.0
    bump = ScaledMixture.gaussian_bump([0.0], s)
    proc = bs.Brownian(1.0)
    grid = bs.TimeGrid.graded(T, 200, power=3.0, near="end")
    prob = bs.Problem(bs.Domain.interval(-5, 5, 50), proc, grid, degree=2)
    S = bs.solve_hjb(prob, bump, progress=False)
    phi = bs.solve_kolmogorov(prob, bump, progress=False)

    assert np.all(np.isfinite(S.values))
    bad = MPI.COMM_WORLD.allreduce(int(np.sum(phi.values[-10:] <= 0.0)), MPI.SUM)
    assert bad > 0, "expected the linear solve to lose positivity near T"

    worst = 0.0
    for t in grid.times[::10]:
        ex = bump.backward_expectation(proc, t, T)
        # Quadratic in x at every t, so P2 holds it exactly: what remains is time error.
        err = S.error(ex.log_pdf, t, norm="Linf", weight=inner(4.45))
        worst = max(worst, err / abs(ex.log_pdf(np.array([[4.45]]))[0]))
    assert worst < 5e-3, worst


def test_hjb_rejects_absorbing_boundary():
    prob = bs.Problem(bs.Domain.interval(-1, 1, 8), bs.OU(), bs.TimeGrid.uniform(0.1, 2),
                      boundary="absorbing")
    with pytest.raises(bs.BridgesolveInputError, match="reflecting"):
        bs.solve_hjb(prob, PHI1, progress=False)


def test_hjb_distributed_equals_serial():
    proc, T = bs.OU(), 0.5
    out = []
    for comm in (MPI.COMM_WORLD, MPI.COMM_SELF):
        prob = bs.Problem(bs.Domain.box([-6, -6], [6, 6], (16, 16), comm=comm), proc,
                          bs.TimeGrid.uniform(T, 10))
        S = bs.solve_hjb(prob, PHI2, progress=False)
        out.append((S.error(PHI2.backward_expectation(proc, 0.0, T).log_pdf, 0.0,
                            weight=inner(2.95)), S.evaluate([[0.3, -0.2]], 0.0)[0]))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-9)
    assert out[0][1] == pytest.approx(out[1][1], rel=1e-9)
    assert math.isfinite(out[0][0])


def test_newton_divergence_test_is_off():
    """PETSc >= 3.22 reads ``snes_divergence_tolerance = -1`` as PETSC_DETERMINE (1e4), not
    "off": Newton steps from a warm start (tiny first residual) were declared diverged."""
    prob = bs.Problem(bs.Domain.interval(-1, 1, 8), bs.Brownian(0.5),
                      bs.TimeGrid.uniform(0.1, 2))
    for forward in (False, True):
        ev = LogEvolution(prob, forward=forward)
        try:
            assert ev.nl.solver.getDivergenceTolerance() >= 1e300
        finally:
            ev.close()


def _convex_blowup(cells: int, steps: int) -> float:
    """Ŝ_0 = 60 |x - (1, 0)|² at σ = 0.07 on a coarse P2 box (the shape of log φ̂_0 of a
    small-noise bridge, far steeper than the mesh resolves in the corners): the forward
    HJB blows up at the corner (-3.5, -3.5) or next to it. Returns the time it fails at."""
    prob = bs.Problem(bs.Domain.box([-3.5, -3.5], [3.5, 3.5], (cells, cells)),
                      bs.Brownian(0.07), bs.TimeGrid.uniform(1.0, steps), degree=2)
    with pytest.raises(RuntimeError, match="blows up") as info:
        bs.solve_hjb_forward(prob, lambda x: 60.0 * ((x[:, 0] - 1.0) ** 2 + x[:, 1] ** 2),
                             progress=False)
    message = str(info.value)
    where = re.search(r"at x = \(([-0-9.e]+), ([-0-9.e]+)\)", message)
    x, y = float(where.group(1)), float(where.group(2))
    # on the wall, within one cell of that corner (where the l2 retry of failed Newton
    # steps carries the solve on, the maximum moves to the neighbouring wall node)
    assert min(x, y) == -3.5 and max(x, y) <= -3.5 + 7.0 / cells, message
    grew = re.search(r"grew from ([0-9.e+]+) to ([0-9.e+]+)", message)
    assert grew and float(grew.group(2)) > 10 * float(grew.group(1)), message
    return float(re.search(r"t in \[([0-9.]+),", message).group(1))


def test_blowup_of_the_discrete_hjb_is_named_and_no_time_step_passes_it():
    """The Galerkin |∇Ŝ|² term breaks the maximum principle at a corner node where the
    potential is steep: the semi-discrete system blows up (the continuous one cannot: its
    maximum never grows). The failure names it; refining the time step 4x moves the
    blow-up time by < 10 % (a property of the space discretization, not of Newton)."""
    coarse, fine = _convex_blowup(8, 4), _convex_blowup(8, 16)
    assert 0.5 < coarse < 1.0
    assert abs(fine - coarse) < 0.1 * coarse, (coarse, fine)
