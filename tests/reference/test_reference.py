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
from bridgesolve.reference import DTYPES, SCHEMA, ReferenceBundle, save_reference

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
    path = b.save(tmp_path / "ref.npz", dtype="float64")  # lossless: a bit-identical trip
    c = ReferenceBundle.load(path)
    for key in ("points", "weights", "times", "density", "log_density", "score",
                "score_error_estimate"):
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
                                  "log_density", "score", "score_error_estimate", "metadata"}
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
    returned = save_reference(p, path, problem=prob, data=MIX2, dtype="float64")
    assert (returned is None) == (comm.rank != 0)
    if comm.rank == 0:
        prob1, p1 = _fp(bs.Domain.box([-5, -5], [5, 5], (12, 12), comm=MPI.COMM_SELF), proc,
                        MIX2, steps=10)
        serial_bundle = ReferenceBundle.from_fokker_planck(p1, problem=prob1, data=MIX2)
        serial = _sorted(serial_bundle)
        world_bundle = ReferenceBundle.load(path)
        world = _sorted(world_bundle)
        # the bundle's own error estimate is summed over ranks: the serial one again
        np.testing.assert_allclose(world_bundle.score_error_estimate,
                                   serial_bundle.score_error_estimate, rtol=1e-9)
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


# -- storage, damaged files, the bundle's own score error -----------------------------------
def _small_2d(*, steps=10, cells=16):
    prob, p = _fp(bs.Domain.box([-5, -5], [5, 5], (cells, cells)), bs.VP(), MIX2, steps=steps,
                  degree=1)
    return prob, p, ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX2)


def test_storage_options(tmp_path):
    """float64/float32, plain/compressed: standard .npz files, float64 arrays on loading,
    float64 bit-identical, float32 within half an ulp; compressed float32 is the smallest;
    the default is float32 compressed."""
    from bridgesolve.reference import DEFAULT_COMPRESS, DEFAULT_DTYPE

    *_, b = _small_2d()
    sizes = {}
    for dtype in DTYPES:
        for compress in (False, True):
            path = b.save(tmp_path / f"{dtype}-{compress}.npz", dtype=dtype, compress=compress)
            sizes[dtype, compress] = path.stat().st_size
            with np.load(path) as raw:
                assert raw["score"].dtype == dtype and raw["points"].dtype == np.float64
            c = ReferenceBundle.load(path)
            assert c.metadata["storage"] == {"dtype": dtype, "compressed": compress}
            for key in ("density", "log_density", "score"):
                got, ref = getattr(c, key), getattr(b, key)
                assert got.dtype == np.float64, key
                if dtype == "float64":
                    assert np.array_equal(got, ref), key
                else:
                    assert np.all(np.abs(got - ref) <= 2.0**-24 * np.abs(ref) + 1e-45), key
            for key in ("points", "weights", "times", "score_error_estimate"):
                assert np.array_equal(getattr(c, key), getattr(b, key)), key
    print({k: round(v / 2**20, 3) for k, v in sizes.items()})
    assert sizes["float32", True] < sizes["float32", False] < sizes["float64", False]
    assert sizes["float64", True] < sizes["float64", False]
    assert (DEFAULT_DTYPE, DEFAULT_COMPRESS) == ("float32", True)
    default = ReferenceBundle.load(b.save(tmp_path / "default.npz"))
    assert default.metadata["storage"] == {"dtype": "float32", "compressed": True}
    with pytest.raises(bs.BridgesolveInputError, match="dtype = 'float16'"):
        b.save(tmp_path / "x.npz", dtype="float16")
    with pytest.raises(bs.BridgesolveInputError, match="compress = 1"):
        b.save(tmp_path / "x.npz", compress=1)


def test_validator_agrees_on_float32_and_float64_files(tmp_path):
    """The same score (0.9 × the exact one) validated against the float64 and the float32
    file of one bundle: ESM per level, J_ESM, the denoising z and the bound agree to 1e-6
    relative (measured on the default 2D bundle: 3.3e-8, 9e-10, 3e-8, equal)."""
    from bridgesolve.learn.validation import validate

    prob, _, b = _small_2d()
    proc = prob.process

    def scaled(x, t):
        return 0.9 * (MIX2.evolve(proc, t) if t > 0 else MIX2).score(x)

    a, c = (validate(scaled, b.save(tmp_path / f"{dt}.npz", dtype=dt), hs=(), n_mc=256)
            for dt in ("float64", "float32"))
    rel = np.max(np.abs(c["esm"]["per_time"] / a["esm"]["per_time"] - 1.0))
    print(f"ESM per level: max relative difference {rel:.2e}")
    assert rel < 1e-6
    assert c["esm"]["integrated"] == pytest.approx(a["esm"]["integrated"], rel=1e-6)
    assert c["dsm"]["z"] == pytest.approx(a["dsm"]["z"], rel=1e-6)
    assert c["bound"]["bound"] == pytest.approx(a["bound"]["bound"], rel=1e-6)


