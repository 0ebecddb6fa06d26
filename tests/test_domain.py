"""Domains: constructors, gmsh files and solves on unstructured meshes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bridgesolve as bs


@pytest.mark.mpi
def test_box_interval_and_3d():
    d = bs.Domain.box([-1, -2], [1, 2], (4, 8))
    assert d.dim == 2 and d.num_cells == 64
    lo, hi = d.bounds
    assert np.allclose(lo, [-1, -2]) and np.allclose(hi, [1, 2])
    assert bs.Domain.box([0], [1], 5).dim == 1
    assert bs.Domain.box([0] * 3, [1] * 3, 2).num_cells == 48


def test_disk_and_gmsh_files(mpi_tmp_path, comm):
    disk = bs.Domain.disk(2.0, 0.25)
    lo, hi = disk.bounds
    # A polygon inscribed in the circle: vertices lie on it, within h² / (8 r) of its extent.
    assert abs(hi[0] - 2.0) < 0.01 and abs(lo[0] + 2.0) < 0.01
    geo = bs.Domain.from_gmsh("disk.geo")  # found in meshes/
    assert geo.dim == 2 and abs(geo.bounds[1][0] - 6.0) < 0.01
    # The same model written as .msh and read back.
    if comm.rank == 0:
        import gmsh

        gmsh.initialize(interruptible=False)  # keep Python's SIGINT handler
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.open(str(bs.domain._MESH_DIR / "annulus_sector.geo"))
        gmsh.model.mesh.generate(2)
        gmsh.write(str(mpi_tmp_path / "sector.msh"))
        gmsh.finalize()
    comm.barrier()
    msh = bs.Domain.from_gmsh(mpi_tmp_path / "sector.msh")
    assert msh.dim == 2 and msh.num_cells > 100


@pytest.mark.parametrize("make, match", [
    (lambda: bs.Domain.box([0, 0], [1, 1], (0, 4)), r"cells\[0\] = 0"),
    (lambda: bs.Domain.box([0, 0], [1, 1], (4,)), "expected 2 positive integers"),
    (lambda: bs.Domain.box([0, 1], [1, 1], 4), "lower < upper"),
    (lambda: bs.Domain.interval(1, 0, 4), "a < b"),
    (lambda: bs.Domain.disk(-1, 0.1), "radius = -1"),
    (lambda: bs.Domain.from_gmsh("no/such/mesh.msh"), "does not exist"),
])
def test_invalid_domains(make, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        make()


@pytest.mark.mpi
def test_fokker_planck_on_gmsh_disk_conserves_mass_and_matches_exact():
    proc = bs.OU()
    mix = bs.GaussianMixture([0.5, 0.5], [[-1.0, 0.5], [1.0, -0.5]], [0.5, 0.4])
    prob = bs.Problem(bs.Domain.from_gmsh("disk.geo"), proc, bs.TimeGrid.uniform(1.0, 40),
                      degree=2)
    p = bs.solve_fokker_planck(prob, mix, progress=False)
    assert abs(p.info["mass"][-1] - p.info["mass"][0]) < 1e-10
    # h = 0.4 with P2: the L2 error sits well below the density's scale (max ≈ 0.2).
    assert p.error(mix.evolve(proc, 1.0), 1.0) < 2e-3
    assert p.info["mass_outside_initial"] == pytest.approx(0.0, abs=1e-7)
    assert math.isfinite(p.values.sum())
