"""Adapters of other codebases' conventions, by round trips through closed forms.

For every convention, the exact score of a 2D Gaussian mixture is written as that
convention's model output (ε, x0, v, D, F or a velocity, computed from the model's own
inputs: its coordinates and its time variable, inverted independently here), wrapped with
``adapt`` and compared with ``mixture.evolve(process, t).score(x)``. A wrong convention must
fail the same comparison. The Tabulated process is checked against diffusers' schedulers.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

import bridgesolve as bs
from bridgesolve._tabulated import sigmoid_betas
from bridgesolve.learn.adapters import CONVENTIONS, FLOW_PATHS, adapt, describe_conventions
from bridgesolve.process import Cosine, SubVP, Tabulated

MIX = bs.GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.2, -0.3]],
                         [[[0.3, 0.1], [0.1, 0.2]], [[0.25, -0.05], [-0.05, 0.4]]])
TIMES = (0.05, 0.3, 0.62, 0.95)
LINEAR = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
          "beta_schedule": "linear"}
COSINE = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}


def points(n=64, seed=1):
    return np.random.default_rng(seed).normal(scale=1.5, size=(n, 2))


def blurred(alpha: float, sigma: float) -> bs.GaussianMixture:
    """The law of ``alpha x0 + sigma z`` for ``x0 ~ MIX``."""
    return bs.GaussianMixture(MIX.weights, alpha * MIX.means,
                              alpha**2 * MIX.covs + sigma**2 * np.eye(2)[None])


def per_time(fn):
    """A model ``(x, time (N,)) -> out`` from ``fn(x_block, time: float)``, one call per time."""
    def model(x, time):
        x, time = np.asarray(x, dtype=float), np.asarray(time)
        out = np.empty_like(x)
        for u in np.unique(time):
            sel = time == u
            out[sel] = fn(x[sel], u)
        return out
    return model


class TorchModel(torch.nn.Module):
    """A parameterless module computing ``fn`` in float64 (exercises the torch path)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = per_time(fn)

    def forward(self, x, time):
        out = self.fn(x.detach().cpu().numpy(), time.detach().cpu().numpy())
        return torch.as_tensor(out, dtype=x.dtype)


def invert(fn, value, lo=1e-9, hi=1.0):
    """``t`` with ``fn(t) = value`` (fn increasing) by bisection to machine precision."""
    from scipy.optimize import brentq

    return brentq(lambda t: fn(t) - value, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=400)


# -- the models, each in its own convention --------------------------------------------------
def vp_std(t):  # score_sde VPSDE.marginal_prob std, β = 0.1 + 19.9 t
    m = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    return math.sqrt(1.0 - math.exp(2.0 * m))


def subvp_std(t):  # score_sde subVPSDE.marginal_prob std: 1 - e^{2m}, no square root
    m = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    return 1.0 - math.exp(2.0 * m)


def eps_of_label(process, std_fn, scale):
    def fn(x, label):
        t = float(label) / scale
        return -std_fn(t) * MIX.evolve(process, t).score(x)
    return fn


def score_sde_discrete_std(n=1000):
    betas = torch.linspace(0.1 / n, 20.0 / n, n)
    return torch.sqrt(1.0 - torch.cumprod(1.0 - betas, dim=0)).double().numpy()


def discrete_fn(x, label):
    t = float(label) / 999
    return -score_sde_discrete_std()[int(label)] * MIX.evolve(bs.VP(), t).score(x)


def ve_score_fn(x, sigma):  # score_sde VE: the score of p_data * N(0, σ²)
    return blurred(1.0, float(sigma)).score(x)


def diffusers_fn(kind, abar_of_k):
    """unet(x, k): the exact ε / x0 / v of the table's step k (fractional allowed)."""
    def fn(x, k):
        abar = abar_of_k(float(k))
        a, s = math.sqrt(abar), math.sqrt(1.0 - abar)
        S = blurred(a, s).score(x)
        eps, x0 = -s * S, (x + s * s * S) / a
        return {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0}[kind]
    return fn


def table_abar(process):  # ᾱ at fractional k of the Tabulated process: t_k = (k + 1)/N
    n = process.alphas_cumprod.size
    return lambda k: process.transition((k + 1) / n)[0] ** 2


