r"""Scores, drifts and velocities as time-dependent vector fields on the mesh.

A :class:`VectorField` is a linear combination

.. math::
    v(x, t) = \sum_k c_k(t)\, F_k(x, t)

of *pieces* ``F_k``: the gradient of a scalar :class:`~bridgesolve.spacetime.SpaceTimeField`
(``∇ log u`` for a density, ``∇ log φ`` and ``∇ log φ̂`` for a bridge) or an analytic NumPy
field (the reference drift ``f(x, t)``). Scores ``∇ log p``, the optimal drifts
``f ± g² ∇ log φ`` and the probability-flow velocity are all of this form.

**How ∇ log u is computed.** For a field in log representation (values ``S = log u``, as
the HJB solvers and the bridge produce) the gradient ``∇S_h`` of the FE function is exact on
each cell: a vector polynomial of degree k - 1. For a field in linear representation (a
Fokker–Planck density ``p_h``) the quotient ``∇p_h / p_h`` divides two tiny, inaccurate
numbers in the tails (and changes sign where ``p_h`` does); the default ``mode="log"``
instead takes the logarithm of the *nodal values*, floored at machine epsilon times the
level's peak (``ε max_x p_h(x, t_n)``, ε = 2.2e-16: smaller values are solver round-off,
and unresolved tails of coarse meshes do go negative), interpolates it into the same space
and differentiates: ``∇ I_h log max(p_h, ε max p_h)``. It converges at the interpolation
rate (order k in the p-weighted L2 norm of the score) and stays finite everywhere.
Measured on a 1D OU mixture at t = 0.5 (``tests/test_score.py``): P1 errors 4.3e-2,
2.1e-2, 1.05e-2 (h = 0.175 ... 0.044, order 1.0), 1.5x smaller than the quotient's; P2
3.0e-3, 5.9e-4, 1.4e-4 (order 2.1-2.3), 4-5x smaller than the quotient's. An absolute
floor of 1e-300 instead made the coarsest P1 error 1.7 (a negative nodal value next to
the bulk became log 1e-300). ``mode="quotient"`` is kept for comparison.

Between grid times every piece is interpolated linearly in time.

Evaluation:
  * at quadrature points (:meth:`VectorField.at_quadrature`): a compiled
    ``fem.Expression`` of the gradient evaluated on this rank's owned cells, in the
    ordering of :func:`bridgesolve.quadrature.mesh_quadrature`; no point location;
  * at arbitrary points (:meth:`VectorField.evaluate`, collective): the gradient is
    interpolated into the discontinuous vector space of degree k - 1 (exact for ``∇`` of a
    degree-k field) and evaluated at the located cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bridgesolve._dolfinx import MPI, basix, dolfinx, fem, ufl
from bridgesolve._locate import AffineLocator, affine_geometry
from bridgesolve._validate import (  # noqa: F401  (checked_score: re-exported)
    BridgesolveInputError,
    CheckedCallable,
    check_values,
    checked_score,
    choice,
    collective_raise,
    points,
)
from bridgesolve.densities.gaussian_mixture import mixture_score  # noqa: F401  (re-exported)
from bridgesolve.process import Process
from bridgesolve.spacetime import PointLocator, SpaceTimeField
from bridgesolve.storage import level_blocks, map_levels

#: Relative floor of nodal density values before taking logarithms: ``LOG_FLOOR`` times the
#: peak of the level (values below are round-off); never below ``1e-300``.
LOG_FLOOR = float(np.finfo(float).eps)

Coefficient = float | Callable[[float], float]


def _coef_fn(c: Coefficient) -> Callable[[float], float]:
    if callable(c):
        return c
    try:
        value = float(c)
    except (TypeError, ValueError):
        raise BridgesolveInputError(
            f"coefficient {c!r}: expected a number or a callable of t") from None
    return lambda t: value


class _GradPiece:
    """``∇w`` (``mode="grad"``) or ``∇w / w`` (``mode="quotient"``) of the nodal values
    ``values`` (``(nt + 1, n_local)``) in ``space``, interpolated linearly in time."""

    def __init__(self, space, grid, values: np.ndarray, mode: str, label: str, *,
                 continuous: bool = False):
        self.space, self.grid, self.values, self.mode, self.label = space, grid, values, mode, label
        self.continuous = continuous
        self.work = fem.Function(space)
        self._expr: dict = {}
        self._dg = None

    def as_continuous(self) -> _GradPiece:
        return _GradPiece(self.space, self.grid, self.values, self.mode, self.label,
                          continuous=True)

    @property
    def mesh(self):
        return self.space.mesh

    def ufl(self):
        g = ufl.grad(self.work)
        return g if self.mode == "grad" else g / self.work

    def load_level(self, n: int) -> None:
        self.work.x.array[:] = self.values[n]

    def load_time(self, t: float) -> None:
        i, j, w = _bracket(self.grid.times, t)
        self.work.x.array[:] = (1.0 - w) * self.values[i] + w * self.values[j]

    def quadrature_expression(self, X: np.ndarray):
        key = X.tobytes()
        if key not in self._expr:
            self._expr[key] = fem.Expression(self.ufl(), X)
        return self._expr[key]

    def dg_function(self) -> fem.Function:
        """The gradient of the loaded values in a discontinuous vector space: degree k - 1
        holds ``∇`` of a degree-k field exactly; the quotient gets degree k. With
        ``continuous``: continuous P1 vectors whose nodal values are the volume-weighted
        means of the adjacent cells' one-sided gradients there (a lumped projection with
        vertex quadrature; the jumps it removes are as small as the discretization error).
        Being assembled, it is the same on any partition of the mesh, unlike interpolation,
        where a shared node takes the value of whichever cell a rank visits last."""
        if self.continuous:
            return self._projected()
        if self._dg is None:
            k = self.space.ufl_element().embedded_superdegree
            deg = max(k - 1, 0) if self.mode == "grad" else k
            gdim = self.mesh.geometry.dim
            W = fem.functionspace(self.mesh, ("Discontinuous Lagrange", deg, (gdim,)))
            self._dg = (fem.Function(W), fem.Expression(self.ufl(), W.element.interpolation_points))
        f, expr = self._dg
        f.interpolate(expr)
        return f

    def _projected(self) -> fem.Function:
        if self._dg is None:
            gdim = self.mesh.geometry.dim
            W = fem.functionspace(self.mesh, ("Lagrange", 1, (gdim,)))
            w = ufl.TestFunction(W)
            # Vertex quadrature: cell c contributes |c|/(d+1) × its own gradient at node i,
            # so the ratio below is the volume-weighted mean of the one-sided nodal values
            # (second order, where a patch average of ∫ g φ_i would smear to first order).
            dv = ufl.dx(metadata={"quadrature_rule": "vertex", "quadrature_degree": 1})
            rhs = fem.form(ufl.inner(self.ufl(), w) * dv)
            ones = fem.Function(W)
            ones.x.array[:] = 1.0
            lumped = fem.assemble_vector(fem.form(ufl.inner(ones, w) * dv))
            lumped.scatter_reverse(dolfinx.la.InsertMode.add)
            lumped.scatter_forward()
            self._dg = (fem.Function(W), rhs, lumped.array.copy())
        f, rhs, lumped = self._dg
        b = fem.assemble_vector(rhs)
        b.scatter_reverse(dolfinx.la.InsertMode.add)
        b.scatter_forward()
        f.x.array[:] = b.array / lumped
        return f


@dataclass
class _NumpyPiece:
    """An analytic field ``fn(x (N, d), t) -> (N, d)``."""

    fn: Callable[[np.ndarray, float], np.ndarray]
    label: str


def _piece_name(p: _NumpyPiece) -> str:
    return "the drift f(x, t) (drift_numpy)" if p.label == "f" else f"the field {p.label}(x, t)"


def _bracket(times: np.ndarray, t: float) -> tuple[int, int, float]:
    if not times[0] - 1e-12 <= t <= times[-1] + 1e-12:
        raise BridgesolveInputError(
            f"t = {t!r} is outside the time grid [{times[0]:g}, {times[-1]:g}]")
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    w = (t - times[i]) / (times[i + 1] - times[i])
    return i, i + 1, float(np.clip(w, 0.0, 1.0))


class VectorField:
    """A time-dependent vector field ``Σ_k c_k(t) F_k(x, t)`` on a mesh.

    Build one with :func:`grad_log`, :func:`drift_field` or arithmetic (``a + b``,
    ``a - b``, ``2.0 * a``, ``a.scaled(c)`` with ``c`` a callable of t). A VectorField is a
    callable ``v(x, t)``, so it can be passed wherever a score callable is expected
    (samplers, :func:`bridgesolve.likelihood.generated_density`); that call is collective
    over the mesh communicator when the field has mesh pieces.
    """

    def __init__(self, terms: Sequence[tuple[Coefficient, _GradPiece | _NumpyPiece]], *,
                 name: str = "v"):
        self.terms = [(_coef_fn(c), p) for c, p in terms]
        self.name = name
        grads = [p for _, p in self.terms if isinstance(p, _GradPiece)]
        self._grads = grads
        if grads:
            mesh, times = grads[0].mesh, grads[0].grid.times
            for p in grads[1:]:
                if p.mesh is not mesh:
                    raise BridgesolveInputError(
                        f"{p.label}: every mesh field of a VectorField must share one mesh")
                if p.grid.times.shape != times.shape or not np.allclose(
                        p.grid.times, times, rtol=1e-12, atol=1e-14):
                    raise BridgesolveInputError(
                        f"{p.label}: every mesh field of a VectorField must share one time grid")
        self._cache: dict = {}

    # -- structure ---------------------------------------------------------------------
    @property
    def mesh(self):
        return self._grads[0].mesh if self._grads else None

    @property
    def grid(self):
        return self._grads[0].grid if self._grads else None

    @property
    def times(self) -> np.ndarray:
        if self.grid is None:
            raise BridgesolveInputError(
                f"VectorField {self.name!r} has no mesh field and no time grid")
        return self.grid.times

    @property
    def comm(self):
        return self.mesh.comm if self.mesh is not None else MPI.COMM_SELF

    @property
    def dim(self) -> int:
        if self.mesh is None:
            raise BridgesolveInputError(f"VectorField {self.name!r} has no mesh field")
        return self.mesh.geometry.dim

    def __add__(self, other: VectorField) -> VectorField:
        if not isinstance(other, VectorField):
            return NotImplemented
        return VectorField(self.terms + other.terms, name=f"{self.name}+{other.name}")

    def __neg__(self) -> VectorField:
        return self.scaled(-1.0)

    def __sub__(self, other: VectorField) -> VectorField:
        if not isinstance(other, VectorField):
            return NotImplemented
        return self + (-other)

    def __mul__(self, c: Coefficient) -> VectorField:
        return self.scaled(c)

    __rmul__ = __mul__

    def continuous(self) -> VectorField:
        """The same field made continuous in space for point evaluation: each mesh piece's
        gradient is interpolated into continuous Lagrange elements (degree max(k - 1, 1))
        rather than evaluated cell by cell. Its derivatives are bounded, so finite
        differences of it (the divergence along characteristics) make sense; the
        discontinuous original's would see jumps across facets. Quadrature values are
        unchanged."""
        return VectorField([(c, p.as_continuous() if isinstance(p, _GradPiece) else p)
                            for c, p in self.terms], name=self.name)

    def scaled(self, c: Coefficient) -> VectorField:
        """``c(t) v(x, t)`` for a number or a callable ``c``."""
        cf = _coef_fn(c)
        return VectorField([(lambda t, a=a: cf(t) * a(t), p) for a, p in self.terms],
                           name=self.name)

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, pts, t: float) -> np.ndarray:
        """Values ``(N, d)`` at points ``(N, d)`` at time ``t``.

        Collective over the mesh communicator when the field has mesh pieces: every rank
        passes its own points and gets its own values; points outside the mesh give NaN.
        """
        t = float(t)
        dim = self.dim if self.mesh is not None else np.asarray(pts).shape[-1]
        x = points("points", pts, dim)
        out = np.zeros_like(x)
        problem = None
        for c, p in self.terms:
            if isinstance(p, _NumpyPiece):
                vals = p.fn(x, t)
                problem = problem or check_values(_piece_name(p), vals, x.shape[0], dim=dim,
                                                  x=x)
                if problem is None:
                    out += c(t) * np.asarray(vals, dtype=float).reshape(x.shape)
        if not self._grads:
            collective_raise(None, problem)
            return out
        collective_raise(self.comm, problem)
        loc = self._locator(x)
        contrib = np.zeros((loc.n_total, dim))
        have = loc.p3.shape[0] > 0
        for c, p in self.terms:
            if isinstance(p, _GradPiece):
                p.load_time(t)
                f = p.dg_function()
                if have:
                    contrib[loc.mine] += c(t) * f.eval(loc.p3, loc.cells).reshape(-1, dim)
        total = np.empty_like(contrib)
        self.comm.Allreduce(contrib, total, op=MPI.SUM)
        total[~loc.found] = np.nan
        return out + total[loc.offset: loc.offset + loc.n_local]

    __call__ = evaluate

    def _locator(self, x: np.ndarray):
        # The same collective reuse rule as SpaceTimeField.evaluate: figures ask for one
        # point set at many times. Samplers move their points every call: for affine
        # simplex meshes a vectorized barycentric test over the bounding-box candidates
        # (one box tree per mesh) is ~10x faster than DOLFINx's generic collision search.
        key = (x.shape, hash(x.tobytes()))
        cached = self._cache.get("locator")
        hit = cached is not None and cached[0] == key
        if self.comm.allreduce(int(hit), MPI.MIN):
            return cached[1]
        if self.mesh.geometry.cmaps[0].degree == 1:
            loc = AffineLocator(self.mesh, x, affine_geometry(self.mesh))
        else:
            loc = PointLocator(self.mesh, x)
        self._cache["locator"] = (key, loc)
        return loc

    def at_quadrature(self, degree: int, *, times: Sequence[float] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values at the quadrature points of this rank's owned cells.

        Args:
            degree: quadrature degree (points and weights as
                :func:`bridgesolve.quadrature.mesh_quadrature`, same ordering).
            times: grid times to evaluate at (default: every level).

        Returns:
            ``(points (Nq, d), weights (Nq,), values (nt + 1, Nq, d))`` (or
            ``(len(times), Nq, d)``). Not collective; no point location.
        """
        if self.mesh is None:
            raise BridgesolveInputError(f"VectorField {self.name!r} has no mesh field")
        from bridgesolve.quadrature import mesh_quadrature

        mesh, d = self.mesh, self.dim
        pts, wts = mesh_quadrature(mesh, degree)
        tdim = mesh.topology.dim
        X, _ = basix.make_quadrature(
            getattr(basix.CellType, dolfinx.cpp.mesh.to_string(mesh.topology.cell_type)), degree)
        cells = np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)
        grid_times = self.times
        levels = (range(grid_times.size) if times is None
                  else [self.grid.index(float(t)) for t in times])
        values = np.zeros((len(levels), pts.shape[0], d))
        for row, n in enumerate(levels):
            tn = float(grid_times[n])
            for c, p in self.terms:
                if isinstance(p, _GradPiece):
                    p.load_level(n)
                    vals = p.quadrature_expression(X).eval(mesh, cells) if cells.size else None
                    if vals is not None:
                        values[row] += c(tn) * np.asarray(vals).reshape(-1, d)
                elif pts.shape[0]:
                    vals = p.fn(pts, tn)
                    problem = check_values(_piece_name(p), vals, pts.shape[0], dim=d, x=pts)
                    if problem is not None:
                        raise BridgesolveInputError(problem)
                    values[row] += c(tn) * np.asarray(vals, dtype=float).reshape(-1, d)
        return pts, wts, values

    def weighted_error(self, exact: Callable[[np.ndarray], np.ndarray], t: float, *,
                       weight: Callable[[np.ndarray], np.ndarray] | None = None,
                       degree: int = 8) -> float:
        r"""``(∫ w(x) |v(x, t) - exact(x)|² dx)^{1/2}`` by mesh quadrature (rank-independent).

        With ``weight`` the density ``p_t`` this is the p-weighted L2 error of a score, the
        quantity that score matching minimizes.
        """
        pts, wts, vals = self.at_quadrature(degree, times=[t])
        local, problem = 0.0, None
        if pts.shape[0]:
            ex = exact(pts)
            problem = check_values("exact", ex, pts.shape[0], dim=self.dim, x=pts)
            w = wts
            if problem is None and weight is not None:
                wv = weight(pts)
                problem = check_values("weight", wv, pts.shape[0], x=pts, nonnegative=True)
                w = wts * np.asarray(wv, dtype=float).reshape(-1) if problem is None else wts
            if problem is None:
                ex = np.asarray(ex, dtype=float).reshape(vals[0].shape)
                local = float(w @ np.sum((vals[0] - ex) ** 2, axis=1))
        collective_raise(self.comm, problem)
        return float(np.sqrt(self.comm.allreduce(local, MPI.SUM)))

    def __repr__(self) -> str:
        labels = " + ".join(p.label for _, p in self.terms)
        return f"VectorField({self.name!r}: {labels})"


