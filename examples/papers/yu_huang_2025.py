r"""Yu & Huang, "Nonequilibrium physics of generative diffusion models", PRE 111, 014111 (2025).

Every figure of the paper's one-dimensional set-up, computed from finite-element solutions of
the Fokker–Planck equation (bridgesolve) with the closed forms (or converged quadrature) drawn
beside each computed curve.

**Set-up.** Forward OU process ``dx = -x dt + √2 dW`` (unit temperature, ``D = 1``) from the
data ``p₀ = ½N(μ, σ²) + ½N(-μ, σ²)``. With ``a = μe^{-t}`` and ``v = 1 - e^{-2t} + σ²e^{-2t}``,
``p_t = ½N(a, v) + ½N(-a, v)``. The reverse process in ``s = T - t`` is
``dx = [x + 2∂_x \ln p_{T-s}] ds + √2 dW``.

**Entropy production.** Current ``J = -xp - ∂_x p``; total rate ``Π = ∫J²/p``, flow to the
medium ``Φ = ∫J·F`` with ``F = -x`` (``= E[x²] - 1``), system rate ``dS/dt = Π - Φ``. For the
reverse process ``Π* = Π``, ``F* = x + 2∂_x \ln p``, ``Φ* = Φ + 2 dS/dt``, ``dS*/ds = -dS/dt``.
With the Fisher information ``I(t) = E[(∂_x \ln p_t)²]``: ``dS/dt = I - 1``. On the mesh these
are quadratures of the P2 solution with the gradient of its interpolated logarithm
(:func:`bridgesolve.thermo.entropy_production`); all reverse quantities are plotted against
the forward time ``t`` of the marginal ``p_t`` (the reverse process is at ``s = T - t``).

**Effective potential and speciation.** ``U(x, t) = -x²/2 - 2\ln p_t(x)`` (reverse drift
``-∂_x U``). Speciation time ``t_s``: ``∂²_x U(0, t) = 0``,
``t_s = ½\ln(μ² + \sqrt{(1 - σ²)² + μ⁴})``; bimodality time (``p_t`` itself turns bimodal)
``t_b = ½\ln(μ² + 1 - σ²)``: a different, smaller time. ``t* = \arg\min Φ*``.

**Trajectories.** ``ΔS_sys = \ln p_{start}(x_{start}) - \ln p_{end}(x_{end})``,
``ΔS_E = ∫F∘dx`` (Stratonovich midpoint), ``ΔS_tot = ΔS_sys + ΔS_E``;
``⟨e^{-ΔS_tot}⟩ = 1`` and ``⟨ΔS_tot⟩ = ∫Π dt = KL(p₀‖N(0,1)) - KL(p_T‖N(0,1))``.
Paths use the mesh density (``ln p`` at the ends, and the mesh score in the reverse drift).

**Phase diagram** over (μ, σ) (σ the standard deviation): no symmetry breaking where
``t_s < 0`` (boundary ``μ² = σ²(2 - σ²)/2``), unstable for ``σ > √2`` (``e^{-U(·, 0)}`` not
normalizable), symmetry breaking otherwise; classified from FE solves.

**Franz–Parisi potential** ``V(q) = -E_{x₀', x_t} \ln Z(q)`` with
``Z(q) = [e^{-H(x₀'+√q)} + e^{-H(x₀'-√q)}]/(2√q)``,
``H(x₀; x_t) = (x_t - x₀e^{-t})²/(2(1 - e^{-2t})) - \ln p₀(x₀)``: by quadrature
(:func:`bridgesolve.thermo.franz_parisi`), with Monte Carlo points (1e5 samples) on top.

Figures (in ``--output``):

* ``effective_potential.png``: U(x, t) at t = 1, 0.35, 0.1 (μ = σ² = 1), mesh vs closed form;
* ``entropy_production.png``: Π, Φ, dS/dt forward and Π*, Φ*, dS*/ds reverse on t ∈ [0, 3]
  (μ = 1, σ² = 0.4), t_s and t* marked;
* ``path_entropies.png``: histograms of ΔS_sys, ΔS_E, ΔS_tot and e^{-ΔS_tot} (1e4 paths,
  μ = 1, σ² = 0.1, dt = 0.01, T = 1), forward and reverse;
* ``ift_convergence.png``: ⟨e^{-ΔS_tot}⟩ against the number of paths (μ = 1, σ² = 1, T = 10);
* ``phase_diagram.png``: t_s from FE solves over (μ, σ) with the closed-form boundaries;
* ``franz_parisi.png``: V, V', V'' at t = 1 and t = 0.01 (μ = 1, σ² = 0.1).

``numbers.json`` holds the key values beside their closed forms and the differences.

Run: ``python examples/papers/yu_huang_2025.py [-o DIR] [--quick]`` or
``bridgesolve figures yu-huang-2025``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

NAME = "yu_huang_2025"

FULL = {
    "potential": {"steps": 200},
    "entropy": {"T": 3.0, "steps": 600},
    "paths": {"n": 10_000, "steps": 100},
    "ift": {"n": 10_000, "T": 10.0, "steps": 500},
    "phase": {"mus": np.linspace(0.0, 1.0, 11), "sigmas": np.linspace(0.15, 1.95, 13),
              "T": 1.5, "steps": 150},
    "franz_parisi": {"q": 120, "order": 200, "mc": 100_000, "mc_q": 10},
}
QUICK = {
    "potential": {"steps": 100},
    "entropy": {"T": 3.0, "steps": 150},
    "paths": {"n": 2_000, "steps": 100},
    "ift": {"n": 2_000, "T": 10.0, "steps": 250},
    "phase": {"mus": np.linspace(0.0, 1.0, 4), "sigmas": np.linspace(0.3, 1.8, 4),
              "T": 1.5, "steps": 60},
    "franz_parisi": {"q": 40, "order": 100, "mc": 20_000, "mc_q": 5},
}


def _compare(computed: float, reference: float, **extra) -> dict:
    return {"computed": float(computed), "closed_form": float(reference),
            "difference": float(computed - reference), **extra}


def _style(plt):
    plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
                         "font.size": 9, "legend.fontsize": 8, "axes.titlesize": 10})


# -- figures ---------------------------------------------------------------------------------
def effective_potential_figure(plt, out: Path, cfg: dict) -> dict:
    import bridgesolve as bs
    from bridgesolve.thermo import (
        SymmetricTwoGaussianOU,
        effective_potential,
        solve_two_gaussian_ou,
    )

    case = SymmetricTwoGaussianOU(1.0, 1.0)
    p = solve_two_gaussian_ou(1.0, 1.0, T=1.0, steps=cfg["steps"])
    x = np.linspace(-3.0, 3.0, 121)
    xm = x[::6]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    errs = {}
    for t, color in zip((1.0, 0.35, 0.1), ("C0", "C1", "C2"), strict=True):
        ax.plot(x, case.potential(x, t), color=color, lw=1.4, label=f"closed form, t = {t:g}")
        U = effective_potential(p, t, process=bs.OU(), x=xm[:, None])
        ax.plot(xm, U, "o", ms=4, mfc="none", color=color, label=f"finite elements, t = {t:g}")
        errs[f"t={t:g}"] = float(np.abs(U - case.potential(xm, t)).max())
    ax.set_xlabel("x (units of the OU stationary standard deviation)")
    ax.set_ylabel(r"$U(x,t) = -x^2/2 - 2\ln p_t(x)$ (units of $k_BT$)")
    ax.set_title(r"Effective potential of the reverse dynamics ($\mu = \sigma^2 = 1$)")
    ax.legend(ncol=2, loc="upper center")
    fig.tight_layout()
    fig.savefig(out / "effective_potential.png")
    plt.close(fig)
    return {"max_abs_error": errs, "mesh_dofs": int(p.values.shape[1])}


def entropy_production_figure(plt, out: Path, cfg: dict) -> dict:
    import bridgesolve as bs
    from bridgesolve.thermo import (
        SymmetricTwoGaussianOU,
        bimodality_time,
        entropy_production,
        solve_two_gaussian_ou,
        speciation_time,
    )

    case = SymmetricTwoGaussianOU(1.0, 0.4)
    p = solve_two_gaussian_ou(1.0, 0.4, T=cfg["T"], steps=cfg["steps"])
    t0 = time.perf_counter()
    fwd = entropy_production(p, process=bs.OU())
    rev = entropy_production(p, process=bs.OU(), reverse=True)
    ep_s = time.perf_counter() - t0
    t = fwd.times
    tc = np.linspace(0.0, cfg["T"], 601)
    ts_mesh = speciation_time(p, process=bs.OU())
    tb_mesh = bimodality_time(p)
    tstar_mesh, minphi_mesh = rev.argmin("flow")
    tstar, minphi = case.reverse_flow_minimum(cfg["T"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), sharex=True)
    every = max(1, t.size // 40)
    for ax, res, names, closed in (
        (axes[0], fwd, (r"$\Pi$", r"$\Phi$", r"$dS/dt$"),
         (case.total(tc), case.flow(tc), case.system(tc))),
        (axes[1], rev, (r"$\Pi^*$", r"$\Phi^*$", r"$dS^*/ds$"),
         (case.total(tc), case.flow_reverse(tc), -case.system(tc))),
    ):
        for y, cf, name, color in zip((res.total, res.flow, res.system), closed, names,
                                      ("C0", "C1", "C2"), strict=True):
            ax.plot(tc, cf, color=color, lw=1.4, label=f"{name} closed form")
            ax.plot(t[::every], y[::every], "o", ms=3.5, mfc="none", color=color,
                    label=f"{name} finite elements")
        ax.axvline(case.speciation_time, color="k", ls="--", lw=1)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xlabel(r"forward time $t$ (units of the OU relaxation time)")
        ax.set_ylabel("rate (nats per unit time)")
    axes[0].set_title(r"Forward process ($\mu = 1$, $\sigma^2 = 0.4$)")
    axes[1].set_title(r"Reverse process at $s = T - t$")
    axes[1].axvline(tstar, color="C1", ls=":", lw=1.2)
    ymax = axes[1].get_ylim()[1]
    axes[1].text(case.speciation_time + 0.03, 0.92 * ymax, r"$t_s$", fontsize=10)
    axes[1].text(tstar + 0.03, 0.80 * ymax, r"$t^*$", color="C1", fontsize=10)
    axes[0].text(case.speciation_time + 0.03, 0.92 * axes[0].get_ylim()[1], r"$t_s$",
                 fontsize=10)
    for ax in axes:
        ax.legend(ncol=2, loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "entropy_production.png")
    plt.close(fig)
    idx = [p.grid.index(s) for s in (0.5, 1.0, 2.0)]
    return {
        "Pi0": _compare(fwd.total[0], case.total(0.0)[0]),
        "t_s": _compare(ts_mesh, case.speciation_time, time_step=float(t[1] - t[0])),
        "t_b": _compare(tb_mesh, case.bimodality_time),
        "t_star": _compare(tstar_mesh, tstar),
        "min_Phi_star": _compare(minphi_mesh, minphi),
        "max_abs_error_t>=0.5": {
            "Pi": float(np.abs(fwd.total[idx] - case.total(t[idx])).max()),
            "Phi": float(np.abs(fwd.flow[idx] - case.flow(t[idx])).max()),
            "dS_dt": float(np.abs(fwd.system[idx] - case.system(t[idx])).max()),
            "Phi_star": float(np.abs(rev.flow[idx] - case.flow_reverse(t[idx])).max()),
        },
        "integral_Pi": _compare(fwd.integral(), case.kl_to_normal(0.0)[0]
                                - case.kl_to_normal(cfg["T"])[0]),
        "entropy_production_seconds": ep_s,
        "mesh_dofs": int(p.values.shape[1]), "levels": int(t.size),
    }


def path_entropy_figure(plt, out: Path, cfg: dict) -> dict:
    import bridgesolve as bs
    from bridgesolve.thermo import (
        SymmetricTwoGaussianOU,
        entropy_production,
        path_entropies,
        solve_two_gaussian_ou,
    )

    case = SymmetricTwoGaussianOU(1.0, 0.1)
    T = 1.0
    p = solve_two_gaussian_ou(1.0, 0.1, T=T, steps=cfg["steps"])
    fine = solve_two_gaussian_ou(1.0, 0.1, T=T, steps=4 * cfg["steps"])
    int_pi = entropy_production(fine, process=bs.OU()).integral()
    kl = float(case.kl_to_normal(0.0)[0] - case.kl_to_normal(T)[0])
    runs = {}
    for rev in (False, True):
        start = case.data.evolve(bs.OU(), T) if rev else case.data
        mesh = path_entropies(bs.OU(), p, cfg["n"], start=start, reverse=rev, rng=2025,
                              progress=False)
        closed = path_entropies(bs.OU(), case.data, cfg["n"], T=T, steps=cfg["steps"],
                                reverse=rev, rng=2025, progress=False)
        runs["reverse" if rev else "forward"] = (mesh, closed)
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.6))
    labels = (r"$\Delta S_{sys}$", r"$\Delta S_E$", r"$\Delta S_{tot}$",
              r"$e^{-\Delta S_{tot}}$")
    numbers = {}
    for row, (direction, (mesh, closed)) in enumerate(runs.items()):
        quantities = [(mesh.system, closed.system), (mesh.medium, closed.medium),
                      (mesh.total, closed.total),
                      (np.exp(-mesh.total), np.exp(-closed.total))]
        for col, ((qm, qc), label) in enumerate(zip(quantities, labels, strict=True)):
            ax = axes[row, col]
            # heavy tails (e^{-ΔS_tot} above all): show the central 99.8 % (98 % for the
            # exponential) and say how many paths lie beyond
            lo, hi = (0.0, np.quantile(qm, 0.98)) if col == 3 else np.quantile(qm, [1e-3, 0.999])
            bins = np.linspace(lo, hi, 61)
            beyond = float(np.mean((qm < lo) | (qm > hi)))
            ax.hist(qm, bins=bins, density=True, color="C0", alpha=0.55,
                    label="mesh density $p_h$")
            ax.hist(qc, bins=bins, density=True, histtype="step", color="k", lw=1.0,
                    label="closed-form $p_t$")
            if col == 2:
                ax.axvline(int_pi, color="C3", lw=1.5, label=r"$\int\Pi\,dt$ (PDE)")
                ax.axvline(qm.mean(), color="C0", ls="--", lw=1.2, label="path mean")
            if col == 3:
                ax.axvline(1.0, color="C3", lw=1.5, label="IFT: 1")
                ax.axvline(qm.mean(), color="C0", ls="--", lw=1.2, label="path mean")
            unit = " (nats)" if col < 3 else ""
            ax.set_xlabel(f"{label}{unit}; {100 * beyond:.1f}% of paths off the axis",
                          fontsize=8)
            ax.set_ylabel("probability density")
            ax.set_title(f"{direction}: {label}")
            if col >= 2 or (row == 0 and col == 0):
                ax.legend(fontsize=6.5, loc="upper right")
        m, se = mesh.ift()
        mt, st = mesh.mean_total()
        mc_, sec = closed.ift()
        numbers[direction] = {
            "ift_mean": _compare(m, 1.0, standard_error=se, z=(m - 1.0) / se),
            "ift_mean_closed_form_density": _compare(mc_, 1.0, standard_error=sec),
            "mean_total": _compare(mt, kl, standard_error=st, pde_integral_Pi=int_pi),
        }
    fig.suptitle(r"Trajectory entropies ($10^4$ paths, $\mu = 1$, $\sigma^2 = 0.1$, "
                 r"$dt = 0.01$, $T = 1$)" if cfg["n"] >= 10_000 else
                 f"Trajectory entropies ({cfg['n']} paths, quick run)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "path_entropies.png")
    plt.close(fig)
    numbers["note"] = ("for sigma^2 = 0.1 the forward weights e^{-dS_tot} have infinite "
                       "variance (pi(x0)^2/p0(x0) is not integrable): standard errors and "
                       "the IFT test are unreliable; see ift_convergence for sigma^2 = 1")
    return numbers


def ift_figure(plt, out: Path, cfg: dict) -> dict:
    import bridgesolve as bs
    from bridgesolve.thermo import SymmetricTwoGaussianOU, path_entropies, solve_two_gaussian_ou

    case = SymmetricTwoGaussianOU(1.0, 1.0)
    T = cfg["T"]
    p = solve_two_gaussian_ou(1.0, 1.0, T=T, steps=cfg["steps"])
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    numbers = {}
    for rev, color in ((False, "C0"), (True, "C1")):
        start = case.data.evolve(bs.OU(), T) if rev else case.data
        pe = path_entropies(bs.OU(), p, cfg["n"], start=start, reverse=rev, rng=7,
                            progress=False)
        run = pe.running_ift()
        n = np.arange(1, run.size + 1)
        w = np.exp(-pe.total)
        se = np.array([w[:k].std(ddof=1) / math.sqrt(k) if k > 1 else np.nan for k in n])
        name = "reverse" if rev else "forward"
        ax.plot(n, run, color=color, lw=1.2, label=f"{name} paths")
        ax.fill_between(n, run - se, run + se, color=color, alpha=0.2)
        m, s = pe.ift()
        numbers[name] = _compare(m, 1.0, standard_error=s, z=(m - 1.0) / s)
    ax.axhline(1.0, color="k", lw=1.0, ls="--",
               label=r"IFT: $\langle e^{-\Delta S_{tot}}\rangle=1$")
    ax.set_xscale("log")
    ax.set_xlabel("number of paths")
    ax.set_ylabel(r"running mean of $e^{-\Delta S_{tot}}$ (± 1 s.e.)")
    ax.set_title(rf"Integral fluctuation theorem ($\mu = 1$, $\sigma^2 = 1$, $T = {T:g}$)")
    ax.set_ylim(0.7, 1.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ift_convergence.png")
    plt.close(fig)
    return numbers


def phase_figure(plt, out: Path, cfg: dict) -> dict:
    from bridgesolve.thermo import REGIONS, UNSTABLE_SIGMA, no_breaking_boundary, phase_diagram

    pd = phase_diagram(cfg["mus"], cfg["sigmas"], T=cfg["T"], steps=cfg["steps"],
                       progress=False)
    fig, ax = plt.subplots(figsize=(6.0, 5.4))
    dm = np.diff(pd.mu).mean() / 2
    ds = np.diff(pd.sigma).mean() / 2
    extent = (pd.mu[0] - dm, pd.mu[-1] + dm, pd.sigma[0] - ds, pd.sigma[-1] + ds)
    shown = np.where(pd.region == 1, pd.t_s, np.nan)
    im = ax.imshow(shown, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=r"speciation time $t_s$ from FE solves")
    M, S = np.meshgrid(pd.mu, pd.sigma)
    for code, marker, color in ((0, "s", "0.35"), (2, "x", "C3")):
        sel = pd.region == code
        ax.plot(M[sel], S[sel], marker, ms=5, color=color, ls="none", mfc="none",
                label=f"FE: {REGIONS[code]}")
    sig = np.linspace(0.0, UNSTABLE_SIGMA, 200)
    ax.plot(no_breaking_boundary(sig), sig, "-", color="C1", lw=2.2,
            label=r"closed form $\mu^2 = \sigma^2(2-\sigma^2)/2$")
    ax.axhline(UNSTABLE_SIGMA, color="C3", lw=2.0, label=r"closed form $\sigma = \sqrt{2}$")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(r"$\mu$ (half-distance of the modes)")
    ax.set_ylabel(r"$\sigma$ (standard deviation of each mode)")
    ax.set_title("Phase diagram of speciation")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    fig.savefig(out / "phase_diagram.png")
    plt.close(fig)
    both = (pd.region == 1) & np.isfinite(pd.t_s)
    return {"region_agreement": pd.agreement, "grid": [int(pd.mu.size), int(pd.sigma.size)],
            "max_abs_t_s_difference": float(np.abs(pd.t_s - pd.t_s_closed)[both].max())
            if both.any() else None, "time_step": cfg["T"] / cfg["steps"],
            "seconds": pd.info["total_s"]}


def franz_parisi_figure(plt, out: Path, cfg: dict) -> dict:
    import bridgesolve as bs
    from bridgesolve.thermo import SymmetricTwoGaussianOU, franz_parisi, franz_parisi_monte_carlo

    data = SymmetricTwoGaussianOU(1.0, 0.1).data
    q = np.geomspace(0.075, 8.0, cfg["q"])
    qmc = np.geomspace(0.075, 8.0, cfg["mc_q"])
    fig, axes = plt.subplots(2, 3, figsize=(11, 6))
    numbers = {}
    for row, t in enumerate((1.0, 0.01)):
        fp = franz_parisi(data, bs.OU(), t, q, order=cfg["order"])
        ref = franz_parisi(data, bs.OU(), t, q, order=int(1.5 * cfg["order"]))
        mc, err = franz_parisi_monte_carlo(data, bs.OU(), t, qmc, n=cfg["mc"], rng=11)
        elastic = fp.info["a"] ** 2 / (2.0 * fp.info["var"])  # V ≈ a²q/(2Δ) + ... at small t
        for col, (y, yr, label, unit) in enumerate((
                (fp.V, ref.V, "V(q)", "$k_BT$"), (fp.dV, ref.dV, "V'(q)", "$k_BT$ per unit q"),
                (fp.d2V, ref.d2V, "V''(q)", "$k_BT$ per unit $q^2$"))):
            ax = axes[row, col]
            ax.plot(q, y, "C0-", lw=1.5, label=f"quadrature ({cfg['order']} nodes)")
            ax.plot(q[::4], yr[::4], "k.", ms=3,
                    label=f"quadrature ({int(1.5 * cfg['order'])} nodes)")
            if col == 0:
                ax.errorbar(qmc, mc, yerr=3 * err, fmt="o", ms=4, mfc="none", color="C3",
                            label=f"Monte Carlo ({cfg['mc']:.0e} samples, ±3 s.e.)")
                if row == 1:
                    ax.plot(q, elastic * q, "C2:", lw=1.2,
                            label=rf"elastic term $e^{{-2t}}q/(2\Delta)$ = {elastic:.2f} q")
            ax.set_xscale("log")
            ax.set_xlabel(r"overlap $q = |x_0 - x_0'|^2$")
            ax.set_ylabel(f"{label} ({unit})")
            ax.set_title(f"t = {t:g}: {label}")
            ax.legend(fontsize=6.5)
        ext = fp.extrema()
        ext_ref = ref.extrema()

        def pairs(a, b, name="V"):
            return [{"q": _compare(x[0], y[0]), name: _compare(x[1], y[1])}
                    for x, y in zip(a, b, strict=False)]

        mcfp = franz_parisi(data, bs.OU(), t, qmc, order=cfg["order"])
        numbers[f"t={t:g}"] = {
            "note": ("extrema of V and inflections (V'' = 0) on the q grid; computed: "
                     "quadrature; closed_form: quadrature with 1.5x the nodes"),
            "minima": pairs(ext["minima"], ext_ref["minima"]),
            "maxima": pairs(ext["maxima"], ext_ref["maxima"]),
            "inflections (q, V')": pairs(ext["inflections"], ext_ref["inflections"], "dV"),
            "global_min_on_grid": {"q": ext["global_min"][0], "V": ext["global_min"][1]},
            "monte_carlo_max_z": float(np.abs((mc - mcfp.V) / err).max()),
        }
    fig.suptitle(r"Franz–Parisi potential ($\mu = 1$, $\sigma^2 = 0.1$)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "franz_parisi.png")
    plt.close(fig)
    return numbers


STAGES = (
    ("effective_potential", effective_potential_figure, "potential"),
    ("entropy_production", entropy_production_figure, "entropy"),
    ("path_entropies", path_entropy_figure, "paths"),
    ("ift_convergence", ift_figure, "ift"),
    ("phase_diagram", phase_figure, "phase"),
    ("franz_parisi", franz_parisi_figure, "franz_parisi"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default=f"results/figures/{NAME}",
                    help="output folder (default results/figures/%(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="a coarse run in well under a minute (for tests)")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    _style(plt)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    cfg = QUICK if args.quick else FULL
    numbers: dict = {"paper": "Yu & Huang, Phys. Rev. E 111, 014111 (2025)",
                     "quick": bool(args.quick)}
    t0 = time.perf_counter()
    timings = {}
    with tqdm(STAGES, desc="yu-huang-2025", unit="figure") as bar:
        for name, fn, key in bar:
            bar.set_postfix_str(name)
            ts = time.perf_counter()
            numbers[name] = fn(plt, out, cfg[key])
            timings[name] = round(time.perf_counter() - ts, 2)
    numbers["run"] = {"seconds": round(time.perf_counter() - t0, 1), "stage_seconds": timings}
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    print(f"wrote {len(STAGES)} figures and numbers.json to {out} "
          f"in {numbers['run']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
