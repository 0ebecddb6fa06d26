"""The validator's measurements: explicit score matching per time, the exact part of a
closed-form bundle, the time window and weighting, the bundle's own accuracy, the denoising
loss by Monte Carlo, the h = 1 bound and KL(ρ0 ‖ q_h), and the excess action."""

from __future__ import annotations

import math
import warnings

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities import is_probability_density
from bridgesolve.learn._validation_bundles import (
    _law,
    _x0_sampler,
    mixture_fields,
    problem_from_bundle,
    trapezoid_weights,
)
from bridgesolve.learn._validation_scores import NumpyScore
from bridgesolve.sampling import default_prior

# -- the validator -----------------------------------------------------------------------
#: The measured error counts as known when the bundle's own score error is below this
#: fraction of it (in root-mean-square terms, ``sqrt(ε/e)``).
ACCURACY_RATIO = 0.1


def _explicit(err2: np.ndarray, arr: dict) -> dict:
    """``e(t_n)``, the Fisher information, masses and relative errors at every level."""
    p, w, S_ref = arr["density"], arr["weights"], arr["score"]
    esm_t = (err2 * p) @ w
    fisher_t = ((S_ref**2).sum(axis=2) * p) @ w
    return {"times": arr["times"], "per_time": esm_t,
            "relative": np.sqrt(esm_t / np.maximum(fisher_t, 1e-300)), "fisher": fisher_t,
            "mass": p @ w}


def _exact_part(S, arr, mixture, process, kind) -> dict | None:
    """``e(t)``, the Fisher information and the bundle's own error against the exact law of
    an exact ρ0 (any family of :mod:`bridgesolve.densities`) under a linear process (None
    otherwise): separates the score's error from the bundle's discretization error."""
    if not (is_probability_density(mixture) and process.linear and kind != "bridge"):
        return None
    times, pts, w, S_ref = arr["times"], arr["points"], arr["weights"], arr["score"]
    exact = {"esm": np.empty(times.size), "fisher": np.empty(times.size),
             "bundle_error": np.empty(times.size), "_err2": np.empty(S.shape[:2])}
    for n, t in enumerate(times):
        law = mixture.evolve(process, float(t)) if t > 0 else mixture
        log_pe, Se = mixture_fields(law, pts)
        pe = np.exp(log_pe)
        exact["_err2"][n] = ((S[n] - Se) ** 2).sum(axis=1)
        exact["esm"][n] = (exact["_err2"][n] * pe) @ w
        exact["fisher"][n] = ((Se**2).sum(axis=1) * pe) @ w
        exact["bundle_error"][n] = (((S_ref[n] - Se) ** 2).sum(axis=1) * pe) @ w
    return exact


def _public(exact: dict | None) -> dict | None:
    return None if exact is None else {k: v for k, v in exact.items() if not k.startswith("_")}


def _window(s, times, t_range, process, weighting) -> dict:
    """The levels of the integrated losses, their trapezoid weights and ``λ``."""
    T = float(times[-1])
    if t_range is None:
        lo = s.t_min if s.t_min is not None else float(times[times > 0][0])
        t_range = (lo, T)
    t_lo, t_hi = float(t_range[0]), float(t_range[1])
    if not 0 < t_lo < t_hi <= T + 1e-12:
        raise BridgesolveInputError(f"t_range = {t_range!r}: expected 0 < t_min < t_max <= "
                                    f"T = {T:g} (C diverges at t = 0)")
    sel = np.nonzero((times >= t_lo - 1e-12) & (times <= t_hi + 1e-12))[0]
    if sel.size < 2:
        raise BridgesolveInputError(f"t_range = {t_range!r} holds {sel.size} bundle time(s): "
                                    "expected at least 2")
    ts = times[sel]
    a_var = np.array([process.transition(float(t)) for t in ts])
    g2 = np.asarray(process.g(ts), dtype=float) ** 2 * np.ones_like(ts)
    lam = {"g2": g2, "sigma2": a_var[:, 1], "none": np.ones_like(ts)}[weighting]
    return {"sel": sel, "ts": ts, "omega": trapezoid_weights(ts), "lam": lam, "g2": g2,
            "a": a_var[:, 0], "var": a_var[:, 1], "t_lo": t_lo, "t_hi": t_hi}


