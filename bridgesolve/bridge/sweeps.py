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
import warnings

import numpy as np

from bridgesolve._dolfinx import MPI, fem
from bridgesolve.pde.fokker_planck import mass_form, transport_terms
from bridgesolve.pde.hjb import LogEvolution
from bridgesolve.pde.killing import killing_term
from bridgesolve.pde.krylov import merge
from bridgesolve.pde.linearized import LogLinearization
from bridgesolve.pde.stepping import ThetaStepper
from bridgesolve.problem import Problem
from bridgesolve.solvers import ITERATIVE_RTOL, tied_to
from bridgesolve.storage import level_blocks, release

#: Smallest positive value (relative to the maximum of its time level) that the linear
#: mode accepts; below it the level's dynamic range is about to leave double precision.
UNDERFLOW = 1e-250
#: Newton options of the log mode on top of the HJB defaults: the Jacobian (and its LU
#: factorization) is rebuilt every third Newton iteration. Measured with the warm start
#: from the previous Sinkhorn iterate: 2D, 1849 dofs, 10 iterations 3.57 s -> 2.73 s; 1D
#: σ = 0.1 (P2, 641 dofs) 9.65 s -> 8.87 s; same results.
BRIDGE_NEWTON = {"snes_lag_jacobian": 3, "snes_max_it": 100}
_LOG_CAP = 700.0  # exp(700) ~ 1e304
#: Iterative linear sweeps: a solve to relative tolerance ``rtol`` leaves values wrong by
#: about ``rtol`` of the level's maximum, so values below ``rtol`` of it (round-off
#: negatives included) are clipped to that floor to keep φ, φ̂ positive; a negative value
#: below ``-NEGATIVE_WARN · rtol`` of the maximum is more than the tolerance explains and
#: is warned about.
NEGATIVE_WARN = 1e3


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

    def __init__(self, problem: Problem, killing, *, tol: float = 1e-8):
        self.problem = problem
        options = tied_to(problem.petsc_options, tol)
        self.floor = (float(options.get("ksp_rtol", ITERATIVE_RTOL)) if problem.iterative
                      else 0.0)
        self.clipped = {"values": 0, "most_negative": 0.0, "warned": False}
        steppers = []
        for adjoint in (True, False):
            terms = transport_terms(problem, adjoint=adjoint)
            kt = killing_term(problem.V, killing, sign=-1.0)
            if kt is not None:
                kt[0].lump = True  # V M_L: a constant rate is then a uniform factor
                terms.append(kt[0])
            steppers.append(ThetaStepper(mass_form(problem), terms, problem.theta,
                                         petsc_options=options, lumped=True))
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
        out = self.problem.levels(start_log.size, name="log_phi" if backward else "log_phi_hat")
        first = -1 if backward else 0
        out[first] = start_log
        scale = comm.allreduce(float(np.max(start_log[:n], initial=-np.inf)), MPI.MAX)
        self.u_old.x.array[:] = np.exp(start_log - scale)
        levels = range(grid.steps - 1, -1, -1) if backward else range(grid.steps)
        # Per-level minima are reduced once after the sweep: one collective per step (the
        # level's maximum, which scales it) instead of two.
        lows = np.full(times.size, np.inf)
        for k in levels:
            stepper.step(self.u_old, self.u_new, times[k], times[k + 1])
            vals = self.u_new.x.array
            top = comm.allreduce(float(np.max(np.abs(vals[:n]), initial=0.0)), MPI.MAX)
            if not (np.isfinite(top) and top > 0.0):
                return out, f"non-finite or vanishing values at t = {times[k]:.6g}"
            vals /= top
            if self.floor:
                self._clip(vals, times[k + 1])
            scale += math.log(top)
            level = k if backward else k + 1
            lows[level] = float(np.min(vals[:n], initial=np.inf))
            with np.errstate(divide="ignore", invalid="ignore"):
                out[level] = np.log(vals) + scale
            release(out)  # on disk: the level leaves memory
            self.u_old, self.u_new = self.u_new, self.u_old
        if comm.size > 1:
            comm.Allreduce(MPI.IN_PLACE, lows, op=MPI.MIN)
        smallest = float(lows.min())
        where = times[int(np.argmin(lows))]
        if smallest <= 0.0:
            return out, f"non-positive values (min {smallest:.3g} of the level's maximum) " \
                        f"at t = {where:.6g}"
        if smallest < UNDERFLOW:
            return out, f"underflow: values down to {smallest:.3g} of the level's maximum " \
                        f"at t = {where:.6g}"
        return out, None

    def _clip(self, vals: np.ndarray, t: float) -> None:
        """Iterative solves: values below the solve's accuracy (``floor`` of the level's
        maximum, 1) set to it; a negative beyond what the tolerance explains warns once."""
        low = vals < self.floor
        comm = self.problem.comm
        n = self.n_owned
        count = comm.allreduce(int(np.count_nonzero(low[:n])), MPI.SUM)
        if not count:
            return
        worst = comm.allreduce(float(np.min(vals[:n], initial=0.0)), MPI.MIN)
        self.clipped["values"] += count
        self.clipped["most_negative"] = min(self.clipped["most_negative"], worst)
        if worst < -NEGATIVE_WARN * self.floor and not self.clipped["warned"]:
            self.clipped["warned"] = True
            warnings.warn(
                f"Schrödinger bridge (linear mode, iterative solver): a sweep went negative "
                f"at t = {t:.6g}: {worst:.3g} of the level's maximum, beyond the solve "
                f"tolerance {self.floor:.1e}; {count} values clipped to {self.floor:.1e} of "
                "the maximum. Use solver='direct' or mode='log' if the marginals' tails "
                "matter", RuntimeWarning, stacklevel=4)
        vals[low] = self.floor

    def solver_info(self) -> dict:
        """The linear-solver record of both sweeps, with the values clipped to positivity."""
        record = merge([self.backward.solver_info(), self.forward.solver_info()])
        if self.floor:
            record["clipped"] = {k: v for k, v in self.clipped.items() if k != "warned"}
        return record

    def close(self) -> None:
        self.backward.destroy()
        self.forward.destroy()


