"""Figures of space-time fields (matplotlib, headless).

Functions that sample a field are collective (``SpaceTimeField.evaluate`` is): every rank
calls them, rank 0 writes the file. Matplotlib is imported inside the functions so that
importing bridgesolve stays cheap and never picks an interactive backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sampling_grid(field, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of a regular grid over the mesh's bounding box (3D: its mid-plane in z).

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
        columns.append(np.full(X.size, 0.5 * (lo[2] + hi[2])))
    return np.column_stack(columns), lo, hi


def plot_field_panels(field, times: Sequence[float], path: str | os.PathLike, *,
                      label: str = "u",
                      exact: Callable[[float], Callable[[np.ndarray], np.ndarray]] | None = None,
                      n: int = 161) -> None:
    """The field at ``times``: curves in 1D (the exact solution dashed), one image per
    time in 2D (points outside the mesh blank), the z mid-plane in 3D.

    Collective: all ranks call it; rank 0 samples the grid and writes ``path``.

    Args:
        field: a :class:`~bridgesolve.SpaceTimeField`.
        times: times in the grid's range (interpolated linearly between levels).
        path: the PNG file.
        label: the field's symbol, for axes and titles.
        exact: ``t -> (points -> values)``, drawn dashed in 1D.
        n: grid points per direction in 2D/3D (1D uses ``4 n``).
    """
    comm = field.comm
    pts, lo, hi = _sampling_grid(field, n)
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
        fig, axes = plt.subplots(1, len(times), figsize=(4 * len(times), 3.6),
                                 constrained_layout=True, squeeze=False)
        for ax, t, v in zip(axes[0], times, values, strict=True):
            # Each panel gets its own colour scale: a diffusing density loses its peak
            # height by orders of magnitude, and one scale would show later panels black.
            im = ax.imshow(v.reshape(n, n), origin="lower", cmap="magma",
                           extent=(lo[0], hi[0], lo[1], hi[1]))
            ax.set_title(f"{label}, t = {t:.3g}" + (" (z mid-plane)" if d == 3 else ""))
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            fig.colorbar(im, ax=ax, shrink=0.85)
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
