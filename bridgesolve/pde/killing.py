"""Killing/creation rates ``V(x, t)`` as operator terms (Feynman–Kac).

``V > 0`` creates mass, ``V < 0`` kills it. Accepted forms:

- a number: a constant rate (one matrix, the mass matrix, assembled once);
- a callable of points ``V(x)`` with ``x`` of shape ``(N, d)``: time-independent, interpolated
  into the FE space once;
- a callable ``V(x, t)``: interpolated at each step's midpoint and its matrix re-assembled
  (only that matrix);
- a UFL expression of the spatial coordinate: time-independent.
"""

from __future__ import annotations

import inspect

import numpy as np

from bridgesolve._dolfinx import fem, ufl
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.pde.stepping import Term


def _arity(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY,
               p.POSITIONAL_OR_KEYWORD) for p in params)


def killing_coefficient(V, killing):
    """``killing`` as a UFL coefficient, with an ``update(t)`` for time-dependent rates.

    Returns ``(expr, update, description)``; ``update`` is None for time-independent rates.
    """
    dim = V.mesh.geometry.dim
    if isinstance(killing, int | float | np.floating) and not isinstance(killing, bool):
        value = float(killing)
        if not np.isfinite(value):
            raise BridgesolveInputError(f"killing = {killing!r}: expected a finite number")
        return fem.Constant(V.mesh, value), None, {"killing": value}
    if isinstance(killing, ufl.core.expr.Expr):
        return killing, None, {"killing": "ufl"}
    if callable(killing):
        Vf = fem.Function(V, name="V")
        if _arity(killing) >= 2:
            def update(t: float) -> None:
                Vf.interpolate(lambda x: np.asarray(killing(x[:dim].T, t), dtype=float))

            update(0.0)
            return Vf, update, {"killing": "callable(x, t)"}
        Vf.interpolate(lambda x: np.asarray(killing(x[:dim].T), dtype=float))
        return Vf, None, {"killing": "callable(x)"}
    raise BridgesolveInputError(
        f"killing = {killing!r}: expected a number, a callable V(x) or V(x, t), or a UFL expression"
    )


def killing_term(V, killing, sign: float) -> tuple[Term, dict] | None:
    """The term ``sign · ∫ V u v`` with rate 1, or None when ``killing`` is None.

    Returns the term and a description for summaries.
    """
    if killing is None:
        return None
    expr, update, info = killing_coefficient(V, killing)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    step = lambda t0, t1: t1 - t0  # noqa: E731 - rate 1 integrates to the step length
    return Term(fem.form(sign * expr * u * v * ufl.dx), step, update=update), info
