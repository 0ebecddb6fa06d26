"""Effective potential ``U``, curvatures, speciation and bimodality times on the mesh, and the
(μ, σ) phase diagram of the symmetric two-Gaussian data; re-exported by
:mod:`bridgesolve.thermo`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bridgesolve._validate import BridgesolveInputError, positive_int
from bridgesolve.process import OU, Process
from bridgesolve.thermo.closed import (
    UNSTABLE_SIGMA,
    SymmetricTwoGaussianOU,
    no_breaking_boundary,
    speciation_time_closed,
)
from bridgesolve.thermo.mesh import LOG_FLOOR, _log_nodal, _process_of


# =========================================================================================
# Effective potential, speciation and bimodality
# =========================================================================================
def _linear_process(process: Process) -> Process:
    if not isinstance(process, Process):
        raise BridgesolveInputError(f"process = {process!r}: expected a bridgesolve process")
    if not process.linear:
        raise BridgesolveInputError(
            f"process {process!r}: the effective potential needs a linear drift "
            "f = -k(t)(x - c) (a gradient); custom drifts have none in general")
    return process


def effective_potential(p, t: float, *, process: Process | None = None, x=None,
                        floor: float = LOG_FLOOR):
    r"""``U(x, t) = -k(t)|x - c|²/2 - g(t)² \log p_t(x)``: the reverse drift is ``-∇U``.

    For the paper's OU (``k = 1``, ``g² = 2``) this is ``-x²/2 - 2 \log p_t``.

    Args:
        p: a density :class:`~bridgesolve.SpaceTimeField` (linear or log).
        t: a grid time.
        process: the linear reference process.
        x: points ``(N, d)``: return ``U`` there (collective; NaN outside the mesh). Without
            it a DOLFINx Function of ``p``'s space holds the nodal ``U``.
        floor: relative floor of nodal densities before the logarithm.
    """
    process = _linear_process(_process_of(p, process))
    k, g2 = float(process.drift_rate(t)), 2.0 * float(process.diffusion(t))
    c = float(getattr(process, "center", 0.0))
    if x is not None:
        from bridgesolve._validate import points

        pts = points("x", x, p.mesh.geometry.dim)
        if p.representation == "log":
            logp = p.evaluate(pts, t)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                logp = np.log(np.maximum(p.evaluate(pts, t), 1e-300))
        return -0.5 * k * np.sum((pts - c) ** 2, axis=1) - g2 * logp
    from bridgesolve._dolfinx import fem

    n = p.grid.index(t)
    logs = _log_nodal(p, np.array([n]), floor)[0]
    coords = p.space.tabulate_dof_coordinates()[:, : p.mesh.geometry.dim]
    U = fem.Function(p.space, name="U")
    U.x.array[:] = -0.5 * k * np.sum((coords - c) ** 2, axis=1) - g2 * logs
    return U


def _monomials(dim: int, degree: int) -> list[tuple[int, ...]]:
    from itertools import product

    return [e for e in product(range(degree + 1), repeat=dim) if sum(e) <= degree]


def log_density_curvature(p, *, x=None, direction=None, nodes: int | None = None,
                          floor: float = LOG_FLOOR) -> np.ndarray:
    r"""``e·∇² \log p_t(x)\,e`` at every level (rank-independent).

    A total-degree-4 polynomial is fitted by least squares to the (floored) nodal
    logarithms of the ``nodes`` owned dofs nearest ``x`` (default twice the number
    of monomials plus one, all ties included), and its Hessian at ``x`` is read off: accurate to
    the nodal error of ``p_h`` over the fit radius squared plus ``O(r⁴)``, with no
    second derivatives of the piecewise polynomial (which jump across facets).

    Args:
        p: a density field.
        x: the point (default the origin).
        direction: a vector ``e`` (normalized; default the first axis).
        nodes: how many nearest nodes to fit.
    """
    dim = p.mesh.geometry.dim
    x0 = np.zeros(dim) if x is None else np.asarray(x, dtype=float).reshape(dim)
    e = np.eye(dim)[0] if direction is None else np.asarray(direction, float).reshape(dim)
    e = e / np.linalg.norm(e)
    mons = _monomials(dim, 4)
    m = positive_int("nodes", nodes) if nodes is not None else 2 * len(mons) + 1
    n_owned = p.space.dofmap.index_map.size_local
    coords = p.space.tabulate_dof_coordinates()[:n_owned, :dim]
    dist = np.linalg.norm(coords - x0, axis=1)
    order = np.argsort(dist, kind="stable")[: 2 * m]
    logs = _log_nodal(p, np.arange(len(p)), floor)[:, :n_owned][:, order]
    gathered = p.comm.allgather((coords[order], dist[order], logs))
    C = np.concatenate([g[0] for g in gathered])
    R = np.concatenate([g[1] for g in gathered])
    Lv = np.concatenate([g[2] for g in gathered], axis=1)
    # the same selection and ordering on every rank: sort by distance, then coordinates
    keys = np.lexsort((*C.T[::-1], np.round(R, 12)))
    C, R, Lv = C[keys], R[keys], Lv[:, keys]
    if C.shape[0] < len(mons):
        raise BridgesolveInputError(
            f"log_density_curvature: only {C.shape[0]} nodes, need {len(mons)}")
    r = R[min(m, R.size) - 1]
    sel = R <= r * (1 + 1e-9) + 1e-14
    Y = (C[sel] - x0) / r
    A = np.stack([np.prod(Y ** np.array(mon), axis=1) for mon in mons], axis=1)
    coef = np.linalg.lstsq(A, Lv[:, sel].T, rcond=None)[0]  # (n_mon, levels)
    out = np.zeros(len(p))
    for i, mon in enumerate(mons):
        if sum(mon) != 2:
            continue
        idx = [j for j, a in enumerate(mon) for _ in range(a)]
        # y_i y_j (i ≠ j) and y_i² both contribute 2 c e_i e_j to e·H·e
        out += coef[i] * 2.0 * e[idx[0]] * e[idx[1]]
    return out / (r * r)


def potential_curvature(p, *, process: Process | None = None, x=None, direction=None,
                        nodes: int | None = None) -> np.ndarray:
    """``e·∇²U(x, t)\\,e = -k(t) - g(t)² e·∇²\\log p_t(x)\\,e`` at every level."""
    process = _linear_process(_process_of(p, process))
    t = p.times
    k = np.array([float(process.drift_rate(s)) for s in t])
    g2 = np.array([2.0 * float(process.diffusion(s)) for s in t])
    return -k - g2 * log_density_curvature(p, x=x, direction=direction, nodes=nodes)


def sign_change_time(times: np.ndarray, values: np.ndarray) -> float:
    """The latest time where ``values`` changes sign (the first the reverse dynamics meets),
    by root-finding on the cubic through the four levels around the bracketing pair
    (linear at the ends of the grid); NaN when the sign never changes."""
    from scipy.optimize import brentq

    t, y = np.asarray(times, float), np.asarray(values, float)
    idx = np.flatnonzero(np.sign(y[:-1]) * np.sign(y[1:]) < 0)
    exact = np.flatnonzero(y == 0.0)
    if idx.size == 0:
        return float(t[exact[-1]]) if exact.size else float("nan")
    n = int(idx[-1])
    lo, hi = max(0, n - 1), min(t.size, n + 3)
    if hi - lo < 4:
        return float(t[n] - y[n] * (t[n + 1] - t[n]) / (y[n + 1] - y[n]))
    coef = np.polyfit(t[lo:hi] - t[n], y[lo:hi], 3)
    return float(t[n] + brentq(lambda s: np.polyval(coef, s), 0.0, t[n + 1] - t[n]))


def speciation_time(p, *, process: Process | None = None, x=None, direction=None,
                    nodes: int | None = None) -> float:
    r"""The time ``t_s`` where ``∂²U/∂e²`` at ``x`` changes sign (one well ↔ two wells).

    Root-found between the grid levels (cubic interpolation of the curvature in t); the
    latest crossing if several; NaN if none (no symmetry breaking on the grid). For the
    symmetric two-Gaussian OU data: ``½ \log(μ² + \sqrt{(1 - σ²)² + μ⁴})``.
    """
    return sign_change_time(p.times, potential_curvature(
        p, process=process, x=x, direction=direction, nodes=nodes))


def bimodality_time(p, *, x=None, direction=None, nodes: int | None = None) -> float:
    r"""The time where ``∂² \log p_t/∂e²`` at ``x`` changes sign (``p_t`` turns bimodal
    there); ``½ \log(μ² + 1 - σ²)`` for the symmetric two-Gaussian OU data. Not the
    speciation time: that one is about the potential ``U`` of the reverse dynamics."""
    return sign_change_time(p.times, log_density_curvature(
        p, x=x, direction=direction, nodes=nodes))


# =========================================================================================
# Phase diagram of the symmetric two-Gaussian data
# =========================================================================================
def solve_two_gaussian_ou(mu: float, sigma2: float, *, T: float = 3.0, steps: int = 300,
                          cells: int | None = None, degree: int = 2,
                          half_width: float | None = None, progress: bool = False, comm=None):
    """The Fokker–Planck solution of ``½N(μ, σ²) + ½N(-μ, σ²)`` under the paper's OU
    (``dx = -x dt + √2 dW``) on ``[-L, L]``, ``L = μ + 6 max(σ, 1)`` by default, with
    about twelve nodes per standard deviation ``σ`` (at least 128 cells)."""
    from bridgesolve.domain import Domain
    from bridgesolve.pde.fokker_planck import solve_fokker_planck
    from bridgesolve.problem import Problem
    from bridgesolve.timegrid import TimeGrid

    case = SymmetricTwoGaussianOU(mu, sigma2)
    sigma = math.sqrt(sigma2)
    L = half_width if half_width is not None else mu + 6.0 * max(sigma, 1.0)
    if cells is None:
        cells = max(128, int(math.ceil(2 * L * 12.0 / (degree * sigma))))
    dom = Domain.interval(-L, L, cells, comm=comm)
    prob = Problem(dom, OU(), TimeGrid.uniform(T, steps), degree=degree)
    p = solve_fokker_planck(prob, case.data, progress=progress, check_mass=False)
    p.info["process"] = prob.process
    return p


@dataclass
class PhaseDiagram:
    """Speciation over the (μ, σ) plane, from FE solves, with the closed forms.

    Attributes:
        mu, sigma: the axes (σ the standard deviation of each mode).
        t_s: ``(len(sigma), len(mu))`` speciation times from the mesh (NaN: no crossing on
            the grid, i.e. no symmetry breaking).
        t_s_closed: the closed form ``½ \\log(μ² + \\sqrt{(1 - σ²)² + μ⁴})``.
        region: 0 no symmetry breaking, 1 symmetry breaking, 2 unstable (``e^{-U(·, 0)}``
            not normalizable: ``∂²U < 0`` far out at ``t = 0``), from the mesh.
        region_closed: the same from the closed forms.
    """

    mu: np.ndarray
    sigma: np.ndarray
    t_s: np.ndarray
    t_s_closed: np.ndarray
    region: np.ndarray
    region_closed: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        """Fraction of grid points whose mesh region equals the closed-form region."""
        return float(np.mean(self.region == self.region_closed))


REGIONS = ("no symmetry breaking", "symmetry breaking", "unstable")


def closed_form_region(mu, sigma) -> np.ndarray:
    """The closed-form region codes (see :class:`PhaseDiagram`) at ``(μ, σ)``."""
    mu, sigma = np.broadcast_arrays(np.asarray(mu, float), np.asarray(sigma, float))
    out = np.where(mu > no_breaking_boundary(sigma), 1, 0)
    return np.where(sigma > UNSTABLE_SIGMA, 2, out)


def phase_diagram(mus: Sequence[float], sigmas: Sequence[float], *, T: float = 2.0,
                  steps: int = 200, degree: int = 2, cells: int | None = None,
                  progress: bool = True) -> PhaseDiagram:
    """Solve the Fokker–Planck equation at every ``(μ, σ)`` and classify it.

    At each point: ``t_s`` from :func:`speciation_time` at ``x = 0``; the point is
    "unstable" where ``∂²U(x, 0) < 0`` at ``x = μ + 3σ`` (the tail, where one mode
    dominates and ``∂²U → 2/σ² - 1``), else "symmetry breaking" if ``∂²U(0, t)`` changes
    sign on ``(0, T]`` (equivalently ``∂²U(0, 0) < 0``), else "no symmetry breaking".
    """
    from tqdm.auto import tqdm

    mus = np.asarray(mus, dtype=float)
    sigmas = np.asarray(sigmas, dtype=float)
    ts = np.full((sigmas.size, mus.size), np.nan)
    region = np.zeros((sigmas.size, mus.size), dtype=int)
    t0 = time.perf_counter()
    with tqdm(total=ts.size, desc="phase diagram", unit="solve", leave=False,
              disable=not progress) as bar:
        for i, s in enumerate(sigmas):
            for j, m in enumerate(mus):
                p = solve_two_gaussian_ou(float(m), float(s) ** 2, T=T, steps=steps,
                                          degree=degree, cells=cells)
                proc = p.info["process"]
                curv0 = potential_curvature(p, process=proc)
                far = potential_curvature(p, process=proc, x=[m + 3.0 * s])[0]
                if far < 0:
                    region[i, j] = 2
                elif curv0[0] < 0:
                    region[i, j] = 1
                ts[i, j] = sign_change_time(p.times, curv0)
                bar.update()
    M, S = np.meshgrid(mus, sigmas)
    return PhaseDiagram(mus, sigmas, ts, speciation_time_closed(M, S * S), region,
                        closed_form_region(M, S),
                        info={"T": T, "steps": steps, "degree": degree,
                              "total_s": time.perf_counter() - t0})
