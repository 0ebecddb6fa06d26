# %% [markdown]
# # Fokker–Planck on a mesh, verified against the exact marginal
#
# A two-component Gaussian mixture ρ0 in 2D is pushed through the variance-preserving SDE
# of score-based diffusion models,
#
#     dX = -½ β(t) X dt + √β(t) dW,   β(t) = 0.1 + 19.9 t,   t ∈ [0, 1],
#
# whose marginal p(·, t) solves the Fokker–Planck equation
#
#     ∂t p = ∇·(½ β x p) + ½ β Δp    in Ω = [-5, 5]²,   (f p - D ∇p)·n = 0 on ∂Ω.
#
# Discretization: Lagrange P1/P2 in space; Crank–Nicolson in time on a grid uniform in
# the process clock s(t) = ½∫β, in which the operator is constant, so one LU
# factorization serves every step. The exact marginal is again a mixture (means a(t) m_k,
# covariances a² Σ_k + (1 - a²) I), so we can measure the error and its order.
#
# Run: `MPLBACKEND=agg .venv/bin/python examples/fokker_planck_convergence.py [OUTDIR]`
# (also under `mpiexec -n 2`). Figures go to OUTDIR (default `results/example-fp`).

# %%
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import bridgesolve as bs  # noqa: E402
from bridgesolve._dolfinx import MPI  # noqa: E402
from bridgesolve.studies import fitted_order, order_table  # noqa: E402

outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "results/example-fp")
rank0 = MPI.COMM_WORLD.rank == 0
if rank0:
    outdir.mkdir(parents=True, exist_ok=True)

rho0 = bs.GaussianMixture(
    weights=[0.5, 0.5],
    means=[[-1.5, -1.0], [1.5, 1.0]],
    covs=[[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]],
)
proc = bs.VP(beta_min=0.1, beta_max=20.0)
grid = bs.TimeGrid.clock(proc.clock, T=1.0, steps=100)

# %% [markdown]
# ## One solve, and the density at four times
# `evaluate` is collective: every rank passes its own points (here rank 0 all of them).

# %%
dom = bs.Domain.box([-5, -5], [5, 5], cells=(64, 64))
prob = bs.Problem(dom, proc, grid, degree=2)
p = bs.solve_fokker_planck(prob, rho0)
print(f"P2 on 64x64: {prob.ndofs} dofs, {p.info['factorizations']} factorization(s), "
      f"mass drift {abs(p.info['mass'][-1] - p.info['mass'][0]):.1e}")

n = 161
xs = np.linspace(-5, 5, n)
X, Y = np.meshgrid(xs, xs)
pts = np.column_stack([X.ravel(), Y.ravel()]) if rank0 else np.zeros((0, 2))
# Grid times nearest to 0, 0.1, 0.25 and 1 (VP mixes fast: most happens before t = 0.3).
times = [float(grid.times[np.argmin(abs(grid.times - s))]) for s in (0.0, 0.1, 0.25, 1.0)]
panels = [p.evaluate(pts, t) for t in times]
if rank0:
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), constrained_layout=True)
    for ax, t, vals in zip(axes, times, panels, strict=True):
        im = ax.imshow(vals.reshape(n, n), origin="lower", extent=(-5, 5, -5, 5), cmap="magma")
        ax.set_title(f"p(x, t = {t:.3f})")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(outdir / "density.png", dpi=110)

# %% [markdown]
# ## Convergence under mesh refinement
# L2 error at T against the exact mixture, P1 and P2; the fitted slopes are the observed
# orders (expected 2 and 3).

# %%
exact_T = rho0.evolve(proc, 1.0)
results = {}
for degree, ladder in ((1, (16, 32, 64, 128)), (2, (8, 16, 32, 64))):
    hs, errs = [], []
    for cells in ladder:
        pr = bs.Problem(bs.Domain.box([-5, -5], [5, 5], (cells, cells)), proc, grid,
                        degree=degree)
        sol = bs.solve_fokker_planck(pr, rho0, progress=False)
        hs.append(10 / cells)
        errs.append(sol.error(exact_T, 1.0))
    results[degree] = (hs, errs)
    if rank0:
        print(f"\nP{degree}: observed order {fitted_order(hs, errs):.2f}")
        print(order_table(hs, errs))

if rank0:
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    for degree, (hs, errs) in results.items():
        ax.loglog(hs, errs, "o-", label=f"P{degree} (order {fitted_order(hs, errs):.2f})")
        ax.loglog(hs, errs[0] * (np.array(hs) / hs[0]) ** (degree + 1), "k:", lw=0.8)
    ax.set_xlabel("h")
    ax.set_ylabel("L2 error at T = 1")
    ax.legend()
    ax.set_title("VP Fokker–Planck, 2D mixture")
    fig.savefig(outdir / "convergence.png", dpi=110)
    print(f"\nfigures written to {outdir}/")