def test_damaged_bundle_files_are_refused_in_one_line(tmp_path):
    """Garbage, empty, truncated and damaged files, a bare .npy, missing keys, inconsistent
    shapes, NaN values, non-JSON metadata, strings for numbers: one BridgesolveInputError
    line naming the file and what is wrong (never a BadZipFile/EOFError traceback)."""
    from bridgesolve.learn.validation import load_bundle

    *_, b = _small_2d(steps=2, cells=4)
    cases = {}

    def case(name, data, expected):
        (tmp_path / name).write_bytes(data)
        cases[tmp_path / name] = expected

    case("garbage.npz", b"\x00\x01 not a zip at all\n" * 50, "not a readable .npz")
    case("empty.npz", b"", "not a readable .npz")
    for compress in (False, True):
        data = b.save(tmp_path / "good.npz", compress=compress).read_bytes()
        for frac in (0.3, 0.9, 0.999):
            case(f"cut-{compress}-{frac}.npz", data[: int(len(data) * frac)],
                 "not a readable .npz")
        mid = len(data) // 2  # a damaged stretch inside a member: CRC or inflate error
        case(f"damaged-{compress}.npz", data[:mid] + bytes(200) + data[mid + 200:],
             "not a readable .npz")
        if not compress:  # null bytes inside a member's header (numpy tokenizes it)
            head = data.find(b"\x93NUMPY") + 12
            case("damaged-header.npz", data[:head] + bytes(20) + data[head + 20:],
                 "not a readable .npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    case("single.npz", (tmp_path / "single.npy").read_bytes(), "a single .npy array")
    arrays = b.arrays(dtype="float64")

    def variant(name, expected, **changes):
        content = {k: v for k, v in {**arrays, **changes}.items() if v is not None}
        np.savez(tmp_path / name, **content)
        cases[tmp_path / name] = expected

    variant("nokey.npz", "missing keys ['score']", score=None)
    variant("shape.npz", "score has shape", score=arrays["score"][:, :-1])
    variant("nan.npz", "density is not finite", density=np.where(
        np.arange(arrays["density"].size).reshape(arrays["density"].shape) == 7, np.nan,
        arrays["density"]))
    variant("meta.npz", "metadata is not JSON", metadata=np.array("{kind: diffusion"))
    variant("strings.npz", "weights has dtype", weights=np.array(["a"] * b.weights.size))
    variant("times.npz", "increasing", times=arrays["times"][::-1].copy())
    variant("estimate.npz", "score_error_estimate has shape",
            score_error_estimate=np.ones(2))
    variant("schema.npz", "schema 'bridgesolve.reference/0'",
            schema=np.array("bridgesolve.reference/0"))
    for path, expected in cases.items():
        for loader in (ReferenceBundle.load, load_bundle):
            with pytest.raises(bs.BridgesolveInputError) as err:
                loader(path)
            msg = str(err.value)
            assert expected in msg and str(path) in msg and "\n" not in msg, (path.name, msg)
    with pytest.raises(bs.BridgesolveInputError, match="is a folder"):
        ReferenceBundle.load(tmp_path)
    # files written before the estimate and the storage options load as they did
    old = {k: v for k, v in arrays.items() if k != "score_error_estimate"}
    np.savez(tmp_path / "old.npz", **old)
    c = ReferenceBundle.load(tmp_path / "old.npz")
    assert c.score_error_estimate is None and "storage" not in c.metadata
    assert np.array_equal(c.score, b.score)


def test_score_error_estimate_closed_form():
    """Gaussian-mixture data under a linear process: the estimate is the closed-form
    E_p|s_ref - ∇log p|² per level (computed here by hand), the validator's
    ``exact.bundle_error`` in the same units."""
    from bridgesolve.learn.validation import validate

    prob, _, b = _small_2d()
    assert b.metadata["score_error_estimate"] == {"method": "closed-form",
                                                  "weighting": "exact density"}
    est = b.score_error_estimate
    assert est.shape == (11,) and np.all(est > 0)
    for n in (0, 4, 10):
        t = float(b.times[n])
        law = MIX2.evolve(prob.process, t) if t > 0 else MIX2
        by_hand = b.integrate(law.pdf(b.points) * np.sum((b.score[n] - law.score(b.points)) ** 2,
                                                         axis=1))
        assert est[n] == pytest.approx(by_hand, rel=1e-10), n
    rep = validate(lambda x, t: np.zeros_like(x), b, hs=(), n_mc=64)
    np.testing.assert_allclose(rep["exact"]["bundle_error"], est, rtol=1e-10)


def test_score_error_estimate_higher_degree_and_none():
    """Without a closed form (here: absorbing walls) "auto" compares with P_{k+1} on the same
    mesh; where both exist the two estimates agree (1D P1, 60 cells, measured ratio
    0.99-1.00 at every level); killing gives no estimate, with the reason in the metadata."""
    proc = bs.VP()
    prob, p = _fp(bs.Domain.interval(-6, 6, 60), proc, MIX1, steps=20, degree=1)
    closed = ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX1).score_error_estimate
    higher = ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX1,
                                                error_estimate="higher-degree")
    assert higher.metadata["score_error_estimate"]["method"] == "higher-degree"
    ratio = higher.score_error_estimate / closed
    print("higher-degree / closed-form:", np.round(ratio, 3))
    assert np.all((ratio > 0.9) & (ratio < 1.1)), ratio
    walls = bs.Problem(bs.Domain.interval(-6, 6, 60), proc, bs.TimeGrid.uniform(1.0, 20),
                       degree=1, boundary="absorbing")
    pw = bs.solve_fokker_planck(walls, MIX1, progress=False)
    bw = ReferenceBundle.from_fokker_planck(pw, problem=walls, data=MIX1)
    assert bw.metadata["score_error_estimate"]["method"] == "higher-degree"
    assert bw.score_error_estimate.shape == (21,) and np.all(bw.score_error_estimate > 0)
    with pytest.raises(bs.BridgesolveInputError, match="the walls are absorbing"):
        ReferenceBundle.from_fokker_planck(pw, problem=walls, data=MIX1,
                                           error_estimate="closed-form")
    pk = bs.solve_fokker_planck(prob, MIX1, killing=lambda x, t: -0.2 + 0.0 * x[:, 0],
                                progress=False)
    bk = ReferenceBundle.from_fokker_planck(pk, problem=prob, data=MIX1)
    assert bk.score_error_estimate is None
    assert "killing" in bk.metadata["score_error_estimate"]["reason"]
    none = ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX1, error_estimate="none")
    assert none.score_error_estimate is None
    with pytest.raises(bs.BridgesolveInputError, match="error_estimate = 'coarse'"):
        ReferenceBundle.from_fokker_planck(p, problem=prob, error_estimate="coarse")


