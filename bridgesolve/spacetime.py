"""``SpaceTimeField``: a finite-element field at every level of a time grid."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bridgesolve._dolfinx import MPI, dolfinx, fem, ufl
from bridgesolve._validate import BridgesolveInputError, CheckedCallable, points
from bridgesolve.storage import level_blocks, on_disk
from bridgesolve.timegrid import TimeGrid


def as_numpy_callable(fn, dim: int, *, name: str | None = None, nonnegative: bool = False,
                      deferred: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Adapt a density-like object to DOLFINx interpolation (``x`` of shape ``(3, N)``).

    Accepts an object with ``.pdf`` (e.g. a :class:`GaussianMixture`) or a callable of points
    ``(N, d) -> (N,)``. Every call checks the values (:class:`~bridgesolve._validate.
    CheckedCallable`): one number per point (``(N,)`` or ``(N, 1)``) and, when ``name`` is
    given, finite (and non-negative when ``nonnegative``); otherwise
    :class:`BridgesolveInputError` names ``name``, the shape or value found and the expected
    one. (Without ``name`` only the shape is checked: the caller checks the values, with
    its own words.) With ``deferred`` the error waits for
    ``result.checked.raise_pending(comm)`` (collective), so that all ranks of a mesh stop
    together.
    """
    f = fn.pdf if hasattr(fn, "pdf") else fn
    if not callable(f):
        raise BridgesolveInputError(
            f"{name or 'function'} = {fn!r}: expected a GaussianMixture or a callable of points")
    checked = CheckedCallable(name or getattr(f, "__name__", "function"), f,
                              nonnegative=nonnegative, deferred=deferred,
                              finite=name is not None)

    def call(x: np.ndarray) -> np.ndarray:
        return checked(np.ascontiguousarray(x[:dim].T))

    call.checked = checked
    return call


class PointLocator:
    """Finds, for points given on any rank, the rank and cell that evaluate each one.

    Points from all ranks are gathered, located in the local (owned + ghost) cells, and
    each point is assigned to the lowest rank that found it. Points outside the mesh
    evaluate to NaN.
    """

    def __init__(self, mesh, pts: np.ndarray):
        comm = mesh.comm
        dim = mesh.geometry.dim
        self.comm = comm
        self.n_local = pts.shape[0]
        counts = comm.allgather(self.n_local)
        self.offset = int(sum(counts[: comm.rank]))
        gathered = np.concatenate(comm.allgather(np.ascontiguousarray(pts, dtype=float)))
        n = gathered.shape[0]
        p3 = np.zeros((n, 3))
        p3[:, :dim] = gathered.reshape(n, dim)
        tree = dolfinx.geometry.bb_tree(mesh, mesh.topology.dim)
        cand = dolfinx.geometry.compute_collisions_points(tree, p3)
        coll = dolfinx.geometry.compute_colliding_cells(mesh, cand, p3)
        offsets = np.asarray(coll.offsets)
        has = offsets[1:] > offsets[:-1]
        cells = np.full(n, -1, dtype=np.int32)
        cells[has] = np.asarray(coll.array)[offsets[:-1][has]]
        owner = np.where(has, comm.rank, comm.size).astype(np.int32)
        global_owner = np.empty_like(owner)
        comm.Allreduce(owner, global_owner, op=MPI.MIN)
        self.mine = global_owner == comm.rank
        self.found = global_owner < comm.size
        self.p3 = p3[self.mine]
        self.cells = cells[self.mine]
        self.n_total = n

    def __call__(self, u: fem.Function) -> np.ndarray:
        """Values of the scalar function ``u`` at this rank's points."""
        contrib = np.zeros(self.n_total)
        if self.p3.shape[0]:
            contrib[self.mine] = u.eval(self.p3, self.cells).reshape(-1)
        total = np.empty_like(contrib)
        self.comm.Allreduce(contrib, total, op=MPI.SUM)
        total[~self.found] = np.nan
        return total[self.offset : self.offset + self.n_local]


