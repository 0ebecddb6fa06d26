"""Fokker–Planck solver: exactness, convergence tables, boundaries, killing, MPI."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI
from bridgesolve.studies import fitted_order, order_table

# Every test here asserts rank-independent (allreduced) quantities: all run under MPI too.
pytestmark = pytest.mark.mpi

MIX1 = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])
MIX2 = bs.GaussianMixture(
    [0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
    [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]],
)
MIX3 = bs.GaussianMixture([0.5, 0.5], [[-1.0, 0.0, 0.5], [1.0, 0.5, -0.5]], [0.8, 1.0])


def _solve(dom, proc, grid, mix, *, degree=1, comm_check=False, **kw):
    prob = bs.Problem(dom, proc, grid, degree=degree, **kw)
    return bs.solve_fokker_planck(prob, mix, progress=False)


def test_constant_density_is_exact_steady_state_of_pure_diffusion():
    # A constant lies in every Lagrange space and is a discrete steady state of the
    # reflecting problem without drift: it must come back to round-off.
    dom = bs.Domain.box([0, 0], [2, 1], (6, 5))
    prob = bs.Problem(dom, bs.Brownian(0.8), bs.TimeGrid.uniform(1.0, 7), degree=2)
    p = bs.solve_fokker_planck(prob, lambda x: np.full(x.shape[0], 0.5), progress=False)
    assert np.max(np.abs(p.values - 0.5)) < 1e-12
    assert p.info["factorizations"] == 1


def test_stationary_gaussian_of_ou_stays_put_to_discretization_error():
    proc = bs.OU(theta=1.0, sigma=math.sqrt(2.0))
    gauss = bs.GaussianMixture([1.0], [[0.0]], [1.0])
    errs = []
    for n in (40, 80):
        p = _solve(bs.Domain.interval(-8, 8, n), proc, bs.TimeGrid.uniform(2.0, 20), gauss,
                   degree=2)
        errs.append(p.error(gauss, 2.0))
    assert errs[1] < errs[0] / 6, errs


# (dimension, process, degree, cells ladder, domain half-width, steps, minimal order)
SPACE_CASES = [
    ("1d-OU-P1", 1, bs.OU(), 1, (40, 80, 160), 7, 200, 1.9),
    ("1d-OU-P2", 1, bs.OU(), 2, (40, 80, 160), 7, 400, 2.8),
    ("1d-VP-P1", 1, bs.VP(), 1, (40, 80, 160), 7, 200, 1.9),
    ("1d-VP-P2", 1, bs.VP(), 2, (40, 80, 160), 7, 400, 2.8),
    ("1d-VE-P1", 1, bs.VE(sigma_max=1.0), 1, (40, 80, 160), 8, 200, 1.9),
    ("1d-VE-P2", 1, bs.VE(sigma_max=1.0), 2, (40, 80, 160), 8, 400, 2.8),
    ("1d-SubVP-P2", 1, bs.SubVP(), 2, (40, 80, 160), 7, 400, 2.8),
    ("2d-OU-P1", 2, bs.OU(), 1, (16, 32, 64), 6, 100, 1.9),
    ("2d-OU-P2", 2, bs.OU(), 2, (12, 24, 48), 6, 200, 2.8),
    ("2d-VP-P1", 2, bs.VP(), 1, (16, 32, 64), 6, 100, 1.9),
    ("2d-VP-P2", 2, bs.VP(), 2, (12, 24, 48), 6, 200, 2.8),
    ("2d-VE-P1", 2, bs.VE(sigma_max=1.0), 1, (32, 64, 128), 7, 100, 1.9),
    ("2d-VE-P2", 2, bs.VE(sigma_max=1.0), 2, (12, 24, 48), 7, 200, 2.8),
]


@pytest.mark.parametrize(
    "dim, proc, degree, ladder, half, steps, min_order",
    [pytest.param(*c[1:], id=c[0]) for c in SPACE_CASES],
)
def test_space_convergence_against_exact_mixture(dim, proc, degree, ladder, half, steps,
                                                 min_order):
    mix = MIX1 if dim == 1 else MIX2
    exact = mix.evolve(proc, 1.0)
    grid = bs.TimeGrid.clock(proc.clock, 1.0, steps)
    hs, errs = [], []
    for n in ladder:
        dom = bs.Domain.box([-half] * dim, [half] * dim, [n] * dim)
        p = _solve(dom, proc, grid, mix, degree=degree)
        hs.append(2 * half / n)
        errs.append(p.error(exact, 1.0))
        assert abs(p.info["mass"][-1] - p.info["mass"][0]) < 1e-10
        # Separable processes share one operator on a clock grid; SubVP's differ per step.
        assert p.info["factorizations"] == (1 if proc.separable else steps)
    order = fitted_order(hs, errs)
    assert order >= min_order, f"observed order {order:.3f} < {min_order}\n" + order_table(
        hs, errs)


# ~1e-5 of the initial mass lies outside [-4, 4]^3; OU's flux at the wall is tiny, and the
# order below shows it does not pollute the error at these resolutions.
@pytest.mark.filterwarnings("ignore:the initial density has mass")
def test_space_convergence_3d_p2():
    # Tetrahedra, OU to T = 1. (P1 in 3D is still pre-asymptotic at h = 0.25, order 1.88,
    # where meshes stop being cheap; P2 reaches its asymptotic order on affordable ladders.)
    proc, T = bs.OU(), 1.0
    exact = MIX3.evolve(proc, T)
    grid = bs.TimeGrid.uniform(T, 40)
    hs, errs = [], []
    for n in (6, 12, 18):
        p = _solve(bs.Domain.box([-4] * 3, [4] * 3, [n] * 3), proc, grid, MIX3, degree=2)
        hs.append(8 / n)
        errs.append(p.error(exact, T, degree_raise=1))
        assert abs(p.info["mass"][-1] - p.info["mass"][0]) < 1e-10
    order = fitted_order(hs, errs)
    assert order >= 2.8, f"observed order {order:.3f}\n" + order_table(hs, errs)


def _vp_grid(n: int, spacing: str) -> bs.TimeGrid:
    proc = bs.VP()
    return (bs.TimeGrid.clock(proc.clock, 1.0, n) if spacing == "clock"
            else bs.TimeGrid.uniform(1.0, n))


_TIME_DOMAIN = {}


@functools.cache
def _time_reference(spacing: str, ref_steps: int):
    _TIME_DOMAIN.setdefault("dom", bs.Domain.interval(-7, 7, 200))
    return _solve(_TIME_DOMAIN["dom"], bs.VP(), _vp_grid(ref_steps, spacing), MIX1, degree=2)


def _time_error(steps: int, *, scheme: str, spacing: str, ref_steps: int = 5120) -> float:
    """L2 distance at T to a Crank–Nicolson run with ``ref_steps`` on the same mesh, which
    isolates the time-discretization error from the spatial one."""
    ref = _time_reference(spacing, ref_steps)
    p = _solve(_TIME_DOMAIN["dom"], bs.VP(), _vp_grid(steps, spacing), MIX1, degree=2,
               scheme=scheme)
    return p.error(ref.at(1.0), 1.0, degree_raise=0)


@pytest.mark.parametrize("scheme, expected, steps", [
    ("crank-nicolson", 2.0, (20, 40, 80, 160)),
    # Backward Euler's error is pre-asymptotic (orders 1.55, 1.31, ...) on coarser ladders.
    ("backward-euler", 1.0, (160, 320, 640)),
])
def test_time_convergence(scheme, expected, steps):
    errs = [_time_error(n, scheme=scheme, spacing="clock") for n in steps]
    dts = [1.0 / n for n in steps]
    order = fitted_order(dts, errs)
    assert abs(order - expected) < 0.15, f"{scheme}: order {order:.3f}\n" + order_table(
        dts, errs, "dt")


def test_uniform_grid_of_vp_still_second_order_with_per_step_operators():
    # On a grid uniform in t, VP's step operators all differ: one factorization per step,
    # and the exact step integrals of β keep Crank–Nicolson second order.
    proc = bs.VP()
    p = _solve(bs.Domain.interval(-7, 7, 50), proc, bs.TimeGrid.uniform(1.0, 30), MIX1)
    assert p.info["factorizations"] == 30
    steps = (20, 40, 80)
    errs = [_time_error(n, scheme="crank-nicolson", spacing="uniform", ref_steps=1280)
            for n in steps]
    order = fitted_order([1 / n for n in steps], errs)
    assert abs(order - 2.0) < 0.15, order_table([1 / n for n in steps], errs, "dt")


def test_absorbing_boundary_heat_kernel_mode():
    # On [0, L] with p = 0 at both ends, sin(πx/L) decays as exp(-D (π/L)² t).
    L, sigma, T = 2.0, 0.6, 1.0
    D = 0.5 * sigma**2
    decay = math.exp(-D * (math.pi / L) ** 2 * T)
    errs = []
    for n in (16, 32, 64):
        prob = bs.Problem(bs.Domain.interval(0, L, n), bs.Brownian(sigma),
                          bs.TimeGrid.uniform(T, 200), degree=2, boundary="absorbing")
        p = bs.solve_fokker_planck(prob, lambda x: np.sin(math.pi * x[:, 0] / L),
                                   progress=False)
        assert p.info["mass_outside_initial"] is None  # a plain callable: total mass unknown
        errs.append(p.error(lambda x: decay * np.sin(math.pi * x[:, 0] / L), T))
        # Mass leaves through the boundary: ∫ p = (2L/π) decay.
        assert abs(p.info["mass"][-1] - 2 * L / math.pi * decay) < 5 * errs[-1]
    order = fitted_order([L / 16, L / 32, L / 64], errs)
    assert order >= 2.8, order_table([L / 16, L / 32, L / 64], errs)


def test_constant_killing_scales_solution_by_exponential():
    proc, V, T, steps = bs.OU(), -0.7, 1.0, 100
    prob = bs.Problem(bs.Domain.interval(-7, 7, 160), proc, bs.TimeGrid.uniform(T, steps),
                      degree=2)
    p = bs.solve_fokker_planck(prob, MIX1, killing=V, progress=False)
    exact = MIX1.evolve(proc, T)
    err = p.error(lambda x: math.exp(V * T) * exact.pdf(x), T)
    assert err < 1e-5
    # Testing with v = 1: the discrete mass follows Crank–Nicolson's amplification factor
    # exactly, and exp(V t) to O((V dt)^3) per step.
    dt = T / steps
    factor = (1 + 0.5 * V * dt) / (1 - 0.5 * V * dt)
    mass = p.info["mass"]
    assert np.allclose(mass, mass[0] * factor ** np.arange(steps + 1), rtol=1e-12)
    assert np.allclose(mass, mass[0] * np.exp(V * p.times), rtol=1e-5)


def test_time_dependent_killing_is_reassembled_and_exact_in_mass():
    # V(x, t) = c t creates mass exp(c t²/2); its matrix is re-assembled every step.
    c, steps = 0.8, 50
    prob = bs.Problem(bs.Domain.interval(-7, 7, 60), bs.OU(), bs.TimeGrid.uniform(1.0, steps))
    p = bs.solve_fokker_planck(prob, MIX1, killing=lambda x, t: np.full(x.shape[0], c * t),
                               progress=False)
    mass = p.info["mass"]
    assert np.allclose(mass, mass[0] * np.exp(0.5 * c * p.times**2), rtol=1e-4)
    assert p.info["assemblies"] >= 2 + steps


def test_custom_process_matches_ou():
    import ufl

    ou = bs.OU(theta=1.0, sigma=1.0)
    custom = bs.Custom(lambda x: -x, g=1.0, drift_numpy=lambda x: -x)
    dom = bs.Domain.box([-5, -5], [5, 5], (16, 16))
    grid = bs.TimeGrid.uniform(1.0, 20)
    a = _solve(dom, ou, grid, MIX2)
    b = _solve(dom, custom, grid, MIX2)
    assert np.max(np.abs(a.values - b.values)) < 1e-12
    assert isinstance(custom.drift_shape_ufl(ufl.SpatialCoordinate(dom.mesh)), ufl.core.expr.Expr)


def test_mass_outside_domain_is_reported_and_warned():
    far = bs.GaussianMixture([1.0], [[3.0]], [1.0])
    prob = bs.Problem(bs.Domain.interval(-4, 4, 40), bs.OU(), bs.TimeGrid.uniform(0.1, 2))
    with pytest.warns(RuntimeWarning, match="outside the domain"):
        p = bs.solve_fokker_planck(prob, far, progress=False)
    assert p.info["mass_outside_initial"] == pytest.approx(1 - 0.5 * math.erfc(-1 / math.sqrt(2))
                                                           + 0.5 * math.erfc(7 / math.sqrt(2)),
                                                           rel=1e-6)


def test_at_and_evaluate(mixture2d):
    proc = bs.OU()
    dom = bs.Domain.box([-6, -6], [6, 6], (32, 32))
    p = _solve(dom, proc, bs.TimeGrid.uniform(1.0, 50), mixture2d, degree=2)
    u = p.at(0.5)
    assert u.x.array.shape == p.values[25].shape
    with pytest.raises(bs.BridgesolveInputError, match="not a grid time"):
        p.at(0.505)
    with pytest.raises(bs.BridgesolveInputError, match="outside the time grid"):
        p.evaluate([[0.0, 0.0]], 1.5)
    pts = np.array([[0.0, 0.0], [1.5, 1.0], [-2.0, 0.3], [7.0, 0.0]])
    for t in (0.5, 0.73):
        val = p.evaluate(pts, t)
        assert np.isnan(val[-1])
        ref = mixture2d.evolve(proc, t).pdf(pts[:-1])
        assert np.allclose(val[:-1], ref, rtol=2e-3, atol=1e-4), (val, ref)


def test_bad_problem_inputs():
    dom = bs.Domain.interval(0, 1, 4)
    grid = bs.TimeGrid.uniform(1.0, 2)
    with pytest.raises(bs.BridgesolveInputError, match="boundary = 'open'"):
        bs.Problem(dom, bs.OU(), grid, boundary="open")
    with pytest.raises(bs.BridgesolveInputError, match="scheme"):
        bs.Problem(dom, bs.OU(), grid, scheme="rk4")
    with pytest.raises(bs.BridgesolveInputError, match="degree = 0"):
        bs.Problem(dom, bs.OU(), grid, degree=0)
    prob = bs.Problem(dom, bs.OU(), grid)
    with pytest.raises(bs.BridgesolveInputError, match="2D but the domain is 1D"):
        bs.solve_fokker_planck(prob, MIX2, progress=False)


@pytest.mark.parametrize("degree", [1, 2])
def test_distributed_solve_equals_serial_solve(degree):
    """The same problem on COMM_WORLD and on COMM_SELF: L2 errors, masses and point values
    agree to 1e-9 (relative). Under ``mpiexec -n 2`` this compares 2 ranks with 1."""
    proc = bs.VP()
    grid = bs.TimeGrid.clock(proc.clock, 1.0, 40)
    exact = MIX2.evolve(proc, 1.0)
    rng = np.random.default_rng(MPI.COMM_WORLD.rank)
    pts = rng.uniform(-4, 4, size=(7 + MPI.COMM_WORLD.rank, 2))  # rank-dependent layout
    results = []
    for comm in (MPI.COMM_WORLD, MPI.COMM_SELF):
        dom = bs.Domain.box([-5, -5], [5, 5], (24, 24), comm=comm)
        p = _solve(dom, proc, grid, MIX2, degree=degree)
        results.append((p.error(exact, 1.0), p.error(exact, 0.5 * grid.T if 0.5 * grid.T in
                        grid.times else grid.times[20]), p.info["mass"], p.evaluate(pts, 0.77)))
    (e1, f1, m1, v1), (e2, f2, m2, v2) = results
    assert e1 == pytest.approx(e2, rel=1e-9)
    assert f1 == pytest.approx(f2, rel=1e-9)
    assert np.allclose(m1, m2, rtol=1e-9, atol=0)
    assert np.allclose(v1, v2, rtol=1e-9, atol=1e-14)
