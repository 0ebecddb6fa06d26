"""The kernel path behind the FE solvers' API (``method="kernel"``/``"auto"``): exact values
at the dofs, the same fields downstream (errors, costs, drifts, bundles), and agreement with
the FE path to the FE error on non-Gaussian data; serial and under ``mpiexec -n 2``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("bridgesolve._dolfinx")

import bridgesolve as bs  # noqa: E402
from bridgesolve.reference import ReferenceBundle  # noqa: E402

M0, M1 = np.array([-2.0, 0.0]), np.array([2.0, 0.5])
S0, S1 = np.diag([0.3, 0.4]), np.array([[0.4, 0.1], [0.1, 0.3]])
R0 = bs.GaussianMixture([1.0], [M0], [S0])
R1 = bs.GaussianMixture([1.0], [M1], [S1])
BIMODAL = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [[[0.15]], [[0.25]]])
UNIMODAL = bs.GaussianMixture([1.0], [[0.5]], [[[0.3]]])


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kw)


def _problem(cells, steps, degree, process=None, box=8.0, T=1.0):
    return bs.Problem(bs.Domain.box([-box, -box], [box, box], [cells, cells]),
                      process or bs.VP(), bs.TimeGrid.uniform(T, steps), degree=degree)


@pytest.mark.mpi
def test_fokker_planck_kernel_is_exact_at_the_dofs_and_the_fe_path_agrees_to_its_error():
    """Two moons under VP: the kernel's nodal values are the exact law's; the FE solution's
    distance to them is its own error against the exact law (within 2 %)."""
    moons = bs.densities.two_moons(noise=0.15, scale=1.0)
    prob = _problem(24, 20, 2, box=5.0, T=0.5)
    p = bs.solve_fokker_planck(prob, moons, method="kernel")
    assert p.info["method"] == "kernel" and p.info["quadrature_error"] < 1e-10
    coords = prob.V.tabulate_dof_coordinates()[:, :2]
    for n in (5, 20):
        t = float(prob.grid.times[n])
        exact = moons.evolve(prob.process, t).pdf(coords)
        assert np.abs(p.values[n] - exact).max() < 1e-9
    fe = _quiet(bs.solve_fokker_planck, prob, moons, progress=False)
    t = float(prob.grid.times[-1])
    law = moons.evolve(prob.process, t)
    kernel_law = bs.kernel_fokker_planck(prob.process, moons, [-5, -5], [5, 5])
    e_fe = fe.error(law, t, norm="L2")
    gap = fe.error(lambda x: kernel_law.pdf(x, t), t, norm="L2")  # FE against the kernel
    assert gap == pytest.approx(e_fe, rel=0.02)
    assert p.error(law, t, norm="L2") < 0.5 * e_fe  # the interpolant of the exact law
    # the mesh integral of the interpolant at T, and the free-space share outside the box
    assert p.info["mass"][-1] + p.info["mass_outside"][-1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.mpi
def test_kernel_bridge_on_a_mesh_gives_the_fields_downstream():
    """A Gaussian bridge under Brownian σ = 1 on P2: the marginal's L1 error is the P2
    interpolation error of the exact marginal (nothing else), both KL formulas approach the
    closed form, the drifts and a reference bundle come out of the same Bridge."""
    prob = _problem(32, 20, 2, process=bs.Brownian(1.0))
    b = bs.solve_bridge(prob, R0, R1, method="kernel", tol=1e-11, progress=False)
    assert b.mode == "kernel" and b.converged and b.kernel_bridge.iterations < 60
    exact = bs.gaussian_bridge(M0, S0, M1, S1, 1.0, 1.0)
    e = b.rho.error(exact(0.5), 0.5, norm="L1")
    assert e < 1e-2  # P2 on h = 0.5: interpolation error (the kernel's values are exact)
    cost = bs.gaussian_bridge_cost(M0, S0, M1, S1, 1.0, 1.0)
    assert b.kernel_bridge.cost == pytest.approx(cost, rel=1e-9)
    c = b.cost()
    assert abs(c["boundary"] - cost) < 1e-3 * cost and abs(c["kinetic"] - cost) < 1e-2 * cost
    x = exact(0.5).sample(20, np.random.default_rng(0))
    x = x[np.all(np.abs(x) < 7, axis=1)]
    drift = b.forward_drift().evaluate(x, 0.5)
    exact_drift = b.kernel_bridge.forward_drift(x, 0.5)
    assert np.abs(drift - exact_drift).max() < 0.05 * np.abs(exact_drift).max()
    bundle = ReferenceBundle.from_bridge(b, data=R0, final=R1, root=None)
    assert bundle.kind == "bridge" and np.all(np.isfinite(bundle.score))


def test_fe_bridge_converges_to_the_kernel_bridge_on_bimodal_data():
    """1D, bimodal ρ0 to a Gaussian ρ1 (no closed form): the FE bridge's L1 distance to the
    kernel bridge at T/2 falls at order ≈ 2 under h and Δt halving (P1)."""
    kb = bs.kernel.kernel_bridge(bs.Brownian(1.0), BIMODAL, UNIMODAL, [-8.0], [8.0], 1.0,
                                 tol=1e-12)
    gaps = []
    for cells, steps in ((64, 16), (128, 32), (256, 64)):
        prob = bs.Problem(bs.Domain.interval(-8.0, 8.0, cells), bs.Brownian(1.0),
                          bs.TimeGrid.uniform(1.0, steps), degree=1)
        fe = _quiet(bs.solve_bridge, prob, BIMODAL, UNIMODAL, tol=1e-10, progress=False)
        gaps.append(fe.rho.error(lambda x: kb.rho(x, 0.5), 0.5, norm="L1"))
    orders = np.log2(np.array(gaps[:-1]) / np.array(gaps[1:]))
    assert np.all(orders > 1.6), (gaps, orders)


def test_kolmogorov_kernel_agrees_with_the_fe_path_to_its_error():
    prob = bs.Problem(bs.Domain.interval(-8.0, 8.0, 128), bs.OU(), bs.TimeGrid.uniform(1.0,
                                                                                     32))
    k = bs.solve_kolmogorov(prob, BIMODAL, method="kernel")
    fe = _quiet(bs.solve_kolmogorov, prob, BIMODAL, progress=False)
    u = bs.kernel.KernelExpectation(prob.process, BIMODAL, [-8.0], [8.0], 1.0)
    err_fe = fe.error(lambda x: u(x, 0.0), 0.0, norm="L2")
    gap = k.error(lambda x: u(x, 0.0), 0.0, norm="L2")
    assert gap < 0.5 * err_fe  # the kernel's nodal values: only P1 interpolation is left
    assert err_fe < 5e-3


def test_methods_choose_refuse_and_fall_back():
    prob = _problem(8, 4, 1)
    assert bs.solve_fokker_planck(prob, R0, method="auto").info["method"] == "kernel"
    custom = bs.Problem(prob.domain, bs.Custom(lambda x: -x, 1.0), prob.grid)
    with pytest.raises(bs.BridgesolveInputError, match="not linear.*method = 'fe'"):
        bs.solve_fokker_planck(custom, R0, method="kernel")
    assert "method" not in _quiet(bs.solve_fokker_planck, custom, R0, method="auto",
                                  progress=False).info
    with pytest.raises(bs.BridgesolveInputError, match="killing"):
        bs.solve_bridge(prob, R0, R1, method="kernel", killing=0.1)
    with pytest.raises(bs.BridgesolveInputError, match="method = 'bogus'"):
        bs.solve_kolmogorov(prob, R0, method="bogus")
    absorbing = bs.Problem(prob.domain, bs.VP(), prob.grid, boundary="absorbing")
    with pytest.raises(bs.BridgesolveInputError, match="absorbing"):
        bs.solve_fokker_planck(absorbing, R0, method="kernel")


@pytest.mark.mpi
def test_kernel_bridge_through_the_command_line(tmp_path):
    """examples/bridge_2d_kernel.toml on a coarser mesh: the same outputs as an FE bridge;
    the two KL formulas of the FE fields agree to 1e-3 (the FE path's gap is 2.5 %)."""
    import json
    import tomllib
    from pathlib import Path

    from bridgesolve._dolfinx import MPI
    from bridgesolve.cli import main

    example = Path(__file__).resolve().parents[2] / "examples" / "bridge_2d_kernel.toml"
    raw = example.read_text().replace("cells = [48, 48]", "cells = [24, 24]")
    assert tomllib.loads(raw)["discretization"]["method"] == "kernel"
    folder = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    cfg = folder / "kernel.toml"
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(raw)
    MPI.COMM_WORLD.barrier()
    assert main(["bridge", str(cfg), "-o", str(folder / "out"), "--quiet", "--no-vtx"]) == 0
    summary = json.loads((folder / "out" / "summary.json").read_text())
    assert summary["mode"] == "kernel" and summary["converged"]
    assert summary["cost"]["relative_gap"] < 1e-3
    for name in ("rho.png", "control.png", "convergence.png"):
        assert (folder / "out" / name).stat().st_size > 10_000


def test_config_refuses_the_kernel_for_hjb(tmp_path):
    from pathlib import Path

    from bridgesolve.cli import main
    from bridgesolve.config import load_config

    example = Path(__file__).resolve().parents[2] / "examples" / "hjb_underflow.toml"
    src = tmp_path / "h.toml"
    src.write_text(example.read_text().replace("[discretization]",
                                               '[discretization]\nmethod = "kernel"'))
    with pytest.raises(bs.BridgesolveInputError, match="method"):
        load_config(src)
    assert main(["run", str(src), "-o", str(tmp_path / "o"), "--quiet"]) == 2
