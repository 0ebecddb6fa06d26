"""The TOML vocabulary of ``bridgesolve train`` (NumPy only: validating needs no torch).

Sections (``examples/learn/train_*.toml`` has examples)::

    [data]     type = "gaussian_mixture" (weights, means, covs) | "file" (path: .npy/.csv;
               bandwidth: "scott" | "silverman" | h, of the KDE drawn from)
               | "two_moons" (noise, scale) | "checkerboard" (scale) | "swiss_roll"
               (noise, scale) | "rings" (n_rings, noise, scale) | "mixture1d" (separation, std)
    [process]  the PDE side's vocabulary: type = "VP" | "SubVP" | "VE" | "OU" (| "Brownian")
    [model]    width = 128, depth = 3, fourier_features = 16, parameterization = "eps"|"score"
    [train]    steps, batch_size, lr, warmup, schedule = "cosine"|"constant", ema,
               weighting = "sigma2"|"g2"|"none", t_min, grad_clip, seed, device = "auto"|
               "cpu"|"cuda"|"cuda:N", amp, checkpoint_every, threads,
               t_sampling = "uniform"|"importance" (t ∝ λ/σ², reweighted: unbiased)
    [output]   directory (default results/<config name>)
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bridgesolve._toml import ConfigError, _Section
from bridgesolve._vocab import WEIGHTINGS
from bridgesolve.config.sections import _data, _process
from bridgesolve.densities import catalog
from bridgesolve.process import PROCESSES, Process

SECTIONS = ("data", "process", "model", "train", "output")
DATA_TYPES = catalog.TYPES

#: defaults of ``[model]`` and ``[train]``
MODEL_DEFAULTS = {"width": 128, "depth": 3, "fourier_features": 16, "parameterization": "eps"}
TRAIN_DEFAULTS = {
    "steps": 5000, "batch_size": 512, "lr": 2e-3, "warmup": 200, "schedule": "cosine",
    "ema": 0.999, "weighting": "sigma2", "t_min": 1e-3, "grad_clip": 1.0, "seed": 0,
    "device": "auto", "amp": True, "checkpoint_every": 500, "threads": 0,
    "t_sampling": "uniform",
}
#: keys that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = ("device", "checkpoint_every", "threads", "amp")


@dataclass
class TrainConfig:
    """A validated training configuration (plain tables; no torch objects).

    Attributes:
        raw: the tables ``data``, ``process``, ``model``, ``train``, ``output``, with the
            defaults filled in.
        source: the file it came from, or ``"<dict>"``.
        text: the TOML text (copied into the output folder), possibly empty.
        base_dir: the folder relative sample-file paths are resolved against.
    """

    raw: dict
    source: str = "<dict>"
    text: str = ""
    base_dir: Path = Path(".")

    @property
    def train(self) -> dict:
        return self.raw["train"]

    @property
    def model(self) -> dict:
        return self.raw["model"]

    def process(self) -> Process:
        sec = self.raw["process"]
        cls = PROCESSES[sec["type"].lower()]
        params = {k: v for k, v in sec.items() if k != "type"}
        if "scheduler_config" in params:  # Tabulated: next to the config, like sample files
            params["scheduler_config"] = catalog.resolve_path(params["scheduler_config"],
                                                              self.base_dir)
        try:
            return cls(**params)
        except ValueError as exc:
            raise ConfigError(f"[process] {exc}") from None

    @property
    def T(self) -> float:
        """The horizon: the process's ``T`` when it has one, else 1."""
        return float(getattr(self.process(), "T", 1.0))

    def dataset(self):
        """The :class:`~bridgesolve.learn.data.Dataset` of ``[data]``."""
        from bridgesolve.learn import data as data_mod

        density = _data({"data": self.raw["data"]}, "data", self.base_dir)
        return data_mod.from_density(density, name=self.raw["data"]["type"],
                                     params={k: v for k, v in self.raw["data"].items()
                                             if k != "type"})

    @property
    def output_dir(self) -> Path | None:
        directory = self.raw.get("output", {}).get("directory")
        if directory:
            return Path(directory)
        if self.source.startswith("<"):
            return None
        return Path("results") / Path(self.source).stem

    def as_dict(self) -> dict:
        return copy.deepcopy(self.raw)

    def science(self) -> dict:
        """The tables that define the trained model (what must match to resume)."""
        raw = self.as_dict()
        raw.pop("output", None)
        for key in RESUMABLE_CHANGES:
            raw["train"].pop(key, None)
        return raw


