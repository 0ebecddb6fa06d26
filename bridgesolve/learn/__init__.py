"""Score networks in PyTorch: a trainer and a validator against the PDE reference.

``bs.learn.train(config)`` trains a time-conditioned network by denoising score matching;
``bs.learn.validate(score, bundle)`` measures how wrong any score is (a checkpoint, a
``torch.nn.Module`` or a NumPy callable ``score(x, t)``) against a
:class:`~bridgesolve.reference.ReferenceBundle`: explicit score-matching error per time,
the denoising identity ``J_DSM - J_ESM = C``, exact ``KL(ρ0 ‖ q_h)`` and the §2.7 bound.
``bs.learn.adapt(model, convention, process=...)`` reads a network of another codebase
(score_sde, diffusers, EDM, k-diffusion, flow matching) as a score of bridgesolve's time;
``bs.learn.validate_bridge(forward, backward, bundle)`` measures learned bridge drifts
against a bridge bundle (drift errors, the FE law of the learned SDE, its KL cost).

This is the only place in bridgesolve that imports torch, and only when a name that needs
it is first used (the validator of NumPy callables works without torch).
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {
    "train": "bridgesolve.learn.trainer",
    "load_checkpoint": "bridgesolve.learn.trainer",
    "TrainResult": "bridgesolve.learn.trainer",
    "resolve_device": "bridgesolve.learn.trainer",
    "ScoreMLP": "bridgesolve.learn.model",
    "ScoreModel": "bridgesolve.learn.model",
    "Kernel": "bridgesolve.learn.model",
    "validate": "bridgesolve.learn.validation",
    "ValidationReport": "bridgesolve.learn.validation",
    "as_numpy_score": "bridgesolve.learn.validation",
    "validate_bridge": "bridgesolve.learn.bridges",
    "BridgeReport": "bridgesolve.learn.bridges",
    "adapt": "bridgesolve.learn.adapters",
    "AdaptedScore": "bridgesolve.learn.adapters",
    "load_train_config": "bridgesolve.learn.config",
    "TrainConfig": "bridgesolve.learn.config",
    "Dataset": "bridgesolve.learn.data",
    "datasets": "bridgesolve.learn.data",
}


def __getattr__(name: str):
    if name == "datasets":
        return import_module("bridgesolve.learn.data")
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bridgesolve.learn' has no attribute {name!r}")


__all__ = sorted(_LAZY)
