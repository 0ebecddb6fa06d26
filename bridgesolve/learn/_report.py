"""What the validators' reports share (:class:`~bridgesolve.learn.ValidationReport`,
:class:`~bridgesolve.learn.BridgeReport`): ``report[key]``, ``to_json``, ``str`` as the
table, and the bundle's summary and its words in the table's first line. NumPy only."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bridgesolve._json import jsonable


class Report:
    """A mixin of a dataclass with a ``data: dict`` field (JSON-ready) and a ``table()``."""

    data: dict

    def __getitem__(self, key):
        return self.data[key]

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """``data`` as indented JSON (non-finite floats as null), also written to ``path``."""
        text = json.dumps(jsonable(self.data), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def table(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.table()


def bundle_summary(arr: dict, process) -> dict:
    """The bundle's ``dim``, ``n_points``, ``n_times``, ``T`` and ``process`` description."""
    return {"dim": arr["points"].shape[1], "n_points": arr["points"].shape[0],
            "n_times": int(arr["times"].size), "T": float(arr["times"][-1]),
            "process": process.describe()}


def bundle_words(summary: dict) -> str:
    """``"2D, 400 points, 21 times"`` of a :func:`bundle_summary`."""
    return f"{summary['dim']}D, {summary['n_points']} points, {summary['n_times']} times"


__all__ = ["Report", "bundle_summary", "bundle_words"]
