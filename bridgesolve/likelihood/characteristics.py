"""``h = 0``: the probability-flow characteristics, ``log q_0`` and the WKB coefficient.

Private part of :mod:`bridgesolve.likelihood` (import from there):

* ``_characteristics`` — ``log q_0`` at every mesh node and level (``generated_density``
  with ``method="characteristics"``);
* :func:`log_likelihood_characteristics` — ``log q_0(x, t_min)`` at any points;
* :func:`wkb_coefficient` — Hirono et al.'s first WKB coefficient ``C(x)``;
* ``_log_density`` — ``log π`` of a prior (mixture, DOLFINx Function or callable density).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from bridgesolve._dolfinx import MPI, fem
from bridgesolve._validate import BridgesolveInputError, choice, points, positive, positive_int
from bridgesolve.problem import Problem
from bridgesolve.sampling import user_score
from bridgesolve.spacetime import SpaceTimeField
from bridgesolve.timegrid import TimeGrid

Score = Callable[[np.ndarray, float], np.ndarray]


# -- h = 0 -------------------------------------------------------------------------------
def _log_density(prior) -> Callable[[np.ndarray], np.ndarray]:
    """``log π`` at points; a DOLFINx Function is evaluated collectively, as 0 outside its
    mesh."""
    if hasattr(prior, "log_pdf"):
        return prior.log_pdf
    if isinstance(prior, fem.Function):
        from bridgesolve.spacetime import PointLocator

        def log_fe(x):
            vals = PointLocator(prior.function_space.mesh, x)(prior)
            with np.errstate(divide="ignore"):
                return np.log(np.maximum(np.nan_to_num(vals, nan=0.0), 0.0))

        return log_fe
    f = prior.pdf if hasattr(prior, "pdf") else prior
    if not callable(f):
        raise BridgesolveInputError(
            f"prior = {prior!r}: expected a GaussianMixture or a callable density")

    def logf(x):
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(np.asarray(f(x), dtype=float), 0.0))

    return logf


def _characteristics(problem, score, prior, progress, name, levels, divergence, eps
                     ) -> SpaceTimeField:
    """``log q_0(x, t_n) = log π(X_T) + ∫_{t_n}^T ∇·v`` from every node and level at once:
    at step m all trajectories started at levels ≤ m advance together."""
    from tqdm.auto import tqdm

    proc = problem.process
    d = problem.domain.dim
    V = problem.V
    nodes = V.tabulate_dof_coordinates()[:, :d].copy()
    nn = nodes.shape[0]
    times = problem.grid.times
    N = times.size - 1
    n_levels = N if levels == "all" else 1  # levels that need characteristics
    log_pi = _log_density(prior)

    def vel(x, t):
        s = np.asarray(score(x, t), dtype=float).reshape(x.shape)
        return proc.drift(x, t) - float(proc.diffusion(t)) * s  # f - ½ g² s

    def vel_div(x, t):
        """``v`` and ``∇·v`` at ``x`` (one score call on the stencil)."""
        if divergence is not None:
            v = vel(x, t)
            fdiv = _fd_divergence(lambda y: proc.drift(y, t), x, eps)
            return v, fdiv - float(proc.diffusion(t)) * np.asarray(divergence(x, t), float)
        M = x.shape[0]
        stencil = [x]
        for i in range(d):
            e = np.zeros(d)
            e[i] = eps
            stencil += [x + e, x - e]
        allv = vel(np.concatenate(stencil), t)
        v = allv[:M]
        div = np.zeros(M)
        for i in range(d):
            plus = allv[(1 + 2 * i) * M:(2 + 2 * i) * M, i]
            minus = allv[(2 + 2 * i) * M:(3 + 2 * i) * M, i]
            # one-sided where a stencil point leaves a mesh score's domain (NaN there)
            div += np.where(np.isnan(plus), (v[:, i] - minus) / eps,
                            np.where(np.isnan(minus), (plus - v[:, i]) / eps,
                                     (plus - minus) / (2 * eps)))
        return v, div

    t_start = time.perf_counter()
    X = np.empty((n_levels, nn, d))
    acc = np.zeros((n_levels, nn))
    vcur = np.empty((n_levels, nn, d))
    dcur = np.empty((n_levels, nn))
    bar = tqdm(total=N, desc="characteristics h=0", unit="step", leave=False,
               disable=not progress or problem.comm.rank != 0)
    try:
        for m in range(N):
            tm, tn = float(times[m]), float(times[m + 1])
            dt = tn - tm
            if m < n_levels:  # trajectories of level m start at the nodes
                X[m] = nodes
                vcur[m], dcur[m] = vel_div(nodes, tm)
            act = min(m + 1, n_levels)
            x = X[:act].reshape(-1, d)
            v0 = vcur[:act].reshape(-1, d)
            pred = x + dt * v0
            v_pred = vel(pred, tn)
            x_new = x + 0.5 * dt * (v0 + v_pred)
            v_new, d_new = vel_div(x_new, tn)
            acc[:act] += 0.5 * dt * (dcur[:act] + d_new.reshape(act, nn))
            X[:act] = x_new.reshape(act, nn, d)
            vcur[:act] = v_new.reshape(act, nn, d)
            dcur[:act] = d_new.reshape(act, nn)
            bar.update()
    finally:
        bar.close()
    logs = np.empty((n_levels + 1, nn))
    ends = X.reshape(-1, d)
    inside = np.all(np.isfinite(ends), axis=1)  # NaN: left the domain of a mesh score
    log_end = np.full(ends.shape[0], np.nan)
    if inside.any():
        log_end[inside] = log_pi(ends[inside])
    logs[:n_levels] = log_end.reshape(n_levels, nn) + acc
    logs[n_levels] = log_pi(nodes)
    # Characteristics that leave the domain of a mesh score carry no information (NaN):
    # their nodes get q = 0 (they start in the tails, where the flow points outwards).
    lost = ~np.isfinite(logs) & ~np.isneginf(logs)
    logs[lost] = -np.inf
    # "initial": the levels t_0 and T only (both computed), so that the field evaluates
    grid = problem.grid if levels == "all" else TimeGrid(np.array([times[0], times[-1]]))
    info = {"equation": "probability-flow characteristics", "log_values": logs,
            "lost_nodes": int(problem.comm.allreduce(int(lost[0].sum()), MPI.SUM)),
            "timings": {"stepping_s": time.perf_counter() - t_start}}
    return SpaceTimeField(V, grid, np.exp(logs), name=name, info=info)


def _fd_divergence(fn, x, eps):
    d = x.shape[1]
    div = np.zeros(x.shape[0])
    for i in range(d):
        e = np.zeros(d)
        e[i] = eps
        div += (fn(x + e)[:, i] - fn(x - e)[:, i]) / (2 * eps)
    return div


# -- characteristics: log q_0 and the WKB coefficient -------------------------------------
_FD1 = np.array([1.0, -8.0, 0.0, 8.0, -1.0]) / 12.0
_FD2 = np.array([-1.0, 16.0, -30.0, 16.0, -1.0]) / 12.0
_FD3 = np.array([-1.0, 2.0, 0.0, -2.0, 1.0]) / 2.0
_FD0 = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
_FDS = [_FD0, _FD1, _FD2, _FD3]


class _Jet:
    """``v``, its first, second and third derivatives at points, by tensor-product
    5-point central differences of a vector field (5^d evaluations per point)."""

    def __init__(self, fn, d: int, eps: float):
        self.fn, self.d, self.eps = fn, d, eps
        grids = np.meshgrid(*[np.arange(-2, 3)] * d, indexing="ij")
        self.offsets = eps * np.stack([g.reshape(-1) for g in grids], axis=1)  # (5^d, d)

    def __call__(self, x: np.ndarray, t: float):
        d, eps = self.d, self.eps
        N = x.shape[0]
        pts = (x[None, :, :] + self.offsets[:, None, :]).reshape(-1, d)
        vals = np.asarray(self.fn(pts, t), dtype=float).reshape((5,) * d + (N, d))

        def deriv(alpha):
            out = vals
            for order in alpha:
                out = np.tensordot(_FDS[order], out, axes=([0], [0])) / eps**order
            return out  # (N, d)

        v = deriv((0,) * d)
        J = np.zeros((N, d, d))  # J[:, i, j] = ∂_j v_i
        H2 = np.zeros((N, d, d, d))  # H2[:, i, j, k] = ∂_j ∂_k v_i
        T3 = np.zeros((N, d, d, d))  # T3[:, i, j, k] = ∂_j ∂_k ∂_i v_i summed later
        for j in range(d):
            a = [0] * d
            a[j] += 1
            J[:, :, j] = deriv(tuple(a))
            for k in range(d):
                b = list(a)
                b[k] += 1
                H2[:, :, j, k] = deriv(tuple(b))
                for i in range(d):
                    c = list(b)
                    c[i] += 1
                    if max(c) <= 3:
                        T3[:, i, j, k] = deriv(tuple(c))[:, i]
                    else:  # not needed by the d ≤ 3 loops below
                        T3[:, i, j, k] = np.nan
        div = np.trace(J, axis1=1, axis2=2)
        grad_div = np.einsum("niij->nj", H2)  # ∂_j Σ_i ∂_i v_i
        hess_div = T3.sum(axis=1)  # ∂_j ∂_k ∇·v
        return v, J, H2, div, grad_div, hess_div


def _pf_velocity(problem: Problem, score: Score):
    proc = problem.process

    def vel(x, t):
        s = np.asarray(score(x, t), dtype=float).reshape(x.shape)
        return proc.drift(x, t) - float(proc.diffusion(t)) * s

    return vel


def _prior_jet(prior, x: np.ndarray, eps: float):
    """``log π``, ``∇ log π`` and ``∇² log π`` at points (closed form for a one-component
    Gaussian prior, else finite differences of ``log_pdf``)."""
    log_pi = _log_density(prior)
    N, d = x.shape
    logv = np.asarray(log_pi(x), dtype=float)
    if hasattr(prior, "covs") and getattr(prior, "n_components", 2) == 1:
        P = np.linalg.inv(prior.covs[0])
        return logv, -(x - prior.means[0]) @ P, np.broadcast_to(-P, (N, d, d)).copy()
    g = np.zeros((N, d))
    H = np.zeros((N, d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = eps
        g[:, i] = (np.asarray(log_pi(x + e)) - np.asarray(log_pi(x - e))) / (2 * eps)
        for j in range(d):
            f = np.zeros(d)
            f[j] = eps
            H[:, i, j] = (np.asarray(log_pi(x + e + f)) - np.asarray(log_pi(x + e - f))
                          - np.asarray(log_pi(x - e + f)) + np.asarray(log_pi(x - e - f))
                          ) / (4 * eps * eps)
    return logv, g, H


def _characteristic_pass(problem: Problem, score: Score, prior, x0: np.ndarray, *,
                         fd_step: float, substeps: int, need_wkb: bool):
    """Trajectories of ``ẋ = v = f - ½g²s`` from ``x0`` at ``t_min`` to ``T`` (Heun on the
    grid refined ``substeps`` times) and, backwards along them, ``∇L0``, ``∇²L0`` and the
    WKB quantities."""
    proc = problem.process
    vel = _pf_velocity(problem, score)
    d = x0.shape[1]
    times = problem.grid.times
    fine = np.concatenate([np.linspace(times[i], times[i + 1], substeps + 1)[:-1]
                           for i in range(times.size - 1)] + [times[-1:]])
    M = fine.size
    jet = _Jet(vel, d, fd_step)
    X = np.empty((M, *x0.shape))
    X[0] = x0
    if need_wkb:
        data = [jet(x0, float(fine[0]))]
    else:
        v0 = vel(x0, float(fine[0]))
        div0 = _div_fd(vel, x0, float(fine[0]), fd_step)
        data = [(v0, None, None, div0, None, None)]
    acc = np.zeros(x0.shape[0])
    for m in range(M - 1):
        t0, t1 = float(fine[m]), float(fine[m + 1])
        dt = t1 - t0
        v0 = data[m][0]
        pred = X[m] + dt * v0
        X[m + 1] = X[m] + 0.5 * dt * (v0 + vel(pred, t1))
        if need_wkb:
            data.append(jet(X[m + 1], t1))
        else:
            data.append((vel(X[m + 1], t1), None, None,
                         _div_fd(vel, X[m + 1], t1, fd_step), None, None))
        acc += 0.5 * dt * (data[m][3] + data[m + 1][3])
    logT, G_T, H_T = _prior_jet(prior, X[-1], fd_step)
    L0 = logT + acc
    if not need_wkb:
        return L0, None, None
    # backwards: dG/dt = -Jᵀ G - ∇(∇·v); dH/dt = -Jᵀ H - H J - Σ_k G_k ∇²v_k - ∇²(∇·v);
    # du/dt = -[D ΔL0 + ∇·v - ∇·f + G·(D G + v - f)]  (u = ∂_𝔥 log q^𝔥 at 𝔥 = 0, u(T) = 0)
    def rhs(m, G, H):
        v, J, H2, div, gdiv, hdiv = data[m]
        t = float(fine[m])
        Dt = float(proc.diffusion(t))
        f = proc.drift(X[m], t)
        divf = _div_fd(lambda y, tt: proc.drift(y, tt), X[m], t, fd_step)
        dG = -np.einsum("nij,ni->nj", J, G) - gdiv
        JtH = np.einsum("nki,nkj->nij", J, H)
        dH = -JtH - np.swapaxes(JtH, 1, 2) - np.einsum("nk,nkij->nij", G, H2) - hdiv
        lap = np.trace(H, axis1=1, axis2=2)
        du = -(Dt * lap + div - divf + np.einsum("ni,ni->n", G, Dt * G + v - f))
        return dG, dH, du, (Dt, lap, div, divf, v, f, J, gdiv)

    G, H, u = G_T.copy(), H_T.copy(), np.zeros(x0.shape[0])
    Gs = [None] * M
    Hs = [None] * M
    Gs[-1], Hs[-1] = G.copy(), H.copy()
    for m in range(M - 1, 0, -1):
        dt = float(fine[m] - fine[m - 1])
        dG1, dH1, du1, _ = rhs(m, G, H)
        Gp, Hp = G - dt * dG1, H - dt * dH1
        dG2, dH2, du2, _ = rhs(m - 1, Gp, Hp)
        G = G - 0.5 * dt * (dG1 + dG2)
        H = H - 0.5 * dt * (dH1 + dH2)
        u = u - 0.5 * dt * (du1 + du2)
        Gs[m - 1], Hs[m - 1] = G.copy(), H.copy()
    # the paper's form: δẋ = J δx - D(s - ∇L0), δx(t_min) = 0;
    # C = δx_T·∇log π(x_T) + ∫ [δx·∇(∇·v) - D(∇·s - ΔL0)] dt, with D s = f - v
    dx = np.zeros_like(x0)
    integ = np.zeros(x0.shape[0])

    def paper_terms(m, dx):
        v, J, H2, div, gdiv, hdiv = data[m]
        t = float(fine[m])
        Dt = float(proc.diffusion(t))
        f = proc.drift(X[m], t)
        divf = _div_fd(lambda y, tt: proc.drift(y, tt), X[m], t, fd_step)
        Ds = f - v
        ddx = np.einsum("nij,nj->ni", J, dx) - (Ds - Dt * Gs[m])
        lap = np.trace(Hs[m], axis1=1, axis2=2)
        integrand = np.einsum("ni,ni->n", dx, gdiv) - (divf - div) + Dt * lap
        return ddx, integrand

    for m in range(M - 1):
        dt = float(fine[m + 1] - fine[m])
        d1, i1 = paper_terms(m, dx)
        dxp = dx + dt * d1
        d2, i2 = paper_terms(m + 1, dxp)
        dx = dx + 0.5 * dt * (d1 + d2)
        integ += 0.5 * dt * (i1 + i2)
    C_paper = np.einsum("ni,ni->n", dx, G_T) + integ
    return L0, u, C_paper


def _div_fd(fn, x, t, eps):
    d = x.shape[1]
    div = np.zeros(x.shape[0])
    for i in range(d):
        e = np.zeros(d)
        e[i] = eps
        div += (np.asarray(fn(x + e, t))[:, i] - np.asarray(fn(x - e, t))[:, i]) / (2 * eps)
    return div


def log_likelihood_characteristics(problem: Problem, score: Score, prior, x, *,
                                   fd_step: float = 1e-4, substeps: int = 1) -> np.ndarray:
    r"""``log q_0(x, t_min) = log π(X_T) + ∫_{t_min}^T ∇·v(X_t, t) dt`` along the
    probability-flow characteristics ``Ẋ = v = f - ½ g² s``, ``X_{t_min} = x`` (Heun on the
    problem's grid refined ``substeps`` times; ``∇·v`` by central differences). Exact up
    to the ODE and difference errors at any points, far tails included (local; not
    collective)."""
    x = points("x", x, problem.domain.dim)
    score = user_score(score, problem.domain.dim)
    return _characteristic_pass(problem, score, prior, x, fd_step=fd_step,
                                substeps=positive_int("substeps", substeps),
                                need_wkb=False)[0]


def wkb_coefficient(problem: Problem, score: Score, prior, x, *, fd_step: float = 1e-3,
                    substeps: int = 1, form: str = "transport", full: bool = False):
    r"""The first WKB coefficient ``C(x)`` of Hirono et al.:
    ``log q^𝔥_{t_min}(x) = log q^0_{t_min}(x) + 𝔥 C(x) + O(𝔥²)`` (𝔥 = h²).

    Along the probability-flow characteristic ``ẋ = v = f - ½g²s`` from ``x`` at
    ``t_min`` to ``T``, with ``L0 = log q^0`` and its gradient ``G`` and Hessian carried
    backwards from the prior (``dG/dt = -(∇v)ᵀG - ∇(∇·v)``, ``dH/dt = -(∇v)ᵀH - H∇v -
    Σ_k G_k ∇²v_k - ∇²(∇·v)``), two equivalent forms:

    * ``form="paper"`` (PAPERS.md §A): ``C = δx_T·∇log π(x_T) + ∫ [(δx·∇)(∇·v) -
      (g²/2)(∇·s - ΔL0)] dt`` with ``δẋ = (∇v)δx - (g²/2)(s - ∇L0)``, ``δx(t_min) = 0``;
    * ``form="transport"`` (default): differentiating the log-density equation in 𝔥,
      ``C = ∫ (g²/2) [ΔL0 - ∇·s + ∇L0·(∇L0 - s)] dt`` along the same characteristic —
      the paper's form after integrating ``d(δx·∇L0)/dt`` by parts (no δx).

    They agree to the ODE error (checked in ``tests/likelihood/test_wkb.py``); both vanish for the
    exact score (``s = ∇L0``). Derivatives of ``v`` up to third order are 5-point central
    differences with step ``fd_step`` (a float64 score is needed).

    Args:
        x: points ``(N, d)``.
        full: also return ``log q^0_{t_min}(x)`` and the other form, as a dict.

    Returns:
        ``C`` ``(N,)`` (or with ``full`` a dict ``{"C", "C_paper", "C_transport",
        "log_q0"}``). Local, not collective.
    """
    x = points("x", x, problem.domain.dim)
    choice("form", form, ("transport", "paper"))
    score = user_score(score, problem.domain.dim)
    L0, C_t, C_p = _characteristic_pass(problem, score, prior, x, fd_step=positive(
        "fd_step", fd_step), substeps=positive_int("substeps", substeps), need_wkb=True)
    C = C_t if form == "transport" else C_p
    if full:
        return {"C": C, "C_transport": C_t, "C_paper": C_p, "log_q0": L0}
    return C
