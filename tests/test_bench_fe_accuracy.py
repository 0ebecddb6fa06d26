"""Smoke-size run of ``benchmarks/fe_accuracy.py`` (``--quick``; no timing asserted): every
P × scheme row solves, the errors against the closed form fall with the mesh, the kernel
row (exact in time) and the Richardson row (fourth order in time) agree on the same mesh
(both at that mesh's space error), and the figure and numbers.json are
written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("bridgesolve._dolfinx")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import fe_accuracy as bench  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("fe_bench")
    assert bench.main(["--quick", "--quiet", "--out", str(out)]) == 0
    assert (out / "fe_accuracy.png").stat().st_size > 0
    return json.loads((out / "numbers.json").read_text())


def test_every_row_solves_and_converges_with_the_mesh(quick):
    (case,) = quick["cases"]
    rows = case["rows"]
    assert {(r["P"], r["scheme"]) for r in rows} == {
        (p, s) for p in (1, 2) for s in ("be", "cn", "cn+r", "kernel")}
    for r in rows:
        assert r["L1"] is not None and r["L1"] < 0.1, r
    for p in (1, 2):
        for s in ("be", "cn", "cn+r"):
            coarse, fine = (r["L1"] for r in rows if r["P"] == p and r["scheme"] == s)
            assert fine < 0.5 * coarse, (p, s, coarse, fine)  # measured 0.2-0.4


def test_richardson_row_meets_the_kernel_row(quick):
    """The kernel is exact in time; CN + Richardson's time error lies far below the space
    error of these meshes, so both measure the same space error (measured: 8.06e-3 and
    8.06e-3 on P1 64, 2.087e-3 and 2.088e-3 on P2 32; plain CN is 3-30 % off)."""
    (case,) = quick["cases"]
    for r in (r for r in case["rows"] if r["scheme"] == "kernel"):
        (rich,) = [q["L1"] for q in case["rows"] if q["P"] == r["P"]
                   and q["cells"] == r["cells"] and q["scheme"] == "cn+r"]
        assert abs(rich - r["L1"]) < 0.02 * r["L1"], (r, rich)
