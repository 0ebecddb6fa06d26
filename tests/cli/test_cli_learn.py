"""``bridgesolve train`` and ``bridgesolve validate``: outputs, exit codes, resumption, and
torch staying out of the other subcommands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridgesolve.cli import main
from bridgesolve.learn.config import load_train_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "learn").glob("train_*.toml"))

SMALL = """\
[data]
type = "gaussian_mixture"
weights = [0.5, 0.5]
means = [[-1.5, -1.0], [1.5, 1.0]]
covs = [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]]

[process]
type = "VP"

[model]
width = 16
depth = 2

[train]
steps = 30
batch_size = 64
checkpoint_every = 10
device = "cpu"
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_validate(path):
    cfg = load_train_config(path)
    ds = cfg.dataset()
    assert ds.sample(10, 0).shape == (10, ds.dim)
    assert cfg.output_dir == Path("results") / path.stem


def test_train_cli_outputs_refusal_and_resume(tmp_path, capsys):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml", "loss.png",
                                                     "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["device"] == "cpu"
    assert (out / "config.toml").read_text() == SMALL
    capsys.readouterr()
    assert main(["train", str(cfg), "-o", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(cfg), "-o", str(out), "--resume", "--quiet"]) == 0  # done: no-op
    assert main(["train", str(cfg), "-o", str(out), "--overwrite", "--steps", "20"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 20
    assert "20 steps on cpu" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace('type = "VP"', 'type = "VQ"'))
    assert main(["train", str(bad), "-o", str(tmp_path / "b"), "--quiet"]) == 2
    assert "[process] type = 'VQ'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_validate_cli_writes_report_folder(tmp_path, capsys, vp_bundle_2d):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "-o", str(run), "--quiet"]) == 0
    ref = vp_bundle_2d.save(tmp_path / "ref.npz")
    rep = tmp_path / "report"
    args = ["validate", "--score", str(run), "--reference", str(ref), "-o", str(rep),
            "--hs", "--n-mc", "64", "--plot-times", "0.5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "J_DSM - J_ESM - C" in out and str(rep) in out
    assert sorted(p.name for p in rep.iterdir()) == ["error_maps.png", "error_vs_t.png",
                                                     "report.txt", "score_fields.png",
                                                     "summary.json"]
    data = json.loads((rep / "summary.json").read_text())
    assert data["dsm"]["n_mc"] == 64 and data["weighting"] == "g2"
    assert data["kl"] == {"skipped": "no h requested"}
    assert main(args + ["--quiet"]) == 2  # the folder exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--quiet", "--overwrite"]) == 0
    assert main(["validate", "--score", str(tmp_path / "none"), "--reference", str(ref),
                 "-o", str(tmp_path / "r2")]) == 2
    assert main(["validate", "--score", str(run), "--reference", str(tmp_path / "none.npz"),
                 "-o", str(tmp_path / "r2")]) == 2
    assert not (tmp_path / "r2").exists()


def test_train_refuses_mpi_launch(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    monkeypatch.setenv("PMI_SIZE", "2")
    assert main(["train", str(cfg), "-o", str(tmp_path / "run"), "--quiet"]) == 2
    assert "without mpiexec" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_other_subcommands_do_not_import_torch():
    code = ("import sys, contextlib, io\n"
            "from bridgesolve.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['run', '--help']); main(['train', '--help']); main(['validate', '--help'])\n"
            "import bridgesolve as bs; bs.learn\n"
            "print('torch' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert res.stdout.strip() == "False", res.stderr


RUN_1D = """\
[domain]
type = "interval"
lower = [-7.0]
upper = [7.0]
cells = [60]

[process]
type = "VP"

[initial]
type = "gaussian_mixture"
weights = [0.4, 0.6]
means = [[-1.5], [1.0]]
covs = [0.3, 0.5]

[time]
T = 1.0
steps = 40
spacing = "uniform"

[discretization]
degree = 2
"""

TRAIN_1D = """\
[data]
type = "gaussian_mixture"
weights = [0.4, 0.6]
means = [[-1.5], [1.0]]
covs = [0.3, 0.5]

[process]
type = "VP"

[model]
width = 16
depth = 2

[train]
steps = 50
batch_size = 64
device = "cpu"
"""


def test_validate_cli_exact_kl_with_run_config(tmp_path):
    """With a `bridgesolve run` config the generated densities are solved on its Problem:
    the report holds KL(ρ0 ‖ q_h) for the requested h and the h = 1 bound check."""
    pytest.importorskip("bridgesolve._dolfinx")
    import bridgesolve as bs
    from bridgesolve.config import load_config
    from bridgesolve.reference import ReferenceBundle

    (tmp_path / "run.toml").write_text(RUN_1D)
    (tmp_path / "train.toml").write_text(TRAIN_1D)
    cfg = load_config(tmp_path / "run.toml")
    problem, data, _ = cfg.build()
    p = bs.solve_fokker_planck(problem, data, progress=False)
    ReferenceBundle.from_fokker_planck(p, problem=problem, data=data).save(tmp_path / "ref.npz")
    assert main(["train", str(tmp_path / "train.toml"), "-o", str(tmp_path / "net"),
                 "--quiet"]) == 0
    assert main(["validate", "--score", str(tmp_path / "net"), "--reference",
                 str(tmp_path / "ref.npz"), "--config", str(tmp_path / "run.toml"),
                 "-o", str(tmp_path / "rep"), "--hs", "0.5", "1", "--n-mc", "64",
                 "--quiet"]) == 0
    report = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert report["kl"]["h"] == [0.5, 1.0] and all(k > 0 for k in report["kl"]["kl"])
    assert report["bound"]["holds"] is True
    assert (tmp_path / "rep" / "q_h.png").is_file()


@pytest.mark.slow  # three processes that import torch and train 3000 steps (~40 s)
def test_ctrl_c_then_resume_is_bit_identical(tmp_path):
    """A real Ctrl-C (SIGINT) to `bridgesolve train`: exit code 130, a checkpoint of the
    last finished step; `--resume` then ends with the weights of an uninterrupted run."""
    import signal
    import time

    import torch

    text = SMALL.replace("steps = 30", "steps = 3000").replace("checkpoint_every = 10",
                                                               "checkpoint_every = 0\nthreads = 1")
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    cmd = [sys.executable, "-m", "bridgesolve.cli", "train", str(cfg), "--quiet"]
    env = {**os.environ, "MPLBACKEND": "agg"}
    proc = subprocess.Popen(cmd + ["-o", str(tmp_path / "a")], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "a" / "config.toml").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the 3000 steps
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    step = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < step < 3000
    subprocess.run(cmd + ["-o", str(tmp_path / "a"), "--resume"], env=env, check=True,
                   timeout=300)
    subprocess.run(cmd + ["-o", str(tmp_path / "b")], env=env, check=True, timeout=300)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 3000
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in b["ema"])
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in b["net"])
    assert a["losses"] == b["losses"]
