"""``bridgesolve train`` and ``bridgesolve validate``.

``bridgesolve.learn`` (and with it torch) is imported only when they run: the parser and
the other subcommands never load it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from bridgesolve import __version__
from bridgesolve._folders import AtomicFolder
from bridgesolve._validate import BridgesolveInputError
from bridgesolve._vocab import CONVENTIONS, WEIGHTINGS, conventions_text
from bridgesolve.cli._common import RAW, mpi_size_from_environment, rank

TRAIN_HELP = """\
config sections (TOML; every key is checked, unknown keys are errors):
  [data]     type = "gaussian_mixture" (weights, means, covs) | "file" (path: .npy or .csv,
             one point per row) | "two_moons" (noise, scale) | "checkerboard" (scale) |
             "swiss_roll" (noise, scale) | "rings" (n_rings, noise, scale) |
             "mixture1d" (separation, std)
  [process]  as for `bridgesolve run`: type = "VP" | "SubVP" | "VE" | "OU" | "Brownian"
  [model]    width = 128, depth = 3, fourier_features = 16, parameterization = "eps" | "score"
  [train]    steps = 5000, batch_size = 512, lr = 2e-3, warmup = 200, schedule = "cosine" |
             "constant", ema = 0.999, weighting = "sigma2" | "g2" | "none", t_min = 1e-3,
             grad_clip = 1.0, seed = 0, device = "auto" | "cpu" | "cuda[:N]", amp = true
             (CUDA only), checkpoint_every = 500, threads = 0 (torch's default),
             t_sampling = "uniform" | "importance" (t drawn ∝ λ/σ², reweighted: unbiased)
  [output]   directory (default results/<config name>)

output folder: checkpoint.pt (weights, EMA, optimizer, step, losses and the config;
replaced atomically), config.toml, summary.json and loss.png. Ctrl-C stops after the
current step and writes the checkpoint; `--resume` continues bit-identically.

exit codes: 0 success, 2 invalid input, 1 unexpected failure, 130 interrupted (checkpoint
written). example: bridgesolve train examples/learn/train_mixture2d.toml"""

VALIDATE_HELP = """\
reports (report.txt and summary.json, the report as JSON, in the output folder; the
table also on stdout):
  explicit score-matching error E_p|s - ∇log p|² per time and its relative size,
  J_ESM = ∫λ e dt; the denoising loss by Monte Carlo and J_DSM - J_ESM = C;
  KL(ρ0 ‖ q_h) and NLL for each h (needs DOLFINx; q_h is solved on the bundle's mesh and
  time grid, or on the Problem of --config); the bound KL(p_T ‖ π) + ½∫g² e dt for h = 1;
  figures error_vs_t.png, error_maps.png, score_fields.png, q_h.png.

networks of other codebases (--convention NAME): --score is then a TorchScript file
(torch.jit.save) or a torch.export archive (.pt2, batch dimension dynamic) of the network,
or module:function, read as a score of the bundle's process and time
(bridgesolve.learn.adapters; diffusers conventions also need --scheduler-config):
""" + conventions_text() + """

Python objects (--score module:function, or path/to/file.py:function): the module is
imported with the current directory on the import path and the attribute (dotted allowed)
must be callable: a function s(x, t) (NumPy x (N, d), t a float, as bs.learn.validate calls
it) or a torch module, read as convention 'score' of the bundle's process; with
--convention NAME, the convention's model(x, time (N,)) (a module or a NumPy callable).

learned bridges (--forward NET [--backward NET], TorchScript, .pt2 or module:function,
against a bridge bundle): drift errors in L²(ρ_t) per time, the FE law of the learned
forward SDE and its L1/KL miss of ρ1 at T, its KL cost against the optimal
(bridgesolve.learn.bridges).

exit codes: 0 success, 2 invalid input (nothing written), 1 unexpected failure.
example: bridgesolve validate --score results/train_mixture2d --reference ref.npz
         bridgesolve validate --score unet.pt --convention diffusers_epsilon \\
             --scheduler-config scheduler_config.json --reference ref.npz
         bridgesolve validate --score mymodel:score --reference ref.npz
         bridgesolve validate --score nets/load.py:unet --convention diffusers_epsilon \\
             --scheduler-config scheduler_config.json --reference ref.npz"""


def add_parsers(sub) -> None:
    """Add ``train`` and ``validate`` to the ``bridgesolve`` subparsers."""
    fmt = RAW
    tr = sub.add_parser("train", help="train a score network (PyTorch; GPU when available)",
                        description="Train a time-conditioned score network by denoising "
                                    "score matching on the data and forward process of CONFIG.",
                        epilog=TRAIN_HELP, formatter_class=fmt)
    tr.add_argument("config", type=Path, help="TOML training config")
    tr.add_argument("-o", "--output", type=Path, metavar="DIR",
                    help="output folder (default: [output] directory of the config)")
    tr.add_argument("--resume", action="store_true",
                    help="continue from the output folder's checkpoint")
    tr.add_argument("--overwrite", action="store_true",
                    help="start again in a folder holding an earlier training run")
    tr.add_argument("--device", metavar="DEV", help="override [train] device (cpu, cuda, ...)")
    tr.add_argument("--steps", type=int, metavar="N", help="override [train] steps")
    tr.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    tr.set_defaults(handler=train_command)

    va = sub.add_parser("validate", help="measure a learned score against a reference bundle",
                        description="Validate a score (checkpoint, network file or "
                                    "module:function) against a reference bundle (.npz) of "
                                    "the PDE solution.",
                        epilog=VALIDATE_HELP, formatter_class=fmt)
    va.add_argument("--score", metavar="CKPT",
                    help="checkpoint.pt or the training output folder (with --convention: "
                         "a TorchScript file or .pt2 archive); or module:function (or "
                         "path/to/file.py:function), a score s(x, t) or a model in "
                         "--convention")
    va.add_argument("--forward", metavar="NET",
                    help="a learned bridge instead of a score: the forward drift network "
                         "b(x, t) ≈ f + g²∇log φ (TorchScript, .pt2 or module:function); "
                         "needs a bridge bundle")
    va.add_argument("--backward", metavar="NET",
                    help="with --forward: the backward drift network ≈ f - g²∇log φ̂")
    va.add_argument("--backward-time", choices=("forward", "reverse"), default="forward",
                    help="reverse: --backward is a network of τ = T - t returning the "
                         "reverse-time drift g²∇log φ̂ - f (DSB)")
    va.add_argument("--convention", choices=list(CONVENTIONS), metavar="NAME",
                    help="the convention of a network from another codebase (listed below)")
    va.add_argument("--scheduler-config", type=Path, metavar="JSON",
                    help="diffusers scheduler_config.json (diffusers conventions)")
    va.add_argument("--reference", required=True, type=Path, metavar="NPZ",
                    help="reference bundle (.npz)")
    va.add_argument("-o", "--output", type=Path, metavar="DIR",
                    help="report folder (default results/validate-<checkpoint folder>)")
    va.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    va.add_argument("--config", type=Path, metavar="RUN_TOML",
                    help="a `bridgesolve run` config whose Problem the generated densities "
                         "q_h are solved on (default: the bundle's own mesh and grid, rebuilt "
                         "from its metadata)")
    va.add_argument("--hs", type=float, nargs="*", default=[0.0, 0.5, 1.0], metavar="H",
                    help="sampler noise levels h for KL(ρ0 ‖ q_h) (default 0 0.5 1)")
    va.add_argument("--weighting", choices=WEIGHTINGS, default="g2",
                    help="λ(t) of the integrated losses (default g2)")
    va.add_argument("--n-mc", type=int, default=8192, metavar="N",
                    help="Monte Carlo samples per time for the denoising loss")
    va.add_argument("--seed", type=int, default=0)
    va.add_argument("--device", default="auto", metavar="DEV")
    va.add_argument("--plot-times", type=float, nargs="+", metavar="T",
                    help="times of the spatial figures")
    va.add_argument("--quiet", action="store_true", help="no progress bar or table on stdout")
    va.set_defaults(handler=validate_command)


def train_command(args) -> int:
    """``bridgesolve train CONFIG``."""
    from bridgesolve.learn.config import load_train_config
    from bridgesolve.learn.trainer import train

    if mpi_size_from_environment() > 1:
        raise BridgesolveInputError("bridgesolve train runs in one process (on the GPU, or on "
                                    "CPU threads): run it without mpiexec")

    cfg = load_train_config(args.config)
    if args.steps is not None:
        if args.steps < 1:
            raise BridgesolveInputError(f"--steps {args.steps}: expected a positive integer")
        cfg.raw["train"]["steps"] = args.steps
    output = args.output or cfg.output_dir
    say = (lambda *a, **k: None) if args.quiet else print
    try:
        result = train(cfg, output=output, resume=args.resume, overwrite=args.overwrite,
                       device=args.device, progress=not args.quiet)
    except KeyboardInterrupt:
        ckpt = Path(output or ".") / "checkpoint.pt"
        where = (f"the checkpoint {ckpt} holds the last step; continue with --resume"
                 if ckpt.is_file() else "no checkpoint was written")
        print(f"bridgesolve: interrupted; {where}", file=sys.stderr)
        return 130
    info = result.info
    say(f"bridgesolve train ({cfg.source}): {result.step} steps on {info['device']}"
        f"{' (AMP ' + info['amp'] + ')' if info['amp'] else ''}, "
        f"{info['parameters']} parameters")
    say(f"  output      {output}/ (checkpoint.pt, summary.json, loss.png)")
    if len(result.losses):
        tail = result.losses[-100:]
        say(f"  loss        {tail.mean():.4g} (mean of the last {tail.size} steps)")
    say(f"  wall time   {info['elapsed_s']:.1f} s ({info['steps_per_s']:.0f} steps/s)")
    return 0


def _world_or_none():
    """``MPI.COMM_WORLD`` where DOLFINx is installed, else None (a torch-only host)."""
    try:
        from bridgesolve._dolfinx import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


# -- module:function -----------------------------------------------------------------------
def object_spec(value) -> bool:
    """Whether ``value`` names a Python object, ``module:attr`` or ``path/file.py:attr``,
    rather than a file: it has a ``:``, is no existing path and no Windows drive path."""
    text = str(value)
    return (":" in text and not os.path.exists(text)
            and re.match(r"^[A-Za-z]:[\\/]", text) is None)


def import_object(spec: str):
    """The callable that ``module:attr`` (imported with the current directory on
    ``sys.path``, as ``python -m`` does) or ``path/to/file.py:attr`` names; ``attr`` may be
    dotted (``module:Class.attr``)."""
    where, _, attr = str(spec).rpartition(":")
    if not where or not all(part.isidentifier() for part in attr.split(".")):
        raise BridgesolveInputError("expected module:function or path/to/file.py:function")
    if where.endswith(".py") or "/" in where or os.sep in where:
        module, what = _import_file(where), repr(where)
    else:
        module, what = _import_module(where), f"module {where!r}"
    obj = module
    for name in attr.split("."):
        if not hasattr(obj, name):
            names = sorted(k for k, v in vars(module).items()
                           if callable(v) and not k.startswith("_"))
            have = f" (its callables: {', '.join(names[:12])})" if names else ""
            raise BridgesolveInputError(f"{what} has no attribute {name!r}{have}")
        obj = getattr(obj, name)
    if not callable(obj):
        raise BridgesolveInputError(f"a {type(obj).__name__}, not callable: expected a "
                                    "function s(x, t), a model(x, time) or a torch.nn.Module")
    return obj


def _import_module(name: str):
    import importlib

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written just now
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise BridgesolveInputError(
                f"no module named {exc.name!r} (looked in the current directory "
                f"{cwd} and sys.path; a file is given as path/to/file.py:function)") from None
        raise BridgesolveInputError(f"importing {name!r} failed: {exc}") from None
    except (ImportError, SyntaxError) as exc:
        raise BridgesolveInputError(f"importing {name!r} failed: {exc}") from None


def _import_file(where: str):
    import importlib.util

    path = Path(where)
    if not path.is_file():
        raise BridgesolveInputError(f"no such file {where!r}")
    name = "bridgesolve_user_" + re.sub(r"\W", "_", path.stem)
    found = importlib.util.spec_from_file_location(name, path)
    if found is None or found.loader is None:
        raise BridgesolveInputError(f"{where!r} is not a Python file")
    module = importlib.util.module_from_spec(found)
    folder = str(path.resolve().parent)  # its sibling modules import as from a script
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        found.loader.exec_module(module)
    except (ImportError, SyntaxError) as exc:
        del sys.modules[name]
        raise BridgesolveInputError(f"importing {where!r} failed: {exc}") from None
    return module


def _network(option: str, value: str, device, *, context: str = "", hint: str = ""):
    """The network of ``--score``/``--forward``/``--backward``: a TorchScript or ``.pt2``
    file (:func:`~bridgesolve.learn.adapters.load_network`) or the object of
    ``module:function`` (a torch module moved to ``device``); errors name the value."""
    from bridgesolve.learn.adapters import load_network

    spec = object_spec(value)
    try:
        obj = import_object(value) if spec else load_network(value, device=device)
    except BridgesolveInputError as exc:
        raise BridgesolveInputError(f"{option} {value!r}{context}: {exc}"
                                    f"{'' if spec else hint}") from None
    if not spec:
        return obj
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        from bridgesolve.learn.trainer import resolve_device

        obj = obj.to(resolve_device(device))
    return obj


def _stem(value: str, *, file: bool = False) -> str:
    """The name of ``value``'s report folder: ``module-function`` (no ``:`` in folder
    names), a network file's stem (``file``), or a checkpoint's folder."""
    path = Path(value)
    if object_spec(value):
        where, _, attr = value.rpartition(":")
        return re.sub(r"[^\w.-]+", "-", f"{Path(where).stem}-{attr}")
    if file:
        return path.stem
    return path.parent.name if path.is_file() else path.name


def _adapted(args, bundle):
    """The network of ``--score`` (a file in ``--convention``, or ``module:function`` in
    ``--convention``, default "score") as a bridgesolve score of the bundle's process."""
    from bridgesolve.learn.adapters import AdaptedScore, adapt

    convention = args.convention or "score"
    if args.scheduler_config is not None and not convention.startswith("diffusers"):
        raise BridgesolveInputError(f"--scheduler-config with --convention {convention}: "
                                    "expected a diffusers convention (or no scheduler config)")
    model = _network("--score", args.score, args.device,
                     context=f" with --convention {convention}" if args.convention else "",
                     hint=" (bridgesolve checkpoints need no --convention)")
    if isinstance(model, AdaptedScore) and args.convention is None:
        model.label = f"{args.score} ({model.convention})"  # adapted already: its process
        return model                                        # and t_min are validate's
    process = bundle.process() if (getattr(bundle, "metadata", None) or {}).get("process") \
        else None
    config = args.scheduler_config
    if config is not None:  # its errors name the file
        from bridgesolve._tabulated import read_scheduler_config
        from bridgesolve.process import Tabulated

        config = read_scheduler_config(config)
        try:
            Tabulated.from_scheduler_config(config)
        except BridgesolveInputError as exc:
            raise BridgesolveInputError(f"--scheduler-config {str(args.scheduler_config)!r}: "
                                        f"{exc}") from None
    torch = sys.modules.get("torch")
    module = torch is not None and isinstance(model, torch.nn.Module)
    # A plain s(x, t) is called as bs.learn.validate calls it: one float time per level.
    shape = "scalar" if convention == "score" and not module else "vector"
    score = adapt(model, convention, process=process, scheduler_config=config, time_shape=shape)
    score.label = f"{args.score} ({convention})"
    return score


