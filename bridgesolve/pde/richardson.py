r"""Fourth order in time from Crank–Nicolson: Richardson extrapolation of two solves.

The Crank–Nicolson error at a fixed time is a series in even powers of the step,
``u_Δt = u + c_2 Δt² + c_4 Δt⁴ + …`` (for solutions smooth in time), so
``(4 u_{Δt/2} - u_Δt)/3`` removes the ``Δt²`` term: a fourth-order result at the grid's
levels from a solve on the grid and one on the grid with every step halved (three times the
work of the coarse solve). The space error is that of the mesh, untouched. Rough data
(Rannacher start-up, killing that switches on) break the series near ``t = 0``.
"""

from __future__ import annotations

import copy
import time

import numpy as np

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
    fourth order in time (module doc).

    Returns:
        The field at ``problem.grid``'s levels; ``info`` is the coarse solve's with
        ``time_order`` (4), ``richardson`` (the two step counts, the largest change the
        extrapolation made, the fine solve's warnings) and the total time.
    """
    if problem.theta != 0.5:
        raise BridgesolveInputError(f"scheme = {problem.scheme!r}: Richardson extrapolation "
                                    "to fourth order needs Crank–Nicolson (θ = 1/2)")
    t0 = time.perf_counter()
    coarse = solve(problem, data, **options)
    fine_problem = copy.copy(problem)
    fine_problem.grid = halved(problem.grid)
    fine = solve(fine_problem, data, **options)
    if coarse.representation != fine.representation:
        raise BridgesolveInputError("extrapolated: the two solves differ in representation")
    values = (4.0 * fine.values[::2] - coarse.values) / 3.0
    change = float(np.max(np.abs(values - fine.values[::2]), initial=0.0))
    info = {**coarse.info, "time_order": 4,
            "richardson": {"steps": [problem.grid.steps, fine_problem.grid.steps],
                           "max_change": problem.comm.allreduce(change, op=_max()),
                           "fine_warnings": fine.info.get("warnings", [])},
            "timings": {**coarse.info.get("timings", {}),
                        "total_s": time.perf_counter() - t0}}
    return SpaceTimeField(problem.V, problem.grid, values, name=coarse.name,
                          representation=coarse.representation, info=info)


def _max():
    from bridgesolve._dolfinx import MPI

    return MPI.MAX


__all__ = ["extrapolated", "halved"]
