r"""Discrete noise schedules: a tabulated ``ᾱ_k`` as a continuous-time VP process.

The arithmetic behind :class:`bridgesolve.process.Tabulated` (NumPy and SciPy; torch only for
diffusers' ``sigmoid`` schedule, when it is importable):

* :func:`diffusers_alphas_cumprod` computes ``alphas_cumprod`` from a diffusers scheduler
  config (``num_train_timesteps``, ``beta_start``, ``beta_end``, ``beta_schedule``,
  ``trained_betas``) bit for bit as diffusers does: its betas and products are float32
  (``torch.linspace`` in float32, ``1 - β`` in float32, the cumulative product accumulated in
  float64 and stored as float32, as ``torch.cumprod`` does on the CPU; ``sigmoid`` calls
  torch itself when it can, see :func:`sigmoid_betas`);
* :func:`vp_discrete_std` is score_sde's ``sqrt_1m_alphas_cumprod`` of its discrete VP SDE;
* :class:`Schedule` interpolates ``B(t) = -log ᾱ(t)`` between the tabulated times by a
  monotone cubic Hermite spline through ``(0, 0)`` and ``(t_k, -log ᾱ_k)``, so that
  ``ᾱ(t_k)`` reproduces the table and ``β(t) = B'(t) > 0`` everywhere.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError

#: The beta schedules of diffusers that :func:`diffusers_alphas_cumprod` reproduces.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "laplace", "sigmoid")


def linspace_float32(start: float, end: float, n: int) -> np.ndarray:
    """``torch.linspace(start, end, n, dtype=torch.float32)`` bit for bit: a float32 step and
    ``start + step i`` (first half) or ``end - step (n - 1 - i)`` rounded once to float32."""
    a, b = np.float32(start), np.float32(end)
    if n == 1:
        return np.array([a], dtype=np.float32)
    step = np.float64((b - a) / np.float32(n - 1))
    i = np.arange(n, dtype=np.float64)
    lo = np.float64(a) + step * i
    hi = np.float64(b) - step * (n - 1 - i)
    return np.where(i < n // 2, lo, hi).astype(np.float32)


def sigmoid_betas(beta_start: float, beta_end: float, n: int) -> np.ndarray:
    """The betas of diffusers' ``sigmoid`` (GeoDiff) schedule in float32:
    ``torch.sigmoid(torch.linspace(-6, 6, n)) * (beta_end - beta_start) + beta_start``.

    With torch importable this *is* that torch expression (in
    :mod:`bridgesolve.learn._schedules`, torch's one home), so the betas are diffusers' own
    bit for bit: ``torch.sigmoid`` is not correctly rounded (its vectorized CPU ``exp``
    differs from a correctly rounded one by one ulp at ~4 % of the points for n = 1000,
    and may differ between CPU instruction sets), so NumPy cannot reproduce it. Without
    torch (hence without diffusers), the same float32 steps with a correctly rounded
    float32 ``exp``: betas within 2 ulps of torch's, and ``alphas_cumprod`` (where
    ``1 - β`` is rounded to float32) identical to diffusers' for N = 37, 1000, 4000 and
    (beta_start, beta_end) = (1e-4, 0.02), (1e-7, 2e-3), (8.5e-4, 0.012).
    """
    try:  # torch itself, from the one package that imports it
        from bridgesolve.learn._schedules import sigmoid_betas as torch_sigmoid_betas

        return torch_sigmoid_betas(beta_start, beta_end, n)
    except ImportError:  # no torch
        pass
    x = linspace_float32(-6.0, 6.0, n)
    s = np.float32(1.0) / (np.float32(1.0) + np.exp(-x.astype(np.float64)).astype(np.float32))
    return (s * np.float32(beta_end - beta_start) + np.float32(beta_start)).astype(np.float32)


def _alpha_bar_betas(n: int, kind: str, max_beta: float = 0.999) -> np.ndarray:
    """The betas of diffusers' ``betas_for_alpha_bar`` (Python floats, stored as float32)."""
    if kind == "cosine":
        def f(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    else:  # laplace
        def f(t):
            lmb = -0.5 * math.copysign(1, 0.5 - t) * math.log(1 - 2 * math.fabs(0.5 - t) + 1e-6)
            snr = math.exp(lmb)
            return math.sqrt(snr / (1 + snr))
    return np.array([min(1 - f((i + 1) / n) / f(i / n), max_beta) for i in range(n)],
                    dtype=np.float32)


def _cumprod_float32(betas: np.ndarray) -> np.ndarray:
    alphas = np.float32(1.0) - betas.astype(np.float32)
    return np.cumprod(alphas.astype(np.float64)).astype(np.float32).astype(np.float64)


def read_scheduler_config(config) -> dict:
    """A scheduler config as a dict: a dict, or the path of a ``scheduler_config.json``."""
    if isinstance(config, dict):
        return config
    if isinstance(config, str | os.PathLike):
        path = Path(config)
        if path.is_dir():
            path = path / "scheduler_config.json"
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise BridgesolveInputError(f"scheduler config {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BridgesolveInputError(f"scheduler config {str(path)!r}: expected a JSON "
                                        f"object ({exc})") from None
        if not isinstance(data, dict):
            raise BridgesolveInputError(f"scheduler config {str(path)!r}: expected a JSON "
                                        f"object, got {type(data).__name__}")
        return data
    raise BridgesolveInputError(f"scheduler config {config!r}: expected a dict or the path of "
                                "a scheduler_config.json")


def _key(cfg: dict, key: str, why: str):
    if cfg.get(key) is None:
        raise BridgesolveInputError(
            f"scheduler config has no {key!r} (keys: {sorted(cfg)}): expected it {why}")
    return cfg[key]


def diffusers_alphas_cumprod(config) -> np.ndarray:
    """``DDPMScheduler(**config).alphas_cumprod`` as float64 (the float32 values exactly).

    Args:
        config: a dict or a ``scheduler_config.json`` path with diffusers' keys; the
            schedule's own keys are required (no diffusers defaults are assumed):
            ``trained_betas``, or ``num_train_timesteps`` and ``beta_schedule`` and, for
            ``linear``/``scaled_linear``/``sigmoid``, ``beta_start`` and ``beta_end``.
    """
    cfg = read_scheduler_config(config)
    if cfg.get("rescale_betas_zero_snr"):
        raise BridgesolveInputError(
            "scheduler config rescale_betas_zero_snr = true: expected false (a zero terminal "
            "SNR makes ᾱ_{N-1} = 0, which no process with a Gaussian prior reaches)")
    if cfg.get("trained_betas") is not None:
        betas = np.asarray(cfg["trained_betas"], dtype=float)
        if betas.ndim != 1 or betas.size < 1 or not np.all((betas > 0) & (betas < 1)):
            raise BridgesolveInputError(f"scheduler config trained_betas = {cfg['trained_betas']!r}"
                                        ": expected a list of numbers in (0, 1)")
        return _cumprod_float32(betas.astype(np.float32))
    n = _key(cfg, "num_train_timesteps", "(a positive integer)")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise BridgesolveInputError(
            f"scheduler config num_train_timesteps = {n!r}: expected a positive integer")
    kind = _key(cfg, "beta_schedule", f"(one of {', '.join(BETA_SCHEDULES)})")
    if kind not in BETA_SCHEDULES:
        raise BridgesolveInputError(f"scheduler config beta_schedule = {kind!r}: expected one "
                                    f"of {', '.join(map(repr, BETA_SCHEDULES))} (or give "
                                    "trained_betas)")
    if kind in ("squaredcos_cap_v2", "laplace"):
        return _cumprod_float32(_alpha_bar_betas(int(n), "cosine" if kind[0] == "s" else kind))
    lo, hi = (_key(cfg, k, f"for beta_schedule = {kind!r}") for k in ("beta_start", "beta_end"))
    if not 0 < float(lo) <= float(hi) < 1:
        raise BridgesolveInputError(f"scheduler config beta_start = {lo!r}, beta_end = {hi!r}: "
                                    "expected 0 < beta_start <= beta_end < 1")
    if kind == "linear":
        betas = linspace_float32(float(lo), float(hi), int(n))
    elif kind == "sigmoid":
        betas = sigmoid_betas(float(lo), float(hi), int(n))
    else:
        betas = np.square(linspace_float32(float(lo) ** 0.5, float(hi) ** 0.5, int(n)))
    return _cumprod_float32(betas)


def vp_discrete_std(beta_min: float, beta_max: float, n: int) -> np.ndarray:
    """score_sde's ``VPSDE.sqrt_1m_alphas_cumprod`` (float32 like its torch tensors)."""
    abar = _cumprod_float32(linspace_float32(beta_min / n, beta_max / n, n)).astype(np.float32)
    return np.sqrt(np.float32(1.0) - abar).astype(np.float64)


class Schedule:
    """``B(t) = -log ᾱ(t)`` through ``(0, 0)`` and ``(t_k, -log ᾱ_k)``: a cubic Hermite
    spline with PCHIP's slopes (monotone), endpoint slopes replaced by the secant where
    PCHIP sets them to zero, so ``β = B' > 0`` on ``[0, T]``."""

    def __init__(self, alphas_cumprod, times=None):
        from scipy.interpolate import CubicHermiteSpline, PchipInterpolator

        abar = np.asarray(alphas_cumprod, dtype=float)
        if abar.ndim != 1 or abar.size < 1 or not np.all(np.isfinite(abar)):
            raise BridgesolveInputError(f"alphas_cumprod of shape {abar.shape}: expected a 1D "
                                        "table of N >= 1 finite numbers")
        bad = np.flatnonzero(~((abar > 0) & (abar < 1)) | (np.diff(abar, prepend=1.0) >= 0))
        if bad.size:
            i = int(bad[0])
            a = [float(v) for v in abar[max(i - 1, 0):i + 1]]
            why = (f"alphas_cumprod[{i}] = {a[-1]!r} is not in (0, 1)" if not 0 < a[-1] < 1
                   else f"alphas_cumprod[{i}] = {a[1]!r} >= alphas_cumprod[{i - 1}] = {a[0]!r}")
            raise BridgesolveInputError(f"alphas_cumprod = {_head(abar)}: expected strictly "
                                        f"decreasing values in (0, 1) ({why})")
        n = abar.size
        t = np.arange(1, n + 1) / n if times is None else np.asarray(times, dtype=float)
        if t.shape != abar.shape or not np.all(np.isfinite(t)) or t[0] <= 0 \
                or np.any(np.diff(t) <= 0):
            raise BridgesolveInputError(f"times = {_head(t)}: expected {n} strictly increasing "
                                        "positive times, one per alphas_cumprod entry")
        self.alphas_cumprod, self.times, self.T = abar, t, float(t[-1])
        self.knots = np.concatenate([[0.0], t])
        self.levels = np.concatenate([[0.0], -np.log(abar)])
        if n == 1:
            slopes = np.full(2, self.levels[1] / t[0])
        else:
            slopes = PchipInterpolator(self.knots, self.levels).derivative()(self.knots)
            secant = np.diff(self.levels) / np.diff(self.knots)
            for end, sec in ((0, secant[0]), (-1, secant[-1])):
                if not slopes[end] > 0:
                    slopes[end] = sec
        self._B = CubicHermiteSpline(self.knots, self.levels, slopes)
        self._beta = self._B.derivative()

    def _inside(self, t):
        t = np.asarray(t, dtype=float)
        tol = 1e-9 * self.T
        if np.any(~np.isfinite(t)) or np.any(t < -tol) or np.any(t > self.T + tol):
            bad = t[~((t >= -tol) & (t <= self.T + tol))].ravel()[0]
            raise BridgesolveInputError(f"t = {bad!r}: expected a time in [0, T = {self.T!r}] "
                                        "of the tabulated schedule")
        return np.clip(t, 0.0, self.T)

    def B(self, t):
        """``-log ᾱ(t) = ∫_0^t β``; exact (to rounding) at the tabulated times."""
        t = self._inside(t)
        out = self._B(t)
        # At the knots, the table itself (the spline's evaluation may round differently).
        hit = np.searchsorted(self.knots, t)
        hit = np.minimum(hit, self.knots.size - 1)
        return np.where(self.knots[hit] == t, self.levels[hit], out)

    def beta(self, t):
        return self._beta(self._inside(t))

    def timestep(self, t):
        """The fractional index ``k`` with ``t_k = t`` (piecewise linear in t; ``t = 0`` is
        ``k = -1``)."""
        return np.interp(self._inside(t), self.knots, np.arange(-1.0, self.times.size))

    def timestep_of_level(self, level):
        """The fractional ``k`` with ``-log ᾱ_k = level`` (piecewise linear in the level),
        for matching another process's noise level; clipped to ``[-1, N - 1]``."""
        return np.interp(np.asarray(level, dtype=float), self.levels,
                         np.arange(-1.0, self.times.size))


def _head(a: np.ndarray) -> str:
    a = np.ravel(a)
    return np.array2string(a[:6], precision=6) + (f" ... ({a.size} values)" if a.size > 6 else "")
