"""Config validation: every bad value is named with its key and what was expected."""

from __future__ import annotations

import copy
import math
import shutil
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from bridgesolve.config import ConfigError, load_config, validate

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEXT = resources.files("bridgesolve").joinpath("data/default.toml").read_text()
DEFAULT = tomllib.loads(DEFAULT_TEXT)


def _with(section, key, value):
    """The default config with ``[section] key = value`` (``key=None``: the whole section;
    ``value=None``: the key removed)."""
    raw = copy.deepcopy(DEFAULT)
    if key is None:
        if value is None:
            del raw[section]
        else:
            raw[section] = value
    elif value is None:
        del raw[section][key]
    else:
        raw.setdefault(section, {})[key] = value
    return raw


def _tabulated(**keys):
    """The default config with ``[process] type = "Tabulated"`` and ``keys``."""
    return _with("process", None, {"type": "Tabulated", **keys})


BAD = [
    # structure
    ("unknown-section", _with("solver", None, {"x": 1}), r"unknown section \[solver\]"),
    ("section-not-table", _with("time", None, 3), r"time = 3: expected a section \[time\]"),
    ("missing-section", _with("time", None, None), r"missing section \[time\]"),
    ("unknown-key", _with("domain", "cels", [8, 8]),
     r"\[domain\] unknown key 'cels' \(expected one of: type, lower, upper, cells\)"),
    ("missing-key", _with("time", "steps", None), r"\[time\] missing key 'steps'"),
    # [problem]
    ("bad-equation", _with("problem", "equation", "heat"), r"\[problem\] equation = 'heat'"),
    ("wrong-data-section", _with("terminal", None, {"type": "gaussian_bump",
                                                    "center": [0, 0], "width": 0.1}),
     r"\[terminal\] is not used by equation 'fokker-planck'"),
    # [domain]
    ("zero-cells", _with("domain", "cells", [0, 64]),
     r"\[domain\] cells = \[0, 64\]: expected a positive integer or a list of 2"),
    ("cells-length", _with("domain", "cells", [64]), r"\[domain\] cells = \[64\]"),
    ("string-in-list", _with("domain", "lower", ["a", -5.0]),
     r"\[domain\] lower = \['a', -5.0\]: expected"),
    ("upper-below-lower", _with("domain", "upper", [5.0, -6.0]),
     r"\[domain\] upper = \[5.0, -6.0\]: expected numbers greater than lower"),
    ("missing-mesh", _with("domain", None, {"type": "gmsh", "path": "nope.msh"}),
     r"\[domain\] path = 'nope.msh': mesh file does not exist"),
    ("mesh-suffix", _with("domain", None, {"type": "gmsh", "path": "mesh.txt"}),
     r"\[domain\] path = 'mesh.txt': expected a gmsh .msh or .geo file"),
    ("domain-dim", _with("domain", None, {"type": "interval", "lower": -5.0, "upper": 5.0,
                                          "cells": 10}),
     r"\[initial\] the data are 2D but \[domain\] is 1D"),
    # [process]
    ("bad-process-type", _with("process", "type", "VPP"), r"\[process\] type = 'VPP'"),
    ("bad-process-param", _with("process", "beta", 3.0),
     r"\[process\] unknown key 'beta' \(expected one of: type, beta_min, beta_max, T\)"),
    ("process-param-type", _with("process", "beta_min", "small"),
     r"\[process\] beta_min = 'small': expected a finite number"),
    ("bad-process-value", _with("process", "beta_min", -0.1),
     r"\[process\] beta_min = -0.1: expected a finite positive number"),
    ("beta-order", _with("process", "beta_max", 0.05), r"\[process\] beta_max = 0.05"),
    # [process] type = "Tabulated": a table of ᾱ_k or a diffusers scheduler_config.json
    ("table-not-list", _tabulated(alphas_cumprod=0.5),
     r"\[process\] alphas_cumprod = 0.5: expected a non-empty list of strictly decreasing"),
    ("table-empty", _tabulated(alphas_cumprod=[]), r"\[process\] alphas_cumprod = \[\]"),
    ("table-string", _tabulated(alphas_cumprod=[0.9, "x"]),
     r"\[process\] alphas_cumprod = \[0.9, 'x'\]: expected a non-empty list"),
    ("table-increasing", _tabulated(alphas_cumprod=[0.9, 0.95, 0.4]),
     r"\[process\] alphas_cumprod = .*: expected strictly decreasing values in \(0, 1\) "
     r"\(alphas_cumprod\[1\] = 0.95 >= alphas_cumprod\[0\] = 0.9\)"),
    ("table-one", _tabulated(alphas_cumprod=[1.0, 0.5]),
     r"\[process\] .*\(alphas_cumprod\[0\] = 1.0 is not in \(0, 1\)\)"),
    ("table-zero", _tabulated(alphas_cumprod=[0.9, 0.5, 0.0]),
     r"\[process\] .*\(alphas_cumprod\[2\] = 0.0 is not in \(0, 1\)\)"),
    ("table-times", _tabulated(alphas_cumprod=[0.9, 0.5, 0.1], times=[0.5]),
     r"\[process\] times = \[0.5\]: expected 3 strictly increasing positive times"),
    ("table-times-order", _tabulated(alphas_cumprod=[0.9, 0.5], times=[0.5, 0.4]),
     r"\[process\] times = \[0.5 0.4\]: expected 2 strictly increasing"),
    ("table-and-file", _tabulated(alphas_cumprod=[0.9, 0.5], scheduler_config="s.json"),
     r"\[process\] alphas_cumprod and scheduler_config = 's.json': expected one of them"),
    ("table-missing", _tabulated(), r"\[process\] Tabulated: expected alphas_cumprod .* or "
     r"scheduler_config .*, got neither"),
    ("file-missing", _tabulated(scheduler_config="nope.json"),
     r"\[process\] scheduler_config = 'nope.json': file does not exist \(looked in .*\): "
     r"expected a diffusers scheduler_config.json"),
    ("file-not-string", _tabulated(scheduler_config=3),
     r"\[process\] scheduler_config = 3: expected a string"),
    ("table-past-T", {**_tabulated(alphas_cumprod=[0.9, 0.5]), "time": {"T": 2.0, "steps": 4}},
     r"\[time\] T = 2.0: expected at most T = 1.0, the last time of the tabulated"),
    # [initial]
    ("negative-weight", _with("initial", "weights", [0.5, -0.5]),
     r"\[initial\] weights = \[0.5, -0.5\]: expected non-negative"),
    ("not-pd", _with("initial", "covs", [[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]),
     r"\[initial\] covs\[0\] = \[\[1.0, 2.0\], \[2.0, 1.0\]\]: expected positive definite"),
    ("covs-shape", _with("initial", "covs", [0.1, 0.2, 0.3]), r"\[initial\] covs has shape"),
    ("bump-as-density", _with("initial", "type", "gaussian_bump"),
     r"\[initial\] type = 'gaussian_bump': expected one of 'gaussian_mixture', 'two_moons'"),
    # [time]
    ("wrong-type", _with("time", "T", "one"), r"\[time\] T = 'one': expected a finite positive"),
    ("T<=0", _with("time", "T", -1.0), r"\[time\] T = -1.0: expected a finite positive number"),
    ("T-nan", _with("time", "T", math.nan), r"\[time\] T = nan"),
    ("bool-steps", _with("time", "steps", True), r"\[time\] steps = True: expected a positive"),
    ("zero-steps", _with("time", "steps", 0), r"\[time\] steps = 0"),
    ("bad-spacing", _with("time", "spacing", "log"),
     r"\[time\] spacing = 'log': expected one of 'clock', 'uniform', 'graded'"),
    ("power-without-graded", _with("time", "power", 2.0),
     r"\[time\] power = 2.0: applies only to spacing = 'graded'"),
    # [killing], [discretization], [output]
    ("killing-key", _with("killing", "linear", 1.0), r"\[killing\] unknown key 'linear'"),
    ("bad-scheme", _with("discretization", "scheme", "rk4"),
     r"\[discretization\] scheme = 'rk4'"),
    ("hjb-absorbing", {**_with("discretization", "boundary", "absorbing"),
                       "problem": {"equation": "hjb-forward"}},
     r"\[discretization\] boundary = 'absorbing': expected 'reflecting'"),
    ("plot-time", _with("output", "plot_times", [0.0, 2.0]),
     r"\[output\] plot_times = \[0.0, 2.0\]: expected a non-empty list of times in \[0, T = 1\]"),
    ("no-plot-times", _with("output", "plot_times", []), r"\[output\] plot_times = \[\]"),
    ("bad-bool", _with("output", "vtx", "yes"), r"\[output\] vtx = 'yes': expected true or"),
    ("empty-directory", _with("output", "directory", ""), r"\[output\] directory = ''"),
    ("slice", _with("output", "slice_z", "top"), r"\[output\] slice_z = 'top'"),
]


@pytest.mark.parametrize("raw, match", [pytest.param(r, m, id=i) for i, r, m in BAD])
def test_bad_configs_name_key_and_value(raw, match):
    with pytest.raises(ConfigError, match=match):
        validate(raw)


def test_default_loads_and_builds():
    cfg = load_config(None)
    problem, data, killing = cfg.build()
    assert cfg.equation == "fokker-planck" and killing is None
    assert problem.degree == 1 and problem.domain.dim == 2 and data.dim == 2
    assert problem.grid.steps == 100 and problem.domain.num_cells == 2 * 64 * 64
    assert type(problem.process).__name__ == "VP" and problem.process.beta_max == 20.0
    assert cfg.plot_times == [0.0, 0.1, 0.25, 1.0]
    assert cfg.output_dir == Path("results/default") and cfg.vtx
    assert cfg.text == DEFAULT_TEXT
    copied = cfg.as_dict()
    copied["time"]["T"] = 5.0
    assert cfg.raw["time"]["T"] == 1.0, "as_dict must not expose the config's own tables"


def test_example_copy_of_default_is_identical():
    assert (ROOT / "examples" / "default.toml").read_text() == DEFAULT_TEXT


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_examples_validate(path):
    load_config(path)


def test_defaults_and_case_insensitive_process():
    raw = _with("process", None, {"type": "subvp"})
    del raw["output"]
    cfg = validate(raw, source="configs/my run.toml")
    assert type(cfg.process()).__name__ == "SubVP"
    assert cfg.output_dir == Path("results/my run")
    assert cfg.plot_times == pytest.approx([0.0, 0.1, 0.3, 1.0])


def test_mesh_path_is_resolved_next_to_the_config(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    shutil.copy(ROOT / "meshes" / "disk.geo", folder / "my_disk.geo")
    raw = _with("domain", None, {"type": "gmsh", "path": "my_disk.geo"})
    (folder / "c.toml").write_text(_toml(raw))
    monkeypatch.chdir(tmp_path)  # the mesh is not in the working directory
    assert load_config(folder / "c.toml").mesh_path == folder / "my_disk.geo"


def test_dimension_of_a_gmsh_mesh_is_checked_when_building():
    raw = _with("domain", None, {"type": "gmsh", "path": "disk.geo"})  # from meshes/
    raw["initial"] = {"weights": [1.0], "means": [[0.0]], "covs": [0.5]}
    with pytest.raises(ConfigError, match=r"\[initial\] the data are 1D but the mesh"):
        validate(raw).build()


def test_a_sample_file_of_the_wrong_dimension_is_named(tmp_path):
    """A 3-column sample file in a 2D config: the error names the file."""
    np.save(tmp_path / "pts3.npy", np.random.default_rng(0).normal(size=(50, 3)))
    raw = _with("initial", None, {"type": "file", "path": "pts3.npy", "bandwidth": 0.3})
    (tmp_path / "c.toml").write_text(_toml(raw))
    with pytest.raises(ConfigError, match=r"\[initial\] the data \(file 'pts3.npy'\) are 3D "
                                          r"but \[domain\] is 2D"):
        load_config(tmp_path / "c.toml")


def test_missing_file_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[time\nT = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def _toml(raw: dict) -> str:
    """A minimal TOML writer for the tables used here (strings, numbers, nested lists)."""
    def value(v):
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    return "\n".join(f"[{name}]\n" + "\n".join(f"{k} = {value(v)}" for k, v in table.items())
                     for name, table in raw.items()) + "\n"


def test_a_folder_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="is a folder: expected a TOML file"):
        load_config(tmp_path)


def test_tabulated_process_from_a_table():
    from bridgesolve.process import Tabulated

    cfg = validate(_tabulated(alphas_cumprod=[0.9, 0.5, 0.1], times=[0.2, 0.5, 1.0]))
    proc = cfg.process()
    assert proc.describe() == Tabulated([0.9, 0.5, 0.1], times=[0.2, 0.5, 1.0]).describe()
    assert proc.transition(0.5)[0] ** 2 == pytest.approx(0.5, rel=1e-14)
    assert cfg.grid(proc).times[-1] == 1.0


LINEAR_DDPM = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000,
               "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
               "prediction_type": "epsilon"}


def test_tabulated_scheduler_config_next_to_the_config(tmp_path, monkeypatch):
    import json

    from bridgesolve.process import Tabulated

    folder = tmp_path / "configs"
    (folder / "unet").mkdir(parents=True)
    (folder / "scheduler_config.json").write_text(json.dumps(LINEAR_DDPM))
    (folder / "unet" / "scheduler_config.json").write_text(json.dumps(LINEAR_DDPM))
    want = Tabulated.from_scheduler_config(LINEAR_DDPM).alphas_cumprod
    monkeypatch.chdir(tmp_path)  # the JSON is not in the working directory
    for name in ("scheduler_config.json", "unet"):  # the file, or the folder holding it
        (folder / "c.toml").write_text(_toml(_tabulated(scheduler_config=name)))
        proc = load_config(folder / "c.toml").process()
        np.testing.assert_array_equal(proc.alphas_cumprod, want)
    (folder / "bad.json").write_text(json.dumps({**LINEAR_DDPM, "beta_schedule": "cubic"}))
    (folder / "c.toml").write_text(_toml(_tabulated(scheduler_config="bad.json")))
    with pytest.raises(ConfigError, match=r"\[process\] scheduler config beta_schedule = "
                       r"'cubic': expected one of 'linear', .*'sigmoid'"):
        load_config(folder / "c.toml")
    (folder / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"\[process\] scheduler config '.*bad.json': "
                       r"expected a JSON object, got list"):
        load_config(folder / "c.toml")


@pytest.mark.parametrize("times", [None, [0.1, 0.25, 0.5, 0.75]])
def test_a_tabulated_description_is_a_process_section(tmp_path, times):
    """describe() (what summaries and bundles record) read back as [process] of a config."""
    from bridgesolve.process import Tabulated

    proc = Tabulated.from_scheduler_config({**LINEAR_DDPM, "num_train_timesteps": 4},
                                           times=times)
    raw = _with("process", None, proc.describe())
    raw["time"]["T"] = proc.T
    del raw["output"]["plot_times"]
    (tmp_path / "c.toml").write_text(_toml(raw))
    back = load_config(tmp_path / "c.toml").process()
    assert back.describe() == proc.describe() and back.T == proc.T
