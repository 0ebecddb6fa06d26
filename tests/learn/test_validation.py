"""The validator against closed forms: exact and perturbed scores on exact bundles, the
denoising identity J_DSM - J_ESM = C by Monte Carlo, the torch path against the NumPy path,
and the discretization error of finite-element bundles (observed order)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from learn_helpers import analytic_bundle, exact_score

import bridgesolve as bs
from bridgesolve.learn.validation import as_numpy_score, trapezoid_weights, validate


def test_exact_score_has_zero_esm_and_dsm_equals_C(vp_bundle_2d):
    """Exact score: e(t) = 0 at every level (same closed form as the bundle), and the
    Monte Carlo denoising loss reproduces C = ∫λ (d/σ² - E_p|∇log p|²) within its error."""
    b = vp_bundle_2d
    rep = validate(exact_score(b.data(), b.process()), b, hs=(), n_mc=4096)
    assert np.max(rep["esm"]["per_time"]) == 0.0
    assert rep["esm"]["integrated"] == 0.0
    dsm = rep["dsm"]
    rel = abs(dsm["identity_residual"]) / dsm["C"]
    assert abs(dsm["z"]) < 4.0 and dsm["consistent"], (
        f"J_DSM = {dsm['integrated']:.5e} ± {dsm['stderr_integrated']:.1e}, C = {dsm['C']:.5e}, "
        f"z = {dsm['z']:.2f}")
    assert rel < 0.02, f"|J_DSM - C| / C = {rel:.2e}"
    # per level too: every |residual| within 4.5 standard errors
    z_t = np.abs(dsm["residual"]) / dsm["stderr"]
    assert np.max(z_t) < 4.5, f"per-time z: {np.round(z_t, 2)}"
    # p_T of the VP SDE from this mixture is N(0, I) up to a(1)^2 = e^{-5.05}: tiny KL
    assert 0.0 <= rep["bound"]["kl_prior"] < 1e-6
    assert rep["bound"]["score_term"] == 0.0


@pytest.mark.parametrize("weighting", ["g2", "sigma2", "none"])
def test_shifted_score_closed_form(vp_bundle_2d, weighting):
    """s = ∇log p + c: e(t) = |c|² ∫p_t = |c|² (to quadrature round-off), J_ESM = |c|² ∫λ,
    and the identity J_DSM - J_ESM = C still holds by Monte Carlo."""
    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    c = np.array([0.3, -0.2])
    c2 = float(c @ c)
    rep = validate(exact_score(mix, proc, shift=c), b, hs=(), n_mc=4096,
                   weighting=weighting, t_range=(0.1, 1.0))
    esm = rep["esm"]
    np.testing.assert_allclose(esm["per_time"], c2 * esm["mass"], rtol=1e-12)
    np.testing.assert_allclose(esm["mass"], 1.0, atol=1e-7)
    np.testing.assert_allclose(esm["relative"], np.sqrt(c2 * esm["mass"] / esm["fisher"]),
                               rtol=1e-12)
    # the bundle's own p-weighted error (an independent implementation) agrees
    np.testing.assert_allclose(np.sqrt(esm["per_time"]),
                               b.score_error(exact_score(mix, proc, shift=c)), rtol=1e-12)
    ts = rep["dsm"]["times"]
    assert ts[0] == pytest.approx(0.1) and ts[-1] == pytest.approx(1.0)
    lam = {"g2": proc.g(ts) ** 2, "sigma2": [proc.transition(t)[1] for t in ts],
           "none": np.ones_like(ts)}[weighting]
    assert esm["integrated"] == pytest.approx(c2 * trapezoid_weights(ts) @ lam, rel=1e-7)
    assert abs(rep["dsm"]["z"]) < 4.0, rep.table()


def test_torch_module_matches_numpy_callable(vp_bundle_2d):
    """The device path (all (time, point) pairs flattened, in chunks that do not divide the
    total) gives the NumPy path's numbers; the score is a torch Gaussian score off by 10%."""
    torch = pytest.importorskip("torch")
    mean = np.array([0.5, -0.3])
    cov = np.array([[0.4, 0.1], [0.1, 0.3]])
    proc = bs.VP()
    gauss = bs.GaussianMixture([1.0], [mean], [cov])

    class GaussScore(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.1, dtype=torch.float64))
            self.m = torch.tensor(mean)
            self.S = torch.tensor(cov)

        def forward(self, x, t):
            B = proc.beta_min * t + 0.5 * (proc.beta_max - proc.beta_min) * t * t
            a = torch.exp(-0.5 * B)[:, None, None]
            cov_t = a * a * self.S + (-torch.expm1(-B))[:, None, None] * torch.eye(2)
            r = x - a[:, :, 0] * self.m
            return -self.scale * torch.linalg.solve(cov_t, r[:, :, None])[:, :, 0]

    b = analytic_bundle(gauss, proc, nt=10, box=5.0, cells=12, order=3)
    model = GaussScore()
    rep_t = validate(model, b, hs=(), n_mc=500, chunk=777, seed=3)
    rep_n = validate(exact_score(gauss, proc, 1.1), b, hs=(), n_mc=500,
                     seed=3)
    np.testing.assert_allclose(rep_t["esm"]["per_time"], rep_n["esm"]["per_time"], rtol=1e-10)
    np.testing.assert_allclose(rep_t["dsm"]["per_time"], rep_n["dsm"]["per_time"], rtol=1e-10)
    # and the error is the closed form: 0.01 E_p|∇log p|²
    np.testing.assert_allclose(rep_t["esm"]["per_time"], 0.01 * rep_t["esm"]["fisher"],
                               rtol=1e-10)
    assert model.training  # the validator leaves the module's mode alone
    s = as_numpy_score(model, chunk=5)
    x = b.points[:7]
    np.testing.assert_allclose(s(x, 0.3), 1.1 * gauss.evolve(proc, 0.3).score(x), rtol=1e-12)


