r"""The log-density of the interpolating sampler, in the log domain (Newton per step).

The sampler ``dX = b dt + √𝔥 g dW̄`` run from ``T`` down to ``t_min`` (``b = f - (1+𝔥)/2 g² s``,
``𝔥 = h²``; see :mod:`bridgesolve.likelihood`) has the law ``q`` with, in reverse time
``τ = T - t``, ``∂_τ q = ∇·(b q) + 𝔥 D Δq``. Its logarithm ``L = log q`` solves the
forward HJB-type equation

.. math::
    \partial_\tau L = \nabla\cdot b + b\cdot\nabla L + 𝔥 D\,(\Delta L + |\nabla L|^2),
    \qquad L(\cdot, T) = \log π ,

whose weak form, with the wall flux ``(b + 𝔥 D ∇L)·n`` (``q (b + 𝔥D∇L)`` is the
probability flux of the reverse-time equation) taken from the solution itself, is

.. math::
    (\partial_\tau L, v) + (b, \nabla v) - (b\cdot\nabla L, v) + 𝔥 D\,(\nabla L, \nabla v)
    - 𝔥 D\,(|\nabla L|^2, v) - \int_{∂Ω} (b + 𝔥 D\nabla L)\cdot n\, v = 0 .

Walls. The domain is a window onto the whole space; with concentrating data the
sampler's flow enters it through the walls (mass comes in from outside in reverse time),
and what comes in is unknown to a bounded domain. The wall flux is taken from the solution
itself (open: nothing imposed) and, on inflow parts (``b·n > 0``), the upwind penalty
``∫ (b·n) (L - L_prev) v`` holds the wall value at its previous level: the energy estimate
of the transport then has no growing boundary term (the open wall alone grows like
``½∫ b·n L²`` and blew up in 2D at large ``|b|``), and the error it makes travels only along
the characteristics that enter through the wall. So ``log q`` is exact (to the
discretization error) at the points whose characteristics stay inside Ω from ``t_min`` to
``T``: make the domain large enough for the data (in the log domain a large domain costs
cells, not accuracy). Measured on the 1D Gaussian model (β = 2, T = 2, v₀ = 1/4, ε = 0.2,
P2, h = 0.08, 400 steps), whose characteristics from |x| < 3 reach |x| = 10.3 at T: on
[-12, 12] the error of ``log q`` for |x| < 3 is 2.4e-4 (𝔥 = 0), 7.9e-4 (𝔥 = 0.01), 5.5e-3
(𝔥 = 1), the time-discretization error (second order); on [-8, 8] it is 18 there. A
reflecting wall instead pins ``∂_n L = -b·n/(𝔥D)``, a layer no mesh resolves (errors 2e4
at 𝔥 = 0, 14 at 𝔥 = 0.01 inside |x| < 3 on [-8, 8]). With 𝔥 = 0 the equation is the
linear transport of ``log q`` (one Newton iteration per step): the O(nt) route to every
level of ``q_0``.
Unlike the linear Fokker–Planck solve of ``q``, ``L`` has no round-off negatives and no
underflow: ``log q`` is finite and accurate wherever data lie.

Stabilization. Plain Galerkin transport of a steep ``L`` (a sharp data law near t = 0,
where ``|b|`` reaches 30 at the walls) oscillated near a corner and blew up (``L`` = 770 on
96² P1 after 200 steps of the 2D benchmark of issue 15); the consistent SUPG term
``-Σ_K ∫ τ (b·∇v) R(L)``, ``R`` the strong residual of the step (``ΔL`` cell by cell),
``τ = ½ (1 + |∫b|²/h_K²)^{-1/2}``, removes that (max ``L`` -1.9 there) and leaves the 1D
errors unchanged (Gaussian model: 2.43e-4 at 𝔥 = 0 and 5.48e-3 at 𝔥 = 1, as without).

The θ-scheme (the problem's θ) is applied with the step integrals ``∫k``, ``∫D`` and the
score interpolated (vector Lagrange, the problem's degree) at the step midpoint; the form
is compiled once, and each step is a Newton solve (PETSc SNES, LU), started from the level
before. Steps where Newton fails are halved (up to 8 times).
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from bridgesolve._dolfinx import MPI, PETSc, fem, ufl
from bridgesolve._validate import BridgesolveInputError, deferred_checks
from bridgesolve.pde.krylov import newton_options as newton_krylov
from bridgesolve.problem import Problem
from bridgesolve.solvers import options_prefix
from bridgesolve.spacetime import SpaceTimeField

_NEWTON = {
    "snes_type": "newtonls",
    "snes_linesearch_type": "basic",
    "snes_rtol": 1e-11,
    "snes_atol": 1e-11,
    "snes_stol": 1e-14,
    # Off: PETSc >= 3.22 reads -1 as "the default" (1e4), so "off" is a huge value.
    "snes_divergence_tolerance": 1e300,
    "snes_max_it": 50,
}


class GeneratedLogDensity:
    """The reverse-time Newton evolution of ``L = log q^𝔥`` (compiled once, reusable).

    Args:
        problem: domain, process, time grid (from ``t_min``), discretization; the
            boundary must be ``"reflecting"``.
        score: ``s(x (N, d), t) -> (N, d)``.
        hbar: the paper's 𝔥 = h² ≥ 0 (noise ``√𝔥 g``, drift ``f - (1+𝔥)/2 g² s``).
        newton_options: SNES options overriding the defaults.
        max_halvings: step halvings on Newton failure.
        supg: streamline-upwind Petrov–Galerkin stabilization (see the module doc).
    """

    def __init__(self, problem: Problem, score, hbar: float, *, newton_options=None,
                 max_halvings: int = 8, supg: bool = True):
        if problem.boundary != "reflecting":
            raise BridgesolveInputError(
                f"boundary = {problem.boundary!r}: the log-density solver needs 'reflecting' "
                "walls (an absorbing wall makes log q = -inf there)")
        t0 = time.perf_counter()
        from bridgesolve.sampling import user_score

        score = user_score(score, problem.domain.dim)
        self.problem, self.score, self.hbar = problem, score, float(hbar)
        self._score_nodes = deferred_checks(score)  # checked collectively at each interpolation
        self.max_halvings = max_halvings
        V, mesh, proc = problem.V, problem.mesh, problem.process
        d = problem.domain.dim
        self.d = d
        self.L_prev = fem.Function(V, name="log_q")
        self.L = fem.Function(V, name="log_q")
        W = fem.functionspace(mesh, ("Lagrange", problem.degree, (d,)))
        self.s_fun = fem.Function(W, name="score")
        self.R_D, self.R_k = fem.Constant(mesh, 0.0), fem.Constant(mesh, 0.0)
        R_D, R_k = self.R_D, self.R_k
        v = ufl.TestFunction(V)
        x = ufl.SpatialCoordinate(mesh)
        has_drift = not (proc.linear and proc.drift_rate_integral(0.0, 1.0) == 0.0)
        f0 = proc.drift_shape_ufl(x) if has_drift else ufl.as_vector([0.0] * d)
        if d == 1 and f0.ufl_shape == ():
            f0 = ufl.as_vector([f0])
        hb = self.hbar
        B = R_k * f0 - (1.0 + hb) * R_D * self.s_fun  # ∫_step b
        n = ufl.FacetNormal(mesh)

        Bn = ufl.dot(B, n)
        inflow = ufl.conditional(ufl.gt(Bn, 0.0), Bn, 0.0)  # c = -b enters Ω there

        def G(w):
            flux = ufl.dot(B + hb * R_D * ufl.grad(w), n)
            g = (ufl.inner(B, ufl.grad(v)) - ufl.inner(B, ufl.grad(w)) * v) * ufl.dx
            if hb > 0:
                g += hb * R_D * (ufl.inner(ufl.grad(w), ufl.grad(v))
                                 - ufl.inner(ufl.grad(w), ufl.grad(w)) * v) * ufl.dx
            # open walls: the flux of the solution itself, plus the upwind penalty towards
            # the previous level on inflow parts (see the module doc)
            return g - flux * v * ufl.ds + inflow * (w - self.L_prev) * v * ufl.ds

        theta = problem.theta
        F = (self.L - self.L_prev) * v * ufl.dx + theta * G(self.L) + (1 - theta) * G(
            self.L_prev)
        if supg:
            # streamline-upwind Petrov–Galerkin: the strong residual of the step tested
            # with -τ (B·∇v), τ = ½ (1 + |B|²/h_K²)^{-1/2} (B is step-integrated)
            def rate(w):
                r = ufl.div(B) + ufl.inner(B, ufl.grad(w))
                if hb > 0:  # ΔL cell by cell (0 for P1)
                    r += hb * R_D * (ufl.inner(ufl.grad(w), ufl.grad(w))
                                     + ufl.div(ufl.grad(w)))
                return r

            hK = ufl.CellDiameter(mesh)
            tau = 0.5 / ufl.sqrt(1.0 + ufl.inner(B, B) / (hK * hK))
            res = self.L - self.L_prev - theta * rate(self.L) - (1 - theta) * rate(self.L_prev)
            F -= tau * ufl.inner(B, ufl.grad(v)) * res * ufl.dx  # upwind: v + τ c·∇v, c = -B
        opts = {**_NEWTON, **newton_krylov(problem.petsc_options), **(newton_options or {})}
        self.nl = fem.petsc.NonlinearProblem(F, self.L, petsc_options_prefix=options_prefix("gen"),
                                             petsc_options=opts)
        self.setup_s = time.perf_counter() - t0

    def _set_score(self, t: float) -> None:
        d = self.d
        s_nodes = self._score_nodes
        self.s_fun.interpolate(lambda x: np.asarray(
            s_nodes(np.ascontiguousarray(x[:d].T), t), dtype=float).reshape(-1, d).T)
        if s_nodes is not self.score:
            s_nodes.raise_pending(self.problem.comm)  # the same error on every rank

    def _advance(self, ta: float, tb: float, depth: int) -> tuple[int, int]:
        """One step from ``ta`` down to ``tb < ta``; ``L_prev`` holds level ``ta``."""
        proc = self.problem.process
        self.R_D.value = proc.diffusion_integral(tb, ta)
        self.R_k.value = proc.drift_rate_integral(tb, ta)
        if self.problem.comm.size > 1:
            PETSc.garbage_cleanup(self.problem.comm)
        self._set_score(0.5 * (ta + tb))
        self.L.x.array[:] = self.L_prev.x.array
        self.nl.solve()
        snes = self.nl.solver
        its = snes.getIterationNumber()
        ok = snes.getConvergedReason() > 0 and bool(np.all(np.isfinite(self.L.x.array)))
        if self.problem.comm.allreduce(int(ok), op=MPI.MIN):
            self.L_prev.x.array[:] = self.L.x.array
            return its, 1
        if depth == self.max_halvings:
            raise RuntimeError(
                f"log q: Newton did not converge for t in [{tb:.6g}, {ta:.6g}] after "
                f"{self.max_halvings} halvings (SNES reason {snes.getConvergedReason()})")
        mid = 0.5 * (ta + tb)
        i1, s1 = self._advance(ta, mid, depth + 1)
        i2, s2 = self._advance(mid, tb, depth + 1)
        return its + i1 + i2, s1 + s2

    def run(self, log_prior: np.ndarray, *, progress: bool = True, name: str = "log_q"
            ) -> SpaceTimeField:
        """From the nodal ``log π`` at ``T`` down to ``t_min``: every level, log representation."""
        t0 = time.perf_counter()
        times = self.problem.grid.times
        N = times.size - 1
        values = np.empty((N + 1, log_prior.size))
        values[N] = log_prior
        self.L_prev.x.array[:] = log_prior
        its = np.zeros(N, dtype=int)
        subs = np.zeros(N, dtype=int)
        bar = tqdm(total=N, desc=f"log q 𝔥={self.hbar:g}", unit="step", leave=False,
                   disable=not progress or self.problem.comm.rank != 0)
        try:
            for m in range(N - 1, -1, -1):
                its[m], subs[m] = self._advance(float(times[m + 1]), float(times[m]), 0)
                values[m] = self.L_prev.x.array
                bar.update()
        finally:
            bar.close()
        info = {"equation": "sampler log-density (HJB-type)", "hbar": self.hbar,
                "newton_iterations": its, "substeps": subs,
                "timings": {"setup_s": self.setup_s, "stepping_s": time.perf_counter() - t0}}
        return SpaceTimeField(self.problem.V, self.problem.grid, values, name=name,
                              representation="log", info=info)

    def close(self) -> None:
        """Free the Newton solver (collectively)."""
        self.nl = None


__all__ = ["GeneratedLogDensity"]
