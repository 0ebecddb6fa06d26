"""Discontinuous data on meshes that cut their jumps: the exact mass of box mixtures and
images inside a box (closed form, also after noise), the exact cut-cell right-hand side of
the L2 projection (mass to round-off on misaligned meshes), and no false "mass outside"
warnings. Serial and under ``mpiexec -n 2`` (rank-independent numbers only)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve import densities as D
from bridgesolve.densities.box_mass import jump_grid, mass_in_box
from bridgesolve.pde.fokker_planck import initial_function

pytestmark = pytest.mark.mpi

IMAGE = D.ImageDensity(np.random.default_rng(1).random((8, 8)), [-2, -2], [2, 2])


def _tensor_rule(a: float, b: float, breaks, n: int = 20, sub: int = 4):
    """Gauss–Legendre on [a, b] split at ``breaks`` (and ``sub`` more times)."""
    xg, wg = np.polynomial.legendre.leggauss(n)
    cuts = np.unique(np.concatenate([[a, b], [t for t in breaks if a < t < b]]))
    X, W = [], []
    for p, q in zip(cuts[:-1], cuts[1:], strict=True):
        edges = np.linspace(p, q, sub + 1)
        for u, v in zip(edges[:-1], edges[1:], strict=True):
            X.append(0.5 * (u + v) + 0.5 * (v - u) * xg)
            W.append(0.5 * (v - u) * wg)
    return np.concatenate(X), np.concatenate(W)


@pytest.mark.parametrize("rho", [D.checkerboard(), IMAGE], ids=["checkerboard", "image"])
@pytest.mark.parametrize("t", [0.0, 0.05, 0.5])
def test_mass_in_box_matches_a_fine_quadrature(rho, t):
    law = rho if t == 0.0 else rho.evolve(bs.VP(), t)
    lo, hi = np.array([-1.7, -2.2]), np.array([1.3, 0.9])
    breaks = np.linspace(-2, 2, 9) * (1.0 if t == 0 else law.state.a)
    x, wx = _tensor_rule(lo[0], hi[0], breaks)
    y, wy = _tensor_rule(lo[1], hi[1], breaks)
    X, Y = np.meshgrid(x, y, indexing="ij")
    p = law.pdf(np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    assert mass_in_box(law, lo, hi) == pytest.approx(wx @ p @ wy, abs=1e-13)
    assert mass_in_box(law, [-50, -50], [50, 50]) == pytest.approx(1.0, abs=1e-14)
    assert mass_in_box(D.two_moons(), lo, hi) is None


CASES = {
    "checkerboard 32² P1": (lambda: bs.Domain.box([-5, -5], [5, 5], [32, 32]), 1,
                            D.checkerboard()),
    "checkerboard 32² P2": (lambda: bs.Domain.box([-5, -5], [5, 5], [32, 32]), 2,
                            D.checkerboard()),
    "image 32² P2": (lambda: bs.Domain.box([-5, -5], [5, 5], [32, 32]), 2, IMAGE),
    "image cut by the wall": (lambda: bs.Domain.box([-1.3, -5], [5, 1.7], [23, 29]), 2,
                              IMAGE),
    "image 1D": (lambda: bs.Domain.interval(-3, 3, 17), 2,
                 D.ImageDensity(np.random.default_rng(2).random(7), [-2], [2.1])),
    "boxes 3D": (lambda: bs.Domain.box([-3, -3, -3], [3, 3, 3], [5, 5, 5]), 1,
                 D.BoxMixture([1, 2], [[-1, -1, -1], [0.3, -2, 0.1]],
                              [[0.5, 1, 0.2], [1.9, 0.7, 1.4]])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_projection_mass_is_exact_on_misaligned_meshes(case):
    make, degree, rho = CASES[case]
    dom = make()
    problem = bs.Problem(dom, bs.VP(), bs.TimeGrid.uniform(0.2, 2), degree=degree)
    exact = mass_in_box(rho, dom.description["lower"], dom.description["upper"])
    report: dict = {}
    initial_function(problem, rho, "u", nonnegative=True, report=report)
    proj = report["initial_projection"]
    assert proj["rhs"] == "exact on cut cells"
    assert proj["mass_fe"] == pytest.approx(exact, abs=1e-10)
    assert proj["mass_data"] == pytest.approx(exact, abs=1e-12)
    assert problem.mass_inside(rho) == pytest.approx(exact, abs=1e-14)
    assert 1e-3 < proj["l1"] < 2.0 and proj["min"] < 0.0  # the projection's own error


@pytest.mark.parametrize("dim", [2, 3])
def test_cut_pieces_tile_the_cells(dim):
    from bridgesolve.pde.cut_cells import cut_quadrature

    dom = bs.Domain.box([-1.1] * dim, [1.3] * dim, [5] * dim)
    edges = [np.linspace(-0.77, 0.9, 6)] * dim
    ncells = dom.mesh.topology.index_map(dim).size_local
    per_cell = np.zeros(ncells)
    values_seen = 0.0
    for cells, X, w, values in cut_quadrature(dom.mesh, edges, lambda p: np.ones(len(p)), 4):
        np.add.at(per_cell, cells, w)
        values_seen += float(w @ values)
        assert np.all(X >= -1e-12) and np.all(X.sum(axis=1) <= 1 + 1e-12)  # inside the cell
    vertices = dom.mesh.geometry.x[dom.mesh.geometry.dofmaps[0][:ncells]][:, :, :dim]
    volume = np.abs(np.linalg.det(vertices[:, 1:] - vertices[:, :1]))  # d! |cell|
    from math import factorial

    assert np.allclose(per_cell * factorial(dim), volume, rtol=0, atol=1e-13)
    assert values_seen == pytest.approx(per_cell.sum(), abs=1e-13)


def test_exact_right_hand_side_equals_quadrature_on_an_aligned_mesh():
    from bridgesolve.pde.projection import l2_project

    problem = bs.Problem(bs.Domain.box([-6, -6], [6, 6], [24, 24]), bs.VP(),
                         bs.TimeGrid.uniform(0.2, 2), degree=2)
    rho = D.checkerboard()
    exact = l2_project(problem, rho.pdf, "u", edges=jump_grid(rho))
    quadrature = l2_project(problem, rho.pdf, "u")
    assert np.allclose(exact.x.array, quadrature.x.array, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rho", [D.checkerboard(), IMAGE], ids=["checkerboard", "image"])
def test_misaligned_fp_solve_keeps_the_exact_mass_without_false_warnings(rho):
    problem = bs.Problem(bs.Domain.box([-5, -5], [5, 5], [32, 32]), bs.VP(),
                         bs.TimeGrid.uniform(0.2, 6), degree=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        field = bs.solve_fokker_planck(problem, rho, progress=False)
    messages = [str(w.message) for w in caught] + field.info["warnings"]
    assert not [m for m in messages if "outside the domain" in m or "does not resolve the "
                "initial density" in m], messages
    assert abs(field.info["mass_outside_initial"]) < 1e-14
    assert np.allclose(field.info["mass"], 1.0, rtol=0, atol=1e-10)
    # after the noise: the closed-form mass inside, still exact
    law = rho.evolve(bs.VP(), 0.2)
    assert problem.mass_inside(law) == pytest.approx(
        mass_in_box(law, [-5, -5], [5, 5]), abs=0)
