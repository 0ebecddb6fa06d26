r"""Forward Fokker–Planck and backward Kolmogorov solutions of linear SDEs by their exact
transition kernels: no time stepping, any time on demand, exact up to the trapezoid rule.

``p_t(y) = ∫ ρ_0(x) k_{0,t}(x, y) dx`` and ``u(t, z) = ∫ k_{t,T}(z, y) φ_T(y) dy`` on R^d,
the data sampled on a box. The box's walls play no part: the result is the free-space law,
and :meth:`KernelDensity.mass_outside` says how much of it has left the box (what a
reflecting-wall FE solve would have kept inside).
"""

from __future__ import annotations

import time

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.kernel.convolution import Transition, mass_outside
from bridgesolve.kernel.propagate import Propagator
from bridgesolve.kernel.sources import data_spacing, log_source

#: Share of the free-space mass outside the box above which a run warns.
MASS_OUTSIDE_WARN = 1e-3


def _box(lower, upper, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
    if lo.shape != hi.shape or lo.ndim != 1 or lo.size not in (1, 2, 3) or np.any(hi <= lo):
        raise BridgesolveInputError(f"box [{lo.tolist()}, {hi.tolist()}]: expected two "
                                    "points of dimension 1, 2 or 3 with lower < upper")
    if dim is not None and lo.size != dim:
        raise BridgesolveInputError(f"box of dimension {lo.size}: expected {dim}")
    return lo, hi


class KernelDensity:
    """The law ``p_t`` of a linear SDE started from ``ρ0`` (a free-space solution).

    Evaluate with :meth:`log_pdf`, :meth:`pdf`, :meth:`score` at points and any ``t`` in
    ``[0, T]``; :meth:`evolve` returns the law at a time as a density object (so
    :func:`~bridgesolve.reference.exact_bundle` takes a ``KernelDensity`` as data).
    """

    def __init__(self, process, rho0, lower, upper, *, h: float | None = None,
                 time_offset: float = 0.0):
        self.process = process
        self.rho0 = rho0
        self.lower, self.upper = _box(lower, upper)
        self.dim = self.lower.size
        self.time_offset = float(time_offset)
        source = log_source(rho0, self.dim, "rho0")
        self.h = data_spacing([rho0], self.lower, self.upper, h)
        self._prop = Propagator(source, self.lower, self.upper, self.h, "forward")

    def kernel(self, t: float) -> Transition | None:
        if t < 0:
            raise BridgesolveInputError(f"t = {t!r}: expected t >= 0")
        s = self.time_offset
        return None if t == 0 else Transition.of(self.process, s + t, s)

    def log_pdf(self, x, t: float) -> np.ndarray:
        return self._prop.values(self.kernel(t), _points(x, self.dim))

    def pdf(self, x, t: float) -> np.ndarray:
        return np.exp(self.log_pdf(x, t))

    def score(self, x, t: float) -> np.ndarray:
        return self._prop.gradient(self.kernel(t), _points(x, self.dim))

    def on_grid(self, axes: tuple, t: float) -> np.ndarray:
        """``log p_t`` on the tensor grid of ``axes`` (separable: the fast output)."""
        return self._prop.values(self.kernel(t), tuple(map(np.asarray, axes)))

    def mass_outside(self, t: float) -> float:
        """The share of ``p_t`` outside the box (0 at t = 0: the data are sampled in it)."""
        k = self.kernel(t)
        if k is None:
            return 0.0
        grid, values = self._prop.source(k)
        return mass_outside(values, grid, k, self.lower, self.upper)

    @property
    def aliasing_error(self) -> float:
        """The trapezoid rule's predicted relative error at the coarsest resolution used."""
        return self._prop.aliasing_error

    def evolve(self, process, t: float, s: float = 0.0):
        """The law at time ``s + t`` as a density (``process`` must be this one's)."""
        if process is not self.process and process.describe() != self.process.describe():
            raise BridgesolveInputError(f"process {process!r}: this KernelDensity evolves "
                                        f"under {self.process!r}")
        return _Marginal(self, float(s) + float(t))

    def describe(self) -> dict:
        data = getattr(self.rho0, "describe", None)
        return {"type": "KernelDensity", "process": self.process.describe(),
                "data": data() if data else repr(self.rho0), "h": self.h}

    def __repr__(self) -> str:
        return f"KernelDensity({self.process!r}, d={self.dim}, h={self.h:.3g})"


class _Marginal:
    """``p_t`` of a :class:`KernelDensity` as a density of points."""

    def __init__(self, law: KernelDensity, t: float):
        self.law, self.t, self.dim = law, t, law.dim

    def log_pdf(self, x):
        return self.law.log_pdf(x, self.t)

    def pdf(self, x):
        return self.law.pdf(x, self.t)

    def score(self, x):
        return self.law.score(x, self.t)

    def describe(self) -> dict:
        return {**self.law.describe(), "t": self.t}


class KernelExpectation:
    """``u(t, z) = E[φ_T(X_T) | X_t = z]`` (backward Kolmogorov, no killing) of a linear SDE,
    for a terminal ``φ_T`` of any sign (its positive and negative parts are carried in the
    log domain separately)."""

    def __init__(self, process, phi_T, lower, upper, T: float, *, h: float | None = None):
        self.process, self.T = process, float(T)
        self.lower, self.upper = _box(lower, upper)
        self.dim = self.lower.size
        self.h = data_spacing([phi_T], self.lower, self.upper, h)
        f = phi_T.pdf if hasattr(phi_T, "pdf") else phi_T
        if not callable(f):
            raise BridgesolveInputError(f"phi_T = {phi_T!r}: expected a callable of points")
        self._parts = [Propagator(_signed_part(f, sign), self.lower, self.upper, self.h,
                                  "backward") for sign in (1.0, -1.0)]

    def __call__(self, x, t: float) -> np.ndarray:
        if not 0 <= t <= self.T:
            raise BridgesolveInputError(f"t = {t!r}: expected 0 <= t <= T = {self.T}")
        k = None if t == self.T else Transition.of(self.process, self.T, t)
        pts = _points(x, self.dim)
        pos, neg = (np.exp(p.values(k, pts)) for p in self._parts)
        return pos - neg


def _signed_part(f, sign: float):
    def call(x):
        v = np.asarray(f(x), dtype=float).reshape(x.shape[0])
        if not np.all(np.isfinite(v)):
            i = int(np.argmax(~np.isfinite(v)))
            raise BridgesolveInputError(f"phi_T({x[i].tolist()}) = {v[i]!r}: expected a "
                                        "finite value")
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(sign * v, 0.0))
    return call


def _points(x, dim: int) -> np.ndarray:
    pts = np.asarray(x, dtype=float)
    if pts.ndim == 1 and dim == 1:
        pts = pts[:, None]
    if pts.ndim != 2 or pts.shape[1] != dim:
        raise BridgesolveInputError(f"points of shape {pts.shape}: expected (N, {dim})")
    return pts


def kernel_fokker_planck(process, rho0, lower, upper, *, h: float | None = None
                         ) -> KernelDensity:
    """The law of ``process`` from ``rho0`` (sampled on the box ``[lower, upper]``) at
    every time, by its exact transition kernel (module doc)."""
    t0 = time.perf_counter()
    law = KernelDensity(process, rho0, lower, upper, h=h)
    law.setup_s = time.perf_counter() - t0
    return law


__all__ = ["MASS_OUTSIDE_WARN", "KernelDensity", "KernelExpectation", "kernel_fokker_planck"]
