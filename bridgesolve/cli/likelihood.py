"""``bridgesolve likelihood``: tabulate and plot ``KL(ρ0 ‖ q_h)``, ``‖q_h - ρ0‖_L1`` and the
NLL of data samples against ``h`` for a score (the exact one of the config's mixture, a
scaled/perturbed one, or a bundle's)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.cli._common import RAW, input_warnings, sayer, world

LIKELIHOOD_HELP = """\
For each h the exact density q_h of the sampler dX = [f - (1+h²)/2 g² s] dt + h g dW̄
(reverse time, from the prior at T) is computed on the mesh of the config: by the sampler's
Fokker-Planck equation for h > 0, by characteristics (change of variables) for h = 0.
The config must be a fokker-planck config whose [initial] is a Gaussian mixture ρ0 under a
linear process (VP, SubVP, VE, OU, Brownian): ρ0 gives the data samples and the exact score.

score: --score exact (∇log p_t of the mixture) or --bundle REF.npz (the bundle's score,
interpolated), then s ← scale·s + amplitude·sin(x) with --scale/--amplitude.
prior: --prior gaussian (N(center, var(T)), what samplers use) or exact (p_T of ρ0).

results folder: likelihood.json (rows, the score-matching bound, settings), likelihood.csv,
likelihood.png (KL and NLL against h).
examples: bridgesolve likelihood examples/default.toml --scale 0.8 -o out/lik
          bridgesolve likelihood cfg.toml --bundle ref.npz --h 0 0.5 1"""



def add_parser(sub) -> None:
    """Register ``likelihood`` on the argparse sub-parsers ``sub``."""
    lik = sub.add_parser(
        "likelihood", help="KL(ρ0‖q_h) and NLL against h for a score (table and plot)",
        description="Compute the exact generated density q_h of the interpolating sampler "
                    "for several h, and tabulate and plot KL(ρ0‖q_h), the L1 error and the "
                    "negative log-likelihood of data samples against h.",
        epilog=LIKELIHOOD_HELP, formatter_class=RAW)
    lik.add_argument("config", type=Path, help="TOML config file (fokker-planck, mixture ρ0)")
    lik.add_argument("-o", "--output", type=Path, metavar="DIR",
                     help="results folder (default: <[output] directory>-likelihood)")
    lik.add_argument("--h", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                     metavar="H", help="values of h in [0, 1] (default 0 0.25 0.5 0.75 1)")
    lik.add_argument("--score", choices=("exact",), default="exact",
                     help="the base score (default: exact mixture score)")
    lik.add_argument("--bundle", type=Path, metavar="REF.npz",
                     help="use this bundle's score (interpolated) as the base score")
    lik.add_argument("--scale", type=float, default=1.0, help="multiply the score (default 1)")
    lik.add_argument("--amplitude", type=float, default=0.0,
                     help="add amplitude·sin(x) to the score (default 0)")
    lik.add_argument("--prior", choices=("gaussian", "exact"), default="gaussian",
                     help="the law at T the sampler starts from (default gaussian)")
    lik.add_argument("--samples", type=int, default=20000,
                     help="data samples for the NLL (default 20000)")
    lik.add_argument("--seed", type=int, default=0, help="seed of the data samples")
    lik.add_argument("--overwrite", action="store_true",
                     help="replace an existing results folder")
    lik.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    lik.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """``bridgesolve likelihood CONFIG``: the table and plot of KL/NLL against h."""
    from bridgesolve._dolfinx import versions
    from bridgesolve.config import ConfigError, load_config
    from bridgesolve.densities import GaussianMixture, mixture_score
    from bridgesolve.io import ResultsFolder
    from bridgesolve.likelihood import likelihood_table, perturbed_score, score_matching_bound
    from bridgesolve.sampling import check_h, default_prior

    comm = world()
    say = sayer(comm.rank, args.quiet)
    t_start = time.perf_counter()
    noted: list[str] = []  # config and build warnings: shown at once, kept in the json
    with input_warnings(noted, comm.rank):
        cfg = load_config(args.config)
    if cfg.equation != "fokker-planck" or not isinstance(cfg.data, GaussianMixture):
        raise ConfigError(f"[problem] equation = {cfg.equation!r}: `bridgesolve likelihood` "
                          "needs a fokker-planck config with a Gaussian-mixture [initial]")
    hs = sorted({check_h(h) for h in args.h})
    for name in ("scale", "amplitude"):
        if not math.isfinite(getattr(args, name)):
            raise BridgesolveInputError(f"--{name} {getattr(args, name)}: expected a number")
    if args.samples < 1:
        raise BridgesolveInputError(f"--samples {args.samples}: expected a positive integer")
    process = cfg.process()
    if not process.linear:
        raise ConfigError(f"[process] {process!r}: the likelihood study needs a linear process")
    bundle = None
    if args.bundle is not None:
        from bridgesolve.reference import ReferenceBundle

        bundle = ReferenceBundle.load(args.bundle)
        if bundle.dim != cfg.data.dim:
            raise BridgesolveInputError(f"bundle {str(args.bundle)!r} is {bundle.dim}D but "
                                        f"the config's data are {cfg.data.dim}D")
    out = args.output or cfg.output_dir.with_name(cfg.output_dir.name + "-likelihood")
    folder = ResultsFolder(out, overwrite=args.overwrite, comm=comm)
    with input_warnings(noted, comm.rank):
        problem, data, killing = cfg.build(comm)
    if killing is not None:
        raise ConfigError("[killing] the likelihood study needs a process without killing")
    base = bundle.score_interpolant() if bundle is not None else mixture_score(data, process)
    score = perturbed_score(base, scale=args.scale, amplitude=args.amplitude)
    T = problem.grid.T
    prior = default_prior(process, T, data.dim) if args.prior == "gaussian" else data.evolve(
        process, T)
    # every rank evaluates its share of the samples (the same set for any rank count)
    allsamples = data.sample(args.samples, np.random.default_rng(args.seed))
    samples = np.array_split(allsamples, comm.size)[comm.rank]
    label = ("bundle score" if bundle is not None else "exact score") + (
        f", scale {args.scale:g}" if args.scale != 1.0 else "") + (
        f", + {args.amplitude:g} sin(x)" if args.amplitude else "")
    say(f"bridgesolve: likelihood ({cfg.source}): {label}, prior {args.prior}, "
        f"{problem.ndofs} dofs, {problem.grid.steps} steps, h = {', '.join(f'{h:g}' for h in hs)}")
    entropy = float(-np.mean(data.log_pdf(allsamples)))
    with folder:
        rows = likelihood_table(problem, score, hs, data, prior, samples=samples,
                                progress=not args.quiet)
        bound = score_matching_bound(problem, score, data, prior)
        summary = {
            "config_source": cfg.source, "score": label, "prior": args.prior,
            "bundle": str(args.bundle) if args.bundle else None,
            "samples": args.samples, "seed": args.seed,
            "data_entropy_estimate": entropy,
            "rows": rows,
            "kl_bound_h1": {k: bound[k] for k in ("prior_kl", "score_term", "bound")},
            "problem": problem.describe(), "mpi_size": comm.size, "versions": versions(),
            "warnings": noted,
            "total_s": time.perf_counter() - t_start,
        }
        folder.write_json("likelihood.json", summary)
        header = "h,kl,l1,nll,mass,seconds\n"
        folder.write_text("likelihood.csv", header + "".join(
            f"{r['h']:.6g},{r['kl']:.10g},{r['l1']:.10g},{r['nll']:.10g},{r['mass']:.12g},"
            f"{r['seconds']:.3f}\n" for r in rows))
        if comm.rank == 0:
            _plot(rows, entropy, bound["bound"], folder.path / "likelihood.png", label)
        final = folder.commit()
    say(f"  {'h':>5} {'KL(ρ0‖q_h)':>12} {'L1':>10} {'NLL':>9}")
    for r in rows:
        say(f"  {r['h']:5.3g} {r['kl']:12.5e} {r['l1']:10.3e} {r['nll']:9.5f}")
    say(f"  data entropy (NLL floor) ≈ {entropy:.5f};  KL bound at h = 1: "
        f"{bound['prior_kl']:.3e} + {bound['score_term']:.3e} = {bound['bound']:.4e}")
    say(f"  results     {final}/")
    return 0


def _plot(rows, entropy, bound, path, label) -> None:
    from bridgesolve.plotting import _pyplot

    plt = _pyplot()
    h = [r["h"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    a.plot(h, [r["kl"] for r in rows], "o-", label="KL(ρ0‖q_h)")
    a.axhline(bound, color="gray", ls="--", label="score-matching bound (h = 1)")
    a.set_xlabel("h")
    a.set_ylabel("KL")
    a.legend()
    b.plot(h, [r["nll"] for r in rows], "o-", label="NLL of data samples")
    b.axhline(entropy, color="gray", ls="--", label="entropy of ρ0 (floor)")
    b.set_xlabel("h")
    b.set_ylabel("nats")
    b.legend()
    fig.suptitle(f"generated density against h: {label}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
