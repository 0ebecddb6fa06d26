"""Smoke-size run of ``benchmarks/kernel_bridge.py`` (``--quick``; no timing asserted): the
kernel bridge reaches L1 ≤ 1e-8 at T/2 against the closed form, the shared post-processing
of potentials reproduces ``KernelBridge.on_grid``, and the installed peers (POT dense, and
OTT-JAX's ``Grid``) reach the same accuracy through the same post-processing. That last
check also tests the conversion of their scalings to ``φ̂_0, φ_T``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import kernel_bridge as bench  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernel_bench") / "kernel_bridge.json"
    assert bench.main(["--quick", "--quiet", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _rows(results):
    (case,) = results["cases"]
    assert case["case"] == "2d"
    return {r["solver"]: r for r in case["rows"]}


def test_kernel_bridge_reaches_the_target(quick):
    row = _rows(quick)["bridgesolve kernel_bridge"]
    assert row["reached_target"] and row["L1"] <= 1e-8, row
    assert row["own_L1"] <= 1e-8
    assert row["converged"] and row["grid"] == [33, 33]  # the requested grid, exactly
    # the post-processing the peers get is bridgesolve's own marginal (measured 1.5e-14)
    assert row["post_vs_own_L1"] < 1e-12
    assert row["cost_rel_error"] < 1e-8
    assert row["ratio_vs_bridgesolve"] == 1.0


def test_pot_dense_reaches_the_target_through_the_shared_post_processing(quick):
    pytest.importorskip("ot")
    rows = _rows(quick)
    for name in ("POT dense sinkhorn", "POT dense sinkhorn_log"):
        assert rows[name]["L1"] <= 1e-8 and rows[name]["ratio_vs_bridgesolve"] > 0, rows[name]


def test_ott_grid_reaches_the_target_through_the_shared_post_processing(quick):
    pytest.importorskip("ott")
    rows = _rows(quick)
    for name in ("OTT-JAX Grid log domain", "OTT-JAX Grid scalings"):
        assert rows[name]["L1"] <= 1e-8 and rows[name]["converged"], rows[name]
        assert rows[name]["first_call_s"] > 0  # the jit warm-up, reported apart


def test_pot_has_no_two_marginal_convolutional_sinkhorn(quick):
    """The skip note stays true as long as POT's convolutional code is barycenters only."""
    ot = pytest.importorskip("ot")
    conv = [n for n in dir(ot.bregman) if "convol" in n and not n.startswith("_")]
    assert conv and all("barycenter" in n for n in conv), conv
    (case,) = quick["cases"]
    assert any("convolutional" in s["solver"] for s in case["skipped"])