def level_abar(table):  # ᾱ at fractional k, -log ᾱ linear in k (noise-level matching)
    levels = np.concatenate([[0.0], -np.log(table.alphas_cumprod)])
    return lambda k: math.exp(-np.interp(k, np.arange(-1.0, levels.size - 1), levels))


def denoiser_fn(x, sigma):
    return x + sigma**2 * blurred(1.0, float(sigma)).score(x)


def edm_raw_fn(sigma_data, log_time):
    """F(c_in x, time) with D = c_skip x + c_out F; time = ¼ log σ (EDM) or σ (k-diffusion)."""
    def fn(xin, time):
        sigma = math.exp(4.0 * float(time)) if log_time else float(time)
        r = math.sqrt(sigma**2 + sigma_data**2)
        c_skip, c_out, c_in = sigma_data**2 / r**2, sigma * sigma_data / r, 1.0 / r
        x = xin / c_in
        return (denoiser_fn(x, sigma) - c_skip * x) / c_out
    return fn


def flow_fn(path, data_at=1.0):
    """v(x, τ) = E[α' x1 + σ' z | x_τ = x] of the Gaussian path from N(0, I) to MIX."""
    def fn(x, tau):
        u = float(tau) if data_at == 1.0 else 1.0 - float(tau)
        al, sg, dal, dsg = FLOW_PATHS[path][0](u)
        S = blurred(al, sg).score(x)
        v = dal * (x + sg * sg * S) / al + dsg * (-sg * S)
        return v if data_at == 1.0 else -v
    return fn


#: (convention, model fn, process, adapt options, a time mapping check or None)
CASES = {
    "score": ("score", lambda x, t: MIX.evolve(bs.VP(), float(t)).score(x), bs.VP(), {}),
    "score_sde_vp": ("score_sde_vp", eps_of_label(bs.VP(), vp_std, 999.0), None, {}),
    "score_sde_subvp": ("score_sde_subvp", eps_of_label(SubVP(), subvp_std, 999.0), None, {}),
    "score_sde_vp_discrete": ("score_sde_vp_discrete", discrete_fn, None, {}),
    "score_sde_ve": ("score_sde_ve", ve_score_fn, None, {}),
    "diffusers_epsilon": ("diffusers_epsilon", diffusers_fn(
        "epsilon", table_abar(Tabulated.from_scheduler_config(COSINE))), None,
        {"scheduler_config": COSINE}),
    "diffusers_sample": ("diffusers_sample", diffusers_fn(
        "sample", table_abar(Tabulated.from_scheduler_config(LINEAR))), None,
        {"scheduler_config": LINEAR}),
    "diffusers_v": ("diffusers_v", diffusers_fn(
        "v_prediction", table_abar(Tabulated.from_scheduler_config(COSINE))), None,
        {"scheduler_config": COSINE}),
    "diffusers_v_on_vp": ("diffusers", diffusers_fn(
        "v_prediction", level_abar(Tabulated.from_scheduler_config(LINEAR))), bs.VP(),
        {"scheduler_config": {**LINEAR, "prediction_type": "v_prediction"}}),
    "diffusers_eps_on_cosine": ("diffusers_epsilon", diffusers_fn(
        "epsilon", level_abar(Tabulated.from_scheduler_config(COSINE))), Cosine(),
        {"scheduler_config": COSINE}),
    "denoiser_on_vp": ("denoiser", denoiser_fn, bs.VP(), {}),
    "denoiser_on_ve": ("denoiser", denoiser_fn, bs.VE(0.002, 80.0), {}),
    "edm": ("edm", edm_raw_fn(0.5, True), bs.VE(0.002, 80.0), {}),
    "edm_vp": ("edm_vp", edm_raw_fn(0.5, True), bs.VP(), {}),
    "edm_vp_cosine": ("edm_vp", edm_raw_fn(0.5, True), Cosine(), {}),
    "k_diffusion": ("k_diffusion", edm_raw_fn(1.0, False), bs.VP(0.1, 15.0), {}),
    "flow_linear_on_cosine": ("flow_matching", flow_fn("linear"), Cosine(), {}),
    "flow_cosine_on_cosine": ("flow_matching", flow_fn("cosine"), Cosine(), {"path": "cosine"}),
    "flow_linear_on_vp": ("flow_matching", flow_fn("linear"), bs.VP(), {}),
    "flow_sd3_on_subvp": ("flow_matching", flow_fn("linear", 0.0), SubVP(), {"data_at": 0}),
}


