r"""Denoising score matching: the trainer of ``bridgesolve train``.

For a linear forward process with kernel ``X_t | X_0 = x_0 ~ N(a x_0 + (1 - a) μ, σ^2 I)``
the denoising loss (DESIGN.md §2.7)

.. math::

    J_{DSM}(θ) = E_{t} \, λ(t) \, E_{x_0 \sim ρ_0} E_{ε \sim N(0, I)}
        \big| s_θ(x_t, t) + ε / σ(t) \big|^2,
    \qquad x_t = a(t) x_0 + (1 - a(t)) μ + σ(t) ε,

with ``t ~ U(t_min, T)`` (or importance-sampled, :class:`TimeSampler`), is computed as
``λ/σ^2 |σ s_θ + ε|^2`` (finite as σ → 0). The
weightings are ``λ = σ^2`` (``"sigma2"``: the ε-prediction loss ``|ε̂ - ε|^2``), ``λ = g^2``
(``"g2"``: the likelihood weighting, whose ESM part bounds ``KL(ρ0 ‖ q_1)``) and ``λ = 1``.

Optimization: Adam, linear learning-rate warm-up then a cosine (or constant) schedule,
gradient clipping, an exponential moving average (EMA) of the weights (the EMA weights are
the trained model), automatic mixed precision on CUDA only (bf16 where supported, else fp16
with a gradient scaler). The device is ``cuda`` when available unless overridden.

Reproducibility and resumption: the batch of step ``k`` (data, times, noise) is drawn from a
NumPy generator seeded by ``(seed, k)`` alone, and a checkpoint holds the weights, the EMA,
the optimizer and scaler states, the step and the loss history, written atomically (a
temporary file renamed over the old one). Ctrl-C stops at the end of the current step and
writes a checkpoint; resuming from it gives bit-identical weights to an uninterrupted run
on the same device.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bridgesolve import __version__
from bridgesolve._validate import BridgesolveInputError
from bridgesolve.learn.config import TrainConfig, load_train_config, validate_train_config
from bridgesolve.learn.data import Dataset, as_dataset
from bridgesolve.learn.model import ScoreMLP, ScoreModel

CHECKPOINT = "checkpoint.pt"
FORMAT = "bridgesolve.learn.checkpoint/1"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) → ``cuda`` when available, else ``cpu``; other names as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BridgesolveInputError(f"device = {str(device)!r}: CUDA is not available on this "
                                    "machine (use 'cpu' or 'auto')")
    return dev


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


def learning_rate(step: int, cfg: dict) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then constant or cosine to 0."""
    lr, warm, total = cfg["lr"], cfg["warmup"], cfg["steps"]
    if warm and step < warm:
        return lr * (step + 1) / warm
    if cfg["schedule"] == "constant":
        return lr
    frac = (step - warm) / max(1, total - warm)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))


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


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained :class:`ScoreModel` with the EMA weights, in eval mode.
        raw_model: the same with the last optimizer iterate (not averaged).
        losses: the loss of every step (``(steps,)``).
        step: the number of steps done.
        checkpoint: the checkpoint file, or None without an output folder.
        info: device, precision, timings.
    """

    model: ScoreModel
    raw_model: ScoreModel
    losses: np.ndarray
    step: int
    checkpoint: Path | None
    info: dict = field(default_factory=dict)


class _StopOnSigint:
    """Ctrl-C sets a flag the loop reads between steps (a second Ctrl-C stops at once)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _atomic_torch_save(state: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _as_config(config) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return validate_train_config(config)
    if isinstance(config, str | os.PathLike):
        return load_train_config(config)
    raise BridgesolveInputError(f"config = {config!r}: expected a TrainConfig, a dict of "
                                "tables or a TOML path")


def _build_net(cfg: TrainConfig, dim: int, net: nn.Module | None) -> tuple[nn.Module, dict]:
    if net is not None:
        if not isinstance(net, nn.Module):
            raise BridgesolveInputError(f"net = {net!r}: expected a torch.nn.Module "
                                        "net(x, t) -> (B, d)")
        return net, {"type": "custom", "class": f"{type(net).__module__}.{type(net).__qualname__}"}
    m = cfg.model
    hp = {"dim": dim, "width": m["width"], "depth": m["depth"],
          "fourier_features": m["fourier_features"], "T": cfg.T}
    return ScoreMLP(**hp), {"type": "ScoreMLP", "hparams": hp}


def _prepare_output(output: Path, *, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (or None); refuses to clobber other folders."""
    ckpt = output / CHECKPOINT
    if output.exists() and not output.is_dir():
        raise BridgesolveInputError(f"output folder {str(output)!r} exists and is not a folder")
    if ckpt.is_file() and resume:
        return ckpt
    if resume and not ckpt.is_file():
        raise BridgesolveInputError(f"--resume: no checkpoint {str(ckpt)!r} to resume from")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise BridgesolveInputError(
            f"output folder {str(output)!r} exists: pass --resume to continue its training "
            "or --overwrite to start again")
    if overwrite and output.exists() and any(output.iterdir()) and not ckpt.is_file():
        raise BridgesolveInputError(f"output folder {str(output)!r} holds no {CHECKPOINT}: "
                                    "refusing to overwrite a folder that is not a training run")
    output.mkdir(parents=True, exist_ok=True)
    if overwrite:  # an earlier run's files must not be resumed or mistaken for this run's
        for name in (CHECKPOINT, "summary.json", "loss.png", "config.toml"):
            (output / name).unlink(missing_ok=True)
    return None


def train(config, *, net: nn.Module | None = None, data=None,
          output: str | os.PathLike | None = None, resume: bool = False,
          overwrite: bool = False, device: str | None = None, progress: bool = True,
          callback: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train a score network by denoising score matching.

    Args:
        config: a :class:`TrainConfig`, a dict of tables (``data``, ``process``, ``model``,
            ``train``, ``output``) or a TOML path.
        net: your own ``torch.nn.Module`` ``net(x (B, d), t (B,)) -> (B, d)``, read through
            ``[model] parameterization``; default a :class:`ScoreMLP` from ``[model]``.
        data: overrides ``[data]``: a Dataset, GaussianMixture, samples array or file path.
        output: the folder for ``checkpoint.pt``, ``config.toml``, ``summary.json`` and
            ``loss.png`` (default ``[output] directory``; none for dict configs without one:
            then nothing is written and nothing can be resumed).
        resume: continue from the folder's checkpoint (same config up to device,
            checkpoint_every, threads and amp).
        overwrite: start again in a folder that holds an earlier run.
        device: overrides ``[train] device``.
        progress: a tqdm progress bar with the loss.
        callback: ``callback(step, loss)`` after every step (e.g. logging); raising
            KeyboardInterrupt from it stops like Ctrl-C (a checkpoint is written).

    Returns:
        A :class:`TrainResult` (the EMA model is ``result.model``).

    Raises:
        KeyboardInterrupt: after Ctrl-C, once the checkpoint of the last step is written.
    """
    cfg = _as_config(config)
    tc = cfg.train
    dataset = as_dataset(data) if data is not None else cfg.dataset()
    process = cfg.process()
    T = cfg.T
    dev = resolve_device(device or tc["device"])
    if tc["threads"]:
        torch.set_num_threads(tc["threads"])
    out_dir = Path(output) if output is not None else cfg.output_dir
    resume_from = (_prepare_output(out_dir, resume=resume, overwrite=overwrite)
                   if out_dir is not None else None)
    if out_dir is None and resume:
        raise BridgesolveInputError("resume=True needs an output folder holding a checkpoint")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc["seed"])
        module, net_info = _build_net(cfg, dataset.dim, net)
    model = ScoreModel(module, process, cfg.model["parameterization"]).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=tc["lr"])
    amp = tc["amp"] and dev.type == "cuda"
    amp_dtype = (torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    losses: list[float] = []
    start, elapsed_before = 0, 0.0

    if resume_from is not None:
        state = torch.load(resume_from, map_location=dev, weights_only=True)
        if state.get("format") != FORMAT:
            raise BridgesolveInputError(f"{str(resume_from)!r} is not a bridgesolve checkpoint")
        saved = TrainConfig(raw=state["config"]).science()
        if json.dumps(saved, sort_keys=True) != json.dumps(cfg.science(), sort_keys=True):
            raise BridgesolveInputError(
                f"cannot resume from {str(resume_from)!r}: its config differs from this one "
                f"(saved: {json.dumps(saved, sort_keys=True)}); only device, checkpoint_every, "
                "threads and amp may change")
        model.net.load_state_dict(state["net"])
        ema.net.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, losses = int(state["step"]), list(state["losses"])
        elapsed_before = float(state.get("elapsed_s", 0.0))

    ckpt_path = out_dir / CHECKPOINT if out_dir is not None else None
    t0 = time.perf_counter()

    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()

    def save(step: int) -> None:
        flush()
        if ckpt_path is None:
            return
        _atomic_torch_save({
            "format": FORMAT, "config": cfg.as_dict(), "step": step, "net_info": net_info,
            "net": model.net.state_dict(), "ema": ema.net.state_dict(),
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "losses": list(losses), "data": dataset.describe(), "process": process.describe(),
            "elapsed_s": elapsed_before + time.perf_counter() - t0,
            "bridgesolve": __version__, "torch": str(torch.__version__),
        }, ckpt_path)

    if ckpt_path is not None and cfg.text:
        _atomic_text(out_dir / "config.toml", cfg.text)

    from tqdm.auto import tqdm

    steps, n, seed = tc["steps"], tc["batch_size"], tc["seed"]
    sampler = TimeSampler(model.kernel, tc["weighting"], tc["t_min"], T, tc["t_sampling"])
    done, consistent = start, True
    bar = tqdm(total=steps, initial=start, disable=not progress, desc="train", unit="step",
               dynamic_ncols=True)
    model.train()
    try:
        with _StopOnSigint() as stop:
            for step in range(start, steps):
                consistent = False
                x0, t, eps, w_is = (torch.as_tensor(a, dtype=torch.float32).to(dev)
                                    for a in batch(dataset, n, seed, step, sampler))
                for group in opt.param_groups:
                    group["lr"] = learning_rate(step, tc)
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp):
                    loss = (w_is * dsm_loss(model, x0, t, eps, tc["weighting"])).mean()
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if tc["grad_clip"] > 0:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
                scaler.step(opt)
                scaler.update()
                decay = min(tc["ema"], (1.0 + step) / (10.0 + step))
                with torch.no_grad():
                    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
                        pe.lerp_(p, 1.0 - decay)
                # Losses stay on the device until read in bulk: one host sync per 25 steps.
                pending.append(loss.detach())
                done, consistent = step + 1, True
                bar.update(1)
                if done % 25 == 0 or done == steps or callback is not None:
                    flush()
                    bar.set_postfix(loss=f"{np.mean(losses[-25:]):.4g}")
                if callback is not None:
                    callback(done, losses[-1])
                if stop.requested:
                    raise KeyboardInterrupt
                if tc["checkpoint_every"] and done % tc["checkpoint_every"] == 0:
                    save(done)
    except KeyboardInterrupt:
        if consistent and done > start:
            save(done)
        raise
    finally:
        bar.close()
    flush()
    if done > start or resume_from is None:
        save(done)
    elapsed = elapsed_before + time.perf_counter() - t0
    info = {"device": str(dev), "amp": amp and str(amp_dtype).replace("torch.", ""),
            "steps": done, "elapsed_s": elapsed, "resumed_from_step": start if resume_from
            else None, "steps_per_s": (done - start) / max(time.perf_counter() - t0, 1e-9),
            "net": net_info, "parameters": sum(p.numel() for p in model.parameters())}
    if out_dir is not None:
        tail = np.asarray(losses[-max(1, min(100, len(losses))):])
        summary = {"bridgesolve": __version__, "torch": str(torch.__version__),
                   "config_source": cfg.source, "config": cfg.as_dict(),
                   "data": dataset.describe(), "process": process.describe(), **info,
                   "final_loss": float(tail.mean()) if tail.size else None,
                   "checkpoint": str(ckpt_path)}
        _atomic_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=repr) + "\n")
        if losses:
            from bridgesolve.plotting import plot_series

            k = np.arange(1, len(losses) + 1)
            w = max(1, len(losses) // 100)
            smooth = np.convolve(losses, np.ones(w) / w, mode="same")
            plot_series(k, {"loss": np.asarray(losses), f"running mean ({w})": smooth},
                        out_dir / "loss.png", xlabel="step", ylabel="DSM loss",
                        title=f"{tc['weighting']} weighting, {cfg.model['parameterization']}",
                        logy=bool(np.all(np.asarray(losses) > 0)))
    model.eval()
    ema.eval()
    model.t_min = ema.t_min = tc["t_min"]  # the validator evaluates at max(t, t_min)
    return TrainResult(model=ema, raw_model=model, losses=np.asarray(losses), step=done,
                       checkpoint=ckpt_path, info=info)


def load_checkpoint(path: str | os.PathLike, *, net: nn.Module | None = None,
                    device: str | None = "auto", ema: bool = True) -> ScoreModel:
    """The score model of a checkpoint (EMA weights by default), in eval mode.

    Args:
        path: a ``checkpoint.pt`` or the training output folder holding one.
        net: an instance of your own module class when the run used one.
        device: where to put it (``"auto"``: cuda when available).
        ema: the EMA weights (default) or the last iterate.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise BridgesolveInputError(f"checkpoint {str(path)!r} does not exist")
    dev = resolve_device(device)
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, ...
        raise BridgesolveInputError(f"checkpoint {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BridgesolveInputError(f"{str(path)!r} is not a bridgesolve checkpoint")
    cfg = TrainConfig(raw=state["config"])
    info = state["net_info"]
    if info["type"] == "ScoreMLP":
        module = ScoreMLP(**info["hparams"])
    elif net is None:
        raise BridgesolveInputError(f"checkpoint {str(path)!r} holds a custom network "
                                    f"({info['class']}): pass net= an instance of it")
    else:
        module = net
    model = ScoreModel(module, cfg.process(), cfg.model["parameterization"])
    model.net.load_state_dict(state["ema" if ema else "net"])
    model.checkpoint_info = {"step": state["step"], "config": state["config"],
                             "data": state.get("data")}
    model.t_min = cfg.train["t_min"]
    return model.to(dev).eval()
