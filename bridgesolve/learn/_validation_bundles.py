"""Reference bundles for the validator: loading, the process, data and Problem they were
computed for, exact laws of the data, samples of ρ0 (NumPy only; split from
:mod:`bridgesolve.learn.validation`, which re-exports the public names)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities import data_from_description, is_probability_density
from bridgesolve.densities.fields import exact_fields
from bridgesolve.process import Process, process_from_description

# -- bundles -----------------------------------------------------------------------------
_KEYS = ("points", "weights", "times", "density", "score")


def load_bundle(bundle):
    """A bundle object from a ReferenceBundle, a path to its ``.npz``, or any object with
    ``points, weights, times, density, score`` (and ``metadata``)."""
    if isinstance(bundle, str | os.PathLike):
        path = Path(bundle)
        if not path.is_file():
            raise BridgesolveInputError(f"reference bundle {str(path)!r} does not exist")
        from bridgesolve.reference import ReferenceBundle  # NumPy only

        return ReferenceBundle.load(path)
    missing = [k for k in _KEYS if not hasattr(bundle, k)]
    if missing:
        raise BridgesolveInputError(f"bundle = {bundle!r}: expected a ReferenceBundle (or a "
                                    f".npz path); missing {', '.join(missing)}")
    return bundle


def _bundle_process(bundle) -> Process | None:
    if callable(getattr(bundle, "process", None)):
        return bundle.process()
    desc = (getattr(bundle, "metadata", None) or {}).get("process")
    return process_from_description(desc) if desc else None


def _bundle_data(bundle):
    """The bundle's ρ0 as an exact density, when its metadata describe one (else None)."""
    if callable(getattr(bundle, "data", None)):
        return bundle.data()
    desc = (getattr(bundle, "metadata", None) or {}).get("data")
    return data_from_description(desc)


def problem_from_bundle(bundle, comm=None):
    """The :class:`~bridgesolve.Problem` a finite-element bundle was computed on, rebuilt
    from its metadata (box, disk or gmsh domain; element degree, scheme and boundary; the
    bundle's time levels). Needs DOLFINx; collective over ``comm``.

    Raises:
        BridgesolveInputError: when the metadata do not describe a rebuildable problem.
    """
    from bridgesolve.problem import Problem

    meta = getattr(bundle, "metadata", None) or {}
    desc = {"domain": meta.get("domain"), "discretization": meta.get("discretization")}
    try:
        return Problem.from_description(desc, times=bundle.times,
                                        process=_bundle_process(bundle), comm=comm)
    except BridgesolveInputError as exc:
        raise BridgesolveInputError(f"bundle metadata: {exc} (pass problem=)") from None


def trapezoid_weights(t: np.ndarray) -> np.ndarray:
    """Weights ``ω`` with ``Σ ω_n f(t_n) ≈ ∫ f`` (trapezoidal rule; any spacing)."""
    w = np.zeros_like(t)
    if t.size > 1:
        dt = np.diff(t)
        w[:-1] += 0.5 * dt
        w[1:] += 0.5 * dt
    return w


def _x0_sampler(data, bundle, pts, w, p0):
    """``(n, rng) -> (n, d)`` samples of ρ0."""
    if data is not None:
        from bridgesolve.learn.data import as_dataset  # NumPy only

        ds = as_dataset(data)
        return lambda n, rng: ds.sample(n, rng)
    mixture = _bundle_data(bundle)
    if is_probability_density(mixture):
        return lambda n, rng: mixture.sample(n, rng)
    prob = np.maximum(w * p0, 0.0)
    prob = prob / prob.sum()
    # The bundle's ρ0 as a discrete law on its quadrature points (an approximation).
    return lambda n, rng: pts[rng.choice(pts.shape[0], size=n, p=prob)]


def mixture_fields(mixture, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log ρ, ∇log ρ)`` of an exact density (a Gaussian mixture or any family of
    :mod:`bridgesolve.densities`) at points ``(N, d)``."""
    return exact_fields(mixture, x)


def _law(mixture, process, t, pts, density) -> tuple[np.ndarray, np.ndarray]:
    """``(p, log p)`` at the points: exact when the data are an exact density and the
    process is linear (the likelihood parts then carry no bundle discretization error),
    else the bundle's density and its logarithm (a consistent pair, floored)."""
    if is_probability_density(mixture) and process.linear:
        law = mixture.evolve(process, t) if t > 0 else mixture
        log_p = mixture_fields(law, pts)[0]
        return np.exp(log_p), log_p
    dens = np.asarray(density, dtype=float)
    return dens, np.log(np.maximum(dens, max(np.finfo(float).eps * dens.max(), 1e-300)))


__all__ = ["load_bundle", "mixture_fields", "problem_from_bundle", "trapezoid_weights"]
