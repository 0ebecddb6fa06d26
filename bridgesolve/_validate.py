"""Input validation shared by the public API and the config reader.

Errors name the offending value and what was expected, once, up front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class BridgesolveInputError(ValueError):
    """A user-supplied value is not what bridgesolve expects."""


def positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BridgesolveInputError(f"{name} = {value!r}: expected a number") from None
    ok = v >= 0 if allow_zero else v > 0
    if not (math.isfinite(v) and ok):
        kind = "non-negative" if allow_zero else "positive"
        raise BridgesolveInputError(f"{name} = {value!r}: expected a finite {kind} number")
    return v


def positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise BridgesolveInputError(f"{name} = {value!r}: expected a positive integer")
    return int(value)


def int_sequence(name: str, value: int | Sequence[int], length: int) -> tuple[int, ...]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = [int(value)] * length
    try:
        items = list(value)
    except TypeError:
        raise BridgesolveInputError(
            f"{name} = {value!r}: expected {length} positive integers"
        ) from None
    if len(items) != length:
        raise BridgesolveInputError(
            f"{name} = {value!r}: expected {length} positive integers, got {len(items)}"
        )
    return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(items))


def choice(name: str, value: str, options: Sequence[str]) -> str:
    if value not in options:
        raise BridgesolveInputError(
            f"{name} = {value!r}: expected one of {', '.join(map(repr, options))}"
        )
    return value


def points(name: str, x, dim: int) -> np.ndarray:
    """Coerce to an ``(N, dim)`` float array; a 1D array is read as N points when dim == 1."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1 and dim == 1:
        arr = arr[:, None]
    elif arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise BridgesolveInputError(
            f"{name} has shape {np.shape(x)}: expected (N, {dim}) points in {dim}D"
        )
    return arr
