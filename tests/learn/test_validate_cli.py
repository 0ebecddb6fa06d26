"""``bridgesolve validate --score module:function``: networks people already have, named as
Python objects (``module:function`` with the current directory on the import path, or
``path/to/file.py:function``), against exact reference bundles on disk.

Each model below returns the exact score (or ε, or drift) of its bundle, so the relative
ESM must be at round-off; each error names the value given.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.cli import main

MIX = bs.GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.2, -0.3]],
                         [[[0.3, 0.1], [0.1, 0.2]], [[0.25, -0.05], [-0.05, 0.4]]])
LINEAR = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.30.0",
          "num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
          "beta_schedule": "linear", "prediction_type": "epsilon"}

#: A user's module: plain NumPy scores of MIX under VP (t a float), and wrong ones.
SCORES = """\
import numpy as np
import bridgesolve as bs
from bridgesolve.learn import adapt

MIX = bs.GaussianMixture({weights}, {means}, {covs})


def score(x, t):
    return MIX.evolve(bs.VP(), t).score(x) if t > 0 else MIX.score(x)


def flat(x, t):  # one column: the shape of a 1D model
    return np.asarray(x)[:, :1]


class Holder:
    score = staticmethod(score)


def eps(x, label):  # a score_sde VP ε-model: time input 999 t, one label per point
    out = np.empty_like(x)
    for u in np.unique(label):
        t, sel = float(u) / 999.0, label == u
        out[sel] = -np.sqrt(bs.VP().transition(t)[1]) * score(x[sel], t)
    return out


adapted = adapt(eps, "score_sde_vp")  # adapted in the module, named as a plain score
"""

#: A diffusers ε-model of MIX under the linear DDPM table, as a module with the UNet
#: signature (``unet(sample, timestep).sample``) and as a NumPy function ``eps(x, k)``.
DIFFUSERS = """\
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import bridgesolve as bs

MIX = bs.GaussianMixture({weights}, {means}, {covs})
TABLE = bs.Tabulated.from_scheduler_config(
    json.loads((Path(__file__).parent / "scheduler_config.json").read_text()))


def eps(x, k):
    x, k = np.asarray(x, dtype=float), np.asarray(k, dtype=float)
    out = np.empty_like(x)
    for u in np.unique(k):  # t_k = (k + 1)/N; ε̂ = -σ ∇log p_t
        t = (float(u) + 1.0) / TABLE.alphas_cumprod.size
        sel = k == u
        out[sel] = -math.sqrt(TABLE.transition(t)[1]) * MIX.evolve(TABLE, t).score(x[sel])
    return out


class UNet(torch.nn.Module):
    def forward(self, sample, timestep, return_dict=True):
        out = torch.as_tensor(eps(sample.numpy(), timestep.numpy()), dtype=sample.dtype)
        return SimpleNamespace(sample=out) if return_dict else (out,)


unet = UNet()
"""


def _module_text(template: str) -> str:
    return template.format(weights=MIX.weights.tolist(), means=MIX.means.tolist(),
                           covs=MIX.covs.tolist())


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """cwd = tmp_path; sys.path and the modules written here are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith(("bs_cli_", "bridgesolve_user_")):
            del sys.modules[name]


def _bundle(tmp_path, process, name="ref.npz"):
    from learn_helpers import analytic_bundle

    ref = analytic_bundle(MIX, process, nt=8, box=5.0, cells=6, order=3)
    return ref.save(tmp_path / name, dtype="float64")


def _run(args, capsys):
    code = main(args)
    return code, capsys.readouterr()


def _esm(folder) -> np.ndarray:
    data = json.loads((folder / "summary.json").read_text())
    return data, np.asarray(data["esm"]["relative"][1:])


