r"""The convention check of :func:`~bridgesolve.learn.validate`: when a score is far off,
which of the usual conversion mistakes explains it?

A wrong conversion of another codebase's network (issue 22) gives a large explicit
score-matching error and no hint why. When the relative error at mid times (levels in
``[¼T, ¾T]``) has median above :data:`TRIGGER`, or exceeds it somewhere in
``[T/20, T/2]`` (ε̂ negated but not divided by std is wrong by the factor ``1 - std``,
large only at small times), the user's callable ``s`` is transformed
by the inverse of each usual mistake and measured again against the bundle at a few
levels (:data:`CHECK_FRACTIONS` of T) on :data:`CHECK_POINTS` points per level, drawn
with probability ``w_i p(x_i, t)`` (seeded), so that

.. math::
    r^2 \approx \frac{\sum_j |s'(x_j, t) - ∇\log p(x_j, t)|^2}{\sum_j |∇\log p(x_j, t)|^2}

estimates the relative error of ``s'``. With ``(α, std²) = process.transition(t)``
(``x_t = α x_0 + std ε``) the transformations are

====================  ===========================================  ===================
mistake               the score it undoes                          ``s'(x, t)``
====================  ===========================================  ===================
``epsilon``           ε̂ taken as the score                        ``-s(x, t)/std(t)``
``epsilon_unscaled``  −ε̂ taken as the score (no division by std)  ``s(x, t)/std(t)``
``sign``              ``-∇log p``                                  ``-s(x, t)``
``sigma_for_std``     divided by σ = std/α instead of std          ``s(x, t)/α(t)``
``std_for_sigma``     divided by std instead of σ = std/α          ``α(t) s(x, t)``
``reversed_time``     t = 0 is noise (flow matching, some DDPMs)   ``s(x, T - t)``
``time_999``          a network of the label 999 t given t         ``s(x, 999 t)``
``time_raw``          a network of t given 999 t                   ``s(x, t/999)``
``ve_coordinates``    a VE-coordinate score (x/α, σ = std/α)       ``s(x/α, t)/α``
``vp_coordinates``    a VP score converted to VE coordinates       ``α s(α x, t)``
====================  ===========================================  ===================

(the α ones only where α differs from 1 at the check times; those of the process only
for linear processes). For an adapted score (``adapt(model, convention, ...)``) the model
is also read under each sibling convention (ε̂ against x̂₀ or v̂, σ_data, VP against
sub-VP, the flow path, denoiser against EDM: :mod:`~bridgesolve.learn._validation_siblings`)
and measured the same way; a reading that fits is named with its ``adapt`` call and
``--convention``. The relative errors are averaged over the check levels. The best
fit is named when its error is below :data:`FIT` and below :data:`IMPROVEMENT` times the
error as given; when none fits, a note says so if the mid-time error triggered the check
(a score large in error only at small times is not evidence of a mistake).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridgesolve.learn._validation_siblings import given_call, sibling_errors, sibling_message

#: Median relative error at mid times above which the check runs.
TRIGGER = 0.5
#: A mistake is named when its fix leaves at most this relative error ...
FIT = 0.2
#: ... and at most this share of the error as given.
IMPROVEMENT = 0.25
#: The check times, as fractions of T (snapped to the bundle's levels).
CHECK_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Points per check time.
CHECK_POINTS = 2048


@dataclass(frozen=True)
class Mistake:
    """One usual conversion mistake: how its fix reads and how it is applied."""

    name: str
    looks_like: str  # what the score looks like
    fixed_as: str  # the fixed expression, for the message
    advice: str
    fix: Callable  # (s, x, t, T, a, std) -> s'(x, t)
    needs_alpha: bool = False  # meaningful only where α(t) != 1


def _at(s, x, t):
    return np.asarray(s(x, float(t)), dtype=float)


MISTAKES = (
    Mistake("epsilon", "ε̂ (the network's noise prediction)", "−ε̂/std",
            "divide by −std(t) (std² = 1 − ᾱ(t) of the bundle's process) or read the network "
            "with bridgesolve.learn.adapt: convention='score_sde_vp' (or 'diffusers_epsilon')",
            lambda s, x, t, T, a, std: -_at(s, x, t) / std),
    Mistake("epsilon_unscaled", "−ε̂ (the noise prediction negated but not divided by std)",
            "given/std", "the score is −ε̂/std(t): divide by std(t)",
            lambda s, x, t, T, a, std: _at(s, x, t) / std),
    Mistake("sign", "−∇log p (the sign flipped)", "−(given)",
            "flip the sign of the score (a drift or a velocity is not the score)",
            lambda s, x, t, T, a, std: -_at(s, x, t)),
    Mistake("sigma_for_std", "α(t) times the score (divided by σ = std/α = √((1−ᾱ)/ᾱ) "
            "where std = √(1−ᾱ) was due)", "given/α(t)",
            "divide ε̂ by std(t) = √(1−ᾱ), not by σ = std/α (or divide the score by α(t))",
            lambda s, x, t, T, a, std: _at(s, x, t) / a, needs_alpha=True),
    Mistake("std_for_sigma", "the score divided by α(t) (divided by std = √(1−ᾱ) where "
            "σ = std/α was due)", "α(t)·given",
            "divide by the noise level of the network's own coordinates (or multiply the "
            "score by α(t))",
            lambda s, x, t, T, a, std: a * _at(s, x, t), needs_alpha=True),
    Mistake("reversed_time", "a score in reversed time (t = 0 the noise, t = T the data)",
            "s(x, T − t)",
            "evaluate it at T − t (flow matching's τ = 0 is noise: convention='flow_matching' "
            "with data_at=)",
            lambda s, x, t, T, a, std: _at(s, x, T - t)),
    Mistake("time_999", "a network of score_sde's time label 999 t (or a DDPM step ≈ N t) "
            "that was given t", "s(x, 999 t)",
            "feed the label 999 t (convention='score_sde_vp' does) or the step k "
            "(convention='diffusers_epsilon')",
            lambda s, x, t, T, a, std: _at(s, x, 999.0 * t)),
    Mistake("time_raw", "a network of t ∈ [0, T] that was given 999 t", "s(x, t/999)",
            "feed bridgesolve's time t itself (convention='score')",
            lambda s, x, t, T, a, std: _at(s, x, t / 999.0)),
    Mistake("ve_coordinates", "a score in VE coordinates (x/α, σ = std/α: EDM, k-diffusion, "
            "score_sde VE)", "s(x/α, t)/α",
            "convert s_VP(x) = s_VE(x/α)/α (convention='edm_vp' or 'denoiser' with "
            "process= the bundle's)",
            lambda s, x, t, T, a, std: _at(s, x / a, t) / a, needs_alpha=True),
    Mistake("vp_coordinates", "a VP score converted to VE coordinates once too often",
            "α s(α x, t)", "drop the x → x/α conversion: the network is in the bundle's "
            "(VP) coordinates",
            lambda s, x, t, T, a, std: a * _at(s, x * a, t), needs_alpha=True),
)


def _relative_in(esm: dict, lo: float, hi: float, reduce) -> float:
    """``reduce`` of the relative error over the levels in ``[lo T, hi T]`` (t > 0)."""
    times = np.asarray(esm["times"], dtype=float)
    T = float(times[-1])
    sel = (times >= lo * T - 1e-12) & (times <= hi * T + 1e-12) & (times > 0)
    rel = np.asarray(esm["relative"], dtype=float)[sel if sel.any() else times > 0]
    return float(reduce(rel)) if rel.size else 0.0


def _check_levels(times: np.ndarray) -> list[int]:
    T = float(times[-1])
    levels = sorted({int(np.argmin(np.abs(times - f * T))) for f in CHECK_FRACTIONS})
    return [n for n in levels if times[n] > 0]


def _samples(arr: dict, levels: list[int], seed: int) -> dict[int, np.ndarray]:
    """Point indices per level, drawn with probability ``w p`` (with replacement)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in levels:
        prob = np.maximum(arr["weights"] * arr["density"][n], 0.0)
        if prob.sum() <= 0:
            continue
        out[n] = rng.choice(prob.size, size=CHECK_POINTS, p=prob / prob.sum())
    return out


