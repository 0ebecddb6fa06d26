r"""POT peer for ``bridge_vs_pot.py``: entropic optimal transport on the bridge's grid points.

With a Brownian reference ``dX = σ dW`` on [0, T], the endpoint coupling of the Schrödinger
bridge between ρ0 and ρ1 is the entropic optimal-transport plan

.. math::

    π(x, y) = \hat φ_0(x)\, k_T(x, y)\, φ_T(y), \qquad
    k_T(x, y) = (2π ε)^{-d/2} \exp\!\Big(-\frac{|x - y|^2}{2 ε}\Big), \quad ε = σ^2 T,

i.e. the minimizer of ``⟨π, M⟩ - ε H(π)`` with ``M = |x - y|² / 2``, ``H(π) = -Σ π log π``
over couplings of ``a = ρ0 w`` and ``b = ρ1 w``. POT's ``ot.sinkhorn(a, b, M, reg)`` solves
exactly ``min ⟨π, M⟩ + reg Σ π log π`` (``K = exp(-M / reg)``), so ``reg = ε``.

Everything here is NumPy + POT (no DOLFINx): the data setup of the comparison (points and
weights come from the caller), the plans of both sides, the comparison metrics, POT's
iteration count to a given L1 marginal error, and POT's peak memory in a subprocess.

Iteration counting. POT checks its own stopping criterion (the ℓ2 norm of the column
marginal's violation) every 10th iteration only. To compare iterations *to the same L1
marginal error* as bridgesolve reports, :func:`sinkhorn_l1_history` runs POT's update
sequence (``v = b / Kᵀu``, then ``u = a / K v``: after each iteration the row marginal is
exact and the column marginal carries the error) and records the L1 error after every
iteration; the timing then calls ``ot.sinkhorn`` itself with exactly that many iterations
and checks that POT's plan reaches the same error.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

#: POT's plain Sinkhorn underflows when ``max M / reg`` exceeds about this (exp(-700) ≈ 1e-304);
#: beyond it the comparison uses ``method="sinkhorn_log"``.
LOG_DOMAIN_THRESHOLD = 600.0


def cost_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``M_ij = |x_i - y_j|² / 2`` (POT's squared Euclidean distance, halved)."""
    import ot

    return 0.5 * ot.dist(x, y, metric="sqeuclidean")


def pot_method(M: np.ndarray, eps: float) -> str:
    """``"sinkhorn"`` where ``exp(-M/ε)`` stays representable, else ``"sinkhorn_log"``."""
    return "sinkhorn" if float(M.max()) / eps < LOG_DOMAIN_THRESHOLD else "sinkhorn_log"


def _log_kernel_matvec(log_K: np.ndarray, log_v: np.ndarray, axis: int) -> np.ndarray:
    """``log Σ_j exp(log_K_ij + log_v_j)`` (axis=1) or over i (axis=0), stably."""
    from scipy.special import logsumexp

    if axis == 1:
        return logsumexp(log_K + log_v[None, :], axis=1)
    return logsumexp(log_K + log_v[:, None], axis=0)


