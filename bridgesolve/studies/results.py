"""A study's results: :class:`ConvergenceStudy` (table, CSV, JSON, figure) and its folder."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bridgesolve import _folders
from bridgesolve._folders import atomic_write
from bridgesolve._json import jsonable
from bridgesolve.studies.orders import fitted_order, observed_orders
from bridgesolve.studies.quantities import Quantity

STUDY_SCHEMA = "bridgesolve.convergence/1"


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
        exact_refused: why a closed form that exists was not used (it is free-space and
            the domain holds the mass); None otherwise.
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
    exact_refused: str | None = None

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
        why = (f"{self.exact_refused}; errors" if self.exact_refused
               else "no exact solution: errors")
        return (f"{why} against the finest level (coarse solutions interpolated onto the "
                "finest mesh; they underestimate the true error)")

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
        atomic_write(folder / "convergence.csv", self.csv_text())
        atomic_write(folder / "convergence.json",
                     json.dumps(jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n")
        atomic_write(folder / "convergence.txt", self.table() + "\n")
        tmp = folder / ".convergence.tmp.png"
        self.plot(tmp)
        os.replace(tmp, folder / "convergence.png")


#: What ``overwrite`` removes from a study folder (its checkpoints and outputs).
STUDY_FILES = ("checkpoints", "convergence.csv", "convergence.json", "convergence.txt",
               "convergence.png", "config.toml")


def prepare_folder(path: str | os.PathLike, *, resume: bool, overwrite: bool, comm) -> Path:
    """Check (rank 0) and create the study folder; errors are raised on every rank.

    A folder that exists is used only with ``resume`` (its checkpoints are reused) or
    ``overwrite`` (its study files are removed first); ``overwrite`` never touches a folder
    that is not a convergence study (no ``checkpoints/`` or ``convergence.json``).
    """
    _folders.prepare_folder(path, resume=resume, overwrite=overwrite,
                            markers=("checkpoints", "convergence.json"), clear=STUDY_FILES,
                            kind="convergence study", comm=comm)
    return Path(path)


__all__ = ["STUDY_SCHEMA", "ConvergenceStudy", "prepare_folder"]
