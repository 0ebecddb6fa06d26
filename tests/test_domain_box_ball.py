"""meshes/box_ball.geo: the 3D box [-3, 3]³ with a spherical hole (radius 0.8 at (1, 1, 1)),
meshed by gmsh at the size ``h`` the script reads; serially and under ``mpiexec -n 2``."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI, fem, ufl
from bridgesolve.config import ConfigError, validate

BALL_CENTER, BALL_RADIUS = np.array([1.0, 1.0, 1.0]), 0.8
EXACT_VOLUME = 6.0**3 - 4.0 / 3.0 * np.pi * BALL_RADIUS**3


def _volume(domain) -> float:
    one = fem.Constant(domain.mesh, 1.0)
    local = fem.assemble_scalar(fem.form(one * ufl.dx(domain=domain.mesh)))
    return domain.comm.allreduce(local, MPI.SUM)


@pytest.mark.mpi
def test_box_ball_is_3d_with_the_hole_and_its_volume_converges_at_order_2():
    """The polyhedral sphere is inscribed: the meshed volume exceeds the exact one by
    O(h²) (measured gaps 0.67, 0.18 at h = 0.8, 0.4: order 1.93)."""
    gaps = []
    for h in (0.8, 0.4):
        dom = bs.Domain.from_gmsh("box_ball.geo", h=h, comm=MPI.COMM_WORLD)
        assert dom.dim == 3 and dom.mesh.topology.dim == 3
        lo, hi = dom.bounds
        assert np.allclose(lo, -3.0) and np.allclose(hi, 3.0)
        # no vertex inside the ball, and some on its surface (the hole is there)
        x = dom.mesh.geometry.x
        r = np.linalg.norm(x - BALL_CENTER, axis=1)
        inside = dom.comm.allreduce(bool(np.any(r < BALL_RADIUS - 1e-6)), MPI.LOR)
        on = dom.comm.allreduce(bool(np.any(np.abs(r - BALL_RADIUS) < 1e-6)), MPI.LOR)
        assert not inside and on, (inside, on)
        gaps.append(_volume(dom) - EXACT_VOLUME)
    assert gaps[0] > gaps[1] > 0.0, gaps
    order = np.log2(gaps[0] / gaps[1])
    assert 1.5 < order < 2.5, f"volume gaps {gaps}: observed order {order:.2f}, expected 2"
    assert dom.describe()["h"] == 0.4


def test_h_is_refused_for_msh_files_and_bad_values(tmp_path):
    with pytest.raises(bs.BridgesolveInputError, match="h"):
        bs.Domain.from_gmsh("box_ball.geo", h=-1.0)
    msh = tmp_path / "a.msh"
    msh.write_text("$MeshFormat\n4.1 0 8\n$EndMeshFormat\n")
    with pytest.raises(bs.BridgesolveInputError, match=r"\.msh"):
        bs.Domain.from_gmsh(msh, h=0.5)


def test_config_h_of_a_geo_domain_is_checked_and_halved_by_h_ladders():
    from bridgesolve.studies.ladders import level_raw

    raw = {"problem": {"equation": "fokker-planck"},
           "domain": {"type": "gmsh", "path": "box_ball.geo", "h": 0.4},
           "process": {"type": "Brownian"}, "initial": {
               "type": "gaussian_mixture", "weights": [1.0], "means": [[-1.2, -1.2, -1.2]],
               "covs": [0.0625]}, "time": {"T": 0.1, "steps": 4}}
    cfg = validate(raw)
    assert level_raw(cfg.raw, "h", 2)["domain"]["h"] == pytest.approx(0.1)
    bad = {**raw, "domain": {**raw["domain"], "h": "fine"}}
    with pytest.raises(ConfigError, match=r"\[domain\] h"):
        validate(bad)
