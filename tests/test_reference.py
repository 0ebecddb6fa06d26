"""Reference bundles: contents against the exact mixture, round trip, NumPy-only loading,
score interpolants, and MPI-written bundles equal to serial ones."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI
from bridgesolve.reference import SCHEMA, ReferenceBundle, save_reference

MIX1 = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])
MIX2 = bs.GaussianMixture(
    [0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
    [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]],
)


def _fp(dom, proc, mix, *, steps=40, T=1.0, degree=2):
    prob = bs.Problem(dom, proc, bs.TimeGrid.uniform(T, steps), degree=degree)
    return prob, bs.solve_fokker_planck(prob, mix, progress=False)


def _sorted(bundle: ReferenceBundle):
    """Bundle arrays with points in lexicographic order (rank-independent)."""
    order = np.lexsort(bundle.points.T[::-1])
    out = {"points": bundle.points[order], "weights": bundle.weights[order]}
    for key in ("density", "log_density", "score"):
        out[key] = getattr(bundle, key)[:, order]
    return out


@pytest.mark.mpi
def test_bundle_values_against_exact_mixture():
    proc = bs.VP()
    prob, p = _fp(bs.Domain.interval(-6, 6, 120), proc, MIX1)
    b = ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX1, root=None)
    assert b.dim == 1 and b.nt == 40 and b.kind == "diffusion"
    assert b.points.shape == (120 * 4, 1)  # P2: degree 2k + 2 = 6, 4 Gauss points per cell
    assert np.isclose(b.weights.sum(), 12.0, rtol=1e-13)
    mass = b.integrate(b.density)
    assert np.allclose(mass, 1.0, atol=1e-6), mass
    # measured at t = 0, 0.5, 1: density 1.7e-5, 1.3e-4, 3.8e-6; log-density in the bulk
    # 1.6e-4, 1.3e-3, 3.3e-5; p-weighted score 2.4e-3, 5.6e-4, 7.3e-5
    for t in (0.0, 0.5, 1.0):
        n = b.level(t)
        ex = MIX1.evolve(proc, t) if t > 0 else MIX1
        pts = b.points
        bulk = ex.pdf(pts) > 1e-3
        assert np.max(np.abs(b.density[n] - ex.pdf(pts))) < 2e-4
        assert np.max(np.abs(b.log_density[n][bulk] - ex.log_pdf(pts)[bulk])) < 2e-3
        err = np.sqrt(b.integrate(ex.pdf(pts) * np.sum((b.score[n] - ex.score(pts)) ** 2, 1)))
        assert err < 5e-3, (t, err)
    # the bundle's own p-weighted score error of the exact score is that number again
    # (weighted by the FE density instead of the exact one)
    exact = lambda x, t: (MIX1.evolve(proc, t) if t > 0 else MIX1).score(x)  # noqa: E731
    errs = b.score_error(exact)
    assert errs.shape == (41,) and np.all(errs < 5e-3), errs


def test_round_trip_and_metadata(tmp_path):
    proc = bs.OU(theta=0.7, mean=0.5)
    prob, p = _fp(bs.Domain.box([-5, -5], [5, 5], (8, 8)), proc, MIX2, steps=5, T=0.5,
                  degree=1)
    b = ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX2, info={"note": "x"})
    path = b.save(tmp_path / "ref.npz")
    c = ReferenceBundle.load(path)
    for key in ("points", "weights", "times", "density", "log_density", "score"):
        assert np.array_equal(getattr(b, key), getattr(c, key)), key
    assert c.points.shape == (2 * 64 * 6, 2)  # P1: degree 4, 6 points per triangle
    assert c.score.shape == (6, c.points.shape[0], 2)
    assert c.metadata["kind"] == "diffusion" and c.metadata["schema"] == SCHEMA
    assert c.metadata["discretization"]["quadrature_degree"] == 4
    assert c.metadata["discretization"]["element"] == "P1"
    assert c.metadata["domain"]["type"] == "box"
    assert c.metadata["info"]["note"] == "x"
    assert "dolfinx" in c.metadata["versions"]
    q = c.process()
    assert isinstance(q, bs.OU) and q.describe() == proc.describe()
    d = c.data()
    assert np.allclose(d.means, MIX2.means) and np.allclose(d.covs, MIX2.covs)
    with np.load(path) as raw:
        assert set(raw.files) == {"schema", "points", "weights", "times", "density",
                                  "log_density", "score", "metadata"}
        assert json.loads(str(raw["metadata"]))["process"]["type"] == "OU"


def test_loading_needs_only_numpy(tmp_path):
    proc = bs.VE(sigma_max=1.0)
    prob, p = _fp(bs.Domain.interval(-5, 5, 30), proc, MIX1, steps=4, degree=1)
    path = ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX1).save(
        tmp_path / "r.npz")
    code = f"""
