"""Config validation: every bad value is named with its key and what was expected."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

import pytest

from bridgesolve.config import ConfigError, load_config, validate

DEFAULT = tomllib.loads(resources.files("bridgesolve").joinpath("data/default.toml").read_text())


def _with(section, key, value):
    raw = copy.deepcopy(DEFAULT)
    if key is None:
        raw[section] = value
    elif value is None:
        del raw[section][key]
    else:
        raw.setdefault(section, {})[key] = value
    return raw


BAD = [
    ("unknown-key", _with("domain", "cels", [8, 8]), r"\[domain\] unknown key 'cels'"),
    ("unknown-section", _with("solver", None, {"x": 1}), r"unknown section \[solver\]"),
    ("wrong-type", _with("time", "T", "one"), r"\[time\] T = 'one': expected"),
    ("T<=0", _with("time", "T", -1.0), r"\[time\] T = -1.0: expected a finite positive"),
    ("zero-steps", _with("time", "steps", 0), r"\[time\] steps = 0"),
    ("zero-cells", _with("domain", "cells", [0, 64]), r"\[domain\] cells = \[0, 64\]"),
    ("negative-weight", _with("initial", "weights", [0.5, -0.5]),
     r"\[initial\] weights = .*non-negative"),
    ("not-pd", _with("initial", "covs", [[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]),
     r"\[initial\] covs\[0\] = .*positive definite"),
    ("missing-mesh", _with("domain", None, {"type": "gmsh", "path": "nope.msh"}),
     r"\[domain\] path = 'nope.msh': expected an existing gmsh"),
    ("bad-spacing", _with("time", "spacing", "log"), r"\[time\] spacing = 'log'"),
    ("bad-process-param", _with("process", "beta", 3.0),
     r"\[process\] unknown key 'beta' \(expected one of: type, beta_min, beta_max, T\)"),
    ("bad-process-value", _with("process", "beta_min", -0.1), r"\[process\] beta_min = -0.1"),
    ("plot-time", _with("output", "plot_times", [0.0, 2.0]), r"\[output\] plot_times"),
    ("bad-equation", _with("problem", "equation", "heat"), r"\[problem\] equation = 'heat'"),
    ("wrong-data-section", _with("terminal", None, {"type": "gaussian_bump", "center": [0, 0],
                                                    "width": 0.1}),
     r"\[terminal\] is not used by equation 'fokker-planck'"),
    ("bad-bool", _with("output", "vtx", "yes"), r"\[output\] vtx = 'yes'"),
    ("bad-scheme", _with("discretization", "scheme", "rk4"), r"\[discretization\] scheme"),
]


@pytest.mark.parametrize("raw, match", [pytest.param(r, m, id=i) for i, r, m in BAD])
def test_bad_configs_name_key_and_value(raw, match):
    with pytest.raises(ConfigError, match=match):
        validate(raw)


def test_dimension_mismatch_is_caught_when_building():
    raw = _with("domain", None, {"type": "interval", "lower": [-5.0], "upper": [5.0],
                                 "cells": 10})
    with pytest.raises(ConfigError, match=r"\[initial\] the data are 2D but the domain is 1D"):
        validate(raw).build()


def test_default_loads_and_builds():
    cfg = load_config(None)
    prob, data, killing = cfg.build()
    assert cfg.equation == "fokker-planck" and killing is None
    assert prob.degree == 1 and prob.domain.dim == 2 and data.dim == 2
    assert prob.grid.steps == 100
    assert cfg.plot_times() == [0.0, 0.1, 0.25, 1.0]


def test_missing_file_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[time\nT = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
