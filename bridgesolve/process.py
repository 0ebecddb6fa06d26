r"""Reference SDEs ``dX = f(X, t) dt + g(t) dW`` in forward time.

Every process here has a *time-separable* drift ``f(x, t) = k(t) f_0(x)`` and a
space-independent diffusion coefficient ``D(t) = g(t)^2 / 2``. The PDE engine assembles
the matrices of ``f_0`` and of the Laplacian once and only rescales them by the exact
integrals of ``k`` and ``D`` over each step; when ``k`` and ``D`` are proportional (VP, OU,
Brownian, VE) the whole run shares one operator in the process's intrinsic ``clock``.

The linear processes (``f_0(x) = -(x - \mu)``) have Gaussian transitions
``X_t | X_0 ~ N(a(t) X_0 + (1 - a(t)) \mu, \sigma^2(t) I)``, which make Gaussian
mixtures exact references for every solver.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from bridgesolve._tabulated import Schedule, diffusers_alphas_cumprod
from bridgesolve._validate import BridgesolveInputError, positive

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)


def _quad(fn: Callable[[np.ndarray], np.ndarray], t0: float, t1: float) -> float:
    """8-point Gauss–Legendre integral of ``fn`` over [t0, t1]."""
    half, mid = 0.5 * (t1 - t0), 0.5 * (t1 + t0)
    return float(half * np.sum(_GL_WEIGHTS * np.asarray(fn(mid + half * _GL_NODES))))


class Process(ABC):
    """A reference SDE with drift ``k(t) f_0(x)`` and diffusion coefficient ``D(t)``."""

    #: True when ``f_0(x) = -(x - center)`` and the transition is Gaussian.
    linear: bool = True
    center: float = 0.0

    # -- time profiles -------------------------------------------------------------
    @abstractmethod
    def drift_rate(self, t):
        """``k(t)`` in ``f(x, t) = k(t) f_0(x)``."""

    @abstractmethod
    def diffusion(self, t):
        """``D(t) = g(t)^2 / 2``."""

    def g(self, t):
        return np.sqrt(2.0 * np.asarray(self.diffusion(t), dtype=float))

    def drift_rate_integral(self, t0: float, t1: float) -> float:
        """``∫_{t0}^{t1} k(s) ds`` (exact where a closed form exists)."""
        return _quad(self.drift_rate, t0, t1)

    def diffusion_integral(self, t0: float, t1: float) -> float:
        """``∫_{t0}^{t1} D(s) ds`` (exact where a closed form exists)."""
        return _quad(self.diffusion, t0, t1)

    def clock(self, t):
        """Intrinsic clock ``s(t) = ∫_0^t D``, in which a separable process is autonomous."""
        t = np.asarray(t, dtype=float)
        return np.vectorize(lambda s: self.diffusion_integral(0.0, float(s)))(t)

    @property
    def separable(self) -> bool:
        """Whether ``k(t)`` and ``D(t)`` are proportional (one operator in :meth:`clock`)."""
        return True

    # -- space ---------------------------------------------------------------------
    def drift_shape_ufl(self, x):
        """``f_0`` as a UFL vector of the spatial coordinate ``x``."""
        if self.center == 0.0:
            return -x
        import ufl

        return -x + ufl.as_vector([float(self.center)] * x.ufl_shape[0])

    def drift_shape(self, x: np.ndarray) -> np.ndarray:
        """``f_0`` at points ``x`` of shape ``(N, d)``."""
        return -(x - self.center)

    def drift(self, x: np.ndarray, t: float) -> np.ndarray:
        """``f(x, t)`` at points ``x`` of shape ``(N, d)``."""
        return self.drift_rate(t) * self.drift_shape(np.asarray(x, dtype=float))

    # -- exact transitions ---------------------------------------------------------
    def transition(self, t: float, s: float = 0.0) -> tuple[float, float]:
        """``(a, var)`` with ``X_t | X_s ~ N(a X_s + (1 - a) center, var I)``.

        Only for linear processes: ``a = exp(-∫_s^t k)`` and
        ``var = ∫_s^t 2 D(r) exp(-2 ∫_r^t k) dr``.
        """
        if not self.linear:
            raise NotImplementedError(f"{type(self).__name__} has no Gaussian transition")
        a = math.exp(-self.drift_rate_integral(s, t))
        var = _quad(
            lambda r: 2.0 * self.diffusion(r)
            * np.exp(-2.0 * np.vectorize(lambda q: self.drift_rate_integral(q, t))(r)),
            s,
            t,
        )
        return a, var

    @staticmethod
    def from_description(desc: dict) -> Process:
        """The process of a :meth:`describe` record (:func:`process_from_description`)."""
        return process_from_description(desc)

    def describe(self) -> dict:
        """Parameters, for summaries."""
        return {"type": type(self).__name__, **{k: v for k, v in vars(self).items()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Brownian(Process):
    r"""``dX = \sigma dW``: ``f = 0``, ``D = \sigma^2 / 2``."""

    def __init__(self, sigma: float = 1.0):
        self.sigma = positive("sigma", sigma)

    def drift_rate(self, t):
        return 0.0 * np.asarray(t, dtype=float)

    def diffusion(self, t):
        return 0.5 * self.sigma**2 + 0.0 * np.asarray(t, dtype=float)

    def drift_rate_integral(self, t0, t1):
        return 0.0

    def diffusion_integral(self, t0, t1):
        return 0.5 * self.sigma**2 * (t1 - t0)

    def transition(self, t, s=0.0):
        return 1.0, self.sigma**2 * (t - s)


class OU(Process):
    r"""Ornstein–Uhlenbeck ``dX = -\theta (X - \mu) dt + \sigma dW``."""

    def __init__(self, theta: float = 1.0, sigma: float = math.sqrt(2.0), mean: float = 0.0):
        self.theta = positive("theta", theta)
        self.sigma = positive("sigma", sigma)
        self.mean = float(mean)
        self.center = self.mean

    def drift_rate(self, t):
        return self.theta + 0.0 * np.asarray(t, dtype=float)

    def diffusion(self, t):
        return 0.5 * self.sigma**2 + 0.0 * np.asarray(t, dtype=float)

    def drift_rate_integral(self, t0, t1):
        return self.theta * (t1 - t0)

    def diffusion_integral(self, t0, t1):
        return 0.5 * self.sigma**2 * (t1 - t0)

    def transition(self, t, s=0.0):
        a = math.exp(-self.theta * (t - s))
        return a, self.sigma**2 / (2.0 * self.theta) * (1.0 - a * a)


class _BetaProcess(Process):
    """A VP-type process given by its rate ``β(t)`` and ``B(t) = ∫_0^t β``: drift
    ``-β x/2``, ``D = β/2``, ``X_t | X_s ~ N(e^{-ΔB/2} X_s, (1 - e^{-ΔB}) I)``."""

    def beta(self, t):
        raise NotImplementedError

    def B(self, t):
        raise NotImplementedError

    def drift_rate(self, t):
        return 0.5 * self.beta(t)

    def diffusion(self, t):
        return 0.5 * self.beta(t)

    def drift_rate_integral(self, t0, t1):
        return 0.5 * float(self.B(t1) - self.B(t0))

    def diffusion_integral(self, t0, t1):
        return 0.5 * float(self.B(t1) - self.B(t0))

    def transition(self, t, s=0.0):
        dB = float(self.B(t) - self.B(s))
        return math.exp(-0.5 * dB), -math.expm1(-dB)


class VP(_BetaProcess):
    r"""Variance preserving: ``dX = -\tfrac12 \beta(t) X dt + \sqrt{\beta(t)} dW``.

    ``\beta(t) = \beta_{min} + (t / T)(\beta_{max} - \beta_{min})`` with ``T`` the
    process horizon (1 by default, as in score-based diffusion models).

    ``beta_min = 0`` is allowed: ``VP(0.0, 20.0)`` is the "SIMPLE" schedule of Hirono et al.
    (ICML 2024), ``β(t) = 20 t``, ``α_t = e^{-5 t²}``, ``σ_t² = 1 - e^{-10 t²}``; there
    ``D(0) = 0``, so likelihoods are taken on grids from ``t_min > 0``
    (``TimeGrid.uniform(T, steps, t_min=0.01)``). A constant ``β`` is
    ``VP(beta, beta, T)``.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        try:
            self.beta_min = positive("beta_min", beta_min, allow_zero=True)
        except BridgesolveInputError:
            raise BridgesolveInputError(
                f"beta_min = {beta_min!r}: expected a finite positive number or 0") from None
        self.beta_max = positive("beta_max", beta_max)
        self.T = positive("T", T)
        if self.beta_max < self.beta_min:
            raise BridgesolveInputError(
                f"beta_max = {beta_max!r}: expected >= beta_min = {beta_min!r}"
            )

    def beta(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) * np.asarray(t, dtype=float) / self.T

    def B(self, t):
        """``∫_0^t β``."""
        t = np.asarray(t, dtype=float)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t / self.T