def test_report_table_json_and_figures(vp_bundle_2d, tmp_path):
    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    b = analytic_bundle(mix, proc, nt=10, box=5.0, cells=10, order=3)
    rep = validate(exact_score(mix, proc, 0.9), b, hs=(0.0, 1.0),
                   n_mc=256, figures=tmp_path / "fig", plot_times=[0.2, 0.6])
    text = rep.table()
    for needle in ("J_ESM", "J_DSM", "J_DSM - J_ESM - C", "KL(p_T ‖ π)", "bound on KL"):
        assert needle in text
    data = json.loads(rep.to_json(tmp_path / "r.json"))
    assert data["esm"]["integrated"] == pytest.approx(rep["esm"]["integrated"])
    assert len(data["esm"]["per_time"]) == 11
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    expected = ["error_maps.png", "error_vs_t.png", "score_fields.png"]
    if "kl" in rep["kl"]:
        expected.append("q_h.png")
    assert names == sorted(expected)
    assert all((tmp_path / "fig" / n).stat().st_size > 10_000 for n in names)
    assert rep["action"]["excess"] == pytest.approx(0.5 * rep["esm"]["integrated"], rel=1e-12)


def test_bundle_file_and_fallback_data(vp_bundle_2d, tmp_path):
    """A bundle read from its .npz; without a data mixture the x0 of the denoising loss
    come from the bundle's ρ0 on its quadrature points (identity still within MC error for
    times where σ(t) exceeds the point spacing)."""
    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    path = b.save(tmp_path / "ref.npz")
    rep_file = validate(exact_score(mix, proc), str(path), hs=(), n_mc=1024, t_range=(0.3, 1.0))
    meta = dict(b.metadata, data=None)
    nodata = bs.ReferenceBundle(points=b.points, weights=b.weights, times=b.times,
                                density=b.density, log_density=b.log_density, score=b.score,
                                metadata=meta)
    rep = validate(exact_score(mix, proc), nodata, hs=(), n_mc=1024, t_range=(0.3, 1.0))
    assert abs(rep_file["dsm"]["z"]) < 4 and abs(rep["dsm"]["z"]) < 4, (rep_file["dsm"]["z"],
                                                                         rep["dsm"]["z"])
    # x0 from the caller's samples of ρ0
    rep_data = validate(exact_score(mix, proc), nodata, hs=(), n_mc=1024, t_range=(0.3, 1.0),
                        data=mix.sample(100_000, 3))
    assert abs(rep_data["dsm"]["z"]) < 4, rep_data["dsm"]["z"]


