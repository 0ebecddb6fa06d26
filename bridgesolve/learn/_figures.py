"""Figures and the text table of a :class:`~bridgesolve.learn.validation.ValidationReport`
(matplotlib, headless).

All plots use the bundle's quadrature points directly (triangulated contours in 2D, sorted
lines in 1D; 3D bundles show the slab of points nearest the mid-plane z).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bridgesolve.learn._report import bundle_words
from bridgesolve.plotting import _pyplot


def _levels(times: np.ndarray, wanted, t_range) -> list[int]:
    if wanted is None:
        lo, hi = t_range
        wanted = [lo + f * (hi - lo) for f in (0.1, 0.5, 0.9)]
    return sorted({int(np.argmin(np.abs(times - t))) for t in wanted})


def _plane(pts: np.ndarray) -> np.ndarray:
    """Indices of the points shown in 2D panels (all in 2D; the mid-z slab in 3D)."""
    if pts.shape[1] < 3:
        return np.arange(pts.shape[0])
    z = pts[:, 2]
    zs = np.unique(np.round(z, 12))
    mid = zs[np.argmin(np.abs(zs - np.median(z)))]
    return np.nonzero(np.abs(z - mid) <= 1e-9 + 0.5 * np.min(np.diff(zs), initial=1.0))[0]


def _panel(ax, pts, values, *, title, cmap="viridis"):
    if pts.shape[1] == 1:
        order = np.argsort(pts[:, 0])
        ax.plot(pts[order, 0], values[order])
        ax.set_xlabel("x")
    else:
        # Non-negative fields (densities, weighted errors): bands from 0, so that round-off
        # around 0 in the tails falls in one band instead of hatching the background.
        values = np.maximum(values, 0.0)
        top = float(values.max()) if values.size and values.max() > 0 else 1.0
        tc = ax.tricontourf(pts[:, 0], pts[:, 1], values, levels=np.linspace(0.0, top, 31),
                            cmap=cmap)
        ax.figure.colorbar(tc, ax=ax, shrink=0.8)
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    ax.set_title(title, fontsize=9)


def _pos(v) -> np.ndarray:
    """Values for a log axis: zeros (an exact score) are left out rather than drawn at 1e-300."""
    v = np.asarray(v, dtype=float)
    return np.where(v > 0, v, np.nan)


def write_all(report, folder: Path) -> list[Path]:
    """The validation figures in ``folder``: error against t, error maps, learned against
    reference score fields and (when computed) the generated laws q_h against ρ0."""
    plt = _pyplot()
    d, P = report.data, report._plot
    folder.mkdir(parents=True, exist_ok=True)
    out = [_error_vs_t(plt, d, P, folder)]
    levels = _levels(P["times"], P["plot_times"], P["t_range"])
    sel = _plane(P["points"])
    out.append(_error_maps(plt, P, levels, sel, folder))
    out.append(_score_fields(plt, P, levels, sel, folder))
    if P.get("q"):
        out.append(_generated_laws(plt, P, sel, folder))
    return out


def _save(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _error_vs_t(plt, d, P, folder: Path) -> Path:
    times = P["times"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    esm = d["esm"]
    axes[0].semilogy(times, _pos(esm["per_time"]), label="E_p|s - ∇log p|²")
    axes[0].semilogy(times, esm["fisher"], "--", label="E_p|∇log p|²")
    acc = (d.get("accuracy") or {}).get("per_time")
    if acc is not None:
        axes[0].semilogy(times, _pos(acc), "-.", color="0.5", label="bundle's own error ε")
    if len(d["dsm"].get("times", [])):
        axes[0].semilogy(d["dsm"]["times"], _pos(np.abs(d["dsm"]["residual"])), ":",
                         label="|DSM - ESM - C| (MC)")
    axes[1].semilogy(times, _pos(esm["relative"]))
    for ax in axes:
        ax.axvspan(*P["t_range"], color="0.92", zorder=-1)
        ax.set_xlabel("t")
        finite = [v for line in ax.get_lines() for v in np.asarray(line.get_ydata(), float)
                  if np.isfinite(v) and v > 0]
        if finite and max(finite) < 2.0 * min(finite):  # a flat curve: give the log axis room
            ax.set_ylim(0.5 * min(finite), 2.0 * max(finite))
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel("E_p|s - ∇log p|²  (squared score × mass)")
    axes[1].set_ylabel("relative error")
    axes[0].set_title("explicit score-matching error per time")
    axes[1].set_title("relative error sqrt(E_p|s-∇log p|² / E_p|∇log p|²)")
    return _save(plt, fig, folder / "error_vs_t.png")


def _error_maps(plt, P, levels, sel, folder: Path) -> Path:
    """Spatial maps of the p-weighted squared error."""
    times, p, q2 = P["times"], P["density"], P["points"][sel]
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.6),
                             constrained_layout=True, squeeze=False)
    for ax, n in zip(axes[0], levels, strict=True):
        _panel(ax, q2, (p[n] * P["err2"][n])[sel], title=f"p |s - ∇log p|², t = {times[n]:.3g}",
               cmap="magma")
    return _save(plt, fig, folder / "error_maps.png")


def _score_fields(plt, P, levels, sel, folder: Path) -> Path:
    """Learned against reference score: curves in 1D, arrows where the density is in 2D+."""
    pts, times, p = P["points"], P["times"], P["density"]
    q2 = pts[sel]
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.8),
                             constrained_layout=True, squeeze=False)
    learned = P["score"].at_levels(pts[sel], times[levels])
    rng = np.random.default_rng(0)
    for ax, k, n in zip(axes[0], range(len(levels)), levels, strict=True):
        ref = P["score_ref"][n][sel]
        if pts.shape[1] == 1:
            order = np.argsort(q2[:, 0])
            ax.plot(q2[order, 0], ref[order, 0], "k", label="reference")
            ax.plot(q2[order, 0], learned[k][order, 0], "r--", label="learned")
            ax.legend(fontsize=8)
        else:
            # arrows where the density is: points drawn with probability ∝ p w
            prob = np.maximum(p[n][sel] * P["weights"][sel], 0)
            m = min(300, sel.size)
            idx = rng.choice(sel.size, size=m, replace=False, p=prob / prob.sum())
            scale = np.percentile(np.linalg.norm(ref[idx, :2], axis=1), 90) * 15 + 1e-12
            ax.quiver(q2[idx, 0], q2[idx, 1], ref[idx, 0], ref[idx, 1], color="k",
                      angles="xy", scale=scale, width=0.004, label="reference")
            ax.quiver(q2[idx, 0], q2[idx, 1], learned[k][idx, 0], learned[k][idx, 1],
                      color="r", angles="xy", scale=scale, width=0.003, alpha=0.7,
                      label="learned")
            ax.set_aspect("equal")
            ax.legend(fontsize=8, loc="upper right")
        ax.set_title(f"score, t = {times[n]:.3g}", fontsize=9)
    return _save(plt, fig, folder / "score_fields.png")


def _generated_laws(plt, P, sel, folder: Path) -> Path:
    """q_h of the sampler at each h against ρ0."""
    pts, p = P["points"], P["density"]
    panels = [("ρ0", p[0])] + [(f"q_h, h = {h:g}", v) for h, v in P["q"].items()]
    if pts.shape[1] == 1:
        fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
        order = np.argsort(pts[:, 0])
        for name, v in panels:
            ax.plot(pts[order, 0], v[order], "k" if name == "ρ0" else "--", label=name)
        ax.legend(fontsize=8)
        ax.set_xlabel("x")
    else:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6),
                                 constrained_layout=True, squeeze=False)
        for ax, (name, v) in zip(axes[0], panels, strict=True):
            _panel(ax, pts[sel], v[sel], title=name)
    return _save(plt, fig, folder / "q_h.png")


# -- the text table ----------------------------------------------------------------------------
def _fmt(v, spec: str, width: int) -> str:
    return f"{v:{width}{spec}}" if v is not None and np.isfinite(v) else f"{'-':>{width}}"


def table(d: dict) -> str:
    """The plain-text summary of a validation report's data (``ValidationReport.table``)."""
    esm, acc, act = d["esm"], d.get("accuracy") or {}, d.get("action") or {}
    eps = acc.get("per_time")
    lines = [f"score: {d['score']}   bundle: {bundle_words(d['bundle'])}",
             f"{'t':>9} {'E_p|s-∇log p|²':>15} {'bundle ε':>10} {'relative':>9} "
             f"{'E_p|∇log p|²':>13} {'DSM (MC)':>11} {'± 1 s.e.':>9} {'DSM-ESM':>11} "
             f"{'C(t)':>11} {'DSM-ESM-C':>10}"]
    dsm = d["dsm"]
    dsm_at = {t: i for i, t in enumerate(dsm.get("times", []))}
    for n, t in enumerate(esm["times"]):
        row = (f"{t:9.4g} {esm['per_time'][n]:15.4e} "
               f"{_fmt(None if eps is None else eps[n], '.3e', 10)} {esm['relative'][n]:9.4f} "
               f"{esm['fisher'][n]:13.4e}")
        if t in dsm_at:
            i = dsm_at[t]
            row += (f" {dsm['per_time'][i]:11.4e} {dsm['stderr'][i]:9.2e} "
                    f"{dsm['dsm_minus_esm'][i]:11.4e} {dsm['C_per_time'][i]:11.4e} "
                    f"{dsm['residual'][i]:10.2e}")
        lines.append(row)
    lines.append("")
    lines += _accuracy_lines(acc)
    lines.append(f"J_ESM = ∫λ e dt (λ = {d['weighting']}, t in [{d['t_range'][0]:g}, "
                 f"{d['t_range'][1]:g}])  {esm['integrated']:.6e}"
                 + (f"   bundle's own ∫λ ε dt {acc['integrated']:.3e}"
                    if acc.get("integrated") is not None else ""))
    lines += _action_lines(act)
    if "skipped" in dsm:
        lines += [f"denoising loss, bound and KL: skipped ({dsm['skipped']})"]
        lines += [f"note: {n}" for n in d["notes"]]
        return "\n".join(lines)
    lines += _dsm_lines(d)
    lines += _bound_lines(d)
    lines += [f"note: {n}" for n in d["notes"]]
    return "\n".join(lines)


