"""Entropy changes along sampled paths (system, medium, total) and the integral fluctuation
theorem; re-exported by :mod:`bridgesolve.thermo`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._validate import BridgesolveInputError, choice, positive_int
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import Process


# =========================================================================================
# Trajectory entropies and the integral fluctuation theorem
# =========================================================================================
@dataclass
class PathEntropies:
    """Entropy changes along sampled paths (one value per path).

    Attributes:
        system: ``ΔS_sys = \\log p_start(x_start) - \\log p_end(x_end)``.
        medium: ``ΔS_E = ∫ (F/D)∘dx`` (Stratonovich, midpoint rule).
        total: ``ΔS_tot = ΔS_sys + ΔS_E``.
        reverse: whether the paths ran the reverse process (from ``T`` down to ``t_0``).
        x_start, x_end: the paths' first and last points ``(N, d)``.
        info: scheme, steps, timings.
    """

    system: np.ndarray
    medium: np.ndarray
    total: np.ndarray
    reverse: bool = False
    x_start: np.ndarray | None = None
    x_end: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.total.size)

    def ift(self) -> tuple[float, float]:
        """``(⟨e^{-ΔS_tot}⟩, its standard error)``; the integral fluctuation theorem says 1."""
        w = np.exp(-self.total)
        return float(w.mean()), float(w.std(ddof=1) / math.sqrt(w.size))

    def mean_total(self) -> tuple[float, float]:
        """``(⟨ΔS_tot⟩, its standard error)``; equals ``∫ Π dt`` over the paths' interval."""
        return float(self.total.mean()), float(self.total.std(ddof=1) / math.sqrt(self.n))

    def running_ift(self) -> np.ndarray:
        """``⟨e^{-ΔS_tot}⟩`` over the first ``1, 2, ..., n`` paths."""
        return np.cumsum(np.exp(-self.total)) / np.arange(1, self.n + 1)


class _Marginals:
    """``\\log p_t`` and ``∇\\log p_t`` at points: closed form (a mixture under a linear
    process) or a mesh field (collective evaluation; ``∇`` by :func:`grad_log`)."""

    def __init__(self, density, process):
        from bridgesolve.densities import mixture_score

        self.field = None
        if isinstance(density, GaussianMixture):
            self.data = density
            self.process = process
            self._score = mixture_score(density, process)
            self._cache: dict = {}
        else:
            from bridgesolve.score import grad_log
            from bridgesolve.spacetime import SpaceTimeField

            if not isinstance(density, SpaceTimeField):
                raise BridgesolveInputError(
                    f"density = {density!r}: expected a GaussianMixture (data at t = 0) or a "
                    "SpaceTimeField of marginals")
            self.field = density
            self._grad = grad_log(density)

    def mixture(self, t):
        if t not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[t] = self.data.evolve(self.process, t) if t > 0 else self.data
        return self._cache[t]

    def log_pdf(self, x, t):
        if self.field is None:
            return self.mixture(float(t)).log_pdf(x)
        vals = self.field.evaluate(x, t)
        if self.field.representation == "log":
            return vals
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(vals, 1e-300))

    def score(self, x, t):
        if self.field is None:
            return self._score(x, t)
        return self._grad.evaluate(x, t)


def _time_levels(marg, grid, T, steps) -> np.ndarray:
    """The time levels of the paths: ``grid``, else the mesh field's grid, else ``steps``
    uniform steps on ``[0, T]``."""
    if grid is None:
        if marg.field is not None and steps is None:
            grid = marg.field.grid
        else:
            from bridgesolve.timegrid import TimeGrid

            if T is None or steps is None:
                raise BridgesolveInputError("path_entropies: pass grid=, or T= and steps=")
            grid = TimeGrid.uniform(T, steps)
    return np.asarray(grid.times, dtype=float)


def _start_points(n_paths, start, marg, t_first: float, rng) -> np.ndarray:
    """``(N, d)`` start points: given, or ``n_paths`` draws from ``start`` (default the
    closed-form marginal at ``t_first``)."""
    if isinstance(n_paths, int | np.integer) and not isinstance(n_paths, bool):
        n = positive_int("n_paths", n_paths)
        if start is None:
            if marg.field is not None:
                raise BridgesolveInputError(
                    "path_entropies on a mesh density: pass start= (a sampler of p at the "
                    "start time) or the start points as n_paths")
            start = marg.mixture(t_first)
        return np.asarray(start.sample(n, rng), dtype=float)
    x = np.array(n_paths, dtype=float)
    return x[:, None] if x.ndim == 1 else x


def _step(process, F, method: str, x: np.ndarray, ta: float, tb: float, rng) -> np.ndarray:
    """One step from ``ta`` to ``tb`` (either direction): the exact Gaussian transition, or
    Euler / stochastic Heun with the drift ``F``. The noise of the SDE step is drawn in
    every method, so that a seed gives the same stream whatever the method."""
    var = 2.0 * process.diffusion_integral(min(ta, tb), max(ta, tb))
    xi = math.sqrt(var) * rng.standard_normal(x.shape)
    if method == "exact":
        a, tv = process.transition(tb, ta)
        c = float(getattr(process, "center", 0.0))
        return a * x + (1 - a) * c + math.sqrt(tv) * rng.standard_normal(x.shape)
    h = abs(tb - ta)
    Fa = F(x, ta)
    pred = x + Fa * h + xi
    return pred if method == "euler" else x + 0.5 * (Fa + F(pred, tb)) * h + xi


