"""The refinement ladder: the config of each level, its solver objects, its signature."""

from __future__ import annotations

import copy
import hashlib
import json

from bridgesolve.studies.quantities import Quantity


def _scaled_cells(cells, factor: int):
    return [int(c) * factor for c in cells] if isinstance(cells, list) else int(cells) * factor


def level_raw(raw: dict, refine: str, level: int) -> dict:
    """The config tables of ``level`` (0 = the config itself) of a ``refine`` ladder."""
    raw = copy.deepcopy(raw)
    factor = 2**level
    if refine in ("h", "hdt"):
        dom = raw["domain"]
        if dom["type"] in ("interval", "box"):
            dom["cells"] = _scaled_cells(dom["cells"], factor)
        elif dom["type"] == "disk" or (dom["type"] == "gmsh" and "h" in dom):
            dom["h"] = float(dom["h"]) / factor  # remeshed: curved walls resolved per level
        # other gmsh meshes are refined uniformly after reading (see build_level)
    if refine in ("dt", "hdt"):
        raw["time"]["steps"] = int(raw["time"]["steps"]) * factor
    if refine == "p":
        disc = raw.setdefault("discretization", {})
        disc["degree"] = int(disc.get("degree", 1)) + level
    return raw


def level_config(cfg, refine: str, level: int):
    """The validated :class:`~bridgesolve.config.Config` of ``level`` (see :func:`level_raw`)."""
    from bridgesolve.config import validate

    return validate(level_raw(cfg.raw, refine, level), source=cfg.source, text=cfg.text,
                    base_dir=cfg.base_dir)


def build_level(cfg, refine: str, level: int, comm):
    """``(level config, problem, data, killing)`` of a level (collective: builds the mesh)."""
    lcfg = level_config(cfg, refine, level)
    problem, data, killing = lcfg.build(comm)
    dom = lcfg.raw["domain"]
    if dom["type"] == "gmsh" and "h" not in dom and refine in ("h", "hdt") and level:
        from bridgesolve._dolfinx import dolfinx
        from bridgesolve.domain import Domain
        from bridgesolve.problem import Problem

        mesh = problem.mesh
        for _ in range(level):
            mesh.topology.create_entities(1)
            mesh = dolfinx.mesh.refine(mesh)[0]
        dom = Domain(mesh, description={**problem.domain.description, "refinements": level})
        problem = Problem(dom, problem.process, problem.grid, degree=problem.degree,
                          boundary=problem.boundary, scheme=problem.theta,
                          petsc_options=problem.petsc_options,
                          **problem.storage_options())
    return lcfg, problem, data, killing


def signature(lcfg, refine: str, level: int, quantities: list[Quantity], mode: str) -> str:
    """What determines a level's solution and measurements (not output or ladder length)."""
    tables = {k: v for k, v in lcfg.raw.items() if k not in ("output", "convergence")}
    if "discretization" in tables:  # where fields are stored does not change them
        tables["discretization"] = {k: v for k, v in tables["discretization"].items()
                                    if k not in ("storage", "storage_dir", "memory_budget")}
    blob = json.dumps({"config": tables, "equation": lcfg.equation, "refine": refine,
                       "level": level, "quantities": [q.name for q in quantities],
                       "reference": mode}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


__all__ = ["build_level", "level_config", "level_raw", "signature"]