def validate_command(args) -> int:
    """``bridgesolve validate --score CKPT --reference NPZ``."""
    from bridgesolve.learn.validation import load_bundle, validate

    t0 = time.perf_counter()
    if (args.score is None) == (args.forward is None):
        raise BridgesolveInputError("expected exactly one of --score CKPT (a score) or "
                                    "--forward NET (a learned bridge)")
    if args.forward is not None:
        return _bridge_command(args, t0)
    if args.backward is not None:
        raise BridgesolveInputError("--backward without --forward: expected both drifts of "
                                    "a learned bridge")
    spec = object_spec(args.score)
    if not spec and not Path(args.score).exists():
        raise BridgesolveInputError(f"--score {args.score!r}: no such checkpoint or folder "
                                    "(or module:function)")
    if args.scheduler_config is not None and args.convention is None:
        raise BridgesolveInputError("--scheduler-config without --convention: expected a "
                                    "diffusers convention (--convention diffusers, ...)")
    bundle = load_bundle(args.reference)
    if args.n_mc < 2:
        raise BridgesolveInputError(f"--n-mc {args.n_mc}: expected an integer >= 2")
    problem = None
    if args.config is not None:
        from bridgesolve.config import load_config

        problem = load_config(args.config).build()[0]
    score = _adapted(args, bundle) if spec or args.convention is not None else Path(args.score)
    output = args.output or Path("results") / f"validate-{_stem(args.score) or 'score'}"
    folder = AtomicFolder(output, overwrite=args.overwrite, comm=_world_or_none())
    with folder:
        # Under mpiexec every rank computes the same report (the q_h solves are collective);
        # rank 0 writes the figures.
        report = validate(score, bundle, hs=args.hs, weighting=args.weighting,
                          n_mc=args.n_mc, seed=args.seed, problem=problem, device=args.device,
                          plot_times=args.plot_times, progress=not args.quiet,
                          figures=folder.path if rank() == 0 else None)
        report.data["timings"] = {"total_s": time.perf_counter() - t0}
        report.data["bridgesolve"] = __version__
        report.data["reference"] = str(args.reference)
        # A validation report is a results folder too: summary.json marks it replaceable.
        folder.write_text("summary.json", report.to_json() + "\n")
        folder.write_text("report.txt", report.table() + "\n")
        final = folder.commit()
    if not args.quiet and rank() == 0:
        print(report.table())
        print(f"\nreport: {final}/ (summary.json, report.txt, figures)")
    return 0