#: The tilted phase of the log sweeps (``mode="auto"``). Newton sweeps (to a loose
#: ``newton_rtol``: they only find a point to linearize about) until the marginal error is
#: below ``newton_until``; then one linear solve per step about the last iterate,
#: re-linearized (residuals only) every ``refresh_every`` iterations and before accepting
#: convergence, with one factorization per ``group`` steps, rebuilt whenever the error
#: fell ``jacobian_drop``-fold since the last build (never by default: rebuilding after
#: each 1000-fold drop cost 26 instead of 24 iterations and 42 instead of 14
#: factorizations on the 56² grid, and did not help at small noise). When the error
#: falls by less than ``1/slow_factor`` over ``slow_window`` iterations (small noise:
#: 2D σ = 0.1 took 207 iterations in the tilted phase against 98 with Newton) Newton takes
#: over from the current iterate. The phase is abandoned (the
#: loop returns to its last Newton iterate and continues with Newton at full tolerance) when a
#: linearized sweep changes log φ by more than ``max_change`` anywhere, when the error
#: grows ``give_up``-fold over its best, or when the loose Newton fails.
#:
#: Measured on ``bridge_vs_pot.py``'s 56² grid (3249 points, 56 steps; CPU seconds under a
#: load of 6–7 on 2 cores; the log mode: 17 iterations, 16.6 s): refresh every 1/2/3
#: iterations: 22/24/36 iterations; one factorization per 1/4/8/16/56 steps (refresh 2):
#: 24–28 iterations, 50 for one shared factorization; Newton to rtol 1e-10/1e-3/1e-2 in the
#: first log iteration: 630/278/158 Newton iterations, 3.2/3.0/2.6 s, the same history.
#: Linearizing at once about the linear mode's potentials ran away in the far tails
#: (changes of 1e3 and more per sweep in log φ̂); clipping them stalled the iteration.
#: Solving for ψ = e^δ (exact in the continuum, the "tilted linear solve" in its literal
#: form) lost positivity there and needed Newton fallbacks: 3.3–4.6 s. At σ = 0.1 (1D, P2)
#: linearized sweeps ran away at the walls (outflow layers) once ω reached 1.66.
TILT = {"newton_until": 0.5, "newton_rtol": 1e-2, "refresh_every": 2, "group": 8,
        "give_up": 10.0, "max_change": 50.0, "jacobian_drop": 1e300, "slow_window": 10,
        "slow_factor": 0.3}


class TiltFailure(Exception):
    """The tilted phase cannot continue; the loop rolls back and continues with Newton."""