def bridgesolve_process(adapted):
    return adapted.process


@pytest.mark.parametrize("torch_module", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_recovers_the_exact_score(case, torch_module):
    convention, fn, process, opts = CASES[case]
    model = TorchModel(fn) if torch_module else per_time(fn)
    score = adapt(model, convention, process=process, **opts)
    x = points()
    for t in TIMES:
        exact = MIX.evolve(score.process, t).score(x)
        got = score(x, t)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        err = np.abs(got - exact).max() / np.abs(exact).max()
        assert err < 1e-10, f"{case} at t = {t}: relative error {err:.2e}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_esm_against_a_bundle_of_its_process(case):
    """Through validate(): the adapted score against an exact bundle of the adapter's own
    process (the 2D mixture on a tensor Gauss grid) has relative ESM at round-off at every
    level t > 0, and the convention check stays quiet."""
    from learn_helpers import analytic_bundle

    from bridgesolve.learn.validation import validate

    convention, fn, process, opts = CASES[case]
    score = adapt(per_time(fn), convention, process=process, **opts)
    bundle = analytic_bundle(MIX, score.process, T=float(getattr(score.process, "T", 1.0)),
                             nt=8, box=6.0, cells=10, order=3)
    rep = validate(score, bundle, hs=(), n_mc=64, progress=False)
    rel = np.asarray(rep["esm"]["relative"][1:])
    print(f"{case}: max relative ESM {rel.max():.2e}")
    assert rel.max() < 1e-9, (case, rel)
    assert not rep["convention_check"]["triggered"]
    assert not any("trained for" in n for n in rep["notes"])


class UNetLike(torch.nn.Module):
    """A small MLP with diffusers' UNet call signature: ``unet(sample, timestep,
    return_dict=True)`` returning an output object whose ``.sample`` is the prediction."""

    def __init__(self, fn):
        super().__init__()
        self.fn = per_time(fn)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.SiLU(),
                                       torch.nn.Linear(8, 2)).double()

    def forward(self, sample, timestep, return_dict: bool = True):
        x = torch.cat([sample, timestep.to(sample.dtype)[:, None]], dim=1)
        eps = torch.as_tensor(self.fn(sample.numpy(), timestep.numpy()), dtype=sample.dtype)
        out = eps + 0.0 * self.mlp(x)  # the MLP runs; the exact ε keeps the check exact
        if not return_dict:
            return (out,)
        from types import SimpleNamespace

        return SimpleNamespace(sample=out)


@pytest.mark.parametrize("return_dict", [True, False])
def test_a_unet_signature_module_is_unwrapped(return_dict):
    convention, fn, process, opts = CASES["diffusers_epsilon"]
    unet = UNetLike(fn)

    class Tuple(torch.nn.Module):  # unet(sample, timestep, return_dict=False): a tuple
        def __init__(self):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep):
            return self.unet(sample, timestep, return_dict=False)

    score = adapt(unet if return_dict else Tuple(), convention, process=process, **opts)
    x = points()
    for t in TIMES:
        exact = MIX.evolve(score.process, t).score(x)
        err = np.abs(score(x, t) - exact).max() / np.abs(exact).max()
        assert err < 1e-10, f"return_dict={return_dict} at t = {t}: {err:.2e}"


def test_every_convention_is_covered():
    covered = {CASES[c][0] for c in CASES}
    assert covered == set(CONVENTIONS), set(CONVENTIONS) - covered
    text = describe_conventions()
    assert all(name in text for name in CONVENTIONS)


#: A model in one convention wrapped as another: the comparison above must fail.
WRONG = [("diffusers_epsilon", "diffusers_sample"), ("diffusers_v", "diffusers_epsilon"),
         ("edm_vp", "k_diffusion"), ("score_sde_vp", "score_sde_subvp"),
         ("flow_linear_on_cosine", "flow_cosine_on_cosine"), ("denoiser_on_vp", "edm_vp"),
         ("score_sde_vp_discrete", "score_sde_vp")]


