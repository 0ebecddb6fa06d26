"""Checkpoints of finished levels: ``<folder>/checkpoints/level_<k>.json`` (+ ``.npz``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bridgesolve._folders import atomic_write
from bridgesolve._json import jsonable
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.studies.measurement import Solution

CHECKPOINT_SCHEMA = "bridgesolve.convergence-level/1"


class Checkpoints:
    """``<folder>/checkpoints/level_<k>.json`` (+ ``.npz``): rank 0 writes, all ranks read."""

    def __init__(self, folder: Path | None, comm):
        self.dir = folder / "checkpoints" if folder is not None else None
        self.comm = comm

    def load(self, level: int, signature: str) -> dict | None:
        if self.dir is None:
            return None
        row = None
        if self.comm.rank == 0:
            path = self.dir / f"level_{level}.json"
            try:
                saved = json.loads(path.read_text("utf-8"))
                if (saved.get("schema") == CHECKPOINT_SCHEMA
                        and saved.get("signature") == signature):
                    row = saved["row"]
            except (OSError, ValueError, KeyError):
                row = None
        return self.comm.bcast(row, root=0)

    def save(self, level: int, signature: str, row: dict) -> None:
        if self.dir is None or self.comm.rank != 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(jsonable({"schema": CHECKPOINT_SCHEMA, "signature": signature,
                                     "row": row}), indent=1, allow_nan=False)
        atomic_write(self.dir / f"level_{level}.json", text)

    def npz(self, level: int) -> Path | None:
        return None if self.dir is None else self.dir / f"level_{level}.npz"

    def save_solution(self, level: int, sol: Solution) -> None:
        """The report-time solution (``u`` and, when different, ``s``) as global dof
        ``coords`` and values (rank-independent: any number of ranks can read it back)."""
        path = self.npz(level)
        if path is None:
            return
        V = sol.u.function_space
        n = V.dofmap.index_map.size_local
        d = V.mesh.geometry.dim
        coords = V.tabulate_dof_coordinates()[:n, :d]
        mine = (coords, sol.u.x.array[:n].copy(), sol.s.x.array[:n].copy())
        parts = self.comm.gather(mine, root=0)
        if self.comm.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.stem}.tmp-{os.getpid()}.npz"
            np.savez(tmp, coords=np.concatenate([p[0] for p in parts]),
                     values=np.concatenate([p[1] for p in parts]),
                     score_values=np.concatenate([p[2] for p in parts]))
            os.replace(tmp, path)
        self.comm.barrier()

    def load_solution(self, level: int, problem, row: dict) -> Solution:
        """The level's :class:`Solution` on ``problem.V``, filled from its ``.npz`` by
        matching dof coordinates."""
        from scipy.spatial import cKDTree

        from bridgesolve._dolfinx import fem

        V = problem.V
        path = self.npz(level)
        assert path is not None, "load_solution needs a study folder"
        saved = np.load(path)
        d = V.mesh.geometry.dim
        dist, idx = cKDTree(saved["coords"]).query(V.tabulate_dof_coordinates()[:, :d])
        scale = float(np.max(np.abs(saved["coords"]))) or 1.0
        bad = int(np.sum(dist > 1e-8 * scale))
        if self.comm.allreduce(bad) or saved["values"].size != _global_size(V):
            raise BridgesolveInputError(
                f"checkpoint {self.npz(level)} does not match the mesh of level {level}; "
                "rerun without resume")
        u, s = fem.Function(V), fem.Function(V)
        u.x.array[:] = saved["values"][idx]
        s.x.array[:] = saved["score_values"][idx]
        return Solution(problem, u, row.get("representation", "linear"), s,
                         row.get("score_representation", "linear"), row.get("values", {}))


def _global_size(V) -> int:
    return V.dofmap.index_map.size_global * V.dofmap.index_map_bs


__all__ = ["CHECKPOINT_SCHEMA", "Checkpoints"]