class _LogSweeps:
    """S = log φ backward and Ŝ = log φ̂ forward by the HJB solvers.

    With ``tilted=True`` (:data:`TILT`) the Newton steps give way to one linear solve per
    step about the last iterate (:class:`~bridgesolve.pde.linearized.LogLinearization`: the
    θ-step linearized about ``S̄``, a transport–diffusion operator with the tilted drift
    ``f + g²∇S̄``) with exact residuals, so the fixed point is the log mode's, at about the
    cost of the linear mode. Failures raise :class:`TiltFailure`; :meth:`abandon_tilt`
    then closes the phase for good.
    """

    def __init__(self, problem: Problem, killing, newton_options: dict | None, *,
                 tilted: bool = False, tilt: dict | None = None):
        options = {**BRIDGE_NEWTON, **(newton_options or {})}
        self.backward = LogEvolution(problem, forward=False, killing=killing, name="log_phi",
                                     newton_options=options)
        self.forward = LogEvolution(problem, forward=True, killing=killing,
                                    name="log_phi_hat", newton_options=options)
        self.newton_iterations = 0
        self.comm = problem.comm
        self.previous: dict[str, np.ndarray] = {}
        self.tilted = tilted
        self.tilt = {**TILT, **(tilt or {})}
        self.linear: dict[str, LogLinearization] = {}
        self.linear_records: list[dict] = []  # closed linearizations' solver records
        self.since = 0  # iterations since the last linearization
        self.best = np.inf  # best error of the linearized phase
        self.fresh = False  # the next iteration runs right after a linearization
        self.counts = {"linear_sweeps": 0, "relinearizations": 0, "factorizations": 0}
        self.errors: list[float] = []
        self.jacobian_at = np.inf  # the error when the step matrices were last built
        self.entered = 0  # len(errors) when the tilted phase began

    def sweep(self, start_log: np.ndarray, *, backward: bool) -> tuple[np.ndarray, str | None]:
        key = "backward" if backward else "forward"
        start = _finite(start_log, self.comm)
        if self.linear:
            values = self.linear[key].run(start)
            self.counts["linear_sweeps"] += 1
            previous = self.previous[key]
            local = max((float(np.max(np.abs(values[b] - previous[b]), initial=0.0))
                         for b in level_blocks(values)), default=0.0)
            big = self.comm.allreduce(local, MPI.MAX)
            if not big <= self.tilt["max_change"]:  # NaN too
                raise TiltFailure(f"a linearized sweep changed log φ by {big:.3g}")
        else:
            values = self._newton(start, key, loose=self.tilted)
        self.previous[key] = values
        return values, None

    def _newton(self, start: np.ndarray, key: str, *, loose: bool) -> np.ndarray:
        evolution = self.backward if key == "backward" else self.forward
        snes = evolution.nl.solver
        tolerances = snes.getTolerances()
        if loose:  # Newton only finds the first point to linearize about
            snes.setTolerances(rtol=self.tilt["newton_rtol"], stol=self.tilt["newton_rtol"])
        try:
            # Newton starts from the previous iterate at the same level: late in the
            # Sinkhorn loop it is far closer than the level before.
            result = evolution.run(start, progress=False, guess=self.previous.get(key))
        except RuntimeError as exc:
            if loose:
                raise TiltFailure(str(exc)) from exc
            raise
        finally:
            snes.setTolerances(*tolerances)
        self.newton_iterations += int(result.info["newton_iterations"].sum())
        return result.values

    def seed(self, L_phi: np.ndarray, L_hat: np.ndarray) -> None:
        """Start Newton from these levels (the linear mode's, all finite)."""
        self.previous = {"backward": L_phi, "forward": L_hat}

    def observe(self, err: float, done: bool) -> bool:
        """After an iteration with marginal error ``err``: (re)linearize by the policy of
        :data:`TILT`. Returns whether ``done`` (err < tol) may be accepted: in the tilted
        phase only right after a linearization about the previous iterate (the residuals
        are then those of the final potentials). Raises :class:`TiltFailure`."""
        if not self.tilted:
            return done
        fresh, self.fresh = self.fresh, False
        self.since += 1
        self.errors.append(err)
        if not self.linear:
            if err < self.tilt["newton_until"] or done:
                self._linearize()  # Newton was loose here: never accept its result
                return False
            return done
        self.best = min(self.best, err)
        if not err <= self.tilt["give_up"] * self.best:
            raise TiltFailure(f"the marginal error grew to {err:.3g} from {self.best:.3g}")
        if done and fresh:
            return True
        window = self.tilt["slow_window"]
        if len(self.errors) > window + self.entered and \
                err > self.tilt["slow_factor"] * self.errors[-1 - window]:
            # Slower than Newton would be (small noise): Newton from here on.
            self._close_linear()
            self.tilted = False
            self.counts["slow_exit"] = len(self.errors)
            return False
        if done or self.since >= self.tilt["refresh_every"]:
            self._linearize(jacobian=err * self.tilt["jacobian_drop"] < self.jacobian_at)
        return False

    def abandon_tilt(self, previous: dict[str, np.ndarray]) -> None:
        """Newton at full tolerance from now on, from the levels ``previous``."""
        self._close_linear()
        self.tilted = False
        self.previous = previous

    def solver_info(self) -> dict:
        """The linear-solver record of the Newton (and tilted) sweeps' inner solves."""
        return merge([self.backward.solver_info(), self.forward.solver_info(),
                      *self.linear_records, *(lin.solver_info() for lin in self.linear.values())])

    def counters(self) -> dict:
        """How the tilted phase went: sweeps, linearizations, factorizations."""
        return dict(self.counts)

    def _linearize(self, *, jacobian: bool = False) -> None:
        if not self.linear:
            self.entered = len(self.errors)
        if jacobian or not self.linear:
            self.jacobian_at = self.errors[-1] if self.errors else np.inf
        if not self.linear:
            group = self.tilt["group"]
            self.linear = {"backward": LogLinearization(self.backward, group=group),
                           "forward": LogLinearization(self.forward, group=group)}
        for key, lin in self.linear.items():
            lin.relinearize(self.previous[key], jacobian=jacobian)
        self.since, self.fresh = 0, True
        self.counts["relinearizations"] += 1

    def _close_linear(self) -> None:
        for lin in self.linear.values():
            self.counts["factorizations"] += lin.factorizations
            self.linear_records.append(lin.solver_info())
            lin.close()
        self.linear = {}

    def close(self) -> None:
        self._close_linear()
        self.backward.close()
        self.forward.close()
