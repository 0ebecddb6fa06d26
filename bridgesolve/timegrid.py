"""Time grids on [0, T] (forward time; data at t = 0)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bridgesolve._validate import BridgesolveInputError, positive, positive_int


@dataclass(frozen=True, eq=False)
class TimeGrid:
    """Strictly increasing time levels ``t_0 < t_1 < ... < t_N = T``.

    ``t_0 = 0`` (data at t = 0) by default; every constructor takes ``t_min`` to start
    later, as likelihoods of diffusion models are taken at ``t_min > 0`` (Hirono et al.:
    0.01), where the score is finite.

    Build one with :meth:`uniform`, :meth:`graded`, :meth:`clock` or :meth:`from_times`.
    """

    times: np.ndarray

    def __post_init__(self):
        t = np.asarray(self.times, dtype=float)
        if t.ndim != 1 or t.size < 2:
            raise BridgesolveInputError(
                f"time grid has {t.size} levels: expected at least 2 (one step)"
            )
        if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            raise BridgesolveInputError("time grid: expected strictly increasing finite times")
        t.setflags(write=False)
        object.__setattr__(self, "times", t)

    @classmethod
    def uniform(cls, T: float, steps: int, *, t_min: float = 0.0) -> TimeGrid:
        """``steps`` equal steps on [t_min, T]."""
        T = positive("T", T)
        steps = positive_int("steps", steps)
        t_min = _t_min(t_min, T)
        return cls(np.linspace(t_min, T, steps + 1))

    @classmethod
    def graded(cls, T: float, steps: int, *, power: float = 2.0, near: str = "start",
               t_min: float = 0.0) -> TimeGrid:
        """Steps refined near t_min (``near="start"``: ``t_n = t_min + (T - t_min)
        (n / N)^power``, power ≥ 1), where data are rough in diffusion models, or near t = T
        (``near="end"``), where backward problems with sharp terminal values are stiff, or
        near both (``near="both"``, the start's grading mirrored about the middle), where a
        bridge's marginals are sharp at either end."""
        T = positive("T", T)
        steps = positive_int("steps", steps)
        t_min = _t_min(t_min, T)
        if positive("power", power) < 1:
            raise BridgesolveInputError(f"power = {power!r}: expected a number >= 1")
        if near not in ("start", "end", "both"):
            raise BridgesolveInputError(f"near = {near!r}: expected 'start', 'end' or 'both'")
        u = np.linspace(0.0, 1.0, steps + 1)
        if near == "both":
            s = np.where(u <= 0.5, 0.5 * (2.0 * u) ** power, 1.0 - 0.5 * (2.0 * (1.0 - u)) ** power)
        else:
            s = u**power if near == "start" else 1.0 - (1.0 - u) ** power
        return cls(t_min + (T - t_min) * s)

    @classmethod
    def clock(cls, clock: Callable[[np.ndarray], np.ndarray], T: float, steps: int, *,
              t_min: float = 0.0) -> TimeGrid:
        """Steps of equal length in an increasing clock ``s = clock(t)`` on [t_min, T].

        With the intrinsic clock of a process (``process.clock``), every step of a
        time-separable process (VP, VE, OU, Brownian, Cosine) has the same operator, so
        the solver factorizes one matrix for the whole run.
        """
        T = positive("T", T)
        steps = positive_int("steps", steps)
        t_min = _t_min(t_min, T)
        fine = np.linspace(t_min, T, 20001)
        s = np.asarray(clock(fine), dtype=float)
        if np.any(np.diff(s) <= 0):
            raise BridgesolveInputError("clock: expected a strictly increasing function of t")
        targets = np.linspace(s[0], s[-1], steps + 1)
        t = np.interp(targets, s, fine)
        # Polish the piecewise-linear inverse with a few secant steps on the exact clock.
        for _ in range(3):
            sv = np.asarray(clock(t), dtype=float)
            ds = np.asarray(clock(np.minimum(t + 1e-7 * T, T)), dtype=float) - sv
            dt = np.minimum(t + 1e-7 * T, T) - t
            rate = np.where(ds > 0, ds / np.where(dt > 0, dt, 1.0), 1.0)
            t = np.clip(t - (sv - targets) / rate, t_min, T)
        t[0], t[-1] = t_min, T
        return cls(np.maximum.accumulate(t))

    @classmethod
    def from_times(cls, times: Sequence[float], *, t_min: float = 0.0) -> TimeGrid:
        """An explicit list of times starting at ``t_min`` (0 by default)."""
        t = np.asarray(times, dtype=float)
        if t.size and t[0] != t_min:
            raise BridgesolveInputError(
                f"times[0] = {t[0]!r}: expected t_min = {t_min!r} (data sit at t = 0; pass "
                "t_min= for a grid that starts later)")
        return cls(t)

    @property
    def t_min(self) -> float:
        """The first level ``t_0``."""
        return float(self.times[0])

    @property
    def T(self) -> float:
        return float(self.times[-1])

    @property
    def steps(self) -> int:
        return self.times.size - 1

    @property
    def dt(self) -> np.ndarray:
        return np.diff(self.times)

    def __len__(self) -> int:
        return self.times.size

    def index(self, t: float, *, rtol: float = 1e-9) -> int:
        """Index of the grid level equal to ``t``; a clear error if there is none."""
        i = int(np.argmin(np.abs(self.times - t)))
        if abs(self.times[i] - t) > rtol * max(1.0, abs(self.T)):
            raise BridgesolveInputError(
                f"t = {t!r} is not a grid time: the nearest is t[{i}] = {float(self.times[i])!r}"
            )
        return i

    def __repr__(self) -> str:
        start = f", t_min={self.t_min:g}" if self.t_min != 0.0 else ""
        return f"TimeGrid(T={self.T:g}, steps={self.steps}{start})"


def _t_min(t_min: float, T: float) -> float:
    t_min = positive("t_min", t_min, allow_zero=True)
    if not t_min < T:
        raise BridgesolveInputError(f"t_min = {t_min!r}: expected a time below T = {T!r}")
    return t_min