def grad_log(field: SpaceTimeField, *, mode: str = "log", floor: float = LOG_FLOOR,
             name: str | None = None) -> VectorField:
    r"""``∇ log u`` of a space-time field, as a :class:`VectorField`.

    Args:
        field: values ``log u`` (``representation == "log"``: the gradient of the FE
            function, exact on each cell) or ``u`` (``"linear"``).
        mode: for linear fields: ``"log"`` (default) differentiates the interpolant of the
            floored nodal logarithms, ``∇ I_h \log \max(u_h, floor)``, which stays accurate
            and finite in the tails; ``"quotient"`` is ``∇u_h / u_h``.
        floor: nodal values are floored at ``floor · max_x u_h(x, t_n)`` (and 1e-300)
            before the logarithm. Collective (the peak is a global maximum).
        name: the field's label (default ``"grad log <field name>"``).
    """
    if not isinstance(field, SpaceTimeField):
        raise BridgesolveInputError(f"field = {field!r}: expected a SpaceTimeField")
    choice("mode", mode, ("log", "quotient"))
    label = name or f"grad log {field.name}"
    if field.representation == "log":
        piece = _GradPiece(field.space, field.grid, field.values, "grad", label)
    elif mode == "log":
        if not floor > 0:
            raise BridgesolveInputError(f"floor = {floor!r}: expected a positive number")
        local = np.full(len(field), -np.inf)
        if field.values.shape[1]:
            for block in level_blocks(field.values):
                local[block] = field.values[block].max(axis=1)
        peak = np.empty_like(local)
        field.comm.Allreduce(local, peak, op=MPI.MAX)
        floors = np.broadcast_to(np.maximum(1e-300, floor * peak)[:, None], field.values.shape)
        # in the field's storage (on disk: level by level)
        logs = map_levels(lambda u, f: np.log(np.maximum(u, f)), field.values, floors,
                          name=f"log_{field.name}")
        piece = _GradPiece(field.space, field.grid, logs, "grad", label)
    else:
        piece = _GradPiece(field.space, field.grid, field.values, "quotient", label)
    return VectorField([(1.0, piece)], name=label)


