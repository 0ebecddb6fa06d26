r"""The sibling conventions of the convention check: an adapted model read another way.

A network handed to :func:`~bridgesolve.learn.validate` as
``adapt(model, convention, ...)`` (an :class:`~bridgesolve.learn.adapters.AdaptedScore`)
may be read under the wrong convention: ε̂ taken as x̂₀, v̂ as ε̂, EDM's ``σ_data`` and time
input against k-diffusion's, a VP SDE against sub-VP, the linear flow path against the
cosine one, a denoiser against the raw EDM network. None of the score-level mistakes of
:mod:`~bridgesolve.learn._validation_conventions` undoes these, so the check re-adapts
``model`` under each sibling convention of :data:`~bridgesolve._vocab.CONVENTIONS` with the
same options where they apply (:func:`readings`):

* ``score``, ``denoiser``, ``edm``, ``edm_vp``, ``k_diffusion``: the given process
  (``σ_data`` the convention's default);
* ``flow_matching``: the given process, both paths, ``data_at`` 1 and 0;
* ``diffusers_epsilon`` / ``_sample`` / ``_v``: the given table (scheduler config or
  Tabulated process) and ``integer_timesteps``; skipped without one;
* ``score_sde_*``: the convention's own SDE (its default) and the given process;
  ``score_sde_vp_discrete`` only on a VP process;

and skips those ``adapt`` refuses (or whose coefficients it refuses at ``T/2``: edm on a
process with ``a ≠ 1``) and the given reading itself. A reading whose process
``Q`` is not the bundle's ``P`` (both linear, centred at 0) is moved onto ``P`` at equal
signal-to-noise ratio, exact for Gaussian paths: with ``a/s`` of ``P`` at ``t`` equal to
``a_Q/s_Q`` at ``t'`` and ``c = a_Q(t')/a(t)``, ``s_P(x, t) = c\, s_Q(c x, t')``. The readings
are measured on the check's own picks, so the cost is one model evaluation per reading at
:data:`~bridgesolve.learn._validation_conventions.CHECK_POINTS` points per check level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Reading:
    """One sibling reading of an adapted model: ``adapt(model, convention, **shown)``."""

    convention: str
    shown: dict  # the options the fix names (path, data_at), for the message
    score: object  # the AdaptedScore
    own_process: object = None  # not None: the reading's process, not the given one
    key: str = field(init=False)

    def __post_init__(self):
        self.key = self.convention + (f"({_options(self.shown)})" if self.shown else "") \
            + ("" if self.own_process is None else f" on {self.own_process!r}")

    def call(self) -> str:
        """The ``adapt`` call of the fix, the given model's other options as ``...``."""
        extra = f", {_options(self.shown)}" if self.shown else ""
        return f"adapt(model, {self.convention!r}{extra}, ...)"

    def cli(self) -> str:
        """The CLI fix, where the CLI can express it (adapt's defaults otherwise)."""
        if any((k, v) != ("path", "linear") for k, v in self.shown.items()):
            return ("the CLI reads only --convention (and --scheduler-config): use the "
                    "Python API")
        if self.own_process is not None:
            return (f"CLI: --convention {self.convention} with a bundle of "
                    f"{self.own_process!r}")
        return f"CLI: --convention {self.convention}"


