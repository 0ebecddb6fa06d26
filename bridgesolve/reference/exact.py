r"""Reference bundles from the exact formulas: no PDE solve (linear processes only).

Every family of :mod:`bridgesolve.densities` evolves exactly under the linear processes, so
a bundle's fields can be taken from the formulas at the quadrature points of the problem's
mesh: ``p``, ``log p`` and ``∇log p`` of the data pushed through the process, at every
time level. ``metadata["fields"]`` says ``"exact"`` (``"finite-element"`` for solved
bundles). The bundle's own score error (``score_error_estimate``) is then

* the quadrature error for curve mixtures: ``E_p|s - s_coarse|²`` against the rule with half
  the panels (conservative: the rule used is far more accurate);
* zero for the closed forms (Gaussian mixtures, boxes, images, KDEs: round-off).

The exact law lives on all of R^d, the domain does not: the share of mass outside the
domain at each level is recorded (``metadata["info"]["mass_outside"]``) and warned about
above :data:`MASS_OUTSIDE_WARN`. Where the density underflows (discontinuous data at
``t = 0`` outside their support) ``log p`` is floored at :data:`LOG_FLOOR` and the score
set to 0 there.
"""

from __future__ import annotations

import time

import numpy as np

from bridgesolve._validate import BridgesolveInputError, warn
from bridgesolve.densities import CurveMixture, is_probability_density
from bridgesolve.densities.fields import exact_fields

#: Mass outside the domain (at any level) above which the bundle warns.
MASS_OUTSIDE_WARN = 1e-6
#: ``log p`` where ``p`` underflows (0 at ``t = 0`` off the support of boxes and images).
LOG_FLOOR = float(np.log(1e-300))


def _fields(law, pts):
    log_p, score = exact_fields(law, pts)
    bad = ~np.isfinite(log_p)
    if bad.any():
        log_p = np.where(bad, LOG_FLOOR, log_p)
        score = np.where(bad[:, None], 0.0, score)
    return log_p, np.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0)


def _quadrature_score_error(law, pts, wts, dens) -> float:
    """``Σ w p |s - s_coarse|²`` of a curve mixture (this rank's points)."""
    if not isinstance(law, CurveMixture) or not pts.shape[0]:
        return 0.0
    coarse = law.coarse_rule()
    diff = law.score(pts) - coarse.log_pdf_and_score(pts)[1]
    return float((dens * np.sum(diff * diff, axis=1)) @ wts)


def exact_bundle(problem, data, *, degree: int | None = None, root: int | None = 0,
                 info: dict | None = None):
    """The :class:`~bridgesolve.reference.ReferenceBundle` of ``data`` under
    ``problem.process`` from the exact formulas (collective; module doc).

    Args:
        problem: the :class:`~bridgesolve.Problem` whose mesh gives the quadrature points
            and whose grid gives the time levels (nothing is solved on it).
        data: ρ0, any density of :mod:`bridgesolve.densities`.
        degree: quadrature degree of the points (default ``2k + 2`` for P_k).
        root: the rank that receives the bundle (None: every rank).
        info: extra diagnostics for ``metadata["info"]``.
    """
    from bridgesolve._dolfinx import MPI
    from bridgesolve.quadrature import mesh_quadrature
    from bridgesolve.reference.bundle import ReferenceBundle, _gathered, metadata_record

    process = problem.process
    if not process.linear:
        raise BridgesolveInputError(
            f"fields = 'exact': the process {process!r} is not linear (no exact transition); "
            "solve it by finite elements (fields = 'finite-element')")
    if not is_probability_density(data):
        raise BridgesolveInputError(f"fields = 'exact': data = {data!r}: expected a density "
                                    "of bridgesolve.densities")
    t0 = time.perf_counter()
    k = problem.degree
    degree = int(degree or 2 * k + 2)
    pts, wts = mesh_quadrature(problem.mesh, degree)
    times = np.asarray(problem.grid.times, dtype=float)
    L, N, d = times.size, pts.shape[0], pts.shape[1]
    logs, score = np.empty((L, N)), np.empty((L, N, d))
    local_err, local_mass = np.zeros(L), np.zeros(L)
    for n, t in enumerate(times):
        law = data.evolve(process, float(t)) if t > 0 else data
        logs[n], score[n] = _fields(law, pts)
        dens = np.exp(logs[n])
        local_mass[n] = dens @ wts if N else 0.0
        local_err[n] = _quadrature_score_error(law, pts, wts, dens)
    comm = problem.comm
    mass = np.empty(L)
    err = np.empty(L)
    comm.Allreduce(local_mass, mass, op=MPI.SUM)
    comm.Allreduce(local_err, err, op=MPI.SUM)
    outside = 1.0 - mass
    n_worst = int(np.argmax(np.abs(outside)))
    found: list[str] = []
    if outside[n_worst] > MASS_OUTSIDE_WARN:
        warn(f"the exact law has mass {outside[n_worst]:.3g} outside the domain at "
             f"t = {times[n_worst]:.4g} (> {MASS_OUTSIDE_WARN:g}): the bundle stands for R^d "
             "only inside it; enlarge the domain", found, stacklevel=2)
    elif -outside[n_worst] > MASS_OUTSIDE_WARN:
        warn(f"the quadrature points do not resolve the law at t = {times[n_worst]:.4g}: "
             f"its mass comes out {mass[n_worst]:.8g} (> 1 + {MASS_OUTSIDE_WARN:g}); refine "
             "the mesh or raise the quadrature degree where the data are narrow", found,
             stacklevel=2)
    how = ({"method": "quadrature", "weighting": "exact density"}
           if isinstance(data, CurveMixture) else
           {"method": "exact", "weighting": "exact density", "note": "closed form: round-off"})
    extra = {"equation": "fokker-planck", "mass": mass.tolist(),
             "mass_outside": outside.tolist(), "warnings": found,
             "timings": {"total_s": time.perf_counter() - t0}, **(info or {})}
    meta = metadata_record("diffusion", k, L, problem, process, data, degree, extra)
    meta["fields"] = "exact"
    meta["score_error_estimate"] = how
    return _gathered(ReferenceBundle, comm, root, meta, points=pts, weights=wts,
                     density=np.exp(logs), log_density=logs, score=score, times=times,
                     estimate=err)
