"""The trainer: the torch kernel against the process's closed forms, data sets, config
errors, bit-identical resumption after an interruption, devices, a trained network
validated against an exact bundle, and user modules."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.learn import data as datasets
from bridgesolve.learn.config import ConfigError, validate_train_config

torch = pytest.importorskip("torch")

from bridgesolve.learn.model import Kernel, ScoreMLP, ScoreModel  # noqa: E402
from bridgesolve.learn.trainer import (  # noqa: E402
    dsm_loss,
    learning_rate,
    load_checkpoint,
    resolve_device,
    train,
)

MIX = {"type": "gaussian_mixture", "weights": [0.5, 0.5], "means": [[-1.5, -1.0], [1.5, 1.0]],
       "covs": [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]]}


def small_config(steps=40, **train_kw):
    return {"data": dict(MIX), "process": {"type": "VP"},
            "model": {"width": 32, "depth": 2, "fourier_features": 8},
            "train": {"steps": steps, "batch_size": 64, "lr": 2e-3, "warmup": 5,
                      "checkpoint_every": 0, "device": "cpu", **train_kw}}


@pytest.mark.parametrize("process", [bs.VP(0.1, 20.0), bs.SubVP(0.2, 15.0, T=2.0),
                                     bs.VE(0.02, 5.0), bs.OU(0.7, 1.3, mean=0.5),
                                     bs.Brownian(0.8)], ids=lambda p: type(p).__name__)
def test_kernel_matches_process(process):
    """a(t), σ²(t) and g²(t) in torch equal the process's own closed forms."""
    k = Kernel(process)
    t = torch.tensor([1e-3, 0.05, 0.4, 0.99], dtype=torch.float64)
    a_var = np.array([process.transition(float(s)) for s in t])
    np.testing.assert_allclose(k.mean_coef(t).numpy(), a_var[:, 0], rtol=1e-13)
    np.testing.assert_allclose(k.var(t).numpy(), a_var[:, 1], rtol=1e-12)
    np.testing.assert_allclose(k.g2(t).numpy(), process.g(t.numpy()) ** 2, rtol=1e-13)


def test_dsm_loss_of_exact_score_is_C():
    """Gaussian data N(0, s0² I) under VP: with the exact score, the per-sample loss has mean
    λ/σ² · (d - σ² d/(a² s0² + σ²)) (the constant C(t) of the denoising identity)."""
    s0, d, t_val = 0.7, 2, 0.3
    proc = bs.VP()
    a, var = proc.transition(t_val)

    class Exact(torch.nn.Module):
        def forward(self, x, t):  # the eps-prediction of the exact score: -σ s
            return np.sqrt(var) * x / (a * a * s0 * s0 + var)

    model = ScoreModel(Exact(), proc, "eps")
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = s0 * torch.randn(n, d, generator=g, dtype=torch.float64)
    eps = torch.randn(n, d, generator=g, dtype=torch.float64)
    t = torch.full((n,), t_val, dtype=torch.float64)
    loss = dsm_loss(model, x0, t, eps, "sigma2")
    expected = d - var * d / (a * a * s0 * s0 + var)
    se = loss.std().item() / np.sqrt(n)
    assert abs(loss.mean().item() - expected) < 4 * se, (loss.mean().item(), expected, se)


