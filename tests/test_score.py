"""Scores and drifts on the mesh: exactness, p-weighted convergence, evaluation, MPI."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI, fem
from bridgesolve.quadrature import mesh_quadrature
from bridgesolve.score import drift_field, grad_log, mixture_score, reference_drift
from bridgesolve.studies import fitted_order, order_table

# Every test asserts rank-independent quantities: all run under MPI too.
pytestmark = pytest.mark.mpi

MIX1 = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])
MIX2 = bs.GaussianMixture(
    [0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
    [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]],
)


def _field(dom, fn, grid, *, degree, representation="linear"):
    """A SpaceTimeField whose level n holds the interpolant of ``fn(x, t_n)``."""
    V = fem.functionspace(dom.mesh, ("Lagrange", degree))
    u = fem.Function(V)
    values = np.empty((len(grid), u.x.array.size))
    for n, t in enumerate(grid.times):
        u.interpolate(lambda x, t=t: fn(x[: dom.dim].T, t))
        values[n] = u.x.array
    return bs.SpaceTimeField(V, grid, values, representation=representation)


@pytest.mark.parametrize("dim", [1, 2])
def test_gaussian_density_score_is_exact_in_p2(dim):
    # log of a Gaussian is quadratic: the interpolant of the nodal logs is exact in P2, so
    # the default mode returns the exact score to round-off; the quotient ∇p_h/p_h cannot.
    gauss = bs.GaussianMixture([1.0], [[0.3, -0.2][:dim]], [[0.6, 0.8][:dim]])
    dom = bs.Domain.box([-3] * dim, [3] * dim, [8] * dim)
    grid = bs.TimeGrid.uniform(1.0, 2)
    p = _field(dom, lambda x, t: gauss.pdf(x), grid, degree=2)
    s = grad_log(p)
    err = s.weighted_error(gauss.score, 0.5)
    assert err < 1e-11, err
    quotient = grad_log(p, mode="quotient").weighted_error(gauss.score, 0.5)
    assert quotient > 1e-4, quotient
    # log representation: the gradient of the FE function itself
    logp = _field(dom, lambda x, t: gauss.log_pdf(x), grid, degree=2, representation="log")
    assert grad_log(logp).weighted_error(gauss.score, 1.0) < 1e-11
    pts = np.random.default_rng(MPI.COMM_WORLD.rank).uniform(-2.9, 2.9, (11, dim))
    assert np.allclose(s.evaluate(pts, 0.3), gauss.score(pts), atol=1e-10)


# (id, dim, degree, cells ladder, steps, minimal order): p-weighted L2 error of the score
# of the Fokker–Planck solution against the exact mixture score (OU, t = 0.5).
# 2D P1 is pre-asymptotic on coarser meshes (h = 0.375: error 2.4; P1 Galerkin densities go
# negative at 1e-3 of the peak there), so its ladder starts at 64 cells.
SCORE_CASES = [
    ("1d-P1", 1, 1, (80, 160, 320), 200, 0.95),
    ("1d-P2", 1, 2, (20, 40, 80), 200, 1.9),
    ("2d-P2", 2, 2, (24, 48, 96), 50, 1.9),
]


def _score_ladder(dim, degree, ladder, steps, mode="log"):
    mix = MIX1 if dim == 1 else MIX2
    proc, t = bs.OU(), 0.5
    exact = mix.evolve(proc, t)
    half = 7.0 if dim == 1 else 6.0
    hs, errs = [], []
    for n in ladder:
        dom = bs.Domain.box([-half] * dim, [half] * dim, [n] * dim)
        prob = bs.Problem(dom, proc, bs.TimeGrid.uniform(t, steps), degree=degree)
        p = bs.solve_fokker_planck(prob, mix, progress=False)
        hs.append(2 * half / n)
        errs.append(grad_log(p, mode=mode).weighted_error(exact.score, t, weight=exact.pdf))
    return hs, errs


@pytest.mark.parametrize("dim, degree, ladder, steps, min_order",
                         [pytest.param(*c[1:], id=c[0]) for c in SCORE_CASES])
def test_score_convergence_p_weighted(dim, degree, ladder, steps, min_order):
    hs, errs = _score_ladder(dim, degree, ladder, steps)
    order = fitted_order(hs, errs)
    assert order >= min_order, f"observed order {order:.3f} < {min_order}\n" + order_table(
        hs, errs)


def test_log_mode_beats_quotient_in_1d_p2():
    hs, log_errs = _score_ladder(1, 2, (20, 40), 200)
    _, quot_errs = _score_ladder(1, 2, (20, 40), 200, mode="quotient")
    # measured: 3.0e-3 / 5.9e-4 (log) against 1.2e-2 / 2.7e-3 (quotient)
    assert all(a < 0.5 * b for a, b in zip(log_errs, quot_errs, strict=True)), (log_errs,
                                                                                 quot_errs)


@pytest.mark.slow
def test_score_convergence_2d_p1():
    hs, errs = _score_ladder(2, 1, (64, 128, 256), 20)
    order = fitted_order(hs[1:], errs[1:])
    assert order >= 0.95, order_table(hs, errs)


def test_drift_field_and_quadrature_ordering():
    proc = bs.VP()
    dom = bs.Domain.box([-4, -4], [4, 4], (10, 10))
    grid = bs.TimeGrid.uniform(1.0, 4)
    exact = mixture_score(MIX2, proc)
    logp = _field(dom, lambda x, t: MIX2.evolve(proc, t).log_pdf(x) if t > 0 else
                  MIX2.log_pdf(x), grid, degree=2, representation="log")
    score = grad_log(logp)
    g2 = lambda t: 2.0 * proc.diffusion(t)  # noqa: E731
    drift = drift_field(proc, [(lambda t: -g2(t), score)])
    pts, w, vals = drift.at_quadrature(4)
    qp, qw = mesh_quadrature(dom.mesh, 4)
    assert np.array_equal(pts, qp) and np.array_equal(w, qw)
    assert vals.shape == (5, pts.shape[0], 2)
    _, _, svals = score.at_quadrature(4)
    for n, t in enumerate(grid.times):
        expected = proc.drift(pts, t) - g2(t) * svals[n]
        assert np.allclose(vals[n], expected, atol=1e-12)
    # point evaluation agrees with quadrature evaluation at the quadrature points
    # (interior points of cells: no ambiguity of the discontinuous gradient)
    sub = pts[::7]
    assert np.allclose(drift.evaluate(sub, 0.75), vals[3][::7], atol=1e-10)
    # combinations and the analytic reference drift
    twice = score + score
    assert np.allclose(twice(sub, 0.5), 2 * score(sub, 0.5), atol=1e-12)
    assert np.allclose((twice - score)(sub, 0.5), score(sub, 0.5), atol=1e-12)
    assert np.allclose(reference_drift(proc)(sub, 0.5), proc.drift(sub, 0.5))
    # the P2 interpolant of the exact log-density is close to the exact score
    assert score.weighted_error(lambda x: exact(x, 1.0), 1.0,
                                weight=MIX2.evolve(proc, 1.0).pdf) < 0.05


def test_time_interpolation_is_linear_between_levels():
    dom = bs.Domain.interval(-2, 2, 8)
    grid = bs.TimeGrid.from_times([0.0, 0.4, 1.0])
    # log u = -(1 + t) x²/2 + t x  (P2-exact at every level): ∇ = -(1 + t) x + t
    logu = _field(dom, lambda x, t: -(1 + t) * x[:, 0] ** 2 / 2 + t * x[:, 0], grid,
                  degree=2, representation="log")
    s = grad_log(logu)
    x = np.linspace(-1.9, 1.9, 9)[:, None]
    t, w = 0.7, 0.5  # halfway between 0.4 and 1.0
    expected = (1 - w) * (-(1.4) * x + 0.4) + w * (-2.0 * x + 1.0)
    assert np.allclose(s(x, t), expected, atol=1e-12)
    far = s(np.array([[5.0]]), 0.5)
    assert np.isnan(far).all()


def test_continuous_version_has_no_jumps():
    # ∇ of a P2 field jumps across vertices by the discretization error; .continuous()
    # (nodal interpolation into continuous P1) removes the jumps and stays as accurate.
    dom = bs.Domain.interval(-4, 4, 32)  # vertices at multiples of 0.25
    grid = bs.TimeGrid.uniform(1.0, 1)
    logp = _field(dom, lambda x, t: MIX1.log_pdf(x), grid, degree=2, representation="log")
    s, c = grad_log(logp), grad_log(logp).continuous()
    v = np.array([[-1.0 - 1e-9], [-1.0 + 1e-9], [0.5 - 1e-9], [0.5 + 1e-9]])
    js, jc = np.abs(s(v, 0.0)[::2] - s(v, 0.0)[1::2]), np.abs(c(v, 0.0)[::2] - c(v, 0.0)[1::2])
    assert js.max() > 1e-3 and jc.max() < 1e-7, (js, jc)
    x = np.linspace(-3, 3, 601)[:, None]
    err_c = np.max(np.abs(c(x, 0.0) - MIX1.score(x)))
    err_s = np.max(np.abs(s(x, 0.0) - MIX1.score(x)))
    assert err_c < 2 * err_s, (err_c, err_s)
    assert np.allclose(c.at_quadrature(4)[2], s.at_quadrature(4)[2])


def test_distributed_evaluation_equals_serial():
    proc = bs.OU()
    grid = bs.TimeGrid.uniform(0.5, 10)
    rank = MPI.COMM_WORLD.rank
    pts = np.random.default_rng(rank).uniform(-3, 3, size=(5 + 3 * rank, 2))
    results = []
    for comm in (MPI.COMM_WORLD, MPI.COMM_SELF):
        dom = bs.Domain.box([-5, -5], [5, 5], (16, 16), comm=comm)
        p = bs.solve_fokker_planck(bs.Problem(dom, proc, grid, degree=2), MIX2, progress=False)
        s = grad_log(p)
        exact = MIX2.evolve(proc, 0.5)
        results.append((s.weighted_error(exact.score, 0.5, weight=exact.pdf), s(pts, 0.23)))
    (e1, v1), (e2, v2) = results
    assert e1 == pytest.approx(e2, rel=1e-9)
    assert np.allclose(v1, v2, rtol=1e-9, atol=1e-12)


def test_bad_inputs():
    dom = bs.Domain.interval(-1, 1, 4)
    grid = bs.TimeGrid.uniform(1.0, 2)
    p = _field(dom, lambda x, t: np.ones(x.shape[0]), grid, degree=1)
    with pytest.raises(bs.BridgesolveInputError, match="mode = 'ratio'"):
        grad_log(p, mode="ratio")
    with pytest.raises(bs.BridgesolveInputError, match="expected a SpaceTimeField"):
        grad_log(np.ones(3))
    with pytest.raises(bs.BridgesolveInputError, match="outside the time grid"):
        grad_log(p)(np.zeros((1, 1)), 2.0)
    with pytest.raises(bs.BridgesolveInputError, match="expected a pair"):
        drift_field(bs.OU(), [grad_log(p)])
    with pytest.raises(bs.BridgesolveInputError, match="linear process"):
        mixture_score(MIX1, bs.Custom(lambda x: -x, g=1.0))
