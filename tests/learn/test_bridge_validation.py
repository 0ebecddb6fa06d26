"""Learned bridges against a bridge bundle: drift errors, the FE law and its KL cost.

The bundle is the FE Schrödinger bridge between N(-1, 0.3) and N(1, 0.4) under Brownian
motion (σ = 1, T = 1), whose closed form (:func:`bridgesolve.gaussian_bridge`) gives the
marginals ``N(μ_t, Σ_t)``, ``Σ_t`` quadratic in t, and the optimal forward drift
``b = A_t (x - μ_t) + μ̇_t`` with ``A_t = (Σ̇_t - σ²)/(2Σ_t)`` (the gradient drift whose
Fokker–Planck flow has those marginals). A constant ``c`` added to it shifts the law's
mean by ``e_T`` with ``ė = A e + c``, ``e(0) = 0``, and leaves its variance: the learned
law misses ρ1 by ``KL(ρ1 ‖ q_T) = e_T²/(2Σ_1)``.
"""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.learn.bridges import validate_bridge
from bridgesolve.reference import ReferenceBundle

RHO0 = bs.GaussianMixture([1.0], [[-1.0]], [0.3])
RHO1 = bs.GaussianMixture([1.0], [[1.0]], [0.4])


def sigma_poly():
    """``Σ_t`` of the closed-form bridge (a quadratic in t, fitted through three times)."""
    marginal = bs.gaussian_bridge([-1.0], 0.3, [1.0], 0.4, 1.0, 1.0)
    ts = np.array([0.0, 0.5, 1.0])
    return np.poly1d(np.polyfit(ts, [float(marginal(t).covs[0, 0, 0]) for t in ts], 2))


def mean_shift_at_T(c: float) -> float:
    from scipy.integrate import solve_ivp

    S = sigma_poly()
    dS = S.deriv()
    sol = solve_ivp(lambda t, e: (dS(t) - 1.0) / (2.0 * S(t)) * e + c, (0.0, 1.0), [0.0],
                    rtol=1e-12, atol=1e-14)
    return float(sol.y[0, -1])


def bridge_case(comm, steps=40):
    problem = bs.Problem(bs.Domain.box([-6.0], [6.0], [120], comm=comm), bs.Brownian(1.0),
                         bs.TimeGrid.uniform(1.0, steps), degree=2)
    br = bs.solve_bridge(problem, RHO0, RHO1, progress=False)
    bundle = ReferenceBundle.from_bridge(br, data=RHO0, final=RHO1, root=None)
    return problem, br, bundle


@pytest.fixture(scope="module")
def case():
    from bridgesolve._dolfinx import MPI

    return bridge_case(MPI.COMM_WORLD)


@pytest.mark.mpi
def test_exact_drifts_have_no_error_and_reach_rho1(case):
    problem, br, bundle = case
    rep = validate_bridge(br.forward_drift(), br.backward_drift(), bundle)
    e = rep["drift_error"]
    print(rep.table())
    assert np.max(e["forward"]) < 1e-24 and np.max(e["backward"]) < 1e-24
    assert e["forward_path_kl"] < 1e-24 and e["backward_path_kl"] < 1e-24
    law, cost = rep["law"], rep["cost"]
    assert law["l1_T"] < 3e-3 and law["kl_T"] < 1e-4, law
    assert np.all(np.abs(law["mass"] - 1.0) < 1e-9)
    closed = bs.gaussian_bridge_cost([-1.0], 0.3, [1.0], 0.4, 1.0, 1.0)
    assert cost["optimal"] == pytest.approx(closed, rel=1e-3)
    assert cost["learned_on_bundle_marginals"] == pytest.approx(cost["optimal"], rel=1e-12)
    assert cost["learned"] == pytest.approx(cost["optimal"], rel=1e-2)
    assert "law at T against ρ1" in rep.table()
    assert '"kl_T"' in rep.to_json()


def test_error_grows_quadratically_with_a_perturbation(case):
    """``b + δ h``: the squared L²(ρ_t) error is δ² ∫ρ|h|²; the fitted exponent is 2."""
    _, br, bundle = case
    fd, bd = br.forward_drift(), br.backward_drift()

    def h(x, t):
        return np.sin(x) * (1.0 + t)

    deltas = np.array([1e-3, 1e-2, 1e-1])
    fwd, bwd = [], []
    for d in deltas:
        rep = validate_bridge(lambda x, t, d=d: fd(x, t) + d * h(x, t),
                              lambda x, t, d=d: bd(x, t) - d * h(x, t), bundle, solve=False)
        fwd.append(rep["drift_error"]["forward"][10])
        bwd.append(rep["drift_error"]["backward_path_kl"])
    for name, values in (("forward e(t=0.25)", fwd), ("backward path KL", bwd)):
        slope = np.polyfit(np.log(deltas), np.log(values), 1)[0]
        print(f"{name}: observed exponent {slope:.6f}")
        assert slope == pytest.approx(2.0, abs=1e-6), f"{name}: exponent {slope}"


