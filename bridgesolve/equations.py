r"""The equations bridgesolve solves: one record each, the only table of them.

Each :class:`Equation` says which solver runs it, which config section holds its data,
what its field is called (file stem, symbol, plot label), the time its errors are reported
at, and its closed-form solution when the data allow one. The config reader, the command
line and the convergence studies all read :data:`EQUATIONS` (NumPy only: no DOLFINx).

Closed forms (DESIGN.md §2): a linear SDE keeps a Gaussian mixture a Gaussian mixture, so

- Fokker–Planck: :math:`p(\cdot, t) = e^{V t}\,\rho_0 \ast (\text{transition})`;
- HJB forward: :math:`\hat S = \log p`;
- Kolmogorov: :math:`\varphi(\cdot, t) = e^{V (T - t)} E[\varphi_T(X_T) \mid X_t = x]`;
- HJB: :math:`S = \log\varphi`;

with a constant killing rate :math:`V` (none: :math:`V = 0`). The Schrödinger bridge between
single Gaussians under a Brownian reference has Gaussian marginals and a closed-form KL cost
(:func:`bridgesolve.densities.gaussian_bridge`, :func:`~bridgesolve.densities.
gaussian_bridge_cost`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridgesolve.densities import (
    GaussianMixture,
    gaussian_bridge,
    gaussian_bridge_cost,
    is_probability_density,
)
from bridgesolve.process import Brownian, Process

#: ``t -> (points (N, d) -> values (N,))``: a field known in closed form at every time.
Exact = Callable[[float], Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class Equation:
    """What bridgesolve knows about one equation.

    Attributes:
        name: the config's ``[problem] equation`` value.
        solver: the name of the solver in ``bridgesolve`` (``solve_fokker_planck``).
        data_section: the config section holding its data: ``initial`` (t = 0) or
            ``terminal`` (t = T). A bridge's ρ0 is in ``initial``, its ρ1 in ``final``.
        field: the solution's name: file stem of its outputs and its quantity prefix.
        symbol: the symbol in error norms (``‖p_h − p‖``).
        label: the label of its figures.
        forward: whether the data sit at t = 0 (the solver marches forward in time).
    """

    name: str
    solver: str
    data_section: str
    field: str
    symbol: str
    label: str
    forward: bool

    def report_time(self, T: float) -> float:
        """Where its errors are reported: where the solver ends (T forward, 0 backward), or
        the mid-point marginal T/2 of a bridge."""
        if self.name == "bridge":
            return 0.5 * T
        return T if self.forward else 0.0

    def exact(self, process: Process, data, *, T: float, killing=None,
              final=None) -> Exact | None:
        """``t -> (points -> values)`` of the exact solution, or None when there is none.

        Args:
            process: the reference process.
            data: ρ0 (forward equations, bridges) or φ_T (backward ones).
            T: the horizon.
            killing: None, a constant rate, or a callable (no closed form).
            final: a bridge's ρ1.
        """
        if self.name == "bridge":
            marginals = exact_bridge_marginals(process, data, final, T=T, killing=killing)
            return None if marginals is None else (lambda t: marginals(t).pdf)
        if not process.linear or not (killing is None or isinstance(killing, float)):
            return None
        V = killing or 0.0
        if self.name == "fokker-planck" and is_probability_density(data):
            return lambda t: (lambda x: math.exp(V * t) * data.evolve(process, t).pdf(x))
        if self.name == "hjb-forward" and is_probability_density(data):
            return lambda t: (lambda x: V * t + data.evolve(process, t).log_pdf(x))
        if self.name == "kolmogorov":
            return lambda t: (lambda x: math.exp(V * (T - t))
                              * data.backward_expectation(process, t, T).pdf(x))
        if self.name == "hjb":
            return lambda t: (lambda x: V * (T - t)
                              + data.backward_expectation(process, t, T).log_pdf(x))
        return None


def _single_gaussians(*laws) -> bool:
    return all(isinstance(law, GaussianMixture) and law.n_components == 1 for law in laws)


def exact_bridge_marginals(process: Process, rho0, rho1, *, T: float,
                           killing=None) -> Callable[[float], GaussianMixture] | None:
    """``t -> GaussianMixture`` of the exact bridge marginals, or None.

    Closed form (:func:`bridgesolve.densities.gaussian_bridge`) between single Gaussians
    under a Brownian reference without killing.
    """
    if killing is not None or not isinstance(process, Brownian) or not _single_gaussians(
            rho0, rho1):
        return None
    return gaussian_bridge(rho0.means[0], rho0.covs[0], rho1.means[0], rho1.covs[0],
                           process.sigma, T)


def exact_bridge_cost(process: Process, rho0, rho1, *, T: float,
                      killing=None) -> float | None:
    """``KL(P* ‖ R_ρ0)`` of the exact bridge when :func:`exact_bridge_marginals` has one."""
    marginals = exact_bridge_marginals(process, rho0, rho1, T=T, killing=killing)
    if marginals is None or not isinstance(process, Brownian):
        return None
    return gaussian_bridge_cost(rho0.means[0], rho0.covs[0], rho1.means[0], rho1.covs[0],
                                process.sigma, T)


#: Equation name -> its record, in the order of the documentation.
EQUATIONS: dict[str, Equation] = {eq.name: eq for eq in (
    Equation("fokker-planck", "solve_fokker_planck", "initial", "density", "p", "p",
             forward=True),
    Equation("kolmogorov", "solve_kolmogorov", "terminal", "phi", "φ", "φ", forward=False),
    Equation("hjb", "solve_hjb", "terminal", "S", "S", "S = log φ", forward=False),
    Equation("hjb-forward", "solve_hjb_forward", "initial", "S_hat", "Ŝ", "Ŝ = log φ̂",
             forward=True),
    Equation("bridge", "solve_bridge", "initial", "rho", "ρ", "ρ_t = φ φ̂", forward=True),
)}


def equation(name: str) -> Equation:
    """The record of ``name`` (a KeyError names the known equations)."""
    try:
        return EQUATIONS[name]
    except KeyError:
        raise KeyError(f"unknown equation {name!r} (known: {', '.join(EQUATIONS)})") from None


__all__ = ["EQUATIONS", "Equation", "Exact", "equation", "exact_bridge_cost",
           "exact_bridge_marginals"]
