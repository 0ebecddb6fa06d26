"""Shared fixtures: MPI-safe temporary folders and the standard 2D mixture."""

from __future__ import annotations

import gc
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _collective_garbage_collection():
    """Collect garbage after every test on all ranks at once: PETSc objects are destroyed
    collectively, and a collector running at rank-dependent moments can deadlock MPI."""
    yield
    gc.collect()


@pytest.fixture
def comm():
    from bridgesolve._dolfinx import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def mpi_tmp_path(comm):
    """A temporary folder shared by all ranks (rank 0 creates it, then a barrier)."""
    path = tempfile.mkdtemp(prefix="bridgesolve-") if comm.rank == 0 else None
    path = Path(comm.bcast(path, root=0))
    comm.barrier()
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mixture2d():
    import bridgesolve as bs

    return bs.GaussianMixture(
        [0.5, 0.5],
        [[-1.5, -1.0], [1.5, 1.0]],
        [[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]],
    )


@pytest.fixture
def mixture1d():
    import bridgesolve as bs

    return bs.GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [0.3, 0.5])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