def _options(shown: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def adapted_of(score):
    """The AdaptedScore behind ``score`` (itself or a NumpyScore's callable), else None."""
    from bridgesolve.learn.adapters import AdaptedScore

    for obj in (score, getattr(score, "_fn", None)):
        if isinstance(obj, AdaptedScore):
            return obj
    return None


def _given_key(a) -> tuple:
    """What tells two readings apart (diffusers readings by their table)."""
    o = a._opts
    where = o["table"] if o.get("table") is not None else a.process
    return (a.convention, o.get("path"), o.get("data_at"), o.get("sigma_data"),
            o.get("integer"), None if where is None else repr(where.describe()))


def _specs(a):
    """``(convention, shown options, adapt keyword arguments, own process?)`` per sibling."""
    from bridgesolve._vocab import CONVENTIONS
    from bridgesolve.learn.adapters import FLOW_PATHS
    from bridgesolve.process import Tabulated

    P, o = a.process, a._opts
    table = o.get("table")
    if table is None and isinstance(P, Tabulated):
        table = P
    scales = int(o["std"].size) if "std" in o else 1000
    for conv in CONVENTIONS:
        if conv == "diffusers":  # the three below, by name
            continue
        if conv.startswith("diffusers"):
            if table is not None:
                yield conv, {}, {"process": table, "integer_timesteps": o["integer"]}, False
        elif conv.startswith("score_sde"):
            extra = {"num_scales": scales} if conv == "score_sde_vp_discrete" else {}
            yield conv, {}, extra, True  # the convention's own SDE
            yield conv, {}, {"process": P, **extra}, False
        elif conv == "flow_matching":
            for path in FLOW_PATHS:
                for data_at in (1, 0):
                    shown = {"path": path} if a.convention == conv or path != "linear" else {}
                    if data_at != 1:
                        shown["data_at"] = data_at
                    yield conv, shown, {"process": P, "path": path, "data_at": data_at}, False
        else:
            yield conv, {}, {"process": P}, False


def readings(a) -> list[Reading]:
    """The sibling readings of the AdaptedScore ``a`` that ``adapt`` builds (see above)."""
    from bridgesolve.learn.adapters import adapt

    common = {"time_shape": a.time_shape, "device": a.device, "dtype": a.dtype,
              "chunk": a.chunk}
    seen, out = {_given_key(a)}, []
    for conv, shown, kwargs, own in _specs(a):
        try:
            score = adapt(a.model, conv, **kwargs, **common)
            score.coefficients(0.5 * float(getattr(score.process, "T", 1.0)))  # edm: a = 1
        except Exception:  # noqa: BLE001 - a convention that cannot read this model: skip
            continue
        key = _given_key(score)
        if key in seen:
            continue
        seen.add(key)
        moved = own and score.process.describe() != a.process.describe()
        out.append(Reading(conv, shown, score, score.process if moved else None))
    return out


# -- measuring on the bundle's process -------------------------------------------------
def _snr(process, t: float) -> float:
    a, var = process.transition(t)
    return a / math.sqrt(var) if var > 0 else math.inf


def _matched_time(Q, snr: float) -> float | None:
    """``t'`` of process ``Q`` with signal-to-noise ratio ``snr`` (bisection), or None."""
    lo, hi = 1e-12 * float(getattr(Q, "T", 1.0)), float(getattr(Q, "T", 1.0))
    if not _snr(Q, hi) <= snr <= _snr(Q, lo):
        return None
    target = math.log(snr)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if math.log(_snr(Q, mid)) > target else (lo, mid)
    return 0.5 * (lo + hi)


def on_process(score, process):
    """``score`` as a score of ``process`` (equal signal-to-noise ratio), or None when the
    two processes cannot be matched (not linear, or centred elsewhere than 0)."""
    Q = score.process
    if Q.describe() == process.describe():
        return score
    if not (Q.linear and process.linear) or any(
            np.any(np.asarray(getattr(p, "center", 0.0)) != 0.0) for p in (Q, process)):
        return None

    def moved(x, t):
        a, var = process.transition(t)
        tq = _matched_time(Q, a / math.sqrt(var)) if var > 0 else None
        if tq is None:
            return np.full_like(x, np.nan)
        c = Q.transition(tq)[0] / a
        return c * np.asarray(score(c * x, tq), dtype=float)
    return moved


def relative(fixed: np.ndarray, ref: np.ndarray) -> float:
    """``|fixed - ref| / |ref|`` over the picked points (inf when not finite)."""
    if not np.all(np.isfinite(fixed)):
        return math.inf
    return float(np.sqrt(np.sum((fixed - ref) ** 2) / max(np.sum(ref**2), 1e-300)))


def measure(fn, arr: dict, picks: dict) -> float:
    """The mean over the check levels of the relative error of ``fn`` (inf on failure)."""
    if fn is None:
        return math.inf
    rels = []
    for n, idx in picks.items():
        x, ref = arr["points"][idx], arr["score"][n][idx]
        with np.errstate(all="ignore"):
            try:
                got = np.asarray(fn(x, float(arr["times"][n])), dtype=float)
            except Exception:  # noqa: BLE001 - a reading that refuses a time: no fit
                return math.inf
        rels.append(relative(got.reshape(ref.shape), ref))
    return float(np.mean(rels)) if rels else math.inf


def sibling_errors(score, arr: dict, picks: dict, process) -> dict[str, tuple[float, Reading]]:
    """The (relative error, reading) of each sibling reading of an adapted ``score``, by key
    (empty for other scores)."""
    a = adapted_of(score)
    if a is None or a.process is None or process is None:
        return {}
    return {r.key: (measure(on_process(r.score, process), arr, picks), r)
            for r in readings(a)}


def sibling_message(reading: Reading, given_call: str, given: float, fixed: float) -> str:
    """The note of a sibling reading that fits."""
    where = "" if reading.own_process is None else (
        f" on its own process {reading.own_process!r} (matched here to the bundle's at equal "
        "signal-to-noise ratio: validate it against a bundle of that process)")
    return (f"convention check: the model reads as {reading.call()}, not as {given_call}: "
            f"relative error {given:.3g} as given, {fixed:.2g} as convention "
            f"{reading.convention!r}{where}; fix: {reading.call()} with your other options "
            f"({reading.cli()})")


def given_call(score) -> str:
    """The ``adapt`` call of the given adapted score, for the message."""
    from bridgesolve.learn.adapters import _SIGMA_DATA

    a = adapted_of(score)
    o, shown = a._opts, {}
    if a.convention == "flow_matching":
        shown["path"] = o["path"]
        if o["data_at"] != 1.0:
            shown["data_at"] = int(o["data_at"])
    if a.convention in _SIGMA_DATA and o["sigma_data"] != _SIGMA_DATA[a.convention]:
        shown["sigma_data"] = o["sigma_data"]
    extra = f", {_options(shown)}" if shown else ""
    return f"adapt(model, {a.convention!r}{extra}, ...)"


__all__ = ["Reading", "adapted_of", "given_call", "measure", "on_process", "readings",
           "relative", "sibling_errors", "sibling_message"]
