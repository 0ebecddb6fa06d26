r"""Premkumar, "Generative Diffusion From An Action Principle", arXiv 2310.04490 (2023).

The paper has no numerical experiments: what it offers are identities. This script computes
each of them from finite-element solutions (bridgesolve) and draws the closed forms beside
the computed values.

**Set-up.** Forward VP process ``dX = -½β X dt + √β dW`` (β from 0.1 to 10 on [0, 1]) from a
2D two-component Gaussian mixture ``p₀`` (non-Gaussian), on the box [-5, 5]² with P2 elements
and Crank–Nicolson steps. Its marginals ``p_t`` are the mixture pushed through the process
(closed form), its invariant law ``p_∞ = N(0, I)``.

**Reverse diffusion as optimal control** (:mod:`bridgesolve.action`). In reverse time the
reference is the stationary (reversible) VP process, whose reverse-time drift is ``f``; a
control ``u`` makes it ``f + u``. The law ``q`` of the controlled process is a Fokker–Planck
solution on the mesh, started from ``p_T`` at ``t = T``; its action is
``A[u] = ∫ E_q|u|²/(2g²) dt`` and, with the end cost ``E[u] = E_{q₀}[\ln p_∞ - \ln p₀] +
KL(p₀‖p_∞)`` (which vanishes when ``q₀ = p₀``), ``J[u] = A[u] + E[u]``.

1. **Action = KL.** The optimal control ``u* = g²(∇\ln p_t - ∇\ln p_∞)`` (the score) has
   ``A* = ∫ (g²/2) E_{p_t}|∇\ln p_t - ∇\ln p_∞|² dt = KL(p₀‖p_∞) - KL(p_T‖p_∞)``.
2. **Excess action = explicit score matching.** For ``s = ∇\ln p + δη``,
   ``J(δ) - A* = ∫ (g²/2) E_{q_t}|s - ∇\ln p_t|² dt`` exactly (Girsanov, the controlled
   law ``q``), ``= κδ² + O(δ³)`` with ``κ = ∫ (g²/2) E_{p_t}|η|² dt``: parabolas with their
   minimum ``A*`` at δ = 0. The action alone is *not* minimal at δ = 0 (``u = 0`` has action
   0): the end cost is what makes the score optimal.
3. **DSM - ESM = C(t) = d/σ_t² - E_{p_t}|∇\ln p_t|²** for every score: the denoising loss
   (Gauss–Hermite quadrature over ``(x₀, ε)``, no Monte Carlo noise) minus the explicit loss
   (mesh-free tensor Gauss quadrature) of networks at several training stages.
4. **Schrödinger bridge.** Between ``N(-1, 0.3)`` and ``N(1, 0.5)`` with the Brownian
   reference ``dX = dW`` on [0, 1] (1D, so the kinetic energy density ``ρ_t|u|²/(2g²)`` is a
   space-time map), the kinetic energy ``½∫g² E_ρ|∇\ln φ|² dt = KL(P*‖R)``; for Gaussians it
   equals the static entropic-OT value ``KL(π*‖R₀₁)`` (closed form,
   :func:`bridgesolve.gaussian_bridge_cost`), and the dynamic side has its own closed form:
   the control is ``u = H_t(x - μ_t) + μ̇`` with ``H_t`` from the Lyapunov equation
   ``HΣ_t + Σ_tH = Σ̇_t - σ²I`` (:func:`bridgesolve.action.gaussian_bridge_kinetic`).

Figures (in ``--output``):

* ``minimal_action.png``: the action rate of ``u*`` from its own FE law against the
  relative Fisher information of ``p_t`` (quadrature), and ``KL(p_t‖p_∞)``; the observed
  order of ``A_h → A*`` under refinement in the title;
* ``action_vs_delta.png``: ``J(δ)`` for three perturbations η (a linear tilt, a wave, a
  shift) on the mixture (FE markers, fitted parabolas, ``A* + κδ²`` dashed) and, for
  Gaussian data, against the exact moment-ODE curve, with the raw action ``A(δ)`` whose
  vertex is not at 0;
* ``excess_vs_esm.png``: the excess ``J[g²(s_θ - ∇\ln p_∞)] - J*`` of networks trained for
  increasing numbers of steps (``bridgesolve.learn.train``, CPU, seconds each) against
  their ESM with weight g²/2 under the sampler's own law ``q`` (filled markers: the exact
  identity, on y = x to discretization error) and under the data's law ``p`` (open
  markers: the validator's number, which agrees only to third order in the score error and
  is far off for the poorly trained networks); and ``DSM - ESM`` per time for every network
  on top of ``C(t)``. The networks' controls vary fast in t, so this stage runs on a 24²
  mesh with 160 steps (the identity's residual is 5% at 40 steps, 0.3% at 160);
* ``kinetic_energy.png``: the bridge's kinetic energy density over (t, x) from the FE bridge
  with the closed-form contours, and its rate over time (FE, closed form), with the totals
  and the static entropic-OT value.

``numbers.json`` holds the key values beside their closed forms.

Run: ``python examples/papers/premkumar_2023.py [-o DIR] [--quick]`` or
``bridgesolve figures premkumar-2023``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

NAME = "premkumar_2023"

QUICK = {"cells": 12, "steps": 12, "ladder": [(6, 6), (12, 12)], "deltas": [-0.3, 0.0, 0.3],
         "train_steps": [20, 80], "gh_nodes": 8, "bridge": (80, 40), "dsm_times": 6,
         "fine": (24, 8), "curve_times": 41, "curve_deltas": 13, "nets": (12, 12)}
FULL = {"cells": 32, "steps": 40, "ladder": [(10, 10), (20, 20), (40, 40)],
        "deltas": [-0.4, -0.2, 0.0, 0.2, 0.4], "train_steps": [30, 100, 300, 1000, 3000],
        "gh_nodes": 12, "bridge": (160, 80), "dsm_times": 12,
        "fine": (48, 10), "curve_times": 201, "curve_deltas": 41,
        "nets": (24, 160)}


def _setup():
    import bridgesolve as bs

    vp = bs.VP(beta_min=0.1, beta_max=10.0)
    mix = bs.GaussianMixture([0.4, 0.6], [[-1.2, -0.6], [1.0, 0.8]],
                             [[[0.25, 0.08], [0.08, 0.2]], [[0.3, -0.1], [-0.1, 0.25]]])
    gauss = bs.GaussianMixture([1.0], [[0.5, -0.3]], [[[0.4, 0.1], [0.1, 0.3]]])
    return bs, vp, mix, gauss


def _problem(bs, vp, cells, steps):
    return bs.Problem(bs.Domain.box([-5.0, -5.0], [5.0, 5.0], [cells, cells]), vp,
                      bs.TimeGrid.uniform(1.0, steps), degree=2)


def _style(plt):
    plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
                         "font.size": 9, "legend.fontsize": 8, "axes.titlesize": 10})


# -- 1. minimal action = KL -------------------------------------------------------------------
def minimal_action_figure(plt, out: Path, cfg: dict, state: dict) -> dict:
    from bridgesolve import action as ac

    bs, vp, mix, _ = _setup()
    fine = _problem(bs, vp, cfg["fine"][0], 1)
    qdeg = cfg["fine"][1]
    ma = ac.minimal_action(mix, vp, 1.0, problem=fine, degree=qdeg)
    pT = mix.evolve(vp, 1.0)
    u_star = ac.optimal_control(mix, vp)
    errs, hs = [], []
    for cells, steps in cfg["ladder"]:
        r = ac.control_action(_problem(bs, vp, cells, steps), pT, u_star,
                              reference="stationary", target=mix)
        errs.append(r.action - ma["value"])
        hs.append(10.0 / cells)
    orders = (np.diff(np.log(np.abs(errs))) / np.diff(np.log(hs))).tolist()
    problem = _problem(bs, vp, cfg["cells"], cfg["steps"])
    star = ac.control_action(problem, pT, u_star, reference="stationary", target=mix)
    state["problem"], state["star"], state["A*"] = problem, star, ma["value"]
    tt = np.linspace(0.0, 1.0, cfg["curve_times"])
    fisher = ac.relative_fisher_rate(mix, vp, tt, problem=fine, degree=qdeg)
    tk = np.linspace(0.0, 1.0, 21)
    kl_t = [ac.kl_quadrature(mix.evolve(vp, t) if t > 0 else mix, ac.stationary_law(vp, 2),
                             fine, degree=qdeg) for t in tk]

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    ax = axes[0]
    ax.plot(tt, fisher, "k-", label="(g²/2) E_p|∇ln p - ∇ln p_∞|² (quadrature)")
    ax.plot(star.times, star.rate, "o", ms=3, color="C1",
            label=f"E_q|u*|²/(2g²), own FE law ({cfg['cells']}², {cfg['steps']} steps)")
    ax.set_xlabel("t")
    ax.set_ylabel("action rate")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"A* = {ma['value']:.5f} (KL difference), FE action {star.action:.5f}\n"
                 f"observed orders of A_h → A* under refinement: "
                 f"{', '.join(f'{o:.2f}' for o in orders)}")
    ax = axes[1]
    ax.plot(tk, kl_t, "k.-", label="KL(p_t ‖ p_∞) (quadrature)")
    ax.axhline(ma["kl0"], color="0.6", ls=":")
    ax.axhline(ma["klT"], color="0.6", ls=":")
    ax.annotate("", xy=(0.95, ma["klT"]), xytext=(0.95, ma["kl0"]),
                arrowprops={"arrowstyle": "<->", "color": "C3"})
    ax.text(0.93, 0.5 * (ma["kl0"] + ma["klT"]),
            f"A* = KL(p₀‖p_∞) - KL(p_T‖p_∞)\n= {ma['kl0']:.4f} - {ma['klT']:.4f}",
            color="C3", ha="right", va="center")
    ax.set_xlabel("t")
    ax.set_ylabel("KL (nats)")
    ax.legend()
    ax.set_title("minimal action = KL difference (de Bruijn)")
    fig.savefig(out / "minimal_action.png")
    plt.close(fig)
    return {"A_star_closed": ma["value"], "kl0": ma["kl0"], "klT": ma["klT"],
            "A_star_fe": star.action, "kl_end_fe": star.kl_end,
            "ladder": [{"cells": c, "steps": s, "error": e}
                       for (c, s), e in zip(cfg["ladder"], errs, strict=True)],
            "observed_orders": orders,
            "fisher_integral": _fisher_integral(ac, mix, vp, fine, qdeg)}


def _fisher_integral(ac, mix, vp, fine, qdeg: int, nodes: int = 24) -> float:
    """``∫_0^1 (g²/2) E_p|∇ln p - ∇ln p_∞|² dt`` by Gauss–Legendre in t."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return float(0.5 * w @ ac.relative_fisher_rate(mix, vp, 0.5 * (x + 1.0), problem=fine,
                                                   degree=qdeg))


