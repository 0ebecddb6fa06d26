"""Bad inputs under MPI: every rank stops with the same error, none waits forever.

The ``mpi`` rows run serially and again under ``mpiexec -n 2`` (``make test-mpi``). Their
bad values are rank-dependent on purpose (NaN only right of 0, a file read on rank 0 only):
a check that raised on one rank alone would leave the other waiting in a collective call.
``test_cli_under_mpiexec`` runs the command under ``mpiexec -n 2`` itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve._dolfinx import MPI

G1 = bs.GaussianMixture([1.0], [[0.0]], [0.25])


def _problem(T=0.2, steps=4, cells=40, **kw):
    return bs.Problem(bs.Domain.interval(-5, 5, cells), bs.OU(), bs.TimeGrid.uniform(T, steps),
                      **kw)


def _fp(rho0, **kw):
    return lambda tmp: bs.solve_fokker_planck(_problem(), rho0, progress=False, **kw)


def _write(tmp: Path) -> None:
    if MPI.COMM_WORLD.rank == 0:
        (tmp / "garbage.msh").write_bytes(b"this is not a mesh\n\x00\x01garbage")
        (tmp / "garbage.geo").write_text("Point(1) = {0, 0, 0;\n")
        (tmp / "trunc.msh").write_text("$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Nodes\n1 9\n")
        (tmp / "points.geo").write_text("Point(1) = {0, 0, 0, 0.1};\n")
    MPI.COMM_WORLD.barrier()


def _drift_nan_right(tmp):
    from bridgesolve.score import drift_field, grad_log

    proc = bs.Custom(lambda x: -x, g=1.0,
                     drift_numpy=lambda x: np.where(x > 0, np.nan, -x))
    p = bs.solve_fokker_planck(bs.Problem(bs.Domain.interval(-5, 5, 40), proc,
                                          bs.TimeGrid.uniform(0.2, 2)), G1, progress=False)
    field = drift_field(proc, [(1.0, grad_log(p))])
    last = MPI.COMM_WORLD.rank == MPI.COMM_WORLD.size - 1
    x = np.array([[1.0]]) if last else np.array([[-1.0]])  # NaN on the last rank only
    return field.evaluate(x, 0.1)


def _error_nan_right(tmp):
    p = bs.solve_fokker_planck(_problem(), G1, progress=False)
    return p.error(lambda x: np.where(x[:, 0] > 0, np.nan, 0.0), 0.2)


ROWS = [
    ("killing-nan-right-half", _fp(G1, killing=lambda x: np.where(x[:, 0] > 0, np.nan, -1.0)),
     "refuse", r"killing V\(x\) returned NaN"),
    ("killing-t-nan-right-half",
     _fp(G1, killing=lambda x, t: np.where((x[:, 0] > 0) & (t > 0.1), np.nan, -1.0)),
     "refuse", r"killing V\(x, t\) at t = .* returned NaN"),
    ("rho0-negative-left", _fp(lambda x: np.where(x[:, 0] < -2, -1.0, 1.0)), "refuse",
     r"rho0 returned negative values"),
    ("rho0-shape-right", _fp(lambda x: np.ones((x.shape[0], 2)) if x[:, 0].max() > 4.9
                             else np.ones(x.shape[0])), "refuse", r"rho0 returned shape"),
    ("phiT-inf-right", lambda tmp: bs.solve_kolmogorov(
        _problem(), lambda x: np.where(x[:, 0] > 3, np.inf, 1.0), progress=False), "refuse",
     r"phi_T returned infinite values"),
    ("fp-mass-outside", _fp(bs.GaussianMixture([1.0], [[8.0]], [0.25])), "refuse",
     r"inside the domain \[-5, 5\]"),
    ("fp-partly-outside", _fp(bs.GaussianMixture([1.0], [[4.2]], [0.25])), "warn",
     r"outside the domain"),
    ("creation-singular", _fp(G1, killing=40.0), "refuse", r"creation rate"),
    ("box-too-large", lambda tmp: bs.Domain.box([0, 0], [1, 1], (200000, 200000)), "refuse",
     r"needs at least"),
    ("problem-too-many-steps", lambda tmp: _problem(steps=10**7, cells=100000, degree=2),
     "refuse", r"needs at least"),
    ("msh-garbage-rank0", lambda tmp: bs.Domain.from_gmsh(tmp / "garbage.msh"), "refuse",
     r"garbage\.msh' is not a gmsh mesh"),
    ("msh-truncated-rank0", lambda tmp: bs.Domain.from_gmsh(tmp / "trunc.msh"), "refuse",
     r"trunc\.msh'"),
    ("geo-syntax-rank0", lambda tmp: bs.Domain.from_gmsh(tmp / "garbage.geo"), "refuse",
     r"garbage\.geo' cannot be read by gmsh"),
    ("geo-points-only-rank0", lambda tmp: bs.Domain.from_gmsh(tmp / "points.geo"), "refuse",
     r"points\.geo' holds no geometry or mesh"),
    ("drift-nan-rank1-points", _drift_nan_right, "refuse", r"drift f\(x, t\).*NaN"),
    ("error-exact-nan-right", _error_nan_right, "refuse", r"exact returned NaN"),
]


@pytest.mark.mpi
@pytest.mark.parametrize("name,fn,outcome,pattern", ROWS, ids=[r[0] for r in ROWS])
def test_row_on_every_rank(name, fn, outcome, pattern, mpi_tmp_path):
    _write(mpi_tmp_path)
    comm = MPI.COMM_WORLD
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if outcome == "refuse":
            with pytest.raises(bs.BridgesolveInputError) as exc:
                fn(mpi_tmp_path)
            msg = str(exc.value)
            assert "\n" not in msg, msg
            assert re.search(pattern, msg), f"{pattern!r} not in {msg!r}"
            # the same message on every rank
            assert len(set(comm.allgather(msg))) == 1
            return
        result = fn(mpi_tmp_path)
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any(re.search(pattern, t) for t in texts), texts
    assert result.info["warnings"] and len(set(comm.allgather(tuple(result.info["warnings"])))) == 1


# -- the command under mpiexec -n 2 ----------------------------------------------------------
MPIEXEC = Path(sys.executable).parent / "mpiexec"
BAD_CONFIGS = {
    "mass-outside": """
