"""Input validation shared by the public API and the config reader.

Errors name the offending value and what was expected, once, up front.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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


# -- callables checked on their calls ---------------------------------------------------------
def _where(x: np.ndarray | None, bad: np.ndarray) -> str:
    """`` at x = [...]`` for the first flagged point (points ``(N, d)``), or ''."""
    if x is None or not bad.any():
        return ""
    i = int(np.flatnonzero(bad)[0])
    try:
        return f" at x = {np.round(np.asarray(x, dtype=float)[i], 6).tolist()}"
    except (IndexError, TypeError, ValueError):
        return ""


def check_values(name: str, values, n: int, *, dim: int | None = None, x=None,
                 nonnegative: bool = False, finite: bool = True) -> str | None:
    """What is wrong with ``values`` returned by the callable ``name`` for ``n`` points, or None.

    Expected: shape ``(n,)`` (``dim`` None: a scalar field; ``(n, 1)`` is accepted too) or
    ``(n, dim)`` (a vector field; ``(n,)`` is accepted when ``dim == 1``), finite, and
    ``>= 0`` when ``nonnegative``.
    """
    if values is None:
        return f"{name} returned None: expected an array of {n} values"
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return (f"{name} returned {type(values).__name__} {str(values)[:60]!r}: expected an "
                f"array of {n} numbers")
    if dim is None:
        expected = f"({n},)"
        ok = arr.shape == (n,) or arr.shape == (n, 1)
    else:
        expected = f"({n}, {dim})"
        ok = arr.shape == (n, dim) or (dim == 1 and arr.shape == (n,))
    if not ok:
        what = f" (a {dim}D vector per point)" if dim is not None else " (one value per point)"
        return f"{name} returned shape {arr.shape} for {n} points: expected {expected}{what}"
    flat = arr.reshape(n, -1)
    ok_rows = np.isfinite(flat).all(axis=1) if finite else np.ones(n, dtype=bool)
    if not ok_rows.all():
        nan = np.isnan(flat).any()
        kind = "NaN" if nan else "infinite values"
        return (f"{name} returned {kind}{_where(x, ~ok_rows)} ({int((~ok_rows).sum())} of "
                f"{n} points): expected finite values")
    if nonnegative and finite:
        neg = flat.min(axis=1) < 0
        peak = float(np.abs(flat).max()) if flat.size else 0.0
        # round-off below 1e-12 of the peak is tolerated (interpolants, FE functions)
        neg &= flat.min(axis=1) < -1e-12 * peak
        if neg.any():
            return (f"{name} returned negative values (min {flat.min():.3g}){_where(x, neg)}: "
                    "expected a density >= 0")
    return None


class CheckedCallable:
    """``fn(x, *args)`` whose values are checked (shape, finite, sign) on every call.

    With ``deferred=False`` a bad call raises :class:`BridgesolveInputError` at once. With
    ``deferred=True`` it records the first problem and returns zeros of the expected shape,
    so that collective work (interpolation on every rank of a mesh) stays in step; the
    caller then calls :meth:`raise_pending` (collective over ``comm``), which raises the
    same error on every rank.

    Args:
        name: how messages name the callable (``"killing V(x)"``, ``"rho0"``).
        fn: the callable.
        dim: None for a scalar field (values ``(N,)``), else the vector dimension.
        points_axis: 0 when ``x`` is ``(N, d)`` (points in rows), 1 when ``x`` is
            DOLFINx's ``(3, N)``.
        nonnegative: values must be ``>= 0`` (densities).
        finite: values must be finite (False: the shape only; the caller checks the rest).
    """

    def __init__(self, name: str, fn, *, dim: int | None = None, points_axis: int = 0,
                 nonnegative: bool = False, deferred: bool = False, finite: bool = True):
        self.name, self.fn, self.dim, self.finite = name, fn, dim, finite
        self.points_axis, self.nonnegative, self.deferred = points_axis, nonnegative, deferred
        self.problem: str | None = None

    def __call__(self, x, *args):
        xa = np.asarray(x)
        n = xa.shape[self.points_axis] if xa.ndim == 2 else xa.shape[0]
        pts = xa.T if (self.points_axis == 1 and xa.ndim == 2) else xa
        values = self.fn(x, *args)
        problem = check_values(self.name, values, n, dim=self.dim, x=pts,
                               nonnegative=self.nonnegative, finite=self.finite)
        if problem is not None:
            if not self.deferred:
                raise BridgesolveInputError(problem)
            if self.problem is None:
                self.problem = problem
            return np.zeros(n if self.dim is None else (n, self.dim))
        arr = np.asarray(values, dtype=float)
        return arr.reshape(n) if self.dim is None else arr.reshape(n, self.dim)

    def raise_pending(self, comm=None) -> None:
        """Raise the recorded problem on every rank of ``comm`` (collective), if any rank
        has one; the lowest such rank's message is used."""
        problem = self.problem
        if comm is not None and comm.size > 1:
            problems = comm.allgather(problem)
            problem = next((p for p in problems if p is not None), None)
        if problem is not None:
            self.problem = None
            raise BridgesolveInputError(problem)