# -- 2. perturbations: parabolas ---------------------------------------------------------------
def _etas():
    E = np.array([[0.5, 0.2], [-0.1, 0.3]])
    c = np.array([0.3, -0.2])
    return {"tilt η = Ex": lambda x, t: x @ E.T,
            "wave η = ½ sin(x₂, x₁)": lambda x, t: 0.5 * np.sin(x[:, ::-1]),
            "shift η = c": lambda x, t: np.broadcast_to(c, x.shape).copy()}, E


def perturbation_figure(plt, out: Path, cfg: dict, state: dict) -> dict:
    from bridgesolve import action as ac
    from bridgesolve.score import mixture_score

    bs, vp, mix, gauss = _setup()
    problem, A_star = state["problem"], state["A*"]
    J_star = state["star"].total
    pT = mix.evolve(vp, 1.0)
    exact = mixture_score(mix, vp)
    deltas = np.array(cfg["deltas"])
    etas, E = _etas()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0), constrained_layout=True)
    numbers = {"A_star": A_star, "J_star_fe": J_star, "mixture": {}}
    fine_d = np.linspace(deltas.min(), deltas.max(), cfg["curve_deltas"])
    ax = axes[0]
    for k, (label, eta) in enumerate(etas.items()):
        J = []
        for dl in deltas:
            if dl == 0.0:
                J.append(J_star)
                continue

            def s(x, t, dl=dl, eta=eta):
                return exact(x, t) + dl * eta(x, t)
            J.append(ac.control_action(problem, pT, ac.score_control(s, vp),
                                       reference="stationary", target=mix).total)
        J = np.array(J)
        fit = np.polyfit(deltas, J, 2)
        kappa = ac.perturbation_curvature(eta, mix, vp, problem.grid.times, problem=problem)
        ax.plot(deltas, J, "o", color=f"C{k}")
        # the plotted curve is a cubic fit where there are points enough: the O(δ³) terms
        # (large for the tilt) tilt a quadratic fit's vertex below A*, which J never reaches
        cubic = np.polyfit(deltas, J, 3) if deltas.size >= 5 else fit
        ax.plot(fine_d, np.polyval(cubic, fine_d), "-", color=f"C{k}",
                label=f"{label}: fit {cubic[-3]:.3f} δ²"
                      + (f" {cubic[0]:+.2f} δ³" if deltas.size >= 5 else ""))
        ax.plot(fine_d, A_star + kappa * fine_d**2, "--", color=f"C{k}", alpha=0.6,
                label=f"A* + κδ², κ = {kappa:.3f}")
        numbers["mixture"][label] = {"deltas": deltas.tolist(), "J": J.tolist(),
                                     "curvature_fit": fit[0], "kappa": kappa,
                                     "vertex": -fit[1] / (2 * fit[0]),
                                     "minimum_fit": np.polyval(fit, -fit[1] / (2 * fit[0]))}
    ax.axhline(A_star, color="k", lw=0.8, ls=":", label="A* = KL(p₀‖p_∞) - KL(p_T‖p_∞)")
    ax.set_xlabel("δ")
    ax.set_ylabel("J(δ) = action + end cost (nats)")
    ax.set_title(f"2D mixture under VP: s = ∇ln p + δη (FE P2, {cfg['cells']}², "
                 f"{cfg['steps']} steps: J*_h = {J_star:.4f})")
    ax.legend(fontsize=7)
    # Gaussian data: the exact curve of the moment ODE
    ax = axes[1]
    m0, S0 = gauss.means[0], gauss.covs[0]
    K, b = ac.gaussian_optimal_control(m0, S0, vp)
    pTg = gauss.evolve(vp, 1.0)
    closed, raw = [], []
    for dl in fine_d:
        def Kd(t, dl=dl):
            return K(t) + dl * float(vp.g(t)) ** 2 * E
        g = ac.gaussian_control_action(pTg.means[0], pTg.covs[0], vp, Kd, b, T=1.0,
                                       reference="stationary", target=(m0, S0), rtol=1e-10)
        closed.append(g["total"])
        raw.append(g["action"])
    u_star = ac.optimal_control(gauss, vp)
    fe = []
    for dl in deltas:
        def u(x, t, dl=dl):
            return u_star(x, t) + dl * float(vp.g(t)) ** 2 * x @ E.T
        fe.append(ac.control_action(problem, pTg, u, reference="stationary",
                                    target=gauss).total)
    A_g = ac.minimal_action(gauss, vp, 1.0)["value"]
    ax.plot(fine_d, closed, "k-", label="J(δ), closed form (moment ODE)")
    ax.plot(deltas, fe, "o", color="C0", label="J(δ), FE")
    ax.plot(fine_d, raw, "k:", label="action A(δ) alone (closed form)")
    ax.axhline(A_g, color="C3", lw=0.8, ls="--", label="A* = KL(p₀‖p_∞) - KL(p_T‖p_∞)")
    ax.set_xlabel("δ")
    ax.set_ylabel("nats")
    ax.set_title("Gaussian data, tilt η = Ex: exact parabola, vertex at 0")
    ax.legend(fontsize=7)
    fig.savefig(out / "action_vs_delta.png")
    plt.close(fig)
    closed_at = np.interp(deltas, fine_d, closed)
    cf = np.polyfit(fine_d, closed, 2)
    numbers["gaussian_tilt"] = {"A_star": A_g, "deltas": deltas.tolist(), "J_fe": fe,
                                "J_closed": closed_at.tolist(),
                                "max_fe_minus_closed": float(np.max(np.abs(fe - closed_at))),
                                "curvature_closed": cf[0], "vertex_closed": -cf[1] / (2 * cf[0]),
                                "raw_action_argmin": float(fine_d[int(np.argmin(raw))])}
    return numbers


