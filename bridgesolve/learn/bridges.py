r"""How wrong is a learned Schrödinger bridge? Drift networks against a bridge bundle.

DSB, SB-FBSDE and bridge matching learn a forward drift ``b_θ ≈ f + g²∇log φ`` and a
backward drift ``\hat b_θ ≈ f - g²∇log φ̂`` (DESIGN.md §2.4; in forward-time coordinates:
the reverse-time SDE is ``dX = -\hat b dτ + g dW̄``). ``validate_bridge(forward, backward,
bundle)`` measures them against a bundle of kind ``"bridge"``
(:meth:`~bridgesolve.reference.ReferenceBundle.from_bridge`: quadrature points ``x_i``,
weights ``w_i``, the marginal ``ρ_t = φ φ̂`` and ``∇log φ``, ``∇log φ̂`` at every level):

* the drift errors in ``L²(ρ_t)`` per time,
  ``e(t) = \sum_i w_i ρ(x_i, t) |b_θ - b^*|^2`` and their relative sizes, for both;
  integrated, ``½∫ e(t)/g² dt`` is (Girsanov) ``KL(P^* ‖ P_θ)`` of the optimal path
  measure against the learned one started from the same end (ρ0 forward, ρ1 backward);
* the law ``q_t`` of the learned forward SDE ``dX = b_θ dt + g dW``, ``X_0 ~ ρ0``, solved by
  finite elements (:func:`bridgesolve.likelihood.controlled.controlled_density`; needs
  DOLFINx and the bundle's :class:`~bridgesolve.Problem`): its L1 distance to the bridge
  marginal per time and how far it misses ρ1 at T, in L1 and ``KL(ρ1 ‖ q_T)``;
* its KL cost ``½∫∫ q |u_θ|²/g² dx dt`` (``u_θ = b_θ - f``; ``= KL(P_θ ‖ R_ρ0)``) against
  the optimal ``½∫ g² ∫ρ|∇log φ|² dx dt`` of the bundle, and the same cost on the bundle's
  marginals ``ρ_t`` (available without a solve).

Time integrals are trapezoidal on the bundle's levels. NumPy only, but for the law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve._validate import first_line as _first_line
from bridgesolve.learn._report import Report, bundle_summary, bundle_words
from bridgesolve.learn._validation_bundles import load_bundle, trapezoid_weights
from bridgesolve.learn._validation_scores import as_numpy_score

#: The time variable of the backward network.
BACKWARD_TIMES = ("forward", "reverse")
#: The floor of ``q_T`` (relative to its peak) inside ``log q_T``.
LOG_FLOOR_RELATIVE = 1e-300


@dataclass
class BridgeReport(Report):
    """The numbers of :func:`validate_bridge` (``.data``, JSON-ready)."""

    data: dict

    def table(self) -> str:
        """A plain-text summary."""
        return _table(self.data)


class _Drift:
    """A drift network as ``b(x (N, d), t) -> (N, d)`` on NumPy arrays, shape-checked with
    its own name; ``reverse`` reads a network of reverse time ``τ = T - t`` that returns the
    reverse-time drift ``-b``."""

    def __init__(self, fn, name: str, *, T: float, reverse: bool, device, chunk, net):
        self.s = as_numpy_score(fn, device=device, chunk=chunk, net=net)
        self.name, self.T, self.reverse = name, float(T), reverse
        self.label = self.s.label

    def __call__(self, x, t):
        x = np.asarray(x, dtype=float)
        tt = self.T - float(t) if self.reverse else float(t)
        if self.s.model is not None:
            out = self.s.at_pairs(x, np.full(x.shape[0], tt))
        else:
            out = np.asarray(self.s._fn(x, tt), dtype=float)
        if out.shape != x.shape:
            raise BridgesolveInputError(f"{self.name}(x, t) returned shape {out.shape}: "
                                        f"expected {x.shape}, the shape of x")
        return -out if self.reverse else out

    def levels(self, pts, times) -> np.ndarray:
        return np.stack([self(pts, float(t)) for t in times])


def validate_bridge(forward, backward, bundle, *, problem=None, rho0=None,
                    backward_time: str = "forward", solve: bool = True,
                    device: str | None = "auto", chunk: int = 1 << 16, net=None,
                    progress: bool = False) -> BridgeReport:
    """Measure learned forward and backward drifts against a bridge bundle (module doc).

    Args:
        forward: ``b_θ(x, t) ≈ f + g²∇log φ``: a checkpoint, a ``torch.nn.Module``
            ``model(x, t)`` or a NumPy callable ``(x (N, d), t) -> (N, d)``.
        backward: ``\\hat b_θ(x, t) ≈ f - g²∇log φ̂`` in forward time; with
            ``backward_time="reverse"`` a network of ``τ = T - t`` returning the drift of
            the reverse-time SDE, ``g²∇log φ̂ - f`` (DSB's backward network). ``None``: the
            forward drift only.
        bundle: a bridge ReferenceBundle or its ``.npz`` path (every rank holds all of it).
        problem: the :class:`~bridgesolve.Problem` of the FE law (default: rebuilt from the
            bundle's metadata; when it cannot be, the law is skipped with the reason).
        rho0: the initial density of the law (default: the bundle's ``data()``).
        backward_time: ``"forward"`` or ``"reverse"`` (above).
        solve: solve the law of the learned forward SDE (needs DOLFINx).
        device, chunk, net: for torch models (as :func:`~bridgesolve.learn.validate`).
        progress: progress bar of the FE solve.

    Returns:
        A :class:`BridgeReport`: ``["drift_error"]``, ``["cost"]``, ``["law"]``,
        ``.table()``, ``.to_json()``.

    Raises:
        BridgesolveInputError: a bundle that is not a bridge, a network whose output shape
            is not its input's, a bad option.
    """
    if backward_time not in BACKWARD_TIMES:
        raise BridgesolveInputError(f"backward_time = {backward_time!r}: expected one of "
                                    f"{', '.join(map(repr, BACKWARD_TIMES))}")
    b = _bridge_bundle(bundle)
    arr = _arrays(b)
    process = b.process()
    T = float(arr["times"][-1])
    opts = {"T": T, "device": device, "chunk": chunk, "net": net}
    fwd = _Drift(forward, "forward", reverse=False, **opts)
    bwd = None if backward is None else _Drift(backward, "backward",
                                               reverse=backward_time == "reverse", **opts)
    exact = _exact_drifts(process, arr)
    Bf = fwd.levels(arr["points"], arr["times"])
    errors = {"times": arr["times"], **_errors("forward", Bf, exact["forward"], arr, exact["g2"])}
    if bwd is not None:
        errors |= _errors("backward", bwd.levels(arr["points"], arr["times"]),
                          exact["backward"], arr, exact["g2"])
    control = Bf - exact["f"]
    cost = {"optimal": _cost(arr["density"], exact["g2"], exact["control"], arr),
            "learned_on_bundle_marginals": _cost(arr["density"], exact["g2"], control, arr)}
    law = _law(fwd, b, arr, exact, control, problem, rho0, solve, progress, cost)
    return BridgeReport({"forward": fwd.label, "backward": None if bwd is None else bwd.label,
                         "backward_time": backward_time, "bundle": _summary(b, arr),
                         "drift_error": errors, "cost": cost, "law": law})


def _bridge_bundle(bundle):
    b = load_bundle(bundle)
    kind = (getattr(b, "metadata", None) or {}).get("kind", "diffusion")
    if kind != "bridge" or getattr(b, "grad_log_phi", None) is None:
        raise BridgesolveInputError(
            f"bundle {getattr(b, 'label', None) or b!r} is of kind {kind!r}: expected a "
            "'bridge' bundle (ReferenceBundle.from_bridge, with grad_log_phi and "
            "grad_log_phi_hat); validate a score against other bundles with validate()")
    return b


def _arrays(b) -> dict:
    keys = ("points", "weights", "times", "density", "grad_log_phi", "grad_log_phi_hat")
    return {k: np.asarray(getattr(b, k), dtype=float) for k in keys}


def _exact_drifts(process, arr) -> dict:
    """``f``, ``g²``, the optimal control and both optimal drifts at every level."""
    pts, times = arr["points"], arr["times"]
    f = np.stack([process.drift(pts, float(t)) for t in times]).reshape(
        arr["grad_log_phi"].shape)
    g2 = np.asarray(process.g(times), dtype=float) ** 2 * np.ones_like(times)
    control = g2[:, None, None] * arr["grad_log_phi"]
    return {"f": f, "g2": g2, "control": control, "forward": f + control,
            "backward": f - g2[:, None, None] * arr["grad_log_phi_hat"]}


def _errors(name: str, learned, exact, arr, g2) -> dict:
    """``e(t)``, the relative error and ``½∫ e/g² dt`` (Girsanov's path KL)."""
    rho, w = arr["density"], arr["weights"]
    e = (((learned - exact) ** 2).sum(axis=2) * rho) @ w
    norm = ((exact**2).sum(axis=2) * rho) @ w
    return {name: e, f"{name}_relative": np.sqrt(e / np.maximum(norm, 1e-300)),
            f"{name}_path_kl": float(trapezoid_weights(arr["times"]) @ (0.5 * e / g2))}


def _cost(density, g2, u, arr) -> float:
    """``½ ∫ ∫ density |u|²/g² dx dt`` (trapezoid in t)."""
    rate = 0.5 * ((u**2).sum(axis=2) * density) @ arr["weights"] / g2
    return float(trapezoid_weights(arr["times"]) @ rate)


def _law(fwd, b, arr, exact, control, problem, rho0, solve, progress, cost) -> dict:
    """The FE law of the learned forward SDE and its miss of the bridge marginals."""
    if not solve:
        return {"skipped": "solve=False"}
    rho0 = rho0 if rho0 is not None else b.data()
    if rho0 is None:
        return {"skipped": "the bundle's metadata describe no ρ0 density: pass rho0="}
    try:
        from bridgesolve.learn.validation import problem_from_bundle
        from bridgesolve.likelihood.controlled import controlled_density

        problem = problem if problem is not None else problem_from_bundle(b)
    except (ImportError, BridgesolveInputError) as exc:
        return {"skipped": f"no problem for the FE law ({_first_line(exc)})"}
    q_field = controlled_density(problem, fwd, rho0, progress=progress)
    pts, w, rho = arr["points"], arr["weights"], arr["density"]
    q = np.stack([q_field.evaluate(pts, float(t)) for t in arr["times"]])
    cost["learned"] = _cost(q, exact["g2"], control, arr)
    rho1, qT = rho[-1], q[-1]
    floor = max(LOG_FLOOR_RELATIVE * float(qT.max()), 1e-300)
    kl = float((rho1 * (np.log(np.maximum(rho1, 1e-300)) - np.log(np.maximum(qT, floor))))
               @ w)
    return {"l1_per_time": np.abs(q - rho) @ w, "l1_T": float(np.abs(qT - rho1) @ w),
            "kl_T": kl, "mass": q @ w}


def _summary(b, arr) -> dict:
    return bundle_summary(arr, b.process())


def _table(d: dict) -> str:
    e, c, law = d["drift_error"], d["cost"], d["law"]
    both = "backward" in e
    lines = [f"forward: {d['forward']}   backward: {d['backward']}   bundle: "
             f"{bundle_words(d['bundle'])}",
             f"{'t':>9} {'E_ρ|b-b*|² fwd':>15} {'relative':>9}"
             + (f" {'E_ρ|b̂-b̂*|² bwd':>16} {'relative':>9}" if both else "")
             + (f" {'‖q-ρ‖_L1':>10}" if "l1_per_time" in law else "")]
    for n, t in enumerate(e["times"]):
        row = f"{t:9.4g} {e['forward'][n]:15.4e} {e['forward_relative'][n]:9.4f}"
        if both:
            row += f" {e['backward'][n]:16.4e} {e['backward_relative'][n]:9.4f}"
        if "l1_per_time" in law:
            row += f" {law['l1_per_time'][n]:10.3e}"
        lines.append(row)
    lines.append("")
    lines.append(f"path KL ½∫e/g² dt: forward {e['forward_path_kl']:.4e}"
                 + (f", backward {e['backward_path_kl']:.4e}" if both else ""))
    learned = c.get("learned")
    lines.append(f"KL cost: optimal {c['optimal']:.6g}, learned "
                 + (f"{learned:.6g} (on its own law), " if learned is not None else "")
                 + f"{c['learned_on_bundle_marginals']:.6g} (on the bridge marginals)")
    if "skipped" in law:
        lines.append(f"law of the learned forward SDE: skipped ({law['skipped']})")
    else:
        lines.append(f"law at T against ρ1: L1 {law['l1_T']:.4e}, KL(ρ1‖q_T) "
                     f"{law['kl_T']:.4e}")
    return "\n".join(lines)


__all__ = ["BACKWARD_TIMES", "BridgeReport", "validate_bridge"]
