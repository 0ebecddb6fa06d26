r"""Reverse-time samplers of the interpolating family (NumPy; any score callable).

For a reference process ``dX = f dt + g dW`` and a score ``s(x, t) ≈ ∇ log p_t(x)`` the
samplers integrate, from ``t = T`` down to ``t_end`` (reverse time ``τ = T - t``),

.. math::
    dX = \Big[f(X, t) - \frac{1 + h^2}{2}\, g(t)^2\, s(X, t)\Big]\, dt + h\, g(t)\, d\bar W,
    \qquad h \in [0, 1],

i.e. in reverse time ``dX = a(X, τ) dτ + h g dW_τ`` with ``a = -f + (1 + h²)/2 g² s``.
``h = 0`` is the probability-flow ODE, ``h = 1`` the reverse SDE; with the exact score every
``h`` carries ``p_T`` back to ``p_0``.

Schemes over a step ``[t_n, t_{n+1}]`` (``Δ = t_{n+1} - t_n``), with the noise increment
``ξ_n ~ N(0, h² ∫_{t_n}^{t_{n+1}} g² dt · I)`` (the exact variance of ``∫ h g dW``, from the
process's exact ``∫ D``):

* ``"euler"`` (Euler–Maruyama, weak order 1):
  ``X_n = X_{n+1} + a(X_{n+1}, t_{n+1}) Δ + ξ_n``;
* ``"heun"`` (stochastic Heun for additive noise, Kloeden–Platen's simplified weak order-2
  scheme; the trapezoidal rule, order 2, when ``h = 0``):
  ``X̃ = X_{n+1} + a(X_{n+1}, t_{n+1}) Δ + ξ_n``,
  ``X_n = X_{n+1} + ½ (a(X_{n+1}, t_{n+1}) + a(X̃, t_n)) Δ + ξ_n``.

Everything is vectorized over particles: one score call per stage and step on the whole
``(N, d)`` array.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bridgesolve._validate import BridgesolveInputError, choice, positive, positive_int
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import Process
from bridgesolve.timegrid import TimeGrid

METHODS = ("euler", "heun")
Score = Callable[[np.ndarray, float], np.ndarray]


def default_prior(process: Process, T: float, dim: int) -> GaussianMixture:
    """The law at ``T`` of the process started from a point mass at its center: the usual
    prior ``π`` (``N(0, 1 - e^{-B(T)})`` for VP, ``N(0, σ(T)² - σ(0)²)`` for VE)."""
    if not process.linear:
        raise BridgesolveInputError(
            f"process {process!r} has no Gaussian transition: pass prior samples or prior=")
    _, var = process.transition(T, 0.0)
    center = float(getattr(process, "center", 0.0))
    return GaussianMixture([1.0], [[center] * dim], [var])


def user_score(score: Score, dim: int, *, name: str = "score") -> Score:
    """``score`` checked on every call (:func:`bridgesolve.score.checked_score`): values of
    shape ``(N, d)`` (``(N,)`` in 1D) and finite, else one-line
    :class:`~bridgesolve._validate.BridgesolveInputError` naming ``name``. Mesh fields
    (:class:`~bridgesolve.score.VectorField`, and callables marked ``nan_outside_mesh``)
    pass through unchanged: they are NaN outside their mesh by design, and their calls are
    collective. A score already checked is not wrapped twice."""
    from bridgesolve._validate import CheckedCallable, checked_score
    from bridgesolve.score import VectorField

    if callable(score) and (isinstance(score, VectorField | CheckedCallable)
                            or getattr(score, "nan_outside_mesh", False)):
        return score
    if callable(score) and isinstance(dim, int | np.integer) and dim > 3:
        return CheckedCallable(name, score, dim=int(dim))  # samplers run in any dimension
    return checked_score(score, dim, name=name)


def check_h(h: float) -> float:
    h = positive("h", h, allow_zero=True)
    if h > 1.0:
        raise BridgesolveInputError(f"h = {h!r}: expected a number in [0, 1]")
    return h


def reverse_drift(process: Process, score: Score, h: float) -> Callable:
    """``a(x, t) = -f(x, t) + (1 + h²)/2 g(t)² s(x, t)``: the drift in reverse time."""
    c = 0.5 * (1.0 + h * h)

    def a(x, t):
        s = np.asarray(score(x, t), dtype=float).reshape(x.shape)
        return -process.drift(x, t) + c * 2.0 * float(process.diffusion(t)) * s

    return a


def sample(
    process: Process,
    score: Score,
    h: float,
    prior_samples_or_n: np.ndarray | int,
    *,
    grid: TimeGrid | None = None,
    steps: int | None = None,
    T: float | None = None,
    t_end: float = 0.0,
    method: str = "euler",
    rng: np.random.Generator | int | None = None,
    prior=None,
    dim: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Integrate the interpolating sampler from ``T`` down to ``t_end``.

    Args:
        process: the reference SDE (its ``drift`` and ``diffusion`` are used).
        score: ``s(x (N, d), t) -> (N, d)``: an analytic, PDE
            (:class:`~bridgesolve.score.VectorField`), bundle or learned score. A mesh
            field is NaN outside its mesh: particles that leave it make the run fail, so
            use a domain that holds the prior's mass (and under MPI every rank calls the
            collective field the same number of times: one per stage and step).
        h: the interpolation parameter in [0, 1] (0: probability-flow ODE, 1: reverse SDE).
        prior_samples_or_n: samples ``(N, d)`` at ``T``, or a number of particles drawn
            from ``prior`` (default :func:`default_prior`, which needs ``dim``).
        grid: the time levels (its last is ``T``, its first ``t_end``); or give ``steps``
            (and ``T``, default the process's own ``T``) for a uniform grid on
            ``[t_end, T]``.
        method: ``"euler"`` (Euler–Maruyama) or ``"heun"`` (second order).
        rng: a ``numpy.random.Generator`` or a seed (reproducible runs).
        prior: an object with ``sample(n, rng)`` (e.g. a :class:`GaussianMixture`).
        dim: the dimension, when drawing from the default prior.
        progress: show a progress bar over the steps.

    Returns:
        The particles ``(N, d)`` at ``t_end``.
    """
    h = check_h(h)
    choice("method", method, METHODS)
    rng = np.random.default_rng(rng)
    grid = _grid(process, grid, steps, T, t_end)
    times = grid.times
    x = _initial(process, prior_samples_or_n, prior, dim, grid.T, rng)
    a = reverse_drift(process, user_score(score, x.shape[1] if x.ndim == 2 else 1), h)
    from tqdm.auto import tqdm

    bar = tqdm(total=grid.steps, desc=f"sampling h={h:g}", unit="step", leave=False,
               disable=not progress)
    try:
        for n in range(grid.steps - 1, -1, -1):
            t1, t0 = float(times[n + 1]), float(times[n])
            dt = t1 - t0
            a1 = a(x, t1)
            if h > 0:
                var = 2.0 * h * h * process.diffusion_integral(t0, t1)
                noise = np.sqrt(var) * rng.standard_normal(x.shape)
            else:
                noise = 0.0
            if method == "euler":
                x = x + a1 * dt + noise
            else:
                pred = x + a1 * dt + noise
                x = x + 0.5 * (a1 + a(pred, t0)) * dt + noise
            bar.update()
    finally:
        bar.close()
    if not np.all(np.isfinite(x)):
        raise FloatingPointError("sampler produced non-finite particles (score blew up?)")
    return x