# -- 3. networks: excess action against ESM, DSM - ESM ----------------------------------------
def _train(bs, vp, mix, steps: int):
    from bridgesolve.learn import train

    cfg = {"data": {"type": "gaussian_mixture", **{k: v for k, v in mix.describe().items()
                                                   if k != "type"}},
           "process": {"type": "VP", "beta_min": vp.beta_min, "beta_max": vp.beta_max},
           "model": {"width": 64, "depth": 2, "fourier_features": 8},
           "train": {"steps": int(steps), "batch_size": 256, "lr": 3e-3,
                     "warmup": min(50, steps // 5), "ema": 0.9, "weighting": "g2",
                     "seed": 1, "device": "cpu", "threads": 1, "amp": False,
                     "t_min": 1e-3, "checkpoint_every": 10**9}}
    return train(cfg, progress=False)


def _tensor_gauss(box: float, cells: int, order: int):
    x, w = np.polynomial.legendre.leggauss(order)
    h = 2 * box / cells
    nodes = (-box + h * np.arange(cells)[:, None] + 0.5 * h * (x + 1)).ravel()
    wts = np.tile(0.5 * h * w, cells)
    X, Y = np.meshgrid(nodes, nodes, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], axis=1), np.outer(wts, wts).ravel()


MARKERS = ("o", "s", "^", "D", "v", "P")


