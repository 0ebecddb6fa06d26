"""Shared pieces of :mod:`bridgesolve.action`: references, laws (the stationary law, mixture
fields, KL divergences), mesh quadrature and controls (callables, VectorFields, torch modules;
the control of a score). Public names are re-exported by :mod:`bridgesolve.action`."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from bridgesolve._validate import BridgesolveInputError, choice
from bridgesolve.densities import GaussianMixture
from bridgesolve.process import OU, VP, Process

#: ``control_action(reference=...)``.
ACTION_REFERENCES = ("process", "stationary", "reversed")

Control = Callable[[np.ndarray, float], np.ndarray]


def trapezoid_weights(t: np.ndarray) -> np.ndarray:
    """Weights ``ω`` with ``Σ ω_n f(t_n) ≈ ∫ f`` (trapezoidal rule; any spacing)."""
    t = np.asarray(t, dtype=float)
    w = np.zeros_like(t)
    dt = np.diff(t)
    w[:-1] += 0.5 * dt
    w[1:] += 0.5 * dt
    return w


# -- laws --------------------------------------------------------------------------------
def stationary_law(process: Process, dim: int) -> GaussianMixture:
    """The invariant law ``p_∞ = N(c, (D/k) I)`` of an OU or VP process (whose reverse-time
    stationary drift ``-f + g²∇log p_∞`` equals ``f``)."""
    if isinstance(process, OU):
        var = process.sigma**2 / (2.0 * process.theta)
    elif isinstance(process, VP) and type(process) is VP:
        var = 1.0
    else:
        raise BridgesolveInputError(
            f"process {process!r}: the stationary reference needs an OU or VP process "
            "(a reversible process with an invariant Gaussian law)")
    c = float(getattr(process, "center", 0.0))
    return GaussianMixture([1.0], [[c] * dim], [var])


def _fields(law, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(log p, ∇log p)`` at points: einsum-vectorized for mixtures (no BLAS calls, which
    oversubscribe shared machines), else ``(law.log_pdf(x), None)``."""
    if isinstance(law, GaussianMixture):
        from bridgesolve.learn._validation_bundles import mixture_fields  # NumPy only

        return mixture_fields(law, x)
    return np.asarray(law.log_pdf(x), dtype=float), None


def _log_pdf(law, x):
    return _fields(law, x)[0]


def _law_at(data: GaussianMixture, process: Process, t: float) -> GaussianMixture:
    return data.evolve(process, float(t)) if t > 0 else data


def gaussian_kl(m0, S0, m1, S1) -> float:
    """``KL(N(m0, S0) ‖ N(m1, S1))``."""
    m0, m1 = np.atleast_1d(m0).astype(float), np.atleast_1d(m1).astype(float)
    d = m0.size
    S0, S1 = np.reshape(S0, (d, d)), np.reshape(S1, (d, d))
    S1i = np.linalg.inv(S1)
    dm = m1 - m0
    return float(0.5 * (np.trace(S1i @ S0) + dm @ S1i @ dm - d
                        + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]))


def _quadrature(problem, degree: int | None):
    from bridgesolve.quadrature import mesh_quadrature

    return mesh_quadrature(problem.mesh, degree or 2 * problem.degree + 4)


def _allsum(comm, value):
    from bridgesolve._dolfinx import MPI

    return comm.allreduce(value, MPI.SUM)


def kl_quadrature(p, q, problem, *, degree: int | None = None) -> float:
    """``KL(p ‖ q) = ∫ p (log p - log q)`` by mesh quadrature (``p``, ``q`` with ``pdf`` and
    ``log_pdf``; a single Gaussian pair uses the closed form). Rank-independent."""
    if (isinstance(p, GaussianMixture) and isinstance(q, GaussianMixture)
            and p.n_components == 1 and q.n_components == 1):
        return gaussian_kl(p.means[0], p.covs[0], q.means[0], q.covs[0])
    pts, w = _quadrature(problem, degree)
    if w.size:
        lp = _log_pdf(p, pts)
        local = float(w @ (np.exp(lp) * (lp - _log_pdf(q, pts))))
    else:
        local = 0.0
    return float(_allsum(problem.comm, local))


# -- controls ----------------------------------------------------------------------------
def _as_callable(control, dim: int, name: str = "control"):
    """``(fn(x (N, d), t) -> (N, d), kind)`` for a callable, a VectorField or a torch
    module (through :mod:`bridgesolve.learn`, imported only then)."""
    score_mod = sys.modules.get("bridgesolve.score")
    if score_mod is not None and isinstance(control, score_mod.VectorField):
        return control, "vectorfield"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(control, torch.nn.Module):
        from bridgesolve.learn._validation_scores import as_numpy_score

        return as_numpy_score(control, device="cpu"), "torch"
    if not callable(control):
        raise BridgesolveInputError(
            f"{name} = {control!r}: expected a callable u(x, t), a VectorField or a torch "
            "module")

    def fn(x, t):
        out = np.asarray(control(x, t), dtype=float)
        if out.shape != x.shape:
            out = out.reshape(x.shape) if out.size == x.size else out
        if out.shape != x.shape:
            raise BridgesolveInputError(
                f"{name}(x, t) returned shape {out.shape}: expected {x.shape}, the shape of x")
        return out

    return fn, "callable"


def score_control(score, process: Process, *, reference: str = "stationary",
                  reference_score=None, dim: int | None = None) -> Control:
    """The control of a score ``s`` relative to a reference.

    ``"stationary"``: ``u = g² (s - ∇log p_∞)`` (the reverse SDE ``-f + g² s`` written
    against the stationary OU/VP reference); ``"reversed"``: ``u = g² (s - s_ref)`` with
    ``reference_score`` the reference's own score ``∇log p_t``; ``"process"``: ``u = g² s``.
    ``score`` may be a callable, a VectorField or a torch module (the model returns scores).
    """
    choice("reference", reference, ACTION_REFERENCES)
    fn, _ = _as_callable(score, dim or 1, "score")
    ref_fn = None
    if reference == "reversed":
        if reference_score is None:
            raise BridgesolveInputError("reference='reversed' needs reference_score= (∇log p_t)")
        ref_fn, _ = _as_callable(reference_score, dim or 1, "reference_score")
    elif reference == "stationary":
        stationary_law(process, 1)  # checks the process
    var = (stationary_law(process, 1).covs[0, 0, 0] if reference == "stationary" else None)
    c = float(getattr(process, "center", 0.0))

    def u(x, t):
        x = np.asarray(x, dtype=float)
        g2 = float(process.g(t)) ** 2
        s = np.asarray(fn(x, t), dtype=float).reshape(x.shape)
        if reference == "stationary":
            return g2 * (s + (x - c) / var)
        if reference == "reversed":
            return g2 * (s - np.asarray(ref_fn(x, t), dtype=float).reshape(x.shape))
        return g2 * s

    return u