class SpaceTimeField:
    """A scalar FE field ``u(x, t_n)`` stored at every time level.

    Attributes:
        space: the DOLFINx function space.
        grid: the :class:`TimeGrid`.
        values: ``(nt + 1, n_local)`` dof values of this rank (owned then ghost dofs): a
            NumPy array, or a :class:`numpy.memmap` on disk storage
            (:mod:`bridgesolve.storage`), read the same way.
        name: a label for output.
        representation: ``"linear"`` or ``"log"`` (values hold ``log u``).
        info: solver diagnostics (masses, timings, factorizations, ``warnings``, ...).
    """

    def __init__(self, space, grid: TimeGrid, values: np.ndarray, *, name: str = "u",
                 representation: str = "linear", info: dict | None = None):
        self.space = space
        self.grid = grid
        self.values = values
        self.name = name
        self.representation = representation
        self.info = info if info is not None else {}
        self._work = fem.Function(space, name=name)
        self._norm_cache: dict = {}

    @property
    def storage(self) -> str:
        """Where the levels live: ``"memory"`` or ``"disk"`` (a memory-mapped file)."""
        return "disk" if on_disk(self.values) else "memory"

    @property
    def times(self) -> np.ndarray:
        return self.grid.times

    @property
    def warnings(self) -> list[str]:
        """The solver's warnings about this result (``info["warnings"]``: mass outside the
        domain, negative values, mass at reflecting walls, ...); empty when none."""
        return list(self.info.get("warnings", []))

    @property
    def mesh(self):
        return self.space.mesh

    @property
    def comm(self):
        return self.space.mesh.comm

    def __len__(self) -> int:
        return self.values.shape[0]

    def at(self, t: float) -> fem.Function:
        """A new DOLFINx Function holding the field at the grid time ``t``."""
        u = fem.Function(self.space, name=self.name)
        u.x.array[:] = self.values[self.grid.index(t)]
        return u

    def _bracket(self, t: float) -> tuple[int, int, float]:
        times = self.times
        if not times[0] - 1e-12 <= t <= times[-1] + 1e-12:
            raise BridgesolveInputError(
                f"t = {t!r} is outside the time grid [{times[0]:g}, {times[-1]:g}]"
            )
        i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
        w = (t - times[i]) / (times[i + 1] - times[i])
        return i, i + 1, float(np.clip(w, 0.0, 1.0))

    def _set_time(self, t: float) -> fem.Function:
        """Load the (time-linearly interpolated) field at ``t`` into the work function."""
        i, j, w = self._bracket(t)
        self._work.x.array[:] = (1.0 - w) * self.values[i] + w * self.values[j]
        return self._work

    def evaluate(self, pts, t: float) -> np.ndarray:
        """Values at points ``(N, d)`` at time ``t``; collective over the mesh communicator.

        Every rank may pass its own points (any layout, any count); each gets back its own
        ``(N,)`` values. Between grid times the field is interpolated linearly in time;
        points outside the mesh give NaN.
        """
        pts = points("points", pts, self.mesh.geometry.dim)
        return self._locator(pts)(self._set_time(t))

    def _locator(self, pts: np.ndarray) -> PointLocator:
        """The locator of ``pts``, reused while every rank asks for the same points again
        (figures and validations evaluate one point set at many times). The reuse decision
        is collective, since building a locator is."""
        key = (pts.shape, hash(pts.tobytes()))
        cached = self._norm_cache.get("locator")
        hit = cached is not None and cached[0] == key
        if self.comm.allreduce(int(hit), MPI.MIN):
            return cached[1]
        locator = PointLocator(self.mesh, pts)
        self._norm_cache["locator"] = (key, locator)
        return locator

    def integral(self, mass_vector: np.ndarray | None = None) -> np.ndarray:
        """``∫ u(x, t_n) dx`` for every time level (rank-independent).

        ``mass_vector`` (``M · 1`` on this rank's owned dofs) saves assembling it.
        """
        if mass_vector is not None:
            self._norm_cache["mass_vector"] = mass_vector
        if "mass_vector" not in self._norm_cache:
            v = ufl.TestFunction(self.space)
            vec = fem.assemble_vector(fem.form(v * ufl.dx))
            vec.scatter_reverse(dolfinx.la.InsertMode.add)
            self._norm_cache["mass_vector"] = vec.array[: self._n_owned].copy()
        local = np.empty(len(self))
        for block in level_blocks(self.values):  # all at once in memory, blocks on disk
            local[block] = self.values[block, : self._n_owned] @ self._norm_cache["mass_vector"]
        return self.comm.allreduce(local, MPI.SUM)

    @property
    def _n_owned(self) -> int:
        return self.space.dofmap.index_map.size_local * self.space.dofmap.index_map_bs

    def error(self, exact, t: float, *, norm: str = "L2", degree_raise: int = 3,
              weight=None) -> float:
        """``‖u(·, t) - exact(·)‖`` with the exact function interpolated into degree + 3.

        Args:
            exact: a density-like object (``.pdf``), a callable of points ``(N, d)``, or a
                DOLFINx Function (e.g. a reference solution on the same mesh).
            t: a grid time.
            norm: ``"L2"``, ``"L1"`` or ``"Linf"`` (the latter at the dofs of the raised
                space).
            weight: optional non-negative callable of points ``w(x)``: the norms become
                ``(∫ w e²)^½``, ``∫ w |e|`` and ``max w |e|``, e.g. an indicator of an
                interior region away from boundary layers (put the jumps of an indicator
                off the mesh nodes: at a dof, round-off would pick the side).
        """
        key = ("err", degree_raise)
        if key not in self._norm_cache:
            deg = self.space.ufl_element().embedded_superdegree + degree_raise
            W = fem.functionspace(self.mesh, ("Lagrange", deg))
            uh, ue, w = fem.Function(W), fem.Function(W), fem.Function(W)
            e = uh - ue
            forms = {"L2": fem.form(w * e * e * ufl.dx), "L1": fem.form(w * abs(e) * ufl.dx)}
            self._norm_cache[key] = (uh, ue, w, forms)
        uh, ue, w, forms = self._norm_cache[key]
        if weight is None:
            w.x.array[:] = 1.0
        else:
            wfn = as_numpy_callable(weight, self.mesh.geometry.dim, name="weight",
                                    nonnegative=True, deferred=True)
            w.interpolate(wfn)
            wfn.checked.raise_pending(self.comm)
        uh.interpolate(self.at(t))
        if isinstance(exact, fem.Function):
            ue.interpolate(exact)
        else:
            efn = as_numpy_callable(exact, self.mesh.geometry.dim, name="exact", deferred=True)
            ue.interpolate(efn)
            efn.checked.raise_pending(self.comm)
        if norm == "Linf":
            local = np.max(w.x.array * np.abs(uh.x.array - ue.x.array), initial=0.0)
            return float(self.comm.allreduce(local, MPI.MAX))
        if norm not in forms:
            raise BridgesolveInputError(f"norm = {norm!r}: expected 'L2', 'L1' or 'Linf'")
        value = self.comm.allreduce(fem.assemble_scalar(forms[norm]), MPI.SUM)
        return float(np.sqrt(value) if norm == "L2" else value)

    def __repr__(self) -> str:
        return (f"SpaceTimeField({self.name!r}, {self.representation}, "
                f"levels={len(self)}, ndofs={self.space.dofmap.index_map.size_global}, "
                f"storage={self.storage})")
