r"""Densities with closed forms: Gaussian mixtures and their exact evolution.

A mixture ``\sum_k w_k N(m_k, \Sigma_k)`` pushed through a linear SDE stays a mixture
with means ``a m_k + (1 - a)\mu`` and covariances ``a^2 \Sigma_k + \sigma^2 I``; density,
log-density and score are closed-form. These are the exact references of the test suite.

**Layout.** :mod:`~bridgesolve.densities.protocol` (the :class:`Density` protocol and
:func:`density_from_description`), :mod:`~bridgesolve.densities.gaussian_mixture`
(:class:`GaussianMixture`, :class:`ScaledMixture`), :mod:`~bridgesolve.densities.
gaussian_bridges` (the Gaussian Schrödinger bridge in closed form). New families (curves,
boxes, KDEs) go in modules of their own and register with :func:`register`.
"""

from __future__ import annotations

from bridgesolve.densities.gaussian_bridges import gaussian_bridge, gaussian_bridge_cost
from bridgesolve.densities.gaussian_mixture import GaussianMixture, ScaledMixture
from bridgesolve.densities.protocol import Density, density_from_description, register

__all__ = ["Density", "GaussianMixture", "ScaledMixture", "density_from_description",
           "gaussian_bridge", "gaussian_bridge_cost", "register"]
