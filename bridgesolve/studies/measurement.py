"""Measuring a level: norms of ``u_h − u`` on a Lagrange space, the weighted score error,
the exact targets at the report time (DOLFINx, imported when measuring)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridgesolve.equations import exact_bridge_cost, exact_bridge_marginals
from bridgesolve.studies.quantities import kl_name


class _Measure:
    """Norms of ``u_h − u`` on a Lagrange space ``W`` of one mesh.

    ``u_h`` is any function interpolated into ``W`` (exactly, when its space is contained in
    ``W``; from another mesh by non-matching interpolation); the target ``u`` is either a
    callable (the exact solution, interpolated) or another function.
    """

    def __init__(self, mesh, degree: int):
        from bridgesolve._dolfinx import fem, ufl

        self.mesh = mesh
        self.comm = mesh.comm
        self.W = fem.functionspace(mesh, ("Lagrange", degree))
        self.uh, self.ue = fem.Function(self.W), fem.Function(self.W)
        dx = ufl.dx(metadata={"quadrature_degree": 2 * degree})
        e = self.uh - self.ue
        self.forms = {"L2": fem.form(e * e * dx), "L1": fem.form(abs(e) * dx)}

    def load(self, u, target) -> None:
        """Interpolate ``u`` (a Function) and ``target`` (a Function or a callable of points
        ``(N, d)``) into ``W``."""
        _interpolate_into(self.uh, u)
        if callable(target) and not hasattr(target, "function_space"):
            d = self.mesh.geometry.dim
            self.ue.interpolate(lambda x: np.asarray(target(np.ascontiguousarray(x[:d].T)),
                                                     dtype=float))
        else:
            _interpolate_into(self.ue, target)

    def norm(self, kind: str) -> float:
        from bridgesolve._dolfinx import MPI, fem

        if kind == "Linf":
            local = np.max(np.abs(self.uh.x.array - self.ue.x.array), initial=0.0)
            return float(self.comm.allreduce(local, MPI.MAX))
        value = self.comm.allreduce(fem.assemble_scalar(self.forms[kind]), MPI.SUM)
        return float(math.sqrt(max(value, 0.0)) if kind == "L2" else value)


def _snapshot(u, representation: str):
    """A :class:`SpaceTimeField` holding the function ``u`` at t = 0 (two equal levels), so
    that :func:`bridgesolve.score.grad_log` applies to one time slice."""
    from bridgesolve.spacetime import SpaceTimeField
    from bridgesolve.timegrid import TimeGrid

    values = np.vstack([u.x.array, u.x.array])
    return SpaceTimeField(u.function_space, TimeGrid.from_times([0.0, 1.0]), values,
                          representation=representation)


def _score_error(u, representation: str, target, density=None, degree: int = 8) -> float:
    r"""``(∫ p |∇log u_h − s|²)^{1/2}`` with :func:`bridgesolve.score.grad_log` (nodal logs,
    floored) for ``∇log u_h``, by quadrature of degree ``degree`` (rank-independent).

    ``target`` is the exact score (callable of points) with ``density`` the exact p, or
    the finest level's function, whose mesh then carries the quadrature and whose own
    density (``u`` or ``exp u``) is the weight.
    """
    from bridgesolve._dolfinx import MPI
    from bridgesolve.score import grad_log

    coarse = grad_log(_snapshot(u, representation))
    if callable(target) and not hasattr(target, "function_space"):
        return coarse.weighted_error(target, 0.0, weight=density, degree=degree)
    fine_field = _snapshot(target, representation)
    pts, wts, vals = grad_log(fine_field).at_quadrature(degree, times=[0.0])
    p = fine_field.evaluate(pts, 0.0)
    if representation == "log":
        p = np.exp(p)
    s = coarse.evaluate(pts, 0.0)
    local = float((wts * p) @ np.sum((vals[0] - s) ** 2, axis=1)) if wts.size else 0.0
    return float(math.sqrt(u.function_space.mesh.comm.allreduce(local, MPI.SUM)))


@dataclass
class Solution:
    """A level's solution at the report time: ``u`` (norms), ``s`` (its log-gradient is
    the score), and scalar outputs (a bridge's costs)."""

    problem: Any
    u: Any  # a dolfinx.fem.Function
    representation: str
    s: Any
    s_representation: str
    scalars: dict
    linear_solver: dict = field(default_factory=dict)  # the solver's record (Krylov counts)


def measure_all(quantities, sol: Solution, target, *, mesh, degree: int, score=None,
                density=None, scalars: dict | None = None) -> dict[str, float | None]:
    """Every quantity of ``sol`` against ``target`` (collective): a callable (exact
    solution, with its ``score``, ``density`` and ``scalars``) or a :class:`Solution`
    (the finest level)."""
    finest = isinstance(target, Solution)
    m = _Measure(mesh, degree)
    m.load(sol.u, target.u if finest else target)
    out: dict[str, float | None] = {}
    for q in quantities:
        if q.norm == "score":
            out[q.name] = _score_error(sol.s, sol.s_representation,
                                       target.s if finest else score, density,
                                       degree=min(8, 2 * degree))
        elif q.norm == "scalar":
            ref = (target.scalars if finest else scalars or {}).get(q.name)
            mine = sol.scalars.get(q.name)
            out[q.name] = None if ref is None or mine is None else abs(mine - ref)
        else:
            out[q.name] = m.norm(q.norm)
    return out


def _interpolate_into(target, u) -> None:
    """``target ← u``; non-matching interpolation when ``u`` lives on another mesh."""
    from bridgesolve._dolfinx import fem

    if u.function_space.mesh is target.function_space.mesh:
        target.interpolate(u)
        return
    mesh = target.function_space.mesh
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    data = fem.create_interpolation_data(target.function_space, u.function_space, cells,
                                         padding=1e-10)
    target.interpolate_nonmatching(u, cells, data)
    target.x.scatter_forward()


def exact_targets(lcfg, process, data, killing):
    """``(values_fn, score_fn, density_fn, scalars)`` at the report time, or None without
    a closed form (:mod:`bridgesolve.equations`)."""
    t = lcfg.report_time
    if lcfg.equation == "bridge":
        marginals = exact_bridge_marginals(process, data, lcfg.final, T=lcfg.T,
                                           killing=killing)
        if marginals is None:
            return None
        law = marginals(t)
        kl = exact_bridge_cost(process, data, lcfg.final, T=lcfg.T, killing=killing)
        return law.pdf, law.score, law.pdf, {"cost_kinetic": kl, "cost_boundary": kl}
    exact = lcfg.exact(process, killing)
    if exact is None:
        return None
    if lcfg.equation in ("fokker-planck", "hjb-forward"):
        law = data.evolve(process, t)
        V = killing or 0.0
        kl = {kl_name(h): 0.0 for h in lcfg.raw.get("convergence", {}).get("generated", [])}
        return exact(t), law.score, (lambda x: math.exp(V * t) * law.pdf(x)), kl
    return exact(t), None, None, {}


#: Mass of a free-space closed form outside the domain above which it is not the domain's
#: solution (an obstacle, or walls that hold the mass): no exact errors are reported then.
EXACT_OUTSIDE = 1e-6


def free_space_note(problem, law_at, times, what: str) -> str | None:
    """None when the free-space closed form ``law_at(t)`` (a density) keeps all but
    :data:`EXACT_OUTSIDE` of its mass inside ``problem``'s domain at every ``t`` of
    ``times``, else a sentence saying where it does not (walls or obstacles then change
    the solution, and the closed form is not this domain's reference)."""
    outside = {float(t): 1.0 - problem.mass_inside(law_at(t), sharp=True) for t in times}
    t = max(outside, key=outside.get)
    if outside[t] <= EXACT_OUTSIDE:
        return None
    return (f"the free-space closed form of this {what} has mass {outside[t]:.3g} outside the "
            f"domain at t = {t:g} (> {EXACT_OUTSIDE:g}: walls or an obstacle hold the mass), "
            f"so it is not this domain's {what}")


def at_time(field, t: float):
    """The field at ``t`` as a Function (linear in time between grid levels)."""
    from bridgesolve._dolfinx import fem

    times = field.times
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    w = float(np.clip((t - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0))
    u = fem.Function(field.space, name=field.name)
    u.x.array[:] = (1.0 - w) * field.values[i] + w * field.values[i + 1]
    return u


__all__ = ["EXACT_OUTSIDE", "Solution", "at_time", "exact_targets", "free_space_note",
           "measure_all"]
