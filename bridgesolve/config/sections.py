"""The checks of every section and key of a TOML config, each naming section, key and value:
:func:`validate` (parsed tables -> :class:`~bridgesolve.config.typed.Config`) and
:func:`load_config` (a file or the embedded default)."""

from __future__ import annotations

import inspect
import os
import tomllib
from importlib import resources
from pathlib import Path

from bridgesolve._toml import ConfigError, _prefixed, _Section
from bridgesolve._validate import BridgesolveInputError
from bridgesolve._vocab import (
    BOUNDARIES,
    BRIDGE_MODES,
    METHODS,
    REFERENCES,
    REFINEMENTS,
    SCHEMES,
    SPACINGS,
    STORAGES,
)
from bridgesolve.config.typed import BRIDGE_DEFAULTS, Config
from bridgesolve.densities import ScaledMixture, catalog
from bridgesolve.equations import EQUATIONS
from bridgesolve.process import PROCESSES, Tabulated
from bridgesolve.solvers import SOLVERS
from bridgesolve.storage import parse_bytes

SECTIONS = ("problem", "domain", "process", "initial", "terminal", "killing", "time",
            "discretization", "output", "convergence", "final", "bridge")
DOMAIN_KEYS = {
    "interval": ("lower", "upper", "cells"),
    "box": ("lower", "upper", "cells"),
    "disk": ("radius", "h", "center"),
    "gmsh": ("path", "h"),
}
DEFAULT_CONFIG = "data/default.toml"


def _problem(raw: dict, default: str = "fokker-planck") -> str:
    sec = _Section("problem", raw.get("problem", {}))
    sec.only(("equation",))
    return sec.string("equation", tuple(EQUATIONS), default=default)


def _bridge(raw: dict) -> None:
    sec = _Section("bridge", raw.get("bridge", {}))
    sec.only(tuple(BRIDGE_DEFAULTS))
    if "tol" in sec.table:
        sec.number("tol", positive=True)
    if "max_iter" in sec.table:
        sec.integer("max_iter")
    sec.string("mode", BRIDGE_MODES, default="auto")
    sec.boolean("acceleration", default=True)


def _domain(raw: dict, base_dir: Path) -> tuple[int | None, Path | None]:
    """Check ``[domain]``; return its dimension (None for gmsh: known once read) and the
    resolved mesh file."""
    sec = _Section("domain", raw["domain"])
    kind = sec.string("type", tuple(DOMAIN_KEYS))
    sec.only(("type", *DOMAIN_KEYS[kind]))
    if kind in ("interval", "box"):
        lo = sec.numbers("lower", "a list of 1 to 3 finite numbers")
        hi = sec.numbers("upper", "a list of 1 to 3 finite numbers")
        dims = (1,) if kind == "interval" else (1, 2, 3)
        if len(lo) not in dims:
            sec.fail("lower", sec.table["lower"], "1 number" if kind == "interval"
                     else "a list of 1 to 3 numbers")
        if len(hi) != len(lo):
            sec.fail("upper", sec.table["upper"], f"{len(lo)} number(s), like lower")
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            sec.fail("upper", sec.table["upper"], f"numbers greater than lower = {lo}")
        sec.integers("cells", len(lo))
        return len(lo), None
    if kind == "disk":
        sec.number("radius", positive=True)
        sec.number("h", positive=True)
        if "center" in sec.table and len(sec.numbers("center", "a point [x, y]")) != 2:
            sec.fail("center", sec.table["center"], "a point [x, y]")
        return 2, None
    path = _mesh_file(sec, base_dir)
    if "h" in sec.table:
        sec.number("h", positive=True)
        if path.suffix != ".geo":
            sec.fail("h", sec.table["h"], "no h with a .msh file (h sizes a .geo script's mesh)")
    return None, path