def test_score_error_estimate_of_a_gaussian_bridge():
    """A bridge between single Gaussians under a Brownian reference: the estimate is the
    closed-form E_p|s_ref - ∇log p|² of the Gaussian bridge marginals (by hand here); without
    ρ1 there is none, with the reason in the metadata."""
    rho0 = bs.GaussianMixture([1.0], [[-1.0]], [0.3])
    rho1 = bs.GaussianMixture([1.0], [[1.0]], [0.4])
    prob = bs.Problem(bs.Domain.interval(-6, 6, 120), bs.Brownian(1.0),
                      bs.TimeGrid.uniform(1.0, 20), degree=2)
    br = bs.solve_bridge(prob, rho0, rho1, progress=False)
    b = ReferenceBundle.from_bridge(br, data=rho0, final=rho1)
    assert b.metadata["score_error_estimate"]["method"] == "closed-form"
    est = b.score_error_estimate
    marginal = bs.gaussian_bridge([-1.0], 0.3, [1.0], 0.4, 1.0, 1.0)
    for n in (0, 10, 20):
        law = marginal(float(b.times[n]))
        by_hand = b.integrate(law.pdf(b.points) * np.sum((b.score[n] - law.score(b.points)) ** 2,
                                                         axis=1))
        assert est[n] == pytest.approx(by_hand, rel=1e-10), n
    print("Gaussian bridge, P2 on 120 cells: estimate", np.round(est[::5], 9))
    assert np.all(est > 0) and np.all(est < 1e-3), est
    none = ReferenceBundle.from_bridge(br, data=rho0)
    assert none.score_error_estimate is None
    assert "not both single Gaussians" in none.metadata["score_error_estimate"]["reason"]
    with pytest.raises(bs.BridgesolveInputError, match="second bridge solve"):
        ReferenceBundle.from_bridge(br, data=rho0, final=rho1, error_estimate="higher-degree")


@pytest.mark.mpi
def test_higher_degree_estimate_is_rank_independent():
    """The P_{k+1} comparison under ``mpiexec -n 2`` (each rank its own cells, sums reduced)
    equals the serial one (absorbing walls: no closed form, so "auto" takes this path)."""
    comm = MPI.COMM_WORLD

    def estimate(c):
        prob = bs.Problem(bs.Domain.box([-5, -5], [5, 5], (8, 8), comm=c), bs.VP(),
                          bs.TimeGrid.uniform(1.0, 4), degree=1, boundary="absorbing")
        p = bs.solve_fokker_planck(prob, MIX2, progress=False)
        b = ReferenceBundle.from_fokker_planck(p, problem=prob, data=MIX2, root=None)
        assert b.metadata["score_error_estimate"]["method"] == "higher-degree"
        return b.score_error_estimate

    world = estimate(comm)
    assert all(np.array_equal(world, other) for other in comm.allgather(world))
    np.testing.assert_allclose(world, estimate(MPI.COMM_SELF), rtol=1e-9)
