"""The validated configuration: :class:`Config` and the solver objects it builds
(:mod:`bridgesolve.config.sections` checks the tables first)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridgesolve._toml import ConfigError, _prefixed
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities import GaussianMixture, ScaledMixture
from bridgesolve.densities.catalog import resolve_path
from bridgesolve.equations import EQUATIONS, Equation
from bridgesolve.process import PROCESSES, Process
from bridgesolve.timegrid import TimeGrid

#: ``[bridge]`` keys and defaults (the keywords of ``solve_bridge``).
BRIDGE_DEFAULTS = {"tol": 1e-8, "max_iter": 500, "mode": "auto", "acceleration": True}


@dataclass
class Config:
    """A validated configuration; :meth:`build` makes the solver objects.

    Attributes:
        raw: the parsed TOML tables, as validated.
        text: the TOML text (copied into results folders).
        source: the config file's path, or ``"<embedded default>"``.
        base_dir: the folder relative mesh paths are resolved against.
        equation: one of :data:`EQUATIONS`.
        data: the initial (forward equations) or terminal (backward ones) data.
        mesh_path: the resolved gmsh file for ``[domain] type = "gmsh"``, else None.
    """

    raw: dict
    text: str
    source: str
    base_dir: Path
    equation: str
    data: GaussianMixture | ScaledMixture
    mesh_path: Path | None = None
    final: GaussianMixture | ScaledMixture | None = None

    @property
    def record(self) -> Equation:
        """The equation's :class:`~bridgesolve.equations.Equation` record."""
        return EQUATIONS[self.equation]

    @property
    def data_section(self) -> str:
        return self.record.data_section

    @property
    def bridge_options(self) -> dict:
        """``[bridge]`` with defaults: keywords of :func:`bridgesolve.solve_bridge` (with
        ``[discretization] method``)."""
        return {**BRIDGE_DEFAULTS, **self.raw.get("bridge", {}), **self.solver_options}

    @property
    def solver_options(self) -> dict:
        """``method=`` of the solver when ``[discretization] method`` is given (FP,
        Kolmogorov, bridge: ``fe``, ``kernel`` or ``auto``)."""
        method = self.raw.get("discretization", {}).get("method")
        return {} if method is None else {"method": method}

    @property
    def forward(self) -> bool:
        """Whether the data sit at t = 0 (and errors are reported at t = T)."""
        return self.record.forward

    @property
    def report_time(self) -> float:
        """Where errors are reported (T forward, 0 backward, T/2 for bridges)."""
        return self.record.report_time(self.T)

    def exact(self, process: Process, killing=None):
        """``t -> (points -> values)`` of the exact solution, or None (see
        :meth:`bridgesolve.equations.Equation.exact`)."""
        return self.record.exact(process, self.data, T=self.T, killing=killing,
                                 final=self.final)

    @property
    def T(self) -> float:
        return float(self.raw["time"]["T"])

    # -- builders --------------------------------------------------------------------
    def process(self) -> Process:
        sec = self.raw["process"]
        cls = PROCESSES[sec["type"].lower()]
        params = {k: v for k, v in sec.items() if k != "type"}
        if "scheduler_config" in params:  # Tabulated: next to the config, like data files
            params["scheduler_config"] = resolve_path(params["scheduler_config"], self.base_dir)
        try:
            return cls(**params)
        except BridgesolveInputError as exc:
            raise _prefixed("process", exc) from None

    def grid(self, process: Process) -> TimeGrid:
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
            raise _prefixed("time", exc) from None

    def domain(self, comm=None):
        """The mesh (collective over ``comm``, default ``MPI.COMM_WORLD``)."""
        from bridgesolve.domain import Domain

        sec = self.raw["domain"]
        try:
            if sec["type"] in ("interval", "box"):
                return Domain.box(sec["lower"], sec["upper"], sec["cells"], comm=comm)
            if sec["type"] == "disk":
                return Domain.disk(sec["radius"], sec["h"], center=sec.get("center", (0.0, 0.0)),
                                   comm=comm)
            return Domain.from_gmsh(self.mesh_path, h=sec.get("h"), comm=comm)
        except BridgesolveInputError as exc:
            raise _prefixed("domain", exc) from None

    def killing(self) -> float | Callable[[np.ndarray], np.ndarray] | None:
        """``V``: None, a constant, or ``x -> constant + quadratic |x|^2``."""
        sec = self.raw.get("killing", {})
        c0, c2 = float(sec.get("constant", 0.0)), float(sec.get("quadratic", 0.0))
        if c2 == 0.0:
            return c0 if c0 != 0.0 else None
        return lambda x: c0 + c2 * np.sum(x * x, axis=1)

    def build(self, comm=None):
        """Make the solver objects (collective: builds the mesh).

        Returns:
            ``(problem, data, killing)``: the :class:`~bridgesolve.Problem`, the initial
            density ρ0 (forward equations) or terminal value φ_T (backward ones), and the
            killing rate for the solver's ``killing=`` (None without ``[killing]``).
        """
        from bridgesolve.problem import Problem

        process = self.process()
        dom = self.domain(comm)
        if self.data.dim != dom.dim:
            raise ConfigError(f"[{self.data_section}] the data are {self.data.dim}D but the "
                              f"mesh of [domain] is {dom.dim}D")
        disc = self.raw.get("discretization", {})
        try:
            problem = Problem(dom, process, self.grid(process), degree=disc.get("degree", 1),
                              boundary=disc.get("boundary", "reflecting"),
                              scheme=disc.get("scheme", "crank-nicolson"),
                              solver=disc.get("solver", "auto"),
                              storage=disc.get("storage", "auto"),
                              storage_dir=disc.get("storage_dir"),
                              memory_budget=disc.get("memory_budget"))
        except BridgesolveInputError as exc:
            raise _prefixed("discretization", exc) from None
        return problem, self.data, self.killing()

    # -- output ------------------------------------------------------------------------
    @property
    def plot_times(self) -> list[float]:
        """``[output] plot_times``, sorted; default: 0, T/10, 3T/10 and T (diffusions change
        fastest early), or 0, T/4, T/2, 3T/4 and T for bridges."""
        times = self.raw.get("output", {}).get("plot_times")
        T = self.T
        if times:
            return sorted({float(t) for t in times})
        if self.equation == "bridge":
            return [0.0, 0.25 * T, 0.5 * T, 0.75 * T, T]
        return [0.0, 0.1 * T, 0.3 * T, T]

    @property
    def slice_z(self) -> float | None:
        """``[output] slice_z``: the plane of 3D figures (None: the mid-plane)."""
        z = self.raw.get("output", {}).get("slice_z")
        return None if z is None else float(z)

    @property
    def output_dir(self) -> Path:
        """``[output] directory``; default ``results/<config file name>``."""
        directory = self.raw.get("output", {}).get("directory")
        if directory:
            return Path(directory)
        stem = "default" if self.source.startswith("<") else Path(self.source).stem
        return Path("results") / stem

    @property
    def vtx(self) -> bool:
        return self.raw.get("output", {}).get("vtx", True)

    def as_dict(self) -> dict:
        """A deep copy of the validated tables (safe to serialize or modify)."""
        return copy.deepcopy(self.raw)


# -- validation, one function per section ------------------------------------------------


__all__ = ["BRIDGE_DEFAULTS", "Config"]
