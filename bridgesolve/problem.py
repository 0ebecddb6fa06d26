"""What is solved: a domain, a reference process, a time grid and the discretization."""

from __future__ import annotations

import numpy as np

from bridgesolve._dolfinx import dolfinx, fem
from bridgesolve._validate import BridgesolveInputError, check_memory, choice, positive_int
from bridgesolve.domain import Domain
from bridgesolve.process import Process
from bridgesolve.solvers import (  # noqa: F401  (re-exported)
    DEFAULT_PETSC_OPTIONS,
    PARALLEL_LU,
    SERIAL_LU,
    SERIAL_LU_MAX_DOFS,
    SOLVERS,
    default_solver,
    is_iterative,
    solver_options,
)
from bridgesolve.storage import FieldStorage
from bridgesolve.timegrid import TimeGrid

SCHEMES = {"crank-nicolson": 0.5, "backward-euler": 1.0}
BOUNDARIES = ("reflecting", "absorbing")

class Problem:
    """A domain, a reference SDE and a time grid, discretized by Lagrange elements.

    Args:
        domain: the mesh of Ω.
        process: the reference SDE (:mod:`bridgesolve.process`).
        grid: the time levels (:class:`TimeGrid`).
        degree: Lagrange degree (1 or 2; higher works too).
        boundary: ``"reflecting"`` (zero probability flux, the default) or ``"absorbing"``
            (homogeneous Dirichlet).
        scheme: ``"crank-nicolson"`` (θ = 1/2, second order) or ``"backward-euler"``
            (θ = 1, first order, L-stable), or θ ∈ [1/2, 1] as a number.
        solver: ``"auto"`` (direct in the direct solvers' range, iterative beyond it:
            :func:`bridgesolve.solvers.default_solver`), ``"direct"`` (PETSc's own LU on
            one rank up to 2·10⁵ dofs, else :mod:`bridgesolve.pde.interface_lu`) or
            ``"iterative"`` (CG/GMRES with AMG or Jacobi, :mod:`bridgesolve.pde.krylov`).
        petsc_options: linear-solver options on top of ``solver``'s (options naming
            ``pc_type`` or ``pc_factor_mat_solver_type`` start from LU, a Krylov
            ``ksp_type`` from the iterative set).
        storage: where the solvers keep the time levels of fields
            (:mod:`bridgesolve.storage`): ``"auto"`` (disk when one field exceeds
            ``memory_budget``, else memory), ``"memory"`` or ``"disk"`` (memory-mapped
            files, written level by level, removed with the field). The choice is
            ``problem.storage.kind`` and in :meth:`describe`.
        storage_dir: the folder of disk fields (default: the temporary folder); its
            writability and free space are checked here, before any solve.
        memory_budget: bytes (or a string such as ``"4 GiB"``) of one field over all ranks
            above which ``"auto"`` stores on disk (default: an eighth of the memory
            available on the nodes).
    """

    def __init__(
        self,
        domain: Domain,
        process: Process,
        grid: TimeGrid,
        *,
        degree: int = 1,
        boundary: str = "reflecting",
        scheme: str | float = "crank-nicolson",
        petsc_options: dict | None = None,
        solver: str = "auto",
        storage: str = "auto",
        storage_dir=None,
        memory_budget=None,
    ):
        if not isinstance(domain, Domain):
            raise BridgesolveInputError(f"domain = {domain!r}: expected a bridgesolve.Domain")
        if not isinstance(process, Process):
            raise BridgesolveInputError(f"process = {process!r}: expected a bridgesolve process")
        if not isinstance(grid, TimeGrid):
            raise BridgesolveInputError(f"grid = {grid!r}: expected a bridgesolve.TimeGrid")
        self.domain = domain
        self.process = process
        self.grid = grid
        self.degree = positive_int("degree", degree)
        self.boundary = choice("boundary", boundary, BOUNDARIES)
        if isinstance(scheme, str):
            self.scheme = choice("scheme", scheme, tuple(SCHEMES))
            self.theta = SCHEMES[scheme]
        else:
            theta = float(scheme)
            if not 0.5 <= theta <= 1.0:
                raise BridgesolveInputError(f"scheme = {scheme!r}: expected θ in [0.5, 1]")
            self.scheme, self.theta = f"theta={theta:g}", theta
        self.V = fem.functionspace(domain.mesh, ("Lagrange", self.degree))
        self.storage = FieldStorage(storage, directory=storage_dir,
                                    memory_budget=memory_budget).resolve(
            self.grid.steps + 1, self.ndofs, domain.comm)
        self.check_memory(fields=1)
        self.solver = choice("solver", solver, SOLVERS)
        self.petsc_options = solver_options(self.solver, petsc_options,
                                            ranks=domain.comm.size, ndofs=self.ndofs)
        self._forms: dict = {}
        #: ``mass_inside`` of described densities (repeated solves on the same data).
        self._masses: dict = {}
        self._refined: dict = {}  # quadrature meshes of mass_inside, by refinements

    def form(self, key, build):
        """The compiled form ``build()``, compiled once per problem and ``key``.

        Just-in-time compilation is cached on disk, but finding a form there still costs
        milliseconds (hashing the UFL); solvers called repeatedly on one problem (Sinkhorn
        iterations, benchmarks) reuse the compiled forms instead.
        """
        if key not in self._forms:
            self._forms[key] = fem.form(build())
        return self._forms[key]

    def memory_estimate(self, fields: int = 1) -> int:
        """A lower estimate of the bytes a solve needs over all ranks: ``fields`` solutions
        stored at every time level (``(steps + 1) × ndofs × 8``; two levels each on disk
        storage) and four sparse matrices of at least ``(degree + 1)^d`` entries per row
        (12 bytes each; LU fill comes on top)."""
        levels = 2 if self.storage.on_disk else self.grid.steps + 1
        row = (self.degree + 1) ** self.domain.dim
        return int(fields * levels * self.ndofs * 8 + 4 * self.ndofs * row * 12)

    def check_memory(self, fields: int = 1) -> None:
        """Refuse (:class:`BridgesolveInputError`, before allocating) a problem whose
        :meth:`memory_estimate` for ``fields`` stored solutions exceeds the available memory.
        Solvers that store several fields (a bridge: φ, φ̂ and their logarithms) call it with
        their count. Collective."""
        what = (f"storing {fields} field(s) of {self.ndofs} dofs at {self.grid.steps + 1} "
                f"time levels (P{self.degree})")
        check_memory(
            what, self.memory_estimate(fields), comm=self.comm,
            fix="use fewer steps, fewer cells or a lower degree "
                "(every field keeps (steps + 1) × dofs × 8 bytes), or storage='disk'",
        )
        self.storage.check(self.comm, fields=fields, what=what)

    def levels(self, n_local: int | None = None, *, name: str = "u",
               count: int | None = None) -> np.ndarray:
        """An uninitialized ``(count, n_local)`` array (default: every level of the grid,
        this rank's owned and ghost dofs) where :attr:`storage` keeps fields."""
        if n_local is None:
            im = self.V.dofmap.index_map
            n_local = (im.size_local + im.num_ghosts) * self.V.dofmap.index_map_bs
        return self.storage.allocate((self.grid.steps + 1 if count is None else count,
                                      n_local), name=name)

    def storage_options(self) -> dict:
        """The keywords that give another :class:`Problem` this one's storage (the budget
        as resolved here)."""
        st = self.storage
        return {"storage": st.requested, "storage_dir": st.directory,
                "memory_budget": st.budget if st.requested == "auto" else None}

    def mass_inside(self, density, *, sharp: bool = False) -> float:
        """``∫_Ω density dx`` by quadrature on the mesh (rank-independent).

        Args:
            density: an object with ``.pdf`` (e.g. a :class:`GaussianMixture`) or a NumPy
                callable of points ``(N, d) -> (N,)``.
            sharp: resolve the density finer, for estimates of mass outside Ω that must be
                good to 1e-7 (deciding whether a free-space closed form is the domain's
                solution): cells at most one narrowest standard deviation, up to
                :data:`SHARP_REFINEMENTS` refinements while the refined mesh stays under
                :data:`SHARP_MAX_CELLS` cells.

        Quadrature is only accurate once cells resolve the density: for mixtures (objects
        with ``covs``) and the other exact families (``length_scale``) the mesh is refined,
        for this estimate only, until cells are at most twice the narrowest component's
        standard deviation (three times at most in 1D/2D, once in 3D); with degree-8 rules
        (degree 4 in 3D) the estimate is then good to about 1e-9 for smooth data. For a
        bare callable the mesh itself is used. Box mixtures and images (the checkerboard) on
        a box domain take their closed form instead
        (:func:`~bridgesolve.densities.box_mass.mass_in_box`): exact also where cells cut
        their jumps, where quadrature is off by the cells' resolution of the jumps.
        """
        from bridgesolve._validate import CheckedCallable
        from bridgesolve.densities.box_mass import mass_in_box
        from bridgesolve.quadrature import integrate

        box = self.domain.description
        if box.get("type") in ("box", "interval"):
            exact = mass_in_box(density, box["lower"], box["upper"])
            if exact is not None:
                return exact

        fn = density.pdf if hasattr(density, "pdf") else density
        if not callable(fn):
            raise BridgesolveInputError(
                f"density = {density!r}: expected a GaussianMixture or a callable of points"
            )
        key = _mass_key(density)
        key = f"sharp:{key}" if sharp and key is not None else key
        if key is not None and key in self._masses:
            return self._masses[key]
        fn = CheckedCallable("density", fn, deferred=True)
        mesh = self.mesh
        covs = getattr(density, "covs", None)
        if covs is None and hasattr(density, "mixture"):
            covs = getattr(density.mixture, "covs", None)
        narrowest = getattr(density, "length_scale", None)  # the other exact families
        if covs is not None:
            narrowest = float(np.sqrt(np.linalg.eigvalsh(np.asarray(covs)).min()))
        dim = self.domain.dim
        if narrowest is not None:
            hmax = self.domain.hmax
            times, ratio = ((SHARP_REFINEMENTS, 1.0) if sharp
                            else (3 if dim < 3 else 1, 2.0))
            cells = mesh.topology.index_map(dim).size_global
            for level in range(1, times + 1):
                if hmax <= ratio * narrowest or (sharp and cells * 2**dim > SHARP_MAX_CELLS):
                    break
                mesh = self._refined.get(level) or self._refine(mesh, level)
                hmax, cells = 0.5 * hmax, cells * 2**dim
        degree = 8 if dim < 3 else 4
        value = float(integrate(mesh, fn, degree=degree))
        fn.raise_pending(self.comm)
        if key is not None:
            self._masses[key] = value
        return value

    def _refine(self, mesh, level: int):
        """``mesh`` refined once; kept as the ``level``-times refined quadrature mesh (the
        mass checks of several densities and times reuse it) unless it is large."""
        mesh.topology.create_entities(1)  # refinement splits edges
        fine = dolfinx.mesh.refine(mesh)[0]
        if fine.topology.index_map(fine.topology.dim).size_global <= SHARP_MAX_CELLS:
            self._refined[level] = fine
        return fine

    @property
    def iterative(self) -> bool:
        """Whether the linear solves are iterative (Krylov) rather than direct."""
        return is_iterative(self.petsc_options)

    @property
    def mesh(self):
        return self.domain.mesh

    @property
    def comm(self):
        return self.domain.comm

    @property
    def ndofs(self) -> int:
        im = self.V.dofmap.index_map
        return im.size_global * self.V.dofmap.index_map_bs

    def describe(self) -> dict:
        return {
            "domain": self.domain.describe(),
            "process": self.process.describe(),
            "time": {"T": self.grid.T, "steps": self.grid.steps,
                     "dt_min": float(self.grid.dt.min()), "dt_max": float(self.grid.dt.max())},
            "discretization": {"element": f"P{self.degree}", "scheme": self.scheme,
                               "theta": self.theta, "boundary": self.boundary,
                               "ndofs": self.ndofs, **self.storage.describe()},
        }

    @classmethod
    def from_description(cls, desc: dict, *, times=None, process: Process | None = None,
                         comm=None) -> Problem:
        """The problem a :meth:`describe` record stands for (the inverse of ``describe``):
        the mesh, the process (unless given: a ``Custom`` drift cannot be rebuilt), the time
        grid (``times`` when given, else uniform from the record's ``T`` and ``steps``) and
        the discretization. Collective over ``comm``.

        Raises:
            BridgesolveInputError: naming the part of the record that cannot be rebuilt.
        """
        if not isinstance(desc, dict):
            raise BridgesolveInputError(f"problem description {desc!r}: expected a dict")
        disc = desc.get("discretization") or {}
        element = str(disc.get("element", ""))
        if not (element.startswith("P") and element[1:].isdigit()):
            raise BridgesolveInputError(f"problem description: discretization = {disc!r} "
                                        "has no element degree ('P1', 'P2', ...)")
        if times is not None:
            grid = TimeGrid.from_times(times)
        else:
            time = desc.get("time") or {}
            if "T" not in time or "steps" not in time:
                raise BridgesolveInputError(f"problem description: time = {time!r} needs T "
                                            "and steps (or pass times=)")
            if not np.isclose(time.get("dt_min", 0.0), time.get("dt_max", 0.0)):
                raise BridgesolveInputError(f"problem description: time = {time!r} is not "
                                            "uniform; pass the levels as times=")
            grid = TimeGrid.uniform(time["T"], int(time["steps"]))
        scheme = disc.get("scheme", "crank-nicolson")
        if scheme not in SCHEMES:
            scheme = float(disc.get("theta", 0.5))
        domain = Domain.from_description(desc.get("domain"), comm=comm)
        return cls(domain, process if process is not None else
                   Process.from_description(desc.get("process")), grid,
                   degree=int(element[1:]), scheme=scheme,
                   boundary=disc.get("boundary", "reflecting"))

    def __repr__(self) -> str:
        disk = ", fields on disk" if self.storage.on_disk else ""
        return (f"Problem({self.domain!r}, {self.process!r}, {self.grid!r}, "
                f"P{self.degree}, {self.boundary}, {self.scheme}{disk})")


#: Refinements at most, and the cell count they stay below, of ``mass_inside(sharp=True)``
#: (the box with a ball at h = 0.8: 2e3 -> 1.4e5 cells, mass outside 1.4e-5 -> 9.9e-8, the
#: Gaussian tails' 1e-7 beyond the walls, in 0.4 s; 1e-7 on 1.1e6 cells).
SHARP_REFINEMENTS = 4
SHARP_MAX_CELLS = 1_000_000


def _mass_key(density) -> str | None:
    """A key naming ``density`` by its ``describe()`` record (None for bare callables,
    whose values this problem cannot vouch for between calls)."""
    import json

    describe = getattr(density, "describe", None)
    if describe is None:
        return None
    try:
        return json.dumps(describe(), sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return None