def _mesh_file(sec: _Section, base_dir: Path) -> Path:
    """The gmsh file: absolute, or relative to the config's folder, the working directory,
    or the package's ``meshes/`` folder (first match)."""
    from bridgesolve.domain import _MESH_DIR

    name = sec.string("path")
    path = Path(name)
    if path.suffix not in (".msh", ".geo"):
        sec.fail("path", name, "a gmsh .msh or .geo file")
    candidates = [path] if path.is_absolute() else [base_dir / path, Path.cwd() / path,
                                                    _MESH_DIR / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(dict.fromkeys(str(c.parent) for c in candidates))
    raise ConfigError(f"[domain] path = {name!r}: mesh file does not exist (looked in {looked})")


#: ``[process]`` keys that are not numbers: lists (Tabulated's table) and files.
PROCESS_LISTS = {"alphas_cumprod": "a non-empty list of strictly decreasing numbers in (0, 1)",
                 "times": "a list of strictly increasing positive times, one per ᾱ_k"}
PROCESS_FILES = {"scheduler_config": "a diffusers scheduler_config.json (or its folder)"}


def _process(raw: dict, base_dir: Path | None = None) -> None:
    sec = _Section("process", raw["process"])
    kind = sec.string("type")
    if kind.lower() not in PROCESSES:
        names = ", ".join(cls.__name__ for cls in PROCESSES.values())
        sec.fail("type", kind, f"one of {names} (any case)")
    # The valid keys are the class's own keyword arguments, so new processes need no edit here.
    params = inspect.signature(PROCESSES[kind.lower()]).parameters
    sec.only(("type", *params))
    if {"alphas_cumprod", "scheduler_config"} <= set(sec.table):
        raise ConfigError(f"[process] alphas_cumprod and scheduler_config = "
                          f"{sec.table['scheduler_config']!r}: expected one of them (the "
                          "table of ᾱ_k, or the diffusers config it is computed from)")
    for key in (k for k in params if k in sec.table):
        if key in PROCESS_LISTS:
            value = sec.table[key]
            if not isinstance(value, list) or not value:
                sec.fail(key, value, PROCESS_LISTS[key])
            sec.numbers(key, PROCESS_LISTS[key])
        elif key in PROCESS_FILES:
            # Relative to the config's folder when it is there, else as given (data files).
            name = sec.string(key)
            path = catalog.resolve_path(name, base_dir)
            if not (path.is_file() or (path / "scheduler_config.json").is_file()):
                where = "" if Path(name).is_absolute() else " (looked in " + ", ".join(
                    dict.fromkeys(str(d) for d in (base_dir or Path.cwd(), Path.cwd()))) + ")"
                raise ConfigError(f"[process] {key} = {name!r}: file does not exist{where}: "
                                  f"expected {PROCESS_FILES[key]}")
        else:
            sec.number(key)


def _data(raw: dict, section: str, base_dir: Path | None = None):
    """The density of ``[initial]``/``[final]``/``[data]`` (any type of
    :mod:`bridgesolve.densities.catalog`), or the terminal value of ``[terminal]``."""
    sec = _Section(section, raw[section])
    # A Gaussian bump is a terminal *value* (peak 1), not a density: backward data only.
    kinds = (*catalog.TYPES, "gaussian_bump") if section == "terminal" else catalog.TYPES
    kind = sec.string("type", kinds, default="gaussian_mixture")
    if kind == "gaussian_bump":
        sec.only(("type", "center", "width"))
        center = sec.numbers("center", "a point (list of 1 to 3 numbers)")
        return ScaledMixture.gaussian_bump(center, sec.number("width", positive=True))
    sec.only(("type", *catalog.parameters(kind)))
    if kind == "gaussian_mixture":
        sec.numbers("weights", "a list of non-negative numbers")
        sec.get("means", "a (K, d) list of numbers")
        sec.get("covs", "(K, d, d) matrices, (K, d) diagonals or (K,) variances")
    elif kind in catalog.FILES:
        sec.string("path")
    try:
        return catalog.density_from_config({"type": kind, **sec.table}, where=f"[{section}]",
                                           base_dir=base_dir)
    except BridgesolveInputError as exc:
        raise ConfigError(str(exc)) from None


def _killing(raw: dict) -> None:
    sec = _Section("killing", raw.get("killing", {}))
    sec.only(("constant", "quadratic"))
    for key in sec.table:
        sec.number(key)


def _time(raw: dict) -> float:
    sec = _Section("time", raw["time"])
    spacing = sec.string("spacing", SPACINGS, default="clock")
    for key in ("power", "near"):
        if key in sec.table and spacing != "graded":
            raise ConfigError(f"[time] {key} = {sec.table[key]!r}: applies only to spacing = "
                              f"'graded' (spacing is {spacing!r})")
    sec.only(("T", "steps", "spacing", "power", "near"))
    T = sec.number("T", positive=True)
    sec.integer("steps")
    if spacing == "graded":
        if sec.number("power", default=2.0) < 1:
            sec.fail("power", sec.table["power"], "a number >= 1")
        sec.string("near", ("start", "end", "both"), default="start")
    return T


def _discretization(raw: dict, equation: str) -> None:
    sec = _Section("discretization", raw.get("discretization", {}))
    sec.only(("degree", "scheme", "boundary", "solver", "method", "storage", "storage_dir",
              "memory_budget"))
    sec.integer("degree", default=1)
    storage = sec.string("storage", STORAGES, default="auto")
    if "storage_dir" in sec.table:
        if not sec.string("storage_dir").strip():
            sec.fail("storage_dir", sec.table["storage_dir"], "a non-empty folder path")
        if storage == "memory":
            sec.fail("storage_dir", sec.table["storage_dir"], "no folder with storage = "
                     "'memory' (the folder is used by storage 'disk' or 'auto')")
    if "memory_budget" in sec.table:
        if storage != "auto":
            sec.fail("memory_budget", sec.table["memory_budget"], "no budget with storage = "
                     f"{storage!r} (the budget decides storage 'auto')")
        try:
            parse_bytes("memory_budget", sec.table["memory_budget"])
        except BridgesolveInputError as exc:
            raise _prefixed("discretization", exc) from None
    method = sec.string("method", METHODS, default="fe")
    if method != "fe" and equation not in ("fokker-planck", "kolmogorov", "bridge"):
        sec.fail("method", method, "'fe' for the hjb equations (the kernel path solves "
                 "fokker-planck, kolmogorov and bridge)")
    sec.string("solver", SOLVERS, default="auto")
    sec.string("scheme", SCHEMES, default="crank-nicolson")
    boundary = sec.string("boundary", BOUNDARIES, default="reflecting")
    if equation == "bridge" and boundary != "reflecting":
        sec.fail("boundary", boundary, "'reflecting' for the Schrödinger bridge (the "
                 "potentials vanish on absorbing walls)")
    if equation.startswith("hjb") and boundary != "reflecting":
        sec.fail("boundary", boundary, "'reflecting' for the log-domain (hjb) equations: "
                 "an absorbing wall makes log φ = -inf there")


def _output(raw: dict, T: float) -> None:
    sec = _Section("output", raw.get("output", {}))
    sec.only(("directory", "plot_times", "vtx", "slice_z"))
    if "slice_z" in sec.table:
        sec.number("slice_z")
    if "directory" in sec.table and not sec.string("directory").strip():
        sec.fail("directory", sec.table["directory"], "a non-empty folder path")
    sec.boolean("vtx", default=True)
    if "plot_times" in sec.table:
        times = sec.numbers("plot_times", "a non-empty list of times in [0, T]")
        if not sec.table["plot_times"] or not all(0.0 <= t <= T for t in times):
            sec.fail("plot_times", sec.table["plot_times"], f"a non-empty list of times in "
                     f"[0, T = {T:g}]")


def _convergence(raw: dict) -> None:
    sec = _Section("convergence", raw.get("convergence", {}))
    sec.only(("refine", "levels", "reference", "generated", "measure_degree"))
    sec.string("refine", REFINEMENTS, default="h")
    sec.integer("levels", default=3)
    if "measure_degree" in sec.table:  # errors in P(k) for k >= degree + 1 (default + 3)
        k = sec.integer("measure_degree")
        degree = int(raw.get("discretization", {}).get("degree", 1))
        if k < degree + 1:
            sec.fail("measure_degree", k, f"an integer >= degree + 1 = {degree + 1} (the "
                     "exact solution is interpolated into P(measure_degree))")
    sec.string("reference", REFERENCES, default="auto")
    if "generated" in sec.table:  # h values of samplers whose KL(ρ0 ‖ q_h) is measured
        # h = 0 (characteristics) with the mesh score gave KL -9e-4, -1.5e-3, -1.1e-4 on 40,
        # 80, 160 P2 cells (q_0 is not normalized): no convergent quantity, not offered.
        expected = "a list of sampler parameters h in (0, 1]"
        hs = sec.numbers("generated", expected)
        if not all(0.0 < h <= 1.0 for h in hs):
            sec.fail("generated", sec.table["generated"], expected)


def _source(section: dict) -> str:
    """`` (file 'x.npy')`` for data read from a file, else ``""``."""
    path = section.get("path")
    return f" (file {str(path)!r})" if path else ""


def validate(raw: dict, *, source: str = "<config>", text: str = "",
             base_dir: Path | None = None, default_equation: str = "fokker-planck") -> Config:
    """Check every section and key of a parsed TOML config.

    Args:
        raw: the parsed tables (``tomllib.loads``).
        source: where they came from, for messages and the default output folder.
        text: the TOML text, kept to copy into the results folder.
        base_dir: the folder relative mesh paths are resolved against (default: cwd).

    Raises:
        ConfigError: naming the section, key and value, and what was expected.
    """
    base_dir = base_dir or Path.cwd()
    for name, table in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown section [{name}] (expected one of: "
                              f"{', '.join(SECTIONS)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{name} = {table!r}: expected a section [{name}]")
    equation = _problem(raw, default_equation)
    for name in ("final", "bridge"):
        if name in raw and equation != "bridge":
            raise ConfigError(f"[{name}] is only used by equation 'bridge' (this config "
                              f"solves {equation!r}; set [problem] equation = 'bridge')")
    if equation == "bridge" and "final" not in raw:
        raise ConfigError("missing section [final] (ρ1 at t = T) for equation 'bridge'")
    data_section = EQUATIONS[equation].data_section
    other = "terminal" if data_section == "initial" else "initial"
    if other in raw:
        raise ConfigError(f"[{other}] is not used by equation {equation!r}: give "
                          f"[{data_section}] instead")
    for name in ("domain", "process", data_section, "time"):
        if name not in raw:
            raise ConfigError(f"missing section [{name}]"
                              + (f" for equation {equation!r}" if name == data_section else ""))

    dim, mesh_path = _domain(raw, base_dir)
    _process(raw, base_dir)
    data = _data(raw, data_section, base_dir)
    if dim is not None and data.dim != dim:
        raise ConfigError(f"[{data_section}] the data{_source(raw[data_section])} are "
                          f"{data.dim}D but [domain] is {dim}D")
    final = _data(raw, "final", base_dir) if equation == "bridge" else None
    if final is not None and final.dim != data.dim:
        raise ConfigError(f"[final] ρ1{_source(raw['final'])} is {final.dim}D but [initial] ρ0 "
                          f"is {data.dim}D")
    _bridge(raw)
    _killing(raw)
    T = _time(raw)
    _discretization(raw, equation)
    _output(raw, T)
    _convergence(raw)

    cfg = Config(raw=raw, text=text, source=source, base_dir=base_dir, equation=equation,
                 data=data, mesh_path=mesh_path, final=final)
    # Parameter values (beta_max < beta_min, ...) and the grid, up front and without a mesh.
    process = cfg.process()
    if isinstance(process, Tabulated) and T > process.T * (1 + 1e-12):
        raise ConfigError(f"[time] T = {T!r}: expected at most T = {process.T!r}, the last "
                          "time of the tabulated [process] (its last step)")
    cfg.grid(process)
    return cfg


def load_config(path: str | os.PathLike | None = None, *,
                default_equation: str = "fokker-planck") -> Config:
    """Read and validate a TOML config.

    Args:
        path: the config file; None gives the embedded default example (a 2D two-component
            Gaussian mixture under the VP SDE).
        default_equation: the equation when ``[problem]`` names none (``bridgesolve
            bridge`` passes ``"bridge"``).

    Raises:
        ConfigError: when the file is missing, is not TOML, or any value is invalid.
    """
    if path is None:
        text = resources.files("bridgesolve").joinpath(DEFAULT_CONFIG).read_text("utf-8")
        source, base_dir = "<embedded default>", Path.cwd()
    else:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {str(path)!r} is a folder: expected a TOML file")
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
        source, base_dir = str(path), path.resolve().parent
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return validate(raw, source=source, text=text, base_dir=base_dir,
                    default_equation=default_equation)


__all__ = ["DEFAULT_CONFIG", "DOMAIN_KEYS", "SECTIONS", "load_config", "validate"]
