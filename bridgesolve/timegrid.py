"""Time grids on [0, T] (forward time; data at t = 0)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bridgesolve._validate import BridgesolveInputError, positive, positive_int


@dataclass(frozen=True, eq=False)
class TimeGrid:
    """Strictly increasing time levels ``t_0 = 0 < t_1 < ... < t_N = T``.

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
    def uniform(cls, T: float, steps: int) -> TimeGrid:
        """``steps`` equal steps on [0, T]."""
        T = positive("T", T)
        steps = positive_int("steps", steps)
        return cls(np.linspace(0.0, T, steps + 1))

    @classmethod
    def graded(cls, T: float, steps: int, *, power: float = 2.0, near: str = "start"
               ) -> TimeGrid:
        """Steps refined near t = 0 (``near="start"``: ``t_n = T (n / N)^power``, power ≥ 1),
        where data are rough in diffusion models, or near t = T (``near="end"``), where
        backward problems with sharp terminal values are stiff."""
        T = positive("T", T)
        steps = positive_int("steps", steps)
        if positive("power", power) < 1:
            raise BridgesolveInputError(f"power = {power!r}: expected a number >= 1")
        if near not in ("start", "end"):
            raise BridgesolveInputError(f"near = {near!r}: expected 'start' or 'end'")
        s = np.linspace(0.0, 1.0, steps + 1) ** power
        return cls(T * s if near == "start" else T * (1.0 - s[::-1]))

    @classmethod
    def clock(cls, clock: Callable[[np.ndarray], np.ndarray], T: float, steps: int) -> TimeGrid:
        """Steps of equal length in an increasing clock ``s = clock(t)``.

        With the intrinsic clock of a process (``process.clock``), every step of a
        time-separable process (VP, VE, OU, Brownian) has the same operator, so the
        solver factorizes one matrix for the whole run.
        """
        T = positive("T", T)
        steps = positive_int("steps", steps)
        fine = np.linspace(0.0, T, 20001)
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
            t = np.clip(t - (sv - targets) / rate, 0.0, T)
        t[0], t[-1] = 0.0, T
        return cls(np.maximum.accumulate(t))

    @classmethod
    def from_times(cls, times: Sequence[float]) -> TimeGrid:
        """An explicit list of times starting at 0."""
        t = np.asarray(times, dtype=float)
        if t.size and t[0] != 0.0:
            raise BridgesolveInputError(f"times[0] = {t[0]!r}: expected 0 (data sit at t = 0)")
        return cls(t)

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
        return f"TimeGrid(T={self.T:g}, steps={self.steps})"
