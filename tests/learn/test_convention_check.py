"""The convention check of validate(): each usual mistake, made on purpose on the exact
score of a 2D Gaussian mixture, is named; the exact score itself gets no note.

The wrong scores are written from the closed form of the mixture under VP(0.1, 20)
(``x_t = α x_0 + std ε``), each as the mistake makes it: ε̂ = -std ∇log p handed in as the
score, the VE-coordinate score ``α ∇log p(α y)`` handed in at VP points, and so on.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from learn_helpers import exact_score

import bridgesolve as bs
from bridgesolve.learn._validation_conventions import MISTAKES, TRIGGER
from bridgesolve.learn.validation import validate

PROC = bs.VP()


def _std(t):
    return math.sqrt(PROC.transition(t)[1])


def _alpha(t):
    return PROC.transition(t)[0]


def wrong_scores(S):
    """name -> the score as each mistake hands it in, from the exact score ``S(x, t)``."""
    return {
        "epsilon": lambda x, t: -_std(t) * S(x, t),
        "epsilon_unscaled": lambda x, t: _std(t) * S(x, t),
        "sign": lambda x, t: -S(x, t),
        "sigma_for_std": lambda x, t: _alpha(t) * S(x, t),
        "std_for_sigma": lambda x, t: S(x, t) / _alpha(t),
        "reversed_time": lambda x, t: S(x, 1.0 - t),
        "time_999": lambda x, t: S(x, t / 999.0),
        "time_raw": lambda x, t: S(x, 999.0 * t),
        "ve_coordinates": lambda x, t: _alpha(t) * S(_alpha(t) * x, t),
        "vp_coordinates": lambda x, t: S(x / _alpha(t), t) / _alpha(t),
    }


#: What the note of each mistake must say: what the score looks like, the fixed expression
#: and the advice (fragments written out here, not read from MISTAKES).
ADVICE = {
    "epsilon": ("looks like ε̂ (the network's noise prediction)", "as −ε̂/std",
                "divide by −std(t)", "convention='score_sde_vp' (or 'diffusers_epsilon')"),
    "epsilon_unscaled": ("negated but not divided by std", "as given/std",
                         "the score is −ε̂/std(t): divide by std(t)"),
    "sign": ("−∇log p (the sign flipped)", "as −(given)", "flip the sign of the score"),
    "sigma_for_std": ("α(t) times the score", "as given/α(t)",
                      "divide ε̂ by std(t) = √(1−ᾱ), not by σ = std/α"),
    "std_for_sigma": ("the score divided by α(t)", "as α(t)·given",
                      "multiply the score by α(t)"),
    "reversed_time": ("a score in reversed time", "as s(x, T − t)", "evaluate it at T − t",
                      "convention='flow_matching' with data_at="),
    "time_999": ("time label 999 t", "as s(x, 999 t)", "feed the label 999 t",
                 "(convention='diffusers_epsilon')"),
    "time_raw": ("a network of t ∈ [0, T] that was given 999 t", "as s(x, t/999)",
                 "feed bridgesolve's time t itself (convention='score')"),
    "ve_coordinates": ("a score in VE coordinates", "as s(x/α, t)/α",
                       "convert s_VP(x) = s_VE(x/α)/α", "convention='edm_vp' or 'denoiser'"),
    "vp_coordinates": ("a VP score converted to VE coordinates once too often",
                       "as α s(α x, t)", "drop the x → x/α conversion"),
}


def test_every_mistake_has_a_case():
    assert set(wrong_scores(None)) == {m.name for m in MISTAKES} == set(ADVICE)


@pytest.mark.parametrize("name", [m.name for m in MISTAKES])
def test_each_mistake_is_named(vp_bundle_2d, name):
    S = exact_score(vp_bundle_2d.data(), PROC)
    wrong = wrong_scores(S)[name]
    with pytest.warns(RuntimeWarning, match="convention check") as caught:
        rep = validate(wrong, vp_bundle_2d, hs=(), n_mc=64, progress=False)
    check = rep["convention_check"]
    ranked = sorted(check["candidates"].items(), key=lambda kv: kv[1])
    print(name, f"given {check['given']:.3g}", [(k, f"{v:.2g}") for k, v in ranked[:3]])
    assert check["triggered"]
    assert max(check["mid_relative"], check["early_max_relative"]) > TRIGGER
    assert check["best"] == name, ranked
    # the exact score comes back once the mistake is undone: quadrature round-off
    assert check["candidates"][name] < 1e-8, check["candidates"][name]
    note = next(n for n in rep["notes"] if n.startswith("convention check"))
    assert f"{check['given']:.3g} as given" in note
    assert any(f"{check['given']:.3g} as given" in str(w.message) for w in caught)
    for fragment in ADVICE[name]:
        assert fragment in note, (name, fragment, note)
    assert "conventions" not in check  # a plain callable: no sibling readings


def test_the_epsilon_message_names_the_fix(vp_bundle_2d):
    S = exact_score(vp_bundle_2d.data(), PROC)
    with pytest.warns(RuntimeWarning, match="convention check"):
        rep = validate(wrong_scores(S)["epsilon"], vp_bundle_2d, hs=(), n_mc=64,
                       progress=False)
    note = next(n for n in rep["notes"] if n.startswith("convention check"))
    assert "looks like ε̂" in note and "as −ε̂/std" in note
    assert "convention='score_sde_vp'" in note and "divide by −std(t)" in note


def test_the_exact_score_gets_no_note(vp_bundle_2d):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rep = validate(exact_score(vp_bundle_2d.data(), PROC), vp_bundle_2d, hs=(), n_mc=64,
                       progress=False)
    check = rep["convention_check"]
    assert set(check) == {"triggered", "mid_relative", "early_max_relative"}
    assert not check["triggered"]
    assert max(check["mid_relative"], check["early_max_relative"]) < 1e-9
    assert not any("convention check" in n for n in rep["notes"])


def test_a_score_no_mistake_explains_is_said_so(vp_bundle_2d):
    """A score far off for another reason (a constant shift) is flagged as unexplained."""
    S = exact_score(vp_bundle_2d.data(), PROC, shift=np.array([3.0, -2.0]))
    with pytest.warns(RuntimeWarning, match="none of the usual convention mistakes"):
        rep = validate(S, vp_bundle_2d, hs=(), n_mc=64, progress=False)
    check = rep["convention_check"]
    assert check["triggered"] and check["best"] is None
    assert min(check["candidates"].values()) > 0.2, check["candidates"]
    assert "conventions" not in check and "fix" not in check


def test_a_torch_epsilon_network_is_named(vp_bundle_2d):
    """A score_sde VP ε-network (a torch module of the label 999 t) read with convention
    'score_sde_vp' passes; its raw ε̂ wrapped as a score of label 999 t is named ε̂."""
    torch = pytest.importorskip("torch")
    from bridgesolve.learn.adapters import adapt

    mix = vp_bundle_2d.data()
    S = exact_score(mix, PROC)

    class Eps(torch.nn.Module):
        def forward(self, x, label):
            x_np, t = x.detach().numpy(), float(label[0]) / 999.0
            return torch.as_tensor(-_std(t) * S(x_np, t), dtype=x.dtype)

    right = validate(adapt(Eps(), "score_sde_vp"), vp_bundle_2d, hs=(), n_mc=64,
                     progress=False)
    assert not right["convention_check"]["triggered"]

    def as_if_score(x, t):  # the network's ε̂ at label 999 t, taken as the score
        return Eps()(torch.as_tensor(x), torch.full((x.shape[0],), 999.0 * t)).numpy()

    with pytest.warns(RuntimeWarning, match="looks like ε̂"):
        wrong = validate(as_if_score, vp_bundle_2d, hs=(), n_mc=64, progress=False)
    assert wrong["convention_check"]["best"] == "epsilon"


# -- an adapted model read under a sibling convention --------------------------------------
#: Per WRONG pair of test_adapters (right, wrong): the reading the check must name, its adapt
#: call and its CLI form.
SIBLINGS = {
    ("diffusers_epsilon", "diffusers_sample"): (
        "diffusers_epsilon", "adapt(model, 'diffusers_epsilon', ...)",
        "--convention diffusers_epsilon"),
    ("diffusers_v", "diffusers_epsilon"): (
        "diffusers_v", "adapt(model, 'diffusers_v', ...)", "--convention diffusers_v"),
    ("edm_vp", "k_diffusion"): ("edm_vp", "adapt(model, 'edm_vp', ...)", "--convention edm_vp"),
    ("score_sde_vp", "score_sde_subvp"): (
        "score_sde_vp on VP(beta_min=0.1, beta_max=20.0, T=1.0)",
        "adapt(model, 'score_sde_vp', ...)",
        "--convention score_sde_vp with a bundle of VP(beta_min=0.1, beta_max=20.0, T=1.0)"),
    ("flow_linear_on_cosine", "flow_cosine_on_cosine"): (
        "flow_matching(path='linear')", "adapt(model, 'flow_matching', path='linear', ...)",
        "--convention flow_matching"),
    ("denoiser_on_vp", "edm_vp"): (
        "denoiser", "adapt(model, 'denoiser', ...)", "--convention denoiser"),
}
#: Below the trigger: the discrete DDPM σ table read as the continuous VP differs by 2.6e-3
#: (relative), less than any trained network's own error, so the check does not run.
QUIET = ("score_sde_vp_discrete", "score_sde_vp")


def _misread(right, wrong):
    """The model of case ``right`` adapted as case ``wrong`` (its convention, process and
    options), with the model's own scheduler config: a diffusers network comes with its
    scheduler, the mistake is the prediction type."""
    from test_adapters import CASES, per_time

    from bridgesolve.learn.adapters import adapt

    _, fn, _, right_opts = CASES[right]
    convention, _, process, opts = CASES[wrong]
    if "scheduler_config" in opts and "scheduler_config" in right_opts:
        opts = {**opts, "scheduler_config": right_opts["scheduler_config"]}
    return fn, adapt(per_time(fn), convention, process=process, **opts)


def _bundle_of(process):
    from learn_helpers import analytic_bundle
    from test_adapters import MIX

    return analytic_bundle(MIX, process, T=float(getattr(process, "T", 1.0)), nt=8, box=6.0,
                           cells=10, order=3)


def test_every_wrong_pair_has_a_sibling_case():
    from test_adapters import WRONG

    assert set(WRONG) == set(SIBLINGS) | {QUIET}


@pytest.mark.parametrize("right,wrong", sorted(SIBLINGS))
def test_a_wrong_convention_is_named_with_its_fix(right, wrong):
    from test_adapters import CASES, per_time

    from bridgesolve.learn.adapters import adapt

    key, call, cli = SIBLINGS[right, wrong]
    fn, score = _misread(right, wrong)
    with pytest.warns(RuntimeWarning, match="convention check: the model reads as") as caught:
        rep = validate(score, _bundle_of(score.process), hs=(), n_mc=64, progress=False)
    check = rep["convention_check"]
    as_given = np.asarray(rep["esm"]["relative"][1:]).max()
    ranked = sorted(check["conventions"].items(), key=lambda kv: kv[1])
    assert check["triggered"] and check["best"] == key, ranked[:3]
    assert check["conventions"][key] < 1e-9 and check["given"] > 0.1, check
    assert check["fix"] == call
    note = next(n for n in rep["notes"] if n.startswith("convention check"))
    assert f"the model reads as {call}, not as adapt(model, {score.convention!r}" in note
    assert f"fix: {call} with your other options" in note and cli in note, note
    assert any(note == str(w.message) for w in caught)
    # the suggested reading, on a bundle of its process, is exact
    convention, _, process, opts = CASES[right]
    fixed = adapt(per_time(fn), convention, process=process, **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        good = validate(fixed, _bundle_of(fixed.process), hs=(), n_mc=64, progress=False)
    after = np.asarray(good["esm"]["relative"][1:]).max()
    print(f"{right} read as {wrong}: max relative ESM {as_given:.3g} as given "
          f"(check {check['given']:.3g}), {after:.2g} as {call}")
    assert after < 1e-9 and not good["convention_check"]["triggered"]


def test_a_misread_below_the_trigger_stays_quiet():
    fn, score = _misread(*QUIET)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rep = validate(score, _bundle_of(score.process), hs=(), n_mc=64, progress=False)
    rel = np.asarray(rep["esm"]["relative"][1:]).max()
    assert 1e-4 < rel < 1e-2 and not rep["convention_check"]["triggered"], rel


def test_the_sibling_readings_skip_the_given_and_the_impossible():
    """An ε-network on a VP process: the readings are built once each, the given reading
    and the ones adapt refuses (edm needs a = 1, diffusers a table) are left out."""
    from test_adapters import CASES, per_time

    from bridgesolve.learn._validation_siblings import readings
    from bridgesolve.learn.adapters import adapt

    _, fn, process, opts = CASES["denoiser_on_vp"]
    keys = [r.key for r in readings(adapt(per_time(fn), "denoiser", process=process, **opts))]
    assert len(keys) == len(set(keys))
    assert "denoiser" not in keys and "edm" not in keys
    assert not any(k.startswith("diffusers") for k in keys)
    assert {"score", "edm_vp", "k_diffusion", "score_sde_vp", "score_sde_ve on VE(sigma_min="
            "0.01, sigma_max=50.0, T=1.0)", "flow_matching"} <= set(keys), keys
