"""Figures of fields on meshes (matplotlib, headless). Collective where they sample fields."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def _grid(field, n: int):
    """A regular sampling grid over the mesh's bounding box (3D: the mid-plane in z)."""
    from bridgesolve._dolfinx import MPI

    x = field.mesh.geometry.x[:, : field.mesh.geometry.dim]
    lo = field.comm.allreduce(x.min(axis=0), MPI.MIN)
    hi = field.comm.allreduce(x.max(axis=0), MPI.MAX)
    d = lo.size
    if d == 1:
        return np.linspace(lo[0], hi[0], 4 * n)[:, None], (lo, hi)
    xs = np.linspace(lo[0], hi[0], n)
    ys = np.linspace(lo[1], hi[1], n)
    X, Y = np.meshgrid(xs, ys)
    pts = [X.ravel(), Y.ravel()]
    if d == 3:
        pts.append(np.full(X.size, 0.5 * (lo[2] + hi[2])))
    return np.column_stack(pts), (lo, hi)


def plot_field_panels(field, times: Sequence[float], path: Path, *, label: str = "u",
                      exact: Callable[[float], Callable] | None = None, n: int = 161) -> None:
    """One panel per time: curves in 1D (exact dashed), images in 2D, the z mid-plane in 3D.

    Collective: all ranks call it; rank 0 samples and writes ``path``.
    """
    comm = field.comm
    pts, (lo, hi) = _grid(field, n)
    local = pts if comm.rank == 0 else np.zeros((0, pts.shape[1]))
    values = [field.evaluate(local, t) for t in times]
    if comm.rank != 0:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = pts.shape[1]
    if d == 1:
        fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
        for t, v in zip(times, values, strict=True):
            line, = ax.plot(pts[:, 0], v, label=f"t = {t:.3g}")
            if exact is not None:
                ax.plot(pts[:, 0], exact(t)(pts), "--", color=line.get_color(), lw=1)
        ax.set_xlabel("x")
        ax.set_ylabel(label)
        ax.legend(title="dashed: exact" if exact else None)
    else:
        fig, axes = plt.subplots(1, len(times), figsize=(4 * len(times), 3.6),
                                 constrained_layout=True, squeeze=False)
        for ax, t, v in zip(axes[0], times, values, strict=True):
            im = ax.imshow(v.reshape(n, n), origin="lower", cmap="magma",
                           extent=(lo[0], hi[0], lo[1], hi[1]))
            ax.set_title(f"{label}, t = {t:.3g}" + (" (z mid-plane)" if d == 3 else ""))
            fig.colorbar(im, ax=ax, shrink=0.85)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_series(x, ys: dict[str, np.ndarray], path: Path, *, xlabel: str, ylabel: str,
                logy: bool = False) -> None:
    """Curves of scalar quantities against time (rank 0 only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    for name, y in ys.items():
        (ax.semilogy if logy else ax.plot)(x, y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
