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
from bridgesolve._validate import first_line as _first_line
from bridgesolve.learn.config import TrainConfig, load_train_config, validate_train_config
from bridgesolve.learn.data import Dataset, as_dataset
from bridgesolve.learn.model import ScoreMLP, ScoreModel
from bridgesolve.learn.objective import TimeSampler, batch, dsm_loss, weight  # noqa: F401

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


def learning_rate(step: int, cfg: dict) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then constant or cosine to 0."""
    lr, warm, total = cfg["lr"], cfg["warmup"], cfg["steps"]
    if warm and step < warm:
        return lr * (step + 1) / warm
    if cfg["schedule"] == "constant":
        return lr
    frac = (step - warm) / max(1, total - warm)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))


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
    """The checkpoint to resume from (or None); refuses to clobber other folders.

    The rules are those of every folder filled in place (:func:`bridgesolve._folders.
    prepare_folder`): a folder holding a checkpoint is continued with ``resume`` or started
    again with ``overwrite`` (an earlier run's files removed, so they are neither resumed
    nor mistaken for this run's); any other non-empty folder is refused.
    """
    from bridgesolve._folders import prepare_folder

    resumable = prepare_folder(output, resume=resume, overwrite=overwrite,
                               markers=(CHECKPOINT,), kind="training run",
                               clear=(CHECKPOINT, "summary.json", "loss.png", "config.toml"),
                               resume_needs=CHECKPOINT)
    return output / CHECKPOINT if resumable else None


class _Run:
    """The state of one training run: model, EMA, optimizer, scaler, loss history and the
    checkpoint it writes. :func:`train` builds one, restores it from a checkpoint when
    resuming, runs its steps and writes its summary."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset, net: nn.Module | None,
                 dev: torch.device, ckpt_path: Path | None):
        tc = cfg.train
        self.cfg, self.tc, self.dataset, self.dev = cfg, tc, dataset, dev
        self.process = cfg.process()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tc["seed"])
            module, self.net_info = _build_net(cfg, dataset.dim, net)
        self.model = ScoreModel(module, self.process, cfg.model["parameterization"]).to(dev)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc["lr"])
        self.amp = tc["amp"] and dev.type == "cuda"
        self.amp_dtype = (torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported()
                          else torch.float16)
        self.scaler = torch.amp.GradScaler("cuda",
                                           enabled=self.amp and self.amp_dtype == torch.float16)
        self.losses: list[float] = []
        self.pending: list[torch.Tensor] = []
        self.start, self.elapsed_before = 0, 0.0
        self.ckpt_path = ckpt_path
        self.t0 = time.perf_counter()

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint ``path`` (same science config, else refused)."""
        state = _read_checkpoint(path, self.dev)
        saved = TrainConfig(raw=state["config"]).science()
        if json.dumps(saved, sort_keys=True) != json.dumps(self.cfg.science(), sort_keys=True):
            raise BridgesolveInputError(
                f"cannot resume from {str(path)!r}: its config differs from this one "
                f"(saved: {json.dumps(saved, sort_keys=True)}); only device, checkpoint_every, "
                "threads and amp may change")
        try:
            self.model.net.load_state_dict(state["net"])
            self.ema.net.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise BridgesolveInputError(f"checkpoint {str(path)!r}: its weights do not fit "
                                        f"this network ({_first_line(exc)})") from None
        self.start, self.losses = int(state["step"]), list(state["losses"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))

    def flush(self) -> None:
        """Move the losses still on the device into ``losses`` (one host sync)."""
        if self.pending:
            self.losses.extend(torch.stack(self.pending).float().cpu().tolist())
            self.pending.clear()

    def save(self, step: int) -> None:
        """Write the checkpoint of ``step`` (atomically; nothing without an output folder)."""
        self.flush()
        if self.ckpt_path is None:
            return
        _atomic_torch_save({
            "format": FORMAT, "config": self.cfg.as_dict(), "step": step,
            "net_info": self.net_info,
            "net": self.model.net.state_dict(), "ema": self.ema.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "losses": list(self.losses), "data": self.dataset.describe(),
            "process": self.process.describe(),
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.t0,
            "bridgesolve": __version__, "torch": str(torch.__version__),
        }, self.ckpt_path)

    def step(self, step: int, sampler: TimeSampler) -> None:
        """One optimizer step on the batch of ``step``, and the EMA update."""
        tc, model, opt, scaler = self.tc, self.model, self.opt, self.scaler
        x0, t, eps, w_is = (torch.as_tensor(a, dtype=torch.float32).to(self.dev)
                            for a in batch(self.dataset, tc["batch_size"], tc["seed"], step,
                                           sampler))
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, tc)
        with torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.amp):
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
            for pe, p in zip(self.ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(p, 1.0 - decay)
        # Losses stay on the device until read in bulk: one host sync per 25 steps.
        self.pending.append(loss.detach())

    def loop(self, *, progress: bool, callback: Callable[[int, float], None] | None) -> int:
        """Steps ``start .. steps - 1``; returns the number of steps done. Ctrl-C (or
        KeyboardInterrupt from ``callback``) writes the checkpoint of the last whole step
        and re-raises."""
        from tqdm.auto import tqdm

        tc, steps = self.tc, self.tc["steps"]
        sampler = TimeSampler(self.model.kernel, tc["weighting"], tc["t_min"], self.cfg.T,
                              tc["t_sampling"])
        done, consistent = self.start, True
        bar = tqdm(total=steps, initial=self.start, disable=not progress, desc="train",
                   unit="step", dynamic_ncols=True)
        self.model.train()
        try:
            with _StopOnSigint() as stop:
                for step in range(self.start, steps):
                    consistent = False
                    self.step(step, sampler)
                    done, consistent = step + 1, True
                    bar.update(1)
                    if done % 25 == 0 or done == steps or callback is not None:
                        self.flush()
                        bar.set_postfix(loss=f"{np.mean(self.losses[-25:]):.4g}")
                    if callback is not None:
                        callback(done, self.losses[-1])
                    if stop.requested:
                        raise KeyboardInterrupt
                    if tc["checkpoint_every"] and done % tc["checkpoint_every"] == 0:
                        self.save(done)
        except KeyboardInterrupt:
            if consistent and done > self.start:
                self.save(done)
            raise
        finally:
            bar.close()
        self.flush()
        return done

    def info(self, done: int, resumed: bool) -> dict:
        """Device, precision, timings and the network of the finished run."""
        wall = time.perf_counter() - self.t0
        return {"device": str(self.dev),
                "amp": self.amp and str(self.amp_dtype).replace("torch.", ""),
                "steps": done, "elapsed_s": self.elapsed_before + wall,
                "resumed_from_step": self.start if resumed else None,
                "steps_per_s": (done - self.start) / max(wall, 1e-9),
                "net": self.net_info,
                "parameters": sum(p.numel() for p in self.model.parameters())}

    def write_summary(self, out_dir: Path, info: dict) -> None:
        """``summary.json`` and ``loss.png`` of the run in ``out_dir``."""
        cfg, losses = self.cfg, self.losses
        tail = np.asarray(losses[-max(1, min(100, len(losses))):])
        summary = {"bridgesolve": __version__, "torch": str(torch.__version__),
                   "config_source": cfg.source, "config": cfg.as_dict(),
                   "data": self.dataset.describe(), "process": self.process.describe(), **info,
                   "final_loss": float(tail.mean()) if tail.size else None,
                   "checkpoint": str(self.ckpt_path)}
        _atomic_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=repr) + "\n")
        if losses:
            _plot_losses(losses, out_dir / "loss.png",
                         f"{self.tc['weighting']} weighting, {cfg.model['parameterization']}")

    def result(self, done: int, info: dict) -> TrainResult:
        """The :class:`TrainResult`: models in eval mode, evaluated from ``t_min`` on."""
        model, ema = self.model, self.ema
        model.eval()
        ema.eval()
        model.t_min = ema.t_min = self.tc["t_min"]  # the validator evaluates at max(t, t_min)
        return TrainResult(model=ema, raw_model=model, losses=np.asarray(self.losses),
                           step=done, checkpoint=self.ckpt_path, info=info)


def _plot_losses(losses: list[float], path: Path, title: str) -> None:
    from bridgesolve.plotting import plot_series

    k = np.arange(1, len(losses) + 1)
    w = max(1, len(losses) // 100)
    smooth = np.convolve(losses, np.ones(w) / w, mode="same")
    plot_series(k, {"loss": np.asarray(losses), f"running mean ({w})": smooth}, path,
                xlabel="step", ylabel="DSM loss", title=title,
                logy=bool(np.all(np.asarray(losses) > 0)))


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
    dev = resolve_device(device or tc["device"])
    if tc["threads"]:
        torch.set_num_threads(tc["threads"])
    out_dir = Path(output) if output is not None else cfg.output_dir
    resume_from = (_prepare_output(out_dir, resume=resume, overwrite=overwrite)
                   if out_dir is not None else None)
    if out_dir is None and resume:
        raise BridgesolveInputError("resume=True needs an output folder holding a checkpoint")

    run = _Run(cfg, dataset, net, dev, out_dir / CHECKPOINT if out_dir is not None else None)
    if resume_from is not None:
        run.restore(resume_from)
        run.t0 = time.perf_counter()
    if run.ckpt_path is not None and cfg.text:
        _atomic_text(out_dir / "config.toml", cfg.text)
    done = run.loop(progress=progress, callback=callback)
    if done > run.start or resume_from is None:
        run.save(done)
    info = run.info(done, resume_from is not None)
    if out_dir is not None:
        run.write_summary(out_dir, info)
    return run.result(done, info)


_CHECKPOINT_KEYS = ("config", "step", "net_info", "net", "ema", "optimizer", "losses")


def _read_checkpoint(path: Path, dev: torch.device) -> dict:
    """The state dict of a bridgesolve checkpoint, or a one-line BridgesolveInputError
    naming the file and what is wrong (not a zip/pickle, truncated, another format,
    missing entries)."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise BridgesolveInputError(
            f"checkpoint {str(path)!r} is not a torch checkpoint (it does not start like a "
            f"zip archive: {'empty' if not magic else f'first bytes {magic!r}'})")
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
    except Exception as exc:  # pickle errors, truncated or damaged files, ...
        raise BridgesolveInputError(f"checkpoint {str(path)!r} cannot be read (truncated or "
                                    f"not a torch file): {_first_line(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BridgesolveInputError(f"checkpoint {str(path)!r} is not a bridgesolve "
                                    f"checkpoint (expected format {FORMAT!r})")
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing:
        raise BridgesolveInputError(f"checkpoint {str(path)!r} is incomplete: missing "
                                    f"{', '.join(missing)}")
    try:
        TrainConfig(raw=state["config"]).science()
    except Exception as exc:
        raise BridgesolveInputError(f"checkpoint {str(path)!r}: its config cannot be read "
                                    f"({_first_line(exc)})") from None
    return state


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
    state = _read_checkpoint(path, dev)
    cfg = TrainConfig(raw=state["config"])
    info = state["net_info"]
    if not isinstance(info, dict) or info.get("type") not in ("ScoreMLP", "custom"):
        raise BridgesolveInputError(f"checkpoint {str(path)!r}: net_info = {info!r}: expected "
                                    "a ScoreMLP or custom network description")
    if info["type"] == "ScoreMLP":
        module = ScoreMLP(**info["hparams"])
    elif net is None:
        raise BridgesolveInputError(f"checkpoint {str(path)!r} holds a custom network "
                                    f"({info.get('class')}): pass net= an instance of it")
    else:
        module = net
    model = ScoreModel(module, cfg.process(), cfg.model["parameterization"])
    try:
        model.net.load_state_dict(state["ema" if ema else "net"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise BridgesolveInputError(f"checkpoint {str(path)!r}: its weights do not fit the "
                                    f"network ({_first_line(exc)})") from None
    model.checkpoint_info = {"step": state["step"], "config": state["config"],
                             "data": state.get("data")}
    model.t_min = cfg.train["t_min"]
    return model.to(dev).eval()
