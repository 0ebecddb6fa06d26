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

from bridgesolve._dolfinx import MPI, fem, ufl
from bridgesolve._validate import BridgesolveInputError, CheckedCallable, warn
from bridgesolve.pde.stepping import Term


def _arity(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY,
               p.POSITIONAL_OR_KEYWORD) for p in params)


def _range(Vf) -> tuple[float, float]:
    """``(min, max)`` of the nodal values of ``Vf`` over all ranks."""
    arr = Vf.x.array
    lo = float(arr.min()) if arr.size else np.inf
    hi = float(arr.max()) if arr.size else -np.inf
    comm = Vf.function_space.mesh.comm
    return float(comm.allreduce(lo, MPI.MIN)), float(comm.allreduce(hi, MPI.MAX))


def killing_coefficient(V, killing):
    """``killing`` as a UFL coefficient, with an ``update(t)`` for time-dependent rates.

    Returns ``(expr, update, description)``; ``update`` is None for time-independent rates.
    Callables are checked on every interpolation (collectively over the mesh's ranks): they
    must return one finite number per point, else :class:`BridgesolveInputError` names the
    value found. The description holds ``killing_range``: the smallest and largest nodal
    rate met so far (updated by ``update``), which :func:`check_rate` compares with the
    time step; None for UFL rates.
    """
    dim = V.mesh.geometry.dim
    comm = V.mesh.comm
    if isinstance(killing, int | float | np.floating) and not isinstance(killing, bool):
        value = float(killing)
        if not np.isfinite(value):
            raise BridgesolveInputError(f"killing = {killing!r}: expected a finite number")
        return fem.Constant(V.mesh, value), None, {"killing": value,
                                                   "killing_range": [value, value]}
    if isinstance(killing, ufl.core.expr.Expr):
        return killing, None, {"killing": "ufl", "killing_range": None}
    if callable(killing):
        Vf = fem.Function(V, name="V")
        if _arity(killing) >= 2:
            info = {"killing": "callable(x, t)"}

            def update(t: float) -> None:
                check = CheckedCallable(f"killing V(x, t) at t = {t:g}", killing, deferred=True)
                Vf.interpolate(lambda x: check(np.ascontiguousarray(x[:dim].T), t))
                check.raise_pending(comm)
                lo, hi = _range(Vf)
                old = info.get("killing_range") or [lo, hi]
                info["killing_range"] = [min(old[0], lo), max(old[1], hi)]

            update(0.0)
            return Vf, update, info
        check = CheckedCallable("killing V(x)", killing, deferred=True)
        Vf.interpolate(lambda x: check(np.ascontiguousarray(x[:dim].T)))
        check.raise_pending(comm)
        return Vf, None, {"killing": "callable(x)", "killing_range": list(_range(Vf))}
    raise BridgesolveInputError(
        f"killing = {killing!r}: expected a number, a callable V(x) or V(x, t), or a UFL expression"
    )


def check_rate(info: dict, theta: float, dt: float, *, sink: list | None = None,
               refuse: bool = True) -> None:
    r"""Compare a killing/creation rate with the θ-scheme's step.

    On ``u' = V u`` one step multiplies by ``(1 + (1-θ) Δt V) / (1 - θ Δt V)``:

    - creation (``V > 0``) with ``θ Δt V >= 1``: the denominator vanishes or turns
      negative, the step's matrix is singular or indefinite and the result is meaningless:
      :class:`BridgesolveInputError` (when ``refuse``; else a warning);
    - killing (``V < 0``) with ``(1-θ) Δt |V| > 1``: the factor is negative, the solution
      flips sign every step where the rate is that large: a ``RuntimeWarning`` (the rate may
      be large only where there is no mass), appended to ``sink`` too.

    Args:
        info: the description of :func:`killing_coefficient` (its ``killing_range``).
        theta: the scheme's θ.
        dt: the largest time step.
    """
    rng = info.get("killing_range")
    if not rng:
        return
    lo, hi = rng
    fix_be = 'scheme = "backward-euler"'
    if hi > 0 and theta * dt * hi >= 1.0:
        need = 1.0 / (theta * hi)
        msg = (f"creation rate V = {hi:.3g} with time step Δt = {dt:.3g} and θ = {theta:g}: "
               f"θ·Δt·V = {theta * dt * hi:.3g} >= 1 makes the step's matrix singular or "
               f"indefinite (the solution blows up or flips sign); use Δt < {need:.3g} "
               "(more steps)")
        if refuse:
            raise BridgesolveInputError(msg)
        warn(msg, sink)
    if lo < 0 and (1.0 - theta) * dt * (-lo) > 1.0:
        factor = (1.0 + (1.0 - theta) * dt * lo) / (1.0 - theta * dt * lo)
        warn(f"killing rate |V| = {-lo:.3g} with time step Δt = {dt:.3g} and θ = {theta:g} "
             f"makes the step's amplification factor negative ({factor:.2f}): the solution "
             "flips sign every step where the rate is that large; use "
             f"{fix_be} or Δt < {1.0 / ((1.0 - theta) * -lo):.3g} (more steps)", sink,
             stacklevel=4)


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
