"""Exact KL(ρ0 ‖ q_h) through the generated densities (DOLFINx) on finite-element bundles:
≈ 0 for the exact score (converging under refinement), and below the §2.7 bound for
networks trained on the CPU, with the denoising identity satisfied."""

from __future__ import annotations

import numpy as np
import pytest
from learn_helpers import exact_score

import bridgesolve as bs

pytest.importorskip("bridgesolve._dolfinx")
pytest.importorskip("bridgesolve.likelihood")
torch = pytest.importorskip("torch")

from bridgesolve.learn.trainer import train  # noqa: E402
from bridgesolve.learn.validation import validate  # noqa: E402
from bridgesolve.reference import ReferenceBundle  # noqa: E402

MIX1 = bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])
MIX2 = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]],
                          [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])


def fe_bundle(mix, lower, upper, cells, steps, degree=2):
    proc = bs.VP()
    # uniform in t: the characteristics of h = 0 are integrated on this grid too
    problem = bs.Problem(bs.Domain.box(lower, upper, cells), proc,
                         bs.TimeGrid.uniform(1.0, steps), degree=degree)
    p = bs.solve_fokker_planck(problem, mix, progress=False)
    return ReferenceBundle.from_fokker_planck(p, problem=problem, data=mix), problem


def mixture_config(mix, steps, seed=0):
    return {"data": {"type": "gaussian_mixture", "weights": mix.weights.tolist(),
                     "means": mix.means.tolist(), "covs": mix.covs.tolist()},
            "process": {"type": "VP"},
            "model": {"width": 64, "depth": 3},
            "train": {"steps": steps, "batch_size": 256, "lr": 3e-3, "warmup": 100,
                      "device": "cpu", "seed": seed, "checkpoint_every": 0}}


def test_exact_score_generates_rho0():
    """With the exact score every sampler h reproduces ρ0: |KL(ρ0 ‖ q_h)| is the
    discretization error of q_h (P2, 100 cells on [-7, 7], 60 steps), and the problem is
    rebuilt from the bundle's metadata."""
    b, _ = fe_bundle(MIX1, [-7.0], [7.0], [100], 60)
    proc = b.process()
    rep = validate(exact_score(MIX1, proc), b, hs=(0.0, 0.5, 1.0), n_mc=256)
    print(rep.table())
    kl = rep["kl"]
    assert "skipped" not in kl, kl
    assert np.all(np.abs(kl["kl"]) < 5e-5), kl["kl"]
    np.testing.assert_allclose(kl["mass_q"], 1.0, atol=1e-4)
    assert rep["exact"]["J_esm"] == 0.0  # the score is exact; the bundle's error is separate
    assert 0 < rep["exact"]["J_bundle_error"] < 1e-4
    assert rep["bound"]["holds"]
    # The bundle knows its own error: its closed-form estimate is the validator's
    # p-weighted bundle error, and what the validator measures for the exact score against
    # the bundle (weighted by the bundle's density instead of p) is that error again.
    est = b.score_error_estimate
    assert b.metadata["score_error_estimate"]["method"] == "closed-form"
    np.testing.assert_allclose(rep["exact"]["bundle_error"], est, rtol=1e-10)
    ratio = np.asarray(rep["esm"]["per_time"]) / est
    print("validator ESM of the exact score / bundle's estimate:", np.round(ratio, 4))
    assert np.all(np.abs(ratio - 1.0) < 1e-2), ratio  # measured: within 2e-4


def test_trained_network_kl_below_bound_1d():
    """A 1D network trained on the CPU: KL(ρ0 ‖ q_1) ≤ KL(p_T ‖ π) + ½∫g² e dt without
    slack (the network's error dominates q_1's discretization error), and J_DSM - J_ESM = C
    within the Monte Carlo error."""
    b, problem = fe_bundle(MIX1, [-7.0], [7.0], [100], 60)
    res = train(mixture_config(MIX1, 1200), progress=False)
    rep = validate(res.model, b, hs=(0.0, 1.0), n_mc=2048, problem=problem)
    print(rep.table())
    assert abs(rep["exact"]["z"]) < 4.0 and rep["dsm"]["consistent"]
    bound = rep["bound"]
    assert 0.0 < bound["kl_h1"] <= bound["bound"], bound
    assert all(k > 0 for k in rep["kl"]["kl"])  # a wrong score generates a wrong density
    # the same bound by bridgesolve.likelihood (its own quadrature of the mesh, exact p_t)
    from bridgesolve.learn.validation import as_numpy_score
    from bridgesolve.likelihood import score_matching_bound
    from bridgesolve.sampling import default_prior

    other = score_matching_bound(problem, as_numpy_score(res.model), MIX1,
                                 default_prior(bs.VP(), 1.0, 1))
    print(f"bound: validator {bound['bound']:.6e}, likelihood.score_matching_bound "
          f"{other['bound']:.6e}")
    assert other["bound"] == pytest.approx(bound["bound"], rel=1e-3)


@pytest.mark.slow
def test_trained_network_2d_kl_identity_and_bound():
    """The 2D mixture: a network trained on the CPU has relative score error < 10% at mid
    times, the identity holds, and KL(ρ0 ‖ q_1) is below the bound (P2 on 32×32, 50 steps)."""
    b, problem = fe_bundle(MIX2, [-5.0, -5.0], [5.0, 5.0], [32, 32], 50)
    res = train(mixture_config(MIX2, 2000, seed=1), progress=False)
    rep = validate(res.model, b, hs=(0.0, 1.0), n_mc=2048, problem=problem)
    print(rep.table())
    esm = rep["esm"]
    mid = (esm["times"] >= 0.3) & (esm["times"] <= 0.7)
    assert np.max(np.asarray(esm["relative"])[mid]) < 0.10
    assert abs(rep["exact"]["z"]) < 4.0
    bound = rep["bound"]
    assert 0.0 < bound["kl_h1"] <= bound["bound"], bound


@pytest.mark.mpi
def test_kl_is_rank_independent(comm):
    """Under MPI every rank holds the whole bundle (gathered) and solves q_h collectively:
    the KL values are the same on every rank and match the serial thresholds."""
    proc = bs.VP()
    problem = bs.Problem(bs.Domain.box([-7.0], [7.0], [100], comm=comm), proc,
                         bs.TimeGrid.uniform(1.0, 60), degree=2)
    p = bs.solve_fokker_planck(problem, MIX1, progress=False)
    b = ReferenceBundle.from_fokker_planck(p, problem=problem, data=MIX1, root=None)
    rep = validate(exact_score(MIX1, proc), b, hs=(0.5, 1.0), n_mc=128, problem=problem)
    kl = np.asarray(rep["kl"]["kl"])
    everyone = comm.allgather(kl)
    assert all(np.array_equal(kl, other) for other in everyone), everyone
    assert np.all(np.abs(kl) < 5e-5), kl