class Cosine(Process):
    r"""The cosine schedule: ``α_t = \cos(πt/2)``, ``σ_t = \sin(πt/2)`` (variance
    preserving, ``α_t² + σ_t² = 1``), i.e.

    .. math::
        f(x, t) = -\tfrac{π}{2}\tan(πt/2)\, x, \qquad g(t)^2 = π \tan(πt/2),

    a VP process with ``β(t) = π tan(πt/2)``, singular at ``t = 1``: the horizon ``T`` must
    be below 1 (Hirono et al. use ``T = 1 - 10⁻³``, prior ``N(0, I)``). Closed forms:
    ``∫_{t0}^{t1} k = ∫ D = \log\cos(πt_0/2) - \log\cos(πt_1/2)`` and
    ``X_t | X_s ~ N(a X_s, 1 - a²)`` with ``a = \cos(πt/2)/\cos(πs/2)``.
    """

    def __init__(self, T: float = 0.999):
        self.T = positive("T", T)
        if not self.T < 1.0:
            raise BridgesolveInputError(
                f"T = {T!r}: expected a horizon below 1 (the cosine schedule's g² = π tan(πt/2) "
                "is infinite at t = 1)")

    def alpha(self, t):
        """``α_t = cos(πt/2)``."""
        return np.cos(0.5 * math.pi * np.asarray(t, dtype=float))

    def beta(self, t):
        return math.pi * np.tan(0.5 * math.pi * np.asarray(t, dtype=float))

    def drift_rate(self, t):
        return 0.5 * self.beta(t)

    def diffusion(self, t):
        return 0.5 * self.beta(t)

    def _logcos(self, t: float) -> float:
        return math.log(math.cos(0.5 * math.pi * float(t)))

    def drift_rate_integral(self, t0, t1):
        return self._logcos(t0) - self._logcos(t1)

    def diffusion_integral(self, t0, t1):
        return self._logcos(t0) - self._logcos(t1)

    def transition(self, t, s=0.0):
        a = math.cos(0.5 * math.pi * float(t)) / math.cos(0.5 * math.pi * float(s))
        return a, 1.0 - a * a


