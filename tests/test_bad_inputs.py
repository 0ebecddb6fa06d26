"""A table of bad inputs and what bridgesolve does with each (issue 16).

Every row names an input a user may plausibly give and the outcome it must have:

- ``refuse``: the CLI exits 2 with one ``bridgesolve: error:`` line naming the value (no
  traceback, no results folder); the Python API raises ``BridgesolveInputError`` whose
  message is one line and matches the row's pattern;
- ``warn``: the run finishes (exit 0), the warning is printed as a ``bridgesolve: warning:``
  line and recorded in ``summary.json``; the API emits a ``RuntimeWarning``/``UserWarning``
  matching the pattern (and solvers keep it in ``info["warnings"]``);
- ``ok``: a control row: nothing is refused or warned about.

Rows whose fix belongs to another module's owner are marked ``xfail(strict=False)`` with
the owner in the reason. The rows under ``mpiexec -n 2`` are in
``tests/test_bad_inputs_mpi.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import bridgesolve as bs

BIN = Path(sys.executable).parent / "bridgesolve"
ENV = {**os.environ, "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1"}


# -- config files ----------------------------------------------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def toml(cfg: dict) -> str:
    lines = []
    for section, table in cfg.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def fp1d(**changes) -> dict:
    """A tiny 1D Fokker-Planck config (runs in about a second); ``section={...}`` merges,
    ``section=None`` drops the section."""
    cfg = {
        "problem": {"equation": "fokker-planck"},
        "domain": {"type": "interval", "lower": [-5.0], "upper": [5.0], "cells": [40]},
        "process": {"type": "OU", "theta": 1.0, "sigma": 1.0},
        "initial": {"type": "gaussian_mixture", "weights": [1.0], "means": [[0.0]],
                    "covs": [0.25]},
        "time": {"T": 0.2, "steps": 4, "spacing": "uniform"},
        "discretization": {"degree": 1},
        "output": {"plot_times": [0.0, 0.2], "vtx": False},
    }
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        elif "type" in value and key != "problem":
            cfg[key] = dict(value)  # another kind: its own keys only
        else:
            cfg[key] = {**cfg.get(key, {}), **value}
    if "output" not in changes:
        cfg["output"]["plot_times"] = [0.0, cfg["time"]["T"]]
    return cfg


def kol1d(**changes) -> dict:
    base = fp1d(problem={"equation": "kolmogorov"}, initial=None,
                terminal={"type": "gaussian_bump", "center": [0.5], "width": 0.7})
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value if key == "terminal" else {**base.get(key, {}), **value}
    base["output"]["plot_times"] = [0.0, base["time"]["T"]]
    return base


def mixture(mean: float, var: float = 0.25) -> dict:
    return {"type": "gaussian_mixture", "weights": [1.0], "means": [[mean]], "covs": [var]}


def bridge1d(**changes) -> dict:
    cfg = fp1d(problem={"equation": "bridge"}, final=mixture(1.0),
               time={"T": 1.0, "steps": 10}, bridge={"tol": 1e-6, "max_iter": 50})
    cfg.update({k: v for k, v in changes.items()})
    return cfg


# -- files -----------------------------------------------------------------------------------
def _write_files(tmp: Path) -> None:
    """Broken mesh and sample files for the file rows."""
    (tmp / "garbage.msh").write_bytes(b"this is not a mesh\n\x00\x01garbage")
    (tmp / "garbage.geo").write_text("Point(1) = {0, 0, 0;\nLine(1) = {1, 2};\n")
    (tmp / "empty.geo").write_text("// nothing here\n")
    (tmp / "points.geo").write_text("Point(1) = {0, 0, 0, 0.1};\n")
    (tmp / "zero.msh").write_bytes(b"")
    (tmp / "binary.geo").write_bytes(b"Point(1) = {0, 0, 0};\x00\x01\xff")
    good = _good_msh()
    (tmp / "trunc.msh").write_bytes(good[: len(good) // 2])
    rng = np.random.default_rng(0)
    np.save(tmp / "good.npy", rng.normal(size=(64, 2)))
    data = (tmp / "good.npy").read_bytes()
    (tmp / "trunc.npy").write_bytes(data[: len(data) // 2])
    (tmp / "hdr.npy").write_bytes(data[:40])
    (tmp / "garbage.npy").write_bytes(b"hello world, not numpy\n")
    (tmp / "empty.npy").write_bytes(b"")
    np.save(tmp / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp / "wide.npy", np.zeros((10, 5)))
    np.save(tmp / "cube.npy", np.zeros((4, 2, 2)))
    np.save(tmp / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]))
    np.save(tmp / "str.npy", np.array(["a", "b"]))
    (tmp / "text.csv").write_text("x,y\n1,2\nfoo,bar\n")
    (tmp / "ragged.csv").write_text("1,2\n3\n4,5,6\n")
    (tmp / "empty.csv").write_text("")
    (tmp / "header_only.csv").write_text("x,y\n")
    (tmp / "binary.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    (tmp / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(tmp / "full.npz", x=np.zeros((200, 2)), w=np.ones(200))
    full = (tmp / "full.npz").read_bytes()
    (tmp / "trunc.npz").write_bytes(full[: len(full) // 2])
    (tmp / "garbage.pt").write_bytes(b"\x80\x02 not a checkpoint")


_MSH: list[bytes] = []


def _good_msh() -> bytes:
    """A valid 2D .msh (the unit square, coarse), made once per session."""
    if not _MSH:
        import gmsh

        gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        try:
            gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
            gmsh.model.occ.synchronize()
            gmsh.option.setNumber("Mesh.CharacteristicLengthMax", 0.25)
            gmsh.model.mesh.generate(2)
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                gmsh.write(str(Path(d) / "sq.msh"))
                _MSH.append((Path(d) / "sq.msh").read_bytes())
        finally:
            gmsh.finalize()
    return _MSH[0]


@pytest.fixture
def files(tmp_path) -> Path:
    _write_files(tmp_path)
    return tmp_path


# -- running the CLI -------------------------------------------------------------------------
# Each bridgesolve process spends about a second importing DOLFINx: the rows run through the
# command's entry point ``bridgesolve.cli:main`` (what the installed script calls) in ONE
# subprocess, each with its own working folder, argv, captured stdout/stderr and exit code.
# A few rows run the installed script itself (``test_cli_script``).
DRIVER = r"""
import contextlib, io, json, os, sys, traceback, warnings
warnings.simplefilter("always", RuntimeWarning)
warnings.simplefilter("always", UserWarning)
from bridgesolve.cli import main
rows = json.loads(open(sys.argv[1]).read())
results = {}
for row in rows:
    os.chdir(row["cwd"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(row["argv"])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 1
    results[row["id"]] = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}
open(sys.argv[2], "w").write(json.dumps(results))
"""


def _argv(tmp: Path, command: str, cfg: dict | None, args, config: str | None) -> list[str]:
    out = tmp / "out"
    argv = [command]
    if cfg is not None:
        (tmp / "case.toml").write_text(toml(cfg))
        argv.append(str(tmp / "case.toml"))
    elif config is not None:
        argv.append(config)
    argv += list(args)
    if command in ("run", "bridge", "reference", "train", "validate"):
        argv += ["-o", str(out)]
    if command in ("run", "bridge", "train"):
        argv.append("--quiet")
    if command == "run":
        argv.append("--no-vtx")
    return argv


def _prepare(row_values, base: Path) -> dict:
    name, command, cfg, args, outcome, pattern = row_values
    tmp = base / name
    tmp.mkdir()
    _write_files(tmp)
    cfg = cfg(tmp) if callable(cfg) else cfg
    extra, config = [], None
    for a in args:
        if a == "FOLDER":
            (tmp / "folder").mkdir()
            config = str(tmp / "folder")
        elif a.startswith("@"):
            extra.append(str(tmp / a[1:]))
        else:
            extra.append(a)
    if command == "validate":
        extra = ["--score", str(tmp / "garbage.pt"), "--reference", *extra]
    return {"id": name, "cwd": str(tmp), "argv": _argv(tmp, command, cfg, extra, config)}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every CLI row, run once through one interpreter: ``id -> (rc, stdout, stderr, out)``."""
    base = tmp_path_factory.mktemp("cli_rows")
    rows = [_prepare(r.values if hasattr(r, "values") else r, base) for r in CLI_ROWS]
    (base / "rows.json").write_text(json.dumps(rows))
    driver = base / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.run([sys.executable, str(driver), str(base / "rows.json"),
                           str(base / "results.json")], capture_output=True, text=True,
                          env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((base / "results.json").read_text())
    return {k: (v["rc"], v["stdout"], v["stderr"], base / k / "out")
            for k, v in results.items()}


def cli(tmp: Path, command: str, cfg: dict | None = None, *args: str, config: str | None = None,
        timeout: float = 120) -> tuple[int, str, str, Path]:
    """Run the installed ``bridgesolve`` script in its own process."""
    argv = [str(BIN), *_argv(tmp, command, cfg, args, config)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, env=ENV,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, tmp / "out"


def assert_refused(rc, stdout, stderr, out, pattern):
    assert rc == 2, f"exit {rc}, expected 2\nstdout: {stdout[-800:]}\nstderr: {stderr[-1500:]}"
    assert "Traceback" not in stderr, stderr[-1500:]
    errors = [ln for ln in stderr.splitlines() if ln.startswith("bridgesolve: error:")]
    assert len(errors) == 1, f"expected one error line:\n{stderr[-1500:]}"
    assert re.search(pattern, errors[0]), f"{pattern!r} not in {errors[0]!r}"
    assert not out.exists() or not any(out.iterdir()), f"{out} was written"


def assert_warned(rc, stdout, stderr, out, pattern):
    assert rc == 0, f"exit {rc}, expected 0\nstderr: {stderr[-1500:]}"
    assert "Traceback" not in stderr, stderr[-1500:]
    lines = [ln for ln in stderr.splitlines() if "warning" in ln.lower()]
    assert any(re.search(pattern, ln) for ln in lines), f"{pattern!r} not in:\n{stderr[-1500:]}"
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary.get("warnings", summary), ensure_ascii=False)
    assert re.search(pattern, text), f"{pattern!r} not recorded in summary.json warnings"


def assert_quiet(rc, stdout, stderr, out, pattern=None):
    assert rc == 0, f"exit {rc}\nstderr: {stderr[-1500:]}"
    assert "warning" not in stderr.lower(), stderr[-1500:]


OUTCOME = {"refuse": assert_refused, "warn": assert_warned, "ok": assert_quiet}


def xfail(owner: str, why: str):
    return pytest.mark.xfail(strict=False, reason=f"owner {owner}: {why}")


# -- CLI rows: (id, command, config or (files -> config), extra args, outcome, pattern) ------
def _gmsh_section(name):
    def make(tmp):
        return fp1d(domain={"type": "gmsh", "path": str(tmp / name)},
                    initial={"means": [[0.5, 0.5]], "covs": [0.01]},
                    time={"T": 0.01, "steps": 1})
    return make


def _train_cfg(name):
    return lambda tmp: {"data": {"type": "file", "path": str(tmp / name)},
                        "process": {"type": "VE"}, "model": {"width": 8, "depth": 1},
                        "train": {"steps": 2, "batch_size": 8}}


CLI_ROWS = [
    # -- assumptions of the numerics: data mass outside the domain
    ("fp-initial-outside", "run", fp1d(initial=mixture(8.0)), (), "refuse",
     r"mass .* inside the domain \[-5, 5\].*enlarge"),
    ("fp-initial-partly-outside", "run", fp1d(initial=mixture(4.0)), (), "warn",
     r"mass 0\.02\d* outside the domain"),
    ("fp-initial-2d-outside", "run",
     fp1d(domain={"type": "box", "lower": [-2.0, -2.0], "upper": [2.0, 2.0], "cells": [6, 6]},
          initial={"means": [[5.0, 0.0]], "covs": [0.2]}), (), "refuse",
     r"inside the domain \[-2, 2\] × \[-2, 2\]"),
    ("kolmogorov-terminal-outside", "run", kol1d(terminal=mixture(9.0)), (), "refuse",
     r"terminal value .* inside the domain"),
    ("kolmogorov-terminal-partly-outside", "run", kol1d(terminal=mixture(4.0)), (), "warn",
     r"terminal value .* outside the domain"),
    ("kolmogorov-bump-outside", "run",
     kol1d(terminal={"type": "gaussian_bump", "center": [40.0], "width": 0.5}), (), "refuse",
     r"phi_T vanishes at every node"),
    # -- θ-schemes and rates
    ("fp-killing-negative-factor", "run",
     fp1d(killing={"constant": -40.0}, time={"T": 1.0, "steps": 4}), (), "warn",
     r"killing rate \|V\| = 40 .*Δt = 0\.25.*backward-euler"),
    ("kolmogorov-killing-negative-factor", "run",
     kol1d(killing={"constant": -40.0}, time={"T": 1.0, "steps": 4}), (), "warn",
     r"amplification factor negative"),
    ("kolmogorov-quadratic-killing", "run",
     kol1d(killing={"quadratic": -10.0}, time={"T": 0.2, "steps": 4}), (), "warn",
     r"killing rate \|V\| = 250"),
    ("fp-creation-singular", "run",
     fp1d(killing={"constant": 40.0}, time={"T": 1.0, "steps": 4}), (), "refuse",
     r"creation rate V = 40 .*Δt = 0\.25.*singular"),
    ("kolmogorov-creation-singular", "run",
     kol1d(killing={"constant": 40.0}, time={"T": 1.0, "steps": 4}), (), "refuse",
     r"creation rate V = 40"),
    ("fp-killing-backward-euler-ok", "run",
     fp1d(killing={"constant": -40.0}, time={"T": 1.0, "steps": 4},
          discretization={"scheme": "backward-euler"}), (), "ok", None),
    ("fp-oscillation", "run",
     fp1d(process={"type": "Brownian", "sigma": 1.0}, initial=mixture(0.0, 0.01),
          time={"T": 1.0, "steps": 2}), (), "warn", r"went negative.*backward-euler"),
    ("fp-unresolved-initial", "run",
     fp1d(initial=mixture(0.0, 0.01), discretization={"scheme": "backward-euler"}), (),
     "warn", r"does not resolve the initial density"),
    ("fp-reflecting-walls", "run",
     fp1d(process={"type": "Brownian", "sigma": 3.0}, time={"T": 4.0, "steps": 8},
          discretization={"scheme": "backward-euler"}), (), "warn",
     r"reached the reflecting walls"),
    ("fp-absorbing-walls-ok", "run",
     fp1d(process={"type": "Brownian", "sigma": 3.0}, time={"T": 4.0, "steps": 8},
          discretization={"scheme": "backward-euler", "boundary": "absorbing"}), (), "ok",
     None),
    ("fp-control-ok", "run", fp1d(), (), "ok", None),
    # -- sizes that cannot fit in memory
    ("box-mesh-too-large", "run",
     fp1d(domain={"type": "box", "lower": [-5.0, -5.0], "upper": [5.0, 5.0],
                  "cells": [200000, 200000]}, initial={"means": [[0.0, 0.0]]}), (), "refuse",
     r"200000×200000 box mesh .*needs at least .*TiB.*available"),
    ("interval-mesh-too-large", "run", fp1d(domain={"cells": [100_000_000_000]}), (),
     "refuse", r"needs at least .* of memory"),
    ("steps-too-many", "run",
     fp1d(domain={"cells": [100000]}, time={"steps": 10_000_000},
          discretization={"degree": 2}), (), "refuse",
     r"10000001 time levels .*needs at least .*fewer steps"),
    ("disk-too-fine", "run",
     lambda tmp: {**fp1d(initial={"means": [[0.0, 0.0]]}),
                  "domain": {"type": "disk", "radius": 1.0, "h": 1e-5}}, (), "refuse",
     r"disk mesh .*needs at least"),
    # -- mesh files
    ("msh-garbage", "run", _gmsh_section("garbage.msh"), (), "refuse",
     r"garbage\.msh' is not a gmsh mesh: expected a \$MeshFormat header"),
    ("msh-truncated", "run", _gmsh_section("trunc.msh"), (), "refuse",
     r"trunc\.msh.*cannot be read"),
    ("msh-empty", "run", _gmsh_section("zero.msh"), (), "refuse", r"zero\.msh' is empty"),
    ("geo-garbage", "run", _gmsh_section("garbage.geo"), (), "refuse",
     r"garbage\.geo.*syntax error"),
    ("geo-points-only", "run", _gmsh_section("points.geo"), (), "refuse",
     r"points\.geo.*(no geometry|no \dD cells)"),
    # -- sample files for training
    ("train-npy-garbage", "train", _train_cfg("garbage.npy"), (), "refuse",
     r"garbage\.npy.*not a NumPy \.npy file"),
    ("train-npy-truncated", "train", _train_cfg("trunc.npy"), (), "refuse",
     r"trunc\.npy.*(cannot be read|truncated)"),
    ("train-npy-header-cut", "train", _train_cfg("hdr.npy"), (), "refuse",
     r"hdr\.npy.*(cannot be read|truncated)"),
    ("train-npy-empty", "train", _train_cfg("empty.npy"), (), "refuse",
     r"empty\.npy.*not a NumPy"),
    ("train-npy-pickled", "train", _train_cfg("obj.npy"), (), "refuse",
     r"obj\.npy.*[Oo]bject"),
    ("train-npy-5d", "train", _train_cfg("wide.npy"), (), "refuse",
     r"wide\.npy.*shape \(10, 5\)"),
    ("train-npy-nan", "train", _train_cfg("nan.npy"), (), "refuse", r"nan\.npy.*NaN"),
    ("train-npy-strings", "train", _train_cfg("str.npy"), (), "refuse",
     r"str\.npy.*expected numbers"),
    ("train-csv-text", "train", _train_cfg("text.csv"), (), "refuse",
     r"text\.csv.*'foo'"),
    ("train-csv-ragged", "train", _train_cfg("ragged.csv"), (), "refuse",
     r"ragged\.csv.*columns"),
    ("train-csv-empty", "train", _train_cfg("empty.csv"), (), "refuse",
     r"empty\.csv.*no samples"),
    ("train-csv-binary", "train", _train_cfg("binary.csv"), (), "refuse",
     r"binary\.csv.*not a UTF-8 text file"),
    # -- messages
    pytest.param("config-weights-not-normalized", "run",
                 fp1d(initial={"weights": [0.3, 0.3], "means": [[-1.0], [1.0]],
                               "covs": [0.25, 0.25]}), (), "warn", r"sum to 0\.6"),
    ("config-covariance-nan", "run", fp1d(initial={"covs": [float("nan")]}), (), "refuse",
     r"covs"),
    # -- other owners
    pytest.param("config-is-a-folder", "run", lambda tmp: None, ("FOLDER",), "refuse",
                 r"is a folder|directory"),
    pytest.param("bridge-final-outside", "bridge", bridge1d(final=mixture(9.0)), (), "refuse",
                 r"rho1 has mass .* (outside|inside) the domain"),
    pytest.param("bridge-initial-outside", "bridge", bridge1d(initial=mixture(-9.0)), (),
                 "refuse", r"rho0 has mass .* (outside|inside) the domain"),
    pytest.param("validate-npz-garbage", "validate", None, ("@garbage.npz",), "refuse",
                 r"garbage\.npz"),
    pytest.param("validate-npz-truncated", "validate", None, ("@trunc.npz",), "refuse",
                 r"trunc\.npz"),
    pytest.param("plot-times-off-grid", "run", fp1d(output={"plot_times": [0.0, 0.13]}), (),
                 "warn", r"plot times moved"),
]


def _ids(rows):
    return [r.values[0] if hasattr(r, "values") else r[0] for r in rows]


@pytest.mark.parametrize("name,command,cfg,args,outcome,pattern", CLI_ROWS, ids=_ids(CLI_ROWS))
def test_cli_row(name, command, cfg, args, outcome, pattern, cli_results):
    OUTCOME[outcome](*cli_results[name], pattern)


SCRIPT_ROWS = ["fp-initial-outside", "fp-killing-negative-factor", "msh-garbage",
               "train-npy-truncated", "box-mesh-too-large"]


@pytest.mark.parametrize("name", SCRIPT_ROWS)
def test_cli_script(name, files):
    """The same rows through the installed script, each in its own process."""
    row = next(r for r in CLI_ROWS if not hasattr(r, "values") and r[0] == name)
    _, command, cfg, args, outcome, pattern = row
    cfg = cfg(files) if callable(cfg) else cfg
    OUTCOME[outcome](*cli(files, command, cfg, *args), pattern)


# -- API rows ---------------------------------------------------------------------------------
def _problem1d(T=0.2, steps=4, cells=40, process=None, **kw):
    return bs.Problem(bs.Domain.interval(-5, 5, cells), process or bs.OU(),
                      bs.TimeGrid.uniform(T, steps), **kw)


def _problem2d():
    return bs.Problem(bs.Domain.box([-4, -4], [4, 4], (8, 8)), bs.OU(),
                      bs.TimeGrid.uniform(0.1, 2))


G1 = bs.GaussianMixture([1.0], [[0.0]], [0.25])


def _fp(rho0, **kw):
    return lambda: bs.solve_fokker_planck(_problem1d(), rho0, progress=False, **kw)


def _kol(phi_T, **kw):
    return lambda: bs.solve_kolmogorov(_problem1d(), phi_T, progress=False, **kw)


def _fp_warnings(rho0, **kw):
    def run():
        p = bs.solve_fokker_planck(_problem1d(T=1.0, steps=4), rho0, progress=False, **kw)
        assert p.warnings and p.warnings == p.info["warnings"], "warning not kept"
        return p
    return run


def _generated_density(score):
    def run():
        from bridgesolve.likelihood import generated_density

        return generated_density(_problem1d(), score, 1.0, G1, progress=False)
    return run


def _sample(score):
    def run():
        return bs.sample(bs.OU(), score, 1.0, np.zeros((8, 1)), T=0.2, steps=2, rng=0)
    return run


def _from_file(name):
    def run(tmp):
        from bridgesolve.learn.data import from_file

        return from_file(tmp / name)
    return run


def _garbage_then_good(tmp):
    """A bad file must not break the next, good one (gmsh's .geo parser keeps state)."""
    with pytest.raises(bs.BridgesolveInputError):
        bs.Domain.from_gmsh(tmp / "garbage.msh")
    assert bs.Domain.from_gmsh("disk.geo").num_cells > 100
    bs.Domain.from_gmsh(tmp / "garbage.msh")


def _gmsh(name):
    return lambda tmp: bs.Domain.from_gmsh(tmp / name)


def _drift(fn, dim=2):
    def run():
        from bridgesolve.score import reference_drift

        proc = bs.Custom(lambda x: -x, g=1.0, drift_numpy=fn)
        return reference_drift(proc).evaluate(np.zeros((5, dim)), 0.1)
    return run


def _error(exact):
    def run():
        p = bs.solve_fokker_planck(_problem1d(), G1, progress=False)
        return p.error(exact, 0.2)
    return run


def _checked_score(fn, dim):
    def run():
        from bridgesolve.score import checked_score

        return checked_score(fn, dim)(np.zeros((4, dim)), 0.5)
    return run


def _dataset(sampler):
    from bridgesolve.learn.data import Dataset

    return Dataset(sampler, 2, "toy")


def _mass_inside(fn):
    return lambda: _problem1d().mass_inside(fn)


NAN1 = lambda x: np.full(x.shape[0], np.nan)  # noqa: E731
WIDE = lambda x: np.ones((x.shape[0], 2))  # noqa: E731
API_ROWS = [
    # -- densities
    ("mixture-cov-nan", lambda: bs.GaussianMixture([1.0], [[0.0]], [[[np.nan]]]), "refuse",
     r"covs = \[\[\[nan\]\]\] contains NaN"),
    ("mixture-cov-inf", lambda: bs.GaussianMixture([1.0], [[0.0, 0.0]], [[np.inf, 1.0]]),
     "refuse", r"covs = \[\[inf, 1\.0\]\] contains infinite entries"),
    ("mixture-cov-nonsymmetric",
     lambda: bs.GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]]), "refuse",
     r"expected symmetric"),
    ("mixture-cov-indefinite", lambda: bs.GaussianMixture([1.0], [[0.0]], [-1.0]), "refuse",
     r"positive definite"),
    ("mixture-weights-sum-0.6",
     lambda: bs.GaussianMixture([0.3, 0.3], [[0.0], [1.0]], [1.0, 1.0]), "warn",
     r"sum to 0\.6.*normalized"),
    ("mixture-weights-sum-2", lambda: bs.GaussianMixture([1, 1], [[0.0], [1.0]], [1.0, 1.0]),
     "warn", r"sum to 2"),
    ("mixture-weights-ok", lambda: bs.GaussianMixture([0.5, 0.5], [[0.0], [1.0]], [1.0, 1.0]),
     "ok", None),
    ("mixture-means-nan", lambda: bs.GaussianMixture([1.0], [[np.nan]], [1.0]), "refuse",
     r"means .*finite"),
    # -- callables: densities and terminal values
    ("fp-rho0-shape-N2", _fp(WIDE), "refuse",
     r"rho0 returned shape \(80, 2\) for 80 points: expected \(80,\)"),
    ("fp-rho0-nan", _fp(NAN1), "refuse", r"rho0 returned NaN"),
    ("fp-rho0-scalar", _fp(lambda x: 1.0), "refuse", r"rho0 returned shape \(\)"),
    ("fp-rho0-none", _fp(lambda x: None), "refuse", r"rho0 returned None"),
    ("fp-rho0-negative", _fp(lambda x: -np.ones(x.shape[0])), "refuse",
     r"rho0 returned negative values"),
    ("fp-rho0-wrong-dim", _fp(bs.GaussianMixture([1.0], [[0.0, 0.0]], [1.0])), "refuse",
     r"2D but the domain is 1D"),
    ("kol-phiT-inf", _kol(lambda x: np.full(x.shape[0], np.inf)), "refuse",
     r"phi_T returned infinite values"),
    ("kol-phiT-shape", _kol(lambda x: np.ones((x.shape[0], 3))), "refuse",
     r"phi_T returned shape \(80, 3\)"),
    ("kol-phiT-signed-ok", _kol(lambda x: x[:, 0]), "ok", None),
    ("kol-phiT-bump-outside", _kol(bs.densities.ScaledMixture.gaussian_bump([40.0], 0.5)),
     "refuse", r"phi_T vanishes at every node of the mesh of \[-5, 5\]"),
    ("fp-rho0-zero", _fp(lambda x: np.zeros(x.shape[0])), "refuse", r"rho0 vanishes"),
    # -- killing / creation rates
    ("killing-nan-callable", _fp(G1, killing=lambda x: np.where(x[:, 0] > 0, np.nan, -1.0)),
     "refuse", r"killing V\(x\) returned NaN at x = \[0\.25\]"),
    ("killing-shape", _fp(G1, killing=lambda x: np.ones((x.shape[0], 2))), "refuse",
     r"killing V\(x\) returned shape \(80, 2\)"),
    ("killing-nan-later", _fp(G1, killing=lambda x, t: np.full(x.shape[0],
                                                                np.nan if t > 0.1 else -1.0)),
     "refuse", r"killing V\(x, t\) at t = 0\.1\d* returned NaN"),
    ("killing-none", _kol(G1, killing=lambda x: None), "refuse", r"killing V\(x\) returned None"),
    ("killing-nan-constant", _fp(G1, killing=float("nan")), "refuse", r"killing = nan"),
    ("killing-negative-factor", _fp_warnings(G1, killing=-40.0), "warn",
     r"amplification factor negative \(-0\.67\)"),
    ("creation-singular", _fp(G1, killing=40.0), "refuse",
     r"creation rate V = 40 .*θ·Δt·V = 1 >= 1"),
    ("creation-time-dependent-late", lambda: bs.solve_fokker_planck(
        _problem1d(T=1.0, steps=4), G1, killing=lambda x, t: np.full(x.shape[0], 20.0 * t),
        progress=False), "warn", r"creation rate V = 17\.5 .*Δt < 0\.114"),
    ("kol-killing-warn", lambda: bs.solve_kolmogorov(_problem1d(T=1.0, steps=4), G1,
                                                     killing=-40.0, progress=False), "warn",
     r"killing rate \|V\| = 40"),
    # -- mass outside, walls, positivity
    ("fp-outside", _fp(bs.GaussianMixture([1.0], [[8.0]], [0.25])), "refuse",
     r"rho0 has mass .* inside the domain \[-5, 5\]"),
    ("fp-partly-outside", _fp_warnings(bs.GaussianMixture([1.0], [[4.2]], [0.25])), "warn",
     r"outside the domain"),
    ("kol-outside", _kol(bs.GaussianMixture([1.0], [[-9.0]], [0.25])), "refuse",
     r"phi_T has mass .* inside"),
    ("fp-walls", lambda: bs.solve_fokker_planck(
        _problem1d(T=4.0, steps=8, process=bs.Brownian(3.0), scheme="backward-euler"), G1,
        progress=False), "warn", r"reached the reflecting walls"),
    ("fp-oscillation", lambda: bs.solve_fokker_planck(
        _problem1d(T=1.0, steps=2, process=bs.Brownian(1.0)),
        bs.GaussianMixture([1.0], [[0.0]], [0.01]), progress=False), "warn",
     r"went negative"),
    ("fp-mass-inside-callable-shape", _mass_inside(WIDE), "refuse", r"shape \(\d+, 2\)"),
    ("fp-control-ok", _fp(G1), "ok", None),
    ("dataset-sampler-shape", lambda: _dataset(lambda n, rng: np.zeros((n, 3))).sample(4, 0),
     "refuse", r"sampler of data set 'toy' returned shape \(4, 3\) for 4 points: expected "
               r"\(4, 2\)"),
    ("dataset-sampler-nan", lambda: _dataset(lambda n, rng: np.full((n, 2), np.nan)).sample(4),
     "refuse", r"sampler of data set 'toy' returned NaN"),
    # -- memory
    ("box-too-large", lambda: bs.Domain.box([0, 0], [1, 1], (200000, 200000)), "refuse",
     r"needs at least .*TiB of memory"),
    ("box3d-too-large", lambda: bs.Domain.box([0, 0, 0], [1, 1, 1], 4000), "refuse",
     r"4000×4000×4000 box mesh"),
    ("interval-too-large", lambda: bs.Domain.interval(0, 1, 10**11), "refuse",
     r"1e\+11 cells"),
    ("disk-too-fine", lambda: bs.Domain.disk(1.0, 1e-5), "refuse", r"disk mesh"),
    ("problem-too-many-steps", lambda: _problem1d(steps=10**7, cells=100000, degree=2),
     "refuse", r"needs at least .*fewer steps"),
    # -- other callables
    ("drift-numpy-shape", _drift(lambda x: -x[:, 0]), "refuse",
     r"drift f\(x, t\) \(drift_numpy\) returned shape \(5,\) for 5 points: expected \(5, 2\)"),
    ("drift-numpy-nan", _drift(lambda x: np.full_like(x, np.nan)), "refuse",
     r"drift f\(x, t\) .*returned NaN"),
    ("error-exact-shape", _error(WIDE), "refuse", r"exact returned shape \(\d+, 2\)"),
    ("error-exact-nan", _error(NAN1), "refuse", r"exact returned NaN"),
    ("checked-score-N2-in-1D", _checked_score(lambda x, t: np.zeros((len(x), 2)), 1),
     "refuse", r"score returned shape \(4, 2\) for 4 points: expected \(4, 1\)"),
    ("checked-score-nan", _checked_score(lambda x, t: np.full(x.shape, np.nan), 2), "refuse",
     r"score returned NaN"),
    ("generated-density-score-N2-in-1D",
     _generated_density(lambda x, t: np.zeros((len(x), 2))), "refuse",
     r"score returned shape"),
    ("generated-density-score-nan",
     _generated_density(lambda x, t: np.full(x.shape, np.nan)), "refuse",
     r"score returned NaN"),
    ("sample-score-N2-in-1D", _sample(lambda x, t: np.zeros((len(x), 2))),
     "refuse", r"score returned shape"),
]

