"""The score error of a reference bundle itself (``ReferenceBundle.score_error_estimate``).

What it is, in which units and how each method obtains it: the module docstring of
:mod:`bridgesolve.reference` (the schema). This module computes it when a bundle is built
from a Fokker–Planck solution: by the closed form when the data are a Gaussian mixture under a
linear process, else by a P_{k+1} solve on the same mesh. Every function is collective and
returns rank-independent values.
"""

from __future__ import annotations

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities import GaussianMixture, is_probability_density
from bridgesolve.densities.fields import exact_fields
from bridgesolve.process import process_from_description

METHODS = ("auto", "closed-form", "higher-degree", "none")

# "auto" compares with a P_{k+1} solve on the same mesh only up to this many dofs (a few
# seconds); beyond, pass error_estimate="higher-degree" explicitly.
AUTO_HIGHER_DEGREE_MAX_DOFS = 100_000


def score_error_estimate(method, p_field, problem, data, meta, degree, pts, wts, dens,
                          svals):
    """``(estimate (nt + 1,) or None, metadata record)``, rank-independent (collective)."""
    if method not in METHODS:
        raise BridgesolveInputError(f"error_estimate = {method!r}: expected one of "
                                    f"{', '.join(map(repr, METHODS))}")
    if method == "none":
        return None, {"method": None, "reason": "not requested (error_estimate='none')"}
    closed = _closed_form_obstacle(p_field, problem, data, meta)
    if method == "closed-form" or (method == "auto" and closed is None):
        if closed is not None:
            raise BridgesolveInputError(f"error_estimate = 'closed-form': {closed}")
        process = (problem.process if problem is not None
                   else process_from_description(meta["process"]))
        est = _closed_form_estimate(p_field.comm, p_field.times, process, data, pts, wts, svals)
        return est, {"method": "closed-form", "weighting": "exact density"}
    higher = _higher_degree_obstacle(p_field, problem, data, auto=method == "auto")
    if higher is not None:
        if method == "higher-degree":
            raise BridgesolveInputError(f"error_estimate = 'higher-degree': {higher}")
        return None, {"method": None, "reason": f"no closed form ({closed}); no "
                      f"higher-degree solve ({higher})"}
    return _higher_degree_estimate(p_field, problem, data, degree, pts, wts, dens, svals)


def _closed_form_obstacle(p_field, problem, data, meta) -> str | None:
    """Why the closed form does not apply (None when it does)."""
    process = getattr(problem, "process", None)
    if process is None and meta.get("process"):
        process = process_from_description(meta["process"])
    if not is_probability_density(data):
        return f"the data {data!r} are not an exact density of bridgesolve.densities"
    if process is None or not process.linear:
        return f"the process {process!r} is not linear"
    if "killing" in getattr(p_field, "info", {}):
        return "the solve had killing/creation"
    if getattr(problem, "boundary", "reflecting") != "reflecting":
        return "the walls are absorbing"
    return None


def _closed_form_estimate(comm, times, process, data, pts, wts, svals) -> np.ndarray:
    """``Σ_i w_i p(x_i, t_n) |s_ref - ∇log p|²`` with ``p`` the data pushed exactly through
    the linear process."""
    local = np.zeros(times.size)
    if pts.shape[0]:
        for n, t in enumerate(times):
            law = data.evolve(process, float(t)) if t > 0 else data
            log_p, score = exact_fields(law, pts)
            local[n] = (np.exp(log_p) * _sqnorm(svals[n] - score)) @ wts
    return _allsum(comm, local)


def _sqnorm(v: np.ndarray) -> np.ndarray:
    """``|v|²`` over the last axis, a column at a time (for d <= 3 this is several times
    faster than ``np.sum(v * v, axis=-1)``)."""
    out = v[..., 0] * v[..., 0]
    for j in range(1, v.shape[-1]):
        out += v[..., j] * v[..., j]
    return out


def _higher_degree_obstacle(p_field, problem, data, *, auto: bool) -> str | None:
    """Why the P_{k+1} comparison is not possible or not cheap (None when it is)."""
    if problem is None:
        return "no problem given"
    if data is None:
        return "no initial density given"
    if "killing" in getattr(p_field, "info", {}):
        return "the solve had killing/creation (not passed to the bundle)"
    if auto:
        k, d = problem.degree, problem.domain.dim
        dofs = problem.ndofs * ((k + 1) / k) ** d
        if dofs > AUTO_HIGHER_DEGREE_MAX_DOFS:
            return (f"about {dofs:.3g} dofs of P{k + 1} > {AUTO_HIGHER_DEGREE_MAX_DOFS:g}: "
                    "pass error_estimate='higher-degree' to pay for it")
    return None