@pytest.mark.mpi
def test_a_shifted_drift_misses_rho1_by_the_closed_form(case):
    problem, br, bundle = case
    fd = br.forward_drift()
    c = 0.1
    rep = validate_bridge(lambda x, t: fd(x, t) + c, None, bundle, problem=problem)
    e_T = mean_shift_at_T(c)
    expected = e_T**2 / (2 * 0.4)
    print(f"KL(ρ1 ‖ q_T): FE {rep['law']['kl_T']:.4e}, closed form {expected:.4e}; "
          f"L1 {rep['law']['l1_T']:.4e}; costs {rep['cost']}")
    assert rep["law"]["kl_T"] == pytest.approx(expected, rel=0.05)
    assert rep["drift_error"]["forward_path_kl"] == pytest.approx(0.5 * c * c, rel=1e-6)
    assert rep["cost"]["learned"] > rep["cost"]["optimal"]
    assert "backward" not in rep["drift_error"]


def test_a_reverse_time_backward_network(case):
    """DSB's backward network: a drift of τ = T - t returning g²∇log φ̂ - f."""
    torch = pytest.importorskip("torch")
    _, br, bundle = case
    bd = br.backward_drift()

    class Reverse(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))  # float64

        def forward(self, x, tau):
            t = 1.0 - float(tau[0])
            return torch.as_tensor(-bd(x.numpy(), t), dtype=x.dtype)

    rep = validate_bridge(br.forward_drift(), Reverse(), bundle,
                          backward_time="reverse", solve=False)
    assert np.max(rep["drift_error"]["backward"]) < 1e-24
    assert rep["law"] == {"skipped": "solve=False"}


def test_bad_inputs(case, vp_bundle_2d):
    _, br, bundle = case
    fd = br.forward_drift()
    with pytest.raises(bs.BridgesolveInputError,
                       match=r"forward\(x, t\) returned shape \(\d+, 2\): expected \(\d+, 1\)"):
        validate_bridge(lambda x, t: np.hstack([x, x]), None, bundle, solve=False)
    with pytest.raises(bs.BridgesolveInputError, match=r"backward\(x, t\) returned shape"):
        validate_bridge(fd, lambda x, t: x[:, 0], bundle, solve=False)
    with pytest.raises(bs.BridgesolveInputError,
                       match="is of kind 'diffusion': expected a 'bridge' bundle"):
        validate_bridge(fd, None, vp_bundle_2d)
    with pytest.raises(bs.BridgesolveInputError, match="backward_time = 'sideways'"):
        validate_bridge(fd, None, bundle, backward_time="sideways")


def closed_form_drifts(torch):
    """TorchScript-able forward and backward drifts of the closed-form bridge (f = 0, σ = 1):
    ``b = A_t (x - μ_t) + 2`` and ``b̂ = b + (x - μ_t)/Σ_t``."""
    p2, p1, p0 = (float(c) for c in sigma_poly().coeffs)

    class Forward(torch.nn.Module):
        def __init__(self, backward: bool = False):
            super().__init__()
            self.backward = backward
            self.p2, self.p1, self.p0 = p2, p1, p0

        def forward(self, x, t):
            S = (self.p2 * t + self.p1) * t + self.p0
            A = ((2.0 * self.p2 * t + self.p1) - 1.0) / (2.0 * S)
            dx = x - (2.0 * t - 1.0)[:, None]
            b = A[:, None] * dx + 2.0
            if self.backward:
                b = b + dx / S[:, None]
            return b

    return Forward(), Forward(backward=True)


def test_validate_cli_with_a_learned_bridge(case, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    import json

    from bridgesolve.cli import main

    _, _, bundle = case
    ref = bundle.save(tmp_path / "bridge.npz", dtype="float64")
    fwd, bwd = closed_form_drifts(torch)
    torch.jit.script(fwd).save(str(tmp_path / "fwd.pt"))
    torch.jit.script(bwd).save(str(tmp_path / "bwd.pt"))
    out = tmp_path / "report"
    base = ["validate", "--reference", str(ref), "--quiet"]
    args = [*base, "--forward", str(tmp_path / "fwd.pt"), "--backward", str(tmp_path / "bwd.pt")]
    assert main([*args, "-o", str(out)]) == 0
    data = json.loads((out / "summary.json").read_text())
    rel_f = np.asarray(data["drift_error"]["forward_relative"])
    rel_b = np.asarray(data["drift_error"]["backward_relative"])
    with capsys.disabled():
        print("closed-form drifts against the FE bridge: relative L2 error, max over t:",
              rel_f.max(), rel_b.max(), "law at T", data["law"]["l1_T"], data["law"]["kl_T"])
    assert rel_f.max() < 1e-2 and rel_b.max() < 1e-2
    assert data["law"]["kl_T"] < 1e-4
    capsys.readouterr()
    for extra, message in (
            (["--score", str(tmp_path / "fwd.pt"), "--forward", str(tmp_path / "fwd.pt")],
             "exactly one of --score"),
            (["--score", str(tmp_path / "fwd.pt"), "--backward", str(tmp_path / "bwd.pt")],
             "--backward without --forward"),
            (["--forward", str(tmp_path / "fwd.pt"), "--convention", "edm"],
             "only for scores"),
            (["--forward", str(tmp_path / "missing.pt")], "expected a TorchScript or .pt2")):
        assert main([*base, *extra, "-o", str(tmp_path / "r2")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
