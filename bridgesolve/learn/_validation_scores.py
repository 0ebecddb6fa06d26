"""Scores for the validator: checkpoints, torch modules and NumPy callables behind one
batched NumPy interface (split from :mod:`bridgesolve.learn.validation`, which re-exports
these names; torch is imported only when a module or checkpoint is handed in)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.process import Process


# -- scores ------------------------------------------------------------------------------
class NumpyScore:
    """A score ``s(x, t)`` on NumPy arrays, with batched evaluation over many times.

    Built by :func:`as_numpy_score`; calling it gives ``(N, d)`` float64 scores at one time.
    A trained model is evaluated at ``max(t, t_min)`` with its training ``t_min``: it never
    saw smaller times, and the ε-parameterization's ``-ε̂/σ(t)`` diverges at ``t = 0``
    (samplers stop at ``t_min`` for the same reason).
    """

    def __init__(self, fn: Callable, *, torch_model=None, device=None, chunk: int = 1 << 16,
                 process: Process | None = None, t_min: float | None = None,
                 label: str = "callable", data: dict | None = None, dim: int | None = None):
        self._fn = fn
        self.data = data  # the training data's describe() (checkpoints), else None
        self.dim = dim  # the network's input dimension when known, else None
        self.model = torch_model
        self.device = device
        self.chunk = int(chunk)
        self.process = process
        self.t_min = t_min
        self.label = label

    def _floor(self, t):
        return t if self.t_min is None else np.maximum(t, self.t_min)

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        t = float(self._floor(t))
        if self.model is not None:
            return self.at_pairs(x, np.full(x.shape[0], float(t)))
        out = np.asarray(self._fn(x, float(t)), dtype=float)
        if out.shape != x.shape:
            raise BridgesolveInputError(f"score(x, t) returned shape {out.shape}: expected "
                                        f"{x.shape}, the shape of x")
        return out

    def at_pairs(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Scores at points ``x (M, d)`` with their own times ``t (M,)``."""
        x = np.asarray(x, dtype=float)
        t = self._floor(np.asarray(t, dtype=float))
        if self.model is None:
            out = np.empty_like(x)
            for tv in np.unique(t):  # a loop over the few distinct times, not over points
                sel = t == tv
                out[sel] = self(x[sel], float(tv))
            return out
        import torch

        dtype = next((p.dtype for p in self.model.parameters()), torch.float32)
        out = np.empty_like(x)
        with torch.no_grad():
            for i in range(0, x.shape[0], self.chunk):
                xs = torch.as_tensor(np.require(x[i:i + self.chunk], requirements="W"),
                                     dtype=dtype, device=self.device)
                ts = torch.as_tensor(np.require(t[i:i + self.chunk], requirements="W"),
                                     dtype=dtype, device=self.device)
                out[i:i + self.chunk] = self.model(xs, ts).double().cpu().numpy()
        return out

    def at_levels(self, pts: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Scores at the same points at every time: ``(len(times), N, d)``."""
        pts = np.asarray(pts, dtype=float)
        L, N = len(times), pts.shape[0]
        if self.model is None:
            return np.stack([self(pts, float(t)) for t in times])
        # Flattened (time, point) pairs, built chunk by chunk on the device.
        import torch

        dtype = next((p.dtype for p in self.model.parameters()), torch.float32)
        P = torch.as_tensor(np.require(pts, requirements="W"), dtype=dtype, device=self.device)
        tt = torch.as_tensor(self._floor(np.asarray(times, dtype=float)), dtype=dtype,
                             device=self.device)
        out = np.empty((L * N, pts.shape[1]))
        with torch.no_grad():
            for i in range(0, L * N, self.chunk):
                idx = torch.arange(i, min(i + self.chunk, L * N), device=self.device)
                out[i:i + idx.numel()] = self.model(P[idx % N], tt[idx // N]).double().cpu().numpy()
        return out.reshape(L, N, -1)


def as_numpy_score(score, *, device: str | None = "auto", chunk: int = 1 << 16,
                   net=None) -> NumpyScore:
    """Wrap a checkpoint path, a ``torch.nn.Module`` or a NumPy callable as a NumpyScore.

    Args:
        score: ``checkpoint.pt`` (or its folder), a module ``model(x (B, d), t (B,)) ->
            (B, d)`` returning the score, or a callable ``score(x (N, d), t: float)``.
        device: where torch models run (``"auto"``: cuda when available).
        chunk: points per device batch.
        net: your own module class instance, for checkpoints of custom networks.
    """
    if isinstance(score, NumpyScore):
        return score
    if isinstance(score, str | os.PathLike):
        from bridgesolve.learn.trainer import load_checkpoint, resolve_device

        model = load_checkpoint(score, net=net, device=device)
        t_min = model.checkpoint_info["config"]["train"]["t_min"]
        return NumpyScore(None, torch_model=model, device=resolve_device(device), chunk=chunk,
                          process=model.process, t_min=t_min, label=str(score),
                          data=model.checkpoint_info.get("data"), dim=_module_dim(model))
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(score, torch.nn.Module):
        from bridgesolve.learn.trainer import resolve_device

        params = list(score.parameters())
        dev = params[0].device if params else resolve_device(device)
        return NumpyScore(None, torch_model=_EvalModule(score), device=dev, chunk=chunk,
                          process=getattr(score, "process", None),
                          t_min=getattr(score, "t_min", None), label=type(score).__name__,
                          data=(getattr(score, "checkpoint_info", None) or {}).get("data"),
                          dim=_module_dim(score))
    if callable(score):
        # An adapted score (bridgesolve.learn.adapters) carries its process and t_min.
        proc = getattr(score, "process", None)
        return NumpyScore(score, label=getattr(score, "label", None)
                          or getattr(score, "__name__", type(score).__name__),
                          process=proc if isinstance(proc, Process) else None,
                          t_min=getattr(score, "t_min", None))
    raise BridgesolveInputError(f"score = {score!r}: expected a checkpoint path, a "
                                "torch.nn.Module or a callable score(x, t)")


def _module_dim(module) -> int | None:
    """The input dimension of a score model (``ScoreModel.net.dim`` of bridgesolve's MLP)."""
    for obj in (module, getattr(module, "net", None)):
        dim = getattr(obj, "dim", None)
        if isinstance(dim, int):
            return dim
    return None


class _EvalModule:
    """Calls a module in eval mode (dropout/batch-norm off) and restores its mode."""

    def __init__(self, module):
        self.module = module

    def parameters(self):
        return self.module.parameters()

    def __call__(self, x, t):
        mode = self.module.training
        self.module.eval()
        try:
            return self.module(x, t)
        finally:
            self.module.train(mode)


__all__ = ["NumpyScore", "as_numpy_score"]