def _bundle_accuracy(b, exact, esm_t, win, notes) -> dict:
    """The bundle's own score error ``ε(t)`` (``bundle.score_error_estimate`` when it has
    one, else the closed form against the exact law) beside the measured ``e(t)``:
    ``ratio = sqrt(ε/e)`` bounds the relative uncertainty of ``sqrt(e)``; a warning when it
    exceeds :data:`ACCURACY_RATIO` at some time of the window."""
    est = getattr(b, "score_error_estimate", None)
    meta = (getattr(b, "metadata", None) or {}).get("score_error_estimate") or {}
    method = meta.get("method") if isinstance(meta, dict) else None
    if est is not None:
        method = method or "bundle"
    elif exact is not None:
        est, method = exact["bundle_error"], "closed-form (validator)"
    else:
        why = (meta.get("why") if isinstance(meta, dict) else None) or (
            "the bundle has no score_error_estimate and its data are not a Gaussian mixture "
            "under a linear process")
        return {"per_time": None, "method": None, "why": why}
    est = np.asarray(est, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(est <= 0, 0.0, np.sqrt(np.maximum(est, 0) / esm_t))
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    sel = win["sel"]
    worst = float(np.max(ratio[sel]))
    out = {"per_time": est, "method": method, "ratio": ratio, "worst_ratio": worst,
           "integrated": float(win["omega"] @ (win["lam"] * est[sel])),
           "small": bool(worst <= ACCURACY_RATIO)}
    if worst > ACCURACY_RATIO:
        n = int(sel[np.argmax(ratio[sel])])
        msg = (f"the bundle's own score error is not small against the measured error: "
               f"sqrt(ε/e) = {worst:.3g} > {ACCURACY_RATIO:g} at t = {b.times[n]:.4g} "
               f"(ε = {est[n]:.3e}, e = {esm_t[n]:.3e}, {method}); the bundle-based error "
               "is known only to ±2 sqrt(ε/e) relative: refine the bundle")
        if exact is not None:
            msg += " (the numbers against the exact law are unaffected)"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        notes.append(msg)
    return out


def _denoising(s, b, data, arr, esm, exact, win, process, n_mc, seed) -> dict:
    """The denoising loss by seeded Monte Carlo at the window's levels and the identity
    ``D(t) - e(t) = C(t)`` per time and integrated (module doc)."""
    pts, w, d = arr["points"], arr["weights"], arr["points"].shape[1]
    sel, ts, omega, lam, var = win["sel"], win["ts"], win["omega"], win["lam"], win["var"]
    x0_sampler = _x0_sampler(data, b, pts, w, arr["density"][0])
    rng = np.random.default_rng(seed)
    L = ts.size
    x0 = x0_sampler(L * n_mc, rng)
    eps = rng.standard_normal((L * n_mc, d))
    a_rep = np.repeat(win["a"], n_mc)[:, None]
    sig_rep = np.sqrt(np.repeat(var, n_mc))[:, None]
    center = float(getattr(process, "center", 0.0))
    xt = a_rep * x0 + (1.0 - a_rep) * center + sig_rep * eps
    st = s.at_pairs(xt, np.repeat(ts, n_mc))
    cv = ((st + eps / sig_rep) ** 2).sum(axis=1) - (eps**2).sum(axis=1) / sig_rep[:, 0] ** 2
    cv = cv.reshape(L, n_mc)
    dsm_t = cv.mean(axis=1) + d / var
    dsm_se = cv.std(axis=1, ddof=1) / math.sqrt(n_mc)
    esm_t = esm["per_time"][sel]
    C_t = d / var - esm["fisher"][sel]
    J_dsm = float(omega @ (lam * dsm_t))
    se_int = float(np.sqrt(np.sum((omega * lam * dsm_se) ** 2)))
    C = float(omega @ (lam * C_t))
    R = J_dsm - esm["integrated"] - C
    z = R / se_int if se_int > 0 else float("inf") * np.sign(R)
    if exact is not None:
        C_ex_t = d / var - exact["fisher"][sel]
        exact["J_esm"] = float(omega @ (lam * exact["esm"][sel]))
        exact["C"] = float(omega @ (lam * C_ex_t))
        exact["residual"] = dsm_t - exact["esm"][sel] - C_ex_t
        exact["identity_residual"] = J_dsm - exact["J_esm"] - exact["C"]
        exact["z"] = exact["identity_residual"] / se_int if se_int > 0 else float("inf")
        exact["J_bundle_error"] = float(omega @ (lam * exact["bundle_error"][sel]))
    z_used = exact["z"] if exact is not None else z
    return {"times": ts, "per_time": dsm_t, "stderr": dsm_se, "esm": esm_t,
            "dsm_minus_esm": dsm_t - esm_t, "C_per_time": C_t, "residual": dsm_t - esm_t - C_t,
            "integrated": J_dsm, "stderr_integrated": se_int, "C": C,
            "identity_residual": R, "z": float(z),
            "consistent_bundle": bool(abs(z) <= 4.0),
            "consistent": bool(abs(z_used) <= 4.0),
            "verdict_against": "exact" if exact is not None else "bundle",
            "n_mc": int(n_mc), "seed": seed}


def _bound_and_kl(s, b, hs, problem, prior, arr, esm, exact, mixture, process, kl_tolerance,
                  notes, bar):
    """The bound of §2.7, ``KL(ρ0 ‖ q_h)`` through the generated densities, and the sampler's
    own-law score error (h = 1: ``q_1`` at every level)."""
    pts, w, times, p = arr["points"], arr["weights"], arr["times"], arr["density"]
    d, T = pts.shape[1], float(times[-1])
    esm_t = esm["per_time"]
    prior = prior if prior is not None else default_prior(process, T, d)
    pT, log_pT = _law(mixture, process, T, pts, p[-1])
    kl_prior = float(w @ (pT * (log_pT - prior.log_pdf(pts))))
    # ∫_0^T: from t = 0 when the score is finite there (an ε-network's -ε̂/σ is not).
    first = int(np.argmax(np.isfinite(esm_t))) if np.any(np.isfinite(esm_t)) else times.size - 1
    if not np.all(np.isfinite(esm_t[first:])):
        raise BridgesolveInputError("the score is not finite at some time t > 0 of the bundle")
    if first > 0:
        notes.append(f"the score is not finite at t = {times[first - 1]:g}: the bound's "
                     f"integral starts at t = {times[first]:g}")
    tb = times[first:]
    # The bound is a statement about the exact p_t: use it when it is known.
    e_bound = exact["esm"] if exact is not None else esm_t
    score_term = float(0.5 * trapezoid_weights(tb) @ (np.asarray(process.g(tb)) ** 2
                                                      * e_bound[first:]))
    bound = {"kl_prior": kl_prior, "score_term": score_term, "bound": kl_prior + score_term,
             "t_start": float(tb[0]), "against": "exact" if exact is not None else "bundle",
             "prior": prior.describe()}
    kl, q_levels, own = _kl_part(s, b, hs, problem, prior, pts, w,
                                 _law(mixture, process, 0.0, pts, p[0]), notes, bar)
    if "kl" in kl and any(h == 1.0 for h in kl["h"]):
        kl_h1 = kl["kl"][list(kl["h"]).index(1.0)]
        bound["kl_h1"] = kl_h1
        bound["holds"] = bool(kl_h1 <= bound["bound"] + kl_tolerance)
        bound["tolerance"] = kl_tolerance
    else:
        bound["holds"] = None
    return bound, kl, q_levels, own


def _excess_action(err2, exact, win, process, arr, own) -> dict:
    r"""The excess action of the control ``g² s`` over the optimal ``g² ∇log p``
    (PAPERS.md §C, :mod:`bridgesolve.action`): ``½ ∫ g² E_p|s - ∇log p|² dt`` over the
    window, i.e. the ESM with weight ``g²/2`` (bundle and exact law), and, when ``q_1`` was
    solved, the same under the h = 1 sampler's own law (the exact excess of the action with
    its end cost, Girsanov; it differs from the p-weighted one at third order in the error,
    and by the start mismatch ``KL(π ‖ p_T)`` of the prior)."""
    sel, omega, g2 = win["sel"], win["omega"], win["g2"]
    p, w = arr["density"], arr["weights"]
    rate = 0.5 * g2 * ((err2[sel] * p[sel]) @ w)
    out = {"times": win["ts"], "per_time": rate, "excess": float(omega @ rate),
           "weight": "g²/2"}
    if exact is not None:
        out["excess_exact"] = float(omega @ (0.5 * g2 * exact["esm"][sel]))
    if own is not None:
        q_all, _ = own
        e2 = exact["_err2"] if exact is not None else err2
        own_rate = 0.5 * g2 * ((e2[sel] * q_all[sel]) @ w)
        out["own_law_per_time"] = own_rate
        out["own_law"] = float(omega @ own_rate)
    return out


def _levels_blockwise(s: NumpyScore, pts, times, chunk) -> np.ndarray:
    """``s`` at every (time, point), a block of time levels at a time (bounded memory)."""
    N = pts.shape[0]
    per_block = max(1, (1 << 22) // max(N, 1))
    return np.concatenate([s.at_levels(pts, times[i:i + per_block])
                           for i in range(0, times.size, per_block)], axis=0)


def _kl_part(s, bundle, hs, problem, prior, pts, w, rho0_pair, notes, bar=None):
    """``KL(ρ0 ‖ q_h)`` and NLL for each h (or the reason they were skipped), ``q_h(·, 0)``
    per h, and for h = 1 ``(q_1 at every bundle level, None)`` (else None)."""
    if not hs:
        return {"skipped": "no h requested"}, {}, None
    try:
        from bridgesolve.likelihood import generated_density
    except ImportError as exc:
        return {"skipped": f"needs DOLFINx and bridgesolve.likelihood ({exc})"}, {}, None
    if problem is None:
        try:
            problem = problem_from_bundle(bundle)
        except BridgesolveInputError as exc:
            return {"skipped": f"no Problem to solve for q_h: {exc}"}, {}, None
    rho0, log_rho0 = rho0_pair
    entropy = float(-(w @ (rho0 * log_rho0)))
    out = {"h": [], "kl": [], "nll": [], "entropy": entropy, "mass_q": []}
    q_levels, own = {}, None
    for h in hs:
        if bar is not None:
            bar.set_postfix_str(f"generated density q_h, h = {h:g}")
        q = generated_density(problem, s, h, prior, progress=False,
                              levels="initial" if h == 0 else "all")
        q0 = np.asarray(q.evaluate(pts, float(q.times[0])), dtype=float)
        bad = ~np.isfinite(q0)
        if np.any(bad):
            notes.append(f"h = {h:g}: {bad.sum()} bundle points outside the mesh of q_h")
            q0 = np.where(bad, 0.0, q0)
        # floored as bridgesolve.likelihood.kl_divergence does: ε times the peak
        log_q0 = np.log(np.maximum(q0, max(np.finfo(float).eps * q0.max(), 1e-300)))
        nll = float(-(w @ (rho0 * log_q0)))
        out["h"].append(h)
        out["nll"].append(nll)
        out["kl"].append(nll - entropy)
        out["mass_q"].append(float(w @ q0))
        q_levels[h] = q0
        if h == 1.0:  # the sampler's own law at every level: the own-law excess action
            times = np.asarray(bundle.times, dtype=float)
            lo, hi = float(q.times[0]), float(q.times[-1])
            q_all = np.stack([np.nan_to_num(np.asarray(q.evaluate(pts, float(np.clip(t, lo, hi))),
                                                       dtype=float), nan=0.0) for t in times])
            own = (q_all, None)
        if bar is not None:
            bar.update()
    return out, q_levels, own