FILE_ROWS = [
    ("npy-garbage", _from_file("garbage.npy"), r"garbage\.npy': not a NumPy \.npy file"),
    ("npy-truncated", _from_file("trunc.npy"), r"trunc\.npy'.*(not fully written|truncated)"),
    ("npy-header-cut", _from_file("hdr.npy"), r"hdr\.npy'.*header"),
    ("npy-empty", _from_file("empty.npy"), r"empty\.npy': not a NumPy"),
    ("npy-object", _from_file("obj.npy"), r"obj\.npy'.*[Oo]bject"),
    ("npy-3d-array", _from_file("cube.npy"), r"cube\.npy'.*shape \(4, 2, 2\)"),
    ("npy-strings", _from_file("str.npy"), r"str\.npy'.*expected numbers"),
    ("csv-header-only", _from_file("header_only.csv"), r"header_only\.csv'.*no samples"),
    ("csv-missing", _from_file("missing.csv"), r"missing\.csv' does not exist"),
    ("msh-garbage", _gmsh("garbage.msh"), r"garbage\.msh' is not a gmsh mesh"),
    ("geo-binary", _gmsh("binary.geo"), r"binary\.geo' is not a text file"),
    ("geo-then-good-mesh", lambda tmp: _garbage_then_good(tmp), r"garbage\.msh"),
    ("msh-truncated", _gmsh("trunc.msh"), r"trunc\.msh'.*cannot be read"),
    ("geo-empty", _gmsh("empty.geo"), r"empty\.geo'"),
    ("mesh-wrong-suffix", _gmsh("good.npy"), r"expected a gmsh \.msh or \.geo file"),
]


def _run_api(fn, outcome, pattern):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if outcome == "refuse":
            with pytest.raises(bs.BridgesolveInputError) as exc:
                fn()
            msg = str(exc.value)
            assert "\n" not in msg, f"message is not one line: {msg!r}"
            assert re.search(pattern, msg), f"{pattern!r} not in {msg!r}"
            return
        fn()
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning | UserWarning)]
    if outcome == "warn":
        assert any(re.search(pattern, t) for t in texts), f"{pattern!r} not in {texts}"
    else:
        assert not texts, texts


@pytest.mark.parametrize("name,fn,outcome,pattern", API_ROWS, ids=_ids(API_ROWS))
def test_api_row(name, fn, outcome, pattern):
    _run_api(fn, outcome, pattern)


@pytest.mark.parametrize("name,fn,pattern", FILE_ROWS, ids=_ids(FILE_ROWS))
def test_file_row(name, fn, pattern, files):
    _run_api(lambda: fn(files), "refuse", pattern)
