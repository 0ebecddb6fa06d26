r"""The denoising score-matching objective of the trainer: the weighting ``λ(t)``, the
per-sample loss, the times of the loss (uniform or importance-sampled) and the seeded batch
of a step.

For a linear forward process with kernel ``X_t | X_0 = x_0 ~ N(a x_0 + (1 - a) μ, σ^2 I)``
the per-sample loss is ``λ(t)/σ^2 |σ s_θ(x_t, t) + ε|^2`` with
``x_t = a(t) x_0 + (1 - a(t)) μ + σ(t) ε`` (see :mod:`bridgesolve.learn.trainer`).
"""

from __future__ import annotations

import numpy as np
import torch

from bridgesolve.learn.data import Dataset
from bridgesolve.learn.model import ScoreModel


def weight(kernel, weighting: str, t: torch.Tensor) -> torch.Tensor:
    """``λ(t)`` of a weighting name."""
    if weighting == "sigma2":
        return kernel.var(t)
    if weighting == "g2":
        return kernel.g2(t)
    return torch.ones_like(t)


def dsm_loss(model: ScoreModel, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
             weighting: str = "sigma2") -> torch.Tensor:
    """Per-sample denoising loss ``λ(t)/σ^2 |σ s_θ(x_t, t) + ε|^2``, shape ``(B,)``."""
    k = model.kernel
    xt = k.perturb(x0, t, eps)
    r = model.sigma_score(xt, t).float() + eps
    return weight(k, weighting, t) / k.var(t) * (r * r).sum(dim=1)


class TimeSampler:
    r"""Times of the denoising loss: ``t ~ U(t_min, T)``, or importance sampling.

    ``"importance"`` draws ``t`` with density ``q ∝ λ(t)/σ²(t)`` (tabulated on a geometric
    grid, sampled by inverting its piecewise-linear CDF) and returns the per-sample weight
    ``1/((T - t_min) q(t))`` of the density actually sampled, so the loss stays an unbiased
    estimate of the uniform-time objective while its variance drops: the factor ``λ/σ²``,
    which grows like ``1/t`` for ``λ = g²``, is absorbed into the sampling.
    """

    def __init__(self, kernel, weighting: str, t_min: float, T: float, mode: str = "uniform",
                 n: int = 4096):
        self.t_min, self.T, self.mode = float(t_min), float(T), mode
        if mode == "importance":
            grid = self.t_min * (self.T / self.t_min) ** np.linspace(0.0, 1.0, n + 1)
            tt = torch.as_tensor(grid, dtype=torch.float64)
            f = (weight(kernel, weighting, tt) / kernel.var(tt)).numpy()
            self.grid = grid
            self.cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(grid))])

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(t, w)``: ``n`` times and their importance weights (ones when uniform)."""
        u = rng.random(n)
        if self.mode != "importance":
            return self.t_min + (self.T - self.t_min) * u, np.ones(n)
        cdf, grid = self.cdf, self.grid
        c = u * cdf[-1]
        i = np.clip(np.searchsorted(cdf, c, side="right") - 1, 0, grid.size - 2)
        mass = cdf[i + 1] - cdf[i]
        t = grid[i] + (c - cdf[i]) / mass * (grid[i + 1] - grid[i])
        q = mass / (grid[i + 1] - grid[i]) / cdf[-1]
        return t, 1.0 / ((self.T - self.t_min) * q)


def batch(data: Dataset, n: int, seed: int, step: int, times: TimeSampler
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The batch of step ``step``: ``(x0, t, ε, w)``, a function of ``(seed, step)`` only."""
    rng = np.random.default_rng([seed, step])
    x0 = data.sample(n, rng)
    t, w = times.sample(rng, n)
    eps = rng.standard_normal((n, data.dim))
    return x0, t, eps, w


__all__ = ["TimeSampler", "batch", "dsm_loss", "weight"]
