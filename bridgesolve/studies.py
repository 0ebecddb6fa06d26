r"""Convergence studies: refinement ladders, errors, observed orders; MPI-aware.

A study solves the problem of one config on a ladder of discretizations (``refine`` ∈
``h`` mesh, ``p`` degree, ``dt`` time step, ``hdt`` mesh and step together; each level
halves h and/or dt, or raises the degree by one), measures quantities of interest at the
report time (T for forward equations, 0 for backward ones, T/2 for bridges) and fits
observed orders

.. math::
    q_\ell = \frac{\log(e_\ell / e_{\ell+1})}{\log(h_\ell / h_{\ell+1})}.

Errors are taken against the exact solution when one exists (Gaussian mixtures through
linear SDEs, with constant killing), interpolated into degree + 3 as in the tests, or
else against the finest level (coarse solutions interpolated onto the finest mesh, which
for nested refinements is exact); the output says which. Quantities (see
:data:`QUANTITIES`):

- ``<field>_L2``, ``<field>_L1``, ``<field>_Linf`` (Linf at the dofs of the measuring
  space) of the density p, φ, S = log φ or Ŝ = log φ̂;
- ``kl_generated_h<h>`` (Fokker–Planck, opt-in ``[convergence] generated = [1.0, 0.5]``):
  ``KL(ρ0 ‖ q_h)`` of the generated density of the sampler with the computed score
  (:func:`quantities_of`); its exact value is 0;
- ``score_pL2`` (forward equations): :math:`(\int p\,|\nabla\log p_h - \nabla\log p|^2)^{1/2}`
  with ``∇log p_h`` from :func:`bridgesolve.score.grad_log` (gradient of the interpolated
  nodal logs, floored), by mesh quadrature; against the finest level the weight is the
  finest density and the quadrature its mesh's.

Every finished level is checkpointed (JSON, plus the solution at the report time as
``.npz`` when the reference is the finest level) in ``<output>/checkpoints``, written
atomically by rank 0; ``resume=True`` reuses the checkpoints whose discretization matches,
so an interrupted study, or one extended by more levels, redoes no finished solve.

:func:`sweep` spreads a list of configs over groups of ranks (``comm.Split``); each study
runs distributed over its group, and rank 0 gathers the results.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities import gaussian_bridge_cost

REFINEMENTS = ("h", "p", "dt", "hdt")
REFERENCES = ("auto", "exact", "finest")
CHECKPOINT_SCHEMA = "bridgesolve.convergence-level/1"
STUDY_SCHEMA = "bridgesolve.convergence/1"


# -- orders ---------------------------------------------------------------------------------
def observed_orders(h: Sequence[float], errors: Sequence[float]) -> np.ndarray:
    """Pairwise orders ``log(e_i / e_{i+1}) / log(h_i / h_{i+1})`` along a ladder."""
    h, e = np.asarray(h, dtype=float), np.asarray(errors, dtype=float)
    return np.log(e[:-1] / e[1:]) / np.log(h[:-1] / h[1:])


def fitted_order(h: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of ``log e`` against ``log h`` over the whole ladder."""
    slope, _ = np.polyfit(np.log(np.asarray(h, dtype=float)),
                          np.log(np.asarray(errors, dtype=float)), 1)
    return float(slope)


def order_table(h: Sequence[float], errors: Sequence[float], label: str = "h") -> str:
    """A plain-text table of a ladder with pairwise observed orders."""
    orders = observed_orders(h, errors)
    rows = [f"{label:>10} {'error':>12} {'order':>7}"]
    for i, (hi, ei) in enumerate(zip(h, errors, strict=True)):
        o = f"{orders[i - 1]:7.3f}" if i else " " * 7
        rows.append(f"{hi:10.4g} {ei:12.4e} {o}")
    return "\n".join(rows)


# -- quantities -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Quantity:
    """One measured quantity.

    Attributes:
        name: column name (``density_L2``).
        label: for tables and figures.
        norm: ``"L2"``, ``"L1"``, ``"Linf"``, ``"score"`` or ``"scalar"`` (``|c_h − c|``
            of a number the solver returns, e.g. a bridge's cost).
        derivative: 1 for gradient quantities (one order less in h).
        order_known: False where no reference slope is drawn (functionals).
        power: the error is this power of a norm (2 for a KL divergence).
    """

    name: str
    label: str
    norm: str
    derivative: int = 0
    order_known: bool = True
    power: int = 1

    def expected_order(self, refine: str, degree: int, theta: float) -> float | None:
        """The asymptotic order in h (``h``), dt (``dt``) or h with dt ∝ h (``hdt``)."""
        if not self.order_known:
            return None
        space = degree + 1 - self.derivative
        time_order = 2.0 if abs(theta - 0.5) < 1e-12 else 1.0
        order = {"h": float(space), "dt": time_order, "hdt": min(space, time_order)}.get(refine)
        return None if order is None else self.power * order


def _norms(field: str, symbol: str) -> list[Quantity]:
    return [Quantity(f"{field}_{n}", f"‖{symbol}_h − {symbol}‖_{n}", n) for n in
            ("L2", "L1", "Linf")]


_SCORE = Quantity("score_pL2", "(∫p|∇log p_h − ∇log p|²)^½", "score", derivative=1)
#: equation -> the quantities measured (field name, symbol).
QUANTITIES: dict[str, list[Quantity]] = {
    "fokker-planck": [*_norms("density", "p"), _SCORE],
    "kolmogorov": _norms("phi", "φ"),
    "hjb": _norms("S", "S"),
    "hjb-forward": [*_norms("S_hat", "Ŝ"), _SCORE],
    # Bridge: the marginal at T/2, its score, and the KL cost by both formulas.
    "bridge": [*_norms("rho", "ρ"),
               Quantity("score_pL2", "(∫ρ|∇log ρ_h − ∇log ρ|²)^½", "score", derivative=1),
               Quantity("cost_kinetic", "|KL_h − KL| (kinetic)", "scalar", order_known=False),
               Quantity("cost_boundary", "|KL_h − KL| (boundary)", "scalar",
                        order_known=False)],
}