[domain]
type = "interval"
lower = [-5.0]
upper = [5.0]
cells = [40]
[process]
type = "OU"
[initial]
type = "gaussian_mixture"
weights = [1.0]
means = [[8.0]]
covs = [0.25]
[time]
T = 0.2
steps = 4
[output]
plot_times = [0.0, 0.2]
""",
    "garbage-mesh": """
[domain]
type = "gmsh"
path = "garbage.msh"
[process]
type = "OU"
[initial]
type = "gaussian_mixture"
weights = [1.0]
means = [[0.0, 0.0]]
covs = [0.25]
[time]
T = 0.2
steps = 4
[output]
plot_times = [0.0, 0.2]
""",
    "creation-singular": """
[domain]
type = "interval"
lower = [-5.0]
upper = [5.0]
cells = [40]
[process]
type = "OU"
[initial]
type = "gaussian_mixture"
weights = [1.0]
means = [[0.0]]
covs = [0.25]
[killing]
constant = 40.0
[time]
T = 1.0
steps = 4
[output]
plot_times = [0.0, 1.0]
""",
}
PATTERNS = {"mass-outside": r"inside the domain", "garbage-mesh": r"garbage\.msh",
            "creation-singular": r"creation rate V = 40"}


@pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="starts mpiexec itself")
@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_cli_under_mpiexec(name, tmp_path):
    (tmp_path / "garbage.msh").write_bytes(b"this is not a mesh\n\x00\x01garbage")
    (tmp_path / "bad.toml").write_text(BAD_CONFIGS[name])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "agg"}
    proc = subprocess.run(
        [str(MPIEXEC), "-n", "2", str(Path(sys.executable).parent / "bridgesolve"), "run",
         "bad.toml", "-o", str(tmp_path / "out"), "--quiet", "--no-vtx"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("bridgesolve: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert re.search(PATTERNS[name], errors[0]), errors[0]
    assert not (tmp_path / "out").exists()
