"""The kernel path behind the FE solvers' API: the exact-kernel solution at the dofs of a
:class:`~bridgesolve.Problem`'s space at every level of its time grid, as the same
:class:`~bridgesolve.SpaceTimeField` and :class:`~bridgesolve.Bridge` the FE path returns (so
scores, controls, bundles, thermodynamics, likelihoods and validation work unchanged; the
bridge's counterpart is :mod:`bridgesolve.bridge.kernel`).

Dofs of Lagrange spaces on structured box meshes lie on a lattice: the kernel results are
evaluated on it separably and picked; other meshes take the (costlier) pointwise formula.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.kernel.diffusion import MASS_OUTSIDE_WARN, KernelDensity, KernelExpectation
from bridgesolve.kernel.grid import lattice

#: Domain descriptions the kernel path takes: boxes, whose bounds sample the data.
BOX_TYPES = ("box", "interval")


def kernel_unavailable(problem, *, killing=None) -> str | None:
    """Why the kernel path does not apply to ``problem`` (None when it does)."""
    if not problem.process.linear:
        return f"the process {problem.process!r} is not linear (no Gaussian transition)"
    if killing is not None:
        return "a killing rate is given (the kernel path has no Feynman–Kac weights)"
    if problem.boundary != "reflecting":
        return f"boundary = {problem.boundary!r} (the kernel path is a free-space solution)"
    kind = problem.domain.description.get("type")
    if kind not in BOX_TYPES:
        return f"the domain is a {kind!r}, not a box"
    return None


def use_kernel(method: str, problem, *, killing=None) -> bool:
    """Whether ``method`` (:data:`~bridgesolve._vocab.METHODS`) means the kernel path for
    ``problem``: ``"kernel"`` refuses a problem it does not apply to, ``"auto"`` falls back
    to finite elements."""
    from bridgesolve._validate import choice
    from bridgesolve._vocab import METHODS

    method = choice("method", method, METHODS)
    if method == "fe":
        return False
    why = kernel_unavailable(problem, killing=killing)
    if why is not None and method == "kernel":
        raise BridgesolveInputError(f"method = 'kernel': {why}; use method = 'fe' "
                                    "(or 'auto', which falls back to it)")
    return why is None


def _dof_points(problem) -> np.ndarray:
    return problem.V.tabulate_dof_coordinates()[:, : problem.domain.dim]


def at_levels(problem, evaluate) -> np.ndarray:
    """``evaluate(out, t)`` (log values on a tuple of axes or on points) at the dofs of
    ``problem.V`` for every level: ``(levels, n_local)``."""
    pts = _dof_points(problem)
    grid = lattice(pts)
    rows = []
    for t in problem.grid.times:
        if grid is not None:
            rows.append(np.asarray(evaluate(grid[0], float(t))).ravel()[grid[1]])
        else:
            rows.append(np.asarray(evaluate(pts, float(t))))
    return np.array(rows)


def _bounds(problem) -> tuple[np.ndarray, np.ndarray]:
    desc = problem.domain.description
    return np.asarray(desc["lower"], float), np.asarray(desc["upper"], float)


def _warn(message: str, sink: list) -> None:
    sink.append(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def fokker_planck_field(problem, rho0, *, name: str = "p", h: float | None = None):
    """The forward law at the dofs of every level (``method="kernel"`` of
    :func:`~bridgesolve.solve_fokker_planck`)."""
    from bridgesolve.spacetime import SpaceTimeField

    t0 = time.perf_counter()
    lo, hi = _bounds(problem)
    law = KernelDensity(problem.process, rho0, lo, hi, h=h,
                        time_offset=float(problem.grid.times[0]))
    start = float(problem.grid.times[0])
    logs = at_levels(problem, lambda out, t: _log_on(law, out, t - start))
    outside = [law.mass_outside(float(t) - start) for t in problem.grid.times]
    found: list[str] = []
    worst = int(np.argmax(outside))
    if outside[worst] > MASS_OUTSIDE_WARN:
        _warn(f"the free-space law has mass {outside[worst]:.3g} outside the box by t = "
              f"{problem.grid.times[worst]:.4g} (> {MASS_OUTSIDE_WARN:g}): a reflecting-wall "
              "solve would keep it inside; enlarge the domain or shorten T (method = 'kernel')",
              found)
    info = {"equation": "fokker-planck", "method": "kernel", "mass_outside": outside,
            "quadrature_error": law.aliasing_error, "h": law.h}
    field = SpaceTimeField(problem.V, problem.grid, np.exp(logs), name=name, info=info)
    field.info["mass"] = field.integral()
    field.info["timings"] = {"total_s": time.perf_counter() - t0}
    field.info["warnings"] = found
    return field


def _log_on(law: KernelDensity, out, t: float) -> np.ndarray:
    return law.on_grid(out, t) if isinstance(out, tuple) else law.log_pdf(out, t)


def kolmogorov_field(problem, phi_T, *, name: str = "phi", h: float | None = None):
    """``u(t) = E[φ_T(X_T) | X_t]`` at the dofs of every level (``method="kernel"`` of
    :func:`~bridgesolve.solve_kolmogorov`)."""
    from bridgesolve.spacetime import SpaceTimeField

    t0 = time.perf_counter()
    lo, hi = _bounds(problem)
    times = problem.grid.times
    T = float(times[-1])
    u = KernelExpectation(problem.process, phi_T, lo, hi, T, h=h)
    pts = _dof_points(problem)
    values = np.array([u(pts, float(t)) for t in times])
    info = {"equation": "kolmogorov", "method": "kernel",
            "timings": {"total_s": time.perf_counter() - t0}, "warnings": []}
    return SpaceTimeField(problem.V, problem.grid, values, name=name, info=info)


__all__ = ["fokker_planck_field", "kernel_unavailable",
           "kolmogorov_field", "use_kernel"]
