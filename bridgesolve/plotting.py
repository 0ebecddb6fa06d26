"""Figures of space-time fields (matplotlib, headless).

Functions that sample a field are collective (``SpaceTimeField.evaluate`` is): every rank
calls them, rank 0 writes the file. Matplotlib is imported inside the functions so that
importing bridgesolve stays cheap and never picks an interactive backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from bridgesolve._validate import BridgesolveInputError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sampling_grid(field, n: int, slice_z: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of a regular grid over the mesh's bounding box (3D: the plane ``z =
    slice_z``, default its mid-plane in z).

    Returns ``(points, lower, upper)``; 1D grids have ``4 n`` points, 2D and 3D ``n × n``
    in row-major order (y slowest), ready for ``imshow(values.reshape(n, n))``.
    """
    from bridgesolve._dolfinx import MPI

    mesh = field.mesh
    d = mesh.geometry.dim
    x = mesh.geometry.x[:, :d]
    # Buffer-based Allreduce: the pickle-based allreduce would compare whole arrays.
    lo, hi = np.empty(d), np.empty(d)
    field.comm.Allreduce(x.min(axis=0) if x.size else np.full(d, np.inf), lo, op=MPI.MIN)
    field.comm.Allreduce(x.max(axis=0) if x.size else np.full(d, -np.inf), hi, op=MPI.MAX)
    if d == 1:
        return np.linspace(lo[0], hi[0], 4 * n)[:, None], lo, hi
    X, Y = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    columns = [X.ravel(), Y.ravel()]
    if d == 3:
        z = 0.5 * (lo[2] + hi[2]) if slice_z is None else slice_z
        if not lo[2] <= z <= hi[2]:
            raise BridgesolveInputError(f"slice_z = {z:g}: expected a plane through the mesh, "
                                        f"z in [{lo[2]:.4g}, {hi[2]:.4g}]")
        columns.append(np.full(X.size, z))
    return np.column_stack(columns), lo, hi


def plot_field_panels(field, times: Sequence[float], path: str | os.PathLike, *,
                      label: str = "u",
                      exact: Callable[[float], Callable[[np.ndarray], np.ndarray]] | None = None,
                      n: int = 161, slice_z: float | None = None) -> None:
    """The field at ``times``: curves in 1D (the exact solution dashed), one image per
    time in 2D (points outside the mesh blank), the plane ``z = slice_z`` in 3D (default
    the mid-plane). The 2D/3D panels
    share one colour scale and one colorbar labelled ``label``: logarithmic (4 decades) for
    a non-negative field whose panel peaks differ by more than 10x, linear otherwise.

    Collective: all ranks call it; rank 0 samples the grid and writes ``path``.

    Args:
        field: a :class:`~bridgesolve.SpaceTimeField`.
        times: times in the grid's range (interpolated linearly between levels).
        path: the PNG file.
        label: the field's symbol, for axes and titles.
        exact: ``t -> (points -> values)``, drawn dashed in 1D.
        n: grid points per direction in 2D/3D (1D uses ``4 n``).
        slice_z: the plane of a 3D field (None: the bounding box's mid-plane in z).
    """
    comm = field.comm
    pts, lo, hi = _sampling_grid(field, n, slice_z)
    local = pts if comm.rank == 0 else np.zeros((0, pts.shape[1]))
    values = [field.evaluate(local, t) for t in times]
    if comm.rank != 0:
        return
    plt = _pyplot()
    d = pts.shape[1]
    if d == 1:
        fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
        for t, v in zip(times, values, strict=True):
            (line,) = ax.plot(pts[:, 0], v, label=f"t = {t:.3g}")
            if exact is not None:
                ax.plot(pts[:, 0], exact(t)(pts), "--", color=line.get_color(), lw=1)
        ax.set_xlabel("x")
        ax.set_ylabel(label)
        ax.legend(title="dashed: exact" if exact is not None else None)
    else:
        fig, axes = plt.subplots(1, len(times), figsize=(4 * len(times) + 0.8, 3.6),
                                 constrained_layout=True, squeeze=False)
        # One colour scale for all panels (they compare levels of one field). A diffusing
        # density loses its peak by orders of magnitude, so a non-negative field whose panel
        # peaks differ by more than 10x gets a shared logarithmic scale over 4 decades below
        # the overall peak (values below, and undershoots, in the bottom colour); otherwise
        # a shared linear scale.
        norm, scale_note = _shared_norm(values, plt)
        # white outside the mesh, black below the logarithmic scale
        cmap = plt.get_cmap("magma").with_extremes(bad="white", under="black")
        im = None
        for ax, t, v in zip(axes[0], times, values, strict=True):
            if scale_note:  # values <= 0 (round-off, oscillations) show as "under", not "bad"
                v = np.where(np.isnan(v), np.nan, np.maximum(v, 0.5 * norm.vmin))
            im = ax.imshow(v.reshape(n, n), origin="lower", cmap=cmap, norm=norm,
                           extent=(lo[0], hi[0], lo[1], hi[1]))
            plane = "z mid-plane" if slice_z is None else f"z = {slice_z:g}"
            ax.set_title(f"{label}, t = {t:.3g}" + (f" ({plane})" if d == 3 else ""))
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        fig.colorbar(im, ax=list(axes[0]), shrink=0.85, label=label + scale_note,
                     extend="min" if scale_note else "neither")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _shared_norm(values, plt):
    """``(norm, note)``: one colour normalization for every panel's ``values``."""
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return plt.Normalize(0.0, 1.0), ""
    lo = min(float(v.min()) for v in finite)
    hi = max(float(v.max()) for v in finite)
    peaks = [float(v.max()) for v in finite]
    # "non-negative": undershoots of a few per cent of the peak (coarse meshes) still count;
    # they show below the scale's bottom colour
    nonnegative = hi > 0 and lo >= -0.05 * hi
    if nonnegative and max(peaks) > 10.0 * max(min(peaks), 1e-300):
        from matplotlib.colors import LogNorm

        return LogNorm(vmin=hi * 1e-4, vmax=hi), " (log scale, shared)"
    if hi <= lo:
        hi = lo + 1.0
    return plt.Normalize(lo, hi), ""


