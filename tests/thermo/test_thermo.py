"""Stochastic thermodynamics (bridgesolve.thermo) against the closed forms of the symmetric
two-Gaussian OU case (Yu & Huang 2025), the KL identity on a 2D mixture, the fluctuation
theorem, and the Franz–Parisi quadrature against finite differences and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.thermo import (
    SymmetricTwoGaussianOU,
    bimodality_time,
    bimodality_time_closed,
    closed_form_region,
    effective_potential,
    entropy_production,
    franz_parisi,
    franz_parisi_monte_carlo,
    log_density_curvature,
    path_entropies,
    phase_diagram,
    potential_curvature,
    sign_change_time,
    solve_two_gaussian_ou,
    speciation_time,
    speciation_time_closed,
)

CASE = SymmetricTwoGaussianOU(1.0, 0.4)  # the paper's entropy-production figure
TIMES = np.array([0.1, 0.5, 1.0, 2.0])


def _orders(h, errors):
    h, e = np.asarray(h, float), np.asarray(errors, float)
    return np.log(e[:-1] / e[1:]) / np.log(h[:-1] / h[1:])


def _table(h, errors):
    orders = _orders(h, errors)
    rows = [f"{'h':>8} {'error':>10} {'order':>6}"]
    for i, (hi, ei) in enumerate(zip(h, errors, strict=True)):
        rows.append(f"{hi:8.4f} {ei:10.3e} " + (f"{orders[i - 1]:6.2f}" if i else ""))
    return "\n".join(rows)


def _solve_1d(cells, degree, steps, T=2.0, case=CASE, L=8.0):
    prob = bs.Problem(bs.Domain.interval(-L, L, cells), bs.OU(), bs.TimeGrid.uniform(T, steps),
                      degree=degree)
    return prob, bs.solve_fokker_planck(prob, case.data, progress=False)


# -- closed forms ---------------------------------------------------------------------------
def test_closed_forms_are_consistent():
    c = CASE
    t = np.linspace(0.05, 4.0, 40)
    # Φ = E[x²] - 1 by quadrature of the density, and ∫ x s p = -1
    ex2 = c._expect(lambda x, s: x * x, t)
    assert np.allclose(c.flow(t), ex2 - 1.0, atol=1e-12)
    # dS/dt = d/dt H(p_t) (central differences of the entropy)
    dt = 1e-5
    dH = (c.entropy(t + dt) - c.entropy(t - dt)) / (2 * dt)
    assert np.allclose(c.system(t), dH, atol=1e-7), np.abs(c.system(t) - dH).max()
    # Π = -d/dt KL(p_t ‖ N(0, 1)) and Π ≥ 0
    dKL = (c.kl_to_normal(t + dt) - c.kl_to_normal(t - dt)) / (2 * dt)
    assert np.allclose(c.total(t), -dKL, atol=1e-7)
    assert np.all(c.total(t) > 0)
    # t_s and t_b are the roots of ∂²U(0, t) and ∂² log p_t(0)
    for mu, s2 in [(1.0, 0.4), (1.0, 1.0), (0.7, 0.1), (1.0, 0.1)]:
        cs = SymmetricTwoGaussianOU(mu, s2)
        ts, tb = cs.speciation_time, cs.bimodality_time
        assert abs(cs.d2_potential(0.0, ts)) < 1e-12
        assert abs(cs.d2_log_pdf(0.0, tb)) < 1e-12
        assert tb < ts  # p_t turns unimodal (forward) before U does
    # the "no symmetry breaking" boundary is where t_s = 0
    sig = np.linspace(0.1, 1.4, 14)
    from bridgesolve.thermo import no_breaking_boundary

    assert np.allclose(speciation_time_closed(no_breaking_boundary(sig), sig**2), 0.0,
                       atol=1e-12)


# -- entropy production on the mesh ----------------------------------------------------------
# (degree, cells ladder, steps, minimal order): max error over t ∈ {0.1, 0.5, 1, 2} of Π, Φ,
# dS/dt forward and Φ* reverse. Measured: P1 2.0 (the p-weighted quadratic quantities
# superconverge), P2 2.9-3.8 (time error dt² ~ 3e-6 reached at 1200 steps).
EP_CASES = [(1, (100, 200, 400), 600, 1.8), (2, (40, 80, 160), 1200, 2.5)]


@pytest.mark.parametrize("degree,ladder,steps,min_order", EP_CASES, ids=["P1", "P2"])
def test_entropy_production_converges_to_closed_forms(degree, ladder, steps, min_order):
    names = ["Pi", "Phi", "dS/dt", "Phi* (reverse)", "Pi* (reverse)", "dS*/ds (reverse)"]
    errs, hs = [], []
    for n in ladder:
        prob, p = _solve_1d(n, degree, steps)
        fwd = entropy_production(p, process=prob.process)
        rev = entropy_production(p, process=prob.process, reverse=True)
        idx = [prob.grid.index(t) for t in TIMES]
        errs.append([
            np.abs(fwd.total[idx] - CASE.total(TIMES)).max(),
            np.abs(fwd.flow[idx] - CASE.flow(TIMES)).max(),
            np.abs(fwd.system[idx] - CASE.system(TIMES)).max(),
            np.abs(rev.flow[idx] - CASE.flow_reverse(TIMES)).max(),
            np.abs(rev.total[idx] - CASE.total(TIMES)).max(),
            np.abs(rev.system[idx] + CASE.system(TIMES)).max(),
        ])
        hs.append(16.0 / n)
        # identities that hold level by level, to round-off
        assert np.allclose(fwd.total - fwd.flow, fwd.system, atol=1e-12)
        assert np.allclose(rev.total, fwd.total, atol=1e-12)
        assert np.allclose(rev.system, -fwd.system, atol=1e-12)
    errs = np.array(errs)
    msg = "\n".join(f"{name} (P{degree}):\n{_table(hs, errs[:, i])}"
                    for i, name in enumerate(names))
    print(msg)
    for i in range(4):
        order = _orders(hs, errs[:, i])[-1]
        assert order > min_order, msg
    assert errs[-1].max() < (1e-3 if degree == 1 else 2e-5), msg


def test_drift_argument_matches_the_process():
    # The same rates through the general path: drift as a mesh VectorField evaluated at the
    # quadrature points (reverse: -f + g² ∇log p_h) or as a NumPy callable (forward f).
    from bridgesolve.score import grad_log, reference_drift

    prob, p = _solve_1d(60, 2, 100, T=1.0)
    proc = prob.process
    fwd = entropy_production(p, process=proc)
    by_callable = entropy_production(p, drift=proc.drift, diffusion=1.0)
    assert np.allclose(by_callable.total, fwd.total, rtol=1e-12, atol=1e-14)
    rev = entropy_production(p, process=proc, reverse=True)
    F_star = reference_drift(proc).scaled(-1.0) + grad_log(p).scaled(2.0)
    by_field = entropy_production(p, process=proc, reverse=True, drift=F_star)
    assert np.allclose(by_field.flow, rev.flow, rtol=1e-10, atol=1e-12)
    assert np.allclose(by_field.total, rev.total, rtol=1e-10, atol=1e-12)
    # a log-representation field gives the same rates up to the quadrature of exp(I_h log p)
    floor = 2.2e-16 * p.values.max(axis=1, keepdims=True)
    logp = bs.SpaceTimeField(p.space, p.grid, np.log(np.maximum(p.values, floor)),
                             representation="log")
    by_log = entropy_production(logp, process=proc)
    assert np.abs(by_log.total - fwd.total).max() < 5e-4


def test_generated_density_of_the_sampler():
    # The sampler's dynamics in reverse time: drift -f + (1 + h²) D s, diffusion h² D. With the
    # exact score q_h = p and its current is -J whatever h: Π_h = Π/h², dS*/ds = -dS/dt.
    from bridgesolve.likelihood import generated_density
    from bridgesolve.score import mixture_score

    proc, T = bs.OU(), 2.0
    prob = bs.Problem(bs.Domain.interval(-8, 8, 60), proc, bs.TimeGrid.uniform(T, 200),
                      degree=2)
    score = mixture_score(CASE.data, proc)
    t = np.array([0.25, 0.5, 1.0])
    for h in (1.0, 0.5):
        q = generated_density(prob, score, h, CASE.data.evolve(proc, T), progress=False)
        ep = entropy_production(
            q, reverse=True, diffusion=h * h,
            drift=lambda x, s, h=h: -proc.drift(x, s) + (1 + h * h) * score(x, s))
        idx = [prob.grid.index(s) for s in t]
        assert np.allclose(ep.total[idx], CASE.total(t) / h**2, rtol=1e-3), (h, ep.total[idx])
        assert np.allclose(ep.system[idx], -CASE.system(t), rtol=1e-3), (h, ep.system[idx])


@pytest.mark.slow
def test_bridge_entropy_production_matches_the_gaussian_bridge():
    # Bridge between Gaussians under a Brownian reference: the marginals N(m_t, S_t) flow with
    # the velocity v = m' + S'/(2S)(x - m), so Π = (m'² + S'²/(4S))/D. Measured: error 2.6e-3
    # (P2, 100 cells, 100 steps), 5.6e-4 at twice the resolution.
    sigma, T = 1.0, 1.0
    m0, s0, m1, s1 = -1.0, 0.3, 1.5, 0.5
    marg = bs.gaussian_bridge([m0], [[s0]], [m1], [[s1]], sigma, T)

    def closed(t, h=1e-6):
        a, b = marg(t - h), marg(t + h)
        dm = (b.means[0, 0] - a.means[0, 0]) / (2 * h)
        dS = (b.covs[0, 0, 0] - a.covs[0, 0, 0]) / (2 * h)
        return (dm**2 + dS**2 / (4 * marg(t).covs[0, 0, 0])) / (sigma**2 / 2)

    prob = bs.Problem(bs.Domain.interval(-6, 7, 100), bs.Brownian(sigma),
                      bs.TimeGrid.uniform(T, 100), degree=2)
    br = bs.solve_bridge(prob, bs.GaussianMixture([1], [[m0]], [s0]),
                         bs.GaussianMixture([1], [[m1]], [s1]), progress=False)
    t = np.array([0.1, 0.5, 0.9])
    idx = [prob.grid.index(s) for s in t]
    exact = np.array([closed(s) for s in t])
    for field in (br.log_rho, br.rho):
        ep = entropy_production(field, process=prob.process, drift=br.forward_drift())
        assert np.abs(ep.total[idx] - exact).max() < 5e-3, (ep.total[idx], exact)


@pytest.mark.slow
def test_entropy_production_speed_2d_p2():
    # The performance target: 2D P2 with 1e5 dofs and 200 levels in under 10 s (measured
    # 5-12 s on the shared 2-core machine, depending on load).
    import time

    from bridgesolve._dolfinx import fem

    mix = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]], [0.25, 0.3])
    dom = bs.Domain.box([-6, -6], [6, 6], [158, 158])
    V = fem.functionspace(dom.mesh, ("Lagrange", 2))
    u = fem.Function(V)
    grid = bs.TimeGrid.uniform(1.0, 199)
    base = []
    for t in grid.times[:4]:
        m = mix.evolve(bs.VP(), t) if t > 0 else mix
        u.interpolate(lambda x, m=m: m.pdf(x[:2].T))
        base.append(u.x.array.copy())
    values = np.array([base[n % 4] for n in range(len(grid))])
    p = bs.SpaceTimeField(V, grid, values)
    t0 = time.perf_counter()
    ep = entropy_production(p, process=bs.VP())
    elapsed = time.perf_counter() - t0
    print(f"2D P2, {V.dofmap.index_map.size_global} dofs, 200 levels: {elapsed:.2f} s")
    assert np.all(np.isfinite(ep.total))
    assert elapsed < 20.0, elapsed


def test_tabulated_quadrature_equals_compiled_expressions():
    from bridgesolve._dolfinx import fem, ufl
    from bridgesolve.thermo import _CellQuadrature

    dom = bs.Domain.box([-1, -1], [1, 2], [5, 7])
    V = fem.functionspace(dom.mesh, ("Lagrange", 2))
    u = fem.Function(V)
    u.interpolate(lambda x: np.sin(x[0]) * np.exp(x[1]) + x[0] ** 2)
    quad = _CellQuadrature(V, 4)
    assert quad.fast
    cells = np.arange(quad.ncells, dtype=np.int32)
    ref_v = np.asarray(fem.Expression(u, quad.X).eval(dom.mesh, cells)).reshape(-1)
    ref_g = np.asarray(fem.Expression(ufl.grad(u), quad.X).eval(dom.mesh, cells)).reshape(-1, 2)
    U = u.x.array[None, :]
    assert np.allclose(quad.values(U)[:, 0], ref_v, atol=1e-13)
    g = quad.gradients(U)
    assert np.allclose(np.stack([g[0][:, 0], g[1][:, 0]], axis=1), ref_g, atol=1e-12)
    # the Expression path (non-affine meshes) gives the same numbers
    slow = _CellQuadrature(V, 4, tabulate=False)
    assert not slow.fast
    U2 = np.stack([u.x.array, 2.0 * u.x.array])
    assert np.allclose(slow.values(U2), quad.values(U2), atol=1e-12)
    for a, b in zip(slow.gradients(U2), quad.gradients(U2), strict=True):
        assert np.allclose(a, b, atol=1e-11)


def test_custom_process_drift_from_ufl():
    # A double-well drift f = x - x³/4 given only in UFL: f0 at the quadrature points comes from
    # a compiled Expression; the same rates follow from the NumPy drift passed explicitly.
    proc = bs.Custom(lambda x: [x[0] - x[0] ** 3 / 4], 1.0)
    prob = bs.Problem(bs.Domain.interval(-5, 5, 120), proc, bs.TimeGrid.uniform(0.5, 50),
                      degree=2)
    p = bs.solve_fokker_planck(prob, CASE.data, progress=False)
    ep = entropy_production(p, process=proc)
    by_np = entropy_production(p, drift=lambda x, t: x - x**3 / 4, diffusion=0.5)
    assert np.allclose(ep.total, by_np.total, rtol=1e-11)
    assert np.allclose(ep.flow, by_np.flow, rtol=1e-11, atol=1e-12)
    assert np.all(ep.total > 0)


def _kl_to_normal_2d(mix, n=360, L=9.0):
    x = np.linspace(-L, L, n)
    X, Y = np.meshgrid(x, x)
    P = np.stack([X.ravel(), Y.ravel()], axis=1)
    lp = mix.log_pdf(P)
    h = x[1] - x[0]
    return float(np.sum(np.exp(lp) * (lp + 0.5 * np.sum(P**2, 1) + np.log(2 * np.pi))) * h * h)


def test_integrated_entropy_production_is_the_kl_decrease_2d_vp(mixture2d):
    # Under VP, f = D ∇log N(0, I), so Π = -d/dt KL(p_t ‖ N(0, I)) for any data: a
    # non-Gaussian, correlated 2D mixture here. Measured: relative error 1.3e-4 (P2, 40²).
    proc, T = bs.VP(), 1.0
    exact = _kl_to_normal_2d(mixture2d) - _kl_to_normal_2d(mixture2d.evolve(proc, T))
    prob = bs.Problem(bs.Domain.box([-5.5, -5.5], [5.5, 5.5], [40, 40]), proc,
                      bs.TimeGrid.graded(T, 60), degree=2)
    p = bs.solve_fokker_planck(prob, mixture2d, progress=False)
    ep = entropy_production(p, process=proc)
    err = abs(ep.integral() - exact) / exact
    assert err < 1e-3, (ep.integral(), exact, err)
    assert np.all(ep.total > 0)
    # dS/dt integrates to the entropy change of the mixture (by the same grid quadrature)
    def entropy(m):
        x = np.linspace(-9, 9, 360)
        X, Y = np.meshgrid(x, x)
        lp = m.log_pdf(np.stack([X.ravel(), Y.ravel()], axis=1))
        return -float(np.sum(np.exp(lp) * lp) * (x[1] - x[0]) ** 2)

    dH = entropy(mixture2d.evolve(proc, T)) - entropy(mixture2d)
    assert abs(ep.integral("system") - dH) < 3e-3 * abs(dH), (ep.integral("system"), dH)


# -- speciation and bimodality ---------------------------------------------------------------
@pytest.mark.parametrize("mu,sigma2", [(1.0, 0.4), (1.0, 0.6), (0.8, 0.1)])
def test_speciation_and_bimodality_times_from_the_mesh(mu, sigma2):
    case = SymmetricTwoGaussianOU(mu, sigma2)
    steps, T = 150, 1.5
    p = solve_two_gaussian_ou(mu, sigma2, T=T, steps=steps)
    dt = T / steps
    ts = speciation_time(p, process=bs.OU())
    tb = bimodality_time(p)
    msg = (f"t_s mesh {ts:.5f} closed {case.speciation_time:.5f}; "
           f"t_b mesh {tb:.5f} closed {case.bimodality_time:.5f} (dt = {dt})")
    # measured: |Δt_s| ≤ 3e-4, |Δt_b| ≤ 4e-4 with dt = 1e-2 (P2, 12 nodes per σ)
    assert abs(ts - case.speciation_time) < 0.1 * dt, msg
    assert abs(tb - case.bimodality_time) < 0.1 * dt, msg
    # the curvature profile itself
    curv = potential_curvature(p, process=bs.OU())
    # measured: ≤ 7e-3 for t ≥ 0.1 (2e-2 where σ² = 0.1; relative to |∂²U| up to 74)
    late = p.times >= 0.1
    exact = case.d2_potential(0.0, p.times[late])
    err = np.abs(curv[late] - exact) / np.maximum(1.0, np.abs(exact))
    assert err.max() < 3e-2, err.max()


def test_no_speciation_is_nan_and_sign_change_interpolates():
    p = solve_two_gaussian_ou(0.2, 1.0, T=1.0, steps=40)  # t_s < 0: a single well throughout
    assert np.isnan(speciation_time(p, process=bs.OU()))
    t = np.linspace(0, 1, 11)
    assert abs(sign_change_time(t, np.cos(3 * t)) - np.pi / 6) < 1e-3
    assert np.isnan(bimodality_time_closed(0.1, 1.5))


def test_effective_potential_matches_closed_form():
    case = SymmetricTwoGaussianOU(1.0, 1.0)
    p = solve_two_gaussian_ou(1.0, 1.0, T=1.0, steps=100)
    x = np.linspace(-3, 3, 13)[:, None]
    for t in (0.1, 0.35, 1.0):
        U = effective_potential(p, t, process=bs.OU(), x=x)
        exact = case.potential(x[:, 0], t)
        assert np.abs(U - exact).max() < 5e-4, np.abs(U - exact).max()
    Uf = effective_potential(p, 1.0, process=bs.OU())
    assert Uf.x.array.size == p.values.shape[1]


# -- trajectories and the integral fluctuation theorem ---------------------------------------
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_integral_fluctuation_theorem(reverse):
    # μ = 1, σ² = 1: e^{-ΔS_tot} has finite variance (for σ² < 1/2 the forward weights
    # π(x0)/p0(x0) make it infinite and the 3-SE test meaningless; see the report).
    case = SymmetricTwoGaussianOU(1.0, 1.0)
    T = 1.0
    pe = path_entropies(bs.OU(), case.data, 10_000, T=T, steps=100, reverse=reverse, rng=7,
                        progress=False)
    mean, se = pe.ift()
    assert abs(mean - 1.0) < 3 * se, (mean, se)
    # ⟨ΔS_tot⟩ = ∫Π dt = KL(p0 ‖ N) - KL(pT ‖ N)
    target = float(case.kl_to_normal(0.0)[0] - case.kl_to_normal(T)[0])
    m, s = pe.mean_total()
    assert abs(m - target) < 3 * s, (m, s, target)
    assert np.allclose(pe.total, pe.system + pe.medium)
    assert pe.running_ift()[-1] == pytest.approx(mean)


@pytest.mark.parametrize("method", ["exact", "heun", "euler"])
def test_forward_ou_medium_entropy_is_exact_stratonovich(method):
    # For OU, ∫ (f/D)∘dx = -∫ x∘dx = -(x_T² - x_0²)/2 whatever the path: the midpoint rule
    # telescopes exactly (an Itô left-point sum would not).
    case = SymmetricTwoGaussianOU(1.0, 0.1)
    pe = path_entropies(bs.OU(), case.data, 200, T=1.0, steps=40, method=method, rng=3,
                        progress=False)
    assert pe.info["method"] == method
    expected = -0.5 * (pe.x_end[:, 0] ** 2 - pe.x_start[:, 0] ** 2)
    assert np.abs(pe.medium - expected).max() < 1e-12
    system = case.data.log_pdf(pe.x_start) - case.data.evolve(bs.OU(), 1.0).log_pdf(pe.x_end)
    assert np.allclose(pe.system, system, atol=1e-12)


def test_path_entropies_from_the_mesh_density():
    case = SymmetricTwoGaussianOU(1.0, 1.0)
    p = solve_two_gaussian_ou(1.0, 1.0, T=1.0, steps=50, half_width=9.0)
    fwd = path_entropies(bs.OU(), p, 4000, start=case.data, rng=11, progress=False)
    mean, se = fwd.ift()
    assert abs(mean - 1.0) < 3 * se, (mean, se)
    closed = path_entropies(bs.OU(), case.data, 4000, T=1.0, steps=50, rng=11,
                            progress=False)
    # same seed, same exact transitions: only log p at the ends differs (mesh vs closed;
    # point values of p_h in the far tails are relatively less accurate)
    diff = np.abs(fwd.total - closed.total)
    assert np.median(diff) < 1e-4 and diff.max() < 2e-2, (np.median(diff), diff.max())


# -- Franz–Parisi -----------------------------------------------------------------------------
@pytest.mark.parametrize("t", [1.0, 0.01])
def test_franz_parisi_quadrature_is_converged_and_matches_monte_carlo(t):
    case = SymmetricTwoGaussianOU(1.0, 0.1)
    q = np.array([0.075, 0.3, 1.0, 2.0, 4.0, 8.0])
    lo = franz_parisi(case.data, bs.OU(), t, q, order=200)
    hi = franz_parisi(case.data, bs.OU(), t, q, order=300)
    assert np.abs(lo.V - hi.V).max() < 1e-7, np.abs(lo.V - hi.V).max()
    assert np.abs(lo.dV - hi.dV).max() < 1e-5
    # measured at t = 0.01: |ΔV| 1e-8, |ΔV'| 2e-6, |ΔV''| 1.3e-4 (V'' up to 31): the planted
    # point's log-density ℓ(x0 ± √q) bends on the scale σ²/(2μ) = 0.05, which Gauss–Hermite
    # over N(±μ, σ²) resolves slowly
    assert np.abs(lo.d2V - hi.d2V).max() < 5e-4, np.abs(lo.d2V - hi.d2V).max()
    # derivatives under the integral equal finite differences of V
    h = 1e-4
    vp = franz_parisi(case.data, bs.OU(), t, q + h, order=300)
    vm = franz_parisi(case.data, bs.OU(), t, q - h, order=300)
    assert np.allclose((vp.V - vm.V) / (2 * h), hi.dV, rtol=1e-5, atol=1e-5)
    assert np.allclose((vp.dV - vm.dV) / (2 * h), hi.d2V, rtol=1e-4, atol=1e-4)
    mc, err = franz_parisi_monte_carlo(case.data, bs.OU(), t, q, n=100_000, rng=5)
    z = (mc - hi.V) / err
    assert np.all(np.abs(z) < 3.5), z


# -- phase diagram ------------------------------------------------------------------------------
def test_phase_diagram_regions_match_closed_form():
    # points away from the boundaries: (μ, σ) = no breaking, breaking, unstable
    pd = phase_diagram([0.1, 0.9], [0.6, 1.7], T=1.5, steps=60, progress=False)
    assert pd.region.tolist() == pd.region_closed.tolist() == [[0, 1], [2, 2]]
    assert abs(pd.t_s[0, 1] - pd.t_s_closed[0, 1]) < 1.5 / 60
    assert closed_form_region(0.5, 1.0) == 0 and closed_form_region(0.9, 1.0) == 1


# -- MPI -----------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_entropy_production_is_partition_independent(comm):
    from bridgesolve._dolfinx import MPI

    def rates(c):
        prob = bs.Problem(bs.Domain.box([-5, -5], [5, 5], [16, 16], comm=c), bs.OU(),
                          bs.TimeGrid.uniform(0.5, 10), degree=2)
        p = bs.solve_fokker_planck(prob, bs.GaussianMixture(
            [0.5, 0.5], [[1.0, 0.5], [-1.0, -0.5]], [0.3, 0.5]), progress=False)
        ep = entropy_production(p, process=prob.process)
        rev = entropy_production(p, process=prob.process, reverse=True)
        floor = 2.2e-16 * c.allreduce(float(p.values.max()), MPI.MAX)
        logp = bs.SpaceTimeField(p.space, p.grid, np.log(np.maximum(p.values, floor)),
                                 representation="log")
        from_log = entropy_production(logp, process=prob.process)
        curv = log_density_curvature(p, x=[0.1, -0.2], direction=[1.0, 1.0])
        return np.concatenate([ep.total, ep.flow, ep.system, rev.flow, from_log.total, curv])

    distributed = rates(comm)
    serial = rates(MPI.COMM_SELF)
    assert np.abs(distributed - serial).max() < 1e-9, np.abs(distributed - serial).max()
    # and the same numbers on every rank
    assert np.abs(comm.bcast(distributed, root=0) - distributed).max() == 0.0