def reference_drift(process: Process) -> VectorField:
    """The reference drift ``f(x, t)`` of ``process`` as an analytic VectorField."""
    return VectorField([(1.0, _NumpyPiece(process.drift, "f"))], name="f")


def drift_field(process: Process, terms: Sequence[tuple[Coefficient, VectorField]], *,
                reference_drift: bool = True) -> VectorField:
    r"""``f(x, t)·[reference_drift] + Σ_k c_k(t) F_k(x, t)``.

    Examples (``g2 = lambda t: 2 * process.diffusion(t)``): the reverse-SDE drift of a
    diffusion ``f - g² ∇log p`` is ``drift_field(process, [(lambda t: -g2(t), score)])``;
    the bridge's forward drift ``f + g² ∇log φ`` is
    ``drift_field(process, [(g2, grad_log(bridge.log_phi))])``.
    """
    if not isinstance(process, Process):
        raise BridgesolveInputError(f"process = {process!r}: expected a bridgesolve process")
    out: list = [(1.0, _NumpyPiece(process.drift, "f"))] if reference_drift else []
    for item in terms:
        try:
            c, field = item
        except (TypeError, ValueError):
            raise BridgesolveInputError(
                f"term {item!r}: expected a pair (coefficient, VectorField)") from None
        if not isinstance(field, VectorField):
            raise BridgesolveInputError(f"term {item!r}: expected a VectorField")
        out.extend(field.scaled(c).terms)
    return VectorField(out, name="drift")


__all__ = ["LOG_FLOOR", "VectorField", "checked_score", "drift_field", "grad_log",
           "mixture_score", "reference_drift"]