class SubVP(VP):
    r"""Sub-VP: drift as VP, ``g^2 = \beta(t)(1 - e^{-2 B(t)})`` with ``B = ∫_0^t β``."""

    def diffusion(self, t):
        return 0.5 * self.beta(t) * -np.expm1(-2.0 * self.B(t))

    def diffusion_integral(self, t0, t1):
        # d/dt [B/2 + exp(-2B)/4] = β/2 (1 - exp(-2B))
        def prim(t):
            B = float(self.B(t))
            return 0.5 * B + 0.25 * math.exp(-2.0 * B)

        return prim(t1) - prim(t0)

    @property
    def separable(self) -> bool:
        return False

    def transition(self, t, s=0.0):
        Bt, Bs = float(self.B(t)), float(self.B(s))
        a = math.exp(-0.5 * (Bt - Bs))
        # var(t) = (1 - e^{-B(t)})^2 from 0; from s: var(t) - a^2 var(s)
        return a, (-math.expm1(-Bt)) ** 2 - a * a * (-math.expm1(-Bs)) ** 2


class VE(Process):
    r"""Variance exploding: ``f = 0``, ``g^2 = d\sigma^2/dt`` with
    ``\sigma(t) = \sigma_{min} (\sigma_{max}/\sigma_{min})^{t/T}``; the marginal adds
    variance ``\sigma(t)^2 - \sigma(0)^2``."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 3.0, T: float = 1.0):
        self.sigma_min = positive("sigma_min", sigma_min)
        self.sigma_max = positive("sigma_max", sigma_max)
        self.T = positive("T", T)
        if self.sigma_max <= self.sigma_min:
            raise BridgesolveInputError(
                f"sigma_max = {sigma_max!r}: expected > sigma_min = {sigma_min!r}"
            )

    def sigma(self, t):
        ratio = self.sigma_max / self.sigma_min
        return self.sigma_min * ratio ** (np.asarray(t, dtype=float) / self.T)

    def drift_rate(self, t):
        return 0.0 * np.asarray(t, dtype=float)

    def diffusion(self, t):
        return self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min) / self.T

    def drift_rate_integral(self, t0, t1):
        return 0.0

    def diffusion_integral(self, t0, t1):
        return 0.5 * float(self.sigma(t1) ** 2 - self.sigma(t0) ** 2)

    def transition(self, t, s=0.0):
        return 1.0, float(self.sigma(t) ** 2 - self.sigma(s) ** 2)


class Tabulated(_BetaProcess):
    r"""A discrete schedule ``ᾱ_k`` (``alphas_cumprod`` of DDPM, diffusers) in continuous time:
    ``X_t | X_0 ~ N(\sqrt{ᾱ(t)} X_0, (1 - ᾱ(t)) I)``, a VP process with
    ``β(t) = -d\log ᾱ/dt``.

    Step ``k`` sits at ``t_k = (k + 1)/N`` (or ``times[k]``), so ``T = 1`` and ``t = 0`` is
    the data; ``B(t) = -\log ᾱ(t)`` is a monotone cubic through ``(0, 0)`` and
    ``(t_k, -\log ᾱ_k)``: ``transition(t_k)`` reproduces ``ᾱ_k`` and ``β > 0``.
    :meth:`timestep` maps ``t`` back to the fractional step ``k``.

    Args:
        alphas_cumprod: ``N`` strictly decreasing values in (0, 1).
        times: the times ``t_k`` (default ``(k + 1)/N``).
        scheduler_config: instead of ``alphas_cumprod``, a diffusers scheduler config (a
            dict, or the path of a ``scheduler_config.json`` or of its folder), whose
            ``alphas_cumprod`` is computed as ``DDPMScheduler`` does (float32, bit for bit).
    """

    def __init__(self, alphas_cumprod=None, times=None, *, scheduler_config=None):
        if (alphas_cumprod is None) == (scheduler_config is None):
            raise BridgesolveInputError(
                "Tabulated: expected alphas_cumprod (a table of ᾱ_k) or scheduler_config (a "
                "diffusers scheduler config), " + ("not both" if scheduler_config is not None
                                                   else "got neither"))
        if scheduler_config is not None:
            alphas_cumprod = diffusers_alphas_cumprod(scheduler_config)
        self.schedule = Schedule(alphas_cumprod, times)
        self.T = self.schedule.T
        self._times_given = times is not None

    @classmethod
    def from_scheduler_config(cls, config, times=None) -> Tabulated:
        """From a diffusers scheduler config (a dict or ``scheduler_config.json``), with
        ``alphas_cumprod`` computed as ``DDPMScheduler`` does (float32, bit for bit)."""
        return cls(times=times, scheduler_config=config)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return self.schedule.alphas_cumprod

    @property
    def times(self) -> np.ndarray:
        return self.schedule.times

    def beta(self, t):
        return self.schedule.beta(t)

    def B(self, t):
        """``∫_0^t β = -log ᾱ(t)``."""
        return self.schedule.B(t)

    def clock(self, t):
        """``∫_0^t D = B(t)/2``, vectorized (the generic clock calls ``B`` per point)."""
        return 0.5 * np.asarray(self.B(t), dtype=float)

    def timestep(self, t):
        """The fractional step ``k`` at time ``t`` (``t_k = t``; -1 at ``t = 0``)."""
        return self.schedule.timestep(t)

    def describe(self) -> dict:
        out = {"type": "Tabulated", "alphas_cumprod": self.alphas_cumprod.tolist()}
        return {**out, "times": self.times.tolist()} if self._times_given else out

    def __repr__(self) -> str:
        return f"Tabulated(N={self.alphas_cumprod.size}, T={self.T!r})"


class Custom(Process):
    r"""``dX = k(t) f_0(X) dt + g(t) dW`` with a user drift shape ``f_0``.

    Args:
        drift: ``f_0(x)`` for a UFL spatial coordinate ``x``, returning a UFL vector (or a
            sequence of scalars); write it with ``ufl`` functions (``ufl.exp``, ...).
        g: the diffusion scale, a number or a callable of ``t``.
        drift_numpy: the same ``f_0`` on NumPy points ``(N, d) -> (N, d)``, needed only
            by samplers.
        drift_rate: ``k(t)``, a number or a callable (default 1).
    """

    linear = False

    def __init__(
        self,
        drift: Callable,
        g: float | Callable[[np.ndarray], np.ndarray],
        *,
        drift_numpy: Callable[[np.ndarray], np.ndarray] | None = None,
        drift_rate: float | Callable = 1.0,
    ):
        if not callable(drift):
            raise BridgesolveInputError(f"drift = {drift!r}: expected a callable f0(x)")
        self._drift_ufl = drift
        self._drift_np = drift_numpy
        self._g = g if callable(g) else positive("g", g)
        self._k = drift_rate if callable(drift_rate) else float(drift_rate)

    def drift_rate(self, t):
        return self._k(t) if callable(self._k) else self._k + 0.0 * np.asarray(t, dtype=float)

    def diffusion(self, t):
        g = self._g(t) if callable(self._g) else self._g + 0.0 * np.asarray(t, dtype=float)
        return 0.5 * np.asarray(g, dtype=float) ** 2

    @property
    def separable(self) -> bool:
        return not (callable(self._g) or callable(self._k))

    def drift_shape_ufl(self, x):
        import ufl

        f = self._drift_ufl(x)
        return f if isinstance(f, ufl.core.expr.Expr) else ufl.as_vector(list(f))

    def drift_shape(self, x):
        if self._drift_np is None:
            raise BridgesolveInputError("Custom process: pass drift_numpy= to use it on points")
        return np.asarray(self._drift_np(np.asarray(x, dtype=float)), dtype=float)

    def describe(self) -> dict:
        return {"type": "Custom", "g": repr(self._g), "drift_rate": repr(self._k)}

    def __repr__(self) -> str:
        return f"Custom(drift={self._drift_ufl!r}, g={self._g!r})"


PROCESSES: dict[str, type[Process]] = {
    "brownian": Brownian,
    "ou": OU,
    "vp": VP,
    "subvp": SubVP,
    "ve": VE,
    "cosine": Cosine,
    "tabulated": Tabulated,
}


def process_from_description(desc: dict) -> Process:
    """Rebuild a process from its :meth:`Process.describe` dictionary (e.g. a bundle's
    metadata). NumPy only; ``Custom`` processes hold code and cannot be rebuilt.

    Derived entries (OU's ``center``, which equals ``mean``) are ignored.
    """
    if not isinstance(desc, dict) or not isinstance(desc.get("type"), str):
        raise BridgesolveInputError(
            f"process description {desc!r}: expected a dict with a 'type' string")
    kind = desc["type"].lower()
    if kind == "custom":
        raise BridgesolveInputError(
            "process description of type 'Custom': a custom drift is code and cannot be "
            "rebuilt from metadata; construct the process yourself")
    if kind not in PROCESSES:
        raise BridgesolveInputError(
            f"process type {desc['type']!r}: expected one of "
            f"{', '.join(cls.__name__ for cls in PROCESSES.values())}")
    params = {k: v for k, v in desc.items() if k not in ("type", "center")}
    try:
        return PROCESSES[kind](**params)
    except TypeError as exc:
        raise BridgesolveInputError(f"process description {desc!r}: {exc}") from None
