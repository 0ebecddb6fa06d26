"""Typed TOML configuration for ``bridgesolve run``, with errors that name key and value.

Sections (``bridgesolve run --help`` has the reference, ``examples/*.toml`` has examples)::

    [problem]        equation = "fokker-planck" | "kolmogorov" | "hjb" | "hjb-forward" | "bridge"
    [domain]         type = "interval" | "box" | "disk" | "gmsh" and its parameters
    [process]        type = "VP" | "VE" | "SubVP" | "Cosine" (T) | "OU" | "Brownian" and its
                     parameters
    [initial]        the data at t = 0 (forward equations): type = "gaussian_mixture" or any
                     data set of :mod:`bridgesolve.densities.catalog` (two_moons,
                     checkerboard, swiss_roll, ..., file, image)
    [terminal]       the data at t = T (backward equations): a mixture or a Gaussian bump
    [final]          the bridge's ρ1 at t = T (with [initial] = ρ0): as [initial]
    [bridge]         tol, max_iter, mode = "auto" | "linear" | "log", acceleration
    [killing]        optional V(x) = constant + quadratic * |x|^2
    [time]           T, steps, spacing = "clock" | "uniform" | "graded" (power, near =
                     "start" | "end" | "both")
    [discretization] degree, scheme, boundary, solver, method (fe | kernel | auto),
                     storage (auto | memory | disk), storage_dir, memory_budget
    [output]         directory, plot_times, vtx, slice_z (3D figures: the plane z = slice_z;
                     default the bounding box's mid-plane)
    [convergence]    refine = "h" | "p" | "dt" | "hdt", levels, reference, generated
                     (h values: KL of generated densities), measure_degree (errors in
                     P(k), default degree + 3; degree + 1 keeps 3D levels of 1e6 dofs in
                     memory) for bridgesolve convergence

:func:`validate` checks everything that can be checked without building a mesh (including
the Gaussian mixture, the time grid and the existence of a mesh file), so that a bad config
fails before any output is written; :meth:`Config.build` then makes the solver objects.
The checks live in :mod:`~bridgesolve.config.sections`, the typed result in
:mod:`~bridgesolve.config.typed`.
"""

from bridgesolve._toml import ConfigError
from bridgesolve.config.sections import DEFAULT_CONFIG, DOMAIN_KEYS, SECTIONS, load_config, validate
from bridgesolve.config.typed import BRIDGE_DEFAULTS, Config

__all__ = ["BRIDGE_DEFAULTS", "DEFAULT_CONFIG", "DOMAIN_KEYS", "SECTIONS", "Config", "ConfigError",
           "load_config", "validate"]