def sinkhorn_l1_history(a: np.ndarray, b: np.ndarray, M: np.ndarray, eps: float, *,
                        target: float, max_iter: int = 100_000,
                        method: str | None = None) -> tuple[int, float]:
    """Iterations POT's Sinkhorn needs to reach an L1 marginal error ``<= target``.

    POT (``sinkhorn_knopp`` and ``sinkhorn_log`` alike) starts from ``u = v = 1/n`` (0 in
    the log domain: the same iterates up to a constant factor, which the first ``v``
    update removes) and iterates ``v = b / Kᵀu``, ``u = a / K v``. After each iteration
    ``Σ_j π_ij = a_i`` exactly, so the L1 error is ``Σ_j |(πᵀ1)_j - b_j|``. This runs the
    same iterates (in the log domain for ``method="sinkhorn_log"``), checks the error every
    10th iteration like POT, and once below ``target`` bisects over the stored ``u`` of the
    last 10 iterations for the first one that is (the error decreases monotonically).

    Returns:
        ``(iterations, l1_error)`` of the first iteration at or below ``target``.

    Raises:
        RuntimeError: if ``target`` is not reached within ``max_iter`` iterations.
    """
    method = method or pot_method(M, eps)
    if method == "sinkhorn":
        K = np.exp(-M / eps)
        u = np.ones_like(a) / a.size

        def step(u):
            return a / (K @ (b / (K.T @ u)))

        def error(u):
            v = b / (K.T @ u)
            return float(np.abs(v * (K.T @ step_u(u, v)) - b).sum())

        def step_u(u, v):
            return a / (K @ v)
    else:
        log_K = -M / eps
        log_a, log_b = np.log(a), np.log(b)
        u = np.zeros_like(a)

        def step(u):
            return log_a - _log_kernel_matvec(log_K, log_b - _log_kernel_matvec(log_K, u, 0), 1)

        def error(u):
            v = log_b - _log_kernel_matvec(log_K, u, 0)
            new_u = log_a - _log_kernel_matvec(log_K, v, 1)
            return float(np.abs(np.exp(v + _log_kernel_matvec(log_K, new_u, 0)) - b).sum())

    # error(u_k) is the L1 error after iteration k + 1 (it performs that iteration).
    history = [u]
    last = math.inf
    for k in range(max_iter):
        if k % 10 == 0:
            last = error(history[-1])
            if last <= target:
                lo, hi = 0, len(history) - 1  # error(history[hi]) <= target
                while lo < hi:
                    mid = (lo + hi) // 2
                    if error(history[mid]) <= target:
                        hi = mid
                    else:
                        lo = mid + 1
                return k - (len(history) - 1) + hi + 1, error(history[hi])
            history = [history[-1]]
        history.append(step(history[-1]))
    raise RuntimeError(f"Sinkhorn did not reach L1 marginal error {target:g} in {max_iter} "
                       f"iterations (last {last:.3e})")


def pot_solve(a: np.ndarray, b: np.ndarray, M: np.ndarray, eps: float, *, iterations: int,
              method: str | None = None) -> tuple[np.ndarray, dict]:
    """``ot.sinkhorn`` run for exactly ``iterations`` iterations (``stopThr = 0``).

    Returns:
        ``(plan, info)``; ``info`` has ``method``, ``iterations``, ``wall_s`` (the call
        alone: kernel, iterations and the dense plan), the plan's L1 marginal errors.
    """
    import warnings

    import ot

    method = method or pot_method(M, eps)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge": stopThr = 0 on purpose
        plan = ot.sinkhorn(a, b, M, eps, method=method, numItermax=iterations, stopThr=0.0)
    wall = time.perf_counter() - t0
    row, col = marginal_errors(plan, a, b)
    return plan, {"method": method, "iterations": iterations, "wall_s": wall,
                  "row_L1": row, "col_L1": col}


def plan_from_log_potentials(log_f: np.ndarray, log_g: np.ndarray, x: np.ndarray,
                             y: np.ndarray, eps: float) -> np.ndarray:
    r"""``π_ij = exp(log_f_i + log_g_j) k_T(x_i, y_j)`` with the Gaussian heat kernel of
    variance ε per coordinate (the continuous bridge's coupling, sampled on the points)."""
    d = x.shape[1]
    log_k = -cost_matrix(x, y) / eps - 0.5 * d * math.log(2.0 * math.pi * eps)
    return np.exp(log_k + log_f[:, None] + log_g[None, :])