def quantities_of(cfg) -> list[Quantity]:
    """The quantities measured for a config: :data:`QUANTITIES` of its equation, plus, for
    each ``[convergence] generated = [h, ...]`` (Fokker–Planck only, 0 < h ≤ 1),
    ``KL(ρ0 ‖ q_h)`` of the sampler driven by the solution's own score ``∇log p_h`` (by
    :func:`bridgesolve.score.grad_log`) from the exact ``p_T``
    (:func:`bridgesolve.likelihood.generated_density`; exactly 0 for the exact score, and
    of order twice the density's, a KL being quadratic in ``q_h - ρ0``)."""
    out = list(QUANTITIES[cfg.equation])
    hs = cfg.raw.get("convergence", {}).get("generated", [])
    if hs and cfg.equation != "fokker-planck":
        raise BridgesolveInputError(
            f"[convergence] generated = {hs!r}: generated densities need equation = "
            f"'fokker-planck' (the equation is {cfg.equation!r})")
    for h in hs:
        out.append(Quantity(_kl_name(h), f"KL(ρ0 ‖ q_h), h = {float(h):g}", "scalar",
                            power=2))
    return out


def _kl_name(h: float) -> str:
    return f"kl_generated_h{float(h):g}"


# -- the ladder -----------------------------------------------------------------------------
def _scaled_cells(cells, factor: int):
    return [int(c) * factor for c in cells] if isinstance(cells, list) else int(cells) * factor


def level_raw(raw: dict, refine: str, level: int) -> dict:
    """The config tables of ``level`` (0 = the config itself) of a ``refine`` ladder."""
    raw = copy.deepcopy(raw)
    factor = 2**level
    if refine in ("h", "hdt"):
        dom = raw["domain"]
        if dom["type"] in ("interval", "box"):
            dom["cells"] = _scaled_cells(dom["cells"], factor)
        elif dom["type"] == "disk":
            dom["h"] = float(dom["h"]) / factor
        # gmsh meshes are refined uniformly after reading (see _build)
    if refine in ("dt", "hdt"):
        raw["time"]["steps"] = int(raw["time"]["steps"]) * factor
    if refine == "p":
        disc = raw.setdefault("discretization", {})
        disc["degree"] = int(disc.get("degree", 1)) + level
    return raw


def _level_config(cfg, refine: str, level: int):
    from bridgesolve.config import validate

    return validate(level_raw(cfg.raw, refine, level), source=cfg.source, text=cfg.text,
                    base_dir=cfg.base_dir)


def _build(cfg, refine: str, level: int, comm):
    """``(level config, problem, data, killing)`` of a level (collective: builds the mesh)."""
    lcfg = _level_config(cfg, refine, level)
    problem, data, killing = lcfg.build(comm)
    if lcfg.raw["domain"]["type"] == "gmsh" and refine in ("h", "hdt") and level:
        from bridgesolve._dolfinx import dolfinx
        from bridgesolve.domain import Domain
        from bridgesolve.problem import Problem

        mesh = problem.mesh
        for _ in range(level):
            mesh.topology.create_entities(1)
            mesh = dolfinx.mesh.refine(mesh)[0]
        dom = Domain(mesh, description={**problem.domain.description, "refinements": level})
        problem = Problem(dom, problem.process, problem.grid, degree=problem.degree,
                          boundary=problem.boundary, scheme=problem.theta,
                          petsc_options=problem.petsc_options)
    return lcfg, problem, data, killing


