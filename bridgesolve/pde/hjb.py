r"""Hamilton–Jacobi–Bellman equations for the log-potentials (Hopf–Cole).

Backward, for ``S = log φ`` (φ the Kolmogorov solution):

.. math::
    \partial_t S + k f_0\cdot\nabla S + D\,\Delta S + D |\nabla S|^2 + V = 0,
    \qquad S(\cdot, T) = S_T,

with ``∇S·n = 0`` on reflecting boundaries. Forward twin, for ``Ŝ = log φ̂`` (φ̂ a
Fokker–Planck solution):

.. math::
    \partial_t \hat S = -\nabla\cdot f - f\cdot\nabla\hat S + D(\Delta\hat S
    + |\nabla\hat S|^2) + V,

whose zero-flux condition ``(f - D∇Ŝ)·n = 0`` is natural in the weak form

.. math::
    (\partial_t\hat S, v) = k\,[(f_0, \nabla v) - (f_0\cdot\nabla\hat S, v)]
    - D (\nabla\hat S, \nabla v) + D (|\nabla\hat S|^2, v) + (V, v).

Both are advanced by the θ-scheme with Newton's method (PETSc SNES, LU) at each step
(full steps; a step where they fail is solved again with the l2 line search, then halved);
the step integrals of ``k`` and ``D`` enter as constants, so the forms are compiled once.
Unlike the linear equations they stay finite where φ underflows double precision.

Walls. Written as transport, the backward equation moves information with velocity
``c = -(D∇S + f)`` (reverse time), the forward one with ``c = f - D∇Ŝ``. Where ``c·n > 0``
the wall is an *outflow* boundary: the zero-flux condition there only creates a layer of
width ``D/|c|`` (1e-4 and less for sharp data) that no mesh resolves and that, unresolved,
pollutes the Galerkin solution everywhere. On outflow parts of the wall the solvers
therefore take the boundary flux from the solution itself (an open condition); where
``c·n ≤ 0`` the reflecting condition holds as in the linear solvers. Away from that layer
both agree (tested against ``log`` of the Kolmogorov/Fokker–Planck solutions). Steps where
Newton fails are halved (up to 8 times) before giving up with an error naming the time.

Blow-up. The continuous equations obey a maximum principle (for ``f = 0``, ``V = 0`` the
maximum of ``Ŝ`` never grows: ``∇Ŝ = 0`` there); their Galerkin discretization does not
where the potentials change by tens of units per dof spacing, e.g. in the corners of the
box at small noise, far from the marginals' mass: ``D|∇Ŝ|²`` integrated against one
node's basis function lifts that node above its neighbours, which steepens the gradient,
and the semi-discrete system blows up in finite time (the time of the blow-up does not
move when the time step is refined or the scheme changed, so no Newton variant and no
halving can pass it). Such a failure names the place and the growth of the maximum;
the cure is resolution there (mesh) or a larger σ.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from bridgesolve import storage
from bridgesolve._dolfinx import MPI, fem, ufl
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.pde.killing import killing_coefficient
from bridgesolve.pde.krylov import newton_options as newton_krylov
from bridgesolve.pde.krylov import newton_record, newton_step
from bridgesolve.problem import Problem
from bridgesolve.solvers import options_prefix
from bridgesolve.spacetime import SpaceTimeField

# Log-potentials reach |S| ~ 1e4-1e5 for sharp data, where residuals bottom out at
# round-off far above any fixed absolute tolerance: stop on relative residual or step size.
# No divergence test: from a warm start (the previous Sinkhorn iterate) the first residual
# is tiny and any Newton transient exceeds PETSc's default 1e4 times it. (-1 no longer
# switches the test off: since PETSc 3.22 it means PETSC_DETERMINE, i.e. 1e4, and Newton
# steps were reported diverged that converged; 1e300 is "off" in every version.)
DEFAULT_NEWTON = {
    "snes_type": "newtonls",
    "snes_linesearch_type": "basic",
    "snes_rtol": 1e-10,
    "snes_atol": 1e-10,
    "snes_stol": 1e-13,
    "snes_divergence_tolerance": 1e300,
    "snes_max_it": 50,
}
#: Width of the smoothed outflow switch on the wall, in units of ``∇S·n`` (1/length): the
#: boundary flux is weighted by ``½(1 - q/√(q² + δ²))``, ``δ = OUTFLOW_SMOOTHING · ∫D dt``,
#: instead of switching at ``q = 0`` (see ``LogEvolution``). Walls where the potentials
#: are steep (|∇S| ≫ 1, the case the open condition is for) switch as before. 1e-3 did not
#: cure the failures below; 1 did.
OUTFLOW_SMOOTHING = 1.0
#: A Newton step that changes S anywhere by more than this times ``1 + max|S|`` of the
#: level before is a blow-up, not a solution (the step is halved as on failure).
MAX_STEP_CHANGE = 100.0


def _log_terminal(problem: Problem, value, name: str) -> fem.Function:
    """``value`` as a log-field: ``log_pdf`` of density-like objects, callables as given."""
    S = fem.Function(problem.V, name=name)
    if isinstance(value, fem.Function):
        S.interpolate(value)
    else:
        f = value.log_pdf if hasattr(value, "log_pdf") else value
        if not callable(f):
            raise BridgesolveInputError(
                f"{name} = {value!r}: expected a callable log-value of points, a density-like "
                "object (log_pdf), or a DOLFINx Function"
            )
        dim = problem.domain.dim
        S.interpolate(lambda x: np.asarray(f(np.ascontiguousarray(x[:dim].T)), dtype=float))
    if not np.all(np.isfinite(S.x.array)):
        raise BridgesolveInputError(f"{name} has non-finite values on the mesh (log of zero?)")
    return S


class LogEvolution:
    """The θ-scheme + Newton evolution of ``S = log φ`` (backward) or ``Ŝ = log φ̂``
    (forward), built once and run from any number of starting values.

    The forms are compiled and the SNES solver created once, so Sinkhorn iterations that
    solve the same equation again and again only pay for the Newton steps.

    Args:
        problem: domain, process, time grid, discretization (reflecting boundary).
        forward: ``True`` for the forward twin (Ŝ from t = 0), ``False`` for S from t = T.
        killing: optional rate ``V`` (number, ``V(x)``, ``V(x, t)`` or UFL).
        name: label for fields and messages.
        newton_options: SNES options overriding :data:`DEFAULT_NEWTON`.
        max_halvings: how often a failing step is halved before giving up.
    """

    def __init__(self, problem: Problem, *, forward: bool, killing=None, name: str = "S",
                 newton_options: dict | None = None, max_halvings: int = 8):
        if problem.boundary != "reflecting":
            raise BridgesolveInputError(
                f"boundary = {problem.boundary!r}: log-domain (HJB) solvers need 'reflecting' "
                "boundaries (an absorbing boundary makes the log-potential -inf there)"
            )
        t_start = time.perf_counter()
        self.problem, self.forward, self.name = problem, forward, name
        self.max_halvings = max_halvings
        self.retries = 0  # steps solved again with the l2 line search (newton_step)
        self._start_peak = 0.0
        V, mesh, proc = problem.V, problem.mesh, problem.process
        self.S_prev = fem.Function(V, name=name)
        self.S = fem.Function(V, name=name)
        S_prev, S = self.S_prev, self.S
        v = ufl.TestFunction(V)
        R_D, R_k, R_V = (fem.Constant(mesh, 0.0) for _ in range(3))
        self.R_D, self.R_k, self.R_V = R_D, R_k, R_V
        has_drift = not (proc.linear and proc.drift_rate_integral(0.0, 1.0) == 0.0)
        f0 = proc.drift_shape_ufl(ufl.SpatialCoordinate(mesh)) if has_drift else None
        if f0 is not None and problem.domain.dim == 1 and f0.ufl_shape == ():
            f0 = ufl.as_vector([f0])
        V_expr, self.V_update, self.info = (killing_coefficient(V, killing)
                                            if killing is not None else (None, None, {}))

        n = ufl.FacetNormal(mesh)
        zero = ufl.as_vector([0.0] * problem.domain.dim)
        drift = R_k * f0 if f0 is not None else zero

        def G(w):
            g = R_D * (ufl.inner(ufl.grad(w), ufl.grad(v))
                       - ufl.inner(ufl.grad(w), ufl.grad(w)) * v)
            if f0 is not None:
                transport = ufl.inner(f0, ufl.grad(w)) * v
                g -= R_k * ((ufl.inner(f0, ufl.grad(v)) - transport) if forward else transport)
            if V_expr is not None:
                g -= R_V * V_expr * v
            # Outflow parts of the wall (see module doc): the boundary flux of the solution
            # itself, so no condition is imposed where the characteristics leave Ω.
            if forward:
                flux = ufl.dot(R_D * ufl.grad(w) - drift, n)  # outflow where (f - D∇Ŝ)·n > 0
                q = flux
            else:
                flux = R_D * ufl.dot(ufl.grad(w), n)  # velocity -(D∇S + f): outflow where
                q = flux + ufl.dot(drift, n)  # (D∇S + f)·n < 0
            # The switch to outflow where q < 0, smoothed over |q| < δ: a sharp switch
            # (ufl.conditional) makes the residual kinked (jumping, with drift) where q
            # changes sign; at high degree Newton then fails there, and the halved steps
            # change the discrete problem from one Sinkhorn iteration to the next
            # (Gaussian bridge, P4, 80 cells of [-7, 7], 16 steps: 14000 Newton iterations
            # in 12 Sinkhorn iterations, 480 halvings, marginal errors stuck at 1e-4;
            # smoothed: 1400, 12 halvings, 1e-13 in 14 iterations).
            delta = OUTFLOW_SMOOTHING * R_D
            outflow = 0.5 * (1.0 - q / ufl.sqrt(q * q + delta * delta))
            return g * ufl.dx - outflow * flux * v * ufl.ds

        theta = problem.theta
        F = (S - S_prev) * v * ufl.dx + theta * G(S) + (1.0 - theta) * G(S_prev)
        # Newton–Krylov on the iterative path: GMRES (the Jacobian is non-symmetric) + AMG.
        opts = {**DEFAULT_NEWTON, **newton_krylov(problem.petsc_options),
                **(newton_options or {})}
        self.krylov: list[int] = []  # linear iterations of every Newton solve
        prefix = options_prefix("hjb")
        # LogLinearization reads these: the θ-step residual F(S, S_prev), the operator G(S)
        # and the mass form.
        self.residual_ufl, self.operator_ufl = F, G(S)
        self.mass_ufl = ufl.TrialFunction(V) * v * ufl.dx
        self.nl = fem.petsc.NonlinearProblem(F, S, petsc_options_prefix=prefix,
                                             petsc_options=opts)
        self.setup_s = time.perf_counter() - t_start

    def set_step(self, ta: float, tb: float) -> None:
        """Load the step integrals (and the killing rate at the midpoint) of ``[ta, tb]``."""
        proc = self.problem.process
        lo, hi = min(ta, tb), max(ta, tb)
        self.R_D.value = proc.diffusion_integral(lo, hi)
        self.R_k.value = proc.drift_rate_integral(lo, hi)
        self.R_V.value = hi - lo
        if self.V_update is not None:
            self.V_update(0.5 * (lo + hi))

    def steps(self) -> list[tuple[int, int, float, float]]:
        """``(from_level, to_level, t_from, t_to)`` of every step in evolution order."""
        times, n = self.problem.grid.times, self.problem.grid.steps
        if self.forward:
            return [(k, k + 1, times[k], times[k + 1]) for k in range(n)]
        return [(k + 1, k, times[k + 1], times[k]) for k in range(n - 1, -1, -1)]

    def _advance(self, ta: float, tb: float, depth: int, guess: np.ndarray | None = None
                 ) -> tuple[int, int]:
        """One θ-step from ``ta`` to ``tb`` (reversed for backward runs), halved on failure.

        ``S_prev`` holds the state at ``ta`` on entry and at ``tb`` on success. Returns the
        Newton iterations spent and the number of (sub)steps taken.
        """
        lo, hi = min(ta, tb), max(ta, tb)
        self.set_step(ta, tb)
        start = self.S_prev.x.array if guess is None else guess
        old = self.S_prev.x.array
        bound = MAX_STEP_CHANGE * (1.0 + float(np.max(np.abs(old), initial=0.0)))

        def accept(new):
            # a "converged" step that moved the potential by far more than its size is a
            # blow-up that met the step-size test (seen: values of -1e78), not a solution
            return float(np.max(np.abs(new - old), initial=0.0)) <= bound

        its, ok, retried = newton_step(self.nl, self.S, start, self.problem.comm, accept,
                                       self.krylov)
        self.retries += int(retried)
        snes = self.nl.solver
        if ok:
            self.S_prev.x.array[:] = self.S.x.array
            return its, 1
        if depth == self.max_halvings:
            raise RuntimeError(
                f"{self.name}: Newton did not converge for t in [{lo:.6g}, {hi:.6g}] after "
                f"{self.max_halvings} step halvings (SNES reason {snes.getConvergedReason()}, "
                f"last linear solve: KSP reason {snes.getKSP().getConvergedReason()})"
                f"{self._blowup()}; refine the time grid near the stiff end "
                "(TimeGrid.graded) or the mesh"
            )
        mid = 0.5 * (ta + tb)
        its_a, sub_a = self._advance(ta, mid, depth + 1)
        its_b, sub_b = self._advance(mid, tb, depth + 1)
        return its + its_a + its_b, sub_a + sub_b

    def _blowup(self) -> str:
        """A description of a blow-up (module doc) for failure messages: where the
        largest |S| of the last accepted state is and how far it grew since the start;
        empty when it did not grow much."""
        comm = self.problem.comm
        n = self.problem.V.dofmap.index_map.size_local
        values = self.S_prev.x.array[:n]
        i = int(np.argmax(np.abs(values))) if values.size else 0
        local = float(np.abs(values[i])) if values.size else -1.0
        x = (self.problem.V.tabulate_dof_coordinates()[i, :self.problem.domain.dim]
             if values.size else None)
        peak, where = max(comm.allgather((local, None if x is None else tuple(x))),
                          key=lambda item: item[0])
        begin = self._start_peak
        if not (np.isfinite(peak) and peak > 1.25 * begin + 10.0):
            return ""
        place = ", ".join(f"{c:.4g}" for c in where) if where is not None else "?"
        return (f": the discrete solution blows up — max |{self.name}| grew from "
                f"{begin:.4g} to {peak:.4g}, at x = ({place}) (steep potentials the mesh "
                "does not resolve there; no time step passes a blow-up of the semi-discrete "
                "equation, see bridgesolve.pde.hjb)")

    def run(self, start: np.ndarray, *, progress: bool = True,
            guess: np.ndarray | None = None) -> SpaceTimeField:
        """Evolve from the local dof values ``start`` (at t = 0 forward, t = T backward).

        ``guess`` (``(nt + 1, n_local)``, e.g. the previous Sinkhorn iterate) gives Newton's
        starting point at each level instead of the level before; a failed step falls back
        to halving from the level before as usual.
        """
        t_loop = time.perf_counter()
        retries_before = self.retries
        forward, grid = self.forward, self.problem.grid
        times = grid.times
        self.S_prev.x.array[:] = start
        n_owned = self.problem.V.dofmap.index_map.size_local
        self._start_peak = self.problem.comm.allreduce(
            float(np.max(np.abs(start[:n_owned]), initial=0.0)), op=MPI.MAX)
        values = self.problem.levels(start.size, name=self.name)
        values[0 if forward else -1] = start
        iterations = np.zeros(grid.steps, dtype=int)
        substeps = np.zeros(grid.steps, dtype=int)
        steps = range(grid.steps) if forward else range(grid.steps - 1, -1, -1)
        bar = tqdm(total=grid.steps, desc="HJB forward" if forward else "HJB", unit="step",
                   leave=False, disable=not progress or self.problem.comm.rank != 0)
        try:
            for n in steps:
                t0, t1 = times[n], times[n + 1]
                ta, tb = (t0, t1) if forward else (t1, t0)
                target = n + 1 if forward else n
                iterations[n], substeps[n] = self._advance(
                    ta, tb, 0, None if guess is None else guess[target])
                values[n + 1 if forward else n] = self.S_prev.x.array
                storage.release(values)  # on disk: the level leaves memory
                bar.set_postfix(newton=int(iterations[n]))
                bar.update()
        finally:
            bar.close()
        info = {**self.info, "equation": "hjb-forward" if forward else "hjb",
                "newton_iterations": iterations, "substeps": substeps,
                "line_search_retries": self.retries - retries_before,
                "linear_solver": self.solver_info(),
                "timings": {"setup_s": self.setup_s,
                            "stepping_s": time.perf_counter() - t_loop}}
        return SpaceTimeField(self.problem.V, grid, values, name=self.name,
                              representation="log", info=info)

    def solver_info(self) -> dict:
        """The ``linear_solver`` record of the Newton steps' inner solves."""
        return newton_record(self.problem.petsc_options, self.krylov, self.nl)

    def close(self) -> None:
        """Free the Newton solver now, at the same point on every rank (its PETSc objects
        are destroyed collectively; the garbage collector would do it at rank-dependent
        moments)."""
        self.nl = None


