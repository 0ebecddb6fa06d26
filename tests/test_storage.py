"""Fields on disk (issue 24): the same bits as in memory, resident memory that does not grow
with the number of levels, no files left behind, and bad options refused up front."""

from __future__ import annotations

import gc
import os
import tempfile
import tracemalloc
import warnings

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve import storage
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.config import ConfigError, validate

MIX2 = bs.GaussianMixture([0.5, 0.5], [[-1.5, -1.0], [1.5, 1.0]], [0.4, 0.3])
PHI2 = bs.GaussianMixture([0.6, 0.4], [[0.5, 0.0], [-1.0, 0.5]], [0.4, 0.3])


def _problem(comm, st: str, folder=None, *, steps: int = 12, cells: int = 16, **kw):
    dom = bs.Domain.box([-4.0, -4.0], [4.0, 4.0], (cells, cells), comm=comm)
    if folder is not None:
        kw["storage_dir"] = folder
    return bs.Problem(dom, bs.OU(), bs.TimeGrid.uniform(0.6, steps), storage=st, **kw)


def _leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("bridgesolve-"))


@pytest.mark.mpi
def test_fokker_planck_kolmogorov_and_hjb_on_disk_are_the_bits_in_memory(comm, mpi_tmp_path):
    pts = np.array([[0.3, -0.2], [1.1, 0.7]])
    out = {}
    for st in ("memory", "disk"):
        prob = _problem(comm, st, mpi_tmp_path if st == "disk" else None)
        assert prob.storage.kind == st
        assert prob.describe()["discretization"]["storage"] == st
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # mass outside the box
            p = bs.solve_fokker_planck(prob, MIX2, progress=False)
            phi = bs.solve_kolmogorov(prob, PHI2, progress=False)
            S = bs.solve_hjb(prob, lambda x: -0.5 * np.sum(x**2, axis=1), progress=False)
        for field in (p, phi, S):
            assert field.storage == st
            assert f"storage={st}" in repr(field)
            assert isinstance(field.values, np.memmap) == (st == "disk")
        assert p.info["storage"] == phi.info["storage"] == st
        out[st] = (p.values.copy(), phi.values.copy(), S.values.copy(), p.info["mass"],
                   p.evaluate(pts, 0.45),
                   np.array([p.error(MIX2, 0.0), phi.error(PHI2, 0.6, norm="L1")]),
                   bs.grad_log(p).evaluate(pts, 0.3), p.integral())
        # the files are unlinked as soon as they are mapped: nothing to clean up, ever
        assert _leftovers(mpi_tmp_path) == []
        del p, phi, S
        gc.collect()
    for i, (a, b) in enumerate(zip(out["memory"], out["disk"], strict=True)):
        assert np.array_equal(a, b), i
    assert _leftovers(mpi_tmp_path) == []