def path_entropies(
    process: Process,
    density,
    n_paths: int | np.ndarray,
    *,
    T: float | None = None,
    steps: int | None = None,
    grid=None,
    reverse: bool = False,
    method: str | None = None,
    drift: Callable | None = None,
    start=None,
    rng: np.random.Generator | int | None = 0,
    progress: bool = True,
) -> PathEntropies:
    r"""Sample paths of the forward (or reverse) process and their entropy changes.

    Forward: ``dx = F dt + \sqrt{2D} dW`` on ``[t_0, T]`` from ``x ~ p_{t_0}``, ``F = f``.
    Reverse: in ``s = T - t`` from ``x ~ p_T``, ``dx = F^* ds + \sqrt{2D} dW`` with
    ``F^* = -f + 2D ∇\log p``. ``ΔS_E = Σ F(x̄_n, t̄_n)·Δx_n / D(t̄_n)`` at the midpoints
    ``x̄_n = (x_n + x_{n+1})/2`` (Stratonovich) and ``ΔS_sys`` from ``\log p`` at the ends.

    Args:
        process: the reference process (``f``, ``D``).
        density: the marginals ``p_t``: a :class:`GaussianMixture` of the data at ``t = 0``
            pushed through the (linear) process in closed form, or a density
            :class:`~bridgesolve.SpaceTimeField` (mesh solution; collective evaluations,
            NaN if a path leaves the mesh).
        n_paths: number of paths, or the start points ``(N, d)``.
        T, steps, grid: the time levels (default the field's grid; or ``steps`` uniform
            steps on ``[0, T]``).
        reverse: run the reverse process.
        method: ``"exact"`` (Gaussian transitions of a linear process; forward only, the
            default there), ``"heun"`` (stochastic Heun, weak order 2; the default
            otherwise) or ``"euler"``.
        drift: replace ``F`` (forward) or ``F^*`` (reverse): ``F(x, t)`` with ``t`` forward.
        start: start sampler with ``.sample(n, rng)`` (default ``p`` at the start time, in
            closed form for a mixture; required for a mesh density unless ``n_paths`` holds
            the points).
        rng: a Generator or a seed.
        progress: a progress bar over the steps.
    """
    from tqdm.auto import tqdm

    if not isinstance(process, Process):
        raise BridgesolveInputError(f"process = {process!r}: expected a bridgesolve process")
    marg = _Marginals(density, process)
    times = _time_levels(marg, grid, T, steps)
    if method is None:
        method = "exact" if (not reverse and drift is None and process.linear) else "heun"
    choice("method", method, ("exact", "heun", "euler"))
    if method == "exact" and (reverse or drift is not None or not process.linear):
        raise BridgesolveInputError(
            "method='exact' needs forward paths of a linear process with its own drift")
    rng = np.random.default_rng(rng)
    x = _start_points(n_paths, start, marg, float(times[-1] if reverse else times[0]), rng)
    x_start = x.copy()

    def F(y, t):
        if drift is not None:
            return np.asarray(drift(y, t), dtype=float).reshape(y.shape)
        f = process.drift(y, t)
        if not reverse:
            return f
        return -f + 2.0 * float(process.diffusion(t)) * np.asarray(marg.score(y, t)).reshape(
            y.shape)

    medium = np.zeros(x.shape[0])
    order = range(times.size - 2, -1, -1) if reverse else range(times.size - 1)
    t0 = time.perf_counter()
    bar = tqdm(total=times.size - 1, desc="reverse paths" if reverse else "forward paths",
               unit="step", leave=False, disable=not progress)
    try:
        for n_ in order:
            ta, tb = (times[n_ + 1], times[n_]) if reverse else (times[n_], times[n_ + 1])
            ta, tb = float(ta), float(tb)
            x_new = _step(process, F, method, x, ta, tb, rng)
            tm = 0.5 * (ta + tb)
            mid = 0.5 * (x + x_new)
            medium += np.sum(F(mid, tm) * (x_new - x), axis=1) / float(process.diffusion(tm))
            x = x_new
            bar.update()
    finally:
        bar.close()
    t_start, t_end = (float(times[-1]), float(times[0])) if reverse else (
        float(times[0]), float(times[-1]))
    system = marg.log_pdf(x_start, t_start) - marg.log_pdf(x, t_end)
    info = {"method": method, "steps": times.size - 1, "T": float(times[-1]),
            "t0": float(times[0]), "paths": int(x.shape[0]),
            "timings": {"total_s": time.perf_counter() - t0}}
    return PathEntropies(system, medium, system + medium, reverse=bool(reverse),
                         x_start=x_start, x_end=x, info=info)
