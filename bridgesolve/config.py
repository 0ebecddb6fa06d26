"""Typed TOML configuration for ``bridgesolve run`` with errors that name key and value.

Sections (see ``bridgesolve run --help`` and ``examples/*.toml``)::

    [problem]        equation = "fokker-planck" | "kolmogorov" | "hjb" | "hjb-forward"
    [domain]         type = "interval" | "box" | "disk" | "gmsh" and its parameters
    [process]        type = "VP" | "VE" | "SubVP" | "OU" | "Brownian" and its parameters
    [initial]        the data at t = 0 (forward equations): a Gaussian mixture
    [terminal]       the data at t = T (backward equations): a mixture or a Gaussian bump
    [killing]        optional V(x) = constant + quadratic * |x|^2
    [time]           T, steps, spacing = "clock" | "uniform" | "graded" (power, near)
    [discretization] degree, scheme, boundary
    [output]         directory, plot_times, vtx
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities import GaussianMixture, ScaledMixture
from bridgesolve.process import PROCESSES
from bridgesolve.timegrid import TimeGrid

EQUATIONS = ("fokker-planck", "kolmogorov", "hjb", "hjb-forward")
FORWARD = ("fokker-planck", "hjb-forward")


class ConfigError(BridgesolveInputError):
    """A configuration value is missing, unknown or invalid."""


_MISSING = object()
_NUMBER = (int, float)

# section -> key -> (expected python types, description, default or _MISSING)
_PROCESS_KEYS = {
    "vp": {"beta_min": 0.1, "beta_max": 20.0, "T": 1.0},
    "subvp": {"beta_min": 0.1, "beta_max": 20.0, "T": 1.0},
    "ve": {"sigma_min": 0.01, "sigma_max": 3.0, "T": 1.0},
    "ou": {"theta": 1.0, "sigma": math.sqrt(2.0), "mean": 0.0},
    "brownian": {"sigma": 1.0},
}
_DOMAIN_KEYS = {
    "interval": ("lower", "upper", "cells"),
    "box": ("lower", "upper", "cells"),
    "disk": ("radius", "h", "center"),
    "gmsh": ("path",),
}
_SECTIONS = ("problem", "domain", "process", "initial", "terminal", "killing", "time",
             "discretization", "output")


def _fail(section: str, key: str, value, expected: str):
    raise ConfigError(f"[{section}] {key} = {value!r}: expected {expected}")


def _unknown(section: str, table: dict, allowed) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"[{section}] unknown key {key!r} (expected one of: "
                              f"{', '.join(allowed)})")


def _get(section: str, table: dict, key: str, types, expected: str, default=_MISSING):
    if key not in table:
        if default is _MISSING:
            raise ConfigError(f"[{section}] missing key {key!r}: expected {expected}")
        return default
    value = table[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        _fail(section, key, value, expected)
    if not isinstance(value, types):
        _fail(section, key, value, expected)
    return value


def _number_list(section, table, key, expected, default=_MISSING):
    value = _get(section, table, key, (list, int, float), expected, default)
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in items):
        _fail(section, key, value, expected)
    return [float(v) for v in items]


def _reraise(section: str, exc: BridgesolveInputError):
    raise ConfigError(f"[{section}] {exc}") from None


@dataclass
class Config:
    """A validated configuration; :meth:`build` makes the solver objects."""

    raw: dict
    source: str
    base_dir: Path
    equation: str = "fokker-planck"
    data: dict = field(default_factory=dict)

    # -- builders --------------------------------------------------------------------
    def process(self):
        sec = self.raw["process"]
        kind = sec["type"].lower()
        params = {k: v for k, v in sec.items() if k != "type"}
        try:
            return PROCESSES[kind](**params)
        except BridgesolveInputError as exc:
            _reraise("process", exc)

    def domain(self, comm=None):
        from bridgesolve.domain import Domain

        sec = self.raw["domain"]
        kind = sec["type"]
        try:
            if kind in ("interval", "box"):
                return Domain.box(sec["lower"], sec["upper"], sec["cells"], comm=comm)
            if kind == "disk":
                return Domain.disk(sec["radius"], sec["h"], center=sec.get("center", (0, 0)),
                                   comm=comm)
            return Domain.from_gmsh(self._mesh_path(), comm=comm)
        except BridgesolveInputError as exc:
            _reraise("domain", exc)

    def _mesh_path(self) -> Path:
        path = Path(self.raw["domain"]["path"])
        return path if path.is_absolute() or not (self.base_dir / path).exists() \
            else self.base_dir / path

    def grid(self, process) -> TimeGrid:
        sec = self.raw["time"]
        T, steps = sec["T"], sec["steps"]
        spacing = sec.get("spacing", "clock")
        try:
            if spacing == "uniform":
                return TimeGrid.uniform(T, steps)
            if spacing == "graded":
                return TimeGrid.graded(T, steps, power=sec.get("power", 2.0),
                                       near=sec.get("near", "start"))
            return TimeGrid.clock(process.clock, T, steps)
        except BridgesolveInputError as exc:
            _reraise("time", exc)

    def killing(self):
        sec = self.raw.get("killing")
        if not sec:
            return None
        c0 = float(sec.get("constant", 0.0))
        c2 = float(sec.get("quadratic", 0.0))
        if c2 == 0.0:
            return c0
        return lambda x: c0 + c2 * np.sum(x * x, axis=1)

    def build(self, comm=None):
        """``(problem, data, killing)``: data is ρ0 (forward) or φ_T (backward)."""
        from bridgesolve.problem import Problem

        process = self.process()
        dom = self.domain(comm)
        if self.data["object"].dim != dom.dim:
            sec = "initial" if self.equation in FORWARD else "terminal"
            raise ConfigError(f"[{sec}] the data are {self.data['object'].dim}D but the "
                              f"domain is {dom.dim}D")
        d = self.raw.get("discretization", {})
        try:
            prob = Problem(dom, process, self.grid(process), degree=d.get("degree", 1),
                           boundary=d.get("boundary", "reflecting"),
                           scheme=d.get("scheme", "crank-nicolson"))
        except BridgesolveInputError as exc:
            _reraise("discretization", exc)
        return prob, self.data["object"], self.killing()

    def plot_times(self) -> list[float]:
        T = float(self.raw["time"]["T"])
        times = self.raw.get("output", {}).get("plot_times")
        return [float(t) for t in times] if times else [0.0, 0.1 * T, 0.3 * T, T]

    def output_dir(self) -> Path:
        return Path(self.raw.get("output", {}).get("directory", "results/default"))

    def as_dict(self) -> dict:
        return self.raw


def _validate_mixture(section: str, sec: dict) -> GaussianMixture:
    weights = _number_list(section, sec, "weights", "a list of non-negative numbers")
    for key in ("means", "covs"):
        if key not in sec:
            raise ConfigError(f"[{section}] missing key {key!r}")
    try:
        return GaussianMixture(weights, sec["means"], sec["covs"])
    except BridgesolveInputError as exc:
        _reraise(section, exc)


def _validate_data(section: str, sec: dict, *, allow_bump: bool):
    kinds = ("gaussian_mixture", "gaussian_bump") if allow_bump else ("gaussian_mixture",)
    kind = _get(section, sec, "type", str, f"one of {', '.join(map(repr, kinds))}",
                "gaussian_mixture")
    if kind not in kinds:
        _fail(section, "type", kind, f"one of {', '.join(map(repr, kinds))}")
    if kind == "gaussian_mixture":
        _unknown(section, sec, ("type", "weights", "means", "covs"))
        return _validate_mixture(section, sec)
    _unknown(section, sec, ("type", "center", "width"))
    center = _number_list(section, sec, "center", "a point (list of numbers)")
    width = _get(section, sec, "width", _NUMBER, "a positive number")
    if not width > 0:
        _fail(section, "width", width, "a positive number")
    return ScaledMixture.gaussian_bump(center, float(width))


def validate(raw: dict, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Check every section and key of a parsed TOML config; raise :class:`ConfigError`."""
    base_dir = base_dir or Path.cwd()
    for name in raw:
        if name not in _SECTIONS:
            raise ConfigError(f"unknown section [{name}] (expected one of: "
                              f"{', '.join(_SECTIONS)})")
        if not isinstance(raw[name], dict):
            raise ConfigError(f"[{name}] must be a table, got {raw[name]!r}")

    prob = raw.get("problem", {})
    _unknown("problem", prob, ("equation",))
    equation = _get("problem", prob, "equation", str, f"one of {', '.join(EQUATIONS)}",
                    "fokker-planck")
    if equation not in EQUATIONS:
        _fail("problem", "equation", equation, f"one of {', '.join(map(repr, EQUATIONS))}")

    dom = raw.get("domain")
    if dom is None:
        raise ConfigError("missing section [domain]")
    kind = _get("domain", dom, "type", str, f"one of {', '.join(_DOMAIN_KEYS)}")
    if kind not in _DOMAIN_KEYS:
        _fail("domain", "type", kind, f"one of {', '.join(map(repr, _DOMAIN_KEYS))}")
    _unknown("domain", dom, ("type", *_DOMAIN_KEYS[kind]))
    if kind in ("interval", "box"):
        lo = _number_list("domain", dom, "lower", "a list of numbers")
        hi = _number_list("domain", dom, "upper", "a list of numbers")
        cells = _get("domain", dom, "cells", (int, list), "a positive integer or a list of them")
        items = cells if isinstance(cells, list) else [cells]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in items):
            _fail("domain", "cells", cells, "positive integers")
        if len(lo) != len(hi):
            _fail("domain", "upper", dom["upper"], f"{len(lo)} numbers like lower")
    elif kind == "disk":
        for key in ("radius", "h"):
            v = _get("domain", dom, key, _NUMBER, "a positive number")
            if not v > 0:
                _fail("domain", key, v, "a positive number")
    else:
        path = Path(_get("domain", dom, "path", str, "a gmsh .msh or .geo file"))
        from bridgesolve.domain import _MESH_DIR

        candidates = [path, base_dir / path, _MESH_DIR / path]
        if not any(c.is_file() for c in candidates):
            _fail("domain", "path", str(path), "an existing gmsh .msh or .geo file "
                  f"(looked in ., {base_dir} and meshes/)")

    proc = raw.get("process")
    if proc is None:
        raise ConfigError("missing section [process]")
    ptype = _get("process", proc, "type", str, f"one of {', '.join(_PROCESS_KEYS)}")
    if ptype.lower() not in _PROCESS_KEYS:
        _fail("process", "type", ptype, "one of 'VP', 'VE', 'SubVP', 'OU', 'Brownian'")
    _unknown("process", proc, ("type", *_PROCESS_KEYS[ptype.lower()]))
    for key in proc:
        if key != "type":
            _get("process", proc, key, _NUMBER, "a number")

    data_section = "initial" if equation in FORWARD else "terminal"
    other = "terminal" if data_section == "initial" else "initial"
    if other in raw:
        raise ConfigError(f"[{other}] is not used by equation {equation!r}: give "
                          f"[{data_section}] instead")
    if data_section not in raw:
        raise ConfigError(f"missing section [{data_section}] for equation {equation!r}")
    obj = _validate_data(data_section, raw[data_section], allow_bump=data_section == "terminal")

    kill = raw.get("killing", {})
    _unknown("killing", kill, ("constant", "quadratic"))
    for key in kill:
        _get("killing", kill, key, _NUMBER, "a number")

    time_sec = raw.get("time")
    if time_sec is None:
        raise ConfigError("missing section [time]")
    _unknown("time", time_sec, ("T", "steps", "spacing", "power", "near"))
    T = _get("time", time_sec, "T", _NUMBER, "a finite positive number")
    if not (math.isfinite(T) and T > 0):
        _fail("time", "T", T, "a finite positive number")
    steps = _get("time", time_sec, "steps", int, "a positive integer")
    if steps < 1:
        _fail("time", "steps", steps, "a positive integer")
    spacing = _get("time", time_sec, "spacing", str, "'clock', 'uniform' or 'graded'", "clock")
    if spacing not in ("clock", "uniform", "graded"):
        _fail("time", "spacing", spacing, "'clock', 'uniform' or 'graded'")

    disc = raw.get("discretization", {})
    _unknown("discretization", disc, ("degree", "scheme", "boundary"))
    degree = _get("discretization", disc, "degree", int, "a positive integer", 1)
    if degree < 1:
        _fail("discretization", "degree", degree, "a positive integer")
    scheme = _get("discretization", disc, "scheme", str, "'crank-nicolson' or 'backward-euler'",
                  "crank-nicolson")
    if scheme not in ("crank-nicolson", "backward-euler"):
        _fail("discretization", "scheme", scheme, "'crank-nicolson' or 'backward-euler'")
    boundary = _get("discretization", disc, "boundary", str, "'reflecting' or 'absorbing'",
                    "reflecting")
    if boundary not in ("reflecting", "absorbing"):
        _fail("discretization", "boundary", boundary, "'reflecting' or 'absorbing'")

    out = raw.get("output", {})
    _unknown("output", out, ("directory", "plot_times", "vtx"))
    _get("output", out, "directory", str, "a folder path", "")
    _get("output", out, "vtx", bool, "true or false", True)
    for t in _number_list("output", out, "plot_times", "a list of times in [0, T]", []):
        if not 0.0 <= t <= T:
            _fail("output", "plot_times", out["plot_times"], f"times in [0, T = {T}]")

    cfg = Config(raw=raw, source=source, base_dir=base_dir, equation=equation,
                 data={"section": data_section, "object": obj})
    cfg.grid(cfg.process())  # parameter values of the process and the grid, up front
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a TOML config; ``None`` gives the embedded default example."""
    if path is None:
        text = resources.files("bridgesolve").joinpath("data/default.toml").read_text()
        source, base = "<embedded default>", Path.cwd()
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        text, source, base = path.read_text(), str(path), path.resolve().parent
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return validate(raw, source=source, base_dir=base)
