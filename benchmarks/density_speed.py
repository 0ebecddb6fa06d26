r"""Benchmark: the exact densities of the data people train on (``bridgesolve.densities``),
on 10⁵ points at one time, against a peer on the same points and against brute force.

Issue 21's targets: the two-moons score (noise 0.08) on 10⁵ points at one time in < 1 s,
and a 512² image on 10⁵ points in < 1 s. Every evaluation is timed best of ``--repeats``
on a fresh density (``evolve`` again: the quadrature rule or the pixel factors are built
inside the timer), after one warm-up call (numba's compiled pixel kernel loads from its
cache there; its time is reported as ``first``). The points are samples of the law
evaluated (``p.sample``), so they lie where the density lives.

Cases (VP, the default β schedule; ``t = 0`` is the data law itself):
- ``two_moons`` (noise 0.08, scale 1) at t = 0 and t = 0.05: ``log_pdf_and_score`` (p and
  ∇log p in one pass) and ``log_pdf``. Peer: ``scipy.stats.gaussian_kde`` on the same
  quadrature nodes with the same weights and kernel variance (the same Gaussian sum, summed
  by scipy's compiled ``gaussian_kernel_estimate_log``; it has no score). Accuracy: the
  rule's own error estimate (``quadrature_error``, against the rule of half the panels: a
  bound for the coarse rule, conservative for the one used) on every point, and brute force
  on a subset: Simpson in ``u`` with 200,001 nodes per curve (the curves' own ``fn``,
  ``a`` and ``v`` from ``process.transition``, not from the density's state), for log p and
  for the score (posterior mean of the node).
- ``checkerboard`` at t = 0.05: ``log_pdf_and_score``. Peer: the direct formula
  ``Σ_k w_k Π_i [Φ(B) - Φ(A)] / (a (u - l))`` with ``scipy.stats.norm.cdf``, on all points.
- ``image`` (512², random masses with ~5 % empty pixels on [-2, 2]²) at t = 1e-4, 3e-3,
  8e-3 (the slowest time found), 0.05 and 0.5 (pixels 2.5 to 0.002 kernel stds wide),
  each on the road ``densities._image_fast.plan`` takes there (``window``: the pixels
  within 10 stds, for narrow kernels; ``interp``: panel-wise Chebyshev interpolation, for
  wide ones; both fall back to the dense product where their error bound is not small
  against the density):
  ``log_pdf`` (density only) and ``log_pdf_and_score``. Peer:
  brute force, the image as a mixture of its 262,144 pixel boxes (``scipy.special.ndtr``
  differences per pixel, no separability), on a subset, its time scaled to all points
  (marked ``extrapolated``); accuracy is the largest relative difference of p and of the
  score there.
- ``kde`` (``GaussianKDE`` of 2000 two-moons samples, Scott's rule) at t = 0 and t = 0.05:
  ``log_pdf`` and ``log_pdf_and_score``. Peer: ``scipy.stats.gaussian_kde`` of the same
  samples (at t > 0, of the centres ``a x_i + b`` with the kernel covariance ``a² H + v I``):
  the same law; accuracy is the largest |Δ log p|.

Run: ``.venv/bin/python benchmarks/density_speed.py [--points 1e5] [--repeats 3]
[--threads 1] [--out density_speed_out] [--quick]``. ``--threads`` pins the process (BLAS
and numba) before numpy loads; default 1. ``--quick`` is the smoke run of
``tests/test_bench_density.py`` (10⁴ points, a 256² image, one repeat, small subsets; a few
seconds). The table is printed, and ``numbers.json`` is written to ``--out``. Seconds move
with the load on a shared machine (printed), so compare the ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path


def _pin_threads(argv: list[str]) -> int:
    """``--threads N`` (default 1) takes effect before numpy and numba load."""
    n = int(next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--threads"), 1))
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:max(1, n)])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    return n


THREADS = _pin_threads(sys.argv) if __name__ == "__main__" else None

import numpy as np  # noqa: E402
from scipy import special, stats  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

import bridgesolve as bs  # noqa: E402
from bridgesolve._json import jsonable  # noqa: E402
from bridgesolve.densities import (  # noqa: E402
    GaussianKDE,
    ImageDensity,
    _image_fast,  # noqa: E402
    checkerboard,
    two_moons,
)

VP = bs.VP()
#: Issue 21's targets (seconds for 10⁵ points at one time).
TARGETS = {"two_moons score": 1.0, "image": 1.0}
NOISE = 0.08
BOX = (-2.0, 2.0)


def load() -> float:
    return os.getloadavg()[0]


def best_of(fn, repeats: int) -> tuple[float, float, object]:
    """``(best seconds, first seconds, last result)`` of ``fn()``: one warm-up call, then
    ``repeats`` timed calls."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, first, out


