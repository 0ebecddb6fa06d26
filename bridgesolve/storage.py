"""Where the time levels of a field live: in memory, or on disk when they do not fit.

A field keeps ``(nt + 1) × n_local`` doubles per rank (100 levels of 10⁷ dofs are 8 GB).
``Problem(storage=...)`` says where its solvers put them:

- ``"memory"``: NumPy arrays (what bridgesolve always did: same numbers, same speed);
- ``"disk"``: one raw float64 file per array and rank in ``storage_dir`` (default: the
  system's temporary folder), preallocated (``posix_fallocate``: a full disk fails when the
  array is made, not with a bus error in the middle of a solve), mapped as a
  :class:`numpy.memmap` and unlinked at once. The mapping keeps the data while the array
  or a view of it lives; the file goes with it, even when the process is killed. Writers
  (the steppers) fill it level by level and hand written pages back to the kernel
  (:func:`release`), and whole-field reductions run over blocks of levels
  (:func:`level_blocks`), so that resident memory stays a few levels whatever their number;
- ``"auto"`` (the default): disk when one field's levels (``levels × ndofs × 8`` bytes over
  all ranks) exceed ``memory_budget``, memory otherwise. The default budget is an eighth of
  the memory available on the nodes (a bridge keeps about six fields at once).

The values are the same bits either way: a memmap is an ``ndarray`` and every field method
reads it as one. The choice is ``problem.storage.kind``, in ``Problem.describe()`` (hence
every ``summary.json``) and in the ``repr`` of fields.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError, available_memory, format_bytes
from bridgesolve._vocab import STORAGES

#: Share of the nodes' available memory that ``"auto"`` grants one field by default.
BUDGET_SHARE = 1.0 / 8.0
#: Levels read or written between two :func:`release` calls of block-wise reductions.
BLOCK_BYTES = 64 * 2**20
#: Arrays kept by the solvers at once (bridge: φ, φ̂ iterates, Newton guesses, results): the
#: free space :meth:`FieldStorage.check` asks for beyond one field.
BRIDGE_FIELDS = 6
#: Filesystem types that live in memory: "disk" storage there saves nothing.
MEMORY_FILESYSTEMS = ("tmpfs", "ramfs")

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(name: str, value) -> int:
    """A positive byte count from a number or a string such as ``"4 GiB"`` or ``"500MB"``."""
    expected = ("a positive number of bytes or a string such as '4 GiB' or '500 MB' "
                "(units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    if isinstance(value, bool):
        raise BridgesolveInputError(f"{name} = {value!r}: expected {expected}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise BridgesolveInputError(f"{name} = {value!r}: expected {expected}")
        number, unit = float(match.group(1)), match.group(2).lower()
    else:
        raise BridgesolveInputError(f"{name} = {value!r}: expected {expected}")
    nbytes = number * _UNITS[unit]
    if not (math.isfinite(nbytes) and nbytes >= 1):
        raise BridgesolveInputError(f"{name} = {value!r}: expected {expected}")
    return int(nbytes)


def _node_comm_info(comm) -> tuple[int, int, int]:
    """``(ranks on this node, nodes, available bytes over all nodes)``; collective."""
    avail = available_memory() or 0
    if comm is None or comm.size == 1:
        return 1, 1, avail
    from bridgesolve._dolfinx import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local, leader = node.size, int(node.rank == 0)
    node.Free()
    return local, max(1, comm.allreduce(leader)), comm.allreduce(avail if leader else 0)


def _filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (``/proc/mounts``), or None."""
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            mounts = [line.split()[1:3] for line in fh if len(line.split()) >= 3]
    except OSError:
        return None
    real = str(path.resolve())
    best, kind = "", None
    for point, fstype in mounts:
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, kind = point, fstype
    return kind