def _grid(process, grid, steps, T, t_end) -> TimeGrid:
    if grid is not None:
        if not isinstance(grid, TimeGrid):
            raise BridgesolveInputError(f"grid = {grid!r}: expected a bridgesolve.TimeGrid")
        return grid
    if steps is None:
        raise BridgesolveInputError("sample: pass grid= or steps=")
    steps = positive_int("steps", steps)
    T = T if T is not None else getattr(process, "T", None)
    if T is None:
        raise BridgesolveInputError(f"sample: pass T= (process {process!r} has no horizon)")
    T = positive("T", T)
    t_end = positive("t_end", t_end, allow_zero=True)
    if not t_end < T:
        raise BridgesolveInputError(f"t_end = {t_end!r}: expected < T = {T!r}")
    return TimeGrid(np.linspace(t_end, T, steps + 1))


def _initial(process, prior_samples_or_n, prior, dim, T, rng) -> np.ndarray:
    if isinstance(prior_samples_or_n, int | np.integer) and not isinstance(
            prior_samples_or_n, bool):
        n = positive_int("number of particles", prior_samples_or_n)
        if prior is None:
            if dim is None:
                raise BridgesolveInputError("sample: pass dim= (or prior=) to draw particles")
            prior = default_prior(process, T, positive_int("dim", dim))
        if not hasattr(prior, "sample"):
            raise BridgesolveInputError(
                f"prior = {prior!r}: expected an object with sample(n, rng)")
        return np.asarray(prior.sample(n, rng), dtype=float)
    x = np.array(prior_samples_or_n, dtype=float)  # a copy: the caller's array stays intact
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise BridgesolveInputError(
            f"prior samples have shape {np.shape(prior_samples_or_n)}: expected (N, d)")
    return x


__all__ = ["METHODS", "default_prior", "reverse_drift", "sample"]
