"""The option names of bridgesolve, each list defined once (NumPy- and DOLFINx-free).

Config validation, the command line, the solvers and the studies all read these tuples, so
that a new choice is added in one place.
"""

from __future__ import annotations

#: Schrödinger-bridge iteration modes (``solve_bridge(mode=...)``, ``[bridge] mode``).
BRIDGE_MODES = ("auto", "linear", "log")
#: Refinements of a convergence study (``--refine``, ``[convergence] refine``).
REFINEMENTS = ("h", "p", "dt", "hdt")
#: What a convergence study measures errors against (``[convergence] reference``).
REFERENCES = ("auto", "exact", "finest")
#: Time-grid spacings (``[time] spacing``).
SPACINGS = ("clock", "uniform", "graded")
#: θ-schemes of the stepping engine (``[discretization] scheme``).
SCHEMES = ("crank-nicolson", "backward-euler")
#: Weights λ(t) of score-matching losses (``[train] weighting``, ``validate --weighting``).
WEIGHTINGS = ("sigma2", "g2", "none")
#: Boundary conditions (``[discretization] boundary``, ``Problem(boundary=...)``).
BOUNDARIES = ("reflecting", "absorbing")

__all__ = ["BOUNDARIES", "BRIDGE_MODES", "REFERENCES", "REFINEMENTS", "SCHEMES", "SPACINGS",
           "WEIGHTINGS"]