def test_bad_inputs(vp_bundle_2d):
    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    s = exact_score(mix, proc)
    with pytest.raises(bs.BridgesolveInputError, match="weighting = 'l2'"):
        validate(s, b, weighting="l2")
    with pytest.raises(bs.BridgesolveInputError, match="t_range"):
        validate(s, b, t_range=(0.0, 1.0))
    with pytest.raises(bs.BridgesolveInputError, match="holds 1 bundle time"):
        validate(s, b, t_range=(0.5, 0.51))
    with pytest.raises(bs.BridgesolveInputError, match="hs contains 2"):
        validate(s, b, hs=(2.0,), n_mc=16)
    with pytest.raises(bs.BridgesolveInputError, match="n_mc"):
        validate(s, b, n_mc=1)
    with pytest.raises(bs.BridgesolveInputError, match="returned shape"):
        validate(lambda x, t: x[:, :1], b)
    with pytest.raises(bs.BridgesolveInputError, match="missing"):
        validate(s, object())
    with pytest.raises(bs.BridgesolveInputError, match="does not exist"):
        validate(s, "no-such-bundle.npz")
    with pytest.raises(bs.BridgesolveInputError, match="expected a checkpoint path"):
        validate(42, b)


def _fe_bundle(mix, proc, cells, steps, degree=1):
    from bridgesolve.reference import ReferenceBundle

    problem = bs.Problem(bs.Domain.box([-6.0], [6.0], [cells]), proc,
                         bs.TimeGrid.clock(proc.clock, 1.0, steps), degree=degree)
    p = bs.solve_fokker_planck(problem, mix, progress=False)
    return ReferenceBundle.from_fokker_planck(p, problem=problem, data=mix), problem


@pytest.mark.parametrize("degree,cells,expected,finest", [(1, (40, 80, 160), 1.8, 6e-3),
                                                          (2, (20, 40, 80), 3.6, 2e-5)])
