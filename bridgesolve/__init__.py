"""bridgesolve: finite-element ground truth for diffusion models and Schrödinger bridges.

The PDE side needs DOLFINx; it is imported lazily so that the NumPy-only parts
(densities, processes, time grids, reference bundles) work on hosts without it.
"""

from __future__ import annotations

from importlib import import_module

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities import GaussianMixture, gaussian_bridge, gaussian_bridge_cost
from bridgesolve.process import OU, VE, VP, Brownian, Cosine, Custom, Process, SubVP, Tabulated
from bridgesolve.timegrid import TimeGrid

__version__ = "0.1.0"

_LAZY = {
    "Domain": "bridgesolve.domain",
    "Problem": "bridgesolve.problem",
    "SpaceTimeField": "bridgesolve.spacetime",
    "solve_fokker_planck": "bridgesolve.pde.fokker_planck",
    "solve_kolmogorov": "bridgesolve.pde.kolmogorov",
    "solve_hjb": "bridgesolve.pde.hjb",
    "solve_hjb_forward": "bridgesolve.pde.hjb",
    "extrapolated": "bridgesolve.pde",
    "solve_bridge": "bridgesolve.bridge",
    "Bridge": "bridgesolve.bridge",
    "BridgeError": "bridgesolve.bridge",
    "ReferenceBundle": "bridgesolve.reference",
    "VectorField": "bridgesolve.score",
    "grad_log": "bridgesolve.score",
    "drift_field": "bridgesolve.score",
    "generated_density": "bridgesolve.likelihood",
    "sample": "bridgesolve.sampling",
    "convergence_study": "bridgesolve.studies",
    "entropy_production": "bridgesolve.thermo",
    "effective_potential": "bridgesolve.thermo",
    "speciation_time": "bridgesolve.thermo",
    "bimodality_time": "bridgesolve.thermo",
    "path_entropies": "bridgesolve.thermo",
    "franz_parisi": "bridgesolve.thermo",
    "phase_diagram": "bridgesolve.thermo",
    "SymmetricTwoGaussianOU": "bridgesolve.thermo",
    "nll": "bridgesolve.likelihood",
    "wkb_coefficient": "bridgesolve.likelihood",
    "control_action": "bridgesolve.action",
    "ActionResult": "bridgesolve.action",
    "kernel_bridge": "bridgesolve.kernel",
    "kernel_fokker_planck": "bridgesolve.kernel",
    "kernel": "bridgesolve.kernel",  # the exact-kernel path (a subpackage)
    "learn": "bridgesolve.learn",  # a subpackage (PyTorch, imported when first used)
}


def __getattr__(name: str):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return module if _LAZY[name] == f"{__name__}.{name}" else getattr(module, name)
    raise AttributeError(f"module 'bridgesolve' has no attribute {name!r}")


# Every name the package serves (eager and lazy), except subpackages (``learn``: a star
# import must not pull in PyTorch). tests/test_architecture.py keeps the two lists in step.
__all__ = [
    "OU", "VE", "VP", "Brownian", "BridgesolveInputError", "Cosine", "Custom", "Domain",
    "GaussianMixture", "Problem", "Process", "SpaceTimeField", "SubVP", "Tabulated", "TimeGrid",
    "solve_fokker_planck", "solve_hjb", "solve_hjb_forward", "solve_kolmogorov",
    "Bridge", "BridgeError", "gaussian_bridge", "gaussian_bridge_cost", "solve_bridge",
    "ReferenceBundle", "VectorField", "grad_log", "drift_field", "generated_density",
    "sample", "convergence_study",
    "entropy_production", "effective_potential", "speciation_time", "bimodality_time",
    "path_entropies", "franz_parisi", "phase_diagram", "SymmetricTwoGaussianOU",
    "nll", "wkb_coefficient", "control_action", "ActionResult",
    "kernel_bridge", "kernel_fokker_planck", "extrapolated",
]