def _accuracy_lines(acc: dict) -> list[str]:
    if acc.get("per_time") is None:
        return [f"bundle accuracy: unknown ({acc.get('why', 'no estimate')})"]
    verdict = "small" if acc["small"] else "NOT small"
    return [f"bundle accuracy ({acc['method']}): sqrt(ε/e) up to {acc['worst_ratio']:.3g} in "
            f"the window: {verdict} against the measured error (< 0.1)"]


def _action_lines(act: dict) -> list[str]:
    if not act:
        return []
    out = [f"excess action A[g² s] - A* = ½∫g² E_p|s-∇log p|² dt  {act['excess']:.6e}"
           " (the ESM with weight g²/2)"]
    if "excess_exact" in act:
        out.append(f"  against the exact law                     {act['excess_exact']:.6e}")
    if "own_law" in act:
        out.append(f"  under the h = 1 sampler's own law q_1      {act['own_law']:.6e}")
    return out


def _z_words(z: float) -> str:
    return f"|z| = {abs(z):.2f} {'<=' if abs(z) <= 4 else '>'} 4"


def _dsm_lines(d: dict) -> list[str]:
    dsm, esm = d["dsm"], d["esm"]
    lines = [
        "",
        f"weighting λ = {d['weighting']}, {len(dsm['times'])} levels from {dsm['times'][0]:g}:",
        f"  J_ESM = ∫λ e dt            {esm['integrated']:.6e}",
        f"  J_DSM (Monte Carlo)        {dsm['integrated']:.6e} ± {dsm['stderr_integrated']:.2e}"
        f"  ({dsm['n_mc']} samples per time)",
        f"  C = ∫λ (d/σ² - E|∇log p|²) {dsm['C']:.6e}",
        f"  J_DSM - J_ESM - C          {dsm['identity_residual']:.3e}  ({_z_words(dsm['z'])}"
        f"{'' if abs(dsm['z']) <= 4 else ': beyond Monte Carlo error'})",
    ]
    ex = d.get("exact")
    if ex and "z" in ex:
        lines += [
            "  against the exact law of the data mixture (no bundle discretization):",
            f"    J_ESM                    {ex['J_esm']:.6e}",
            f"    C                        {ex['C']:.6e}",
            f"    J_DSM - J_ESM - C        {ex['identity_residual']:.3e}  ({_z_words(ex['z'])})",
            f"    bundle's own ∫λ E_p|∇log p_h - ∇log p|² {ex['J_bundle_error']:.3e}",
        ]
    used = ex["z"] if ex and "z" in ex else dsm["z"]
    against = "the exact law" if dsm.get("verdict_against") == "exact" else "the bundle"
    lines.append(f"  identity: {'consistent' if dsm['consistent'] else 'INCONSISTENT'} "
                 f"against {against} ({_z_words(used)})")
    if dsm.get("verdict_against") == "exact" and not dsm.get("consistent_bundle", True):
        lines.append("    (against the bundle it is not: the residual there is the bundle's "
                     "discretization error, see 'bundle accuracy')")
    return lines


def _bound_lines(d: dict) -> list[str]:
    b, kl = d["bound"], d["kl"]
    lines = ["", f"KL(p_T ‖ π)                  {b['kl_prior']:.6e}",
             f"½ ∫ g² e dt from t = {b['t_start']:<7g} {b['score_term']:.6e}  "
             f"(e against the {b['against']} law)",
             f"bound on KL(ρ0 ‖ q_1)        {b['bound']:.6e}"]
    if "skipped" in kl:
        lines.append(f"KL(ρ0 ‖ q_h): skipped ({kl['skipped']})")
        return lines
    for h, k, nll in zip(kl["h"], kl["kl"], kl["nll"], strict=True):
        lines.append(f"KL(ρ0 ‖ q_h), h = {h:<4g}      {k:.6e}   NLL {nll:.6f} nats")
    if b.get("holds") is not None:
        lines.append(f"bound holds for h = 1: {b['holds']} (KL {b['kl_h1']:.4e} <= "
                     f"{b['bound']:.4e} + {b['tolerance']:g} for q_1's discretization;"
                     f" without it: {b['kl_h1'] <= b['bound']})")
    return lines