def marginal_errors(plan: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """L1 errors ``(Σ_i |π1 - a|_i, Σ_j |πᵀ1 - b|_j)`` of a plan's two marginals."""
    return float(np.abs(plan.sum(axis=1) - a).sum()), float(np.abs(plan.sum(axis=0) - b).sum())


def barycentric_map(plan: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``E_π[Y | X = x_i] = Σ_j π_ij y_j / Σ_j π_ij`` for every row (rows of zero mass: NaN)."""
    mass = plan.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (plan @ y) / mass[:, None]


def map_distance(B1: np.ndarray, B2: np.ndarray, a: np.ndarray, *,
                 support: float = 1e-3) -> dict:
    """Distances between two barycentric maps.

    Returns:
        ``rms``: ``(Σ_i a_i |B1 - B2|_i²)^½`` (weighted by the source marginal, i.e. the
        L2(ρ0) norm); ``max``: the largest ``|B1 - B2|`` where ``a_i >= support · max a``
        (the maps are ill-determined where ρ0 vanishes).
    """
    diff = np.linalg.norm(B1 - B2, axis=1)
    mask = a >= support * a.max()
    return {"rms": float(np.sqrt(np.sum(a[mask] * diff[mask] ** 2) / a[mask].sum())),
            "max": float(diff[mask].max())}


def gaussian_entropic_slope(var0: float, var1: float, eps: float) -> float:
    r"""Slope ``c / var0`` of the barycentric map ``E[Y | X = x] = m1 + (c / var0)(x - m0)``
    of the entropic plan between ``N(m0, var0)`` and ``N(m1, var1)`` (per coordinate).

    The plan is Gaussian; its cross term must equal the kernel's, ``xy / ε``, so the
    covariance ``c`` solves ``c / (var0 var1 - c²) = 1 / ε``:
    ``c = (sqrt(ε² + 4 var0 var1) - ε) / 2`` (Janati et al. 2020; Bunne et al. 2023, "The
    Schrödinger bridge between Gaussian measures has a closed form", with σ² = ε).
    """
    c = 0.5 * (math.sqrt(eps * eps + 4.0 * var0 * var1) - eps)
    return c / var0


# -- memory --------------------------------------------------------------------------------
_POT_MEMORY_SCRIPT = textwrap.dedent(r"""
    import re, sys, numpy as np, ot
    def hwm():
        status = open('/proc/self/status').read()
        return int(re.search(r'VmHWM:\s+(\d+)', status).group(1)) * 1024
    n, eps, method = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, 2))
    a = np.full(n, 1.0 / n)
    base = hwm()
    M = 0.5 * ot.dist(x, x, metric="sqeuclidean")
    plan = ot.sinkhorn(a, a, M, eps, method=method, numItermax=3, stopThr=0.0)
    peak = hwm()
    print(base, peak)
""")


def pot_peak_memory(n: int, *, method: str = "sinkhorn", eps: float = 1.0) -> dict:
    """Peak resident memory of building ``M`` and one ``ot.sinkhorn`` call on ``n`` points,
    measured in a fresh subprocess: the high-water mark ``VmHWM`` of ``/proc/self/status``
    (Linux). Not ``getrusage``'s ``ru_maxrss``: Linux carries that over ``fork``/``exec``
    from the parent, so a child of a large benchmark process would report the parent's
    peak.

    Returns:
        ``n``, ``baseline_bytes`` (Python + NumPy + POT, before ``M``), ``peak_bytes``,
        ``matrices``: ``(peak - baseline) / (8 n²)``, the number of dense n×n float64
        arrays alive at the peak.
    """
    # POT imports PyTorch when it is installed, which alone peaks at ~1 GB: a NumPy user
    # does not pay that, so the subprocess disables POT's torch backend.
    env = {**os.environ, "POT_BACKEND_DISABLE_PYTORCH": "1"}
    out = subprocess.run([sys.executable, "-c", _POT_MEMORY_SCRIPT, str(n), str(eps), method],
                         capture_output=True, text=True, check=True, env=env)
    base, peak = (int(v) for v in out.stdout.split())
    return {"n": n, "method": method, "baseline_bytes": base, "peak_bytes": peak,
            "matrices": (peak - base) / (8.0 * n * n)}


def pot_largest_n(budget_bytes: float, matrices: float, baseline_bytes: float) -> int:
    """Largest ``n`` with ``baseline + matrices · 8 n² <= budget`` (dense n×n plans)."""
    return int(math.floor(math.sqrt(max(budget_bytes - baseline_bytes, 0.0) / (8.0 * matrices))))