def _data_section(raw: dict, base_dir: Path | None) -> None:
    """Check ``[data]`` up front: its type, keys and values (the density is built once here,
    files read; :meth:`TrainConfig.dataset` builds it again)."""
    sec = _Section("data", raw["data"])
    kind = sec.string("type", DATA_TYPES)
    sec.only(("type", *catalog.parameters(kind)))
    _data(raw, "data", base_dir)


def _model_section(raw: dict) -> dict:
    sec = _Section("model", raw.get("model", {}))
    sec.only(tuple(MODEL_DEFAULTS))
    return {"width": sec.integer("width", default=MODEL_DEFAULTS["width"]),
            "depth": sec.integer("depth", default=MODEL_DEFAULTS["depth"]),
            "fourier_features": sec.integer("fourier_features",
                                            default=MODEL_DEFAULTS["fourier_features"]),
            "parameterization": sec.string("parameterization", ("eps", "score"),
                                           default=MODEL_DEFAULTS["parameterization"])}


def _train_section(raw: dict, T: float) -> dict:
    sec = _Section("train", raw.get("train", {}))
    sec.only(tuple(TRAIN_DEFAULTS))
    d = TRAIN_DEFAULTS
    out = {
        "steps": sec.integer("steps", default=d["steps"]),
        "batch_size": sec.integer("batch_size", default=d["batch_size"]),
        "lr": sec.number("lr", positive=True, default=d["lr"]),
        "warmup": sec.table.get("warmup", d["warmup"]),
        "schedule": sec.string("schedule", ("cosine", "constant"), default=d["schedule"]),
        "ema": sec.number("ema", default=d["ema"]),
        "weighting": sec.string("weighting", WEIGHTINGS, default=d["weighting"]),
        "t_min": sec.number("t_min", positive=True, default=d["t_min"]),
        "grad_clip": sec.number("grad_clip", default=d["grad_clip"]),
        "seed": sec.table.get("seed", d["seed"]),
        "device": sec.string("device", default=d["device"]),
        "amp": sec.boolean("amp", default=d["amp"]),
        "checkpoint_every": sec.table.get("checkpoint_every", d["checkpoint_every"]),
        "threads": sec.table.get("threads", d["threads"]),
        "t_sampling": sec.string("t_sampling", ("uniform", "importance"),
                                 default=d["t_sampling"]),
    }
    for key in ("warmup", "seed", "checkpoint_every", "threads"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            sec.fail(key, v, "a non-negative integer")
    if not 0.0 <= out["ema"] < 1.0:
        sec.fail("ema", out["ema"], "a decay in [0, 1)")
    if out["grad_clip"] < 0:
        sec.fail("grad_clip", out["grad_clip"], "a non-negative number (0: no clipping)")
    if out["t_min"] >= T:
        sec.fail("t_min", out["t_min"], f"a time in (0, T = {T:g})")
    dev = out["device"]
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        sec.fail("device", dev, "'auto', 'cpu', 'cuda' or 'cuda:N'")
    return out


def validate_train_config(raw: dict, *, source: str = "<dict>", text: str = "",
                          base_dir: Path | None = None) -> TrainConfig:
    """Check every section and key; fill in defaults.

    Raises:
        ConfigError: naming the section, key and value, and what was expected.
    """
    for name, table in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown section [{name}] (expected one of: {', '.join(SECTIONS)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{name} = {table!r}: expected a section [{name}]")
    for name in ("data", "process"):
        if name not in raw:
            raise ConfigError(f"missing section [{name}]")
    raw = copy.deepcopy(raw)
    _data_section(raw, base_dir)
    _process(raw, base_dir)
    cfg = TrainConfig(raw=raw, source=source, text=text, base_dir=base_dir or Path.cwd())
    T = cfg.T
    raw["model"] = _model_section(raw)
    raw["train"] = _train_section(raw, T)
    out = _Section("output", raw.get("output", {}))
    out.only(("directory",))
    if "directory" in out.table and not out.string("directory").strip():
        out.fail("directory", out.table["directory"], "a non-empty folder path")
    raw.setdefault("output", {})
    return cfg


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    """Read and validate a ``bridgesolve train`` TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text("utf-8")
        raw = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return validate_train_config(raw, source=str(path), text=text, base_dir=path.resolve().parent)
