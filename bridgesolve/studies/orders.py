"""Observed and fitted orders of a refinement ladder (NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def observed_orders(h: Sequence[float] | np.ndarray,
                    errors: Sequence[float] | np.ndarray) -> np.ndarray:
    """Pairwise orders ``log(e_i / e_{i+1}) / log(h_i / h_{i+1})`` along a ladder."""
    x, e = np.asarray(h, dtype=float), np.asarray(errors, dtype=float)
    return np.log(e[:-1] / e[1:]) / np.log(x[:-1] / x[1:])


def fitted_order(h: Sequence[float] | np.ndarray,
                 errors: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of ``log e`` against ``log h`` over the whole ladder."""
    slope, _ = np.polyfit(np.log(np.asarray(h, dtype=float)),
                          np.log(np.asarray(errors, dtype=float)), 1)
    return float(slope)


def order_table(h: Sequence[float], errors: Sequence[float], label: str = "h") -> str:
    """A plain-text table of a ladder with pairwise observed orders."""
    orders = observed_orders(h, errors)
    rows = [f"{label:>10} {'error':>12} {'order':>7}"]
    for i, (hi, ei) in enumerate(zip(h, errors, strict=True)):
        o = f"{orders[i - 1]:7.3f}" if i else " " * 7
        rows.append(f"{hi:10.4g} {ei:12.4e} {o}")
    return "\n".join(rows)


__all__ = ["fitted_order", "observed_orders", "order_table"]
