"""py-pde peer for ``fp_vs_pypde.py``: the same 2D Fokker–Planck problem by finite differences.

``∂t p = Δp + ∇·(x p)`` on [-5, 5]² (OU drift -x, D = 1) with zero probability flux
``(-x p - ∇p)·n = 0``: on every face ``∂n p + 5 p = 0``, py-pde's "mixed" condition with
value 5. The drift term is written in divergence form so the scheme conserves mass like
the finite-element one. The error is the discrete L2 norm on py-pde's cell-centred grid.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from pde import PDE, CartesianGrid, ScalarField

import bridgesolve as bs

MIXTURE = bs.GaussianMixture(
    [0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
    [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]],
)
PROCESS = bs.OU(theta=1.0, sigma=2.0**0.5)
T = 1.0
BC = {"type": "mixed", "value": 5.0}

# (solver, settings, cells per direction, dt), from pypde_search() on this 2-core machine:
# the implicit and Crank–Nicolson solvers stop converging from 96^2 on (Newton maxerror),
# the adaptive explicit Runge–Kutta method needs ~10 s per run (it recompiles each call),
# and scipy's explicit RK23/RK45 on the numba right-hand side are fastest. The error is
# spatial: 112^2 gives 2.12e-4, 120^2 1.84e-4, 128^2 1.62e-4 whatever the tolerance.
CANDIDATES = [
    ("scipy", {"method": m, "rtol": rtol, "atol": 1e-9}, cells, 1e-3)
    for cells in (116, 120, 128) for m in ("RK23", "RK45") for rtol in (1e-4, 1e-6)
]


def _setup(cells: int):
    grid = CartesianGrid([[-5, 5], [-5, 5]], [cells, cells])
    pts = grid.cell_coords.reshape(-1, 2)
    field = ScalarField(grid, MIXTURE.pdf(pts).reshape(cells, cells))
    eq = PDE({"p": "laplace(p) + d_dx(x * p) + d_dy(y * p)"}, bc=BC)
    exact = MIXTURE.evolve(PROCESS, T).pdf(pts).reshape(cells, cells)
    return grid, field, eq, exact


def pypde_run(method: str, settings: dict, cells: int, dt: float, repeats: int = 1) -> dict:
    """One configuration: a cold run (numba compilation included), then warm runs."""
    grid, field, eq, exact = _setup(cells)
    cell_area = float(np.prod(grid.discretization))
    walls = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # py-pde's solver-name deprecations
            res = eq.solve(field.copy(), t_range=T, dt=dt, solver=method, tracker=None,
                           **settings)
        walls.append(time.perf_counter() - t0)
    err = float(np.sqrt(np.sum((res.data - exact) ** 2) * cell_area))
    mass0 = float(field.data.sum() * cell_area)
    return {"solver": f"py-pde {method} {settings}", "grid": cells, "dt": dt,
            "l2_error": err, "first_run_s": walls[0], "wall_time_s": min(walls[1:]),
            "mass_error": abs(float(res.data.sum() * cell_area) - mass0)}


def pypde_search(target: float = 2e-4, verbose: bool = True) -> list[dict]:
    """Try py-pde's solvers on a ladder of grids; for each solver stop at the coarsest grid
    that reaches ``target`` (a few minutes)."""
    trials = [
        ("explicit", {"scheme": "euler"}, None),
        ("explicit", {"scheme": "runge-kutta", "adaptive": True, "tolerance": 1e-5}, 1e-3),
        ("implicit", {}, 2e-3),
        ("crank-nicolson", {}, 5e-3),
        ("scipy", {"method": "RK45", "rtol": 1e-6, "atol": 1e-9}, 1e-3),
    ]
    rows = []
    for method, settings, dt in trials:
        for cells in (64, 96, 128, 160, 192, 256):
            h = 10.0 / cells
            step = dt if dt is not None else 0.2 * h * h  # explicit Euler stability
            try:
                r = pypde_run(method, settings, cells, step)
            except Exception as exc:  # a solver that fails here is reported, not fatal
                r = {"solver": f"py-pde {method} {settings}", "grid": cells, "dt": step,
                     "error": repr(exc)[:80]}
            rows.append(r)
            if verbose:
                print(f"  {r['solver'][:60]:60} {cells:4d}^2 dt {step:.1e}: "
                      + (f"L2 {r['l2_error']:.3e} {r['wall_time_s']:.3f} s" if "l2_error" in r
                         else r["error"]), flush=True)
            if r.get("l2_error", np.inf) <= target or r.get("wall_time_s", 0) > 60:
                break
    return rows


def pypde_time_to_error(target: float = 2e-4, *, repeats: int = 1,
                        verbose: bool = True) -> dict:
    """The fastest of :data:`CANDIDATES` that reaches ``target`` (errors measured, not assumed)."""
    ok = []
    for method, settings, cells, dt in CANDIDATES:
        r = pypde_run(method, settings, cells, dt, repeats)
        if verbose:
            print(f"  {r['solver'][:60]:60} {cells:4d}^2: L2 {r['l2_error']:.3e}  "
                  f"{r['wall_time_s'] * 1e3:8.1f} ms", flush=True)
        if r["l2_error"] <= target:
            ok.append(r)
    if not ok:
        raise RuntimeError(f"no py-pde candidate reached L2 <= {target}")
    return min(ok, key=lambda r: r["wall_time_s"])


if __name__ == "__main__":
    for row in pypde_search():
        print(row)
