r"""Fourth order in time from Crank–Nicolson: Richardson extrapolation of two solves.

The Crank–Nicolson error at a fixed time is a series in even powers of the step,
``u_Δt = u + c_2 Δt² + c_4 Δt⁴ + …`` (for solutions smooth in time), so
``(4 u_{Δt/2} - u_Δt)/3`` removes the ``Δt²`` term: a fourth-order result at the grid's
levels from a solve on the grid and one on the grid with every step halved (three times the
work of the coarse solve). The space error is that of the mesh, untouched. Rough data
(Rannacher start-up, killing that switches on) break the series near ``t = 0``.

Bridges. A converged Schrödinger bridge is the fixed point of a smooth map built from the
discrete propagators (Sinkhorn's), so by the implicit function theorem the fixed point
inherits their expansion in ``Δt²`` (linear mode: the Crank–Nicolson propagators; log
mode: Crank–Nicolson on the HJB pair). ``log φ`` and ``log φ̂`` of the two solves, each
normalized the same way (zero ρ0-mean of ``log φ_0``, unit mass of ``ρ_t``), are
extrapolated level by level; ``ρ_t = φ φ̂`` is then fourth order, and its mass is one up
to ``O(Δt⁴)``. The Sinkhorn residual enters the result times ``(4 + 1)/3``: solve to a
``tol`` below the accuracy sought. Measured orders: ``tests/pde/test_richardson.py``.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from bridgesolve import storage
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.spacetime import SpaceTimeField
from bridgesolve.timegrid import TimeGrid


def halved(grid: TimeGrid) -> TimeGrid:
    """``grid`` with the midpoint of every step inserted."""
    t = grid.times
    fine = np.empty(2 * t.size - 1)
    fine[::2] = t
    fine[1::2] = 0.5 * (t[:-1] + t[1:])
    return TimeGrid.from_times(fine, t_min=float(t[0]))


def extrapolated(solve, problem, data, **options) -> SpaceTimeField:
    """``solve(problem, data, **options)`` (a θ-scheme solver of :mod:`bridgesolve.pde`:
    :func:`~bridgesolve.solve_fokker_planck`, :func:`~bridgesolve.solve_kolmogorov`,
    :func:`~bridgesolve.solve_hjb`, :func:`~bridgesolve.solve_hjb_forward`) extrapolated to
    fourth order in time (module doc). ``data`` may be a tuple of positional data:
    ``extrapolated(bs.solve_bridge, problem, (rho0, rho1), tol=1e-11)`` extrapolates a
    bridge (module doc); its fine solve starts from the coarse one's ``log φ_T``.

    Returns:
        The field at ``problem.grid``'s levels (a :class:`~bridgesolve.Bridge` for bridges);
        ``info`` is the coarse solve's with ``time_order`` (4), ``richardson`` (the two step
        counts, the largest change the extrapolation made, the fine solve's warnings) and
        the total time.
    """
    if problem.theta != 0.5:
        raise BridgesolveInputError(f"scheme = {problem.scheme!r}: Richardson extrapolation "
                                    "to fourth order needs Crank–Nicolson (θ = 1/2)")
    t0 = time.perf_counter()
    args = data if isinstance(data, tuple) else (data,)
    coarse = solve(problem, *args, **options)
    fine_problem = copy.copy(problem)
    fine_problem.grid = halved(problem.grid)
    if hasattr(coarse, "log_phi_hat"):
        return _extrapolated_bridge(solve, problem, fine_problem, args, options, coarse, t0)
    fine = solve(fine_problem, *args, **options)
    if coarse.representation != fine.representation:
        raise BridgesolveInputError("extrapolated: the two solves differ in representation")
    values, change = _combined(fine.values, coarse.values, coarse.name)
    info = {**coarse.info, "time_order": 4,
            "richardson": {"steps": [problem.grid.steps, fine_problem.grid.steps],
                           "max_change": problem.comm.allreduce(change, op=_max()),
                           "fine_warnings": fine.info.get("warnings", [])},
            "timings": {**coarse.info.get("timings", {}),
                        "total_s": time.perf_counter() - t0}}
    return SpaceTimeField(problem.V, problem.grid, values, name=coarse.name,
                          representation=coarse.representation, info=info)


def _extrapolated_bridge(solve, problem, fine_problem, args, options, coarse, t0):
    """The bridge branch of :func:`extrapolated` (module doc); the result is built as
    ``type(coarse)`` (a :class:`~bridgesolve.Bridge`: no import of the bridge package, which
    imports this one)."""
    if coarse.info.get("method") == "kernel" or not hasattr(coarse.log_phi, "values"):
        raise BridgesolveInputError("extrapolated: the kernel bridge is exact in time; "
                                    "extrapolate finite-element bridges only")
    options = dict(options)
    if options.get("initial_log_phi_T") is None:
        options["initial_log_phi_T"] = coarse.log_phi.values[-1].copy()
    fine = solve(fine_problem, *args, **options)
    fields, change = {}, 0.0
    for key in ("log_phi", "log_phi_hat"):
        c, f = getattr(coarse, key), getattr(fine, key)
        values, key_change = _combined(f.values, c.values, c.name)
        change = max(change, key_change)
        fields[key] = SpaceTimeField(problem.V, problem.grid, values, name=c.name,
                                     representation="log")
    info = {**{k: v for k, v in coarse.info.items() if k != "cost"}, "time_order": 4,
            "richardson": {"steps": [problem.grid.steps, fine_problem.grid.steps],
                           "max_change_log": problem.comm.allreduce(change, op=_max()),
                           "iterations": [coarse.iterations, fine.iterations],
                           "final_errors_fine": fine.info.get("final_errors")},
            "timings": {**coarse.info.get("timings", {}),
                        "total_s": time.perf_counter() - t0}}
    return type(coarse)(problem=problem, log_phi=fields["log_phi"],
                        log_phi_hat=fields["log_phi_hat"], history=coarse.history,
                        converged=coarse.converged and fine.converged, mode=fine.mode,
                        info=info, killing=coarse.killing)


def _combined(fine: np.ndarray, coarse: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """``(4 u_{Δt/2} - u_Δt)/3`` at the coarse levels, in the coarse field's storage (level
    by level on disk: resident memory stays a few levels), and the largest local change it
    made to the fine solution."""
    even = fine[::2]
    if not (storage.on_disk(coarse) or storage.on_disk(fine)):
        values = (4.0 * even - coarse) / 3.0
        return values, float(np.max(np.abs(values - even), initial=0.0))
    values = storage.like(coarse if storage.on_disk(coarse) else even, name=name)
    change = 0.0
    for block in storage.level_blocks(values):
        for k in range(block.start, block.stop):
            values[k] = (4.0 * even[k] - coarse[k]) / 3.0
            change = max(change, float(np.max(np.abs(values[k] - even[k]), initial=0.0)))
        storage.release(coarse)
        storage.release(fine)
    return values, change


def _max():
    from bridgesolve._dolfinx import MPI

    return MPI.MAX


__all__ = ["extrapolated", "halved"]