def _higher_degree_estimate(p_field, problem, data, degree, pts, wts, dens, svals):
    """``Σ_i w_i p_h |s_k - s_{k+1}|²`` with ``s_{k+1}`` the score of the same problem
    solved with elements of degree k + 1 on the same mesh (collective; the quadrature
    points are the bundle's, in the same order, so no point location is needed)."""
    import warnings

    from bridgesolve.pde.fokker_planck import solve_fokker_planck
    from bridgesolve.problem import Problem
    from bridgesolve.score import grad_log

    scheme = problem.theta if problem.scheme.startswith("theta=") else problem.scheme
    finer = Problem(problem.domain, problem.process, problem.grid, degree=problem.degree + 1,
                    boundary=problem.boundary, scheme=scheme)
    with warnings.catch_warnings():  # the bundle's own solve has warned about the same data
        warnings.simplefilter("ignore", RuntimeWarning)
        p_fine = solve_fokker_planck(finer, data, progress=False, check_mass=False)
    q_pts, _, s_fine = grad_log(p_fine).at_quadrature(degree)
    if q_pts.shape != pts.shape or not np.allclose(q_pts, pts, rtol=0, atol=1e-12):
        raise RuntimeError("higher-degree estimate: quadrature points differ")  # a bug
    local = np.zeros(p_field.times.size)
    if pts.shape[0]:
        local = (np.maximum(dens, 0.0) * _sqnorm(svals - s_fine)) @ wts
    est = _allsum(p_field.comm, local)
    return est, {"method": "higher-degree", "weighting": "bundle density",
                 "element": f"P{problem.degree + 1}", "ndofs": int(finer.ndofs),
                 "note": "spatial error only (the same time grid)"}


def bridge_score_error_estimate(method, bridge, rho0, rho1, pts, wts, svals):
    """``(estimate or None, metadata record)`` of a bridge bundle: the closed form of the
    Schrödinger bridge between single Gaussians under a Brownian reference (collective)."""
    from bridgesolve.densities import gaussian_bridge
    from bridgesolve.process import Brownian

    if method not in METHODS:
        raise BridgesolveInputError(f"error_estimate = {method!r}: expected one of "
                                    f"{', '.join(map(repr, METHODS))}")
    if method == "none":
        return None, {"method": None, "reason": "not requested (error_estimate='none')"}
    if method == "higher-degree":
        raise BridgesolveInputError("error_estimate = 'higher-degree' for a bridge: a second "
                                    "bridge solve is not cheap (use 'auto' or 'closed-form')")
    problem = bridge.problem
    times = np.asarray(bridge.log_phi.times, dtype=float)
    why = None
    if not all(isinstance(m, GaussianMixture) and m.n_components == 1 for m in (rho0, rho1)):
        why = "ρ0 and ρ1 (data=, final=) are not both single Gaussians"
    elif not isinstance(problem.process, Brownian):
        why = f"the reference {problem.process!r} is not Brownian"
    elif getattr(bridge, "killing", None) is not None:
        why = "the bridge has killing/creation"
    elif problem.boundary != "reflecting" or times[0] != 0.0:
        why = "absorbing walls or a time grid that does not start at 0"
    if why is not None:
        if method != "auto":
            raise BridgesolveInputError(f"error_estimate = {method!r} for a bridge: {why}")
        return None, {"method": None, "reason": f"no closed form for this bridge ({why}); "
                      "a second bridge solve is not cheap"}
    marginal = gaussian_bridge(rho0.means[0], rho0.covs[0], rho1.means[0], rho1.covs[0],
                               problem.process.sigma, float(times[-1]))
    local = np.zeros(times.size)
    if pts.shape[0]:
        for n, t in enumerate(times):
            log_p, score = exact_fields(marginal(float(t)), pts)
            local[n] = (np.exp(log_p) * _sqnorm(svals[n] - score)) @ wts
    return _allsum(bridge.log_phi.comm, local), {"method": "closed-form",
                                                 "weighting": "exact density"}


def _allsum(comm, local: np.ndarray) -> np.ndarray:
    if comm.size == 1:
        return local
    from bridgesolve._dolfinx import MPI

    total = np.empty_like(local)
    comm.Allreduce(local, total, op=MPI.SUM)
    return total


__all__ = ["AUTO_HIGHER_DEGREE_MAX_DOFS", "METHODS", "bridge_score_error_estimate",
           "score_error_estimate"]
