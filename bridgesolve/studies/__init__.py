r"""Convergence studies: refinement ladders, errors, observed orders; MPI-aware.

A study solves the problem of one config on a ladder of discretizations (``refine`` ∈
``h`` mesh, ``p`` degree, ``dt`` time step, ``hdt`` mesh and step together; each level
halves h and/or dt, or raises the degree by one), measures quantities of interest at the
report time (T for forward equations, 0 for backward ones, T/2 for bridges) and fits
observed orders

.. math::
    q_\ell = \frac{\log(e_\ell / e_{\ell+1})}{\log(h_\ell / h_{\ell+1})}.

Errors are taken against the exact solution when one exists (Gaussian mixtures through
linear SDEs, with constant killing), interpolated into degree + 3 as in the tests, or
else against the finest level (coarse solutions interpolated onto the finest mesh, which
for nested refinements is exact); the output says which. Quantities (see
:data:`QUANTITIES`):

- ``<field>_L2``, ``<field>_L1``, ``<field>_Linf`` (Linf at the dofs of the measuring
  space) of the density p, φ, S = log φ or Ŝ = log φ̂;
- ``kl_generated_h<h>`` (Fokker–Planck, opt-in ``[convergence] generated = [1.0, 0.5]``):
  ``KL(ρ0 ‖ q_h)`` of the generated density of the sampler with the computed score
  (:func:`~bridgesolve.studies.quantities.quantities_of`); its exact value is 0;
- ``score_pL2`` (forward equations): :math:`(\int p\,|\nabla\log p_h - \nabla\log p|^2)^{1/2}`
  with ``∇log p_h`` from :func:`bridgesolve.score.grad_log` (gradient of the interpolated
  nodal logs, floored), by mesh quadrature; against the finest level the weight is the
  finest density and the quadrature its mesh's.

Every finished level is checkpointed (JSON, plus the solution at the report time as
``.npz`` when the reference is the finest level) in ``<output>/checkpoints``, written
atomically by rank 0; ``resume=True`` reuses the checkpoints whose discretization matches,
so an interrupted study, or one extended by more levels, redoes no finished solve.

:func:`sweep` spreads a list of configs over groups of ranks (``comm.Split``); each study
runs distributed over its group, and rank 0 gathers the results.

Modules, one concern each: :mod:`~bridgesolve.studies.orders` (observed and fitted
orders), :mod:`~bridgesolve.studies.quantities` (what is measured),
:mod:`~bridgesolve.studies.ladders` (the config of each level),
:mod:`~bridgesolve.studies.measurement` (norms, score errors, exact targets),
:mod:`~bridgesolve.studies.results` (:class:`ConvergenceStudy`, the study folder),
:mod:`~bridgesolve.studies.checkpoints`, :mod:`~bridgesolve.studies.study` (the loop) and
:mod:`~bridgesolve.studies.sweeps`. The command line is :mod:`bridgesolve.cli.convergence`.
"""

from __future__ import annotations

from bridgesolve._vocab import REFERENCES, REFINEMENTS
from bridgesolve.densities import gaussian_bridge_cost
from bridgesolve.studies.checkpoints import CHECKPOINT_SCHEMA
from bridgesolve.studies.ladders import level_raw
from bridgesolve.studies.orders import fitted_order, observed_orders, order_table
from bridgesolve.studies.quantities import QUANTITIES, Quantity, quantities_of
from bridgesolve.studies.results import STUDY_SCHEMA, ConvergenceStudy, prepare_folder
from bridgesolve.studies.study import convergence_study, study_options
from bridgesolve.studies.sweeps import sweep

__all__ = ["CHECKPOINT_SCHEMA", "QUANTITIES", "REFERENCES", "REFINEMENTS", "STUDY_SCHEMA",
           "ConvergenceStudy", "Quantity", "convergence_study", "fitted_order",
           "gaussian_bridge_cost", "level_raw", "observed_orders", "order_table",
           "prepare_folder", "quantities_of", "study_options", "sweep"]