def test_datasets_are_seeded_and_shaped(tmp_path):
    for name, factory in datasets.TOY_SETS.items():
        ds = factory()
        a, b = ds.sample(500, 7), ds.sample(500, 7)
        assert a.shape == (500, ds.dim) and np.array_equal(a, b), name
        assert not np.array_equal(a, ds.sample(500, 8)), name
    cb = datasets.checkerboard().sample(4000, 0)
    assert np.all(np.abs(cb) <= 2.0)
    assert np.all((np.floor(cb[:, 0]) + np.floor(cb[:, 1])) % 2 == 0)  # black squares only
    # noise 0 has no density (refused); a tiny noise shows the curves themselves
    r = np.linalg.norm(datasets.rings(n_rings=3, noise=1e-13).sample(3000, 0), axis=1)
    np.testing.assert_allclose(np.sort(np.unique(np.round(r, 9))), [1.0, 2.0, 3.0])
    with pytest.raises(bs.BridgesolveInputError, match="noise = 0: a curve without noise"):
        datasets.two_moons(noise=0.0)
    roll = datasets.swiss_roll(noise=1e-13).sample(2000, 0)
    rr = np.linalg.norm(roll, axis=1) * 5.0
    assert rr.min() >= 1.5 * np.pi - 1e-9 and rr.max() <= 4.5 * np.pi + 1e-9
    moons = datasets.two_moons(noise=1e-13).sample(2000, 0)
    upper = np.hypot(moons[:, 0] + 0.5, moons[:, 1] + 0.25)
    lower = np.hypot(moons[:, 0] - 0.5, moons[:, 1] - 0.25)
    assert np.allclose(np.minimum(np.abs(upper - 1), np.abs(lower - 1)), 0.0, atol=1e-12)
    m1 = datasets.mixture1d().sample(20000, 1)
    assert m1.shape == (20000, 1) and abs(m1.mean() - datasets.mixture1d().mixture.mean()[0]) < 0.05
    # files
    pts = np.random.default_rng(0).normal(size=(50, 2))
    np.save(tmp_path / "s.npy", pts)
    (tmp_path / "s.csv").write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in pts))
    for name in ("s.npy", "s.csv"):
        ds = datasets.from_file(tmp_path / name, bandwidth=1e-9)  # the KDE of tiny bandwidth
        assert ds.dim == 2 and ds.density.samples.shape == (50, 2)
        draw = ds.sample(100, 0)
        assert all(any(np.allclose(p, q, atol=1e-7) for q in pts) for p in draw[:10])
    # a [data] file path is read relative to the config's folder
    sub = tmp_path / "cfg"
    sub.mkdir()
    np.save(sub / "pts.npy", pts)
    (sub / "c.toml").write_text('[data]\ntype = "file"\npath = "pts.npy"\n\n'
                                '[process]\ntype = "VE"\n')
    from bridgesolve.learn.config import load_train_config

    ds = load_train_config(sub / "c.toml").dataset()
    assert ds.dim == 2 and ds.density.samples.shape == (50, 2)
    assert ds.density.bandwidth == "scott"
    with pytest.raises(bs.BridgesolveInputError, match="expected a .npy or .csv"):
        datasets.from_file(tmp_path / "s.txt")
    with pytest.raises(bs.BridgesolveInputError, match="does not exist"):
        datasets.from_file(tmp_path / "none.npy")


@pytest.mark.parametrize("section,key,value,match", [
    ("train", "weighting", "l1", "weighting = 'l1'"),
    ("train", "t_min", 2.0, "t_min = 2.0"),
    ("train", "device", "tpu", "device = 'tpu'"),
    ("train", "ema", 1.5, "ema = 1.5"),
    ("train", "stepz", 10, "unknown key 'stepz'"),
    ("model", "width", 0, "width = 0"),
    ("model", "parameterization", "v", "parameterization = 'v'"),
    ("process", "type", "VQ", "type = 'VQ'"),
    ("data", "type", "moons", "type = 'moons'"),
])
def test_config_errors_name_key_and_value(section, key, value, match):
    cfg = small_config()
    cfg.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=match):
        validate_train_config(cfg)