def test_exact_score_against_fe_bundles_converges(mixture1d, degree, cells, expected, finest):
    """The exact score measured on finite-element bundles: its ESM error is the bundle's
    own discretization error, falling as O(h^{2k}) for P_k (the score of a P_k solution is
    O(h^k) in the p-weighted L2 norm; Crank–Nicolson's O(dt²) with dt ∝ h keeps up)."""
    pytest.importorskip("bridgesolve._dolfinx")
    proc = bs.VP()
    hs, errs = [], []
    for n in cells:
        b, _ = _fe_bundle(mixture1d, proc, n, n // 2 if degree == 1 else 2 * n, degree=degree)
        rep = validate(exact_score(mixture1d, proc), b, hs=(), n_mc=64, t_range=(0.05, 1.0))
        hs.append(12.0 / n)
        errs.append(rep["esm"]["integrated"])
    orders = np.diff(np.log(errs)) / np.diff(np.log(hs))
    table = "\n".join(f"h = {h:.3f}  J_ESM = {e:.3e}" for h, e in zip(hs, errs, strict=True))
    print(f"P{degree}\n{table}\nobserved orders {np.round(orders, 2)}")
    assert np.all(orders > expected), f"observed orders {orders}\n{table}"
    assert errs[-1] < finest, table


def test_problem_rebuilt_from_bundle_metadata(mixture1d):
    """The Problem on which q_h is solved is rebuilt from a finite-element bundle alone."""
    pytest.importorskip("bridgesolve._dolfinx")
    from bridgesolve.learn.validation import problem_from_bundle

    b, problem = _fe_bundle(mixture1d, bs.VP(), 40, 20, degree=2)
    rebuilt = problem_from_bundle(b)
    assert rebuilt.describe() == problem.describe()
    np.testing.assert_array_equal(rebuilt.grid.times, problem.grid.times)
    meta = dict(b.metadata, domain={"type": "mesh"})
    other = bs.ReferenceBundle(points=b.points, weights=b.weights, times=b.times,
                               density=b.density, log_density=b.log_density, score=b.score,
                               metadata=meta)
    with pytest.raises(bs.BridgesolveInputError, match="cannot rebuild a mesh"):
        problem_from_bundle(other)


@pytest.mark.parametrize("dim", [1, 3])
def test_figures_in_1d_and_3d(tmp_path, dim):
    """Figures of 1D bundles (lines) and 3D bundles (the mid-plane slab of points)."""
    mix = bs.GaussianMixture([0.3, 0.7], [[-1.0] * dim, [1.0] * dim], [0.3, 0.4])
    proc = bs.OU()
    b = analytic_bundle(mix, proc, nt=6, box=4.0, cells=30 if dim == 1 else 6, order=3)
    rep = validate(exact_score(mix, proc, 1.05), b, hs=(), n_mc=64,
                   figures=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["error_maps.png", "error_vs_t.png",
                                                          "score_fields.png"]
    np.testing.assert_allclose(rep["esm"]["per_time"], 0.0025 * rep["esm"]["fisher"],
                               rtol=1e-10)


def test_bridge_bundles_get_the_explicit_error_only(vp_bundle_2d, tmp_path):
    """A bridge's marginals are not the forward diffusion of ρ0: the explicit error is
    measured, the denoising identity, bound and KL are skipped (with the reason)."""
    b = vp_bundle_2d
    zeros = np.zeros_like(b.density)
    bridge = bs.ReferenceBundle(points=b.points, weights=b.weights, times=b.times,
                                density=b.density, log_density=b.log_density, score=b.score,
                                metadata=dict(b.metadata, kind="bridge"), log_phi=zeros,
                                log_phi_hat=b.log_density, grad_log_phi=np.zeros_like(b.score),
                                grad_log_phi_hat=b.score)
    c = np.array([0.1, 0.0])
    rep = validate(exact_score(b.data(), b.process(), shift=c), bridge, figures=tmp_path)
    np.testing.assert_allclose(rep["esm"]["per_time"], 0.01 * rep["esm"]["mass"], rtol=1e-12)
    assert rep["exact"] is None
    for part in ("dsm", "kl", "bound"):
        assert "Schrödinger bridge" in rep[part]["skipped"]
    assert "skipped" in rep.table()
    assert (tmp_path / "error_vs_t.png").is_file()


def test_excess_action_and_dsm_minus_esm_per_time(vp_bundle_2d):
    """The excess action is the ESM with weight g²/2 (closed form ½|c|² ∫ g² for a shifted
    score); DSM - ESM per time is C(t) = d/σ² - E|∇log p|² for two different scores: C(t) is
    the same array and DSM - ESM agrees within Monte Carlo error."""
    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    c = np.array([0.3, -0.2])
    reps = [validate(exact_score(mix, proc, shift=c), b, hs=(), n_mc=4096,
                     weighting="sigma2", t_range=(0.1, 1.0), progress=False),
            validate(exact_score(mix, proc, factor=1.2), b, hs=(), n_mc=4096,
                     weighting="sigma2", t_range=(0.1, 1.0), progress=False)]
    ts = reps[0]["action"]["times"]
    g2 = proc.g(ts) ** 2
    assert reps[0]["action"]["excess"] == pytest.approx(
        0.5 * float(c @ c) * trapezoid_weights(ts) @ g2, rel=1e-6)
    np.testing.assert_array_equal(reps[0]["dsm"]["C_per_time"], reps[1]["dsm"]["C_per_time"])
    for rep in reps:
        dsm = rep["dsm"]
        z = (dsm["dsm_minus_esm"] - dsm["C_per_time"]) / dsm["stderr"]
        assert np.max(np.abs(z)) < 4.5, np.round(z, 2)
    assert "DSM-ESM" in reps[0].table() and "excess action" in reps[0].table()


def test_verdict_names_the_z_it_uses(vp_bundle_2d):
    """A bundle z of 6.52 is never printed next to 'consistent (|z| <= 4)'."""
    from bridgesolve.learn import _figures

    b = vp_bundle_2d
    rep = validate(exact_score(b.data(), b.process()), b, hs=(), n_mc=256, progress=False)
    data = dict(rep.data)
    data["dsm"] = dict(rep["dsm"], z=6.52, consistent_bundle=False, consistent=True)
    data["exact"] = dict(rep["exact"], z=0.5)
    text = _figures.table(data)
    assert "|z| = 6.52 > 4: beyond Monte Carlo error" in text
    assert "identity: consistent against the exact law (|z| = 0.50 <= 4)" in text
    assert "against the bundle it is not" in text


def test_score_of_another_dimension_process_or_data(vp_bundle_2d):
    """Dimension: refused, naming both; process or data: a warning naming both."""
    from bridgesolve.learn.validation import NumpyScore

    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    s = exact_score(mix, proc)
    with pytest.raises(bs.BridgesolveInputError, match="is a 1D model but the bundle .* is 2D"):
        validate(NumpyScore(s, dim=1, label="net1d"), b, hs=(), progress=False)
    with pytest.warns(RuntimeWarning, match="trained for OU.* but the bundle is for VP"):
        rep = validate(NumpyScore(s, process=bs.OU(), label="ou-net"), b, hs=(), n_mc=64,
                       progress=False)
    assert any("trained for OU" in n for n in rep["notes"])
    other = dict(mix.describe(), type="gaussian_mixture", means=[[0.0, 0.0], [1.0, 1.0]])
    with pytest.warns(RuntimeWarning, match="trained on a 2-component Gaussian mixture"):
        validate(NumpyScore(s, data=other, label="other-data"), b, hs=(), n_mc=64,
                 progress=False)
    same = dict(mix.describe(), type="gaussian_mixture")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(NumpyScore(s, data=same, process=proc, dim=2), b, hs=(), n_mc=64,
                 progress=False)
    torch = pytest.importorskip("torch")
    from bridgesolve.learn.model import ScoreMLP, ScoreModel

    model = ScoreModel(ScoreMLP(1, width=8, depth=1), proc).double()
    with torch.no_grad(), pytest.raises(bs.BridgesolveInputError, match="1D model"):
        validate(model, b, hs=(), progress=False)


def test_bundle_accuracy_beside_the_esm(vp_bundle_2d, capsys):
    """The bundle's own score error (its score_error_estimate) is reported per time beside
    the ESM; a warning when sqrt(ε/e) > 0.1; a progress bar on stderr."""
    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    c = np.array([0.1, 0.0])  # e(t) = 0.01 ∫p
    kw = {k: getattr(b, k) for k in ("points", "weights", "times", "density", "log_density",
                                      "score")}
    meta = dict(b.metadata, data=None)  # no closed form: the bundle's own estimate is used
    for eps, warns in ((1e-6, False), (1e-3, True)):
        est = np.full(b.times.size, eps)
        nb = bs.ReferenceBundle(metadata=meta, score_error_estimate=est, **kw)
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rep = validate(exact_score(mix, proc, shift=c), nb, hs=(), n_mc=64)
        hit = [w for w in caught if "not small" in str(w.message)]
        assert bool(hit) == warns, [str(w.message) for w in caught]
        acc = rep["accuracy"]
        np.testing.assert_allclose(acc["per_time"], eps)
        np.testing.assert_allclose(acc["worst_ratio"], np.sqrt(eps / 0.01), rtol=1e-5)
        assert ("NOT small" in rep.table()) == warns
    assert "validate" in capsys.readouterr().err


def test_own_law_excess_action_with_a_problem(vp_bundle_2d):
    """With q_1 solved on a Problem, the excess action under the h = 1 sampler's own law is
    reported beside the p-weighted one (they differ at third order in the score error)."""
    pytest.importorskip("bridgesolve._dolfinx")
    b = vp_bundle_2d
    proc, mix = b.process(), b.data()
    problem = bs.Problem(bs.Domain.box([-6.0, -6.0], [6.0, 6.0], [16, 16]), proc,
                         bs.TimeGrid.uniform(1.0, 20), degree=2)
    rep = validate(exact_score(mix, proc, 1.1), b, hs=(1.0,), n_mc=64, problem=problem,
                   progress=False)
    act = rep["action"]
    print({k: v for k, v in act.items() if np.ndim(v) == 0})
    assert 0.6 < act["own_law"] / act["excess_exact"] < 1.5, act
    assert "own law q_1" in rep.table()