def _signature(lcfg, refine: str, level: int, quantities: list[Quantity], mode: str) -> str:
    """What determines a level's solution and measurements (not output or ladder length)."""
    tables = {k: v for k, v in lcfg.raw.items() if k not in ("output", "convergence")}
    blob = json.dumps({"config": tables, "equation": lcfg.equation, "refine": refine,
                       "level": level, "quantities": [q.name for q in quantities],
                       "reference": mode}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- measuring --------------------------------------------------------------------------------
class _Measure:
    """Norms of ``u_h − u`` on a Lagrange space ``W`` of one mesh.

    ``u_h`` is any function interpolated into ``W`` (exactly, when its space is contained in
    ``W``; from another mesh by non-matching interpolation); the target ``u`` is either a
    callable (the exact solution, interpolated) or another function.
    """

    def __init__(self, mesh, degree: int):
        from bridgesolve._dolfinx import fem, ufl

        self.mesh = mesh
        self.comm = mesh.comm
        self.W = fem.functionspace(mesh, ("Lagrange", degree))
        self.uh, self.ue = fem.Function(self.W), fem.Function(self.W)
        dx = ufl.dx(metadata={"quadrature_degree": 2 * degree})
        e = self.uh - self.ue
        self.forms = {"L2": fem.form(e * e * dx), "L1": fem.form(abs(e) * dx)}

    def load(self, u, target) -> None:
        """Interpolate ``u`` (a Function) and ``target`` (a Function or a callable of points
        ``(N, d)``) into ``W``."""
        _interpolate_into(self.uh, u)
        if callable(target) and not hasattr(target, "function_space"):
            d = self.mesh.geometry.dim
            self.ue.interpolate(lambda x: np.asarray(target(np.ascontiguousarray(x[:d].T)),
                                                     dtype=float))
        else:
            _interpolate_into(self.ue, target)

    def norm(self, kind: str) -> float:
        from bridgesolve._dolfinx import MPI, fem

        if kind == "Linf":
            local = np.max(np.abs(self.uh.x.array - self.ue.x.array), initial=0.0)
            return float(self.comm.allreduce(local, MPI.MAX))
        value = self.comm.allreduce(fem.assemble_scalar(self.forms[kind]), MPI.SUM)
        return float(math.sqrt(max(value, 0.0)) if kind == "L2" else value)


def _snapshot(u, representation: str):
    """A :class:`SpaceTimeField` holding the function ``u`` at t = 0 (two equal levels), so
    that :func:`bridgesolve.score.grad_log` applies to one time slice."""
    from bridgesolve.spacetime import SpaceTimeField
    from bridgesolve.timegrid import TimeGrid

    values = np.vstack([u.x.array, u.x.array])
    return SpaceTimeField(u.function_space, TimeGrid.from_times([0.0, 1.0]), values,
                          representation=representation)


def _score_error(u, representation: str, target, density=None, degree: int = 8) -> float:
    r"""``(∫ p |∇log u_h − s|²)^{1/2}`` with :func:`bridgesolve.score.grad_log` (nodal logs,
    floored) for ``∇log u_h``, by quadrature of degree ``degree`` (rank-independent).

    ``target`` is the exact score (callable of points) with ``density`` the exact p, or
    the finest level's function, whose mesh then carries the quadrature and whose own
    density (``u`` or ``exp u``) is the weight.
    """
    from bridgesolve._dolfinx import MPI
    from bridgesolve.score import grad_log

    coarse = grad_log(_snapshot(u, representation))
    if callable(target) and not hasattr(target, "function_space"):
        return coarse.weighted_error(target, 0.0, weight=density, degree=degree)
    fine_field = _snapshot(target, representation)
    pts, wts, vals = grad_log(fine_field).at_quadrature(degree, times=[0.0])
    p = fine_field.evaluate(pts, 0.0)
    if representation == "log":
        p = np.exp(p)
    s = coarse.evaluate(pts, 0.0)
    local = float((wts * p) @ np.sum((vals[0] - s) ** 2, axis=1)) if wts.size else 0.0
    return float(math.sqrt(u.function_space.mesh.comm.allreduce(local, MPI.SUM)))


@dataclass
class _Solution:
    """A level's solution at the report time: ``u`` (norms), ``s`` (its log-gradient is
    the score), and scalar outputs (a bridge's costs)."""

    problem: object
    u: object
    representation: str
    s: object
    s_representation: str
    scalars: dict


def _measure_all(quantities, sol: _Solution, target, *, mesh, degree: int, score=None,
                 density=None, scalars: dict | None = None) -> dict[str, float]:
    """Every quantity of ``sol`` against ``target`` (collective): a callable (exact
    solution, with its ``score``, ``density`` and ``scalars``) or a :class:`_Solution`
    (the finest level)."""
    finest = isinstance(target, _Solution)
    m = _Measure(mesh, degree)
    m.load(sol.u, target.u if finest else target)
    out = {}
    for q in quantities:
        if q.norm == "score":
            out[q.name] = _score_error(sol.s, sol.s_representation,
                                       target.s if finest else score, density)
        elif q.norm == "scalar":
            ref = (target.scalars if finest else scalars or {}).get(q.name)
            mine = sol.scalars.get(q.name)
            out[q.name] = None if ref is None or mine is None else abs(mine - ref)
        else:
            out[q.name] = m.norm(q.norm)
    return out


def _interpolate_into(target, u) -> None:
    """``target ← u``; non-matching interpolation when ``u`` lives on another mesh."""
    from bridgesolve._dolfinx import fem

    if u.function_space.mesh is target.function_space.mesh:
        target.interpolate(u)
        return
    mesh = target.function_space.mesh
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    data = fem.create_interpolation_data(target.function_space, u.function_space, cells,
                                         padding=1e-10)
    target.interpolate_nonmatching(u, cells, data)
    target.x.scatter_forward()


def _exact_targets(lcfg, process, data, killing):
    """``(values_fn, score_fn, density_fn, scalars)`` at the report time, or None without
    a closed form."""
    t = _report_time(lcfg)
    if lcfg.equation == "bridge":
        from bridgesolve._bridge_cli import exact_marginals

        marginals = exact_marginals(lcfg, process, killing)
        if marginals is None:
            return None
        law = marginals(t)
        r0, r1 = lcfg.data, lcfg.final
        kl = gaussian_bridge_cost(r0.means[0], r0.covs[0], r1.means[0], r1.covs[0],
                                  process.sigma, lcfg.T)
        return law.pdf, law.score, law.pdf, {"cost_kinetic": kl, "cost_boundary": kl}
    from bridgesolve.cli import _exact

    exact = _exact(lcfg, process, data, killing)
    if exact is None:
        return None
    if lcfg.equation in ("fokker-planck", "hjb-forward"):
        law = data.evolve(process, t)
        V = killing or 0.0
        kl = {_kl_name(h): 0.0 for h in lcfg.raw.get("convergence", {}).get("generated", [])}
        return exact(t), law.score, (lambda x: math.exp(V * t) * law.pdf(x)), kl
    return exact(t), None, None, {}


def _report_time(lcfg) -> float:
    """T for forward equations, 0 for backward ones, T/2 (the mid-point marginal) for
    bridges."""
    if lcfg.equation == "bridge":
        return 0.5 * lcfg.T
    return lcfg.T if lcfg.forward else 0.0


# -- results ----------------------------------------------------------------------------------
@dataclass
class ConvergenceStudy:
    """The measured ladder (plain data: picklable, JSON-able).

    Attributes:
        equation: the equation solved.
        source: the config's path.
        refine: ``h``, ``p``, ``dt`` or ``hdt``.
        reference: ``"exact"`` (closed-form solution) or ``"finest"`` (the finest level).
        report_time: where the errors are measured.
        quantities: the measured :class:`Quantity` list.
        expected: expected order of each quantity (None for ``p``).
        rows: one dict per level: ``level``, ``cells``, ``h``, ``dt``, ``degree``,
            ``steps``, ``ndofs``, ``solve_s``, ``measure_s``, ``errors`` (name -> value;
            None for the finest level of a ``finest`` study), ``resumed``.
        mpi_size: ranks each solve ran on.
    """

    equation: str
    source: str
    refine: str
    reference: str
    report_time: float
    quantities: list[Quantity]
    expected: dict[str, float | None]
    rows: list[dict] = field(default_factory=list)
    mpi_size: int = 1

    @property
    def parameter_name(self) -> str:
        return {"h": "h", "hdt": "h", "dt": "dt", "p": "degree"}[self.refine]

    def parameter(self) -> np.ndarray:
        """h, dt or the degree of every level."""
        return np.array([row[self.parameter_name] for row in self.rows], dtype=float)

    def errors(self, name: str) -> np.ndarray:
        """The errors of quantity ``name`` per level (NaN where not measured)."""
        return np.array([np.nan if row["errors"].get(name) is None else row["errors"][name]
                         for row in self.rows], dtype=float)

    def _measured(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        x, e = self.parameter(), self.errors(name)
        ok = np.isfinite(e) & (e > 0)
        return x[ok], e[ok]

    def orders(self, name: str) -> np.ndarray:
        """Pairwise observed orders (``p``: ``log(e_ℓ/e_ℓ+1)`` per degree, a rate)."""
        x, e = self._measured(name)
        if e.size < 2:
            return np.array([])
        if self.refine == "p":
            return np.log(e[:-1] / e[1:])
        return observed_orders(x, e)

    def fitted_order(self, name: str) -> float | None:
        x, e = self._measured(name)
        if e.size < 2 or self.refine == "p":
            return None
        return fitted_order(x, e)

    @property
    def reference_note(self) -> str:
        if self.reference == "exact":
            return "errors against the exact solution (closed form)"
        return ("no exact solution: errors against the finest level (coarse solutions "
                "interpolated onto the finest mesh; they underestimate the true error)")

    def table(self) -> str:
        """Levels with their discretization, DoFs, timings, errors and observed orders."""
        head = (f"{'lvl':>3} {'dofs':>9} {'h':>9} {'dt':>9} {'P':>2} {'solve s':>8}")
        order_label = "rate" if self.refine == "p" else "order"
        names = [q.name for q in self.quantities]
        for name in names:
            head += f" {name:>13} {order_label:>6}"
        lines = [f"convergence ({self.equation}, refine {self.refine}, t = "
                 f"{self.report_time:g}): {self.reference_note}", head]
        orders = {n: self._orders_by_level(n) for n in names}
        for i, row in enumerate(self.rows):
            line = (f"{row['level']:>3} {row['ndofs']:>9} {row['h']:>9.4g} {row['dt']:>9.3g} "
                    f"{row['degree']:>2} {row['solve_s']:>8.2f}")
            for n in names:
                e = row["errors"].get(n)
                o = orders[n][i]
                line += f" {e:>13.4e}" if e is not None else f" {'(reference)':>13}"
                line += f" {o:>6.2f}" if o is not None else " " * 7
            lines.append(line + ("  (resumed)" if row.get("resumed") else ""))
        fits = []
        for n in names:
            fit = self.fitted_order(n)
            exp = self.expected.get(n)
            if fit is not None:
                fits.append(f"{n} {fit:.2f}" + (f" (expected {exp:g})" if exp else ""))
        if fits:
            lines.append("fitted orders: " + ", ".join(fits))
        return "\n".join(lines)

    def _orders_by_level(self, name: str) -> list[float | None]:
        e = self.errors(name)
        out: list[float | None] = [None] * len(self.rows)
        idx = [i for i in range(len(self.rows)) if np.isfinite(e[i]) and e[i] > 0]
        for k, o in zip(idx[1:], self.orders(name), strict=True):
            out[k] = float(o)
        return out

    def to_dict(self) -> dict:
        names = [q.name for q in self.quantities]
        return {
            "schema": STUDY_SCHEMA,
            "equation": self.equation, "source": self.source, "refine": self.refine,
            "reference": self.reference, "reference_note": self.reference_note,
            "report_time": self.report_time, "mpi_size": self.mpi_size,
            "parameter": self.parameter_name,
            "quantities": [asdict(q) for q in self.quantities],
            "expected_orders": self.expected,
            "observed_orders": {n: self._orders_by_level(n) for n in names},
            "fitted_orders": {n: self.fitted_order(n) for n in names},
            "levels": self.rows,
        }

    def csv_text(self) -> str:
        names = [q.name for q in self.quantities]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["level", "ndofs", "h", "dt", "degree", "steps", "solve_s",
                         "measure_s", "resumed", *names, *(f"order_{n}" for n in names)])
        orders = {n: self._orders_by_level(n) for n in names}
        for i, row in enumerate(self.rows):
            writer.writerow([row["level"], row["ndofs"], repr(row["h"]), repr(row["dt"]),
                             row["degree"], row["steps"], f"{row['solve_s']:.6g}",
                             f"{row['measure_s']:.6g}", int(bool(row.get("resumed"))),
                             *("" if row["errors"].get(n) is None else repr(row["errors"][n])
                               for n in names),
                             *("" if orders[n][i] is None else f"{orders[n][i]:.6g}"
                               for n in names)])
        return buf.getvalue()

    def plot(self, path: str | os.PathLike) -> None:
        """Log-log errors against h or dt with dashed reference slopes (semilog for ``p``)."""
        from bridgesolve.plotting import _pyplot

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
        for q in self.quantities:
            x, e = self._measured(q.name)
            if not e.size:
                continue
            (line,) = ax.plot(x, e, "o-", label=q.label)
            order = self.expected.get(q.name)
            if order and x.size > 1:
                xs = np.array([x.min(), x.max()])
                ax.plot(xs, e[np.argmin(x)] * (xs / x.min()) ** order, "--", lw=1,
                        color=line.get_color(), label=f"slope {order:g}")
        if self.refine != "p":
            ax.set_xscale("log")
            ax.invert_xaxis()
        ax.set_yscale("log")
        ax.set_xlabel({"h": "h (largest cell diameter)", "dt": "Δt (largest step)",
                       "degree": "polynomial degree"}[self.parameter_name])
        ax.set_ylabel("error")
        ax.set_title(f"{self.equation}, refine {self.refine}: "
                     f"{'vs exact' if self.reference == 'exact' else 'vs finest level'}",
                     fontsize=10)
        ax.legend(fontsize=7)
        fig.savefig(path, dpi=120)
        plt.close(fig)

    def write(self, folder: str | os.PathLike) -> None:
        """``convergence.{csv,json,png,txt}`` into ``folder`` (call on one rank)."""
        folder = Path(folder)
        _atomic_write(folder / "convergence.csv", self.csv_text())
        _atomic_write(folder / "convergence.json",
                      json.dumps(_jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n")
        _atomic_write(folder / "convergence.txt", self.table() + "\n")
        tmp = folder / ".convergence.tmp.png"
        self.plot(tmp)
        os.replace(tmp, folder / "convergence.png")


def _jsonable(obj):
    from bridgesolve.io import _jsonable as plain

    return plain(obj)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- checkpoints --------------------------------------------------------------------------
class _Checkpoints:
    """``<folder>/checkpoints/level_<k>.json`` (+ ``.npz``): rank 0 writes, all ranks read."""

    def __init__(self, folder: Path | None, comm):
        self.dir = folder / "checkpoints" if folder is not None else None
        self.comm = comm

    def load(self, level: int, signature: str) -> dict | None:
        if self.dir is None:
            return None
        row = None
        if self.comm.rank == 0:
            path = self.dir / f"level_{level}.json"
            try:
                saved = json.loads(path.read_text("utf-8"))
                if (saved.get("schema") == CHECKPOINT_SCHEMA
                        and saved.get("signature") == signature):
                    row = saved["row"]
            except (OSError, ValueError, KeyError):
                row = None
        return self.comm.bcast(row, root=0)

    def save(self, level: int, signature: str, row: dict) -> None:
        if self.dir is None or self.comm.rank != 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_jsonable({"schema": CHECKPOINT_SCHEMA, "signature": signature,
                                     "row": row}), indent=1, allow_nan=False)
        _atomic_write(self.dir / f"level_{level}.json", text)

    def npz(self, level: int) -> Path | None:
        return None if self.dir is None else self.dir / f"level_{level}.npz"

    def save_solution(self, level: int, sol: _Solution) -> None:
        """The report-time solution (``u`` and, when different, ``s``) as global dof
        ``coords`` and values (rank-independent: any number of ranks can read it back)."""
        path = self.npz(level)
        if path is None:
            return
        V = sol.u.function_space
        n = V.dofmap.index_map.size_local
        d = V.mesh.geometry.dim
        coords = V.tabulate_dof_coordinates()[:n, :d]
        mine = (coords, sol.u.x.array[:n].copy(), sol.s.x.array[:n].copy())
        parts = self.comm.gather(mine, root=0)
        if self.comm.rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.stem}.tmp-{os.getpid()}.npz"
            np.savez(tmp, coords=np.concatenate([p[0] for p in parts]),
                     values=np.concatenate([p[1] for p in parts]),
                     score_values=np.concatenate([p[2] for p in parts]))
            os.replace(tmp, path)
        self.comm.barrier()

    def load_solution(self, level: int, problem, row: dict) -> _Solution:
        """The level's :class:`_Solution` on ``problem.V``, filled from its ``.npz`` by
        matching dof coordinates."""
        from scipy.spatial import cKDTree

        from bridgesolve._dolfinx import fem

        V = problem.V
        saved = np.load(self.npz(level))
        d = V.mesh.geometry.dim
        dist, idx = cKDTree(saved["coords"]).query(V.tabulate_dof_coordinates()[:, :d])
        scale = float(np.max(np.abs(saved["coords"]))) or 1.0
        bad = int(np.sum(dist > 1e-8 * scale))
        if self.comm.allreduce(bad) or saved["values"].size != _global_size(V):
            raise BridgesolveInputError(
                f"checkpoint {self.npz(level)} does not match the mesh of level {level}; "
                "rerun without resume")
        u, s = fem.Function(V), fem.Function(V)
        u.x.array[:] = saved["values"][idx]
        s.x.array[:] = saved["score_values"][idx]
        return _Solution(problem, u, row.get("representation", "linear"), s,
                         row.get("score_representation", "linear"), row.get("values", {}))


def _global_size(V) -> int:
    return V.dofmap.index_map.size_global * V.dofmap.index_map_bs


def _solve(lcfg, problem, data, killing, progress: bool):
    """Run the equation's solver; returns ``(_Solution at the report time, warnings)``."""
    import bridgesolve as bs
    from bridgesolve.cli import EQUATIONS

    t = _report_time(lcfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if lcfg.equation == "bridge":
            bridge = bs.solve_bridge(problem, data, lcfg.final, killing=killing,
                                     progress=progress, **lcfg.bridge_options)
            scalars = {}
            if killing is None:
                cost = bridge.cost()
                scalars = {"cost_kinetic": cost["kinetic"], "cost_boundary": cost["boundary"]}
            rho = _at_time(bridge.rho, t)
            sol = _Solution(problem, rho, "linear", _at_time(bridge.log_rho, t), "log",
                            scalars)
        else:
            solver_name, field_name, _ = EQUATIONS[lcfg.equation]
            u = getattr(bs, solver_name)(problem, data, killing=killing, progress=progress,
                                         name=field_name)
            u_t = _at_time(u, t)
            sol = _Solution(problem, u_t, u.representation, u_t, u.representation,
                            _generated_kl(lcfg, problem, data, u, progress))
    return sol, sorted({str(w.message) for w in caught})


def _generated_kl(lcfg, problem, data, p, progress: bool) -> dict[str, float]:
    """``KL(ρ0 ‖ q_h)`` for the ``[convergence] generated`` h values (see
    :func:`quantities_of`)."""
    hs = lcfg.raw.get("convergence", {}).get("generated", [])
    if not hs:
        return {}
    from bridgesolve.likelihood import generated_density, kl_divergence
    from bridgesolve.score import grad_log

    score = grad_log(p)
    prior = data.evolve(problem.process, lcfg.T)
    out = {}
    for h in hs:
        q = generated_density(problem, score, float(h), prior, progress=progress)
        out[_kl_name(h)] = kl_divergence(data, q, t=0.0)
    return out


def _at_time(field, t: float):
    """The field at ``t`` as a Function (linear in time between grid levels)."""
    from bridgesolve._dolfinx import fem

    times = field.times
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    w = float(np.clip((t - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0))
    u = fem.Function(field.space, name=field.name)
    u.x.array[:] = (1.0 - w) * field.values[i] + w * field.values[i + 1]
    return u


# -- the study ------------------------------------------------------------------------------
def study_options(cfg, refine: str | None = None, levels: int | None = None,
                  reference: str | None = None) -> tuple[str, int, str]:
    """``(refine, levels, reference)``: the arguments, else the config's ``[convergence]``
    section, else ``("h", 3, "auto")``; checked."""
    opts = cfg.raw.get("convergence", {})
    refine = refine or opts.get("refine", "h")
    levels = levels if levels is not None else opts.get("levels", 3)
    reference = reference or opts.get("reference", "auto")
    if refine not in REFINEMENTS:
        raise BridgesolveInputError(f"refine = {refine!r}: expected one of "
                                    f"{', '.join(REFINEMENTS)}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise BridgesolveInputError(f"levels = {levels!r}: expected an integer >= 2")
    if reference not in REFERENCES:
        raise BridgesolveInputError(f"reference = {reference!r}: expected one of "
                                    f"{', '.join(REFERENCES)}")
    return refine, levels, reference


def convergence_study(config, *, refine: str | None = None, levels: int | None = None,
                      reference: str | None = None, output: str | os.PathLike | None = None,
                      resume: bool = False, comm=None, progress: bool = True,
                      log: Callable[[str], None] | bool | None = None) -> ConvergenceStudy:
    """Solve ``config`` on a refinement ladder and measure errors and observed orders.

    Collective over ``comm``. Options not given come from the config's ``[convergence]``
    section (defaults ``refine = "h"``, ``levels = 3``, ``reference = "auto"``).

    Args:
        config: a :class:`~bridgesolve.config.Config`, or the path of a TOML config.
        refine: ``"h"`` (cells ×2 per level), ``"p"`` (degree +1), ``"dt"`` (steps ×2) or
            ``"hdt"`` (both ×2).
        levels: number of levels (≥ 2).
        reference: ``"exact"`` (fails without a closed form), ``"finest"``, or ``"auto"``
            (exact when there is one).
        output: results folder for checkpoints (and, via :meth:`ConvergenceStudy.write`,
            tables and figures); None keeps everything in memory.
        resume: reuse matching checkpoints in ``output`` instead of solving again.
        comm: the communicator every solve is distributed over (default COMM_WORLD).
        progress: progress bars (rank 0).
        log: called on rank 0 with one line per finished level (default ``print``;
            False: silent).

    Returns:
        The :class:`ConvergenceStudy` (the same on every rank).
    """
    from bridgesolve._dolfinx import MPI
    from bridgesolve.config import Config, load_config

    comm = comm or MPI.COMM_WORLD
    cfg = config if isinstance(config, Config) else load_config(config)
    refine, levels, reference = study_options(cfg, refine, levels, reference)
    quantities = quantities_of(cfg)
    say = (print if log is None or log is True else log) if comm.rank == 0 and log is not False \
        else (lambda *_: None)
    folder = Path(output) if output is not None else None
    store = _Checkpoints(folder, comm)

    # Which reference: decided on level 0 (closed forms do not depend on the level).
    lcfg0 = _level_config(cfg, refine, 0)
    process, data, killing = lcfg0.process(), lcfg0.data, lcfg0.killing()
    has_exact = _exact_targets(lcfg0, process, data, killing) is not None
    if reference == "exact" and not has_exact:
        raise BridgesolveInputError(
            f"reference = 'exact': {cfg.equation} with this process/data/killing has no "
            "closed-form solution; use reference = 'finest' (or 'auto')")
    mode = "exact" if (reference in ("auto", "exact") and has_exact) else "finest"
    disc = lcfg0.raw.get("discretization", {})
    theta = 0.5 if disc.get("scheme", "crank-nicolson") == "crank-nicolson" else 1.0
    degree0 = int(disc.get("degree", 1))
    study = ConvergenceStudy(
        equation=cfg.equation, source=cfg.source, refine=refine, reference=mode,
        report_time=_report_time(lcfg0), quantities=quantities,
        expected={q.name: q.expected_order(refine, degree0, theta) for q in quantities},
        mpi_size=comm.size)
    say(f"bridgesolve convergence: {cfg.equation} ({cfg.source}), refine {refine}, "
        f"{levels} levels, {comm.size} rank(s); {study.reference_note}")

    from tqdm.auto import tqdm

    bar = tqdm(total=levels, desc="levels", unit="level",
               disable=not progress or comm.rank != 0)
    if progress and say is print:
        say = tqdm.write  # level lines above the bar, not through it
    live: dict[int, object] = {}  # finest-reference mode: solutions of this run
    try:
        for level in range(levels):
            lcfg = _level_config(cfg, refine, level)
            sig = _signature(lcfg, refine, level, quantities, mode)
            row = store.load(level, sig) if resume else None
            if row is not None and mode == "finest" and not _exists(store.npz(level), comm):
                row = None
            if row is not None:
                row = {**row, "resumed": True}
                study.rows.append(row)
                say(f"  level {level}: resumed from checkpoint ({row['ndofs']} dofs)")
                bar.update()
                continue
            row = _run_level(cfg, refine, level, mode, quantities, comm, progress)
            solution = row.pop("_solution")
            if mode == "finest":
                live[level] = solution
                store.save_solution(level, solution)
            store.save(level, sig, row)
            study.rows.append(row)
            say(_level_line(study, row))
            bar.set_postfix(dofs=row["ndofs"])
            bar.update()
    finally:
        bar.close()
    if mode == "finest":
        _errors_against_finest(cfg, refine, study, live, store, comm)
    return study


def _exists(path: Path | None, comm) -> bool:
    ok = path is not None and path.is_file() if comm.rank == 0 else None
    return bool(comm.bcast(ok, root=0))


def _level_line(study: ConvergenceStudy, row: dict) -> str:
    first = study.quantities[0].name
    err = row["errors"].get(first)
    what = f", {first} = {err:.3e}" if err is not None else ""
    return (f"  level {row['level']}: {row['ndofs']} dofs, {row['steps']} steps, "
            f"P{row['degree']}, solve {row['solve_s']:.2f} s{what}")


def _run_level(cfg, refine: str, level: int, mode: str, quantities: list[Quantity], comm,
               progress: bool) -> dict:
    from bridgesolve._dolfinx import MPI

    lcfg, problem, data, killing = _build(cfg, refine, level, comm)
    t0 = time.perf_counter()
    sol, messages = _solve(lcfg, problem, data, killing, progress)
    solve_s = comm.allreduce(time.perf_counter() - t0, MPI.MAX)
    t1 = time.perf_counter()
    errors: dict[str, float | None] = {q.name: None for q in quantities}
    if mode == "exact":
        values_fn, score_fn, density_fn, scalars = _exact_targets(lcfg, problem.process, data,
                                                                  killing)
        errors = _measure_all(quantities, sol, values_fn, mesh=problem.mesh,
                              degree=problem.degree + 3, score=score_fn, density=density_fn,
                              scalars=scalars)
    measure_s = comm.allreduce(time.perf_counter() - t1, MPI.MAX)
    grid = problem.grid
    cells = lcfg.raw["domain"].get("cells")
    return {
        "level": level, "cells": cells, "h": problem.domain.hmax,
        "dt": float(grid.dt.max()), "degree": problem.degree, "steps": grid.steps,
        "ndofs": problem.ndofs, "solve_s": solve_s, "measure_s": measure_s,
        "errors": errors, "values": sol.scalars, "warnings": messages, "resumed": False,
        "representation": sol.representation, "score_representation": sol.s_representation,
        "_solution": sol,
    }


def _errors_against_finest(cfg, refine: str, study: ConvergenceStudy, live: dict, store,
                           comm) -> None:
    """Fill the errors of every level but the last against the last (collective)."""
    from bridgesolve._dolfinx import MPI

    def solution(level: int) -> _Solution:
        if level in live:
            return live[level]
        _, problem, _, _ = _build(cfg, refine, level, comm)
        return store.load_solution(level, problem, study.rows[level])

    last = len(study.rows) - 1
    fine = solution(last)
    degree = max(row["degree"] for row in study.rows)
    for level in range(last):
        t0 = time.perf_counter()
        study.rows[level]["errors"] = _measure_all(
            study.quantities, solution(level), fine, mesh=fine.u.function_space.mesh,
            degree=degree)
        study.rows[level]["measure_s"] = comm.allreduce(time.perf_counter() - t0, MPI.MAX)
    study.rows[last]["errors"] = {q.name: None for q in study.quantities}


# -- output folders -------------------------------------------------------------------------
def prepare_folder(path: str | os.PathLike, *, resume: bool, overwrite: bool, comm) -> Path:
    """Check (rank 0) and create the study folder; errors are raised on every rank.

    A folder that exists is used only with ``resume`` (its checkpoints are reused) or
    ``overwrite`` (its study files are removed first); ``overwrite`` never touches a folder
    that is not a convergence study (no ``checkpoints/`` or ``convergence.json``).
    """
    path = Path(path)
    error = None
    if comm.rank == 0:
        try:
            error = _prepare(path, resume=resume, overwrite=overwrite)
        except OSError as exc:
            error = f"output folder {str(path)!r} cannot be prepared: {exc}"
    error = comm.bcast(error, root=0)
    if error:
        raise BridgesolveInputError(error)
    return path


def _prepare(path: Path, *, resume: bool, overwrite: bool) -> str | None:
    where = repr(str(path))
    if path.resolve() == Path.cwd().resolve() or path.resolve() in Path.cwd().resolve().parents:
        return f"output folder {where} is the working directory or contains it"
    if path.exists() and not path.is_dir():
        return f"output folder {where} exists and is not a folder"
    if path.is_dir() and any(path.iterdir()):
        is_study = (path / "checkpoints").is_dir() or (path / "convergence.json").is_file()
        if not is_study:
            return (f"output folder {where} is not a convergence study folder: refusing to "
                    "use it; choose another")
        if overwrite and not resume:
            shutil.rmtree(path / "checkpoints", ignore_errors=True)
            for name in ("convergence.csv", "convergence.json", "convergence.txt",
                         "convergence.png", "config.toml"):
                (path / name).unlink(missing_ok=True)
        elif not resume:
            return (f"output folder {where} holds a study: pass --resume to continue it or "
                    "--overwrite to start again")
    path.mkdir(parents=True, exist_ok=True)
    return None


# -- sweeps ---------------------------------------------------------------------------------
def sweep(configs: Sequence, *, groups: int | None = None, comm=None,
          output: str | os.PathLike | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool = False, **study_options
          ) -> list[ConvergenceStudy] | None:
    """Convergence studies of many configs, spread over groups of ranks.

    ``comm`` is split into ``groups`` sub-communicators of consecutive ranks
    (``comm.Split``); config ``i`` runs on group ``i mod groups``, each of its solves
    distributed over that group. With ``output``, study ``i`` writes to
    ``output/<config name>`` (checkpoints, tables, figure).

    Args:
        configs: config paths or :class:`~bridgesolve.config.Config` objects.
        groups: number of groups, 1 ≤ groups ≤ comm.size (default: one per rank).
        study_options: passed to :func:`convergence_study` (``refine``, ``levels``, ...).

    Returns:
        On rank 0 of ``comm``, the studies in the order of ``configs``; None elsewhere.
    """
    from bridgesolve._dolfinx import MPI
    from bridgesolve.config import Config, load_config

    comm = comm or MPI.COMM_WORLD
    groups = comm.size if groups is None else groups
    if isinstance(groups, bool) or not isinstance(groups, int) or not 1 <= groups <= comm.size:
        raise BridgesolveInputError(f"groups = {groups!r}: expected an integer from 1 to the "
                                    f"number of ranks ({comm.size})")
    if not configs:
        raise BridgesolveInputError("configs = []: expected at least one config")
    cfgs = [c if isinstance(c, Config) else load_config(c) for c in configs]
    names = _study_names(cfgs)
    color = comm.rank * groups // comm.size
    sub = comm.Split(color, comm.rank)
    group_root = sub.rank == 0
    mine: dict[int, ConvergenceStudy] = {}
    error = None
    try:
        for i, cfg in enumerate(cfgs):
            if i % groups != color:
                continue
            folder = None
            if output is not None:
                folder = prepare_folder(Path(output) / names[i], resume=resume,
                                        overwrite=overwrite, comm=sub)
            study = convergence_study(cfg, comm=sub, output=folder, resume=resume,
                                      progress=progress, log=False, **study_options)
            if folder is not None and sub.rank == 0:
                study.write(folder)
                _atomic_write(folder / "config.toml", cfg.text)
            mine[i] = study
    except BridgesolveInputError as exc:
        error = str(exc)
    finally:
        sub.Free()
    errors = [e for e in comm.allgather(error) if e]  # also: every group has written
    if errors:
        raise BridgesolveInputError(errors[0])
    gathered = comm.gather(mine if group_root else {}, root=0)
    if comm.rank != 0:
        return None
    merged: dict[int, ConvergenceStudy] = {}
    for part in gathered:
        merged.update(part)
    return [merged[i] for i in range(len(cfgs))]


def _study_names(cfgs) -> list[str]:
    names, seen = [], {}
    for cfg in cfgs:
        stem = "default" if cfg.source.startswith("<") else Path(cfg.source).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names




# -- command line -------------------------------------------------------------------------
CLI_HELP = """\
Each level halves h (refine h: cells x2; disk meshes h/2; gmsh meshes refined uniformly),
halves dt (refine dt: steps x2), does both (hdt) or raises the degree by one (p).
Errors are measured at T (forward equations), t = 0 (backward ones) or T/2 (bridges)
against the exact solution when one exists, else against the finest level (the output
says which): the field in L2, L1 and Linf, the p-weighted score error (forward equations,
bridges), a bridge's KL cost by both formulas, and with [convergence] generated = [h, ...]
(Fokker-Planck) KL(rho0 || q_h) of generated densities.
Options not given come from the config's [convergence] section (refine, levels,
reference, generated), else refine = h, levels = 3, reference = auto.

results folder: convergence.txt (the table), convergence.csv, convergence.json (levels,
errors, observed and fitted orders, timings, DoFs), convergence.png (log-log with
reference slopes), config.toml, checkpoints/ (one file per finished level: --resume
continues an interrupted or extended study without redoing finished levels).
Several configs: one sub-folder per config; --groups G splits the ranks into G groups,
each running its share of the configs with its solves distributed over the group.

examples: bridgesolve convergence examples/convergence_fp_h.toml --levels 4
          mpiexec -n 2 bridgesolve convergence a.toml b.toml --groups 2 -o results/sweep"""


def add_parser(sub) -> None:
    """The ``convergence`` subcommand of ``bridgesolve`` (argparse sub-parsers ``sub``)."""
    import argparse

    ap = sub.add_parser(
        "convergence", help="convergence study: a ladder of refinements, errors, orders",
        description="Solve the problem of CONFIG on a ladder of refinements and report "
                    "errors, observed orders, timings and DoFs per level (table, CSV, JSON, "
                    "log-log figure). Runs under `mpiexec -n N` (distributed solves).",
        epilog=CLI_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", type=Path, metavar="CONFIG",
                    help="TOML config file(s); several make a sweep")
    ap.add_argument("--refine", choices=REFINEMENTS, help="what each level refines")
    ap.add_argument("--levels", type=int, metavar="N", help="number of levels (>= 2)")
    ap.add_argument("--reference", choices=REFERENCES,
                    help="exact solution, finest level, or auto (exact when there is one)")
    ap.add_argument("-o", "--output", type=Path, metavar="DIR",
                    help="results folder (default: results/convergence/<config name>)")
    ap.add_argument("--resume", action="store_true",
                    help="continue a study in DIR, reusing its finished levels")
    ap.add_argument("--overwrite", action="store_true",
                    help="discard an earlier study in DIR and start again")
    ap.add_argument("--groups", type=int, metavar="G",
                    help="split the ranks into G groups for several configs (default 1)")
    ap.add_argument("--quiet", action="store_true", help="no progress and no table on stdout")


def run_cli(args) -> int:
    """``bridgesolve convergence``: study (or sweep), write the results, print the table."""
    from bridgesolve._dolfinx import MPI
    from bridgesolve.config import load_config

    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 and not args.quiet else (lambda *a, **k: None)
    # Input errors before any output.
    cfgs = [load_config(path) for path in args.configs]
    options = {"refine": args.refine, "levels": args.levels, "reference": args.reference}
    for cfg in cfgs:
        study_options(cfg, **options)
    if args.groups is not None and not 1 <= args.groups <= comm.size:
        raise BridgesolveInputError(f"--groups {args.groups}: expected 1 to the number of "
                                    f"ranks ({comm.size})")
    if len(cfgs) == 1:
        if args.groups not in (None, 1):
            raise BridgesolveInputError(f"--groups {args.groups}: a single config runs on "
                                        "one group; give several configs to sweep")
        cfg = cfgs[0]
        folder = prepare_folder(args.output or Path("results/convergence") /
                                _study_names(cfgs)[0], resume=args.resume,
                                overwrite=args.overwrite, comm=comm)
        study = convergence_study(cfg, comm=comm, output=folder, resume=args.resume,
                                  progress=not args.quiet, log=None if not args.quiet
                                  else False, **options)
        if comm.rank == 0:
            study.write(folder)
            _atomic_write(folder / "config.toml", cfg.text)
        comm.barrier()  # the files exist for every rank once the command returns
        say(study.table())
        say(f"results: {folder}/ (convergence.txt, .csv, .json, .png; checkpoints/)")
        return 0
    base = args.output or Path("results/convergence")
    t0 = time.perf_counter()
    studies = sweep(cfgs, groups=args.groups or 1, comm=comm, output=base,
                    resume=args.resume, overwrite=args.overwrite,
                    progress=False, **options)
    if comm.rank == 0:
        for name, study in zip(_study_names(cfgs), studies, strict=True):
            say(f"== {name}")
            say(study.table())
        say(f"results: {base}/<config name>/ ({len(cfgs)} studies, "
            f"{time.perf_counter() - t0:.1f} s)")
    return 0


__all__ = ["QUANTITIES", "REFINEMENTS", "ConvergenceStudy", "Quantity", "convergence_study",
           "fitted_order", "gaussian_bridge_cost", "level_raw", "observed_orders",
           "order_table", "prepare_folder", "quantities_of", "study_options", "sweep"]
