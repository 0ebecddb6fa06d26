"""Benchmark: Fokker–Planck fields kept in memory or on disk (issue 24).

A 2D OU Fokker–Planck solve (P1 on a square, Crank–Nicolson, T = 1) from the standard
two-component mixture, run once per configuration in a fresh process so that its peak
resident memory (``VmHWM``) is its own. ``both`` runs memory and disk storage at a size
where both fit and checks that the values are the same bits; ``large`` runs disk storage
where the levels alone would need several GB in memory, and at a tenth of its levels
(reported: the bytes of the field, peak RSS of the solve, wall time of the solve including
its post-solve checks, which read every level, and the stepping time alone).

Run: ``.venv/bin/python benchmarks/field_storage.py [--small 300 500] [--large 700 1000]``
(cells per direction, time steps); ``--storage-dir`` puts the files elsewhere than
``$TMPDIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

MIXTURE = dict(weights=[0.5, 0.5], means=[[-1.5, -1.0], [1.5, 1.0]],
               covs=[[[0.25, 0.1], [0.1, 0.25]], [[0.3, -0.1], [-0.1, 0.2]]])


def _status(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


def child(cells: int, steps: int, storage: str, folder: str | None) -> dict:
    import numpy as np

    import bridgesolve as bs
    from bridgesolve.storage import level_blocks

    dom = bs.Domain.box([-5.0, -5.0], [5.0, 5.0], (cells, cells))
    kw = {"storage_dir": folder} if folder and storage != "memory" else {}
    prob = bs.Problem(dom, bs.OU(theta=1.0, sigma=2.0**0.5), bs.TimeGrid.uniform(1.0, steps),
                      storage=storage, **kw)
    rss_before = _status("VmHWM")
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = bs.solve_fokker_planck(prob, bs.GaussianMixture(**MIXTURE), progress=False,
                                   check_mass=False)
    wall = time.perf_counter() - tic
    peak = _status("VmHWM")
    digest = hashlib.sha256()
    for block in level_blocks(p.values):  # in blocks: the hash must not load a disk field
        for k in range(block.start, block.stop):
            digest.update(np.ascontiguousarray(p.values[k]).tobytes())
    return {"cells": cells, "steps": steps, "storage": p.storage, "ndofs": prob.ndofs,
            "field_bytes": prob.storage.field_bytes, "wall_s": wall,
            "stepping_s": p.info["timings"]["stepping_s"],
            "linear_solver": "+".join(p.info["linear_solver"].get("methods", {})) or "?",
            "rss_before": rss_before, "peak_rss": peak, "peak_rss_with_hash": _status("VmHWM"),
            "mass_drift": float(np.ptp(p.info["mass"])), "sha256": digest.hexdigest()}


def run(cells: int, steps: int, storage: str, folder: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(cells), str(steps), storage]
    if folder:
        cmd += ["--storage-dir", folder]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", nargs=2, type=int, default=[300, 500], metavar=("CELLS", "STEPS"))
    ap.add_argument("--large", nargs=2, type=int, default=[700, 1000], metavar=("CELLS", "STEPS"))
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--storage-dir", default=None)
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        cells, steps, storage = args.child
        print(json.dumps(child(int(cells), int(steps), storage, args.storage_dir)))
        return
    rows = [run(*args.small, st, args.storage_dir) for st in ("memory", "disk")]
    same = rows[0]["sha256"] == rows[1]["sha256"]
    if not args.skip_large:  # a tenth of the levels too: the peak must not follow them
        cells, steps = args.large
        rows += [run(cells, max(1, steps // 10), "disk", args.storage_dir),
                 run(cells, steps, "disk", args.storage_dir)]
    gib = 2.0**30
    print(f"{'cells':>6} {'steps':>6} {'ndofs':>8} {'storage':>7} {'field GiB':>9} "
          f"{'RSS before GiB':>14} {'peak RSS GiB':>12} {'wall s':>8} {'stepping s':>10} solver")
    for r in rows:
        print(f"{r['cells']:>6} {r['steps']:>6} {r['ndofs']:>8} {r['storage']:>7} "
              f"{r['field_bytes'] / gib:>9.2f} {r['rss_before'] / gib:>14.2f} "
              f"{r['peak_rss'] / gib:>12.2f} {r['wall_s']:>8.1f} {r['stepping_s']:>10.1f} "
              f"{r['linear_solver']}")
    print(f"memory and disk values identical (sha256 of every level): {same}")
    print(json.dumps(rows))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
