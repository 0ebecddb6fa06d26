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


def test_every_mistake_has_a_case():
    assert set(wrong_scores(None)) == {m.name for m in MISTAKES}


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
