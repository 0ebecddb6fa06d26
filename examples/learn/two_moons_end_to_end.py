# %% [markdown]
# # Two moons, end to end: train, reference, validate
#
# The data are the two-moons law itself, not a sample of it: a point on two half circles
# plus isotropic Gaussian noise (σ = 0.08, scale 1.5), `bridgesolve.densities.two_moons`.
# Under the VP SDE its marginals are again curve mixtures, evaluated by quadrature along the
# curves, so the reference needs no PDE solve: `bridgesolve reference ... --fields exact`
# (here `exact_bundle`) takes p, log p and ∇log p from the formulas at the quadrature points
# of a mesh. The same config solved by finite elements (`--fields finite-element`) gives
# the FE bundle; its distance to the exact one is printed too.
#
# 1. train a small MLP by denoising score matching on samples of the exact law (CPU
#    minutes; the GPU when there is one);
# 2. write the exact reference bundle (and the FE one, on a coarser time grid);
# 3. validate: the explicit score-matching error e(t) against the bundle and against the
#    exact law, the denoising identity, KL(ρ0 ‖ q_h) by PDE solves, the figures.
#
# Run: `MPLBACKEND=agg .venv/bin/python examples/learn/two_moons_end_to_end.py [OUTDIR]
# [--steps N]` (default `results/example-two-moons`, 4000 steps: about 2 minutes on 2
# cores). The same with the command line:
#
#     bridgesolve train examples/learn/train_two_moons.toml --steps 4000
#     bridgesolve reference examples/learn/reference_two_moons.toml -o ref.npz --fields exact
#     bridgesolve validate --score results/train_two_moons --reference ref.npz

# %%
import argparse
import json
import warnings
from pathlib import Path

import numpy as np

import bridgesolve as bs
from bridgesolve.learn import train, validate
from bridgesolve.reference import ReferenceBundle, exact_bundle

ap = argparse.ArgumentParser(description="Two moons: train, exact reference, validate.")
ap.add_argument("outdir", nargs="?", default="results/example-two-moons", type=Path)
ap.add_argument("--steps", type=int, default=4000, help="training steps (default 4000)")
args = ap.parse_args()
args.outdir.mkdir(parents=True, exist_ok=True)

rho0 = bs.densities.two_moons(noise=0.08, scale=1.5)
process = bs.VP()

# %% [markdown]
# ## 1. Training on the exact law

# %%
config = {
    "data": {"type": "two_moons", "noise": 0.08, "scale": 1.5},
    "process": {"type": "VP"},
    "model": {"width": 128, "depth": 3, "fourier_features": 16, "parameterization": "eps"},
    "train": {"steps": args.steps, "batch_size": 512, "lr": 2e-3, "warmup": 200,
              "weighting": "g2", "t_sampling": "importance", "seed": 1,
              "checkpoint_every": 1000},
}
result = train(config, output=args.outdir / "run", overwrite=True, progress=False)
print(f"trained {result.step} steps on {result.info['device']} in "
      f"{result.info['elapsed_s']:.1f} s; final loss {result.losses[-100:].mean():.4f}")

# %% [markdown]
# ## 2. The reference: exact formulas on the mesh's quadrature points (and the FE solve)

# %%
problem = bs.Problem(bs.Domain.box([-6.0, -6.0], [6.0, 6.0], [48, 48]), process,
                     bs.TimeGrid.uniform(1.0, 40), degree=2)
bundle = exact_bundle(problem, rho0)
bundle.save(args.outdir / "reference_exact.npz")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    p = bs.solve_fokker_planck(problem, rho0, progress=False)
fe = ReferenceBundle.from_fokker_planck(p, problem=problem, data=rho0)
l1 = bundle.integrate(np.abs(fe.density - bundle.density))
print(f"reference: {bundle}; quadrature score-error estimate max "
      f"{bundle.score_error_estimate.max():.2e}")
print(f"FE bundle (P2 48², 40 steps) against the exact one: L1 of p at t = 0.1, 0.5, 1: "
      f"{l1[4]:.2e}, {l1[20]:.2e}, {l1[40]:.2e}")

# %% [markdown]
# ## 3. Validation

# %%
report = validate(args.outdir / "run" / "checkpoint.pt", bundle, hs=(0.0, 1.0), n_mc=4096,
                  problem=problem, figures=args.outdir)
report.to_json(args.outdir / "report.json")
print(report.table())
esm = report["esm"]
mid = [r for t, r in zip(esm["times"], esm["relative"], strict=True) if 0.3 <= t <= 0.7]
numbers = {
    "train_steps": result.step,
    "train_seconds": result.info["elapsed_s"],
    "esm_integrated": esm["integrated"],
    "max_relative_score_error_t_0.3_0.7": max(mid),
    "fe_vs_exact_l1": {"t=0.1": float(l1[4]), "t=0.5": float(l1[20]), "t=1": float(l1[40])},
    "kl_h1": report["bound"]["kl_h1"], "bound": report["bound"]["bound"],
    "notes": report["notes"],
}
(args.outdir / "numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
print(f"max relative score error at t in [0.3, 0.7]: {max(mid):.4f}")
b = report["bound"]
print(f"KL(rho0 || q_1) = {b['kl_h1']:.4e} <= bound {b['bound']:.4e}: {b['kl_h1'] <= b['bound']}")
print(f"figures and numbers.json in {args.outdir}")