def networks_figure(plt, out: Path, cfg: dict, state: dict) -> dict:
    from bridgesolve import action as ac
    from bridgesolve.learn.validation import as_numpy_score

    bs, vp, mix, _ = _setup()
    pT = mix.evolve(vp, 1.0)
    # a network's control varies fast in t: the identity's residual J - J* - ESM_q falls from
    # 5% at 40 steps to 0.3% at 160 (1000-step network), so the networks get a finer grid
    if tuple(cfg["nets"]) == (cfg["cells"], cfg["steps"]):
        problem, J_star = state["problem"], state["star"].total
    else:
        problem = _problem(bs, vp, *cfg["nets"])
        J_star = ac.control_action(problem, pT, ac.optimal_control(mix, vp),
                                   reference="stationary", target=mix).total
    pts, wts = _tensor_gauss(6.0, 24, 8)
    dsm_t = np.linspace(0.05, 1.0, cfg["dsm_times"])
    C = np.array([ac.denoising_gap(mix, vp, t, points=pts, weights=wts) for t in dsm_t])
    t_line = np.linspace(0.05, 1.0, 60)
    C_line = [ac.denoising_gap(mix, vp, t, points=pts, weights=wts) for t in t_line]
    rows = []
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0), constrained_layout=True)
    for k, steps in enumerate(cfg["train_steps"]):
        t0 = time.perf_counter()
        res = _train(bs, vp, mix, steps)
        s = as_numpy_score(res.model, device="cpu")
        train_s = time.perf_counter() - t0
        r = ac.control_action(problem, pT, ac.score_control(s, vp), reference="stationary",
                              target=mix)
        esm_p = ac.excess_action(s, mix, vp, problem.grid.times, problem=problem)["value"]
        esm_q = ac.excess_action(s, mix, vp, law=r)["value"]
        gap = np.array([ac.denoising_loss(s, mix, vp, t, nodes=cfg["gh_nodes"])
                        - ac.explicit_loss(s, mix, vp, t, points=pts, weights=wts)
                        for t in dsm_t])
        excess = r.total - J_star
        rows.append({"train_steps": steps, "train_seconds": round(train_s, 2),
                     "excess_action": excess, "esm_q_half_g2": esm_q, "esm_p_half_g2": esm_p,
                     "identity_residual_rel": (excess - esm_q) / esm_q,
                     "kl_end": r.kl_end, "dsm_minus_esm_minus_C_max_rel":
                         float(np.max(np.abs(gap - C) / np.abs(C)))})
        axes[1].plot(dsm_t, gap, MARKERS[k % len(MARKERS)], ms=9 - 1.2 * k, mfc="none",
                     color=f"C{k}", label=f"{steps} steps")
    ex = np.array([r["excess_action"] for r in rows])
    es = np.array([[r["esm_q_half_g2"], r["esm_p_half_g2"]] for r in rows])
    ax = axes[0]
    for k, r in enumerate(rows):
        ax.loglog(r["esm_q_half_g2"], r["excess_action"], "o", ms=7, color=f"C{k}",
                  label=f"{r['train_steps']} steps")
        ax.loglog(r["esm_p_half_g2"], r["excess_action"], "o", ms=7, mfc="none", color=f"C{k}")
        ax.plot([r["esm_q_half_g2"], r["esm_p_half_g2"]], [r["excess_action"]] * 2, "-",
                lw=0.6, color=f"C{k}", alpha=0.5)
    lim = [0.5 * min(es.min(), ex.min()), 2 * max(es.max(), ex.max())]
    ax.loglog(lim, lim, "k--", lw=0.8, label="y = x")
    from matplotlib.lines import Line2D

    kinds = [Line2D([], [], ls="", marker="o", color="0.3", label="filled: x = ESM under q "
                    "(own law; exact)"),
             Line2D([], [], ls="", marker="o", mfc="none", color="0.3",
                    label="open: x = ESM under p (validator)")]
    first = ax.legend(handles=kinds, loc="lower right", fontsize=7)
    ax.add_artist(first)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_xlabel("ESM with weight g²/2:  ½∫g² E|s_θ - ∇ln p_t|² dt")
    ax.set_ylabel("excess action J[g²(s_θ - ∇ln p_∞)] - J*")
    ax.set_title("networks at several training stages: J - J* = ½∫g² E_q|s_θ - ∇ln p|²")
    ax = axes[1]
    ax.plot(t_line, C_line, "k-", label="C(t) = d/σ² - E|∇ln p|²")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("DSM(t) - ESM(t)")
    ax.set_title("θ-independent: every network on C(t)")
    ax.legend(fontsize=7)
    fig.savefig(out / "excess_vs_esm.png")
    plt.close(fig)
    return {"networks": rows, "grid": {"cells": cfg["nets"][0], "steps": cfg["nets"][1]},
            "J_star_fe": J_star, "C": dict(zip([f"{t:.3f}" for t in dsm_t], C.tolist(),
                                            strict=True))}


