"""diffusers' noise schedules that only torch reproduces bit for bit.

:func:`bridgesolve._tabulated.sigmoid_betas` calls this module when torch is importable
(torch stays under ``bridgesolve/learn/``); it imports nothing else of bridgesolve.
"""

from __future__ import annotations

import numpy as np


def sigmoid_betas(beta_start: float, beta_end: float, n: int) -> np.ndarray:
    """``DDPMScheduler``'s ``sigmoid`` betas, computed by diffusers' own expression:
    ``torch.sigmoid(torch.linspace(-6, 6, n)) * (beta_end - beta_start) + beta_start``
    in float32 (a float32 tensor times and plus Python floats stays float32)."""
    import torch

    x = torch.linspace(-6, 6, n, dtype=torch.float32)
    return (torch.sigmoid(x) * (beta_end - beta_start) + beta_start).numpy().astype(np.float32)