@pytest.mark.parametrize("right,wrong", WRONG)
def test_a_wrong_convention_gives_a_large_error(right, wrong):
    _, fn, _, _ = CASES[right]
    convention, _, process, opts = CASES[wrong]
    score = adapt(per_time(fn), convention, process=process, **opts)
    x = points()
    errs = []
    for t in TIMES:
        exact = MIX.evolve(score.process, t).score(x)
        errs.append(np.abs(score(x, t) - exact).max() / np.abs(exact).max())
    threshold = 1e-4 if right == "score_sde_vp_discrete" else 1e-2
    assert max(errs) > threshold, f"{right} read as {wrong}: errors {errs}"


def test_torch_in_torch_out_with_gradients():
    convention, fn, process, opts = CASES["edm_vp"]

    class Quadratic(torch.nn.Module):  # differentiable: F = x_in * (1 + time)
        def forward(self, x, time):
            return x * (1.0 + time[:, None])

    score = adapt(Quadratic(), "edm_vp", process=bs.VP())
    x = torch.tensor(points(8), dtype=torch.float64, requires_grad=True)
    out = score(x, 0.4)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    np.testing.assert_allclose(out.detach().numpy(), score(x.detach().numpy(), 0.4),
                               rtol=1e-14)


def test_times_per_point_and_time_shapes():
    convention, fn, process, opts = CASES["diffusers_sample"]
    score = adapt(per_time(fn), convention, process=process, **opts)
    x = points(40)
    t = np.repeat([0.1, 0.5, 0.9, 0.3], 10)
    want = np.concatenate([score(x[i:i + 10], t[i]) for i in range(0, 40, 10)])
    np.testing.assert_allclose(score(x, t), want, rtol=1e-14)
    seen = []

    def column(x, time):
        seen.append(np.shape(time))
        return per_time(fn)(x, np.asarray(time).ravel())

    adapt(column, convention, time_shape="column", **opts)(x, t)
    assert seen == [(40, 1)]
    seen.clear()

    def scalar(x, time):
        seen.append(type(time))
        return fn(x, time)

    np.testing.assert_allclose(adapt(scalar, convention, time_shape="scalar", **opts)(x, t),
                               want, rtol=1e-14)
    assert seen == [float] * 4


def test_diffusers_timesteps_fractional_and_integer():
    table = Tabulated.from_scheduler_config(LINEAR)
    seen = []

    def model(x, k):
        seen.append(np.asarray(k))
        return np.zeros_like(x)

    x = points(4)
    adapt(model, "diffusers_epsilon", scheduler_config=LINEAR)(x, 0.3 + 0.4e-3)
    np.testing.assert_allclose(seen[-1], 299.4, rtol=1e-12)  # t_k = (k + 1)/N
    score = adapt(model, "diffusers_epsilon", scheduler_config=LINEAR, integer_timesteps=True)
    score(x, 0.3 + 0.4e-3)
    assert seen[-1].dtype == np.int64 and np.all(seen[-1] == 299)
    assert score.t_min == pytest.approx(1e-3) and score.process.describe() == table.describe()
    # integer steps: the score of step k, at its time t_k
    fn = diffusers_fn("epsilon", table_abar(table))
    score = adapt(per_time(fn), "diffusers_epsilon", scheduler_config=LINEAR,
                  integer_timesteps=True)
    np.testing.assert_allclose(score(x, 0.3 + 0.4e-3), MIX.evolve(table, 0.3).score(x),
                               rtol=1e-10)


def test_diffusers_scheduler_round_trip():
    """Oracle models that return the very ε, x0 and v diffusers' scheduler used: the adapted
    score is the conditional score -(x - a_k x0)/s_k² of the noised sample at t_k."""
    diffusers = pytest.importorskip("diffusers")
    rng = np.random.default_rng(3)
    x0, eps = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    for cfg in (LINEAR, COSINE):
        sched = diffusers.DDPMScheduler(**cfg)
        for k in (0, 17, 500, 999):
            kt = torch.full((6,), k, dtype=torch.long)
            x = sched.add_noise(torch.tensor(x0), torch.tensor(eps), kt).numpy()
            v = sched.get_velocity(torch.tensor(x0), torch.tensor(eps), kt).numpy()
            abar = float(sched.alphas_cumprod[k])
            want = -(x - math.sqrt(abar) * x0) / (1.0 - abar)
            for conv, out in (("diffusers_epsilon", eps), ("diffusers_sample", x0),
                              ("diffusers_v", v)):
                def oracle(xin, time, out=out, k=k, x=x):
                    np.testing.assert_allclose(time, k, atol=1e-9)
                    np.testing.assert_allclose(xin, x, rtol=1e-12)
                    return out
                got = adapt(oracle, conv, scheduler_config=cfg)(x, (k + 1) / 1000)
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9,
                                           err_msg=f"{conv} k = {k}")


