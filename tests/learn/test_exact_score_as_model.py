"""The exact score of a non-mixture family, written in torch (independently of
:mod:`bridgesolve.densities`), saved as TorchScript and loaded as a network
(:func:`bridgesolve.learn.adapters.load_network`), validated by :func:`bridgesolve.learn.validate`:

* against the bundle of the exact formulas the ESM is round-off (not 0 by construction: the
  module and the bundle share no code, only the data's definition and VP's schedule);
* against an FE bundle the ESM is the FE's own score error (the bundle's closed-form
  estimate), while the validator's exact column stays at round-off.

The checkerboard's score is erf differences (log domain); the two moons' Gauss–Legendre on
equal panels in the curve parameter (the library's panels are of equal arc length).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import bridgesolve as bs  # noqa: E402
from bridgesolve import densities as D  # noqa: E402
from bridgesolve.learn import validate  # noqa: E402
from bridgesolve.learn.adapters import load_network  # noqa: E402
from bridgesolve.reference import ReferenceBundle, exact_bundle  # noqa: E402
from bridgesolve.timegrid import TimeGrid  # noqa: E402

PROC = bs.VP()
F64 = torch.float64


class _VPScore(torch.nn.Module):
    """VP(β_min, β_max) in torch: ``B = β_min t + ½(β_max - β_min) t²``, ``a = e^{-B/2}``,
    ``v = 1 - e^{-B}``. Float64 parameters, so that the validator feeds float64."""

    def __init__(self):
        super().__init__()
        self.beta = torch.nn.Parameter(torch.tensor([PROC.beta_min, PROC.beta_max], dtype=F64),
                                       requires_grad=False)

    def av(self, t):
        B = self.beta[0] * t + 0.5 * (self.beta[1] - self.beta[0]) * t * t
        return torch.exp(-0.5 * B), -torch.expm1(-B)


class CheckerboardScore(_VPScore):
    """Uniform on the unit squares ``[i, i+1] × [j, j+1]``, i + j even, i, j ∈ {-2..1}
    (the docstring's board); ``x = a y + √v z`` gives per axis ``Φ(α) - Φ(β)``,
    ``α = (x - a l)/√v``, ``β = (x - a (l+1))/√v``, taken on the side without cancellation."""

    def __init__(self):
        super().__init__()
        lo = [(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0]
        self.lower = torch.nn.Parameter(torch.tensor(lo, dtype=F64), requires_grad=False)

    def forward(self, x, t):
        a, v = self.av(t)
        a, sd = a[:, None, None], torch.sqrt(v)[:, None, None]
        al = (x[:, None, :] - a * self.lower[None]) / sd  # (N, K, d)
        be = al - a / sd
        right = be > 0
        l_hi = torch.special.log_ndtr(torch.where(right, -be, al))
        l_lo = torch.special.log_ndtr(torch.where(right, -al, be))
        l_diff = l_hi + torch.log1p(-torch.exp(l_lo - l_hi))  # log(Φ(α) - Φ(β))
        c = 0.5 * math.log(2.0 * math.pi)
        s = (torch.exp(-0.5 * al * al - c - l_diff) - torch.exp(-0.5 * be * be - c - l_diff)) / sd
        r = torch.softmax(l_diff.sum(dim=2), dim=1)[:, :, None]  # equal weights and areas
        return (r * s).sum(dim=1)


class CurveScore(_VPScore):
    """``Σ_j w_j ∫_0^1 N(x; a c_j(u), (a²σ² + v) I) du`` by a 16-point Gauss–Legendre rule on
    ``panels`` equal panels in ``u`` (the library's panels are of equal arc length, with its
    own node count and error estimate), nodes from the curves' own ``fn``, log-sum-exp."""

    def __init__(self, rho, panels: int = 32):
        super().__init__()
        g, gw = np.polynomial.legendre.leggauss(16)
        edges = np.linspace(0.0, 1.0, panels + 1)
        u = ((edges[:-1, None] + edges[1:, None]) / 2 + (g / 2) / panels).ravel()
        wq = np.tile(gw / (2 * panels), panels)
        nodes = np.concatenate([c.fn(u) for c in rho.curves])
        logw = np.concatenate([np.log(wq * w) for w in rho.weights])
        self.nodes = torch.nn.Parameter(torch.tensor(nodes, dtype=F64), requires_grad=False)
        self.logw = torch.nn.Parameter(torch.tensor(logw, dtype=F64), requires_grad=False)
        self.noise2 = float(rho.noise) ** 2

    def forward(self, x, t):
        a, v = self.av(t)
        var = (a * a * self.noise2 + v)[:, None]
        diff = a[:, None, None] * self.nodes[None] - x[:, None, :]  # (N, Q, d)
        r = torch.softmax(self.logw[None] - 0.5 * (diff * diff).sum(dim=2) / var, dim=1)
        return (r[:, :, None] * diff).sum(dim=1) / var


CASES = {"checkerboard": (D.checkerboard, CheckerboardScore),
         "two_moons": (lambda: D.two_moons(noise=0.2), lambda: CurveScore(D.two_moons(0.2)))}


def _network(kind, tmp_path):
    path = tmp_path / f"{kind}_exact_score.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        torch.jit.script(CASES[kind][1]()).save(str(path))
        return load_network(path, device="cpu")


def _problem(half, n, steps, degree):
    dom = bs.Domain.box([-half, -half], [half, half], n)
    return bs.Problem(dom, PROC, TimeGrid.uniform(0.2, steps), degree=degree)


def _validate(net, bundle):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the notes are checked instead
        warnings.simplefilter("ignore", FutureWarning)
        return validate(net, bundle, hs=(), n_mc=64, progress=False, device="cpu", chunk=512)


def test_the_torch_schedule_is_vp():
    net = CheckerboardScore()
    t = torch.tensor([0.01, 0.2, 0.7, 1.0], dtype=F64)
    a, v = net.av(t)
    ref = np.array([PROC.transition(float(s)) for s in t])
    np.testing.assert_allclose(np.stack([a.numpy(), v.numpy()], axis=1), ref, rtol=1e-14)


@pytest.mark.parametrize("kind", list(CASES))
def test_exact_score_as_torchscript_is_round_off_against_the_exact_bundle(kind, tmp_path):
    rho, net = CASES[kind][0](), _network(kind, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coarse quadrature at t = 0
        bundle = exact_bundle(_problem(6.0, 12, 4, 1), rho, root=None)
    rep = _validate(net, bundle)
    rel = np.asarray(rep["esm"]["relative"])[1:]  # t = 0: the boxes' score is not finite
    # measured: integrated ESM 3.5e-31 (checkerboard), 4.2e-29 (two moons); relative L2
    # error <= 4.9e-16 / 8.2e-15. (The two moons bundle's quadrature estimate, <= 7.4e-19,
    # is conservative by 1e9: the validator notes it as "not small against the measured".)
    assert rep["esm"]["integrated"] < 1e-26, rep["esm"]["integrated"]
    assert np.all(rel < 1e-13), rel
    assert max(rep["exact"]["esm"][1:]) < 1e-26
    assert not any("trained on" in n or "convention" in n for n in rep["notes"]), rep["notes"]


@pytest.mark.parametrize("kind", list(CASES))
def test_exact_score_as_torchscript_measures_the_fe_bundles_error(kind, tmp_path):
    rho, net = CASES[kind][0](), _network(kind, tmp_path)
    problem = _problem(4.0, 16, 4, 2)  # h = 0.5: the board's edges are mesh lines
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = bs.solve_fokker_planck(problem, rho, progress=False)
    fe = ReferenceBundle.from_fokker_planck(f, problem=problem, data=rho, root=None)
    assert fe.metadata["score_error_estimate"]["method"] == "closed-form"
    rep = _validate(net, fe)
    esm = np.asarray(rep["esm"]["per_time"])
    # against the FE bundle the exact score's ESM is the FE's score error: the closed-form
    # estimate (weighted with the exact law's p, the ESM with the FE's p_h). Measured
    # (t = 0.05, 0.1, 0.15, 0.2): checkerboard ESM 70.2, 0.262, 0.0406, 8.18e-3 against
    # 92.7, 0.259, 0.0409, 8.05e-3; two moons 183, 3.00, 0.0895, 0.0324 against 300, 3.25,
    # 0.0902, 0.0323 (t = 0.05 is unresolved on this mesh: p_h and p weigh differently)
    np.testing.assert_allclose(esm[2:], fe.score_error_estimate[2:], rtol=0.15)
    np.testing.assert_allclose(esm[2:], rep["exact"]["bundle_error"][2:], rtol=0.15)
    assert 0.5 < esm[1] / fe.score_error_estimate[1] < 2.0
    assert rep["esm"]["integrated"] > 0.1  # measured 1.96 / 5.34
    # ... while the exact column (against the exact law) stays at round-off (measured
    # <= 3.7e-30 / 4.1e-28)
    assert max(rep["exact"]["esm"][1:]) < 1e-25, rep["exact"]["esm"]