def test_learning_rate_schedule():
    cfg = {"lr": 1e-2, "warmup": 10, "steps": 110, "schedule": "cosine"}
    assert learning_rate(0, cfg) == pytest.approx(1e-3)
    assert learning_rate(9, cfg) == pytest.approx(1e-2)
    assert learning_rate(60, cfg) == pytest.approx(5e-3)
    assert learning_rate(110, cfg) == pytest.approx(0.0, abs=1e-15)


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_interruption_is_bit_identical(tmp_path):
    """An uninterrupted run, a run stopped by an exception from the callback at step 13 and
    one stopped by SIGINT at step 29, each resumed: identical weights, EMA, optimizer
    state and loss history (CPU, seeded). The SIGINT handler is the caller's afterwards
    (whatever it was: background jobs start with SIGINT ignored)."""
    before = signal.getsignal(signal.SIGINT)
    cfg = small_config(steps=40)
    ref = train(cfg, output=tmp_path / "ref", progress=False)
    ref_state = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)

    def stop_at(k, how):
        def cb(step, loss):
            if step == k:
                if how == "raise":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGINT)  # handled: stops after this step
        return cb

    for k, how in ((13, "raise"), (29, "sigint")):
        out = tmp_path / f"int-{how}"
        with pytest.raises(KeyboardInterrupt):
            train(cfg, output=out, progress=False, callback=stop_at(k, how))
        saved = torch.load(out / "checkpoint.pt", weights_only=True)
        assert saved["step"] == k and len(saved["losses"]) == k
        with pytest.raises(bs.BridgesolveInputError, match="--resume"):
            train(cfg, output=out, progress=False)  # refuses to clobber the checkpoint
        res = train(cfg, output=out, resume=True, progress=False)
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert res.step == 40 and state["step"] == 40
        assert _states_equal(state["net"], ref_state["net"]), how
        assert _states_equal(state["ema"], ref_state["ema"]), how
        np.testing.assert_array_equal(res.losses, ref.losses)
        opt_a, opt_b = state["optimizer"]["state"], ref_state["optimizer"]["state"]
        assert all(_states_equal(opt_a[i], opt_b[i]) for i in opt_a)
    # a changed model cannot resume that checkpoint
    bad = small_config(steps=40)
    bad["model"]["width"] = 48
    with pytest.raises(bs.BridgesolveInputError, match="config differs"):
        train(bad, output=tmp_path / "ref", resume=True, progress=False)
    assert signal.getsignal(signal.SIGINT) is before


def test_device_logic():
    assert resolve_device("cpu").type == "cpu"
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(bs.BridgesolveInputError, match="CUDA is not available"):
            resolve_device("cuda")
    # AMP is requested but only used on CUDA: on the CPU training runs in float32
    res = train(small_config(steps=3, amp=True), progress=False)
    assert res.info["amp"] is False and res.info["device"] == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_with_amp_and_cpu_loading(tmp_path):
    """On CUDA: mixed precision, finite losses, a checkpoint that loads on the CPU and gives
    the scores of the CUDA model; resume on CUDA continues the same run."""
    cfg = small_config(steps=60, device="cuda", amp=True)
    res = train(cfg, output=tmp_path / "gpu", progress=False)
    assert res.info["device"].startswith("cuda") and res.info["amp"] in ("bfloat16", "float16")
    assert np.all(np.isfinite(res.losses))
    cpu = load_checkpoint(tmp_path / "gpu", device="cpu")
    x = torch.randn(100, 2)
    t = torch.rand(100) * 0.9 + 0.05
    with torch.no_grad():
        np.testing.assert_allclose(cpu(x, t).numpy(), res.model(x.cuda(), t.cuda()).cpu().numpy(),
                                   rtol=1e-4, atol=1e-4)
    cfg2 = small_config(steps=80, device="cuda", amp=True)
    with pytest.raises(bs.BridgesolveInputError, match="config differs"):
        train(cfg2, output=tmp_path / "gpu", resume=True, progress=False)


def test_trained_network_against_exact_bundle(vp_bundle_2d, tmp_path):
    """A small MLP trained on the CPU (seeded, a few seconds) on the 2D mixture under VP:
    the relative score error at mid times is below 10%, the validator's DSM/ESM numbers
    satisfy the identity, and the bound's score term is finite and positive."""
    cfg = small_config(steps=2000, weighting="sigma2")
    cfg["model"] = {"width": 64, "depth": 3, "fourier_features": 16}
    cfg["train"].update(batch_size=256, lr=3e-3, warmup=100, seed=1, t_min=1e-3)
    res = train(cfg, output=tmp_path / "run", progress=False)
    rep = bs.learn.validate(tmp_path / "run" / "checkpoint.pt", vp_bundle_2d, hs=(),
                            n_mc=2048, device="cpu")
    esm = rep["esm"]
    mid = (esm["times"] >= 0.3) & (esm["times"] <= 0.7)
    rel = np.asarray(esm["relative"])
    print(rep.table())
    assert np.max(rel[mid]) < 0.10, f"relative errors at t in [0.3, 0.7]: {np.round(rel[mid], 4)}"
    dsm = rep["dsm"]
    assert abs(dsm["z"]) < 4.0, f"DSM - ESM - C = {dsm['identity_residual']:.3e}, z = {dsm['z']}"
    # below its training t_min (where -ε̂/σ would diverge at t = 0) the model is evaluated at
    # t_min: finite everywhere, and the bound integrates from t = 0
    assert rep["bound"]["t_start"] == 0.0 and np.all(np.isfinite(esm["per_time"]))
    assert 0 < rep["bound"]["score_term"] < np.inf
    # the model object, the checkpoint and a NumPy wrapper of the model agree
    rep_mod = bs.learn.validate(res.model, vp_bundle_2d, hs=(), n_mc=2048)
    np.testing.assert_allclose(rep_mod["esm"]["per_time"], esm["per_time"], rtol=1e-6)