def test_score_module_function(isolated, capsys):
    """--score bs_cli_scores:score (a module of the current directory, not on sys.path
    before): exact ESM, quiet (no progress bar on stderr), and a report folder without ':'."""
    (isolated / "bs_cli_scores.py").write_text(_module_text(SCORES))
    ref = _bundle(isolated, bs.VP())
    assert str(isolated) not in sys.path
    code, out = _run(["validate", "--score", "bs_cli_scores:score", "--reference", str(ref),
                      "--hs", "--n-mc", "64", "--quiet"], capsys)
    assert code == 0, out.err
    assert out.out == "" and out.err == ""  # --quiet: no table and no progress bar
    data, rel = _esm(isolated / "results" / "validate-bs_cli_scores-score")
    with capsys.disabled():
        print(f"module:function score, max relative ESM {rel.max():.2e}")
    assert rel.max() < 1e-12
    assert data["score"] == "bs_cli_scores:score (score)"
    # a dotted attribute, and without --quiet the table is printed
    code, out = _run(["validate", "--score", "bs_cli_scores:Holder.score", "--reference",
                      str(ref), "--hs", "--n-mc", "64", "-o", "r2"], capsys)
    assert code == 0, out.err
    assert "bs_cli_scores:Holder.score (score)" in out.out
    assert _esm(isolated / "r2")[1].max() < 1e-12
    # a network adapted in the module (adapt's options beyond the CLI's), as a plain score
    code, out = _run(["validate", "--score", "bs_cli_scores:adapted", "--reference", str(ref),
                      "--hs", "--n-mc", "64", "--quiet", "-o", "r3"], capsys)
    assert code == 0, out.err
    data, rel = _esm(isolated / "r3")
    with capsys.disabled():
        print(f"module:adapted (score_sde_vp), max relative ESM {rel.max():.2e}")
    assert rel.max() < 1e-12 and data["score"] == "bs_cli_scores:adapted (score_sde_vp)"


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_score_file_function(isolated, capsys, absolute):
    """--score path/to/file.py:score, relative to the cwd or absolute."""
    (isolated / "nets").mkdir()
    (isolated / "nets" / "bs_cli_file.py").write_text(_module_text(SCORES))
    ref = _bundle(isolated, bs.VP())
    where = (isolated / "nets" / "bs_cli_file.py") if absolute else "nets/bs_cli_file.py"
    code, out = _run(["validate", "--score", f"{where}:score", "--reference", str(ref),
                      "--hs", "--n-mc", "64", "--quiet", "-o", "rep"], capsys)
    assert code == 0, out.err
    rel = _esm(isolated / "rep")[1]
    with capsys.disabled():
        print(f"file.py:function score, max relative ESM {rel.max():.2e}")
    assert rel.max() < 1e-12


@pytest.mark.parametrize("attr", ["unet", "eps"])
def test_diffusers_model_with_a_scheduler_config(isolated, capsys, attr):
    """A diffusers ε-model (UNet signature module, or NumPy eps(x, k)) as module:function
    with --convention diffusers_epsilon --scheduler-config: ESM at round-off against the
    bundle of the config's Tabulated process."""
    pytest.importorskip("torch")
    cfg = isolated / "scheduler_config.json"
    cfg.write_text(json.dumps(LINEAR))
    (isolated / "bs_cli_diffusers.py").write_text(_module_text(DIFFUSERS))
    ref = _bundle(isolated, bs.Tabulated.from_scheduler_config(LINEAR))
    code, out = _run(["validate", "--score", f"bs_cli_diffusers:{attr}", "--convention",
                      "diffusers_epsilon", "--scheduler-config", str(cfg), "--reference",
                      str(ref), "--hs", "--n-mc", "64", "--quiet", "-o", "rep"], capsys)
    assert code == 0, out.err
    data, rel = _esm(isolated / "rep")
    with capsys.disabled():
        print(f"diffusers ε {attr} via --scheduler-config, max relative ESM {rel.max():.2e}")
    assert rel.max() < 1e-12
    assert data["score"] == f"bs_cli_diffusers:{attr} (diffusers_epsilon)"
    assert not data["convention_check"]["triggered"]