# -- 4. the bridge's kinetic energy ---------------------------------------------------------------
def kinetic_figure(plt, out: Path, cfg: dict, state: dict) -> dict:
    from bridgesolve import action as ac

    bs, *_ = _setup()
    m0, c0, m1, c1, sig = [-1.0], [[0.3]], [1.0], [[0.5]], 1.0
    rho0 = bs.GaussianMixture([1], [m0], [c0])
    rho1 = bs.GaussianMixture([1], [m1], [c1])
    cells, steps = cfg["bridge"]
    problem = bs.Problem(bs.Domain.box([-5.0], [5.0], [cells]), bs.Brownian(sig),
                         bs.TimeGrid.uniform(1.0, steps), degree=2)
    br = bs.solve_bridge(problem, rho0, rho1, progress=False, tol=1e-10)
    cost = br.cost()
    r = ac.control_action(problem, rho0, br.control(), reference="process", target=rho1)
    closed = ac.gaussian_bridge_kinetic(m0, c0, m1, c1, sig, times=problem.grid.times)
    static = bs.gaussian_bridge_cost(m0, c0, m1, c1, sig)
    xs = np.linspace(-3.5, 3.5, 281)[:, None]
    times = problem.grid.times
    u = br.control()
    dens = np.array([br.rho.evaluate(xs, t) * u(xs, t)[:, 0] ** 2 / (2 * sig**2)
                     for t in times])
    ex = np.empty_like(dens)
    for n, t in enumerate(times):
        mu, S = closed["mean"](t)[0], closed["cov"](t)[0, 0]
        H = closed["H"](t)[0, 0]
        uc = H * (xs[:, 0] - mu) + (m1[0] - m0[0])
        rho = np.exp(-0.5 * (xs[:, 0] - mu) ** 2 / S) / np.sqrt(2 * np.pi * S)
        ex[n] = rho * uc**2 / (2 * sig**2)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.9), constrained_layout=True)
    ax = axes[0]
    pc = ax.pcolormesh(times, xs[:, 0], dens.T, shading="auto", cmap="magma")
    fig.colorbar(pc, ax=ax, label="ρ_t |u|²/(2g²)")
    ax.contour(times, xs[:, 0], ex.T, levels=6, colors="w", linewidths=0.7)
    ax.grid(False)
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title("kinetic energy density (FE; white: closed form)")
    ax = axes[1]
    ax.plot(closed["times"], closed["rate"], "k-", label="closed form (Lyapunov)")
    ax.plot(times, r.rate, "o", ms=6, mfc="none", color="C1",
            label="FE: E_q|u|²/(2g²), own law")
    ax.plot(times, cost["kinetic_rate"], "x", ms=4, color="C0",
            label="FE: ½g² ∫ρ|∇ln φ|² (Bridge.cost)")
    ax.set_xlabel("t")
    ax.set_ylabel("kinetic energy rate")
    ax.set_title(f"KL(P*‖R): FE {r.action:.5f}, dynamic {closed['value']:.5f}, "
                 f"static OT {static:.5f}")
    ax.legend(fontsize=7)
    fig.savefig(out / "kinetic_energy.png")
    plt.close(fig)
    return {"action_fe": r.action, "kinetic_fe": cost["kinetic"], "boundary_fe": cost["boundary"],
            "dynamic_closed": closed["value"], "static_entropic_ot": static,
            "kl_end_fe": r.kl_end, "density_max_abs_error": float(np.max(np.abs(dens - ex))),
            "density_peak": float(ex.max())}


STAGES = (
    ("minimal_action", minimal_action_figure),
    ("perturbations", perturbation_figure),
    ("networks", networks_figure),
    ("bridge_kinetic_energy", kinetic_figure),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default=f"results/figures/{NAME}",
                    help="output folder (default %(default)s)")
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
    numbers: dict = {"paper": "Premkumar, arXiv 2310.04490 (2023)", "quick": bool(args.quick),
                     "config": {k: v for k, v in cfg.items()}}
    state: dict = {}
    t0 = time.perf_counter()
    timings = {}
    with tqdm(STAGES, desc="premkumar-2023", unit="figure") as bar:
        for name, fn in bar:
            bar.set_postfix_str(name)
            ts = time.perf_counter()
            numbers[name] = fn(plt, out, cfg, state)
            timings[name] = round(time.perf_counter() - ts, 2)
    numbers["run"] = {"seconds": round(time.perf_counter() - t0, 1), "stage_seconds": timings}
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    print(f"wrote {len(STAGES)} figures and numbers.json to {out} "
          f"in {numbers['run']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
