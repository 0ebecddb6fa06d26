r"""Hirono, Tanaka & Fukushima, "Understanding Diffusion Models by Feynman's Path Integral"
(ICML 2024, arXiv 2403.11262): the exact NLL(𝔥) of the interpolating sampler and its WKB
expansion, computed instead of estimated.

**The sampler.** From the prior π at ``T`` down to ``t_min``,

    dx = [f − (1+𝔥)/2 · g² s_θ] dt + √𝔥 · g dw̄ ,

with the paper's "Planck constant" 𝔥 = h² of bridgesolve's sampler (noise ``h g``): 𝔥 = 0 is
the probability-flow ODE, 𝔥 = 1 the reverse SDE. Its law ``q^𝔥`` solves, in reverse time,
``∂_τ q = ∇·(b q) + 𝔥 D Δq`` (``b = f − (1+𝔥) D s``, ``D = g²/2``); bridgesolve solves for
``log q^𝔥`` directly (``bs.likelihood.generated_log_density``: a forward HJB-type equation,
Newton per step), so ``NLL(𝔥) = −E_{ρ0} log q^𝔥_{t_min}`` is exact to the discretization
error and finite in the tails; at 𝔥 = 0 also by characteristics
(``log q⁰ = log π(x_T) + ∫ ∇·f^PF``).

**WKB.** ``log q^𝔥 = log q⁰ + 𝔥 C + O(𝔥²)`` with (PAPERS.md §A)
``C = δx_T·∇log π + ∫[(δx·∇)(∇·f^PF) − (g²/2)(∇·s − Δlog q⁰)] dt``,
``δẋ = (∇f^PF) δx − (g²/2)(s − ∇log q⁰)``; integrating ``d(δx·∇log q⁰)/dt`` by parts gives
the equivalent ``C = ∫ (g²/2)[Δlog q⁰ − ∇·s + ∇log q⁰·(∇log q⁰ − s)] dt`` along the
characteristic (``bs.likelihood.wkb_coefficient`` computes both; they agree to 1e-5). The
NLL slope at 𝔥 = 0 is ``−E_{ρ0} C``.

**Figures.**

1. ``gaussian_model.png`` — the 1D model ``f = −βx/2``, ``g² = β`` (β = 1), data
   ``N(0, 1/4)``, score ``−(1+ε)x/v_t`` with ``v_t = 1 + (v₀ − 1)e^{−βt}``, prior ``N(0, 1)``:
   ``q^𝔥 = N(0, w)`` with ``dw/dt = β[(1+𝔥)(1+ε)/v_t − 1]w − 𝔥β`` solved in closed form
   (``bs.likelihood.gaussian_model``). NLL(𝔥) and W2(𝔥)² (the squared EMD cost the paper
   plotted as "W2") from the PDE (markers), from 2·10⁴ sampler particles (W2 only, crosses)
   and the closed form (lines), for a long horizon T = 5 and several ε (noise helps) and a
   short horizon T = 1 with ε = 0.2, where NLL *increases* with 𝔥.
2. ``two_gaussians.png`` — a 1D two-Gaussian law under the paper's "SIMPLE" schedule
   (VP, β(t) = 20t, t ∈ [0.01, 1]) with the scaled exact score ``λ ∇log p_t``: exact NLL(𝔥)
   against its WKB tangent ``NLL(0) − 𝔥 E C``, and C(x) against the PDE's derivative
   d/d𝔥 log q^𝔥 at 𝔥 = 0 (Richardson of two small 𝔥). The tangent's range of use (the
   largest 𝔥 where its increment is within 10 % of the exact one) goes to numbers.json.
3. ``w2_2d.png``, ``table_2d.md`` — the 2D Swiss roll and 25 Gaussians (the paper's
   scalings) under both schedules (SIMPLE and cosine, α_t = cos(πt/2)) with a small score
   network trained on the CPU: exact NLL at 𝔥 = 0 (characteristics), the WKB coefficient
   and the NLL slope, the NLL at 𝔥 = 1 from the log-domain PDE where a mesh resolves the
   learned density (Swiss roll, two P2 meshes; the 25 Gaussians' std 0.018 is resolved by
   none), and W2² vs 𝔥 ∈ [0, 0.2] from the sampler (exact EMD, POT). **Reduced sizes**
   (``SIZES_2D``, also in numbers.json): the full setting runs in a few minutes on a
   2-core CPU — a 3×128 MLP trained for 3000 Adam steps (batch 512) on 3000 points per set,
   NLL(0) and C over 400 data points with 100 time levels, the 𝔥 = 1 PDE on 16² and 24²
   P2 meshes with the same 100 levels (this PDE is the costly stage), W2² at
   𝔥 ∈ {0, 0.05, 0.1, 0.2} from 1500 particles after 1000 Euler steps (as the paper)
   against 1500 data points (the paper: 3000 samples, more 𝔥 values, a GPU-trained
   network); the dotted line is the W2² between two disjoint data subsets of that size,
   the sampling-noise floor (the same prior draws serve every 𝔥). The third panel
   shows NLL(𝔥): the exact value at 𝔥 = 0, its WKB tangent
   ``NLL(0) − 𝔥 E C`` and the exact PDE value at 𝔥 = 1. The absolute numbers are those
   of *this* small network, not the paper's; the method (exact NLL beside its WKB
   estimate) is the point.

Run: ``MPLBACKEND=agg .venv/bin/python examples/papers/hirono_2024.py [--quick] [--part 3]
[-o DIR]`` (``--part N``, repeatable, runs only that part)
or ``bridgesolve figures hirono-2024``. ``numbers.json`` holds every plotted value beside
its closed form where one exists.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

NAME = "hirono_2024"


# -- (1) the 1D Gaussian model --------------------------------------------------------------
def gaussian_model_figure(out: Path, quick: bool, plt) -> dict:
    import bridgesolve as bs
    from bridgesolve.likelihood import (
        gaussian_model,
        generated_log_density,
        wasserstein2,
        wasserstein2_1d_densities,
    )
    from bridgesolve.sampling import sample

    beta, v0, t_min = 1.0, 0.25, 0.01
    data = bs.GaussianMixture([1.0], [[0.0]], [v0])
    prior = bs.GaussianMixture([1.0], [[0.0]], [1.0])
    cases = [(5.0, -0.2), (5.0, 0.1), (5.0, 0.2), (1.0, 0.2)]
    hbars = [0.0, 1.0] if quick else [0.0, 0.25, 0.5, 0.75, 1.0]
    steps, cells = (60, 120) if quick else (800, 400)
    n_particles = 2000 if quick else 20000
    xs = np.linspace(-6.0, 6.0, 6001)
    fine = np.linspace(0.0, 1.0, 101)
    rng = np.random.default_rng(0)
    data_samples = data.sample(n_particles, rng)
    result = {"beta": beta, "v0": v0, "t_min": t_min, "prior_var": 1.0, "steps": steps,
              "cells": cells, "element": "P2", "domain": [-10.0, 10.0],
              "particles": n_particles, "w2_reported": "W2 (not squared); figures show W2²",
              "cases": []}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (T, eps) in enumerate(cases):
        proc = bs.VP(beta, beta, T)

        def score(x, t, eps=eps):
            return -(1.0 + eps) * np.asarray(x) / (1.0 + (v0 - 1.0) * math.exp(-beta * t))

        prob = bs.Problem(bs.Domain.interval(-10.0, 10.0, cells), proc,
                          bs.TimeGrid.uniform(T, steps, t_min=t_min), degree=2)
        closed = [gaussian_model(beta=beta, v0=v0, eps=eps, T=T, hbar=h, t=t_min)
                  for h in fine]
        row = {"T": T, "eps": eps, "hbar": hbars, "nll_pde": [], "nll_closed": [],
               "w2_pde": [], "w2_samples": [], "w2_closed": []}
        for hb in hbars:
            L = generated_log_density(prob, score, prior, hbar=hb)
            logq = L.evaluate(xs[:, None], t_min)
            rho = data.pdf(xs[:, None])
            row["nll_pde"].append(-float(np.trapezoid(rho * logq, xs)))
            row["w2_pde"].append(wasserstein2_1d_densities(xs, np.exp(logq), rho))
            x = sample(proc, score, math.sqrt(hb), n_particles, grid=prob.grid, prior=prior,
                       method="heun", rng=rng, progress=False)
            row["w2_samples"].append(wasserstein2(x, data_samples))
            c = gaussian_model(beta=beta, v0=v0, eps=eps, T=T, hbar=hb, t=t_min)
            row["nll_closed"].append(c["nll"])
            row["w2_closed"].append(c["w2"])
        row["max_nll_error"] = float(np.max(np.abs(np.subtract(row["nll_pde"],
                                                               row["nll_closed"]))))
        row["max_w2_error"] = float(np.max(np.abs(np.subtract(row["w2_pde"],
                                                              row["w2_closed"]))))
        row["nll_increases_with_hbar"] = bool(row["nll_closed"][-1] > row["nll_closed"][0])
        result["cases"].append(row)
        col = colors[i % len(colors)]
        label = f"T = {T:g}, ε = {eps:+g}"
        axes[0].plot(fine, [c["nll"] for c in closed], "-", color=col, label=label)
        axes[0].plot(hbars, row["nll_pde"], "o", color=col, mfc="none")
        axes[1].plot(fine, [c["w2_squared"] for c in closed], "-", color=col, label=label)
        axes[1].plot(hbars, np.square(row["w2_pde"]), "o", color=col, mfc="none")
        axes[1].plot(hbars, np.square(row["w2_samples"]), "x", color=col)
    entropy = gaussian_model(beta=beta, v0=v0, eps=0.0, T=5.0, hbar=0.0)["entropy"]
    axes[0].axhline(entropy, color="k", lw=0.8, ls=":", label="data entropy (minimum)")
    axes[0].set(xlabel="ℏ = h²", ylabel="NLL of the data under $q^ℏ_{t_{min}}$ (nats)",
                title="NLL(ℏ): closed form (lines), log-domain PDE (o)")
    axes[1].set(xlabel="ℏ = h²", ylabel="$W_2^2$ between $q^ℏ_{t_{min}}$ and the data",
                title="W2²(ℏ): closed form, PDE quantiles (o), particles (x)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("1D Gaussian model: f = −x/2, g² = 1, data N(0, 1/4), score −(1+ε)x/v_t, "
                 "prior N(0, 1); ℏ = h² (the paper's Planck constant)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "gaussian_model.png", dpi=90)
    plt.close(fig)
    result["max_nll_error"] = max(r["max_nll_error"] for r in result["cases"])
    result["max_w2_error"] = max(r["max_w2_error"] for r in result["cases"])
    return result


# -- (2) two Gaussians, scaled exact score, WKB tangent ------------------------------------
def two_gaussians_figure(out: Path, quick: bool, plt) -> dict:
    import bridgesolve as bs
    from bridgesolve.likelihood import generated_log_density, nll_slope, wkb_coefficient
    from bridgesolve.score import mixture_score

    mix = bs.GaussianMixture([0.3, 0.7], [[-1.0], [0.8]], [0.09, 0.16])
    proc = bs.VP(0.0, 20.0)
    prior = bs.GaussianMixture([1.0], [[0.0]], [1.0])
    t_min = 0.01
    exact = mixture_score(mix, proc)
    # [-12, 12]: the characteristics of λ = 1.1 from |x| < 2.5 at t_min stay inside
    steps, cells, degree = (60, 180, 2) if quick else (200, 450, 3)
    prob = bs.Problem(bs.Domain.interval(-12.0, 12.0, cells), proc,
                      bs.TimeGrid.uniform(1.0, steps, t_min=t_min), degree=degree)
    wkb_prob = bs.Problem(bs.Domain.interval(-8.0, 8.0, 10), proc,
                          bs.TimeGrid.uniform(1.0, 150 if quick else 1000, t_min=t_min))
    hbars = [0.0, 0.3, 1.0] if quick else [0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75,
                                                  1.0]
    delta = 0.002
    xs = np.linspace(-6.0, 6.0, 6001)
    rho = mix.pdf(xs[:, None])
    xc = np.linspace(-2.5, 2.5, 11 if quick else 41)[:, None]
    result = {"mixture": mix.describe(), "schedule": "VP beta(t) = 20 t (SIMPLE)",
              "t_min": t_min, "steps": steps, "cells": cells, "element": f"P{degree}",
              "domain": [-12.0, 12.0], "richardson_delta": delta, "cases": []}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, lam in enumerate((0.8, 1.1)):
        def score(x, t, lam=lam):
            return lam * exact(x, t)

        logs = {}
        for hb in sorted(set(hbars) | {delta, 2 * delta}):
            logs[hb] = generated_log_density(prob, score, prior, hbar=hb)
        nll = [-float(np.trapezoid(rho * logs[hb].evaluate(xs[:, None], t_min), xs))
               for hb in hbars]
        slope = nll_slope(wkb_prob, score, prior, mix)
        n0 = nll[0]
        n_d = -float(np.trapezoid(rho * logs[delta].evaluate(xs[:, None], t_min), xs))
        n_2d = -float(np.trapezoid(rho * logs[2 * delta].evaluate(xs[:, None], t_min), xs))
        slope_pde = 2 * (n_d - n0) / delta - (n_2d - n0) / (2 * delta)
        tangent = [n0 + hb * slope for hb in hbars]
        useful = [hb for hb, a, b in zip(hbars, nll, tangent, strict=True)
                  if hb == 0 or abs(b - a) <= 0.1 * abs(a - n0)]
        # the largest 𝔥 up to which every grid point is within 10 %
        limit = 0.0
        for hb in hbars:
            if hb in useful:
                limit = hb
            else:
                break
        full = wkb_coefficient(wkb_prob, score, prior, xc, full=True)
        l0, ld, l2d = (logs[h].evaluate(xc, t_min) for h in (0.0, delta, 2 * delta))
        c_pde = 2 * (ld - l0) / delta - (l2d - l0) / (2 * delta)
        rel = np.abs(full["C"] - c_pde) / np.max(np.abs(full["C"]))
        result["cases"].append({
            "lambda": lam, "hbar": hbars, "nll_exact": nll, "nll_tangent": tangent,
            "slope_wkb": slope, "slope_pde_richardson": slope_pde,
            "slope_relative_difference": abs(slope - slope_pde) / abs(slope_pde),
            "tangent_within_10pc_up_to_hbar": limit,
            "x": xc[:, 0].tolist(), "C_wkb": full["C"].tolist(), "C_paper_form":
            full["C_paper"].tolist(), "C_pde": c_pde.tolist(),
            "C_max_difference_over_max_C": float(rel.max()),
            "C_paper_vs_transport_max": float(np.max(np.abs(full["C_paper"]
                                                             - full["C_transport"])))})
        col = colors[i]
        hf = np.linspace(0, 1, 101)
        axes[0].plot(hbars, nll, "o-", color=col, label=f"exact (PDE), λ = {lam}")
        axes[0].plot(hf, n0 + hf * slope, "--", color=col,
                     label=f"WKB tangent NLL(0) − ℏ E C, λ = {lam}")
        axes[1].plot(xc[:, 0], full["C"], "-", color=col, label=f"WKB C(x), λ = {lam}")
        axes[1].plot(xc[:, 0], c_pde, "o", color=col, mfc="none",
                     label=f"PDE ∂ℏ log q at ℏ = 0, λ = {lam}")
    axes[0].set(xlabel="ℏ = h²", ylabel="NLL of the data under $q^ℏ_{0.01}$ (nats)",
                title="exact NLL(ℏ) and its WKB tangent")
    axes[1].set(xlabel="x", ylabel="C(x) = ∂ log $q^ℏ_{0.01}$(x) / ∂ℏ at ℏ = 0",
                title="WKB coefficient vs PDE derivative (Richardson)")
    axes[1].set_yscale("symlog", linthresh=1.0)
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("two Gaussians 0.3 N(−1, 0.09) + 0.7 N(0.8, 0.16), SIMPLE schedule, "
                 "score λ ∇log p_t, prior N(0, 1); ℏ = h²", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "two_gaussians.png", dpi=90)
    plt.close(fig)
    return result


# -- (3) 2D Swiss roll and 25 Gaussians, both schedules, a CPU-trained score network -------
SIZES_2D = {
    # n_data: training set; n_w2: sampler particles and data points per EMD; n_eval: data
    # points for the exact NLL(0) and C; ode_steps: time levels of the characteristics and
    # of the 𝔥 = 1 PDE; pde_meshes: the two P2 meshes of the 𝔥 = 1 PDE (Swiss roll)
    "quick": {"n_data": 300, "n_w2": 300, "train_steps": 60, "n_eval": 40, "ode_steps": 40,
              "sampler_steps": 60, "hbars": [0.0, 0.1, 0.2], "pde_meshes": []},
    "full": {"n_data": 3000, "n_w2": 1500, "train_steps": 3000, "n_eval": 400,
             "ode_steps": 100, "sampler_steps": 1000, "hbars": [0.0, 0.05, 0.1, 0.2],
             "pde_meshes": [16, 24]},
}


class _Schedule:
    """α_t, σ_t², g² of the two schedules in closed form (torch and NumPy)."""

    def __init__(self, name: str):
        import bridgesolve as bs
        from bridgesolve.process import Cosine

        self.name = name
        self.process = bs.VP(0.0, 20.0) if name == "simple" else Cosine(1.0 - 1e-3)
        self.T = self.process.T

    def alpha(self, t, xp):
        return xp.exp(-5.0 * t * t) if self.name == "simple" else xp.cos(0.5 * math.pi * t)

    def g2(self, t, xp):
        return 20.0 * t if self.name == "simple" else math.pi * xp.tan(0.5 * math.pi * t)


def _train(schedule: _Schedule, samples: np.ndarray, steps: int, seed: int = 0):
    """DSM with weight g² (the paper's), t ~ U(t_min, T), Adam; a 3×128 SiLU MLP on
    (x, t) (:class:`bridgesolve.learn.model.ScoreMLP`) whose output is σ_t s_θ. The
    cosine schedule is not in ``bridgesolve.learn``'s kernel table yet, so this small loop
    (the loss of ``bridgesolve.learn.trainer.dsm_loss``) trains both schedules alike.
    Returns a float64 NumPy score ``s(x (N, 2), t)``."""
    import torch

    from bridgesolve.learn.model import ScoreMLP

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ScoreMLP(2, width=128, depth=3, T=schedule.T)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    data = torch.as_tensor(samples, dtype=torch.float32)
    t_min = 0.01
    losses = []
    for k in range(steps):
        idx = torch.as_tensor(rng.integers(0, data.shape[0], 512))
        t = torch.as_tensor(t_min + (schedule.T - t_min) * rng.random(512), dtype=torch.float32)
        eps = torch.randn(512, 2)
        a = schedule.alpha(t, torch)[:, None]
        sig = torch.sqrt(1.0 - a * a)
        x = a * data[idx] + sig * eps
        out = net(x, t)  # σ s_θ
        w = schedule.g2(t, torch) / (sig[:, 0] ** 2)  # λ/σ² with λ = g²
        loss = (w * ((out + eps) ** 2).sum(dim=1)).mean()
        for group in opt.param_groups:
            group["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * k / steps))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net = net.double().eval()

    def score(x, t):
        x = np.asarray(x, dtype=float)
        with torch.no_grad():
            tt = torch.full((x.shape[0],), float(t), dtype=torch.float64)
            out = net(torch.as_tensor(x.reshape(-1, 2)), tt).numpy()
        sig = math.sqrt(1.0 - float(schedule.alpha(float(t), np)) ** 2)
        return (out / sig).reshape(x.shape)

    return score, losses


def _datasets(n: int, rng):
    """The paper's 2D sets: Swiss roll (sklearn's make_swiss_roll(noise=0.5) columns 0 and 2,
    divided by 6.865; = bridgesolve.learn's swiss_roll(noise=0.1, scale=5/6.865)) and 25
    Gaussians at (2i, 2j), std 0.05, divided by 2.828 (an exact mixture)."""
    import bridgesolve as bs
    from bridgesolve.learn.data import swiss_roll

    roll = swiss_roll(noise=0.1, scale=5.0 / 6.865).sample(n, rng)
    means = np.array([[2.0 * i, 2.0 * j] for i in range(-2, 3) for j in range(-2, 3)]) / 2.828
    mix = bs.GaussianMixture(np.full(25, 0.04), means, np.full(25, (0.05 / 2.828) ** 2))
    return {"swiss_roll": (roll, None), "25_gaussians": (mix.sample(n, rng), mix)}


def two_d_figure(out: Path, quick: bool, plt) -> dict:
    from tqdm.auto import tqdm

    import bridgesolve as bs
    from bridgesolve.likelihood import (
        generated_log_density,
        wasserstein2,
        wkb_coefficient,
    )
    from bridgesolve.sampling import sample

    rng = np.random.default_rng(1)
    # sizes: the full setting is cut to a few minutes on a 2-core CPU (timed per stage: the
    # 𝔥 = 1 PDE on a 64×64 P2 mesh and the WKB pass over 1000 points cost most)
    size = SIZES_2D["quick" if quick else "full"]
    n_data, n_w2, train_steps = size["n_data"], size["n_w2"], size["train_steps"]
    n_eval, ode_steps, sampler_steps = size["n_eval"], size["ode_steps"], size["sampler_steps"]
    hbars, meshes = size["hbars"], size["pde_meshes"]
    prior = bs.GaussianMixture([1.0], [[0.0, 0.0]], [1.0])
    sets = _datasets(n_data, rng)
    result = {"training": {"network": "ScoreMLP 3x128 SiLU on (x, t), output sigma*s",
                           "loss": "DSM, weight g^2, t ~ U(0.01, T)", "batch": 512,
                           "steps": train_steps, "optimizer": "Adam 2e-3, cosine decay",
                           "device": "cpu", "training_points": n_data},
              "t_min": 0.01, "nll_points": n_eval, "ode_steps": ode_steps,
              "sampler": {"method": "euler", "steps": sampler_steps, "particles": n_w2,
                          "grid": "half uniform in t, half uniform in the clock"},
              "hbar1_pde_meshes": [f"P2 {n}x{n} on [-3.5, 3.5]^2" for n in meshes],
              "sizes": size, "reduced_from_paper": {
                  "sampler_steps": "as the paper's 1000 Euler-Maruyama steps (full)",
                  "w2_particles": "reduced from the paper's 3000 samples",
                  "hbars": "reduced to 4 values in [0, 0.2]",
                  "nll_points": "NLL(0) and C averaged over n_eval data points",
                  "note": "sizes cut so that part 3 runs in a few minutes on a 2-core CPU; "
                          "the paper trained on a GPU for far longer"},
              "w2_reported": "W2^2 (squared EMD cost, as the paper's 'W2')", "runs": []}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    rows = []
    runs = tqdm(total=4, desc="2D runs", unit="run", leave=False)
    for k, (dname, (samples, mix)) in enumerate(sets.items()):
        for sname, style in (("simple", "-o"), ("cosine", "--s")):
            runs.set_postfix_str(f"{dname}, {sname}")
            sch = _Schedule(sname)
            t0 = time.perf_counter()
            score, losses = _train(sch, samples, train_steps, seed=k)
            train_s = time.perf_counter() - t0
            # half the levels uniform in t (the data end is sharp), half uniform in the
            # clock ∫D (the cosine's g² = π tan(πt/2) reaches 2000 at T = 0.999)
            grid = bs.TimeGrid(np.union1d(
                bs.TimeGrid.uniform(sch.T, ode_steps // 2, t_min=0.01).times,
                bs.TimeGrid.clock(sch.process.clock, sch.T, ode_steps // 2,
                                  t_min=0.01).times))
            prob = bs.Problem(bs.Domain.box([-4, -4], [4, 4], [4, 4]), sch.process, grid)
            x_eval = samples[:n_eval]
            t1 = time.perf_counter()
            # one characteristic pass gives log q⁰ (exact NLL at 𝔥 = 0) and C together
            wkb = wkb_coefficient(prob, score, prior, x_eval, fd_step=2e-3, full=True)
            log_q0, C = wkb["log_q0"], wkb["C"]
            wkb_s = time.perf_counter() - t1
            nll0 = -float(np.mean(log_q0))
            slope = -float(np.mean(C))
            row = {"data": dname, "schedule": sname, "train_s": train_s, "wkb_s": wkb_s,
                   "final_loss": float(np.mean(losses[-50:])), "nll_hbar0": nll0,
                   "nll_slope_wkb": slope, "nll_hbar1_wkb_estimate": nll0 + slope,
                   "C_median": float(np.median(C)), "C_mean": float(np.mean(C))}
            if mix is not None:
                row["data_entropy"] = -float(np.mean(mix.log_pdf(x_eval)))
            t1 = time.perf_counter()
            if dname == "swiss_roll":
                # 𝔥 = 1 on the mesh: the learned density must be resolved; two meshes
                for n_cells in meshes:
                    pm = bs.Problem(bs.Domain.box([-3.5, -3.5], [3.5, 3.5], [n_cells] * 2),
                                    sch.process, grid, degree=2)
                    L = generated_log_density(pm, score, prior, hbar=1.0)
                    vals = L.evaluate(x_eval, 0.01)
                    row[f"nll_hbar1_pde_P2_{n_cells}x{n_cells}"] = -float(np.nanmean(vals))
            row["pde_s"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            w2 = []
            sgrid = bs.TimeGrid(np.union1d(
                bs.TimeGrid.uniform(sch.T, sampler_steps // 2, t_min=0.01).times,
                bs.TimeGrid.clock(sch.process.clock, sch.T, sampler_steps // 2,
                                  t_min=0.01).times))
            for hb in hbars:
                # the same prior draws and noise stream for every 𝔥 (common random numbers)
                x = sample(sch.process, score, math.sqrt(hb), n_w2, grid=sgrid, prior=prior,
                           method="euler", rng=np.random.default_rng(100 + k),
                           progress=False)
                w2.append(wasserstein2(x, samples[:n_w2], squared=True))
            row["hbar"], row["w2_squared"] = hbars, w2
            row["w2_s"] = time.perf_counter() - t1
            runs.update()
            rows.append(row)
            axes[k].plot(hbars, w2, style, label=f"{sname} schedule")
            # NLL(ℏ): exact at 0 (characteristics), its WKB tangent, the PDE at ℏ = 1
            col = "C0" if sname == "simple" else "C1"
            mark = "o" if dname == "swiss_roll" else "s"
            lab = f"{dname.replace('_', ' ')}, {sname}"
            hf = np.linspace(0.0, 1.0, 11)
            axes[2].plot(hf, nll0 + slope * hf, ls="--" if k else ":", color=col, lw=1.2,
                         label=f"{lab}: tangent NLL(0) − ℏ E C")
            axes[2].plot([0.0], [nll0], mark, color=col)
            pde = [v for key, v in row.items() if key.startswith("nll_hbar1_pde")]
            if pde:
                axes[2].plot([1.0], [pde[-1]], mark, color=col, mfc="none", ms=9)
        if len(samples) >= 2 * n_w2:
            # sampling noise floor: two disjoint data subsets of the same size
            floor = wasserstein2(samples[:n_w2], samples[n_w2:2 * n_w2], squared=True)
            result.setdefault("w2_squared_data_vs_data", {})[dname] = floor
            axes[k].axhline(floor, color="k", ls=":", lw=1,
                            label=f"data vs data ({n_w2} + {n_w2} points)")
        axes[k].set(xlabel="ℏ = h²", ylabel="$W_2^2$ (EMD, squared cost) to the data",
                    title=f"{dname.replace('_', ' ')}: $W_2^2$ vs ℏ")
        axes[k].legend(fontsize=8)
        axes[k].grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles, _ = axes[2].get_legend_handles_labels()
    handles += [Line2D([], [], color="gray", marker="o", ls="none",
                       label="exact ℏ = 0 (characteristics); o roll, □ 25 G."),
                Line2D([], [], color="gray", marker="o", mfc="none", ms=9, ls="none",
                       label="exact ℏ = 1 (log-domain PDE, roll only)")]
    axes[2].set(xlabel="ℏ = h²", ylabel="NLL of the data under $q^ℏ_{0.01}$ (nats)",
                title="NLL(ℏ): exact values and WKB tangents")
    axes[2].legend(handles=handles, fontsize=7)
    axes[2].grid(alpha=0.3)
    fig.suptitle(f"2D sets, CPU-trained score network ({train_steps} Adam steps); W2²: "
                 f"{n_w2} particles after {sampler_steps} Euler steps vs {n_w2} data points; "
                 "ℏ = h²", fontsize=10)
    fig.tight_layout()
    runs.close()
    fig.savefig(out / "w2_2d.png", dpi=90)
    plt.close(fig)
    result["runs"] = rows
    lines = ["| data | schedule | NLL(ℏ=0), exact | d NLL/dℏ = −E C (WKB) | NLL(0) − E C "
             "(WKB at ℏ=1) | NLL(ℏ=1), PDE, fine (coarse) mesh | W2²(0) | W2²(0.2) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pde = [v for key, v in r.items() if key.startswith("nll_hbar1_pde")]
        lines.append(f"| {r['data']} | {r['schedule']} | {r['nll_hbar0']:.3f} | "
                     f"{r['nll_slope_wkb']:.3f} | {r['nll_hbar1_wkb_estimate']:.3f} | "
                     f"{pde[-1]:.3f} ({pde[0]:.3f}) |" if pde else
                     f"| {r['data']} | {r['schedule']} | {r['nll_hbar0']:.3f} | "
                     f"{r['nll_slope_wkb']:.3f} | {r['nll_hbar1_wkb_estimate']:.3f} | "
                     + ("— (--quick) |" if r["data"] == "swiss_roll" else
                        "— (std 0.018: no mesh resolves it) |"))
        lines[-1] += f" {r['w2_squared'][0]:.4f} | {r['w2_squared'][-1]:.4f} |"
    (out / "table_2d.md").write_text("\n".join(lines) + "\n")
    return result


STAGES = [("gaussian_model", gaussian_model_figure), ("two_gaussians", two_gaussians_figure),
          ("two_d", two_d_figure)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default=f"results/figures/{NAME}",
                    help="folder for the PNGs and numbers.json")
    ap.add_argument("--quick", action="store_true",
                    help="coarse meshes, few steps and particles (under a minute)")
    ap.add_argument("--part", type=int, action="append", choices=(1, 2, 3),
                    help="run only this part (repeatable; default: all three)")
    args = ap.parse_args(argv)
    stages = [s for i, s in enumerate(STAGES, 1) if not args.part or i in args.part]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    numbers: dict = {"paper": "Hirono, Tanaka & Fukushima, ICML 2024 (arXiv 2403.11262)",
                     "convention": "hbar = h^2 (noise sqrt(hbar) g)", "quick": args.quick,
                     "timings_s": {}}
    with tqdm(stages, desc="hirono-2024", unit="figure") as bar:
        for name, stage in bar:
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            numbers[name] = stage(out, args.quick, plt)
            numbers["timings_s"][name] = time.perf_counter() - t0
            # after every stage: a long run that is stopped keeps what it has
            (out / "numbers.json").write_text(json.dumps(numbers, indent=2, default=float)
                                              + "\n")
    print(f"wrote {len(stages)} figures and numbers.json to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