def _bridge_command(args, t0: float) -> int:
    """``bridgesolve validate --forward NET [--backward NET] --reference BRIDGE.npz``."""
    from bridgesolve.learn.bridges import validate_bridge
    from bridgesolve.learn.validation import load_bundle

    if args.convention is not None or args.scheduler_config is not None:
        raise BridgesolveInputError("--convention/--scheduler-config with --forward: expected "
                                    "them only for scores (--score)")
    bundle = load_bundle(args.reference)
    nets = [_network(option, p, args.device) if p is not None else None
            for option, p in (("--forward", args.forward), ("--backward", args.backward))]
    problem = None
    if args.config is not None:
        from bridgesolve.config import load_config

        problem = load_config(args.config).build()[0]
    output = args.output or Path("results") / f"validate-{_stem(args.forward, file=True)}"
    folder = AtomicFolder(output, overwrite=args.overwrite, comm=_world_or_none())
    with folder:
        report = validate_bridge(*nets, bundle, problem=problem,
                                 backward_time=args.backward_time, device=args.device,
                                 progress=not args.quiet)
        report.data |= {"timings": {"total_s": time.perf_counter() - t0},
                        "bridgesolve": __version__, "reference": str(args.reference)}
        folder.write_text("summary.json", report.to_json() + "\n")
        folder.write_text("report.txt", report.table() + "\n")
        final = folder.commit()
    if not args.quiet and rank() == 0:
        print(report.table())
        print(f"\nreport: {final}/ (summary.json, report.txt)")
    return 0
