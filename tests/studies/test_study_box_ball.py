"""The 3D gmsh geometry with an obstacle (meshes/box_ball.geo) through the solvers and the
convergence study: iterative and direct Fokker–Planck solves agree to solver tolerance,
and study levels record their memory and Krylov iterations (serial and MPI-2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI
from bridgesolve.config import validate
from bridgesolve.studies import convergence_study

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "convergence_fp_box_ball.toml"
OU = bs.OU(theta=1.0, sigma=0.5, mean=-1.2)
RHO0 = bs.GaussianMixture([1.0], [[-1.2, -1.2, -1.2]], [0.0625])


@pytest.mark.mpi
def test_iterative_and_direct_agree_on_the_box_with_a_ball():
    comm = MPI.COMM_WORLD
    dom = bs.Domain.from_gmsh("box_ball.geo", h=0.5, comm=comm)
    out = {}
    for solver in ("direct", "iterative"):
        prob = bs.Problem(dom, OU, bs.TimeGrid.uniform(1.0, 8), solver=solver)
        out[solver] = bs.solve_fokker_planck(prob, RHO0, progress=False, check_mass=False)
    n = dom.mesh.topology.index_map(0).size_local  # P1: owned dofs come first
    a, b = out["direct"].values[:, :n], out["iterative"].values[:, :n]
    gap = comm.allreduce(float(np.abs(a - b).max(initial=0.0)), MPI.MAX)
    top = comm.allreduce(float(np.abs(a).max(initial=0.0)), MPI.MAX)
    assert gap / top < 1e-8, gap / top
    record = out["iterative"].info["linear_solver"]
    assert set(record["methods"]) == {"gmres+gamg"} or "hypre" in str(record["methods"])
    assert 0 < record["per_step_max"] <= 30, record


@pytest.mark.mpi
def test_example_study_records_memory_and_krylov_iterations_per_level():
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["domain"]["h"] = 0.8
    raw["time"]["steps"] = 4
    cfg = validate(raw, source=str(EXAMPLE), base_dir=EXAMPLE.parent)
    study = convergence_study(cfg, levels=2, progress=False, log=False)
    assert study.reference == "exact"
    ndofs = [row["ndofs"] for row in study.rows]
    assert ndofs[1] > 4 * ndofs[0]  # remeshed at h/2 (3D: ~8x)
    for row in study.rows:
        assert len(row["peak_rss_mb"]) == MPI.COMM_WORLD.size
        assert 0.0 < row["peak_rss_mb_max"] <= row["peak_rss_mb_sum"]
        phase = row["peak_rss_mb_phase"]  # each phase's own peak (Linux)
        assert list(phase) == ["build", "solve", "measure"]
        for rank in range(MPI.COMM_WORLD.size):
            peaks = [phase[k][rank] for k in phase]
            assert all(p > 0.0 for p in peaks), phase
            assert max(peaks) == row["peak_rss_mb"][rank]
        assert row["linear_solver"]["solver"] == "iterative"
        assert row["linear_solver"]["per_step_mean"] > 0
    errors = study.errors("density_L2")
    assert errors[1] < errors[0], errors