def test_errors_name_the_value(isolated, capsys):
    pytest.importorskip("torch")
    (isolated / "bs_cli_errors.py").write_text(_module_text(SCORES))
    ref = _bundle(isolated, bs.VP())
    bad_cfg = isolated / "no_beta_start.json"
    bad_cfg.write_text(json.dumps({k: v for k, v in LINEAR.items() if k != "beta_start"}))
    base = ["validate", "--reference", str(ref), "--hs", "--n-mc", "64", "--quiet",
            "-o", "rep"]
    for extra, messages in (
            (["--score", "bs_cli_nowhere:score"],
             ["--score 'bs_cli_nowhere:score'", "no module named 'bs_cli_nowhere'"]),
            (["--score", "bs_cli_errors:scor"],
             ["--score 'bs_cli_errors:scor'", "has no attribute 'scor'", "flat, score"]),
            (["--score", "bs_cli_errors:MIX"],
             ["--score 'bs_cli_errors:MIX'", "a GaussianMixture, not callable"]),
            (["--score", "nets/missing.py:score"],
             ["--score 'nets/missing.py:score'", "no such file 'nets/missing.py'"]),
            (["--score", "bs_cli_errors:"], ["--score 'bs_cli_errors:'",
                                             "expected module:function"]),
            (["--score", "bs_cli_errors:flat"],
             ["bs_cli_errors:flat (score)", "returned shape (324, 1): expected (324, 2)"]),
            (["--score", "bs_cli_errors:flat", "--convention", "score_sde_vp"],
             ["bs_cli_errors:flat (score_sde_vp)", "returned shape (324, 1)"]),
            (["--score", "bs_cli_errors:score", "--convention", "diffusers_epsilon",
              "--scheduler-config", str(bad_cfg)],
             [f"--scheduler-config {str(bad_cfg)!r}", "no 'beta_start'"]),
            (["--score", "bs_cli_errors:score", "--scheduler-config", str(bad_cfg)],
             ["--scheduler-config without --convention"])):
        code, out = _run([*base, *extra], capsys)
        assert code == 2, (extra, out.err)
        assert all(m in out.err for m in messages), (extra, out.err)
    assert not (isolated / "rep").exists()


def test_learned_bridge_module_functions(isolated, capsys):
    """--forward/--backward module:function: the closed-form drifts of the Gaussian bridge
    (NumPy functions of (x, t)) against its FE bundle; a missing module names the value."""
    from test_bridge_validation import bridge_case, sigma_poly

    from bridgesolve._dolfinx import MPI

    p2, p1, p0 = (float(c) for c in sigma_poly().coeffs)
    (isolated / "bs_cli_drifts.py").write_text(f"""\
import numpy as np


def _parts(x, t):
    t = np.broadcast_to(np.asarray(t, dtype=float), (np.shape(x)[0],))
    S = ({p2!r} * t + {p1!r}) * t + {p0!r}
    A = ((2.0 * {p2!r} * t + {p1!r}) - 1.0) / (2.0 * S)
    dx = np.asarray(x, dtype=float) - (2.0 * t - 1.0)[:, None]
    return A[:, None] * dx + 2.0, dx / S[:, None]


def forward(x, t):
    return _parts(x, t)[0]


def backward(x, t):
    b, extra = _parts(x, t)
    return b + extra
""")
    ref = bridge_case(MPI.COMM_WORLD, steps=40)[2].save(isolated / "bridge.npz",
                                                        dtype="float64")
    base = ["validate", "--reference", str(ref), "--quiet"]
    code, out = _run([*base, "--forward", "bs_cli_drifts:forward", "--backward",
                      "bs_cli_drifts:backward"], capsys)
    assert code == 0, out.err
    data = json.loads((isolated / "results" / "validate-bs_cli_drifts-forward"
                       / "summary.json").read_text())
    rel = np.asarray(data["drift_error"]["forward_relative"])
    rel_b = np.asarray(data["drift_error"]["backward_relative"])
    assert rel.max() < 1e-2 and rel_b.max() < 1e-2 and data["law"]["kl_T"] < 1e-4
    code, out = _run([*base, "--forward", "bs_cli_drifts:forward", "--backward",
                      "bs_cli_drifts:nothing", "-o", "r2"], capsys)
    assert code == 2 and "--backward 'bs_cli_drifts:nothing'" in out.err, out.err
    assert "has no attribute 'nothing'" in out.err and not (isolated / "r2").exists()
