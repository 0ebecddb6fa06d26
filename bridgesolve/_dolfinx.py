"""The single import site of DOLFINx, PETSc, MPI and UFL.

Every module that needs the finite-element stack imports it from here, so that the
``dolfinx-solver-real`` wheel (which must be imported before ``dolfinx`` and ``petsc4py``)
is handled in one place and a missing or too old DOLFINx fails with one clear message.
"""

from __future__ import annotations

import importlib.util

MIN_DOLFINX = (0, 10)

if importlib.util.find_spec("dolfinx_solver") is not None:
    # The PyPI wheel bundles PETSc/MPICH; it sets up library paths on import.
    import dolfinx_solver  # noqa: F401

try:
    import dolfinx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "bridgesolve's PDE solvers need DOLFINx >= 0.10. Install it with "
        "`pip install 'bridgesolve[dolfinx]'` (the dolfinx-solver-real wheel), or use conda "
        "(`conda install -c conda-forge fenics-dolfinx`) or the dolfinx/dolfinx Docker image."
    ) from exc


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


if _version_tuple(dolfinx.__version__) < MIN_DOLFINX:  # pragma: no cover
    raise ImportError(
        f"bridgesolve needs DOLFINx >= {MIN_DOLFINX[0]}.{MIN_DOLFINX[1]}, "
        f"found {dolfinx.__version__}"
    )

import basix  # noqa: E402
import dolfinx.fem.petsc  # noqa: E402
import dolfinx.geometry  # noqa: E402
import dolfinx.io  # noqa: E402
import dolfinx.mesh  # noqa: E402
import ufl  # noqa: E402
from dolfinx import fem  # noqa: E402
from mpi4py import MPI  # noqa: E402
from petsc4py import PETSc  # noqa: E402

if __import__("numpy").dtype(PETSc.ScalarType).kind == "c":  # pragma: no cover
    raise ImportError("bridgesolve needs a real-scalar PETSc build; found complex scalars")


def versions() -> dict[str, str]:
    """Versions of the numerical stack, for summaries and bundles."""
    import numpy

    return {
        "dolfinx": dolfinx.__version__,
        "basix": basix.__version__,
        "ufl": ufl.__version__,
        "petsc": ".".join(str(v) for v in PETSc.Sys.getVersion()),
        "numpy": numpy.__version__,
        "mpi_size": str(MPI.COMM_WORLD.size),
    }


__all__ = ["MPI", "PETSc", "basix", "dolfinx", "fem", "ufl", "versions"]
