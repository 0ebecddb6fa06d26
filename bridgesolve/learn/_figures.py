"""Figures of a :class:`~bridgesolve.learn.validation.ValidationReport` (matplotlib, headless).

All plots use the bundle's quadrature points directly (triangulated contours in 2D, sorted
lines in 1D; 3D bundles show the slab of points nearest the mid-plane z).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    plt = _pyplot()
    d, P = report.data, report._plot
    folder.mkdir(parents=True, exist_ok=True)
    pts, times, p = P["points"], P["times"], P["density"]
    out: list[Path] = []

    # 1. error against t
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    esm = d["esm"]
    axes[0].semilogy(times, _pos(esm["per_time"]), label="E_p|s - ∇log p|²")
    axes[0].semilogy(times, esm["fisher"], "--", label="E_p|∇log p|²")
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
    axes[0].set_title("explicit score-matching error per time")
    axes[1].set_title("relative error sqrt(E_p|s-∇log p|² / E_p|∇log p|²)")
    path = folder / "error_vs_t.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out.append(path)

    levels = _levels(times, P["plot_times"], P["t_range"])
    sel = _plane(pts)
    q2 = pts[sel]

    # 2. spatial maps of the p-weighted squared error
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.6),
                             constrained_layout=True, squeeze=False)
    for ax, n in zip(axes[0], levels, strict=True):
        _panel(ax, q2, (p[n] * P["err2"][n])[sel], title=f"p |s - ∇log p|², t = {times[n]:.3g}",
               cmap="magma")
    path = folder / "error_maps.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out.append(path)

    # 3. learned against reference score fields
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
    path = folder / "score_fields.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out.append(path)

    # 4. q_h against ρ0
    q = P.get("q") or {}
    if q:
        panels = [("ρ0", p[0])] + [(f"q_h, h = {h:g}", v) for h, v in q.items()]
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
                _panel(ax, q2, v[sel], title=name)
        path = folder / "q_h.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out