def _solve_log(problem: Problem, terminal, *, forward: bool, killing, progress: bool,
               name: str, newton_options: dict | None) -> SpaceTimeField:
    t_start = time.perf_counter()
    evolution = LogEvolution(problem, forward=forward, killing=killing, name=name,
                             newton_options=newton_options)
    try:
        start = _log_terminal(problem, terminal, name)
        field = evolution.run(start.x.array.copy(), progress=progress)
    finally:
        evolution.close()
    field.info["timings"]["total_s"] = time.perf_counter() - t_start
    return field


def solve_hjb(problem: Problem, S_T, *, killing=None, progress: bool = True, name: str = "S",
              newton_options: dict | None = None) -> SpaceTimeField:
    """Solve the backward HJB equation for ``S = log φ`` from ``S(·, T) = S_T``.

    Args:
        problem: domain, process, time grid and discretization (reflecting boundary).
        S_T: terminal log-value: a callable of points ``(N, d) -> (N,)`` returning
            ``log φ_T``, a density-like object (its ``log_pdf``), or a DOLFINx Function.
        killing: optional rate ``V`` (number, ``V(x)``, ``V(x, t)`` or UFL).
        newton_options: SNES options overriding the defaults (``snes_rtol`` ...).

    Returns:
        ``S`` at every level (``representation="log"``); ``info["newton_iterations"]``
        holds the Newton iterations of every grid step and ``info["substeps"]`` how many
        substeps it took (steps where Newton fails are halved, up to 8 times).
    """
    return _solve_log(problem, S_T, forward=False, killing=killing, progress=progress,
                      name=name, newton_options=newton_options)


def solve_hjb_forward(problem: Problem, S_0, *, killing=None, progress: bool = True,
                      name: str = "S_hat", newton_options: dict | None = None
                      ) -> SpaceTimeField:
    """Solve the forward twin for ``Ŝ = log φ̂`` from ``Ŝ(·, 0) = S_0`` (see module doc).

    With ``S_0 = log ρ0`` this is the log of the Fokker–Planck solution, finite where the
    density itself underflows.
    """
    return _solve_log(problem, S_0, forward=True, killing=killing, progress=progress,
                      name=name, newton_options=newton_options)