def transition(t: float) -> tuple[float, float]:
    """``(a, v)`` of VP from 0 to ``t`` (1, 0 at the data)."""
    return (1.0, 0.0) if t == 0 else VP.transition(t, 0.0)


def at(density, t: float):
    return density if t == 0 else density.evolve(VP, t)


# -- peers ----------------------------------------------------------------------------------
def scipy_kde(centres: np.ndarray, weights: np.ndarray | None, cov: np.ndarray):
    """``scipy.stats.gaussian_kde`` with the given centres, weights and kernel covariance
    (its data covariance replaced by ``cov`` before the bandwidth factor 1 is applied)."""
    kde = stats.gaussian_kde(centres.T, weights=weights)
    kde._data_covariance = np.atleast_2d(cov)
    kde._data_cho_cov = np.linalg.cholesky(kde._data_covariance)
    kde.set_bandwidth(1.0)
    assert np.allclose(kde.covariance, cov, rtol=1e-14, atol=0)
    return kde


def simpson_curve(mix, x: np.ndarray, a: float, v: float, n: int = 200_001,
                  chunk: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force ``(log p, score)`` of the curve mixture ``mix`` under ``x = a y + √v z``
    by Simpson in ``u`` (``n`` nodes per curve, no panels, no log-domain tricks but
    logsumexp)."""
    u = np.linspace(0.0, 1.0, n)
    wq = np.ones(n)
    wq[1:-1:2], wq[2:-1:2] = 4.0, 2.0
    wq /= 3.0 * (n - 1)
    var = a * a * mix.noise**2 + v
    d = mix.dim
    means = [a * np.asarray(c.fn(u)) for c in mix.curves]
    logw = [math.log(wj) + np.log(wq) for wj in mix.weights]
    logp, score = np.empty(x.shape[0]), np.empty_like(x)
    for lo in range(0, x.shape[0], chunk):
        xs = x[lo:lo + chunk]
        parts, post = [], []
        for m, lw in zip(means, logw, strict=True):
            e = lw[None, :] - 0.5 * np.sum((xs[:, None, :] - m[None, :, :]) ** 2, axis=2) / var
            parts.append(e)
        e = np.concatenate(parts, axis=1)
        m = np.concatenate(means)
        lse = logsumexp(e, axis=1)
        r = np.exp(e - lse[:, None])
        post = r @ m
        logp[lo:lo + chunk] = lse - 0.5 * d * math.log(2 * math.pi * var)
        score[lo:lo + chunk] = (post - xs) / var
    return logp, score


def direct_boxes(weights, lower, upper, x, a: float, v: float) -> np.ndarray:
    """``Σ_k w_k Π_i [Φ((a u + b - x)/s) - Φ((a l + b - x)/s)] / (a (u - l))`` (VP: b = 0)."""
    s = math.sqrt(v)
    out = np.zeros(x.shape[0])
    for w, lo, hi in zip(weights, lower, upper, strict=True):
        f = np.ones(x.shape[0])
        for i in range(x.shape[1]):
            A, B = (a * lo[i] - x[:, i]) / s, (a * hi[i] - x[:, i]) / s
            f *= (stats.norm.cdf(B) - stats.norm.cdf(A)) / (a * (hi[i] - lo[i]))
        out += w * f
    return out


def brute_image(img: ImageDensity, x: np.ndarray, a: float, v: float,
                chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``(p, score)`` of a 2D image as the mixture of its pixel boxes: every pixel's erf
    differences and their derivatives, summed over all pixels (no separability)."""
    s = math.sqrt(v)
    n1, n2 = img.masses.shape
    e1 = a * np.linspace(img.lower[0], img.upper[0], n1 + 1)
    e2 = a * np.linspace(img.lower[1], img.upper[1], n2 + 1)
    i1, i2 = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    i1, i2, w = i1.ravel(), i2.ravel(), img.masses.ravel()
    lo1, hi1, lo2, hi2 = e1[i1], e1[i1 + 1], e2[i2], e2[i2 + 1]
    pdf, score = np.empty(x.shape[0]), np.empty_like(x)
    c = 1.0 / math.sqrt(2.0 * math.pi)
    for lo in range(0, x.shape[0], chunk):
        xs = x[lo:lo + chunk]
        A1, B1 = (lo1[None] - xs[:, :1]) / s, (hi1[None] - xs[:, :1]) / s
        A2, B2 = (lo2[None] - xs[:, 1:]) / s, (hi2[None] - xs[:, 1:]) / s
        f1 = (special.ndtr(B1) - special.ndtr(A1)) / (hi1 - lo1)
        f2 = (special.ndtr(B2) - special.ndtr(A2)) / (hi2 - lo2)
        g1 = c * (np.exp(-0.5 * A1 * A1) - np.exp(-0.5 * B1 * B1)) / (s * (hi1 - lo1))
        g2 = c * (np.exp(-0.5 * A2 * A2) - np.exp(-0.5 * B2 * B2)) / (s * (hi2 - lo2))
        p = (f1 * f2) @ w
        pdf[lo:lo + chunk] = p
        score[lo:lo + chunk] = np.stack([(g1 * f2) @ w, (f1 * g2) @ w], axis=1) / p[:, None]
    return pdf, score


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def score_rel(s: np.ndarray, ref: np.ndarray) -> float:
    """``max |s - ref| / max(|ref|)`` over the points (a norm-wise relative error)."""
    return float(np.max(np.linalg.norm(s - ref, axis=1)) / np.max(np.linalg.norm(ref, axis=1)))


# -- cases ----------------------------------------------------------------------------------
def row(case, t, evaluation, points, components, best, first, **extra) -> dict:
    out = {"case": case, "t": t, "evaluation": evaluation, "points": points,
           "components": components, "time_s": best, "first_s": first}
    out.update(extra)
    if out.get("peer_time_s"):
        out["peer_over_bridgesolve"] = out["peer_time_s"] / best
    return out


def run_moons(cfg, rng) -> list[dict]:
    rows = []
    base = two_moons(noise=NOISE)
    for t in cfg["moon_times"]:
        a, v = transition(t)
        x = at(base, t).sample(cfg["points"], rng)
        best, first, (logp, score) = best_of(lambda t=t, x=x: at(base, t).log_pdf_and_score(x),
                                             cfg["repeats"])
        p = at(base, t)
        nodes = p.n_nodes
        qerr = float(np.max(p.quadrature_error(x)))
        sub = x[:cfg["brute_points"]]
        t0 = time.perf_counter()
        ref_logp, ref_score = simpson_curve(base, sub, a, v)
        brute_s = time.perf_counter() - t0
        acc = {"quadrature_error_max": qerr,
               "brute_points": sub.shape[0], "brute_s": brute_s,
               "logp_vs_brute": float(np.max(np.abs(logp[:sub.shape[0]] - ref_logp))),
               "score_vs_brute": score_rel(score[:sub.shape[0]], ref_score)}
        rows.append(row("two_moons", t, "log_pdf_and_score", x.shape[0], nodes, best, first,
                        accuracy=acc, target_s=TARGETS["two_moons score"]))
        rule = p._rule()  # the rule's nodes and weights, for the peer
        kde = scipy_kde(rule.means, np.exp(rule.log_weights), p.variance * np.eye(2))
        peer_s, _, peer_logp = best_of(lambda kde=kde, x=x: kde.logpdf(x.T), cfg["repeats"])
        best, first, own = best_of(lambda t=t, x=x: at(base, t).log_pdf(x), cfg["repeats"])
        rows.append(row("two_moons", t, "log_pdf", x.shape[0], nodes, best, first,
                        peer="scipy gaussian_kde on the same nodes", peer_time_s=peer_s,
                        peer_points=x.shape[0],
                        accuracy={"logp_vs_peer": float(np.max(np.abs(own - peer_logp)))}))
    return rows


def run_checkerboard(cfg, rng) -> list[dict]:
    t = 0.05
    a, v = transition(t)
    base = checkerboard()
    x = at(base, t).sample(cfg["points"], rng)
    best, first, (logp, _) = best_of(lambda: at(base, t).log_pdf_and_score(x), cfg["repeats"])
    peer_s, _, ref = best_of(lambda: direct_boxes(base.weights, base.lower, base.upper, x, a, v),
                             cfg["repeats"])
    return [row("checkerboard", t, "log_pdf_and_score", x.shape[0], base.weights.size, best,
                first, peer="direct Φ formula (scipy.stats.norm.cdf)", peer_time_s=peer_s,
                peer_points=x.shape[0], accuracy={"pdf_vs_peer_rel": rel(np.exp(logp), ref)})]


def image(n: int, seed: int = 5) -> ImageDensity:
    m = np.random.default_rng(seed).random((n, n)) ** 2
    m[m < 0.05] = 0.0
    return ImageDensity(m, [BOX[0]] * 2, [BOX[1]] * 2)


def run_image(cfg, rng) -> list[dict]:
    rows = []
    base = image(cfg["image"])
    for t in cfg["image_times"]:
        a, v = transition(t)
        p = at(base, t)
        x = p.sample(cfg["points"], rng)
        ratio = float(a * (BOX[1] - BOX[0]) / cfg["image"] / math.sqrt(v))
        edges = [a * g for g in p._grid]
        path = _image_fast.plan(edges, math.sqrt(v), x, True)
        best_p, first_p, logp = best_of(lambda t=t, x=x: at(base, t).log_pdf(x), cfg["repeats"])
        best_s, first_s, (logp2, score) = best_of(lambda t=t, x=x: at(base, t).log_pdf_and_score(x),
                                                  cfg["repeats"])
        sub = x[:cfg["brute_image_points"]]
        t0 = time.perf_counter()
        ref_p, ref_score = brute_image(base, sub, a, v)
        brute_s = time.perf_counter() - t0
        scale = x.shape[0] / sub.shape[0]
        k = sub.shape[0]
        common = {"pixel_over_std": ratio, "path": path, "target_s": TARGETS["image"],
                  "peer": f"brute force, {base.masses.size} pixel boxes (ndtr)",
                  "peer_time_s": brute_s * scale, "peer_points": k, "extrapolated": True}
        rows.append(row(f"image {cfg['image']}²", t, "log_pdf", x.shape[0], base.masses.size,
                        best_p, first_p, accuracy={"pdf_vs_brute_rel":
                                                   rel(np.exp(logp[:k]), ref_p)}, **common))
        rows.append(row(f"image {cfg['image']}²", t, "log_pdf_and_score", x.shape[0],
                        base.masses.size, best_s, first_s,
                        accuracy={"pdf_vs_brute_rel": rel(np.exp(logp2[:k]), ref_p),
                                  "score_vs_brute": score_rel(score[:k], ref_score)}, **common))
    return rows


def run_kde(cfg, rng) -> list[dict]:
    rows = []
    data = two_moons(noise=NOISE).sample(cfg["kde_samples"], rng=1)
    base = GaussianKDE(data, "scott")
    for t in (0.0, 0.05):
        a, v = transition(t)
        p = at(base, t)
        x = p.sample(cfg["points"], rng)
        peer = (stats.gaussian_kde(data.T, "scott") if t == 0
                else scipy_kde(a * data, None, p.covariance))
        peer_s, _, ref = best_of(lambda peer=peer, x=x: peer.logpdf(x.T), cfg["repeats"])
        best, first, logp = best_of(lambda t=t, x=x: at(base, t).log_pdf(x), cfg["repeats"])
        rows.append(row("kde (scott)", t, "log_pdf", x.shape[0], data.shape[0], best, first,
                        peer="scipy gaussian_kde, same law", peer_time_s=peer_s,
                        peer_points=x.shape[0],
                        accuracy={"logp_vs_peer": float(np.max(np.abs(logp - ref)))}))
        best, first, (logp, score) = best_of(lambda t=t, x=x: at(base, t).log_pdf_and_score(x),
                                             cfg["repeats"])
        rows.append(row("kde (scott)", t, "log_pdf_and_score", x.shape[0], data.shape[0],
                        best, first,
                        accuracy={"logp_vs_peer": float(np.max(np.abs(logp - ref)))}))
    return rows


CASES = {"two_moons": run_moons, "checkerboard": run_checkerboard, "image": run_image,
         "kde": run_kde}


# -- output ---------------------------------------------------------------------------------
def _fmt_acc(acc: dict) -> str:
    keys = [k for k in acc if not k.startswith("brute_")]
    return "; ".join(f"{k} {acc[k]:.1e}" for k in keys)


def table(rows: list[dict]) -> str:
    head = ("| case | t | evaluation | points | components | bridgesolve [s] | first [s] | "
            "peer | peer [s] | peer / bridgesolve | accuracy |")
    out = [head, "| " + " | ".join(["---"] * 11) + " |"]
    for r in rows:
        peer = r.get("peer", "–")
        peer_s = "–"
        if r.get("peer_time_s"):
            peer_s = f"{r['peer_time_s']:.3g}"
            if r.get("extrapolated"):
                peer_s += f" (from {r['peer_points']} pts)"
        ratio = f"{r['peer_over_bridgesolve']:.3g}" if "peer_over_bridgesolve" in r else "–"
        case = r["case"] + (f" ({r['path']}, h/s {r['pixel_over_std']:.3g})" if "path" in r
                            else "")
        out.append(f"| {case} | {r['t']:g} | {r['evaluation']} | {r['points']} | "
                   f"{r['components']} | {r['time_s']:.3g} | {r['first_s']:.3g} | {peer} | "
                   f"{peer_s} | {ratio} | {_fmt_acc(r['accuracy'])} |")
    return "\n".join(out)


def verdicts(rows: list[dict], points: int) -> list[str]:
    out = []
    for r in rows:
        if "target_s" not in r:
            continue
        ok = r["time_s"] < r["target_s"]
        scaled = "" if points == 100_000 else f" (at {points} points, not 10^5)"
        out.append(f"target < {r['target_s']:g} s: {r['case']} t = {r['t']:g} "
                   f"{r['evaluation']}: {r['time_s']:.3f} s -> {'met' if ok else 'NOT met'}"
                   f"{scaled}")
    return out


def main(argv=None) -> int:
    doc = __doc__
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                epilog=doc.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES),
                   help="cases to run (default: all)")
    p.add_argument("--points", type=float, default=1e5, help="points per evaluation (1e5)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after a warm-up (best)")
    p.add_argument("--image", type=int, default=512, help="image side in pixels (512)")
    p.add_argument("--kde-samples", type=int, default=2000, help="samples of the KDE (2000)")
    p.add_argument("--brute-points", type=int, default=200,
                   help="points of the brute-force checks of curves (200)")
    p.add_argument("--brute-image-points", type=int, default=100,
                   help="points of the brute-force image peer (100)")
    p.add_argument("--out", type=Path, default=Path("density_speed_out"),
                   help="folder for numbers.json")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (~15 s): 1e4 points, 256² image, one repeat")
    p.add_argument("--quiet", action="store_true", help="no per-case lines")
    p.add_argument("--threads", type=int, default=1,
                   help="cores (BLAS and numba), pinned before numpy loads (default 1)")
    args = p.parse_args(argv)
    cfg = {"points": int(args.points), "repeats": args.repeats, "image": args.image,
           "kde_samples": args.kde_samples, "brute_points": args.brute_points,
           "brute_image_points": args.brute_image_points, "moon_times": (0.0, 0.05),
           "image_times": (1e-4, 3e-3, 8e-3, 0.05, 0.5)}
    if args.quick:
        cfg.update(points=10_000, repeats=1, image=256, kde_samples=300, brute_points=20,
                   brute_image_points=20, image_times=(1e-4, 0.05))
    args.out.mkdir(parents=True, exist_ok=True)
    start = load()
    t_all = time.perf_counter()
    if not args.quiet:
        print(f"density benchmark: {cfg['points']} points, best of {cfg['repeats']}; load "
              f"{start:.2f}; {args.threads} thread(s)", flush=True)
    rng = np.random.default_rng(2026)
    rows = []
    for name in args.cases:
        if not args.quiet:
            print(f"case {name} (load {load():.2f})", flush=True)
        rows += CASES[name](cfg, rng)
    numbers = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "threads": args.threads, "load_start": start,
                           "load_end": load()},
               "versions": _versions(), "quick": args.quick, "config": cfg,
               "total_s": time.perf_counter() - t_all, "rows": rows,
               "verdicts": verdicts(rows, cfg["points"])}
    (args.out / "numbers.json").write_text(json.dumps(jsonable(numbers), indent=1))
    print(table(rows))
    print()
    print("\n".join(numbers["verdicts"]))
    print(f"\nload {start:.2f} at the start, {numbers['machine']['load_end']:.2f} at the end; "
          f"{numbers['total_s']:.0f} s in all; wrote {args.out / 'numbers.json'}")
    return 0


def _versions() -> dict:
    import scipy

    out = {"bridgesolve": getattr(bs, "__version__", "?"), "numpy": np.__version__,
           "scipy": scipy.__version__}
    try:
        import numba

        out["numba"] = numba.__version__
    except ImportError:
        out["numba"] = None
    return out


if __name__ == "__main__":
    raise SystemExit(main())
