r"""Reference bundles: PDE ground truth as one framework-free ``.npz`` file.

A :class:`ReferenceBundle` holds a quadrature of the mesh (points and weights, so that
``Σ_i w_i f(x_i) ≈ ∫_Ω f dx``), the time grid, and at every time level the density, its
logarithm and its score at the quadrature points; for Schrödinger bridges also the
potentials ``log φ``, ``log φ̂`` and their gradients. Loading and using a bundle needs only
NumPy (this module imports DOLFINx only inside the constructors that read FE fields), so
a bundle written on an MPI cluster is read on a GPU host that has only PyTorch.

Schema ``bridgesolve.reference/1`` (``N`` points in ``d`` dimensions, ``nt + 1`` levels):

========================  ==================  ==================================================
key                       shape               content
========================  ==================  ==================================================
``schema``                ()                  ``"bridgesolve.reference/1"``
``points``                (N, d)              quadrature points of the mesh (all cells, all ranks)
``weights``               (N,)                quadrature weights (``Σ w = |Ω|``)
``times``                 (nt + 1,)           the time grid, forward time, data at ``t = 0``
``density``               (nt + 1, N)         ``p(x_i, t_n)``
``log_density``           (nt + 1, N)         ``log p(x_i, t_n)`` (finite in the tails)
``score``                 (nt + 1, N, d)      ``∇ log p(x_i, t_n)``
``log_phi``               (nt + 1, N)         bridges only: ``log φ``
``log_phi_hat``           (nt + 1, N)         bridges only: ``log φ̂``
``grad_log_phi``          (nt + 1, N, d)      bridges only: ``∇ log φ``
``grad_log_phi_hat``      (nt + 1, N, d)      bridges only: ``∇ log φ̂``
``score_error_estimate``  (nt + 1,)           optional: the bundle's own score error, below
``metadata``              ()                  a JSON string, below
========================  ==================  ==================================================

Storage: ``points``, ``weights``, ``times`` and ``score_error_estimate`` are always float64;
the level arrays (``density`` ... ``grad_log_phi_hat``) are float32 (the default) or float64
(``save(..., dtype=)``), in a deflate-compressed (the default) or a plain zip
(``compress=``): every variant is a standard ``.npz`` that ``np.load`` reads, and
:meth:`ReferenceBundle.load` returns float64 arrays whatever was stored (files written
before these options load as they did). The default 2D bundle (``examples/default.toml``:
P1 on 64², 49,152 points, 101 levels), size and save/load times (ranges over runs on a
shared 2-core machine at load averages up to 8; deflate dominates the compressed saves):

=====================  ==========  ========  ========
storage                size (MiB)  save (s)  load (s)
=====================  ==========  ========  ========
float64, plain         152.6       0.4-1.4   0.5-1.1
float64, compressed    80.5        2.9-11    0.6-2.2
float32, plain         76.9        0.1-0.3   0.1-1.0
float32, compressed    39.5        1.8-7     0.3-2.4
=====================  ==========  ========  ========

float32 changes stored values by at most 6e-8 relative (values below 1e-38, which weigh
nothing in any integral, lose more and may flush to 0), orders of magnitude below any mesh's
discretization error: validating the same score (0.9 × the exact one) against the
float64 and the float32 files of that bundle gives ESM per level equal to 3.3e-8 relative,
``J_ESM`` to 9e-10, the same denoising ``z`` to 3e-8 and the same bound.

``metadata`` keys: ``kind`` (``"diffusion"`` or ``"bridge"``), ``process`` (the reference
process's ``describe()``; :meth:`ReferenceBundle.process` rebuilds it), ``data`` (the data
mixture's ``describe()`` or null; :meth:`ReferenceBundle.data` rebuilds it), ``domain``,
``discretization`` (element, scheme, boundary, dofs, quadrature degree, time grid),
``versions`` (bridgesolve and the numerical stack), ``info`` (solver diagnostics),
``storage`` (``dtype`` and ``compressed`` of the file; absent in files written before) and
``score_error_estimate`` (how the estimate was obtained, or why there is none).

``score_error_estimate`` is, per time level ``t_n``, an estimate of the explicit
score-matching error of the bundle's own score against the true score of the PDE's
solution,

.. math::

    ε_n ≈ E_{p(t_n)} |s_{ref}(x, t_n) - ∇\log p(x, t_n)|^2
        = \sum_i w_i \, p(x_i, t_n) \, |s_{ref}(x_i, t_n) - ∇\log p(x_i, t_n)|^2,

in the units of the validator's ``e(t_n) = Σ_i w_i p_i |s(x_i, t_n) - s_{ref}(x_i, t_n)|^2``
(squared score times mass: compare it with ``e``, or ``sqrt(ε_n)`` with ``sqrt(e)``; by the
triangle inequality the error of a score against the true ``∇log p`` lies within
``sqrt(e) ± sqrt(ε)``). It is obtained (``metadata["score_error_estimate"]["method"]``):

* ``"closed-form"`` when ρ0 is an exact density (:mod:`bridgesolve.densities`: Gaussian
  mixtures, curve and box mixtures, images, KDEs) under a linear process (no killing,
  reflecting walls): ``p`` and ``∇log p`` are ρ0 pushed exactly through the process, so ε
  is exact up to quadrature (it includes the truncation of the domain and the time error);
* ``"higher-degree"`` otherwise when ρ0 and the problem are known (and, for
  ``error_estimate="auto"``, the P_{k+1} problem has at most 1e5 dofs): the same problem is
  solved with elements of degree k + 1 on the same mesh and time grid, and
  ``ε_n = Σ_i w_i max(p_h, 0) |s_k - s_{k+1}|^2`` (``p_h`` the bundle's density). The score
  of P_{k+1} converges one order faster, so this is the P_k error to leading order; it
  measures the spatial error only. Measured against the closed form (the 2D mixture under VP,
  20 steps): ratio 0.9-1.0 for P1 on 64², 0.6-1.4 for P2 on 32²; on an under-resolved mesh
  (P2 on 16²) it overestimates, 4-26x. (A comparison with the coarser mesh, ``|s_h -
  s_{2h}|^2``, was tried and dropped: on the default 2D problem the 32² solution is far
  from the asymptotic regime and the estimate came out 45-330x too large.)
* ``"closed-form"`` for a bridge between single Gaussians ρ0 and ρ1 (``final=`` given)
  under a Brownian reference without killing: ``p`` is the closed-form bridge marginal
  (:func:`bridgesolve.densities.gaussian_bridge`);
* ``None`` (not stored) otherwise: other bridges (a second bridge solve is not cheap),
  solves with killing, files written before this key existed;
* ``"quadrature"`` / ``"exact"`` for bundles whose fields come from the exact formulas
  (``metadata["fields"] == "exact"``, :func:`~bridgesolve.reference.exact.exact_bundle`;
  no PDE): the quadrature error along a curve mixture's curve, or zero (round-off) for
  the closed forms. FE bundles have ``metadata["fields"] == "finite-element"``.

How the values are obtained from a Fokker–Planck solution ``p_h`` of degree k:
``density`` is ``p_h`` at the points (``Σ w · density`` is the discrete mass);
``log_density`` and ``score`` are the interpolant of the floored nodal logarithms and its
gradient (:func:`bridgesolve.score.grad_log`), so ``score`` is exactly the gradient of
``log_density`` on every cell, and both stay finite where ``p_h`` underflows. For a bridge,
``log_density = log φ + log φ̂ - log Z_n`` with ``Z_n = Σ w e^{log φ + log φ̂}`` (so the
marginal is normalized), ``density = exp(log_density)``, ``score = ∇ log φ + ∇ log φ̂``.

Under MPI the constructors are collective: every rank evaluates its owned cells, the
pieces are gathered on one rank, and :func:`save_reference` writes the file once.

Files that are not bundles (garbage, truncated, missing keys, inconsistent shapes,
non-finite values) are refused on loading with one :class:`BridgesolveInputError` line
naming the file and what is wrong.

**Where things live.** :mod:`~bridgesolve.reference.bundle` (:class:`ReferenceBundle`,
:func:`save_reference`), :mod:`~bridgesolve.reference.schema` (the format's names and
checks), :mod:`~bridgesolve.reference.error` (the FE error estimate of the score),
:mod:`~bridgesolve.reference.exact` (bundles from the exact formulas).
"""

from __future__ import annotations

from bridgesolve.reference.bundle import ReferenceBundle, save_reference
from bridgesolve.reference.exact import exact_bundle
from bridgesolve.reference.schema import (
    BRIDGE_FIELDS,
    DEFAULT_COMPRESS,
    DEFAULT_DTYPE,
    DTYPES,
    FIELDS,
    KINDS,
    SCHEMA,
)

__all__ = ["BRIDGE_FIELDS", "DEFAULT_COMPRESS", "DEFAULT_DTYPE", "DTYPES", "FIELDS", "KINDS",
           "SCHEMA", "ReferenceBundle", "exact_bundle", "save_reference"]
