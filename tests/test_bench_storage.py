"""Smoke-size run of ``benchmarks/field_storage.py`` (no timing asserted): the child solve
runs with memory and disk storage in the same process here, gives the same bits, reports
the storage it used, and its peak-RSS field is a number the table can print."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import field_storage as bench  # noqa: E402


def test_benchmark_child_reports_same_bits_on_disk(tmp_path):
    mem = bench.child(8, 4, "memory", None)
    disk = bench.child(8, 4, "disk", str(tmp_path))
    assert (mem["storage"], disk["storage"]) == ("memory", "disk")
    assert mem["sha256"] == disk["sha256"]
    assert mem["field_bytes"] == disk["field_bytes"] == 5 * 81 * 8
    assert disk["peak_rss"] > 0 and disk["linear_solver"] != "?"
    assert list(tmp_path.iterdir()) == []
