r"""The Sinkhorn–Fortet machinery of :func:`bridgesolve.bridge.solve_bridge`.

The pieces, each with its own name:

* :mod:`bridgesolve.bridge.marginals`: the marginals at the dofs (log domain, unit lumped
  mass; discontinuous ones L2-projected);
* the sweeps of each representation live in :mod:`bridgesolve.bridge.sweeps`;
* :func:`_marginal_error`, :func:`_steepness`: the convergence and resolution checks;
* :mod:`bridgesolve.bridge.acceleration`: the adaptive over-relaxation (ω, its rate samples,
  back-off) and Anderson acceleration;
* :class:`SinkhornLoop`: the iteration itself (mode switches, divergence and stagnation
  checks, history records).

:mod:`bridgesolve.bridge` turns the loop's potentials into a :class:`~bridgesolve.bridge.Bridge`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from bridgesolve._dolfinx import MPI
from bridgesolve.bridge.acceleration import Anderson, OverRelaxation
from bridgesolve.bridge.marginals import _lumped_weights, _Marginal, _marginal  # noqa: F401
from bridgesolve.bridge.sweeps import _LOG_CAP, TiltFailure, _finite, _LinearSweeps, _LogSweeps
from bridgesolve.problem import Problem
from bridgesolve.storage import map_rows

#: Modes whose log phase uses tilted (linearized) sweeps once close to the fixed point.
TILTED_MODES: tuple[str, ...] = ("auto",)
#: Iterations over which the error must fall by 1 % or the iteration counts as stagnant.
STAGNATION_WINDOW = 15
#: ``mode="auto"`` moves to the log mode (and ``mode="linear"`` warns) when log φ or log φ̂
#: change by more than this across one cell, ρ-weighted RMS (:func:`_steepness`): the
#: linear interpolant of such a steep exponential is inaccurate; its logarithm is smooth.
RESOLUTION = 0.3


class _FallBack(Exception):
    """``mode="auto"``: a log-mode solve failed; the loop returns to the linear mode."""


class BridgeError(RuntimeError):
    """The Sinkhorn iteration failed (divergence, stagnation, non-finite values).

    Attributes:
        history: the per-iteration records up to the failure.
    """

    def __init__(self, message: str, history: list[dict]):
        super().__init__(message)
        self.history = history


BridgeError.__module__ = "bridgesolve.bridge"  # its documented home


@dataclass
class _Errors:
    L1: float
    Linf: float
    defect: float = 0.0


def _residual(log_phi: np.ndarray, log_phi_hat: np.ndarray, marginal: _Marginal) -> np.ndarray:
    """``log φ + log φ̂ - log ρ``; where ρ = 0 (``-inf - -inf``) the value is unused."""
    with np.errstate(invalid="ignore"):
        return log_phi + log_phi_hat - marginal.log


def _marginal_error(residual_log: np.ndarray, marginal: _Marginal, weights: np.ndarray,
                    comm) -> _Errors:
    """Errors of the product ``ρ·exp(r)`` against ρ, ``r = log(φ φ̂) - log ρ`` (owned dofs),
    after normalizing the product to unit mass.

    The normalization matters in log mode: the HJB pair conserves ``∫φφ̂`` only up to
    discretization error, so the Sinkhorn map (which commutes with ``log φ → log φ + c``)
    has a fixed point only up to such a constant; ``defect`` is ``log ∫ρ e^r``, the mass
    the product gained (a discretization diagnostic; round-off in linear mode).
    """
    n = weights.size
    rho = marginal.value[:n]
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.where(rho > 0.0, np.minimum(residual_log[:n], _LOG_CAP), 0.0)
        mass = comm.allreduce(float(weights @ (rho * np.exp(r))), MPI.SUM)
        defect = math.log(mass) if mass > 0 and np.isfinite(mass) else np.inf
        dev = rho * np.abs(np.expm1(r - defect))
    if not (np.isfinite(defect) and np.all(np.isfinite(dev))):
        return _Errors(np.inf, np.inf, np.inf)
    return _Errors(L1=comm.allreduce(float(weights @ dev), MPI.SUM),
                   Linf=comm.allreduce(float(np.max(dev, initial=0.0)), MPI.MAX),
                   defect=defect)


def _steepness(problem: Problem, L_phi: np.ndarray, L_hat: np.ndarray) -> float:
    """ρ-weighted RMS change of log φ and log φ̂ across one cell, at nine levels over [0, T].

    A linear interpolant of ``e^S`` whose logarithm changes by ``J`` across a cell is off by
    about ``J²/8`` relative to its size there, so a value above 0.3 means the linear
    representation misplaces mass at the 1 % level where the bridge has it; the log
    representation is smooth there (Gaussian potentials are quadratic). Owned cells only,
    allreduced: rank-independent.
    """
    tdim = problem.mesh.topology.dim
    cells = problem.V.dofmap.list[: problem.mesh.topology.index_map(tdim).size_local]
    num = den = 0.0
    # Nine levels spread over [0, T] describe the steepness well and keep the check far
    # cheaper than an iteration.
    for k in np.unique(np.linspace(0, L_phi.shape[0] - 1, 9).round().astype(int)):
        log_rho = L_phi[k] + L_hat[k]
        top = problem.comm.allreduce(float(np.max(log_rho, initial=-np.inf)), MPI.MAX)
        if not cells.size:
            continue
        with np.errstate(invalid="ignore"):
            w = np.exp(np.max(log_rho[cells], axis=1) - top)
            w = np.where(np.isfinite(w), w, 0.0)
            for values in (L_phi[k], L_hat[k]):
                jump = np.ptp(values[cells], axis=1)
                num += float(w @ np.where(np.isfinite(jump), jump, 0.0) ** 2)
        den += 2.0 * float(w.sum())
    num, den = problem.comm.allreduce(num, MPI.SUM), problem.comm.allreduce(den, MPI.SUM)
    return math.sqrt(num / den) if den > 0 else 0.0


def _log_sum(log_values: np.ndarray, weights: np.ndarray, comm) -> float:
    """``log Σ_i m_i exp(v_i)`` over all ranks, without overflow."""
    top = comm.allreduce(float(np.max(log_values, initial=-np.inf)), MPI.MAX)
    local = float(weights @ np.exp(log_values - top))
    return top + math.log(comm.allreduce(local, MPI.SUM))


def _relax(old: np.ndarray | None, target: np.ndarray, omega: float) -> np.ndarray:
    """``(1-ω) old + ω target`` in the log domain (``-inf`` stays where the target is)."""
    if old is None or omega == 1.0:
        return target.copy()
    out = target.copy()
    ok = np.isfinite(target) & np.isfinite(old)
    out[ok] = (1.0 - omega) * old[ok] + omega * target[ok]
    return out




class SinkhornLoop:
    """The Sinkhorn–Fortet iteration between two marginals (module doc of
    :mod:`bridgesolve.bridge`).

    Args:
        problem: the discretized problem (reflecting boundary).
        m0, m1: the marginals at the dofs.
        weights: lumped mass weights of the owned dofs.
        mode: ``"linear"``, ``"log"`` or ``"auto"``.
        tol: L1 marginal error at both ends to stop at.
        max_iter: iteration limit.
        killing: optional rate ``V``.
        acceleration: adaptive over-relaxation (:class:`OverRelaxation`).
        newton_options: SNES options of the log mode.
        progress: a progress bar on rank 0.

    After :meth:`run`: ``history``, ``converged``, ``current`` (the final mode), ``sweeps``
    (closed; its counters remain), ``L_phi`` and ``L_hat`` (the last log-potentials).
    """

    def __init__(self, problem: Problem, m0: _Marginal, m1: _Marginal, weights: np.ndarray,
                 *, mode: str, tol: float, max_iter: int, killing, acceleration: bool,
                 newton_options: dict | None, progress: bool):
        self.problem, self.comm = problem, problem.comm
        self.m0, self.m1, self.weights = m0, m1, weights
        self.mode, self.tol, self.max_iter = mode, tol, max_iter
        self.killing, self.newton_options = killing, newton_options
        self.current = "log" if mode == "log" else "linear"
        self.solver_records: list[dict] = []  # linear solvers of closed sweeps
        self.sweeps = self._new_sweeps()
        self.anderson = (Anderson(weights, m1, self.comm) if acceleration == "anderson"
                         else None)
        self.relaxation = OverRelaxation(bool(acceleration))
        self.history: list[dict] = []
        self.events: list[str] = []
        self.stall_from = 0  # stagnation is judged on the history from here on
        self.converged = False
        self.L_phi: np.ndarray | None = None
        self.L_hat: np.ndarray | None = None
        self.log_phi_T: np.ndarray | None = None
        self.log_phi_hat_0: np.ndarray | None = None
        self.progress = progress
        self.bar = None
        #: (error, log φ_T, log φ̂_0, sweep levels) where a failed tilted phase resumes.
        self.best_state: tuple = (np.inf, None, None, None)
        #: ``auto``: why the loop must stay in the linear mode (None: it may switch), the
        #: linear iterate where it switched to log, and why it came back (None: it did not).
        self.linear_only = self._vanishing() if mode == "auto" else None
        self.linear_state: tuple | None = None
        self.fallback: str | None = None

    # -- plumbing ---------------------------------------------------------------------
    def _vanishing(self) -> str | None:
        """Why the log mode cannot take these marginals, or None: a marginal that vanishes at
        nodes (zero pixels, the L2 projection of the checkerboard clipped at its undershoots)
        has ``log ρ = -inf`` there, stood in for by 700 below its smallest value: a jump of
        hundreds per cell that the HJB solves cannot pass (Newton fails in the first steps)."""
        n = self.weights.size
        for name, m in (("rho0", self.m0), ("rho1", self.m1)):
            zero = self.comm.allreduce(int(np.count_nonzero(~np.isfinite(m.log[:n]))),
                                       MPI.SUM)
            if zero:
                return (f"{name} vanishes at {zero} nodes (log-density -inf), which the log "
                        "mode cannot represent")
        return None

    def _new_sweeps(self):
        if self.current == "log":
            return _LogSweeps(self.problem, self.killing, self.newton_options,
                              tilted=self.mode in TILTED_MODES)
        return _LinearSweeps(self.problem, self.killing, tol=self.tol)

    def _close_sweeps(self) -> None:
        """Close the sweeps, keeping their linear-solver record (``solver_records``)."""
        self.solver_records.append(self.sweeps.solver_info())
        self.sweeps.close()

    def fail(self, message: str):
        raise BridgeError(f"Schrödinger bridge: {message}", self.history)

    def switch_to_log(self, reason: str, *, seed: bool = False) -> None:
        """Continue in the log representation from the current potentials (``auto``), or
        fail naming the reason and the remedies. ``seed``: the last sweeps are sound (all
        levels finite) and give the log sweeps their starting levels."""
        if self.mode != "auto" or self.linear_only:
            why = f" (mode='auto' stays linear: {self.linear_only})" if self.linear_only else ""
            self.fail(f"iteration {len(self.history) + 1} ({self.current} mode): {reason}"
                      f"{why}. Use mode='log' (or 'auto'), or scheme='backward-euler' for "
                      "positivity")
        self.linear_state = (self.log_phi_T.copy(), None if self.log_phi_hat_0 is None
                             else self.log_phi_hat_0.copy())
        self._close_sweeps()
        self.current = "log"
        self.sweeps = self._new_sweeps()
        if seed and self.L_phi is not None and self.L_hat is not None:
            self.sweeps.seed(*(map_rows(lambda row: _finite(row, self.comm), L, name=name)
                               for L, name in ((self.L_phi, "log_phi"),
                                               (self.L_hat, "log_phi_hat"))))
        self.relaxation.reset()
        if self.anderson is not None:
            self.anderson.reset()
        self.events.append(f"switched to log mode: {reason}")
        if self.bar is not None:
            self.bar.set_description("Sinkhorn (log)")

    def _errors(self, log_phi: np.ndarray, log_phi_hat: np.ndarray, m: _Marginal) -> _Errors:
        return _marginal_error(_residual(log_phi, log_phi_hat, m), m, self.weights, self.comm)

    # -- the iteration ----------------------------------------------------------------
    def run(self, log_phi_T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Iterate from ``log φ_T`` until converged or ``max_iter``; returns the last
        ``(log φ, log φ̂)`` at every level."""
        from tqdm.auto import tqdm

        self.log_phi_T, self.log_phi_hat_0 = log_phi_T, None
        # Progress in decades of the marginal error, from 2 (its largest value) down to
        # tol: an iteration count to max_iter would promise an ETA of minutes for seconds.
        self.decades = max(1, math.ceil(math.log10(2.0 / self.tol)))
        self.bar = tqdm(total=self.decades, desc=f"Sinkhorn ({self.current})", unit="decade",
                        leave=False, disable=not self.progress or self.comm.rank != 0,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}]")
        try:
            while len(self.history) < self.max_iter:
                self._checkpoint()
                try:
                    if self._iteration():
                        self.converged = True
                        break
                except TiltFailure as exc:
                    self._roll_back(str(exc))
                except _FallBack as exc:
                    self._fall_back(str(exc))
        finally:
            self.bar.close()
            self._close_sweeps()
        if self.L_phi is None or self.L_hat is None:  # pragma: no cover - max_iter >= 1
            self.fail("no iteration completed")
        return self.L_phi, self.L_hat

    def _checkpoint(self) -> None:
        """Before the tilted phase (Newton sweeps of the tilted mode), keep the state at the
        start of each iteration: the last one is where a failed tilted phase resumes (its
        own iterates satisfy the HJB only as far as the linearization went)."""
        sweeps = self.sweeps
        if not (isinstance(sweeps, _LogSweeps) and sweeps.tilted and not sweeps.linear
                and self.log_phi_T is not None):
            return
        last = self.history[-1] if self.history else {"errT_L1": np.inf, "err0_L1": np.inf}
        err = max(last["errT_L1"], last["err0_L1"] if np.isfinite(last["err0_L1"]) else 0.0)
        self.best_state = (err, self.log_phi_T.copy(), None if self.log_phi_hat_0 is None
                           else self.log_phi_hat_0.copy(),
                           {k: v.copy() for k, v in sweeps.previous.items()})

    def _roll_back(self, reason: str) -> None:
        """The tilted phase failed: back to the best iterate, Newton at full tolerance."""
        err, log_phi_T, log_phi_hat_0, previous = self.best_state
        if log_phi_T is None:
            self.fail(f"iteration {len(self.history) + 1}: {reason}")
        self.log_phi_T, self.log_phi_hat_0 = log_phi_T, log_phi_hat_0
        self.sweeps.abandon_tilt(previous)
        self.relaxation.reset()
        if self.anderson is not None:
            self.anderson.reset()
        self.stall_from = len(self.history)
        self.events.append(f"tilted solves abandoned ({reason}): Newton from the last "
                           f"Newton iterate (error {err:.3g})")

    def _fall_back(self, reason: str) -> None:
        """``auto``: a log-mode solve failed; continue in the linear mode from the linear
        iterate where the loop switched, and stay there."""
        self._close_sweeps()
        self.current = "linear"
        self.sweeps = self._new_sweeps()
        self.log_phi_T, self.log_phi_hat_0 = self.linear_state
        self.linear_only = self.fallback = f"the log mode failed ({reason})"
        self.relaxation.reset()
        if self.anderson is not None:
            self.anderson.reset()
        self.stall_from = len(self.history)
        self.events.append(f"back to the linear mode: {self.fallback}")
        if self.bar is not None:
            self.bar.set_description("Sinkhorn (linear)")

    def _sweep(self, start_log: np.ndarray, *, backward: bool, it: int):
        """One sweep; a failed log-domain solve becomes a :class:`BridgeError` that names the
        cause and the remedies."""
        try:
            return self.sweeps.sweep(start_log, backward=backward)
        except TiltFailure:
            raise
        except RuntimeError as exc:
            what = "log φ (backward)" if backward else "log φ̂ (forward)"
            if self.mode == "auto" and self.linear_state is not None:
                raise _FallBack(f"iteration {it}: the solve for {what}: {exc}") from exc
            self.fail(
                f"iteration {it} ({self.current} mode): the solve for {what} failed: {exc}. "
                "In a bridge this means the Sinkhorn update (log φ_T = log ρ1 - log φ̂_T, "
                "log φ̂_0 = log ρ0 - log φ_0) is steeper than the mesh and time step resolve "
                "near that time: refine the time grid there (TimeGrid.graded) or the mesh, "
                "raise σ, or check that ρ0 and ρ1 have no near-zero values or mass at the "
                "walls")

    def _iteration(self) -> bool:
        """One backward and one forward sweep with their checks; True when converged.

        A mode switch inside a sweep restarts the iteration without a record; every
        completed iteration appends one record to ``history``.
        """
        it = len(self.history) + 1
        self._started = time.perf_counter()
        m0, m1 = self.m0, self.m1
        self.L_phi, trouble = self._sweep(self.log_phi_T, backward=True, it=it)
        if trouble is not None:
            self.switch_to_log(f"φ: {trouble}")
            return False
        if not np.all(np.isfinite(self.L_phi[:-1])):
            self.fail(f"iteration {it}: log φ became non-finite in the backward solve")
        log_phi_0 = self.L_phi[0]
        err0 = (self._errors(log_phi_0, self.log_phi_hat_0, m0)
                if self.log_phi_hat_0 is not None else _Errors(np.nan, np.nan))
        self.log_phi_hat_0 = _relax(self.log_phi_hat_0, m0.log - log_phi_0,
                                    self.relaxation.omega)
        self.L_hat, trouble = self._sweep(self.log_phi_hat_0, backward=False, it=it)
        if trouble is not None:
            self.switch_to_log(f"φ̂: {trouble}")
            return False
        if not np.all(np.isfinite(self.L_hat[1:])):
            self.fail(f"iteration {it}: log φ̂ became non-finite in the forward solve")
        errT = self._errors(self.log_phi_T, self.L_hat[-1], m1)
        err = self._record(it, err0, errT)
        if not np.isfinite(errT.L1):
            self.fail(f"iteration {it}: the marginal error at t = T is not finite "
                      f"({self.current} mode)")
        done = err < self.tol and np.isfinite(err0.L1)
        if self._too_steep(it, due=done):
            self.log_phi_T = _relax(self.log_phi_T, m1.log - self.L_hat[-1], 1.0)
            return False
        if isinstance(self.sweeps, _LogSweeps):
            done = self.sweeps.observe(err, done)
        if done:
            return True
        self._check_divergence(it, err)
        self._accelerate(it, err, err0)
        if self._stagnation(it):
            return False
        if self.anderson is not None and (self.anderson.X or err < Anderson.START):
            if self.relaxation.allowed:
                self.relaxation.disable()
                self.events.append("Anderson acceleration on log φ_T (over-relaxation off)")
            self.log_phi_T = self.anderson.update(self.log_phi_T, m1.log - self.L_hat[-1],
                                                  errT.L1)
        else:
            self.log_phi_T = _relax(self.log_phi_T, m1.log - self.L_hat[-1],
                                    self.relaxation.omega)
        return False

    def _record(self, it: int, err0: _Errors, errT: _Errors) -> float:
        """Append the iteration's record; returns its error (the larger of both ends)."""
        omega = self.relaxation.omega
        record = {"iteration": it, "mode": self.current, "omega": omega,
                  "err0_L1": err0.L1, "err0_Linf": err0.Linf,
                  "errT_L1": errT.L1, "errT_Linf": errT.Linf,
                  "mass_defect": errT.defect,
                  "wall_s": time.perf_counter() - self._started}
        if self.events:
            record["event"] = "; ".join(self.events)
            self.events.clear()
        self.history.append(record)
        err = max(errT.L1, err0.L1 if np.isfinite(err0.L1) else errT.L1)
        done = min(self.decades, max(0, math.floor(math.log10(2.0 / err)))) \
            if err > 0 and np.isfinite(err) else self.bar.n
        self.bar.set_postfix_str(f"it {it}, error {err:.2e} → tol {self.tol:.0e}, "
                                 f"ω = {omega:.2f}")
        self.bar.update(max(done, self.bar.n) - self.bar.n)
        return err

    def _too_steep(self, it: int, *, due: bool) -> bool:
        """``auto`` in linear mode, at iterations 2, 8, 16, ... and before accepting
        convergence: switch to log when the potentials are too steep for the mesh."""
        if self.current != "linear" or self.mode != "auto" or self.linear_only:
            return False
        if not (due or it == 2 or it % 8 == 0):
            return False
        steep = _steepness(self.problem, self.L_phi, self.L_hat)
        if steep <= RESOLUTION:
            return False
        self.switch_to_log(f"log φ, log φ̂ change by {steep:.3g} per cell (ρ-weighted RMS) "
                           "where the bridge has mass: too steep for the linear "
                           "representation, smooth in the log one", seed=True)
        return True

    def _same_mode_errors(self, since: int = 0) -> list[float]:
        return [max(h["errT_L1"], h["err0_L1"] if np.isfinite(h["err0_L1"]) else 0.0)
                for h in self.history[since:] if h["mode"] == self.current]

    def _check_divergence(self, it: int, err: float) -> None:
        same = [max(h["errT_L1"], h["err0_L1"]) for h in self.history[max(1, self.stall_from):]
                if h["mode"] == self.current and np.isfinite(h["err0_L1"])]
        best = min(same, default=np.inf)
        if len(same) > 5 and err > 1e3 * best:
            self.fail(f"iteration {it}: diverging — marginal L1 error {err:.3g} vs best "
                      f"{best:.3g} ({self.current} mode, ω = {self.relaxation.omega:.3g})")

    def _accelerate(self, it: int, err: float, err0: _Errors) -> None:
        prev = self.history[-2] if len(self.history) > 1 else None
        comparable = (prev is not None and np.isfinite(err0.L1)
                      and np.isfinite(prev["err0_L1"]))
        previous = max(prev["errT_L1"], prev["err0_L1"]) if comparable else None
        event = self.relaxation.observe(it, err, previous)
        if event is not None:
            self.events.append(event)

    def _stagnation(self, it: int) -> bool:
        """Best error of the last window against the best before it (transients of the
        over-relaxation are not stagnation). True when the iteration restarts in log mode."""
        window = self._same_mode_errors(self.stall_from)
        if not (len(window) > STAGNATION_WINDOW and
                min(window[-STAGNATION_WINDOW:]) > 0.99 * min(window[:-STAGNATION_WINDOW])):
            return False
        reason = (f"stagnation: marginal L1 error {window[-1]:.3g} fell by < 1 % "
                  f"over {STAGNATION_WINDOW} iterations")
        if self.relaxation.active:
            final = self.relaxation.stall()
            self.stall_from = len(self.history)
            self.events.append(f"{reason} with over-relaxation: " + (
                "switched off for good" if final else "ω = 1, rate measured afresh"))
            return False
        if self.current == "linear" and self.mode == "auto":
            self.switch_to_log(reason, seed=True)
            return True
        self.fail(f"iteration {it}: {reason} ({self.current} mode); the discrete problem "
                  "may be too coarse for the marginals (refine mesh or time grid)")
        return False  # pragma: no cover - fail raises
