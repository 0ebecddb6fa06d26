r"""The marginals of :func:`bridgesolve.bridge.solve_bridge` at the dofs.

Each marginal is kept in the log domain with unit lumped mass (:class:`_Marginal`):

* densities with ``log_pdf`` (every family of :mod:`bridgesolve.densities`) are
  interpolated in the log domain, so that values far below double precision keep their
  logarithm;
* discontinuous ones (box mixtures and images at ``t = 0``: ``discontinuous``) are
  L2-projected as the Fokker–Planck solver projects its initial value
  (:func:`~bridgesolve.pde.fokker_planck.initial_function`: mass-conserving, exact on cells
  cut by the jumps); the projection's undershoots at the jumps are set to zero, and the
  initial error of the marginal the bridge uses (``∫|ρ_h - ρ|`` after clipping and
  normalization, and the raw projection's) is reported in ``projection``
  (``Bridge.info["initial_projection"]``);
* callables and DOLFINx Functions are interpolated; negative nodal values are set to zero
  (counted in ``clipped``, warned about by the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bridgesolve._dolfinx import MPI, fem
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.pde.fokker_planck import initial_function, mass_form
from bridgesolve.pde.stepping import _lump
from bridgesolve.problem import Problem
from bridgesolve.spacetime import SpaceTimeField, as_numpy_callable


@dataclass
class _Marginal:
    """A marginal at the dofs: log-values (``-inf`` where ρ = 0) and values, unit mass in
    the lumped weights; ``projection``: the initial error of a projected marginal."""

    log: np.ndarray
    value: np.ndarray
    mass_given: float
    clipped: int = 0
    projection: dict | None = None


def _lumped_weights(problem: Problem) -> np.ndarray:
    """Lumped mass weights ``m_i`` of this rank's owned dofs."""
    from bridgesolve._dolfinx import dolfinx  # noqa: F401  (fem.petsc is loaded there)

    M = fem.petsc.assemble_matrix(mass_form(problem))
    M.assemble()
    _lump(M)
    diag = M.getDiagonal()
    weights = diag.array.copy()
    diag.destroy()
    M.destroy()
    return weights


def _clip_negative(problem: Problem, value: np.ndarray, n: int) -> int:
    """Set negative values to zero in place; returns how many owned ones there were."""
    negative = value < 0.0
    value[negative] = 0.0
    return int(problem.comm.allreduce(int(negative[:n].sum()), MPI.SUM))


def _projected(problem: Problem, rho, name: str, n: int) -> tuple[np.ndarray, dict]:
    """The L2 projection of a discontinuous density at the dofs (negatives clipped) and its
    report (:func:`~bridgesolve.pde.projection.initial_error`)."""
    report: dict = {}
    u = initial_function(problem, rho, name, label=name, nonnegative=True, report=report)
    value = u.x.array.copy()
    projection = report["initial_projection"]
    projection["clipped"] = _clip_negative(problem, value, n)
    return value, projection


def _used_error(problem: Problem, rho, value: np.ndarray, projection: dict) -> dict:
    """``projection`` with ``l1`` the error of the clipped, normalized marginal the bridge
    uses (``l1_projection``: the raw projection's)."""
    from bridgesolve.densities.box_mass import jump_grid
    from bridgesolve.pde.projection import initial_error

    u = fem.Function(problem.V)
    u.x.array[:] = value
    used = initial_error(problem, u, rho.pdf, edges=jump_grid(rho))
    return {**projection, "l1_projection": projection["l1"], "l1": used["l1"]}


def _marginal(problem: Problem, rho, name: str, weights: np.ndarray) -> _Marginal:
    """``rho`` at the dofs, normalized to unit lumped mass (module doc)."""
    V, dim = problem.V, problem.domain.dim
    u = fem.Function(V)
    clipped, projection = 0, None
    n = weights.size
    if isinstance(rho, SpaceTimeField):
        raise BridgesolveInputError(
            f"{name} is a SpaceTimeField: pass one time level, e.g. field.at(field.times[-1])"
        )
    if not isinstance(rho, fem.Function) and getattr(rho, "dim", dim) != dim:
        raise BridgesolveInputError(f"{name} is {rho.dim}D but the domain is {dim}D")
    if not isinstance(rho, fem.Function) and getattr(rho, "discontinuous", False):
        value, projection = _projected(problem, rho, name, n)
        with np.errstate(divide="ignore"):
            log = np.log(value)
    elif isinstance(rho, fem.Function) or not hasattr(rho, "log_pdf"):
        u.interpolate(rho if isinstance(rho, fem.Function) else as_numpy_callable(rho, dim))
        value = u.x.array.copy()
        if not np.all(np.isfinite(value)):
            raise BridgesolveInputError(f"{name} has non-finite values on the mesh")
        clipped = _clip_negative(problem, value, n)
        with np.errstate(divide="ignore"):
            log = np.log(value)
    else:
        f = rho.log_pdf
        u.interpolate(lambda x: np.asarray(f(np.ascontiguousarray(x[:dim].T)), dtype=float))
        log = u.x.array.copy()
        if np.any(np.isnan(log)) or np.any(log == np.inf):
            raise BridgesolveInputError(f"{name}: log-density has NaN or +inf values on the mesh")
    # Unit lumped mass, computed in the log domain.
    top = problem.comm.allreduce(float(np.max(log[:n], initial=-np.inf)), MPI.MAX)
    if not np.isfinite(top):
        raise BridgesolveInputError(f"{name} vanishes on the whole mesh (no mass in the domain)")
    local = float(weights @ np.exp(log[:n] - top))
    log_mass = top + math.log(problem.comm.allreduce(local, MPI.SUM))
    log = log - log_mass
    value = np.exp(log)
    if projection is not None:
        projection = _used_error(problem, rho, value, projection)
    return _Marginal(log=log, value=value, mass_given=math.exp(log_mass), clipped=clipped,
                     projection=projection)


__all__: list[str] = []
