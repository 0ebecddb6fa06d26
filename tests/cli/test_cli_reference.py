"""`bridgesolve reference` and `bridgesolve likelihood`: outputs, refusals, MPI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bridgesolve._dolfinx import MPI
from bridgesolve.cli import main
from bridgesolve.reference import ReferenceBundle

FP_1D = """\
[domain]
type = "interval"
lower = [-7.0]
upper = [7.0]
cells = {cells}
[process]
type = "OU"
[initial]
type = "gaussian_mixture"
weights = [0.4, 0.6]
means = [[-1.5], [1.0]]
covs = [0.3, 0.5]
[time]
T = 2.0
steps = {steps}
spacing = "uniform"
[discretization]
degree = 2
"""

BRIDGE_1D = """\
[problem]
equation = "bridge"
[domain]
type = "interval"
lower = [-6.0]
upper = [6.0]
cells = 120
[process]
type = "Brownian"
sigma = 1.0
[initial]
type = "gaussian_mixture"
weights = [1.0]
means = [[-1.0]]
covs = [0.3]
[final]
type = "gaussian_mixture"
weights = [1.0]
means = [[1.0]]
covs = [0.4]
[time]
T = 1.0
steps = 20
spacing = "uniform"
[bridge]
tol = 1e-8
"""


def _config(folder, text, name="c.toml"):
    path = folder / name
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(text)
    MPI.COMM_WORLD.barrier()
    return path


@pytest.mark.mpi
def test_reference_writes_bundle(mpi_tmp_path, capsys):
    cfg = _config(mpi_tmp_path, FP_1D.format(cells=60, steps=20))
    out = mpi_tmp_path / "sub" / "ref.npz"
    assert main(["reference", str(cfg), "-o", str(out), "--quiet"]) == 0
    b = ReferenceBundle.load(out)
    assert b.kind == "diffusion" and b.dim == 1 and b.nt == 20
    assert b.points.shape == (60 * 4, 1)  # P2: degree 6, 4 points per interval
    assert np.allclose(b.integrate(b.density), 1.0, atol=1e-6)
    assert b.metadata["info"]["config"]["process"]["type"] == "OU"
    assert b.metadata["versions"]["mpi_size"] == str(MPI.COMM_WORLD.size)
    assert type(b.process()).__name__ == "OU" and b.data().n_components == 2
    # exact mixture: the bundle's score is close to the exact score (p-weighted)
    exact = b.data().evolve(b.process(), 2.0)
    err = np.sqrt(b.integrate(exact.pdf(b.points) * np.sum(
        (b.score[-1] - exact.score(b.points)) ** 2, axis=1)))
    assert err < 1e-3, err
    # an existing bundle is refused (exit 2, untouched) unless --overwrite
    before = out.stat().st_mtime_ns
    assert main(["reference", str(cfg), "-o", str(out), "--quiet"]) == 2
    assert out.stat().st_mtime_ns == before
    assert "exists: pass --overwrite" in capsys.readouterr().err or MPI.COMM_WORLD.rank
    assert main(["reference", str(cfg), "-o", str(out), "--quiet", "--overwrite",
                 "--degree", "3"]) == 0
    assert ReferenceBundle.load(out).points.shape == (60 * 2, 1)


def test_reference_of_a_bridge(tmp_path):
    cfg = _config(tmp_path, BRIDGE_1D)
    out = tmp_path / "bridge.npz"
    assert main(["reference", str(cfg), "-o", str(out), "--quiet"]) == 0
    b = ReferenceBundle.load(out)
    assert b.kind == "bridge"
    assert b.log_phi.shape == b.log_density.shape and b.grad_log_phi.shape == b.score.shape
    # float32 storage (the default): the mass holds to single-precision round-off
    assert np.allclose(b.integrate(b.density), 1.0, rtol=0, atol=1e-6)
    assert np.allclose(b.score, b.grad_log_phi + b.grad_log_phi_hat)
    # the marginals at both ends are ρ0 and ρ1 (Gaussian bridge endpoints)
    rho0 = b.data()
    for n, (m, v) in ((0, (-1.0, 0.3)), (-1, (1.0, 0.4))):
        mean = b.integrate(b.density[n] * b.points[:, 0])
        var = b.integrate(b.density[n] * b.points[:, 0] ** 2) - mean**2
        assert abs(mean - m) < 1e-3 and abs(var - v) < 2e-3, (n, mean, var)
    assert rho0 is not None and b.metadata["info"]["converged"] is True


FP_2D = """\
[domain]
type = "box"
lower = [-4.0, -4.0]
upper = [4.0, 4.0]
cells = [32, 32]
[process]
type = "VP"
[initial]
{initial}
[time]
T = 0.2
steps = 8
[discretization]
degree = 1
"""


@pytest.mark.parametrize("kind, exact_method", [("circles", "quadrature"),
                                                ("checkerboard", "exact")])
def test_reference_fields_exact_and_finite_element(kind, exact_method, tmp_path, capsys):
    """``--fields exact`` writes the formulas' fields (curve sets: quadrature error, boxes:
    closed form); ``--fields finite-element`` (the default) the FE solve's, with the
    closed-form error estimate; both on the same points, and the two agree to the FE
    error."""
    initial = f'type = "{kind}"' + ("\nnoise = 0.2" if kind == "circles" else "")  # h = 0.5
    cfg = _config(tmp_path, FP_2D.format(initial=initial))
    bundles = {}
    for fields in ("exact", "finite-element"):
        out = tmp_path / f"{fields}.npz"
        assert main(["reference", str(cfg), "-o", str(out), "--fields", fields]) == 0
        assert f"fields      {fields}" in capsys.readouterr().out
        bundles[fields] = b = ReferenceBundle.load(out)
        assert b.metadata["fields"] == fields and b.nt == 8
        assert b.metadata["data"]["type"] == kind
    exact, fe = bundles["exact"], bundles["finite-element"]
    method = exact.metadata["score_error_estimate"]["method"]
    assert method == exact_method
    assert fe.metadata["score_error_estimate"]["method"] == "closed-form"
    # the formulas' own error is round-off (measured: circles <= 7e-19, checkerboard 0)
    # against the FE's closed-form score error (3.7 ... 164 on this coarse P1 mesh)
    assert np.all(exact.score_error_estimate < 1e-12), exact.score_error_estimate
    assert np.all(fe.score_error_estimate > 1e-3), fe.score_error_estimate
    np.testing.assert_allclose(fe.points, exact.points)
    np.testing.assert_allclose(fe.times, exact.times)
    gap = exact.integrate(np.abs(fe.density[-1] - exact.density[-1]))
    assert 1e-4 < gap < 0.05, gap  # measured 2.3e-2 / 1.1e-2: the FE error, not another law
    assert fe.data().describe() == exact.data().describe()


def test_reference_refusals(tmp_path, capsys):
    cfg = _config(tmp_path, FP_1D.format(cells=10, steps=2))
    assert main(["reference", str(cfg), "-o", str(tmp_path / "ref.h5")]) == 2
    assert "expected a .npz file" in capsys.readouterr().err
    hjb = _config(tmp_path, FP_1D.format(cells=10, steps=2).replace(
        "[initial]", "[terminal]") + '[problem]\nequation = "hjb"\n', "hjb.toml")
    assert main(["reference", str(hjb), "-o", str(tmp_path / "r.npz")]) == 2
    assert "'fokker-planck' or 'bridge'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.npz"))
    assert main(["reference", "--help"]) == 0
    out = capsys.readouterr().out
    assert "schema bridgesolve.reference/1" in out and "NumPy" in out


def test_likelihood_table_and_plot(tmp_path, capsys):
    cfg = _config(tmp_path, FP_1D.format(cells=80, steps=80))
    out = tmp_path / "lik"
    assert main(["likelihood", str(cfg), "-o", str(out), "--scale", "0.8", "--amplitude",
                 "0.5", "--h", "0", "0.5", "1", "--samples", "5000", "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"likelihood.json", "likelihood.csv",
                                               "likelihood.png"}
    rows = list(csv.DictReader((out / "likelihood.csv").open()))
    assert [float(r["h"]) for r in rows] == [0.0, 0.5, 1.0]
    kl = [float(r["kl"]) for r in rows]
    # measured (this config): KL 0.718, 0.598, 0.323 — the reverse SDE forgives the
    # perturbed score most; the h = 1 value obeys the score-matching bound
    assert kl[0] > kl[1] > kl[2] > 0.1, kl
    summary = json.loads((out / "likelihood.json").read_text())
    assert kl[2] < summary["kl_bound_h1"]["bound"]
    nll = [float(r["nll"]) for r in rows]
    assert all(v > summary["data_entropy_estimate"] for v in nll)
    # with the exact score and the exact prior every h reproduces ρ0
    out2 = tmp_path / "lik2"
    assert main(["likelihood", str(cfg), "-o", str(out2), "--prior", "exact", "--h", "0",
                 "1", "--samples", "5000", "--quiet"]) == 0
    rows = json.loads((out2 / "likelihood.json").read_text())["rows"]
    assert all(abs(r["kl"]) < 1e-3 and r["l1"] < 2e-3 for r in rows), rows
    capsys.readouterr()


def test_likelihood_with_bundle_score_and_refusals(tmp_path, capsys):
    cfg = _config(tmp_path, FP_1D.format(cells=80, steps=40))
    ref = tmp_path / "ref.npz"
    assert main(["reference", str(cfg), "-o", str(ref), "--quiet"]) == 0
    out = tmp_path / "lik"
    assert main(["likelihood", str(cfg), "-o", str(out), "--bundle", str(ref), "--prior",
                 "exact", "--h", "1", "--samples", "2000", "--quiet"]) == 0
    row = json.loads((out / "likelihood.json").read_text())["rows"][0]
    assert row["kl"] < 2e-3, row  # the bundle's score is (nearly) the exact one
    assert main(["likelihood", str(cfg), "--h", "1.5", "-o", str(tmp_path / "x")]) == 2
    assert "h = 1.5" in capsys.readouterr().err
    assert main(["likelihood", str(cfg), "--bundle", str(tmp_path / "none.npz"),
                 "-o", str(tmp_path / "y")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