def _relative(fixed: np.ndarray, ref: np.ndarray) -> float:
    if not np.all(np.isfinite(fixed)):
        return math.inf
    return float(np.sqrt(np.sum((fixed - ref) ** 2) / max(np.sum(ref**2), 1e-300)))


def _measure(s, arr, picks, process, mistake: Mistake | None) -> float:
    """The mean over the check levels of the relative error of ``s`` (fixed)."""
    T = float(arr["times"][-1])
    rels = []
    for n, idx in picks.items():
        t = float(arr["times"][n])
        x, ref = arr["points"][idx], arr["score"][n][idx]
        if mistake is None:
            rels.append(_relative(_at(s, x, t), ref))
            continue
        a, var = process.transition(t) if process.linear else (1.0, 1.0)
        with np.errstate(all="ignore"):
            try:
                fixed = mistake.fix(s, x, t, T, a, math.sqrt(var))
            except Exception:  # noqa: BLE001 - a user's network may refuse odd times: no fit
                return math.inf
        rels.append(_relative(np.asarray(fixed, dtype=float).reshape(ref.shape), ref))
    return float(np.mean(rels)) if rels else math.inf


def _applicable(mistake: Mistake, process, alphas: list[float]) -> bool:
    if mistake.name in ("epsilon", "epsilon_unscaled") or mistake.needs_alpha:
        if not process.linear:
            return False
    return not (mistake.needs_alpha and all(abs(a - 1.0) < 1e-3 for a in alphas))


