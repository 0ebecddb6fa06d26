"""The HJB θ-steps linearized about given levels: one linear solve per step instead of
Newton, converging to the same discrete solution (the bridge's tilted mode,
:mod:`bridgesolve.bridge.sweeps`)."""

from __future__ import annotations

import numpy as np

from bridgesolve import storage
from bridgesolve._dolfinx import fem, ufl
from bridgesolve.pde.hjb import LogEvolution
from bridgesolve.pde.krylov import KrylovCounter, make_ksp
from bridgesolve.pde.krylov import newton_options as newton_krylov


class LogLinearization:
    r"""The θ-steps of a :class:`LogEvolution` linearized about given levels ``S̄``.

    A step solves ``F(S^new, S^prev) = M(S^new - S^prev) + θ G(S^new) + (1-θ) G(S^prev) = 0``
    (Newton). About ``S̄`` it becomes the *linear* recurrence for ``δ = S - S̄``

    .. math::
        A_n\,\delta^{new} = -r_n - B_n\,\delta^{prev}, \qquad
        r_n = F(\bar S^{new}, \bar S^{prev}),\quad
        A_n = M + θ G'(\bar S^{new}), \quad B_n = -M + (1-θ) G'(\bar S^{prev}),

    a transport–diffusion step with the tilted drift ``f + g²∇S̄`` (forward:
    ``f - g²∇Ŝ̄``): one linear solve per step instead of Newton. The residuals
    ``r_n`` are exact, so wherever the recurrence returns ``δ = 0`` the levels solve the
    nonlinear θ-scheme: re-linearizing about the last result (:meth:`relinearize`, one
    vector per level) converges to the same discrete solution as Newton. The matrices only
    steer that convergence, never its limit, so they are built once and may be shared:
    on grids whose steps all have the same integrals (and no time-dependent killing), one
    factorization of ``M + θ G'(S̄)`` serves ``group`` consecutive steps (taken at their
    middle level), and ``B`` is applied as ``-M + (1-θ)/θ (A - M)``.

    Args:
        evolution: the nonlinear evolution (its forms, constants and direction).
        group: steps per shared factorization on uniform grids (1: one per step).
    """

    def __init__(self, evolution: LogEvolution, *, group: int = 1):
        self.evolution = evolution
        problem = evolution.problem
        self.problem = problem
        du = ufl.TrialFunction(problem.V)
        self.options = newton_krylov(problem.petsc_options, rtol=1e-8)
        self.steps = evolution.steps()
        self.theta = problem.theta
        self.uniform = evolution.V_update is None and self._same_integrals()
        if self.uniform:
            evolution.set_step(self.steps[0][2], self.steps[0][3])
            self.G = fem.form(evolution.operator_ufl)
            self.dG = fem.form(ufl.derivative(evolution.operator_ufl, evolution.S, du))
            self.M = fem.petsc.assemble_matrix(fem.form(evolution.mass_ufl))
            self.M.assemble()
            self.group = max(1, int(group))
        else:
            F = evolution.residual_ufl
            self.F = fem.form(F)
            self.dF_new = fem.form(ufl.derivative(F, evolution.S, du))
            self.dF_prev = fem.form(ufl.derivative(F, evolution.S_prev, du))
            self.M, self.group = None, 1
        self.residuals: list[np.ndarray] = []
        self.solvers: list = []  # per step: (KSP of A, A, B or None)
        self.levels: np.ndarray | None = None
        self.factorizations = 0
        self.krylov = KrylovCounter()
        self._b = self._x = self._y = None

    def _same_integrals(self) -> bool:
        proc = self.problem.process
        first = None
        for _, _, ta, tb in self.steps:
            lo, hi = min(ta, tb), max(ta, tb)
            r = np.array([proc.diffusion_integral(lo, hi), proc.drift_rate_integral(lo, hi),
                          hi - lo])
            if first is None:
                first = r
            elif np.any(np.abs(r - first) > 1e-12 * np.maximum(np.abs(first), 1e-300)):
                return False
        return True

    def _vector(self, form) -> np.ndarray:
        from bridgesolve._dolfinx import PETSc

        vec = fem.petsc.assemble_vector(form)
        vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        out = vec.array.copy()
        vec.destroy()
        return out

    def _matrix(self, form):
        mat = fem.petsc.assemble_matrix(form)
        mat.assemble()
        return mat

    def _solver(self, A, key: str):
        ksp = make_ksp(A, self.options, f"bs_lin_{id(self)}_{key}_", symmetric=False)
        self.krylov.built(ksp)
        self.factorizations += 1
        return ksp

    def solver_info(self) -> dict:
        return self.krylov.info(self.problem.petsc_options)

    def relinearize(self, levels: np.ndarray, *, jacobian: bool) -> None:
        """Linearize about ``levels`` (``(nt + 1, n_local)``, ghosts included): residuals
        always, the step matrices and their factorizations when ``jacobian`` (or none yet)."""
        ev = self.evolution
        jacobian = jacobian or not self.solvers
        if jacobian:
            self._free()
        n = self.problem.V.dofmap.index_map.size_local
        if self.uniform:
            g = []
            for k in range(levels.shape[0]):
                ev.S.x.array[:] = levels[k]
                g.append(self._vector(self.G))
            if self._y is None:
                self._y, _ = self.M.createVecs()
            residuals = []
            for prev, new, _, _ in self.steps:
                self._y.array[:] = levels[new][:n] - levels[prev][:n]
                Md = self.M * self._y
                residuals.append(Md.array + self.theta * g[new] + (1 - self.theta) * g[prev])
                Md.destroy()
            if jacobian:
                for start in range(0, len(self.steps), self.group):
                    block = self.steps[start:start + self.group]
                    mid = block[len(block) // 2][1]
                    ev.S.x.array[:] = levels[mid]
                    A = self._matrix(self.dG)
                    A.scale(self.theta)
                    A.axpy(1.0, self.M)
                    ksp = self._solver(A, str(start))
                    self.solvers += [(ksp, A, None)] * len(block)
        else:
            residuals = []
            for k, (prev, new, ta, tb) in enumerate(self.steps):
                ev.set_step(ta, tb)
                ev.S_prev.x.array[:] = levels[prev]
                ev.S.x.array[:] = levels[new]
                residuals.append(self._vector(self.F))
                if jacobian:
                    A, B = self._matrix(self.dF_new), self._matrix(self.dF_prev)
                    self.solvers.append((self._solver(A, str(k)), A, B))
        self.residuals = residuals
        self.levels = storage.copy(levels, name=f"{ev.name}_linearized")
        if self._b is None:
            self._b, self._x = self.solvers[0][1].createVecs()

    def _apply_B(self, A, B, u, out) -> None:
        """``out = B u``; shared factorizations: ``B = -M + (1-θ)/θ (A - M)``."""
        if B is not None:
            B.mult(u, out)
            return
        A.mult(u, out)
        c = (1.0 - self.theta) / self.theta
        Mu = self.M * u
        out.array[:] = c * out.array - (1.0 + c) * Mu.array
        Mu.destroy()

    def run(self, start: np.ndarray) -> np.ndarray:
        """The linearized evolution from ``start`` (ghosts included) at the first level;
        returns ``S̄ + δ`` at every level."""
        S_bar = self.levels
        n = self.problem.V.dofmap.index_map.size_local
        out = storage.like(S_bar, name=self.evolution.name)
        first = self.steps[0][0]
        out[first] = start
        delta = self.evolution.S_prev
        delta.x.array[:] = start - S_bar[first]
        b, x = self._b, self._x
        for (_prev, new, _, _), r, (ksp, A, B) in zip(self.steps, self.residuals,
                                                     self.solvers, strict=True):
            self._apply_B(A, B, delta.x.petsc_vec, b)
            b.array[:] = -r[:n] - b.array
            ksp.solve(b, x)
            self.krylov.add(ksp, f"{self.evolution.name}: linearized step to level {new}")
            delta.x.array[:n] = x.array
            delta.x.scatter_forward()
            out[new] = S_bar[new] + delta.x.array
        return out

    def _free(self) -> None:
        seen = set()
        for ksp, A, B in self.solvers:
            if id(ksp) in seen:
                continue
            seen.add(id(ksp))
            ksp.destroy()
            A.destroy()
            if B is not None:
                B.destroy()
        self.solvers = []

    def close(self) -> None:
        """Free the step matrices and solvers (collectively, at the same point on every
        rank)."""
        self._free()
        for obj in (self._b, self._x, self._y, self.M):
            if obj is not None:
                obj.destroy()
        self._b = self._x = self._y = self.M = None


__all__ = ["LogLinearization"]
