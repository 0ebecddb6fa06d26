"""``bridgesolve train`` and ``bridgesolve validate``.

``bridgesolve.learn`` (and with it torch) is imported only when they run: the parser and
the other subcommands never load it.
"""

from __future__ import annotations

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
read as a score of the bundle's process and time (bridgesolve.learn.adapters; diffusers
conventions also need --scheduler-config):
""" + conventions_text() + """

learned bridges (--forward NET [--backward NET], TorchScript or .pt2, against a bridge
bundle): drift errors in L²(ρ_t) per time, the FE law of the learned forward SDE and its
L1/KL miss of ρ1 at T, its KL cost against the optimal (bridgesolve.learn.bridges).

exit codes: 0 success, 2 invalid input (nothing written), 1 unexpected failure.
example: bridgesolve validate --score results/train_mixture2d --reference ref.npz
         bridgesolve validate --score unet.pt --convention diffusers_epsilon \\
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
                        description="Validate a score (checkpoint) against a reference bundle "
                                    "(.npz) of the PDE solution.",
                        epilog=VALIDATE_HELP, formatter_class=fmt)
    va.add_argument("--score", metavar="CKPT",
                    help="checkpoint.pt or the training output folder (with --convention: "
                         "a TorchScript file or .pt2 archive)")
    va.add_argument("--forward", type=Path, metavar="NET",
                    help="a learned bridge instead of a score: the forward drift network "
                         "b(x, t) ≈ f + g²∇log φ (TorchScript or .pt2); needs a bridge bundle")
    va.add_argument("--backward", type=Path, metavar="NET",
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
    va.add_argument("--quiet", action="store_true", help="no table on stdout")
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


def _adapted(args, path: Path, bundle):
    """The TorchScript or ``torch.export`` network of ``--score`` in ``--convention``, as a
    bridgesolve score of the bundle's process."""
    from bridgesolve.learn.adapters import adapt, load_network

    if args.scheduler_config is not None and not args.convention.startswith("diffusers"):
        raise BridgesolveInputError(f"--scheduler-config with --convention {args.convention}: "
                                    "expected a diffusers convention (or no scheduler config)")
    try:
        model = load_network(path, device=args.device)
    except BridgesolveInputError as exc:
        raise BridgesolveInputError(f"--score {args.score!r} with --convention "
                                    f"{args.convention}: {exc} (bridgesolve checkpoints need no "
                                    "--convention)") from None
    process = bundle.process() if (getattr(bundle, "metadata", None) or {}).get("process") \
        else None
    return adapt(model, args.convention, process=process,
                 scheduler_config=args.scheduler_config)


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
    score = Path(args.score)
    if not score.exists():
        raise BridgesolveInputError(f"--score {args.score!r}: no such checkpoint or folder")
    bundle = load_bundle(args.reference)
    if args.n_mc < 2:
        raise BridgesolveInputError(f"--n-mc {args.n_mc}: expected an integer >= 2")
    problem = None
    if args.config is not None:
        from bridgesolve.config import load_config

        problem = load_config(args.config).build()[0]
    if args.convention is not None:
        score = _adapted(args, score, bundle)
    elif args.scheduler_config is not None:
        raise BridgesolveInputError("--scheduler-config without --convention: expected a "
                                    "diffusers convention (--convention diffusers, ...)")
    path = Path(args.score)
    stem = path.parent.name if path.is_file() else path.name
    output = args.output or Path("results") / f"validate-{stem or 'score'}"
    folder = AtomicFolder(output, overwrite=args.overwrite, comm=_world_or_none())
    with folder:
        # Under mpiexec every rank computes the same report (the q_h solves are collective);
        # rank 0 writes the figures.
        report = validate(score, bundle, hs=args.hs, weighting=args.weighting,
                          n_mc=args.n_mc, seed=args.seed, problem=problem, device=args.device,
                          plot_times=args.plot_times,
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
    from bridgesolve.learn.adapters import load_network
    from bridgesolve.learn.bridges import validate_bridge
    from bridgesolve.learn.validation import load_bundle

    if args.convention is not None or args.scheduler_config is not None:
        raise BridgesolveInputError("--convention/--scheduler-config with --forward: expected "
                                    "them only for scores (--score)")
    bundle = load_bundle(args.reference)
    nets = [load_network(p, device=args.device) if p is not None else None
            for p in (args.forward, args.backward)]
    problem = None
    if args.config is not None:
        from bridgesolve.config import load_config

        problem = load_config(args.config).build()[0]
    output = args.output or Path("results") / f"validate-{args.forward.stem}"
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
