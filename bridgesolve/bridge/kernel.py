"""The kernel bridge behind :func:`~bridgesolve.solve_bridge` (``method="kernel"``): the
log-potentials of :func:`~bridgesolve.kernel.kernel_bridge` at the dofs of every level, as
the :class:`~bridgesolve.Bridge` the FE modes return."""

from __future__ import annotations

import time

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.bridge.result import Bridge
from bridgesolve.kernel.bridge import KernelBridge, kernel_bridge
from bridgesolve.kernel.fields import _bounds, at_levels
from bridgesolve.spacetime import SpaceTimeField

#: Log-potentials are kept above this (finite logs: gradients of FE fields stay finite).
LOG_FLOOR = -700.0


def bridge_on_mesh(problem, rho0, rho1, *, tol: float, max_iter: int,
                   scaling: float | None = None, h: float | None = None):
    """The kernel bridge as a :class:`~bridgesolve.Bridge` on ``problem``'s space
    (``method="kernel"`` of :func:`~bridgesolve.solve_bridge`)."""
    lo, hi = _bounds(problem)
    times = problem.grid.times
    if times[0] != 0.0:
        raise BridgesolveInputError(f"method = 'kernel': the time grid starts at "
                                    f"{times[0]:g}; expected 0")
    kb = kernel_bridge(problem.process, rho0, rho1, lo, hi, float(times[-1]), h=h, tol=tol,
                       max_iter=max_iter, scaling=scaling)
    t0 = time.perf_counter()
    L_phi = at_levels(problem, lambda out, t: _side(kb, "phi", out, t))
    L_hat = at_levels(problem, lambda out, t: _side(kb, "hat", out, t))
    V, grid = problem.V, problem.grid
    info = {**{k: v for k, v in kb.info.items() if k not in ("log_mass", "cost")},
            "kernel_cost": kb.cost, "method": "kernel",
            "mass": np.ones(len(times)), "mass_drift": 0.0}
    info["timings"] = {**kb.info["timings"], "fields_s": time.perf_counter() - t0}
    bridge = Bridge(problem=problem,
                  log_phi=SpaceTimeField(V, grid, L_phi, name="log_phi", representation="log"),
                  log_phi_hat=SpaceTimeField(V, grid, L_hat, name="log_phi_hat",
                                             representation="log"),
                  history=[{**h_, "mode": "kernel"} for h_ in kb.history],
                  converged=kb.converged, mode="kernel", info=info)
    bridge.kernel_bridge = kb  # the grid solution: exact fields at any point and time
    return bridge


def _side(kb: KernelBridge, which: str, out, t: float) -> np.ndarray:
    later, earlier = kb._kernels(t)
    prop, k = (kb._phi, later) if which == "phi" else (kb._hat, earlier)
    values = prop.values(k, out)
    return np.maximum(values, LOG_FLOOR)


__all__ = ["bridge_on_mesh"]