class FieldStorage:
    """Where the fields of a :class:`~bridgesolve.Problem` keep their time levels.

    Args:
        storage: ``"auto"``, ``"memory"`` or ``"disk"`` (module doc).
        directory: the folder of the disk arrays (``"disk"``/``"auto"``; created when
            missing; default: :func:`tempfile.gettempdir`, i.e. ``$TMPDIR``). Put it on a
            local disk with room for several fields.
        memory_budget: bytes (or ``"4 GiB"``) of one field, over all ranks, above which
            ``"auto"`` stores on disk (default: an eighth of the available memory).

    Attributes:
        requested: the ``storage`` asked for; ``kind``: ``"memory"`` or ``"disk"`` once
            :meth:`resolve`-d (``requested`` until then); ``field_bytes``: one field's
            levels over all ranks.
    """

    def __init__(self, storage: str = "auto", *, directory=None, memory_budget=None):
        if not isinstance(storage, str) or storage not in STORAGES:
            raise BridgesolveInputError(
                f"storage = {storage!r}: expected one of {', '.join(map(repr, STORAGES))}")
        if directory is not None and storage == "memory":
            raise BridgesolveInputError(
                f"storage_dir = {str(directory)!r} with storage = 'memory': the folder is only "
                "used by storage 'disk' or 'auto'")
        if memory_budget is not None and storage != "auto":
            raise BridgesolveInputError(
                f"memory_budget = {memory_budget!r} with storage = {storage!r}: the budget "
                "only decides storage 'auto'")
        if directory is not None and not isinstance(directory, str | os.PathLike):
            raise BridgesolveInputError(
                f"storage_dir = {directory!r}: expected a folder path (str or Path)")
        if isinstance(directory, str) and not directory.strip():
            raise BridgesolveInputError("storage_dir = '': expected a non-empty folder path")
        self.requested = storage
        self.kind = storage
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.budget = (parse_bytes("memory_budget", memory_budget)
                       if memory_budget is not None else None)
        self.field_bytes = 0
        self._node_share = 1.0

    def resolve(self, levels: int, ndofs: int, comm) -> FieldStorage:
        """Decide memory or disk for fields of ``levels × ndofs`` (global) values (the
        folder is checked by :meth:`check`). Collective over ``comm``; returns self."""
        self.field_bytes = int(levels) * int(ndofs) * 8
        ranks_here, _nodes, avail = _node_comm_info(comm)
        size = 1 if comm is None else comm.size
        # the ranks of one node share its memory and (usually) its disk
        self._node_share = ranks_here / size
        if self.requested == "auto":
            if self.budget is None:
                self.budget = int(BUDGET_SHARE * avail) if avail else None
            self.kind = ("disk" if self.budget is not None and self.field_bytes > self.budget
                         else "memory")
            if comm is not None and comm.size > 1:  # rank 0 decides for all
                self.kind = comm.bcast(self.kind, root=0)
        return self

    @property
    def on_disk(self) -> bool:
        return self.kind == "disk"

    def folder(self) -> Path:
        return self.directory if self.directory is not None else Path(tempfile.gettempdir())

    def check(self, comm, *, fields: int = 1, what: str | None = None) -> None:
        """Refuse (before solving, on every rank together) a disk folder that cannot be
        created or written, or that lacks room for ``fields`` fields of this node's ranks.
        Warns when the folder is in memory (tmpfs). No-op for memory storage. Collective."""
        if not self.on_disk:
            return
        folder = self.folder()
        need = int(fields * self.field_bytes * self._node_share)
        error = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
            free = shutil.disk_usage(folder).free
            if free < need:
                chose = ("storage = 'auto' chose disk: the fields exceed the memory budget"
                         if self.requested == "auto" else "storage = 'disk'")
                error = (f"{what or f'{fields} field(s)'} needs at least "
                         f"{format_bytes(need)} on disk on this node ({fields} field(s) of "
                         f"{format_bytes(self.field_bytes)}; {chose}) but {folder} has "
                         f"{format_bytes(free)} free: use fewer steps or cells, or a "
                         "storage_dir on a larger disk")
        except OSError as exc:
            error = (f"storage_dir = {str(folder)!r}: cannot create or write there "
                     f"({exc.strerror or exc}): expected a writable folder")
        errors = [error] if comm is None or comm.size == 1 else comm.allgather(error)
        first = next((e for e in errors if e), None)
        if first is not None:
            raise BridgesolveInputError(first)
        if _filesystem_type(folder) in MEMORY_FILESYSTEMS:
            from bridgesolve._validate import warn

            if comm is None or comm.rank == 0:
                warn(f"storage = 'disk': {folder} is a {_filesystem_type(folder)} (in memory): "
                     "the fields take memory there; set storage_dir to a folder on a disk")

    def allocate(self, shape: tuple[int, ...], *, name: str = "u") -> np.ndarray:
        """An uninitialized float64 array of ``shape`` where this storage keeps levels."""
        if not self.on_disk:
            return np.empty(shape)
        return disk_array(shape, self.folder(), name=name)

    def describe(self) -> dict:
        out: dict = {"storage": self.kind}
        if self.requested != self.kind:
            out["storage_requested"] = self.requested
        if self.on_disk:
            out["storage_dir"] = str(self.folder().resolve())
        return out

    def __repr__(self) -> str:
        where = f", {self.folder()}" if self.on_disk else ""
        budget = (f", budget {format_bytes(self.budget)}"
                  if self.requested == "auto" and self.budget is not None else "")
        return f"FieldStorage({self.kind}{where}{budget})"


