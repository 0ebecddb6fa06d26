"""Figures a reader can trust: labelled colorbars, one scale across panels of one field,
event labels of convergence plots outside the data area (issue 16)."""

from __future__ import annotations

import pytest

import bridgesolve as bs


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions close, kept for inspection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = []
    close = plt.close

    def keep(fig=None):
        kept.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    return kept


def _field_2d(process, T=1.0):
    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]], [0.1, 0.1])
    prob = bs.Problem(bs.Domain.box([-5, -5], [5, 5], (12, 12)), process,
                      bs.TimeGrid.uniform(T, 6), scheme="backward-euler")
    return bs.solve_fokker_planck(prob, mix, progress=False)


@pytest.mark.parametrize("process, log", [(bs.OU(), False), (bs.VE(sigma_max=3.0), True)],
                         ids=["linear-scale", "log-scale"])
def test_density_panels_share_one_labelled_scale(process, log, figures, tmp_path):
    from matplotlib.colors import LogNorm

    from bridgesolve.plotting import plot_field_panels

    with pytest.warns(RuntimeWarning) if log else _nothing():
        p = _field_2d(process)
    plot_field_panels(p, [0.0, 0.5, 1.0], tmp_path / "p.png", label="density p")
    fig = figures[-1]
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 3
    norms = {(im.norm.vmin, im.norm.vmax, type(im.norm)) for im in images}
    assert len(norms) == 1, f"each panel has its own scale: {norms}"
    assert isinstance(images[0].norm, LogNorm) == log
    colorbars = [ax for ax in fig.axes if not ax.get_images() and ax.get_ylabel()]
    assert len(colorbars) == 1, "expected one shared colorbar"
    assert colorbars[0].get_ylabel().startswith("density p")
    assert (tmp_path / "p.png").stat().st_size < 300_000


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_convergence_events_are_numbered_above_the_axes_and_listed_outside(figures,
                                                                             tmp_path):
    from bridgesolve.plotting import plot_convergence_history

    history = [{"iteration": k, "mode": "linear" if k < 4 else "log", "err0_L1": 10.0**-k,
                "errT_L1": 10.0**-k, "err0_Linf": 2 * 10.0**-k, "errT_Linf": 2 * 10.0**-k}
               for k in range(1, 9)]
    history[3]["event"] = "switched to log mode: stagnation of the linear iteration " * 2
    history[5]["event"] = "over-relaxation off"
    plot_convergence_history(history, tmp_path / "h.png", tol=1e-6)
    fig = figures[-1]
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_window_extent()
    marks = [t for t in ax.texts if t.get_text().startswith("[")]
    assert [t.get_text() for t in marks] == ["[1]", "[2]"]
    for t in marks:  # above the data area, inside the figure
        ext = t.get_window_extent()
        assert ext.y0 >= box.y1 - 1, "event label prints over the curves"
        assert ext.y1 <= fig.bbox.y1 + 1, "event label is cut off"
    legend = ax.get_legend()
    lext = legend.get_window_extent()
    assert lext.x0 >= box.x1 - 1, "the legend covers the curves"
    assert lext.x1 <= fig.bbox.x1 + 1, "the legend is cut off"
    texts = [t.get_text() for t in legend.get_texts()]
    assert any(t.startswith("[1] iteration 4: switched to log mode") for t in texts), texts
    assert any(t.startswith("[2] iteration 6: over-relaxation off") for t in texts), texts


def test_3d_panels_show_the_chosen_plane_and_refuse_one_outside_the_mesh(figures, tmp_path):
    """``slice_z`` picks the plane of 3D panels: a Gaussian at z = 1.2 is bright there and
    nearly absent from the mid-plane z = 0; a plane beyond the mesh is named and refused."""
    from bridgesolve.plotting import plot_field_panels

    mix = bs.GaussianMixture([1.0], [[0.0, 0.0, 1.2]], [0.1])
    prob = bs.Problem(bs.Domain.box([-3, -3, -3], [3, 3, 3], (14, 14, 14)), bs.Brownian(0.2),
                      bs.TimeGrid.uniform(0.1, 1), scheme="backward-euler")
    p = bs.solve_fokker_planck(prob, mix, progress=False)
    peaks = {}
    for z in (None, 1.2):
        plot_field_panels(p, [0.0], tmp_path / "p.png", label="p", slice_z=z)
        image = figures[-1].axes[0].get_images()[0]
        peaks[z] = float(image.get_array().max())
        assert figures[-1].axes[0].get_title().endswith(
            "(z mid-plane)" if z is None else "(z = 1.2)")
    assert peaks[1.2] > 10 * peaks[None]
    with pytest.raises(bs.BridgesolveInputError, match=r"slice_z = 4: .*z in \[-3, 3\]"):
        plot_field_panels(p, [0.0], tmp_path / "p.png", slice_z=4.0)