def test_user_module_trains_and_reloads(tmp_path):
    """Your own nn.Module as the network: trained through the API, its checkpoint reloads
    only with an instance of it."""

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x, t):
            return self.lin(torch.cat([x, t[:, None]], dim=1))

    res = train(small_config(steps=20), net=Tiny(), output=tmp_path / "u", progress=False)
    assert res.info["net"]["type"] == "custom"
    with pytest.raises(bs.BridgesolveInputError, match="pass net="):
        load_checkpoint(tmp_path / "u")
    m = load_checkpoint(tmp_path / "u", net=Tiny(), device="cpu")
    x, t = torch.randn(5, 2), torch.full((5,), 0.5)
    with torch.no_grad():
        np.testing.assert_array_equal(m(x, t).numpy(), res.model(x, t).numpy())
    assert isinstance(ScoreMLP(2), torch.nn.Module)


@pytest.mark.parametrize("weighting,parameterization,process,t_min", [
    ("g2", "eps", bs.VE(0.01, 3.0), 0.01),
    ("none", "eps", bs.SubVP(), 0.2),  # λ = 1 weighs 1/σ² ~ 1e6 at t = 0.01: irreducible noise
    ("sigma2", "score", bs.OU(1.0, 1.5), 0.01),
    ("g2", "eps", bs.VP(), 0.01),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_weightings_parameterizations_and_processes_learn(weighting, parameterization,
                                                          process, t_min):
    """Every weighting, parameterization and process learns: on Gaussian data N(m, s0² I)
    the optimal loss is ``L* = E_t λ/σ² · d (1 - σ²/(a² s0² + σ²))`` and the zero score has
    ``L0 = E_t λ/σ² · d``; 400 steps close most of the gap."""
    s0, m = 0.6, [0.5, -0.5]
    cfg = small_config(steps=400, weighting=weighting, lr=3e-3, t_min=t_min)
    cfg["data"] = {"type": "gaussian_mixture", "weights": [1.0], "means": [m], "covs": [s0**2]}
    cfg["process"] = {"type": type(process).__name__, **{k: v for k, v in vars(process).items()
                                                         if k != "center"}}
    cfg["model"]["parameterization"] = parameterization
    res = train(cfg, progress=False)
    # E_t over U(t_min, T) by Gauss-Legendre
    x, wq = np.polynomial.legendre.leggauss(200)
    T = getattr(process, "T", 1.0)
    t = t_min + (T - t_min) * 0.5 * (x + 1.0)
    av = np.array([process.transition(float(u)) for u in t])
    a, var = av[:, 0], av[:, 1]
    lam = {"g2": process.g(t) ** 2, "sigma2": var, "none": np.ones_like(t)}[weighting]
    L0 = 0.5 * wq @ (lam / var * 2)
    Lstar = 0.5 * wq @ (lam / var * 2 * (1 - var / (a * a * s0 * s0 + var)))
    final = res.losses[-100:].mean()
    print(f"{weighting}/{parameterization}/{type(process).__name__}: L0 {L0:.4g}, "
          f"L* {Lstar:.4g}, final {final:.4g} (gap closed {(L0 - final) / (L0 - Lstar):.0%})")
    assert np.all(np.isfinite(res.losses))
    assert final < Lstar + 0.3 * (L0 - Lstar), f"L0 {L0:.4g}, L* {Lstar:.4g}, final {final:.4g}"
    assert final > Lstar - 0.1 * (L0 - Lstar), f"below the optimum: {final:.4g} < {Lstar:.4g}"


def test_importance_sampled_times_are_unbiased_and_reduce_variance():
    """t ∝ λ/σ² with weights 1/((T - t_min) q): the same expected loss as uniform times
    (within Monte Carlo error) and, for λ = g², a much smaller per-sample variance."""
    from bridgesolve.learn.trainer import TimeSampler

    proc = bs.VP()
    s0, d = 0.7, 2

    class Blurred(torch.nn.Module):  # ε-prediction of a deliberately wrong Gaussian score
        def forward(self, x, t):
            k = Kernel(proc)
            a, var = k.mean_coef(t)[:, None], k.var(t)[:, None]
            return 0.8 * var.sqrt() * x / (a * a * s0 * s0 + var)

    model = ScoreModel(Blurred(), proc, "eps")
    n = 400_000
    means, ses, variances = [], [], []
    for mode in ("uniform", "importance"):
        sampler = TimeSampler(model.kernel, "g2", 1e-3, 1.0, mode)
        rng = np.random.default_rng(5)
        t, w = sampler.sample(rng, n)
        x0 = s0 * rng.standard_normal((n, d))
        eps = rng.standard_normal((n, d))
        with torch.no_grad():
            vals = (torch.as_tensor(w) * dsm_loss(model, torch.as_tensor(x0), torch.as_tensor(t),
                                                  torch.as_tensor(eps), "g2")).numpy()
        assert np.all((t >= 1e-3) & (t <= 1.0))
        means.append(vals.mean())
        variances.append(vals.var())
        ses.append(vals.std() / np.sqrt(n))
    print(f"uniform {means[0]:.4f} ± {ses[0]:.4f}, importance {means[1]:.4f} ± {ses[1]:.4f}; "
          f"variance ratio {variances[1] / variances[0]:.3g}")
    gap = abs(means[0] - means[1])
    assert gap < 4 * np.hypot(*ses), (means, ses)
    assert variances[1] < 0.2 * variances[0], variances
    res = train(small_config(steps=50, weighting="g2", t_sampling="importance"), progress=False)
    assert np.all(np.isfinite(res.losses))


def test_damaged_checkpoints_are_refused_in_one_line(tmp_path):
    """Garbage, empty, truncated and foreign checkpoints, through load_checkpoint and through
    train(resume=True): one BridgesolveInputError line naming the file and what is wrong
    (never an EOFError/pickle/zip traceback)."""
    cfg = small_config(steps=3)
    train(cfg, output=tmp_path / "good", progress=False)
    data = (tmp_path / "good" / "checkpoint.pt").read_bytes()
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    incomplete = tmp_path / "incomplete.pt"
    state = torch.load(tmp_path / "good" / "checkpoint.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "ema"}, incomplete)
    cases = {foreign: "not a bridgesolve checkpoint", incomplete: "missing ema"}
    for name, content, expected in (
            ("garbage", b"not a checkpoint\n" * 40, "not a torch checkpoint"),
            ("empty", b"", "not a torch checkpoint"),
            ("cut", data[: len(data) // 2], "cannot be read"),
            ("tail", data[:-100], "cannot be read")):
        (tmp_path / f"{name}.pt").write_bytes(content)
        cases[tmp_path / f"{name}.pt"] = expected
    for path, expected in cases.items():
        with pytest.raises(bs.BridgesolveInputError) as err:
            load_checkpoint(path, device="cpu")
        msg = str(err.value)
        assert expected in msg and str(path) in msg and "\n" not in msg, (path.name, msg)
        if path.stem not in ("garbage", "cut", "incomplete"):
            continue
        run = tmp_path / f"run-{path.stem}"
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(path.read_bytes())
        with pytest.raises(bs.BridgesolveInputError) as err:
            train(cfg, output=run, resume=True, progress=False)
        msg = str(err.value)
        assert expected in msg and "checkpoint.pt" in msg and "\n" not in msg, (path.name, msg)
    # weights of another network: named, not a torch shape traceback
    other = small_config(steps=3)
    other["model"]["width"] = 16
    train(other, output=tmp_path / "narrow", progress=False)
    state = torch.load(tmp_path / "narrow" / "checkpoint.pt", weights_only=True)
    state["net_info"]["hparams"]["width"] = 32
    torch.save(state, tmp_path / "mixed.pt")
    with pytest.raises(bs.BridgesolveInputError, match="weights do not fit"):
        load_checkpoint(tmp_path / "mixed.pt", device="cpu")
