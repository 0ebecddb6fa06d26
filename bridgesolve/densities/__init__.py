r"""Densities with closed forms: Gaussian mixtures and their exact evolution.

A mixture ``\sum_k w_k N(m_k, \Sigma_k)`` pushed through a linear SDE stays a mixture
with means ``a m_k + (1 - a)\mu`` and covariances ``a^2 \Sigma_k + \sigma^2 I``; density,
log-density and score are closed-form. These are the exact references of the test suite.

**Families** (one :class:`Density` protocol: ``dim``, ``pdf``, ``log_pdf``, ``score``,
``sample``, ``evolve`` under a process, ``describe``/``from_description``), each exact
under every linear process:

* :class:`GaussianMixture` (and the presets :func:`eight_gaussians`,
  :func:`twenty_five_gaussians`);
* :class:`CurveMixture` (:mod:`~bridgesolve.densities.curves`): a point on a curve plus
  isotropic noise, by quadrature along the curve — :func:`two_moons`, :func:`swiss_roll`,
  :func:`rings`, :func:`circle`, :func:`circles`, :func:`s_curve`;
* :class:`BoxMixture` and :class:`ImageDensity` (:mod:`~bridgesolve.densities.boxes`):
  uniform on boxes (:func:`checkerboard`), images evaluated separably;
* :class:`GaussianKDE` (:mod:`~bridgesolve.densities.kde`): from samples (arrays or files).

**Layout.** :mod:`~bridgesolve.densities.protocol` (the protocol and
:func:`density_from_description`), ``gaussian_mixture``, ``curves``, ``boxes``, ``kde``,
``files`` (the sample-file reader), ``catalog`` (the one vocabulary of data-set names shared
by the trainer's ``[data]`` and the PDE side's ``[initial]``/``[final]``), ``_gaussian_sums``
(the affine state of a linear process, equal-covariance Gaussian sums),
``gaussian_bridges`` (the Gaussian Schrödinger bridge in closed form). New families go in
modules of their own and register with :func:`register`.
"""

from __future__ import annotations

from bridgesolve.densities.boxes import BoxMixture, ImageDensity, checkerboard, image_from_file
from bridgesolve.densities.curves import (
    CurveMixture,
    circle,
    circles,
    rings,
    s_curve,
    swiss_roll,
    two_moons,
)
from bridgesolve.densities.gaussian_bridges import gaussian_bridge, gaussian_bridge_cost
from bridgesolve.densities.gaussian_mixture import (
    GaussianMixture,
    ScaledMixture,
    eight_gaussians,
    mixture1d,
    mixture_score,
    twenty_five_gaussians,
)
from bridgesolve.densities.kde import GaussianKDE, kde_from_file
from bridgesolve.densities.protocol import (
    Density,
    data_from_description,
    density_from_description,
    families,
    is_probability_density,
    register,
)

__all__ = ["BoxMixture", "CurveMixture", "Density", "GaussianKDE", "GaussianMixture",
           "ImageDensity", "ScaledMixture", "checkerboard", "circle", "circles",
           "data_from_description", "density_from_description", "eight_gaussians", "families",
           "gaussian_bridge", "gaussian_bridge_cost", "image_from_file", "is_probability_density",
           "kde_from_file", "mixture1d", "mixture_score", "register", "rings", "s_curve",
           "swiss_roll", "twenty_five_gaussians", "two_moons"]