def collective_raise(comm, message: str | None) -> None:
    """Raise ``BridgesolveInputError(message)`` on every rank of ``comm`` when any rank has a
    message (the lowest rank's); collective."""
    if comm is not None and comm.size > 1:
        message = next((m for m in comm.allgather(message) if m is not None), None)
    if message is not None:
        raise BridgesolveInputError(message)


# -- memory -------------------------------------------------------------------------------------
def available_memory() -> int | None:
    """Bytes of memory available to new allocations on this node (``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return f"{n:.3g} PiB"  # pragma: no cover


def check_memory(what: str, nbytes: float, *, comm=None, fix: str) -> None:
    """Refuse, before allocating, work whose memory (a lower estimate, ``nbytes`` over all
    ranks) exceeds the memory available on the nodes that run it. Collective when ``comm``
    has several ranks (each node is counted once)."""
    avail = available_memory()
    nodes = 1
    if comm is not None and comm.size > 1:
        try:
            from mpi4py import MPI

            node = comm.Split_type(MPI.COMM_TYPE_SHARED)
            leader = int(node.rank == 0)
            node.Free()
            nodes = max(1, comm.allreduce(leader))
            avail = comm.allreduce(avail if avail is not None and leader else 0) or None
        except Exception:  # noqa: BLE001 - the estimate is best effort
            nodes = 1
    if avail is None:
        return
    if nbytes > avail:
        on = f" on {nodes} nodes" if nodes > 1 else ""
        raise BridgesolveInputError(
            f"{what} needs at least {format_bytes(nbytes)} of memory but "
            f"{format_bytes(avail)} is available{on}: {fix}"
        )


def warn(message: str, sink: list | None = None, *, stacklevel: int = 3) -> None:
    """``warnings.warn(message, RuntimeWarning)`` and append it to ``sink`` (a result's
    ``warnings`` list, which summaries show)."""
    import warnings

    if sink is not None:
        sink.append(message)
    warnings.warn(message, RuntimeWarning, stacklevel=stacklevel)


def first_line(exc: BaseException) -> str:
    """``"Type: first line of the message"``: an exception as one line of an error text."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def deferred_checks(score):
    """A :class:`CheckedCallable` whose problems are recorded during a collective
    interpolation on the mesh and raised on every rank by ``raise_pending(comm)``; other
    callables as they are."""
    if not isinstance(score, CheckedCallable):
        return score
    return CheckedCallable(score.name, score.fn, dim=score.dim, deferred=True,
                           nonnegative=score.nonnegative, finite=score.finite)


def checked_score(score: Callable[[np.ndarray, float], np.ndarray], dim: int, *,
                  name: str = "score") -> Callable[[np.ndarray, float], np.ndarray]:
    """``score(x, t)`` whose every call is checked: for points ``(N, d)`` it must return
    ``(N, d)`` finite values (``(N,)`` in 1D), else :class:`BridgesolveInputError` names
    ``name``, the shape or value found and the one expected. A 1D problem fed a score of
    shape ``(N, 2)`` is refused instead of being reshaped into nonsense.

    Samplers, likelihoods and validators wrap user scores with it; the check costs one
    pass over the values. Not collective (raise on the rank that sees the problem only
    where every rank evaluates the same points, or check with
    :class:`~bridgesolve._validate.CheckedCallable` ``deferred=True``).
    """
    if not callable(score):
        raise BridgesolveInputError(f"{name} = {score!r}: expected a callable s(x, t)")
    if isinstance(score, CheckedCallable):
        return score
    return CheckedCallable(name, score, dim=positive_dim(dim))


def positive_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 1 <= dim <= 3:
        raise BridgesolveInputError(f"dim = {dim!r}: expected 1, 2 or 3")
    return int(dim)