# -- the Tabulated process ------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [
    LINEAR, COSINE,
    {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
     "beta_schedule": "scaled_linear"},
    {"num_train_timesteps": 37, "beta_start": 0.001, "beta_end": 0.2, "beta_schedule": "linear"},
    {"num_train_timesteps": 4000, "beta_schedule": "squaredcos_cap_v2"},
    {"trained_betas": list(np.linspace(1e-3, 0.05, 50))},
    {"num_train_timesteps": 1000, "beta_schedule": "laplace"},
    {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
     "beta_schedule": "sigmoid"},
    {"num_train_timesteps": 37, "beta_start": 1e-7, "beta_end": 2e-3, "beta_schedule": "sigmoid"},
], ids=["linear", "cosine", "scaled_linear", "linear37", "cosine4000", "trained", "laplace",
        "sigmoid", "sigmoid37"])
def test_tabulated_reproduces_diffusers_alphas_cumprod(cfg):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(**cfg)
    ref = sched.alphas_cumprod.double().numpy()
    if cfg.get("beta_schedule") == "sigmoid":  # torch's own float32 sigmoid: the same betas
        np.testing.assert_array_equal(
            sigmoid_betas(cfg["beta_start"], cfg["beta_end"], cfg["num_train_timesteps"]),
            sched.betas.numpy())
    proc = Tabulated.from_scheduler_config(cfg)
    np.testing.assert_allclose(proc.alphas_cumprod, ref, rtol=0, atol=1e-12)
    got = np.array([proc.transition(t)[0] ** 2 for t in proc.times])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    tt = np.linspace(0.0, proc.T, 20001)
    assert np.all(proc.beta(tt) > 0) and np.all(proc.beta(proc.times) > 0)
    np.testing.assert_allclose(proc.timestep(proc.times), np.arange(ref.size), atol=1e-9)


def test_tabulated_transition_is_the_discrete_forward_process():
    """x_k | x_j of DDPM is N(sqrt(ᾱ_k/ᾱ_j) x_j, 1 - ᾱ_k/ᾱ_j): the product of the steps
    sqrt(1 - β_i) x + sqrt(β_i) z between them."""
    proc = Tabulated.from_scheduler_config(COSINE)
    abar = proc.alphas_cumprod
    betas = 1.0 - abar / np.concatenate([[1.0], abar[:-1]])
    for j, k in ((-1, 0), (-1, 999), (10, 11), (100, 700), (998, 999)):
        a, var = proc.transition(proc.times[k], 0.0 if j < 0 else proc.times[j])
        steps = betas[j + 1:k + 1]
        a_steps = np.prod(np.sqrt(1.0 - steps))
        assert a == pytest.approx(a_steps, rel=1e-12)
        assert var == pytest.approx(1.0 - a_steps**2, rel=1e-12)
    # the integrals the PDE engine uses agree with the transition
    t0, t1 = 0.21, 0.77
    assert math.exp(-proc.drift_rate_integral(t0, t1)) == pytest.approx(
        proc.transition(t1, t0)[0], rel=1e-14)
    assert proc.separable and proc.linear


def test_tabulated_describes_and_rebuilds():
    proc = Tabulated.from_scheduler_config(LINEAR)
    back = bs.Process.from_description(proc.describe())
    assert isinstance(back, Tabulated) and back.describe() == proc.describe()
    custom = Tabulated([0.9, 0.5, 0.1], times=[0.2, 0.5, 0.7])
    assert custom.T == 0.7 and bs.Process.from_description(custom.describe()).T == 0.7
    assert custom.transition(0.5)[0] ** 2 == pytest.approx(0.5, rel=1e-14)
    assert "Tabulated" in repr(custom)


