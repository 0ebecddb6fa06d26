r"""The two sweeps of one Sinkhorn–Fortet iteration, in each representation.

Every class here has ``sweep(start_log, *, backward) -> (levels, problem)``: φ backward
from ``log φ_T`` (``backward=True``) or φ̂ forward from ``log φ̂_0``, returning the log-values
at every level of the time grid and ``None``, or a description of what went wrong that a
change of representation may cure (``mode="auto"`` then switches); and ``close()``.

* :class:`_LinearSweeps`: φ and φ̂ themselves by the lumped θ-scheme, rescaled per step;
* :class:`_LogSweeps`: ``log φ``, ``log φ̂`` by the HJB solvers (Newton at every step).
"""

from __future__ import annotations

import math

import numpy as np

from bridgesolve._dolfinx import MPI, fem
from bridgesolve.pde.fokker_planck import mass_form, transport_terms
from bridgesolve.pde.hjb import LogEvolution
from bridgesolve.pde.killing import killing_term
from bridgesolve.pde.stepping import ThetaStepper
from bridgesolve.problem import Problem

#: Smallest positive value (relative to the maximum of its time level) that the linear
#: mode accepts; below it the level's dynamic range is about to leave double precision.
UNDERFLOW = 1e-250
#: Newton options of the log mode on top of the HJB defaults: the Jacobian (and its LU
#: factorization) is rebuilt every third Newton iteration. Measured with the warm start
#: from the previous Sinkhorn iterate: 2D, 1849 dofs, 10 iterations 3.57 s -> 2.73 s; 1D
#: σ = 0.1 (P2, 641 dofs) 9.65 s -> 8.87 s; same results.
BRIDGE_NEWTON = {"snes_lag_jacobian": 3, "snes_max_it": 100}
_LOG_CAP = 700.0  # exp(700) ~ 1e304


def _finite(log_values: np.ndarray, comm) -> np.ndarray:
    """``log_values`` with ``-inf`` entries (zero marginal values) replaced by 700 below the
    smallest finite value (a factor 1e-304). Finite values are never touched: in log mode
    each factor spans thousands of units while their product is moderate."""
    bad = ~np.isfinite(log_values)
    if not comm.allreduce(int(bad.any()), MPI.MAX):
        return log_values
    low = comm.allreduce(float(np.min(log_values[~bad], initial=np.inf)), MPI.MIN)
    out = log_values.copy()
    out[bad] = low - _LOG_CAP
    return out


class _LinearSweeps:
    """φ backward and φ̂ forward with the lumped θ-scheme, rescaled at every step."""

    def __init__(self, problem: Problem, killing):
        self.problem = problem
        steppers = []
        for adjoint in (True, False):
            terms = transport_terms(problem, adjoint=adjoint)
            kt = killing_term(problem.V, killing, sign=-1.0)
            if kt is not None:
                kt[0].lump = True  # V M_L: a constant rate is then a uniform factor
                terms.append(kt[0])
            steppers.append(ThetaStepper(mass_form(problem), terms, problem.theta,
                                         petsc_options=problem.petsc_options, lumped=True))
        self.backward, self.forward = steppers
        self.u_old = fem.Function(problem.V)
        self.u_new = fem.Function(problem.V)
        self.n_owned = problem.V.dofmap.index_map.size_local

    def sweep(self, start_log: np.ndarray, *, backward: bool) -> tuple[np.ndarray, str | None]:
        """Log-values at every level and a problem description (None when all is well)."""
        comm, grid = self.problem.comm, self.problem.grid
        stepper = self.backward if backward else self.forward
        n = self.n_owned
        times = grid.times
        out = np.empty((times.size, start_log.size))
        first = -1 if backward else 0
        out[first] = start_log
        scale = comm.allreduce(float(np.max(start_log[:n], initial=-np.inf)), MPI.MAX)
        self.u_old.x.array[:] = np.exp(start_log - scale)
        levels = range(grid.steps - 1, -1, -1) if backward else range(grid.steps)
        smallest, where = np.inf, None
        for k in levels:
            stepper.step(self.u_old, self.u_new, times[k], times[k + 1])
            vals = self.u_new.x.array
            top = comm.allreduce(float(np.max(np.abs(vals[:n]), initial=0.0)), MPI.MAX)
            if not (np.isfinite(top) and top > 0.0):
                return out, f"non-finite or vanishing values at t = {times[k]:.6g}"
            vals /= top
            scale += math.log(top)
            level = k if backward else k + 1
            low = comm.allreduce(float(np.min(vals[:n], initial=np.inf)), MPI.MIN)
            if low < smallest:
                smallest, where = low, times[level]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[level] = np.log(vals) + scale
            self.u_old, self.u_new = self.u_new, self.u_old
        if smallest <= 0.0:
            return out, f"non-positive values (min {smallest:.3g} of the level's maximum) " \
                        f"at t = {where:.6g}"
        if smallest < UNDERFLOW:
            return out, f"underflow: values down to {smallest:.3g} of the level's maximum " \
                        f"at t = {where:.6g}"
        return out, None

    def close(self) -> None:
        self.backward.destroy()
        self.forward.destroy()


class _LogSweeps:
    """S = log φ backward and Ŝ = log φ̂ forward by the HJB solvers."""

    def __init__(self, problem: Problem, killing, newton_options: dict | None):
        options = {**BRIDGE_NEWTON, **(newton_options or {})}
        self.backward = LogEvolution(problem, forward=False, killing=killing, name="log_phi",
                                     newton_options=options)
        self.forward = LogEvolution(problem, forward=True, killing=killing,
                                    name="log_phi_hat", newton_options=options)
        self.newton_iterations = 0
        self.comm = problem.comm
        self.previous: dict[str, np.ndarray] = {}

    def sweep(self, start_log: np.ndarray, *, backward: bool) -> tuple[np.ndarray, str | None]:
        evolution = self.backward if backward else self.forward
        # Newton starts from the previous iterate at the same level: late in the Sinkhorn
        # loop it is far closer than the level before.
        key = "backward" if backward else "forward"
        result = evolution.run(_finite(start_log, self.comm), progress=False,
                               guess=self.previous.get(key))
        self.previous[key] = result.values
        self.newton_iterations += int(result.info["newton_iterations"].sum())
        return result.values, None

    def close(self) -> None:
        self.backward.close()
        self.forward.close()
