r"""Networks of other codebases as scores ``s(x, t)`` in bridgesolve's time and process.

``adapt(model, convention, process=...)`` wraps a model trained elsewhere (score_sde,
diffusers, EDM, k-diffusion, flow matching) as a callable ``score(x (N, d), t)`` of
bridgesolve's forward time (``t = 0`` is the data), ready for :func:`~bridgesolve.learn.validate`.

Every convention is a Gaussian path ``x = α x_0 + σ ε`` of its own (the *model's* path)
with a time input of its own; bridgesolve's linear process has
``x_t - (1 - a) μ = a x_0 + s ε`` with ``(a, s²) = process.transition(t)``. Where the model's
path is not the process's, the two are matched at equal signal-to-noise ratio ``α/σ = a/s``
and ``x`` is rescaled by ``c = α/a``: ``s_P(x) = c\, s_M(c\, x)`` (exact for a Gaussian
path: the laws differ by that scaling). For any prediction of a Gaussian path,

.. math::
    s = -\hat ε/σ = (α \hat x_0 - x)/σ^2, \qquad
    v = α ε - σ x_0 \Rightarrow s = -(σ x + α \hat v)/(σ (α^2 + σ^2)).

``CONVENTIONS`` lists the names with one line each (``bridgesolve validate --help`` prints
it). NumPy in, float64 NumPy out; torch in, torch out (differentiable where the model is).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable

import numpy as np

from bridgesolve._validate import BridgesolveInputError, positive_int
from bridgesolve._vocab import CONVENTIONS, conventions_text
from bridgesolve.process import VE, VP, Process, SubVP, Tabulated

_DIFFUSERS = {"diffusers_epsilon": "epsilon", "diffusers_sample": "sample",
              "diffusers_v": "v_prediction"}
_VE_FAMILY = ("score_sde_ve", "denoiser", "edm", "edm_vp", "k_diffusion")
_SIGMA_DATA = {"edm": 0.5, "edm_vp": 0.5, "k_diffusion": 1.0}
#: The flow paths: (α, σ, dα/dτ, dσ/dτ) at τ, and τ at the ratio r = α/σ.
FLOW_PATHS: dict[str, tuple[Callable, Callable]] = {
    "linear": (lambda u: (u, 1.0 - u, 1.0, -1.0), lambda r: r / (1.0 + r)),
    "cosine": (lambda u: (math.sin(0.5 * math.pi * u), math.cos(0.5 * math.pi * u),
                          0.5 * math.pi * math.cos(0.5 * math.pi * u),
                          -0.5 * math.pi * math.sin(0.5 * math.pi * u)),
               lambda r: 2.0 / math.pi * math.atan(r)),
}
_TIME_SHAPES = ("vector", "column", "scalar")


def adapt(model, convention: str, *, process: Process | None = None, scheduler_config=None,
          integer_timesteps: bool = False, sigma_data: float | None = None,
          path: str = "linear", data_at: float = 1.0, num_scales: int = 1000,
          time_shape: str = "vector", t_min: float | None = None, device=None, dtype=None,
          chunk: int = 1 << 16) -> AdaptedScore:
    """``model`` in ``convention`` as a bridgesolve score ``s(x, t)`` (see ``CONVENTIONS``).

    Args:
        model: a ``torch.nn.Module`` (called with tensors, in eval mode) or a callable
            ``model(x (N, d), time (N,))`` on NumPy arrays. Outputs of diffusers' forms
            (``.sample``, a tuple) are unwrapped.
        convention: a key of ``CONVENTIONS``.
        process: bridgesolve's process of ``t``. score_sde conventions: the model's SDE
            (default VP(0.1, 20), SubVP(0.1, 20), VE(0.01, 50)). diffusers: default the
            :class:`~bridgesolve.process.Tabulated` process of ``scheduler_config``; another
            process is matched to the table by signal-to-noise ratio. denoiser, edm,
            edm_vp, k_diffusion, flow_matching: required (the bundle's process).
        scheduler_config: diffusers' scheduler config (dict or ``scheduler_config.json``)
            for the diffusers conventions.
        integer_timesteps: diffusers: round the fractional step ``k`` (``t_k = t`` of the
            table, ``t_k = (k + 1)/N``) to the nearest integer in ``[0, N - 1]`` and give
            the score of step ``k`` (time ``t_k``); default: the fractional ``k``, the
            table's ``ᾱ`` interpolated in between (the process's own ``ᾱ(t)``).
        sigma_data: the EDM scalings' ``σ_data`` (default 0.5 for edm, 1.0 for k_diffusion).
        path: flow_matching: ``"linear"`` (rectified flow / CondOT, ``α_τ = τ``,
            ``σ_τ = 1 - τ``) or ``"cosine"`` (``α_τ = sin(πτ/2)``, ``σ_τ = cos(πτ/2)``).
            Valid only for a flow trained from a Gaussian source with the independent
            coupling (then its marginals are the Gaussian path and ``v`` determines the
            score); minibatch-OT or other couplings have other marginals.
        data_at: flow_matching: the model time of the data, 1 (default) or 0 (then
            ``τ' = 1 - τ`` and the velocity points to the noise, as in SD3).
        num_scales: score_sde_vp_discrete: ``N``.
        time_shape: the time input ``"vector"`` ``(N,)``, ``"column"`` ``(N, 1)`` or
            ``"scalar"`` (one call per distinct time, a Python number).
        t_min: the smallest time the score is evaluated at (``validate`` floors t there):
            default ``t_0 = 1/N`` for diffusers on their own table, else ``1e-5 T`` (none for
            "score"); at ``t = 0`` the noise, and with it every conversion, vanishes.
        device, dtype: of the torch tensors handed to a module (default its parameters',
            else the CPU and float64).
        chunk: points per model call (NumPy input).

    Times: score_sde models get bridgesolve's ``t`` itself (their SDE is ``process``), VE
    models the noise level ``σ = s/a`` of ``x`` at ``t`` (for bridgesolve's
    ``VE(σ_min, σ_max)`` that is ``sqrt(σ(t)² - σ_min²)``, where score_sde labels
    ``σ(t)`` and ignores the ``σ_min²`` its perturbation adds), diffusers models the step
    ``k`` of the same noise level, flows the ``τ`` of the same signal-to-noise ratio.
    """
    if convention not in CONVENTIONS:
        raise BridgesolveInputError(f"convention = {convention!r}: expected one of "
                                    f"{', '.join(CONVENTIONS)}")
    if time_shape not in _TIME_SHAPES:
        raise BridgesolveInputError(f"time_shape = {time_shape!r}: expected one of "
                                    f"{', '.join(map(repr, _TIME_SHAPES))}")
    if not callable(model):
        raise BridgesolveInputError(f"model = {model!r}: expected a torch.nn.Module or a "
                                    "callable model(x, time)")
    if process is not None and not isinstance(process, Process):
        raise BridgesolveInputError(f"process = {process!r}: expected a bridgesolve Process")
    if process is not None and convention != "score" and not process.linear:
        raise BridgesolveInputError(f"process = {process!r}: expected a linear process (the "
                                    f"{convention} convention needs its Gaussian transition)")
    if integer_timesteps and not convention.startswith("diffusers"):
        raise BridgesolveInputError(f"integer_timesteps = True with convention {convention!r}: "
                                    "expected a diffusers convention (integer DDPM steps)")
    opts = {"integer": bool(integer_timesteps), "table": None}
    if convention == "diffusers" or convention in _DIFFUSERS:
        convention, opts["table"], process, t_min = _diffusers(convention, process,
                                                               scheduler_config, t_min)
    elif convention.startswith("score_sde"):
        process = process or {"score_sde_ve": VE(0.01, 50.0),
                              "score_sde_subvp": SubVP(0.1, 20.0)}.get(convention, VP(0.1, 20.0))
        if convention == "score_sde_vp_discrete":
            if type(process) is not VP:
                raise BridgesolveInputError(f"process = {process!r}: expected a VP process "
                                            "for score_sde_vp_discrete (its β table)")
            from bridgesolve._tabulated import vp_discrete_std

            opts["std"] = vp_discrete_std(process.beta_min, process.beta_max,
                                          positive_int("num_scales", num_scales))
    elif convention != "score" and process is None:
        raise BridgesolveInputError(f"convention {convention!r} needs process=, the process of "
                                    "bridgesolve's time t (e.g. the bundle's)")
    if t_min is None and convention != "score":
        t_min = 1e-5 * float(getattr(process, "T", 1.0))
    if convention in _SIGMA_DATA:
        opts["sigma_data"] = float(sigma_data if sigma_data is not None
                                   else _SIGMA_DATA[convention])
    if convention == "flow_matching":
        if path not in FLOW_PATHS:
            raise BridgesolveInputError(f"path = {path!r}: expected one of "
                                        f"{', '.join(map(repr, FLOW_PATHS))}")
        if data_at not in (0, 1):
            raise BridgesolveInputError(f"data_at = {data_at!r}: expected 1 (τ = 1 is data) "
                                        "or 0 (τ = 0 is data)")
        opts["path"], opts["data_at"] = path, float(data_at)
    return AdaptedScore(model, convention, process, opts, time_shape=time_shape, t_min=t_min,
                        device=device, dtype=dtype, chunk=chunk)


def _diffusers(convention, process, scheduler_config, t_min):
    """The prediction type, the table, the process and t_min of a diffusers convention."""
    from bridgesolve._tabulated import read_scheduler_config

    cfg = None if scheduler_config is None else read_scheduler_config(scheduler_config)
    if cfg is not None:
        table = Tabulated.from_scheduler_config(cfg)
    elif isinstance(process, Tabulated):
        table = process
    else:
        raise BridgesolveInputError(f"convention {convention!r} needs scheduler_config= (the "
                                    "scheduler's config dict or scheduler_config.json) or "
                                    "process= a Tabulated process")
    declared = (cfg or {}).get("prediction_type")
    if convention == "diffusers":
        if declared is None:
            raise BridgesolveInputError("convention 'diffusers' reads prediction_type from the "
                                        "scheduler config, which has none: expected 'epsilon',"
                                        " 'sample' or 'v_prediction' there, or name the "
                                        "convention (diffusers_epsilon, ...)")
        names = {v: k for k, v in _DIFFUSERS.items()}
        if declared not in names:
            raise BridgesolveInputError(f"scheduler config prediction_type = {declared!r}: "
                                        f"expected one of {', '.join(map(repr, names))}")
        convention = names[declared]
    elif declared is not None and declared != _DIFFUSERS[convention]:
        raise BridgesolveInputError(f"convention {convention!r} but the scheduler config says "
                                    f"prediction_type = {declared!r}: expected "
                                    f"{_DIFFUSERS[convention]!r} (or use convention "
                                    "'diffusers')")
    if process is None:
        process = table
    if t_min is None and process is table:
        t_min = float(table.times[0])
    return convention, table, process, t_min


class AdaptedScore:
    """A model of another convention as ``score(x, t)``; built by :func:`adapt`.

    Attributes ``process`` (bridgesolve's), ``t_min``, ``label`` and ``convention`` are read
    by :func:`~bridgesolve.learn.validate`. ``coefficients(t)`` gives, per time, the model's
    input scale ``c_in`` and time input ``τ`` and the affine map
    ``s = A out + B (x - shift)``.
    """

    def __init__(self, model, convention, process, opts, *, time_shape="vector", t_min=None,
                 device=None, dtype=None, chunk=1 << 16):
        self.model, self.convention, self.process = model, convention, process
        self.t_min = None if t_min is None else float(t_min)
        self._opts, self.time_shape = opts, time_shape
        self.device, self.dtype, self.chunk = device, dtype, int(chunk)
        name = getattr(model, "__name__", type(model).__name__)
        self.label = f"{name} ({convention})"

    def __repr__(self) -> str:
        return f"AdaptedScore({self.label}, process={self.process!r})"

    # -- the per-time coefficients ---------------------------------------------------------
    def _path(self, t: float) -> tuple[float, float, float]:
        """``(a, s, shift)`` of the process at ``t``: ``x - shift = a x0 + s ε``."""
        a, var = self.process.transition(t)
        return a, math.sqrt(var), (1.0 - a) * float(getattr(self.process, "center", 0.0))

    def coefficients(self, t: float) -> tuple[float, float, float, float, float]:
        """``(c_in, τ, A, B, shift)`` at bridgesolve time ``t``."""
        conv, o = self.convention, self._opts
        if conv == "score":
            return 1.0, t, 1.0, 0.0, 0.0
        a, s, shift = self._path(t)
        if conv == "score_sde_vp_discrete":
            n = o["std"].size
            std = o["std"][min(int(math.floor(t * (n - 1))), n - 1)]
            return 1.0, t * (n - 1), -1.0 / std, 0.0, shift
        if s <= 0.0:
            raise BridgesolveInputError(
                f"t = {t!r}: {self.process!r} has no noise there (σ = 0), where the "
                f"{conv} model's score is undefined: evaluate at t >= t_min > 0 (adapt(..., "
                "t_min=))")
        if conv in ("score_sde_vp", "score_sde_subvp"):
            return 1.0, 999.0 * t, -1.0 / s, 0.0, shift
        if conv in _DIFFUSERS:
            return self._diffusers(t, a, s, shift)
        if conv in _VE_FAMILY:
            return self._ve(t, a, s, shift)
        return self._flow(a, s, shift)

    def _diffusers(self, t, a, s, shift):
        table, o = self._opts["table"], self._opts
        c = 1.0 / math.hypot(a, s)  # to the table's VP path at the same SNR
        if self.process is table:
            k = float(table.timestep(t))
        else:
            k = float(table.schedule.timestep_of_level(-math.log((a * c) ** 2)))
        am, sm = a * c, s * c
        if o["integer"]:
            k = float(min(max(round(k), 0), table.alphas_cumprod.size - 1))
            abar = float(table.alphas_cumprod[int(k)])
            am, sm = math.sqrt(abar), math.sqrt(1.0 - abar)
        kind = _DIFFUSERS[self.convention]
        if kind == "epsilon":  # s_P(x) = c s_M(c x), s_M = -ε̂/σ_M
            A, B = -c / sm, 0.0
        elif kind == "sample":  # s_M = (α x̂0 - x)/σ²
            A, B = c * am / sm**2, -c * c / sm**2
        else:  # s_M = -(σ x + α v̂)/(σ (α² + σ²))
            n2 = am * am + sm * sm
            A, B = -c * am / (sm * n2), -c * c / n2
        return c, k, A, B, shift

    def _ve(self, t, a, s, shift):
        conv = self.convention
        if conv == "edm" and abs(a - 1.0) > 1e-12:
            raise BridgesolveInputError(
                f"the edm convention is for VE processes (a(t) = 1), but {self.process!r} has "
                f"a({t:g}) = {a:.6g}: use convention 'edm_vp' (x_VE = x/a, σ = s/a)")
        c, sig = 1.0 / a, s / a  # x_VE = x/a, σ = s/a; s_P(x) = s_VE(x/a; σ)/a
        if conv == "score_sde_ve":
            return c, sig, c, 0.0, shift
        if conv == "denoiser":  # s_VE = (D - x_VE)/σ²
            return c, sig, c / sig**2, -c * c / sig**2, shift
        sd = self._opts["sigma_data"]
        r2 = sig * sig + sd * sd
        c_skip, c_out, c_in = sd * sd / r2, sig * sd / math.sqrt(r2), 1.0 / math.sqrt(r2)
        tau = 0.25 * math.log(sig) if conv in ("edm", "edm_vp") else sig
        return c * c_in, tau, c * c_out / sig**2, c * c * (c_skip - 1.0) / sig**2, shift

    def _flow(self, a, s, shift):
        fn, inverse = FLOW_PATHS[self._opts["path"]]
        u = inverse(a / s) if s > 0 else 1.0
        al, sg, dal, dsg = fn(u)
        c = al / a
        den = dsg * al - dal * sg  # ε = (α v - α' x)/(σ' α - α' σ), s_M = -ε/σ
        A, B = -c * al / (sg * den), c * c * dal / (sg * den)
        if self._opts["data_at"] == 0.0:  # τ' = 1 - τ: v' = -v
            return c, 1.0 - u, -A, B, shift
        return c, u, A, B, shift

    # -- evaluation ------------------------------------------------------------------------
    def __call__(self, x, t):
        """Scores at points ``x (N, d)`` (NumPy or torch) at time ``t`` (a number or ``(N,)``)."""
        torch = sys.modules.get("torch")
        is_torch = torch is not None and isinstance(x, torch.Tensor)
        if is_torch and isinstance(t, torch.Tensor):
            t = t.detach().cpu().double().numpy()
        if not is_torch:
            x = np.asarray(x, dtype=float)
        if x.ndim != 2:
            raise BridgesolveInputError(f"x of shape {tuple(x.shape)}: expected (N, d) points")
        n = x.shape[0]
        tt = np.asarray(t, dtype=float).reshape(-1)
        if tt.size not in (1, n):
            raise BridgesolveInputError(f"t of shape {np.shape(t)}: expected a number or one "
                                        f"time per point, ({n},)")
        tt = np.broadcast_to(tt, (n,))
        uniq, inv = np.unique(tt, return_inverse=True)
        coef = np.array([self.coefficients(float(u)) for u in uniq]).reshape(-1, 5)[inv]
        c_in, tau, A, B, shift = (coef[:, i] for i in range(5))
        if is_torch:
            def col(v):
                return torch.as_tensor(v, dtype=x.dtype, device=x.device)[:, None]
            xc = x - col(shift)
            out = self._call_model(col(c_in) * xc, tau, torch_input=True)
            return col(A) * out + col(B) * xc
        xc = x - shift[:, None]
        xin = c_in[:, None] * xc
        out = np.empty_like(x)
        for i in range(0, n, self.chunk):
            sl = slice(i, i + self.chunk)
            out[sl] = self._call_model(xin[sl], tau[sl], torch_input=False)
        return A[:, None] * out + B[:, None] * xc

    def _call_model(self, xin, tau: np.ndarray, *, torch_input: bool):
        if self.time_shape == "scalar":
            out = None
            for u in np.unique(tau):
                sel = np.flatnonzero(tau == u)
                part = self._call_once(xin[sel], float(u), torch_input)
                if out is None:
                    out = xin * 0.0
                out[sel] = part
            return out
        return self._call_once(xin, tau, torch_input)

    def _time_input(self, tau):
        if self._opts["integer"]:
            tau = np.rint(tau).astype(np.int64) if np.ndim(tau) else int(round(tau))
        if self.time_shape == "column":
            tau = tau[:, None]
        return tau

    def _call_once(self, xin, tau, torch_input: bool):
        torch = sys.modules.get("torch")
        module = torch is not None and isinstance(self.model, torch.nn.Module)
        tau = self._time_input(tau)
        if module:
            params = list(self.model.parameters())
            dtype = self.dtype or (params[0].dtype if params else
                                   (xin.dtype if torch_input else torch.float64))
            device = self.device or (params[0].device if params else
                                     (xin.device if torch_input else "cpu"))
            xt = torch.as_tensor(xin, dtype=dtype, device=device)
            if np.ndim(tau):
                tau = torch.as_tensor(tau, device=device,
                                      dtype=torch.long if self._opts["integer"] else dtype)
            with _evaluating(self.model), \
                    contextlib.nullcontext() if torch_input else torch.no_grad():
                out = _unwrap(self.model(xt, tau))
            _check_shape(out, xin, self.label)
            if torch_input:
                return out.to(dtype=xin.dtype, device=xin.device)
            return out.detach().double().cpu().numpy()
        if torch_input and np.ndim(tau):
            tau = torch.as_tensor(tau, device=xin.device,
                                  dtype=torch.long if self._opts["integer"] else xin.dtype)
        out = _unwrap(self.model(xin, tau))
        if not torch_input:
            out = np.asarray(out, dtype=float)
        _check_shape(out, xin, self.label)
        return out


@contextlib.contextmanager
def _evaluating(module):
    """The module in eval mode (dropout, batch norm off), its mode restored afterwards; a
    module that cannot switch (``torch.export``'s) is called as it is."""
    mode = module.training
    try:
        module.eval()
    except NotImplementedError:
        yield
        return
    try:
        yield
    finally:
        module.train(mode)


def _unwrap(out):
    """The array of a model output: diffusers' ``UNet2DOutput.sample``, a tuple's first."""
    if isinstance(out, tuple | list):
        return out[0]
    sample = getattr(out, "sample", None)
    if sample is not None and not callable(sample):
        return sample
    return out


def _check_shape(out, xin, label: str) -> None:
    if tuple(getattr(out, "shape", ())) != tuple(xin.shape):
        raise BridgesolveInputError(
            f"the model {label} returned shape {tuple(getattr(out, 'shape', ()))}: expected "
            f"{tuple(xin.shape)}, the shape of its input x")


def load_network(path, *, device="auto"):
    """A network saved without its code: a TorchScript file (``torch.jit.save``) or a
    ``torch.export`` archive (``.pt2``; export it with a dynamic batch dimension)."""
    from pathlib import Path

    import torch

    from bridgesolve.learn.trainer import resolve_device

    path = Path(path)
    if not path.is_file():
        raise BridgesolveInputError(f"network {str(path)!r}: expected a TorchScript or .pt2 "
                                    "file")
    dev = resolve_device(device)
    try:
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module().to(dev)
        return torch.jit.load(str(path), map_location=dev)
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BridgesolveInputError(f"network {str(path)!r}: expected a TorchScript module "
                                    f"(torch.jit.save) or a .pt2 torch.export archive "
                                    f"({first})") from None


def describe_conventions() -> str:
    """``CONVENTIONS`` as an aligned two-column text (for ``--help`` and the README)."""
    return conventions_text()


__all__ = ["CONVENTIONS", "FLOW_PATHS", "AdaptedScore", "adapt", "describe_conventions",
           "load_network"]