def disk_array(shape: tuple[int, ...], folder: Path | str, *, name: str = "u") -> np.memmap:
    """A float64 :class:`numpy.memmap` of ``shape`` backed by a preallocated file in
    ``folder`` that is already unlinked (it disappears with the array)."""
    folder = Path(folder)
    nbytes = int(np.prod(shape)) * 8
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "u"
    path = folder / f"bridgesolve-{safe}-{uuid.uuid4().hex[:12]}.f64"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            if nbytes:
                os.posix_fallocate(fd, 0, nbytes)
        except OSError as exc:
            raise BridgesolveInputError(
                f"storage = 'disk': cannot reserve {format_bytes(nbytes)} in {folder} "
                f"({exc.strerror or exc}): choose a storage_dir with more room") from None
        if nbytes == 0:  # a rank without dofs: nothing to map
            return np.empty(shape)  # type: ignore[return-value]
        array = np.memmap(path, dtype=float, mode="r+", shape=shape)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return array


def on_disk(values: np.ndarray) -> bool:
    """Whether ``values`` (or the array it views) is a disk array."""
    return isinstance(values, np.memmap) and getattr(values, "_mmap", None) is not None


def release(values: np.ndarray) -> None:
    """Hand the resident pages of a disk array back to the kernel (their data stay in the
    file); a no-op for memory arrays. Call after writing or reading a block of levels."""
    mm = getattr(values, "_mmap", None) if isinstance(values, np.memmap) else None
    if mm is not None and hasattr(mm, "madvise"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # pragma: no cover - the hint is best effort
            pass


def level_blocks(values: np.ndarray, max_bytes: int = BLOCK_BYTES) -> Iterator[slice]:
    """Slices of levels to reduce block by block: all levels at once for memory arrays
    (the same operations, hence the same numbers, as before), blocks of about
    ``max_bytes`` for disk arrays, whose pages are released after each block."""
    levels = values.shape[0]
    if not on_disk(values):
        yield slice(0, levels)
        return
    row = max(1, int(np.prod(values.shape[1:])) * values.itemsize)
    step = max(1, max_bytes // row)
    for start in range(0, levels, step):
        yield slice(start, min(levels, start + step))
        release(values)


def like(values: np.ndarray, *, name: str = "u") -> np.ndarray:
    """An uninitialized array of ``values``' shape in the same place (a disk array goes to
    the folder of ``values``' file)."""
    if on_disk(values):
        return disk_array(values.shape, Path(str(values.filename)).parent, name=name)
    return np.empty(values.shape)


def map_levels(fn: Callable[..., np.ndarray], *arrays: np.ndarray, name: str = "u"
               ) -> np.ndarray:
    """``fn(*arrays)`` (elementwise) in the storage of the first array: at once for memory
    arrays, level by level into a disk array otherwise (memory: one level)."""
    if not any(on_disk(a) for a in arrays):
        return fn(*arrays)
    first = next(a for a in arrays if on_disk(a))
    out = like(first, name=name)
    for block in level_blocks(out):
        for k in range(block.start, block.stop):
            out[k] = fn(*(a[k] for a in arrays))
    for a in arrays:
        release(a)
    return out


def map_rows(fn: Callable[[np.ndarray], np.ndarray], values: np.ndarray, *,
             name: str = "u") -> np.ndarray:
    """``fn`` applied to every level (row) of ``values``, in ``values``' storage."""
    if not on_disk(values):
        return np.array([fn(row) for row in values])
    out = like(values, name=name)
    for block in level_blocks(out):
        for k in range(block.start, block.stop):
            out[k] = fn(values[k])
    release(values)
    return out


def copy(values: np.ndarray, *, name: str = "u") -> np.ndarray:
    """A copy of ``values`` in the same storage."""
    if not on_disk(values):
        return values.copy()
    out = like(values, name=name)
    for block in level_blocks(out):
        out[block] = values[block]
    release(values)
    return out


__all__ = ["FieldStorage", "copy", "disk_array", "level_blocks", "like", "map_levels",
           "map_rows", "on_disk", "parse_bytes", "release"]