@pytest.mark.mpi
def test_extrapolated_fields_on_disk_are_the_bits_in_memory(comm, mpi_tmp_path):
    """Richardson's combination of the Δt and Δt/2 solves stays in the problem's storage
    (level by level on disk), with the same values and the same change it reports."""
    out = {}
    for st in ("memory", "disk"):
        prob = _problem(comm, st, mpi_tmp_path if st == "disk" else None, cells=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # mass outside the box
            p = bs.extrapolated(bs.solve_fokker_planck, prob, MIX2, progress=False)
        assert isinstance(p.values, np.memmap) == (st == "disk") and p.storage == st
        out[st] = (p.values.copy(), p.info["richardson"]["max_change"])
        del p
        gc.collect()
    assert np.array_equal(out["memory"][0], out["disk"][0])
    assert out["memory"][1] == out["disk"][1] > 0.0
    assert _leftovers(mpi_tmp_path) == []


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["linear", "log"])
def test_bridge_on_disk_is_the_bridge_in_memory(comm, mpi_tmp_path, mode):
    rho0 = bs.GaussianMixture([1.0], [[-1.0]], [0.2])
    rho1 = bs.GaussianMixture([0.5, 0.5], [[0.8], [1.6]], [0.1, 0.1])
    out = {}
    for st in ("memory", "disk"):
        dom = bs.Domain.interval(-4.0, 4.0, 60, comm=comm)
        kw = {"storage_dir": mpi_tmp_path} if st == "disk" else {}
        prob = bs.Problem(dom, bs.Brownian(sigma=0.7), bs.TimeGrid.uniform(1.0, 16),
                          storage=st, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # linear mode: coarse here
            b = bs.solve_bridge(prob, rho0, rho1, mode=mode, progress=False, tol=1e-8)
        assert b.converged
        for field in (b.log_phi, b.log_phi_hat, b.rho, b.phi, b.log_rho):
            assert field.storage == st, field
        out[st] = (b.iterations, b.log_phi.values.copy(), b.log_phi_hat.values.copy(),
                   b.rho.values.copy(), b.rho.integral(),
                   b.score().evaluate(np.array([[0.3], [1.2]]), 0.5), b.info["mass"])
    for i, (a, c) in enumerate(zip(out["memory"], out["disk"], strict=True)):
        assert np.array_equal(a, c), i
    assert _leftovers(mpi_tmp_path) == []


def _traced_peak(comm, st, folder, steps) -> int:
    prob = _problem(comm, st, folder, steps=steps, cells=24)
    gc.collect()
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            field = bs.solve_fokker_planck(prob, MIX2, progress=False, check_mass=False)
        field.integral()
        field.evaluate(np.zeros((1, 2)), 0.3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert field.storage == st
    return peak


@pytest.mark.mpi
def test_memory_on_disk_does_not_grow_with_levels(comm, mpi_tmp_path):
    """The numpy allocations (tracemalloc) of a solve grow by ``levels × dofs × 8`` in
    memory and by about nothing on disk."""
    _traced_peak(comm, "disk", mpi_tmp_path, 4)  # compile the forms first
    few, many = 10, 130
    prob = _problem(comm, "memory", steps=few, cells=24)
    n_local = prob.levels(name="probe", count=1).shape[1]
    extra = (many - few) * n_local * 8  # what the additional levels take in memory
    grow_mem = _traced_peak(comm, "memory", None, many) - _traced_peak(comm, "memory", None, few)
    grow_disk = (_traced_peak(comm, "disk", mpi_tmp_path, many)
                 - _traced_peak(comm, "disk", mpi_tmp_path, few))
    print(f"traced growth for {many - few} levels: memory {grow_mem} B, disk {grow_disk} B, "
          f"levels {extra} B")
    assert grow_mem > 0.9 * extra, (grow_mem, extra)  # the measure sees the levels
    assert grow_disk < 0.1 * extra, (grow_disk, extra)


def test_auto_chooses_disk_beyond_the_budget(tmp_path):
    small = _problem(None, "auto", tmp_path, memory_budget="1 KiB")
    assert small.storage.kind == "disk" and small.storage.requested == "auto"
    assert small.describe()["discretization"]["storage"] == "disk"
    assert small.describe()["discretization"]["storage_requested"] == "auto"
    assert "fields on disk" in repr(small)
    assert "budget 1 KiB" in repr(small.storage)
    large = _problem(None, "auto", tmp_path, memory_budget=2**40)
    assert large.storage.kind == "memory"
    default = _problem(None, "auto")  # a small problem stays where it always was
    assert default.storage.kind == "memory"
    assert default.storage_options()["storage"] == "auto"


def test_temporary_folder_is_the_default_and_stays_empty(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    prob = _problem(None, "disk")
    assert prob.storage.folder() == tmp_path
    arr = prob.levels(name="probe")
    arr[:] = 1.0
    assert storage.on_disk(arr) and _leftovers(tmp_path) == []
    assert float(arr.sum()) == arr.size


def test_bad_storage_options_are_refused_by_name(tmp_path):
    cases = [
        ({"storage": "ram"}, "storage = 'ram': expected one of 'auto', 'memory', 'disk'"),
        ({"storage": "memory", "storage_dir": tmp_path}, "storage_dir"),
        ({"storage": "disk", "memory_budget": "1 GiB"}, "memory_budget = '1 GiB'"),
        ({"storage": "auto", "memory_budget": "lots"}, "memory_budget = 'lots': expected"),
        ({"storage": "auto", "memory_budget": -5}, "memory_budget = -5"),
        ({"storage": "disk", "storage_dir": 3}, "storage_dir = 3"),
    ]
    for kw, text in cases:
        st = kw.pop("storage")
        with pytest.raises(BridgesolveInputError, match=None) as exc:
            _problem(None, st, **kw)
        assert text in str(exc.value), (text, str(exc.value))


def test_unwritable_folder_and_full_disk_fail_before_solving(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(BridgesolveInputError, match="a_file.*cannot create or write"):
        _problem(None, "disk", blocker / "levels")

    class Usage:
        free = 1000

    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: Usage)
    full = r"time levels .*needs at least .* on disk .*storage = .disk.* has 1000 B free"
    with pytest.raises(BridgesolveInputError, match=full):
        _problem(None, "disk", tmp_path)


def test_a_bridge_checks_room_for_its_fields(tmp_path, monkeypatch):
    prob = bs.Problem(bs.Domain.interval(-4.0, 4.0, 40), bs.Brownian(sigma=0.7),
                      bs.TimeGrid.uniform(1.0, 10), storage="disk", storage_dir=tmp_path)

    class Usage:
        free = 2 * prob.storage.field_bytes  # one field fits, a bridge's do not

    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: Usage)
    rho = bs.GaussianMixture([1.0], [[0.0]], [0.3])
    with pytest.raises(BridgesolveInputError, match=f"{storage.BRIDGE_FIELDS} field"):
        bs.solve_bridge(prob, rho, rho, progress=False)


def test_a_folder_in_memory_is_warned_about():
    shm = "/dev/shm"
    if not os.path.isdir(shm) or storage._filesystem_type(storage.Path(shm)) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    with pytest.warns(RuntimeWarning, match="tmpfs"):
        _problem(None, "disk", shm)


def test_parse_bytes():
    assert storage.parse_bytes("b", "4 GiB") == 4 * 2**30
    assert storage.parse_bytes("b", "500MB") == 5 * 10**8
    assert storage.parse_bytes("b", 1e9) == 10**9
    assert storage.parse_bytes("b", "2.5kib") == 2560
    for bad in ("4 GB RAM", "", True, None, 0, "0.1 B", float("inf")):
        with pytest.raises(BridgesolveInputError, match="expected a positive number"):
            storage.parse_bytes("b", bad)


def test_map_and_copy_keep_the_storage(tmp_path):
    disk = storage.disk_array((5, 7), tmp_path, name="x")
    disk[:] = np.arange(35.0).reshape(5, 7)
    for out in (storage.map_levels(np.exp, disk), storage.copy(disk),
                storage.map_rows(lambda r: r - r.max(), disk)):
        assert storage.on_disk(out)
    mem = np.asarray(disk).copy()
    assert np.array_equal(storage.map_levels(np.exp, disk), np.exp(mem))
    assert np.array_equal(storage.map_rows(lambda r: r - r.max(), disk),
                          mem - mem.max(axis=1, keepdims=True))
    assert not storage.on_disk(storage.map_levels(np.exp, mem))
    blocks = list(storage.level_blocks(disk, max_bytes=2 * 7 * 8))
    assert [(b.start, b.stop) for b in blocks] == [(0, 2), (2, 4), (4, 5)]
    assert _leftovers(tmp_path) == []


def _config(disc: dict) -> dict:
    return {"domain": {"type": "interval", "lower": -4.0, "upper": 4.0, "cells": 20},
            "process": {"type": "OU"}, "time": {"T": 0.5, "steps": 5},
            "initial": {"type": "gaussian_mixture", "weights": [1.0], "means": [[0.0]],
                        "covs": [0.5]},
            "discretization": disc}


def test_config_storage_keys(tmp_path):
    cfg = validate(_config({"storage": "disk", "storage_dir": str(tmp_path)}))
    problem, _, _ = cfg.build()
    assert problem.storage.kind == "disk" and problem.storage.folder() == tmp_path
    cfg = validate(_config({"storage": "auto", "memory_budget": "1 B"}))
    assert cfg.build()[0].storage.kind == "disk"
    for disc, text in [({"storage": "ram"}, "[discretization] storage = 'ram': expected one "
                        "of 'auto', 'memory', 'disk'"),
                       ({"storage": "disk", "memory_budget": "1 GiB"},
                        "[discretization] memory_budget = '1 GiB'"),
                       ({"memory_budget": "much"}, "memory_budget = 'much': expected"),
                       ({"storage": "memory", "storage_dir": "x"}, "storage_dir = 'x'"),
                       ({"storage_dir": " "}, "a non-empty folder path")]:
        with pytest.raises(ConfigError) as exc:
            validate(_config(disc))
        assert text in str(exc.value), (text, str(exc.value))