def convention_check(s, arr: dict, esm: dict, process, notes: list[str], *,
                     seed: int = 0) -> dict:
    """The check of the module docstring; appends its finding to ``notes`` and warns.

    Returns:
        ``{"triggered", "mid_relative", "early_max_relative"}``, and when triggered
        ``"times"``, ``"given"`` (the relative error as given at the check levels),
        ``"candidates"`` (name -> relative error after the fix), for an adapted score
        ``"conventions"`` (sibling reading -> its relative error, see
        :mod:`~bridgesolve.learn._validation_siblings`) and ``"best"`` (the named mistake
        or reading, or None); ``"fix"`` (the ``adapt`` call) when a reading is named.
    """
    mid = _relative_in(esm, 0.25, 0.75, np.median)
    early = _relative_in(esm, 0.05, 0.5, np.max)
    out: dict = {"triggered": bool(max(mid, early) > TRIGGER), "mid_relative": mid,
                 "early_max_relative": early}
    if not out["triggered"]:
        return out
    picks = _samples(arr, _check_levels(arr["times"]), seed)
    times = [float(arr["times"][n]) for n in picks]
    alphas = [process.transition(t)[0] for t in times] if process.linear else []
    given = _measure(s, arr, picks, process, None)
    cands = {m.name: _measure(s, arr, picks, process, m)
             for m in MISTAKES if _applicable(m, process, alphas)}
    siblings = sibling_errors(s, arr, picks, process)
    errors = cands | {k: err for k, (err, _) in siblings.items()}
    best = min(errors, key=errors.get) if errors else None
    fits = best is not None and errors[best] < FIT and errors[best] < IMPROVEMENT * given
    out |= {"times": times, "given": given, "candidates": cands,
            "best": best if fits else None}
    if siblings:
        out["conventions"] = {k: err for k, (err, _) in siblings.items()}
    if not fits and mid <= TRIGGER:
        return out  # large only at small times: a hard region, not evidence of a mistake
    if fits and best in siblings:
        reading = siblings[best][1]
        out["fix"] = reading.call()
        message = sibling_message(reading, given_call(s), given, errors[best])
    else:
        message = (_named(best, given, errors[best]) if fits else
                   _unexplained(mid, best, errors.get(best, math.inf)))
    notes.append(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return out


def _named(name: str, given: float, fixed: float) -> str:
    m = next(m for m in MISTAKES if m.name == name)
    return (f"convention check: the score looks like {m.looks_like}: relative error "
            f"{given:.3g} as given, {fixed:.2g} as {m.fixed_as}; {m.advice}")


def _unexplained(mid: float, best: str | None, fixed: float) -> str:
    closest = "" if best is None else f" (the closest, {best}, leaves {fixed:.3g})"
    return (f"convention check: the score is far off (median relative error {mid:.3g} at "
            f"mid times) and none of the usual convention mistakes explains it{closest}")


__all__ = ["CHECK_FRACTIONS", "CHECK_POINTS", "FIT", "IMPROVEMENT", "MISTAKES", "TRIGGER",
           "Mistake", "convention_check"]