import sys
for name in ("dolfinx", "petsc4py", "mpi4py", "ufl", "basix", "dolfinx_solver"):
    sys.modules[name] = None  # any import of these now fails
import bridgesolve as bs
from bridgesolve.reference import ReferenceBundle
b = ReferenceBundle.load({str(path)!r})
s = b.score_interpolant()
print(b.dim, b.nt, type(b.process()).__name__, b.data().n_components,
      round(float(b.integrate(b.density)[-1]), 6), s(b.points[:3], 0.5).shape)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "4", "VE", "2", "1.0", "(3,", "1)"], out.stdout


@pytest.mark.parametrize("dim", [1, 2])
def test_score_interpolant_converges_to_exact_score(dim):
    proc, t = bs.OU(), 0.5
    mix = MIX1 if dim == 1 else MIX2
    ex = mix.evolve(proc, t)
    rng = np.random.default_rng(1)
    x = ex.sample(2000, rng)
    errs = []
    for n in ((40, 80) if dim == 1 else (16, 32)):
        dom = bs.Domain.box([-6] * dim, [6] * dim, [n] * dim)
        prob, p = _fp(dom, proc, mix, steps=20, T=t)
        s = ReferenceBundle.from_fokker_planck(p, problem=prob, root=None).score_interpolant()
        errs.append(np.sqrt(np.mean(np.sum((s(x, t) - ex.score(x)) ** 2, axis=1))))
    # Monte-Carlo p-weighted errors; piecewise-linear interpolation of a P2 score (order 2)
    assert errs[1] < errs[0] / 3, errs
    assert errs[1] < (0.02 if dim == 1 else 0.1), errs


@pytest.mark.mpi
def test_bundle_written_under_mpi_equals_serial(mpi_tmp_path):
    """Under ``mpiexec -n 2`` the gathered bundle (written once by rank 0) equals the one of
    the same problem solved on one rank, after sorting the points."""
    proc = bs.VP()
    comm = MPI.COMM_WORLD
    path = mpi_tmp_path / "world.npz"
    prob, p = _fp(bs.Domain.box([-5, -5], [5, 5], (12, 12)), proc, MIX2, steps=10)
    returned = save_reference(p, path, problem=prob, data=MIX2)
    assert (returned is None) == (comm.rank != 0)
    if comm.rank == 0:
        prob1, p1 = _fp(bs.Domain.box([-5, -5], [5, 5], (12, 12), comm=MPI.COMM_SELF), proc,
                        MIX2, steps=10)
        serial = _sorted(ReferenceBundle.from_fokker_planck(p1, problem=prob1, data=MIX2))
        world = _sorted(ReferenceBundle.load(path))
        assert np.allclose(world["points"], serial["points"], rtol=0, atol=1e-13)
        assert np.allclose(world["weights"], serial["weights"], rtol=1e-12, atol=0)
        for key in ("density", "log_density", "score"):
            scale = np.max(np.abs(serial[key]))
            assert np.max(np.abs(world[key] - serial[key])) < 1e-9 * scale, key
    comm.barrier()


def test_bad_bundles(tmp_path):
    with pytest.raises(bs.BridgesolveInputError, match="does not exist"):
        ReferenceBundle.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", schema=np.array("something/9"))
    with pytest.raises(bs.BridgesolveInputError, match="schema 'something/9'"):
        ReferenceBundle.load(tmp_path / "other.npz")
    good = dict(points=np.zeros((3, 1)), weights=np.ones(3), times=np.array([0.0, 1.0]),
                density=np.ones((2, 3)), log_density=np.zeros((2, 3)),
                score=np.zeros((2, 3, 1)), metadata={"kind": "diffusion", "process": None})
    b = ReferenceBundle(**good)
    with pytest.raises(bs.BridgesolveInputError, match="score has shape"):
        ReferenceBundle(**{**good, "score": np.zeros((2, 3))})
    with pytest.raises(bs.BridgesolveInputError, match="log_phi has shape None"):
        ReferenceBundle(**{**good, "metadata": {"kind": "bridge"}})
    with pytest.raises(bs.BridgesolveInputError, match="expected a .npz"):
        b.save(tmp_path / "b.h5")
    with pytest.raises(bs.BridgesolveInputError, match="no process"):
        b.process()
    with pytest.raises(bs.BridgesolveInputError, match="not a time of the bundle"):
        b.level(0.5)
    from bridgesolve.process import process_from_description
    with pytest.raises(bs.BridgesolveInputError, match="'Custom'"):
        process_from_description({"type": "Custom"})
    with pytest.raises(bs.BridgesolveInputError, match="process type 'XY'"):
        process_from_description({"type": "XY"})
