r"""Time-conditioned score networks and the forward process's Gaussian kernel in PyTorch.

The forward process is one of :mod:`bridgesolve.process` (the PDE side's vocabulary); its
perturbation kernel ``X_t | X_0 = x_0 ~ N(a(t) x_0 + (1 - a(t)) μ, σ^2(t) I)`` and its
``g(t)^2`` are re-expressed here in torch (closed forms, the same as ``process.transition``
and ``process.g``) so that whole batches of times are evaluated on the device.

A :class:`ScoreModel` wraps any network ``net(x, t) -> (B, d)`` and a parameterization:

* ``"eps"`` (ε-prediction): ``s_θ(x, t) = -net(x, t) / σ(t)``;
* ``"score"``: ``s_θ(x, t) = net(x, t)``.

Calling a ScoreModel returns the score, so it is what :func:`bridgesolve.learn.validate`
and the samplers consume.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bridgesolve._validate import BridgesolveInputError, choice, positive, positive_int
from bridgesolve.process import OU, VE, VP, Brownian, Process, SubVP

PARAMETERIZATIONS = ("eps", "score")


class Kernel:
    """``a(t)``, ``σ^2(t)`` and ``g(t)^2`` of a linear process, on torch tensors of times.

    Args:
        process: VP, SubVP, VE, OU or Brownian.
    """

    def __init__(self, process: Process):
        if not isinstance(process, VP | VE | OU | Brownian):
            raise BridgesolveInputError(
                f"process = {process!r}: expected VP, SubVP, VE, OU or Brownian (a linear "
                "process with a closed-form Gaussian kernel)")
        self.process = process
        self.center = float(getattr(process, "center", 0.0))

    def _B(self, t):
        p = self.process
        return p.beta_min * t + 0.5 * (p.beta_max - p.beta_min) * t * t / p.T

    def mean_coef(self, t: torch.Tensor) -> torch.Tensor:
        """``a(t) = exp(-∫_0^t k)``."""
        p = self.process
        if isinstance(p, VP):
            return torch.exp(-0.5 * self._B(t))
        if isinstance(p, OU):
            return torch.exp(-p.theta * t)
        return torch.ones_like(t)

    def var(self, t: torch.Tensor) -> torch.Tensor:
        """``σ^2(t)``, the variance added to ``a(t) X_0`` by time ``t``."""
        p = self.process
        if isinstance(p, SubVP):
            return (-torch.expm1(-self._B(t))) ** 2
        if isinstance(p, VP):
            return -torch.expm1(-self._B(t))
        if isinstance(p, VE):
            ratio = p.sigma_max / p.sigma_min
            return p.sigma_min**2 * torch.expm1(2.0 * math.log(ratio) * t / p.T)
        if isinstance(p, OU):
            return p.sigma**2 / (2.0 * p.theta) * -torch.expm1(-2.0 * p.theta * t)
        return p.sigma**2 * t

    def g2(self, t: torch.Tensor) -> torch.Tensor:
        """``g(t)^2 = 2 D(t)``."""
        p = self.process
        if isinstance(p, VP):
            beta = p.beta_min + (p.beta_max - p.beta_min) * t / p.T
            return beta * -torch.expm1(-2.0 * self._B(t)) if isinstance(p, SubVP) else beta
        if isinstance(p, VE):
            ratio = p.sigma_max / p.sigma_min
            return 2.0 * math.log(ratio) / p.T * (p.sigma_min * ratio ** (t / p.T)) ** 2
        return torch.full_like(t, p.sigma**2)

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x_t = a x_0 + (1 - a) μ + σ ε``."""
        a = self.mean_coef(t)[:, None]
        return a * x0 + (1.0 - a) * self.center + self.var(t).sqrt()[:, None] * eps


class FourierTime(nn.Module):
    r"""Fourier features of the time, ``[sin(ω_k t/T), cos(ω_k t/T)]``, with ``n``
    frequencies ``ω_k`` geometrically spaced from 1 to ``max_freq`` (fixed, not learned),
    plus ``log σ^2``-like coordinate ``log(t/T + 1e-4)`` that resolves small times."""

    def __init__(self, n: int = 16, *, T: float = 1.0, max_freq: float = 200.0):
        super().__init__()
        self.T = float(T)
        self.register_buffer("freqs", torch.logspace(0.0, math.log10(max_freq), n))

    @property
    def out_features(self) -> int:
        return 2 * self.freqs.numel() + 1

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        s = t[:, None] / self.T
        arg = s * self.freqs[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg), torch.log(s + 1e-4)], dim=1)


class ScoreMLP(nn.Module):
    """A time-conditioned MLP ``net(x, t) -> (B, d)``: ``[x, features(t)]`` → ``depth``
    hidden layers of ``width`` SiLU units → ``d`` outputs.

    Args:
        dim: the space dimension d.
        width: hidden units per layer.
        depth: number of hidden layers.
        fourier_features: number of time frequencies.
        T: the time horizon (times are scaled by 1/T).
    """

    def __init__(self, dim: int, *, width: int = 128, depth: int = 3,
                 fourier_features: int = 16, T: float = 1.0):
        super().__init__()
        self.dim = positive_int("dim", dim)
        self.hparams = {"dim": self.dim, "width": positive_int("width", width),
                        "depth": positive_int("depth", depth),
                        "fourier_features": positive_int("fourier_features", fourier_features),
                        "T": positive("T", T)}
        self.time = FourierTime(fourier_features, T=T)
        layers: list[nn.Module] = []
        n_in = dim + self.time.out_features
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.SiLU()]
            n_in = width
        layers.append(nn.Linear(n_in, dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x, self.time(t.to(x.dtype))], dim=1))


class ScoreModel(nn.Module):
    """``s_θ(x, t)`` from a network and a parameterization.

    Args:
        net: any module ``net(x (B, d), t (B,)) -> (B, d)``.
        process: the forward process (for ``σ(t)`` of the ε-parameterization).
        parameterization: ``"eps"`` (``s = -net/σ``) or ``"score"`` (``s = net``).
    """

    def __init__(self, net: nn.Module, process: Process, parameterization: str = "eps"):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise BridgesolveInputError(f"net = {net!r}: expected a torch.nn.Module")
        self.net = net
        self.kernel = Kernel(process)
        self.parameterization = choice("parameterization", parameterization, PARAMETERIZATIONS)

    @property
    def process(self) -> Process:
        return self.kernel.process

    def sigma_score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``σ(t) s_θ(x, t)`` (= ``-ε̂`` for the ε-parameterization), finite as ``σ → 0``."""
        out = self.net(x, t)
        if self.parameterization == "eps":
            return -out
        return self.kernel.var(t).sqrt()[:, None].to(out.dtype) * out

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The score ``s_θ(x, t)``; ``t`` is a tensor ``(B,)`` or a number."""
        if not torch.is_tensor(t) or t.ndim == 0:
            t = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
        out = self.net(x, t)
        if self.parameterization == "eps":
            return -out / self.kernel.var(t).sqrt()[:, None].to(out.dtype)
        return out
