"""Smoke-size run of ``benchmarks/density_speed.py`` (no timing asserted): every case
runs, the accuracy columns are at round-off against the peers and brute force, and the
numbers file holds a verdict per target."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import density_speed as bench  # noqa: E402


def test_quick_run_is_accurate_and_writes_its_numbers(tmp_path, capsys):
    assert bench.main(["--quick", "--quiet", "--out", str(tmp_path)]) == 0
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    rows = numbers["rows"]
    assert {r["case"].split(" ")[0] for r in rows} == {"two_moons", "checkerboard", "image",
                                                       "kde"}
    for r in rows:
        assert r["time_s"] > 0
        for key, value in r["accuracy"].items():
            if key.startswith("brute_") or key == "quadrature_error_max":
                continue
            assert value < 1e-11, (r["case"], r["t"], key, value)
    assert len(numbers["verdicts"]) == sum("target_s" in r for r in rows)
    assert "| case | t |" in capsys.readouterr().out
