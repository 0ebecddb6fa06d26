"""Exact NLL(𝔥) of the interpolating sampler in the log domain (Hirono et al., ICML 2024;
𝔥 = h²): the 1D Gaussian model against its closed-form variance ODE, exact-score
invariance with observed orders, far tails, W2, the O(nt) h = 0 transport solve, MPI."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI
from bridgesolve.likelihood import (
    gaussian_model,
    generated_density,
    generated_log_density,
    hbar_of,
    nll,
    perturbed_score,
    wasserstein2,
    wasserstein2_1d_densities,
)
from bridgesolve.score import mixture_score
from bridgesolve.studies import fitted_order, order_table

# the 1D Gaussian model: f = -βx/2, g² = β, data N(0, v0), score -(1+ε)x/v_t, prior N(0, 1)
BETA, V0, TM, TMIN = 2.0, 0.25, 2.0, 0.01
GAUSS_PROC = bs.VP(BETA, BETA, TM)
DATA = bs.GaussianMixture([1.0], [[0.0]], [V0])
PRIOR = bs.GaussianMixture([1.0], [[0.0]], [1.0])


def model_score(eps):
    def s(x, t):
        return -(1.0 + eps) * np.asarray(x) / (1.0 + (V0 - 1.0) * math.exp(-BETA * t))

    return s


def gauss_problem(steps, *, cells=240, comm=None):
    # [-12, 12]: the characteristics from |x| < 3 at t_min reach |x| = 10.3 at T (ε = 0.2)
    return bs.Problem(bs.Domain.interval(-12.0, 12.0, cells, comm=comm), GAUSS_PROC,
                      bs.TimeGrid.uniform(TM, steps, t_min=TMIN), degree=2)


def test_gaussian_model_closed_form_solves_its_ode():
    from scipy.integrate import solve_ivp

    for eps, hb in [(0.2, 0.0), (-0.3, 0.5), (0.0, 1.0), (0.1, 1 / 1.1 - 1)]:
        c = gaussian_model(beta=BETA, v0=V0, eps=eps, T=TM, hbar=max(hb, 0.0), t=TMIN)
        hb = max(hb, 0.0)

        def rhs(t, w, eps=eps, hb=hb):
            v = 1 + (V0 - 1) * math.exp(-BETA * t)
            return [BETA * ((1 + hb) * (1 + eps) / v - 1) * w[0] - hb * BETA]

        sol = solve_ivp(rhs, [TM, TMIN], [1.0], rtol=1e-12, atol=1e-14)
        assert c["var"] == pytest.approx(sol.y[0, -1], rel=1e-9)
    # exact score and the exact prior: w = v_t for every 𝔥
    vT = 1 + (V0 - 1) * math.exp(-BETA * TM)
    for hb in (0.0, 0.3, 1.0):
        c = gaussian_model(beta=BETA, v0=V0, eps=0.0, T=TM, hbar=hb, prior_var=vT, t=0.0)
        assert c["var"] == pytest.approx(V0, rel=1e-12) and c["nll"] == pytest.approx(
            c["entropy"], rel=1e-12)


@pytest.fixture(scope="module")
def gaussian_runs():
    """log q^𝔥 of the Gaussian model for ε = ±0.2, 𝔥 = 0, 1, with 100, 200, 400 steps."""
    out = {}
    for eps in (0.2, -0.2):
        for hb in (0.0, 1.0):
            out[eps, hb] = [generated_log_density(gauss_problem(n), model_score(eps), PRIOR,
                                                  hbar=hb) for n in (100, 200, 400)]
    return out


def _nll_of(L):
    """-E_data log q at t_min by mesh quadrature (what nll() does, on a computed field)."""
    from bridgesolve.quadrature import mesh_quadrature, values_at_quadrature

    pts, wts = mesh_quadrature(L.mesh, 10)
    vals = values_at_quadrature(L.space, L.values[:1], 10)[0]
    return -float(wts @ (DATA.pdf(pts) * vals))


@pytest.mark.parametrize("eps", [0.2, -0.2])
@pytest.mark.parametrize("hb", [0.0, 1.0])
def test_gaussian_model_nll_matches_closed_form(gaussian_runs, eps, hb):
    """NLL(𝔥) from the log-domain PDE against the variance ODE's closed form. Measured
    (P2, 200 cells on [-8, 8]): errors 2.3e-5 ... 4.5e-4 at 200 steps, second order in
    time; the Richardson value of 200/400 steps is within 1e-4 (here ~1e-6)."""
    exact = gaussian_model(beta=BETA, v0=V0, eps=eps, T=TM, hbar=hb, t=TMIN)["nll"]
    errs = [_nll_of(L) - exact for L in gaussian_runs[eps, hb]]
    dts = [TM / n for n in (100, 200, 400)]
    order = fitted_order(dts, [abs(e) for e in errs])
    rich = exact + (4 * errs[2] - errs[1]) / 3
    msg = f"ε = {eps}, 𝔥 = {hb}\n{order_table(dts, [abs(e) for e in errs])}"
    assert order > 1.8, msg
    assert abs(rich - exact) < 1e-4, msg
    assert abs(errs[2]) < 2e-4, msg


def test_nll_api_matches_closed_form_and_h_hbar_mapping():
    """nll() with data as a mixture (quadrature) and as samples; h = √𝔥."""
    prob = gauss_problem(400)
    s = model_score(0.2)
    exact = gaussian_model(beta=BETA, v0=V0, eps=0.2, T=TM, hbar=0.25, t=TMIN)
    a = nll(prob, s, PRIOR, DATA, hbar=0.25)
    b = nll(prob, s, PRIOR, DATA, h=0.5)
    assert a == pytest.approx(b, rel=1e-12)
    assert abs(a - exact["nll"]) < 2e-4, (a, exact)
    x = DATA.sample(4000, rng=1)
    w = exact["var"]
    expected = float(np.mean(0.5 * np.log(2 * np.pi * w) + x[:, 0] ** 2 / (2 * w)))
    assert nll(prob, s, PRIOR, x, hbar=0.25) == pytest.approx(expected, abs=3e-4)
    # 𝔥 = 0 by characteristics from the data points (default) and by the PDE
    e0 = gaussian_model(beta=BETA, v0=V0, eps=0.2, T=TM, hbar=0.0, t=TMIN)["nll"]
    assert abs(nll(prob, s, PRIOR, DATA, h=0.0) - e0) < 1e-4
    assert abs(nll(prob, s, PRIOR, DATA, h=0.0, method="pde") - e0) < 2e-4
    assert hbar_of(h=0.3) == pytest.approx(0.09)
    with pytest.raises(bs.BridgesolveInputError, match="exactly one of h"):
        nll(prob, s, PRIOR, DATA, h=0.5, hbar=0.25)
    with pytest.raises(bs.BridgesolveInputError, match="exactly one of h"):
        nll(prob, s, PRIOR, DATA)
    with pytest.raises(bs.BridgesolveInputError, match="hbar = -1"):
        nll(prob, s, PRIOR, DATA, hbar=-1)


@pytest.mark.parametrize("eps", [0.2, -0.2])
def test_gaussian_model_w2_matches_closed_form(gaussian_runs, eps):
    """W2 between q^𝔥_{t_min} (from the PDE, quantile formula on a fine grid) and the data
    against |√w - √v0|, Richardson of 200/400 steps, to 1e-4."""
    xs = np.linspace(-6, 6, 6001)[:, None]
    for hb in (0.0, 1.0):
        exact = gaussian_model(beta=BETA, v0=V0, eps=eps, T=TM, hbar=hb, t=TMIN)["w2"]
        w2 = [wasserstein2_1d_densities(xs[:, 0], np.exp(L.evaluate(xs, TMIN)),
                                        DATA.pdf(xs)) for L in gaussian_runs[eps, hb][1:]]
        rich = (4 * w2[1] - w2[0]) / 3
        assert abs(rich - exact) < 1e-4, (eps, hb, w2, exact)


MIX = bs.GaussianMixture([0.3, 0.7], [[-1.0], [0.8]], [0.09, 0.16])
VP = bs.VP(0.0, 20.0)  # Hirono et al.'s SIMPLE schedule


def _exact_problem(n, *, cells=None, half=9.0):
    # characteristics from |x| < 3 at t_min end inside |x| < 8 at T
    grid = bs.TimeGrid.uniform(1.0, n, t_min=TMIN)
    return bs.Problem(bs.Domain.interval(-half, half, cells or 3 * n), VP, grid, degree=2)


@pytest.mark.parametrize("hb", [0.0, 0.25, 1.0])
def test_exact_score_invariance_with_orders(hb):
    """The exact score and prior p_T: q^𝔥 = p_{t_min} for every 𝔥. Max error of log q on
    |x| < 3 and the NLL error against the exact entropy-like value, n = 40, 80, 160 steps
    (2n P2 cells on [-6, 6]); observed orders printed. Measured for 𝔥 = 0: 1.9e-1, 4.3e-2,
    9.9e-3 (order 2.1; the largest errors at x = -3, where log p ≈ -22) and NLL 6.0e-4,
    1.5e-4, 3.6e-5 (order 2.0)."""
    s = mixture_score(MIX, VP)
    p_min = MIX.evolve(VP, TMIN)
    prior = MIX.evolve(VP, 1.0)
    xs = np.linspace(-3, 3, 121)[:, None]
    fine = np.linspace(-6, 6, 24001)
    exact_nll = -float(np.trapezoid(MIX.pdf(fine[:, None]) * p_min.log_pdf(fine[:, None]),
                                    fine))
    ns = (40, 80, 160)
    errs, nerrs = [], []
    for n in ns:
        prob = _exact_problem(n)
        L = generated_log_density(prob, s, prior, hbar=hb)
        errs.append(float(np.max(np.abs(L.evaluate(xs, TMIN) - p_min.log_pdf(xs)))))
        nerrs.append(abs(nll(prob, s, prior, MIX, hbar=hb, method="pde") - exact_nll))
    dts = [1.0 / n for n in ns]
    msg = f"𝔥 = {hb}\nmax |log q - log p|\n{order_table(dts, errs)}\nNLL\n" \
          f"{order_table(dts, nerrs)}"
    assert fitted_order(dts, errs) > 1.7, msg
    assert errs[-1] < 1.5e-2 and nerrs[-1] < 5e-4, msg


def test_far_tail_nll_is_finite_and_exact():
    """Data far in the tails (log p ≈ -100 and below): finite, matching log p_{t_min} of the
    exact score; the linear density there is round-off (0 or negative)."""
    s = mixture_score(MIX, VP)
    prior = MIX.evolve(VP, 1.0)
    p_min = MIX.evolve(VP, TMIN)
    prob = _exact_problem(160, cells=400, half=14.0)
    far = np.array([[-4.5], [-4.0], [4.0], [4.5], [5.0]])
    exact = -float(np.mean(p_min.log_pdf(far)))
    for hb in (0.0, 0.5, 1.0):
        value = nll(prob, s, prior, far, hbar=hb)
        assert np.isfinite(value) and value == pytest.approx(exact, rel=1e-3), (hb, value,
                                                                                 exact)
    assert exact > 40
    q = generated_density(prob, s, 1.0, prior, progress=False)
    assert np.min(q.evaluate(far, TMIN)) < 1e-20  # the linear field has nothing there


def test_h0_transport_is_linear_in_steps_and_agrees_with_characteristics():
    """generated_density(h = 0, levels="all") now transports log q (O(nt)); at t_min its
    nodal log q agrees with the characteristics from the nodes (exact up to the ODE error)
    to the transport's spatial error. Measured max over |x| < 2.5 (P2 on [-9, 9]): 7.9e-2,
    4.3e-2, 1.5e-2 with 120, 240, 480 cells."""
    s = perturbed_score(mixture_score(MIX, VP), scale=0.9, amplitude=0.2)
    prior = bs.GaussianMixture([1.0], [[0.0]], [1.0])
    prob = _exact_problem(160, cells=480)
    q_all = generated_density(prob, s, 0.0, prior, progress=False)
    q_chr = generated_density(prob, s, 0.0, prior, progress=False, levels="initial")
    assert q_all.info["equation"] == "log-density transport" and len(q_all) == 161
    assert np.all(q_all.info["newton_iterations"] <= 2)
    x = prob.V.tabulate_dof_coordinates()[:, 0]
    inner = np.abs(x) < 2.5
    diff = np.abs(q_all.info["log_values"][0] - q_chr.info["log_values"][0])[inner]
    assert np.max(diff) < 2.5e-2, np.max(diff)
    with pytest.raises(bs.BridgesolveInputError, match="levels = 'initial' with method"):
        generated_density(prob, s, 0.0, prior, levels="initial", method="transport")


def test_wasserstein2_1d_quantile_formula():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(500), 0.7 * rng.standard_normal(500) + 0.3
    expected = float(np.mean((np.sort(x) - np.sort(y)) ** 2))
    assert wasserstein2(x, y, squared=True) == pytest.approx(expected, rel=1e-12)
    assert wasserstein2(x, y) == pytest.approx(np.sqrt(expected), rel=1e-12)
    with pytest.raises(bs.BridgesolveInputError, match="expected \\(n, d\\) and \\(m, d\\)"):
        wasserstein2(np.zeros((3, 2)), np.zeros((3, 1)))


@pytest.mark.slow
def test_wasserstein2_against_pot():
    """Unequal sizes in 1D: the quantile formula equals POT's exact EMD; 2D (POT): a shifted
    copy costs |shift|². (slow: importing POT takes ~4-9 s.)"""
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(500)
    y = 0.7 * rng.standard_normal(400) + 0.3
    M = ot.dist(x[:, None], y[:, None], metric="sqeuclidean")
    emd = ot.emd2(np.full(500, 1 / 500), np.full(400, 1 / 400), M)
    assert wasserstein2(x, y, squared=True) == pytest.approx(emd, rel=1e-9)
    z = rng.standard_normal((300, 2))
    assert wasserstein2(z, z + [0.3, -0.4], squared=True) == pytest.approx(0.25, rel=1e-9)
    assert wasserstein2(z, z + [0.3, -0.4]) == pytest.approx(0.5, rel=1e-9)


@pytest.mark.mpi
def test_nll_serial_and_distributed_agree():
    s = perturbed_score(mixture_score(MIX, VP), scale=0.9, amplitude=0.2)
    prior = bs.GaussianMixture([1.0], [[0.0]], [1.0])
    x = MIX.sample(64, rng=5)
    out = []
    for comm in (MPI.COMM_WORLD, MPI.COMM_SELF):
        grid = bs.TimeGrid.uniform(1.0, 40, t_min=TMIN)
        prob = bs.Problem(bs.Domain.interval(-6.0, 6.0, 80, comm=comm), VP, grid, degree=2)
        out.append([nll(prob, s, prior, MIX, hbar=hb) for hb in (0.0, 0.5)]
                   + [nll(prob, s, prior, x, hbar=0.5)])
    assert np.allclose(out[0], out[1], rtol=1e-8, atol=0), out