@pytest.mark.parametrize("kwargs,match", [
    ({"alphas_cumprod": [0.9, 0.95]}, "strictly decreasing"),
    ({"alphas_cumprod": [0.9, 1.0]}, "strictly decreasing"),
    ({"alphas_cumprod": [[0.9]]}, "1D"),
    ({"alphas_cumprod": [0.9, 0.5], "times": [0.5, 0.4]}, "strictly increasing"),
])
def test_tabulated_bad_tables(kwargs, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        Tabulated(**kwargs)


def test_tabulated_refuses_times_past_T():
    with pytest.raises(bs.BridgesolveInputError, match=r"expected a time in \[0, T"):
        Tabulated([0.9, 0.5]).transition(1.5)


@pytest.mark.parametrize("cfg,match", [
    ({"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02},
     "no 'num_train_timesteps'"),
    ({"num_train_timesteps": 1000}, "no 'beta_schedule'"),
    ({"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_end": 0.02},
     "no 'beta_start'"),
    ({"num_train_timesteps": 1000, "beta_schedule": "sigmoid"}, "no 'beta_start'"),
    ({"num_train_timesteps": 1000, "beta_schedule": "sigmoid_v2"},
     "beta_schedule = 'sigmoid_v2'"),
    ({"num_train_timesteps": 0, "beta_schedule": "squaredcos_cap_v2"}, "positive integer"),
    ({**COSINE, "rescale_betas_zero_snr": True}, "zero terminal"),
])
def test_scheduler_config_errors(cfg, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        Tabulated.from_scheduler_config(cfg)


def test_sigmoid_schedule_without_torch(monkeypatch):
    """Without torch, NumPy float32 with a correctly rounded exp: betas within 2 ulps of
    torch's sigmoid, and the same alphas_cumprod here (1 - β rounds the difference away)."""
    cfg = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
           "beta_schedule": "sigmoid"}
    with_torch = Tabulated.from_scheduler_config(cfg).alphas_cumprod
    betas = sigmoid_betas(1e-4, 0.02, 1000)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    fallback = sigmoid_betas(1e-4, 0.02, 1000)
    ulps = np.abs(fallback.view(np.int32).astype(np.int64) - betas.view(np.int32))
    assert fallback.dtype == np.float32 and ulps.max() <= 2
    np.testing.assert_allclose(Tabulated.from_scheduler_config(cfg).alphas_cumprod, with_torch,
                               rtol=0, atol=1e-9)  # measured: identical


def test_scheduler_config_from_json(tmp_path):
    import json

    path = tmp_path / "scheduler_config.json"
    path.write_text(json.dumps({"_class_name": "DDPMScheduler", **LINEAR}))
    assert Tabulated.from_scheduler_config(path).describe() == \
        Tabulated.from_scheduler_config(LINEAR).describe()
    assert Tabulated.from_scheduler_config(tmp_path).T == 1.0  # the folder holding it
    with pytest.raises(bs.BridgesolveInputError, match="does not exist"):
        Tabulated.from_scheduler_config(tmp_path / "missing.json")


# -- bad input of adapt ---------------------------------------------------------------------
def zeros(x, t):
    return np.zeros_like(x)


class FirstColumn(torch.nn.Module):
    def forward(self, x, time):
        return x[:, :1]


@pytest.mark.parametrize("call,match", [
    (lambda: adapt(zeros, "ddim"), "expected one of score, score_sde_vp"),
    (lambda: adapt(zeros, "edm"), "needs process="),
    (lambda: adapt(zeros, "diffusers_epsilon"), "needs scheduler_config="),
    (lambda: adapt(zeros, "diffusers"), "needs scheduler_config="),
    (lambda: adapt(zeros, "diffusers", scheduler_config=LINEAR), "has none"),
    (lambda: adapt(zeros, "diffusers_v",
                   scheduler_config={**LINEAR, "prediction_type": "epsilon"}),
     "prediction_type = 'epsilon'"),
    (lambda: adapt(zeros, "flow_matching", process=Cosine(), path="ot"), "path = 'ot'"),
    (lambda: adapt(zeros, "score_sde_vp_discrete", process=bs.VE()), "expected a VP"),
    (lambda: adapt(zeros, "denoiser", process="VP"), "expected a bridgesolve Process"),
    (lambda: adapt(zeros, "score", time_shape="row"), "time_shape = 'row'"),
    (lambda: adapt(42, "score"), "expected a torch.nn.Module or a callable"),
    (lambda: adapt(lambda x, t: x[:, :1], "score")(points(3), 0.5), r"returned shape \(3, 1\)"),
    (lambda: adapt(FirstColumn(), "edm_vp", process=bs.VP())(points(3), 0.5),
     r"returned shape \(3, 1\): expected \(3, 2\)"),
    (lambda: adapt(zeros, "edm", process=bs.VP())(points(3), 0.5), "use convention 'edm_vp'"),
    (lambda: adapt(zeros, "edm_vp", process=bs.VP(), t_min=0.0)(points(3), 0.0), "σ = 0"),
    (lambda: adapt(zeros, "score")(points(3), np.ones(2)), "one time per point"),
])
def test_adapt_bad_input(call, match):
    with pytest.raises(bs.BridgesolveInputError, match=match):
        call()


def test_adapted_score_validates_against_a_bundle(vp_bundle_2d):
    """validate() reads the adapter's process and t_min: a score_sde ε-model of the exact
    score has no error against the exact VP bundle (up to the floor t_min = 1e-5)."""
    from bridgesolve.learn.validation import validate

    _, fn, _, _ = CASES["score_sde_vp"]
    mix = vp_bundle_2d.data()

    def eps(x, label):
        t = float(label) / 999
        return -vp_std(t) * mix.evolve(bs.VP(), t).score(x)

    score = adapt(TorchModel(eps), "score_sde_vp")
    rep = validate(score, vp_bundle_2d, hs=(), n_mc=256, progress=False)
    assert rep["score"].endswith("(score_sde_vp)")
    assert max(rep["esm"]["relative"][1:]) < 1e-9
    assert rep["notes"] == [] or not any("trained for" in n for n in rep["notes"])


# -- bridgesolve validate --convention ------------------------------------------------------
class _GaussianEps(torch.nn.Module):
    """score_sde VP ε-model of data N(0, I), whose VP marginals are all N(0, I): ε̂ = σ(t) x."""

    def forward(self, x, label):
        t = label / 999.0
        m = -0.25 * t * t * 19.9 - 0.05 * t
        return torch.sqrt(1.0 - torch.exp(2.0 * m))[:, None] * x


def test_validate_cli_with_a_convention(tmp_path, capsys):
    from learn_helpers import analytic_bundle

    from bridgesolve.cli import main

    gauss = bs.GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    ref = analytic_bundle(gauss, bs.VP(), nt=8, box=5.0, cells=6, order=3).save(
        tmp_path / "ref.npz", dtype="float64")
    net = tmp_path / "eps.pt"
    torch.jit.script(_GaussianEps()).save(str(net))
    rep = tmp_path / "report"
    base = ["validate", "--score", str(net), "--reference", str(ref), "--hs", "--n-mc", "64",
            "--quiet"]
    assert main([*base, "--convention", "score_sde_vp", "-o", str(rep)]) == 0
    import json

    data = json.loads((rep / "summary.json").read_text())
    assert data["score"].endswith("(score_sde_vp)")
    assert max(data["esm"]["relative"][1:]) < 1e-9
    capsys.readouterr()
    bad = tmp_path / "not_torchscript.pt"
    bad.write_text("no")
    for extra, message in (
            (["--convention", "score_sde_vp", "--scheduler-config", str(tmp_path / "s.json")],
             "expected a diffusers convention"),
            (["--scheduler-config", str(tmp_path / "s.json")], "without --convention"),
            (["--convention", "edm", "--score", str(bad)], "expected a TorchScript module"),
            (["--convention", "edm", "--score", str(tmp_path)], "expected a TorchScript or .pt2"),
            (["--convention", "diffusers_epsilon"], "needs scheduler_config=")):
        assert main([*base, *extra, "-o", str(tmp_path / "r2")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
    # a torch.export archive, batch dimension dynamic
    batch = torch.export.Dim("batch")
    example = (torch.zeros(4, 2, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    exported = torch.export.export(_GaussianEps(), example,
                                   dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(exported, str(tmp_path / "eps.pt2"))
    rep2 = tmp_path / "report2"
    args = [*base, "--convention", "score_sde_vp", "-o", str(rep2)]
    args[args.index(str(net))] = str(tmp_path / "eps.pt2")
    assert main(args) == 0
    assert max(json.loads((rep2 / "summary.json").read_text())["esm"]["relative"][1:]) < 1e-9


def test_validate_help_lists_the_conventions(capsys):
    from bridgesolve.cli import main

    try:
        assert main(["validate", "--help"]) == 0
    except SystemExit as exc:
        assert exc.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in CONVENTIONS) and "--scheduler-config" in text