def plot_series(x: np.ndarray, ys: Mapping[str, np.ndarray], path: str | os.PathLike, *,
                xlabel: str, ylabel: str, title: str | None = None, logy: bool = False) -> None:
    """Curves of scalar quantities against ``x`` (not collective: call it on one rank)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    for name, y in ys.items():
        (ax.semilogy if logy else ax.plot)(x, y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_vector_panels(vector, times: Sequence[float], path: str | os.PathLike, *,
                       density=None, label: str = "u", n: int = 21,
                       support: float = 1e-3, slice_z: float | None = None) -> None:
    """A time-dependent vector field (e.g. a bridge's control ``u = g² ∇log φ``) at ``times``.

    2D: one panel per time, arrows on an ``n × n`` grid over ``density`` (an image, when
    given), drawn only where ``density >= support · max density`` (a control is huge and
    meaningless where there is no mass); the arrow scale is shared by all panels. 1D: the
    curves ``u(x, t)``, and ``density`` below them. 3D: the plane ``z = slice_z`` (default
    the mid-plane), components x, y.

    Collective: all ranks call it; rank 0 samples the grid and writes ``path``.

    Args:
        vector: a :class:`~bridgesolve.score.VectorField` (``evaluate(points, t)``).
        times: times in the field's range.
        path: the PNG file.
        density: an optional :class:`~bridgesolve.SpaceTimeField` (e.g. the marginals).
        label: the field's symbol, for titles.
        n: arrows per direction (2D/3D); 1D curves use ``8 n`` points.
        support: relative density below which no arrow is drawn.
        slice_z: the plane of a 3D field (None: the bounding box's mid-plane in z).
    """
    comm = vector.comm
    d = vector.dim
    pts, lo, hi = _sampling_grid(vector, n if d > 1 else 2 * n, slice_z)
    fine, _, _ = _sampling_grid(vector, 4 * n, slice_z) if d > 1 else (pts, lo, hi)
    local = pts if comm.rank == 0 else np.zeros((0, d))
    local_fine = fine if comm.rank == 0 else np.zeros((0, d))
    values = [vector.evaluate(local, t) for t in times]
    rho = ([density.evaluate(local, t) for t in times] if density is not None else None)
    rho_fine = ([density.evaluate(local_fine, t) for t in times]
                if density is not None and d > 1 else None)
    if comm.rank != 0:
        return
    plt = _pyplot()
    if d == 1:
        rows = 2 if density is not None else 1
        fig, axes = plt.subplots(rows, 1, figsize=(7, 2.6 + 2.2 * rows), sharex=True,
                                 constrained_layout=True, squeeze=False)
        for k, t in enumerate(times):
            v = values[k][:, 0]
            if rho is not None:  # only where there is mass, as in 2D
                v = np.where(rho[k] >= support * np.nanmax(rho[k]), v, np.nan)
                axes[1, 0].plot(pts[:, 0], rho[k], label=f"t = {t:.3g}")
            axes[0, 0].plot(pts[:, 0], v, label=f"t = {t:.3g}")
        axes[0, 0].set_ylabel(label)
        axes[0, 0].legend()
        if rho is not None:
            axes[1, 0].set_ylabel("density")
        axes[-1, 0].set_xlabel("x")
    else:
        fig, axes = plt.subplots(1, len(times), figsize=(4 * len(times), 3.8),
                                 constrained_layout=True, squeeze=False)
        shown = []
        for k in range(len(times)):
            mask = np.all(np.isfinite(values[k]), axis=1)
            if rho is not None:
                mask &= rho[k] >= support * np.nanmax(rho[k])
            shown.append(mask)
        mags = [np.linalg.norm(v[m, :2], axis=1) for v, m in zip(values, shown, strict=True)]
        top = max((float(np.max(m)) for m in mags if m.size), default=1.0) or 1.0
        span = float(np.max(hi[:2] - lo[:2]))
        for k, (ax, t) in enumerate(zip(axes[0], times, strict=True)):
            if rho_fine is not None:
                m = 4 * n
                ax.imshow(rho_fine[k].reshape(m, m), origin="lower", cmap="Greys",
                          extent=(lo[0], hi[0], lo[1], hi[1]), alpha=0.8)
            v, m = values[k], shown[k]
            # One scale for all panels: the longest arrow is 1.5 grid spacings long.
            ax.quiver(pts[m, 0], pts[m, 1], v[m, 0], v[m, 1], mags[k], cmap="viridis",
                      angles="xy", scale_units="xy", scale=top / (1.5 * span / n),
                      clim=(0.0, top), width=0.006)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_aspect("equal")
            plane = "z mid-plane" if slice_z is None else f"z = {slice_z:g}"
            ax.set_title(f"{label}, t = {t:.3g}" + (f" ({plane})" if d == 3 else ""))
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        sm = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0.0, top))
        fig.colorbar(sm, ax=list(axes[0]), shrink=0.85, label=f"|{label}|")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_convergence_history(history: Sequence[Mapping], path: str | os.PathLike, *,
                             tol: float | None = None, title: str | None = None) -> None:
    """Marginal errors per Sinkhorn iteration (semilog y), events marked.

    Draws ``err0_L1``, ``errT_L1``, ``err0_Linf`` and ``errT_Linf`` of each record of a
    :class:`~bridgesolve.bridge.Bridge`'s ``history``; a record with an ``event`` (mode
    switch, over-relaxation change) gets a vertical line, dashed red for a mode switch,
    dotted grey otherwise, numbered ``[k]`` above the axes, its text in the legend (outside
    the axes, right); ``tol`` is a horizontal line.
    Not collective: call it on one rank.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.2), constrained_layout=True)
    its = np.array([h["iteration"] for h in history])
    styles = {"err0_L1": ("C0", "-"), "errT_L1": ("C1", "-"), "err0_Linf": ("C0", ":"),
              "errT_Linf": ("C1", ":")}
    names = {"err0_L1": "t = 0, L1", "errT_L1": "t = T, L1", "err0_Linf": "t = 0, L∞",
             "errT_Linf": "t = T, L∞"}
    for key, (color, ls) in styles.items():
        y = np.array([h.get(key, np.nan) for h in history], dtype=float)
        y = np.where(np.isfinite(y) & (y > 0), y, np.nan)
        if np.any(np.isfinite(y)):
            ax.semilogy(its, y, color=color, ls=ls, marker="." if ls == "-" else None,
                        label=names[key])
    if tol is not None:
        ax.axhline(tol, color="k", lw=0.8, ls="--", label=f"tol = {tol:g}")
    # Events: a vertical line each, numbered above the axes (outside the data area, so no
    # label covers a curve or is cut off); the numbered texts go into the legend, which
    # sits outside the axes on the right.
    events = [(h["iteration"], h["event"]) for h in history if h.get("event")]
    for k, (it, event) in enumerate(events, start=1):
        switch = "switch" in event
        color = "C3" if switch else "0.45"
        text = event if len(event) <= 60 else event[:57] + "..."
        ax.axvline(it - 0.5, color=color, ls="--" if switch else ":", lw=1.0,
                   label=f"[{k}] iteration {it}: {text}")
        ax.annotate(f"[{k}]", (it - 0.5, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7, color=color, annotation_clip=False)
    modes = list(dict.fromkeys(h.get("mode", "") for h in history))
    ax.set_xlabel("iteration")
    ax.set_ylabel("marginal error")
    ax.set_title(title or f"Sinkhorn–Fortet iterations ({' → '.join(modes)} mode)", pad=12)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.savefig(path, dpi=110)
    plt.close(fig)
