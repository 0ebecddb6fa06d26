""":class:`ReferenceBundle` (the file: read, write, evaluate) and :func:`save_reference`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError
from bridgesolve._validate import first_line as _first_line
from bridgesolve.densities import data_from_description
from bridgesolve.process import Process, process_from_description
from bridgesolve.reference.error import bridge_score_error_estimate, score_error_estimate
from bridgesolve.reference.schema import (
    _FILE_ERRORS,
    BRIDGE_FIELDS,
    DEFAULT_COMPRESS,
    DEFAULT_DTYPE,
    FIELDS,
    KINDS,
    SCHEMA,
    _dtype,
    _real,
)


class ReferenceBundle:
    """Quadrature points, weights, times and field values of a PDE solution (NumPy only).

    Attributes:
        points, weights, times, density, log_density, score: see the module schema.
        log_phi, log_phi_hat, grad_log_phi, grad_log_phi_hat: bridges only (else None).
        score_error_estimate: ``(nt + 1,)`` estimate of ``E_p|score - ∇log p|²`` per level
            (the module docstring says exactly what and how), or None.
        metadata: the metadata dict.
    """

    def __init__(self, *, points, weights, times, density, log_density, score,
                 metadata: dict, log_phi=None, log_phi_hat=None, grad_log_phi=None,
                 grad_log_phi_hat=None, score_error_estimate=None):
        self.points = np.asarray(points, dtype=float)
        self.weights = np.asarray(weights, dtype=float)
        self.times = np.asarray(times, dtype=float)
        self.density = np.asarray(density, dtype=float)
        self.log_density = np.asarray(log_density, dtype=float)
        self.score = np.asarray(score, dtype=float)
        self.log_phi = None if log_phi is None else np.asarray(log_phi, dtype=float)
        self.log_phi_hat = None if log_phi_hat is None else np.asarray(log_phi_hat, dtype=float)
        self.grad_log_phi = None if grad_log_phi is None else np.asarray(grad_log_phi, float)
        self.grad_log_phi_hat = (None if grad_log_phi_hat is None
                                 else np.asarray(grad_log_phi_hat, dtype=float))
        self.score_error_estimate = (None if score_error_estimate is None
                                     else np.asarray(score_error_estimate, dtype=float))
        if not isinstance(metadata, dict):
            raise BridgesolveInputError(f"reference bundle: metadata = {metadata!r}: expected "
                                        "a dict (JSON object)")
        self.metadata = dict(metadata)
        self._check()

    # -- shape checks ---------------------------------------------------------------------
    def _check(self) -> None:
        if self.points.ndim != 2:
            raise BridgesolveInputError(f"points has shape {self.points.shape}: expected (N, d)")
        N, d = self.points.shape
        L = self.times.size
        expected = {"weights": (N,), "times": (L,), "density": (L, N), "log_density": (L, N),
                    "score": (L, N, d)}
        if self.kind == "bridge":
            expected |= {"log_phi": (L, N), "log_phi_hat": (L, N), "grad_log_phi": (L, N, d),
                         "grad_log_phi_hat": (L, N, d)}
        for key, shape in expected.items():
            arr = getattr(self, key)
            if arr is None or arr.shape != shape:
                got = None if arr is None else arr.shape
                raise BridgesolveInputError(
                    f"reference bundle: {key} has shape {got}: expected {shape}")
        est = self.score_error_estimate
        if est is not None and (est.shape != (L,) or not np.all(est >= 0)):
            raise BridgesolveInputError(
                f"reference bundle: score_error_estimate has shape {est.shape} (or negative or "
                f"NaN values): expected {(L,)} non-negative numbers")
        if self.metadata.get("kind") not in KINDS:
            raise BridgesolveInputError(
                f"reference bundle: metadata kind = {self.metadata.get('kind')!r}: expected "
                f"one of {KINDS}")
        if L < 1 or (L > 1 and not np.all(np.diff(self.times) > 0)):
            raise BridgesolveInputError(f"reference bundle: times = {self.times!r}: expected "
                                        "at least one level, increasing")
        for key in expected:  # NaN or inf anywhere would silently poison every sum over it
            arr = getattr(self, key)
            if not np.all(np.isfinite(arr)):
                bad = np.argwhere(~np.isfinite(arr))[0]
                raise BridgesolveInputError(
                    f"reference bundle: {key} is not finite (first at index {tuple(bad)})")

    # -- properties -----------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "diffusion")

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def nt(self) -> int:
        """Number of time steps (``times.size - 1``)."""
        return self.times.size - 1

    @property
    def T(self) -> float:
        return float(self.times[-1])

    def process(self) -> Process:
        """The reference process, rebuilt from the metadata."""
        desc = self.metadata.get("process")
        if desc is None:
            raise BridgesolveInputError("reference bundle: metadata has no process")
        return process_from_description(desc)

    def data(self):
        """The data ρ0 as an exact density (None when the metadata name none that can be
        rebuilt: a callable, a sample file that has moved)."""
        return data_from_description(self.metadata.get("data"))

    def level(self, t: float) -> int:
        """Index of the grid time ``t``."""
        i = int(np.argmin(np.abs(self.times - t)))
        if abs(self.times[i] - t) > 1e-9 * max(1.0, self.T):
            raise BridgesolveInputError(
                f"t = {t!r} is not a time of the bundle: the nearest is {self.times[i]!r}")
        return i

    def integrate(self, values: np.ndarray) -> np.ndarray:
        """``Σ_i w_i values[..., i]``: quadrature over Ω of per-point values."""
        return np.asarray(values) @ self.weights

    def score_error(self, score, *, times=None) -> np.ndarray:
        r"""p-weighted L2 error ``(Σ_i w_i p_i |s(x_i, t) - ∇log p_i|²)^{1/2}`` per level
        for a score callable ``s(x (N, d), t) -> (N, d)`` (e.g. a learned model)."""
        levels = range(self.times.size) if times is None else [self.level(t) for t in times]
        out = []
        for n in levels:
            diff = np.asarray(score(self.points, float(self.times[n])), dtype=float) - self.score[n]
            out.append(np.sqrt(self.integrate(self.density[n] * np.sum(diff * diff, axis=1))))
        return np.asarray(out)

    def score_interpolant(self):
        """A score callable ``s(x (M, d), t) -> (M, d)`` interpolating the bundle:
        piecewise linear in space (``np.interp`` in 1D, a Delaunay triangulation of the
        points otherwise; nearest point outside their hull) and linear in time."""
        times = self.times
        if self.dim == 1:
            order = np.argsort(self.points[:, 0])
            xs = self.points[order, 0]
            vals = self.score[:, order, 0]

            def space(x, n):
                return np.interp(x[:, 0], xs, vals[n])[:, None]
        else:
            from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator
            from scipy.spatial import Delaunay

            tri = Delaunay(self.points)
            cache: dict = {}

            def space(x, n):
                if n not in cache:
                    if len(cache) > 8:
                        cache.clear()
                    cache[n] = (LinearNDInterpolator(tri, self.score[n]),
                                NearestNDInterpolator(self.points, self.score[n]))
                lin, near = cache[n]
                out = lin(x)
                bad = ~np.isfinite(out).all(axis=1)
                if bad.any():
                    out[bad] = near(x[bad])
                return out

        def score(x, t):
            x = np.asarray(x, dtype=float).reshape(-1, self.dim)
            t = float(np.clip(t, times[0], times[-1]))
            i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, times.size - 2))
            w = (t - times[i]) / (times[i + 1] - times[i])
            if w <= 1e-12 or w >= 1.0 - 1e-12:
                return space(x, i if w < 0.5 else i + 1)
            return (1.0 - w) * space(x, i) + w * space(x, i + 1)

        return score

    # -- file I/O -------------------------------------------------------------------------
    def arrays(self, *, dtype: str = "float64") -> dict[str, np.ndarray]:
        """The ``.npz`` content (see the module schema), level arrays in ``dtype``."""
        dtype = _dtype(dtype)
        levels = {k: getattr(self, k).astype(dtype, copy=False)
                  for k in (*FIELDS, *(BRIDGE_FIELDS if self.kind == "bridge" else ()))}
        out = {"schema": np.array(SCHEMA), "points": self.points, "weights": self.weights,
               "times": self.times, **levels, "metadata": np.array(json.dumps(self.metadata))}
        if self.score_error_estimate is not None:
            out["score_error_estimate"] = self.score_error_estimate
        return out

    def save(self, path: str | os.PathLike, *, dtype: str = DEFAULT_DTYPE,
             compress: bool = DEFAULT_COMPRESS) -> Path:
        """Write the bundle to ``path`` (``.npz``), atomically.

        Args:
            path: the file (``.npz``).
            dtype: of the level arrays: ``"float32"`` (the default: half the size; values
                change by at most 6e-8 relative, far below any discretization error) or
                ``"float64"`` (lossless: a bit-identical round trip).
            compress: deflate the zip members (the default; about half the size again, a
                few seconds per 100 MiB; still a standard ``.npz`` that ``np.load`` reads).
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise BridgesolveInputError(f"bundle path {str(path)!r}: expected a .npz file")
        if not isinstance(compress, bool):
            raise BridgesolveInputError(f"compress = {compress!r}: expected True or False")
        dtype = _dtype(dtype)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = self.arrays(dtype=dtype)
        arrays["metadata"] = np.array(json.dumps(
            {**self.metadata, "storage": {"dtype": dtype, "compressed": compress}}))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        try:
            (np.savez_compressed if compress else np.savez)(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceBundle:
        """Read a bundle (NumPy only; no pickles). Level arrays come back as float64 however
        they were stored.

        Raises:
            BridgesolveInputError: one line naming the file and what is wrong when it is
                missing, not a ``.npz`` (garbage, truncated), of another schema, or has
                missing keys, inconsistent shapes or non-finite values.
        """
        path = Path(path)
        if path.is_dir():
            raise BridgesolveInputError(f"bundle {str(path)!r} is a folder: expected a .npz "
                                        "file")
        if not path.is_file():
            raise BridgesolveInputError(f"bundle {str(path)!r} does not exist")
        try:
            with open(path, "rb") as fh:
                magic = fh.read(6)
            if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
                raise BridgesolveInputError(
                    f"bundle {str(path)!r}: not a readable .npz file (it does not start like "
                    f"a zip archive: {'empty' if not magic else f'first bytes {magic!r}'})")
            npz = np.load(path, allow_pickle=False)
            if not hasattr(npz, "files"):  # one .npy array, not an archive
                raise BridgesolveInputError(f"bundle {str(path)!r}: a single .npy array, not "
                                            "a .npz bundle")
            with npz:
                return cls._from_npz(npz, path)
        except BridgesolveInputError as exc:
            msg = str(exc)
            if not msg.startswith(f"bundle {str(path)!r}"):
                msg = f"bundle {str(path)!r}: {msg.removeprefix('reference bundle: ')}"
            raise BridgesolveInputError(msg) from None
        except _FILE_ERRORS + (AttributeError,) as exc:
            raise BridgesolveInputError(
                f"bundle {str(path)!r}: not a readable .npz file (truncated or damaged?): "
                f"{_first_line(exc)}") from None

    @classmethod
    def _from_npz(cls, npz, path: Path) -> ReferenceBundle:
        schema = str(npz["schema"]) if "schema" in npz.files else None
        if schema != SCHEMA:
            raise BridgesolveInputError(
                f"bundle {str(path)!r}: schema {schema!r}: expected {SCHEMA!r}")
        missing = [k for k in ("points", "weights", "times", *FIELDS, "metadata")
                   if k not in npz.files]
        if missing:
            raise BridgesolveInputError(f"bundle {str(path)!r}: missing keys {missing}")
        try:
            metadata = json.loads(str(npz["metadata"]))
        except ValueError as exc:
            raise BridgesolveInputError(f"bundle {str(path)!r}: metadata is not JSON "
                                        f"({_first_line(exc)})") from None
        if not isinstance(metadata, dict):
            raise BridgesolveInputError(f"bundle {str(path)!r}: metadata is not a JSON object")
        kw = {k: _real(npz[k], k, path) for k in ("points", "weights", "times", *FIELDS)}
        if metadata.get("kind") == "bridge":
            kw |= {k: _real(npz[k], k, path) for k in BRIDGE_FIELDS if k in npz.files}
        if "score_error_estimate" in npz.files:
            kw["score_error_estimate"] = _real(npz["score_error_estimate"],
                                               "score_error_estimate", path)
        return cls(metadata=metadata, **kw)

    def __repr__(self) -> str:
        return (f"ReferenceBundle({self.kind}, d={self.dim}, points={self.points.shape[0]}, "
                f"levels={self.times.size})")

    # -- constructors from PDE solutions (need DOLFINx) ------------------------------------
    @classmethod
    def from_fokker_planck(cls, p_field, *, problem=None, process: Process | None = None,
                           data=None, degree: int | None = None, root: int | None = 0,
                           info: dict | None = None, error_estimate: str = "auto"
                           ) -> ReferenceBundle | None:
        """The bundle of a Fokker–Planck solution (collective).

        Args:
            p_field: the density :class:`~bridgesolve.SpaceTimeField` (linear or log).
            problem: the :class:`~bridgesolve.Problem` it solved (for the process, domain
                and discretization metadata); or at least ``process``.
            data: the initial density ρ0 it was solved from: a Gaussian mixture is stored
                in the metadata; optional.
            degree: quadrature degree (default ``2k + 2`` for degree-k elements).
            root: the rank that receives the bundle (others get None); ``None`` gives every
                rank the whole bundle.
            info: extra diagnostics for ``metadata["info"]``.
            error_estimate: how to estimate the bundle's own score error
                (``score_error_estimate``, module docstring): ``"auto"`` (the closed form
                when there is one, else a P_{k+1} solve on the same mesh when it has at
                most 1e5 dofs, else none), ``"closed-form"``,
                ``"higher-degree"`` (refused when impossible) or ``"none"``.
        """
        from bridgesolve.quadrature import values_at_quadrature
        from bridgesolve.score import grad_log

        k = p_field.space.ufl_element().embedded_superdegree
        degree = int(degree or 2 * k + 2)
        score = grad_log(p_field)
        log_piece = score.terms[0][1]  # the floored nodal logs (or the log values)
        pts, wts, svals = score.at_quadrature(degree)
        if p_field.representation == "log":
            logs = values_at_quadrature(p_field.space, p_field.values, degree)
            dens = np.exp(logs)
        else:
            dens = values_at_quadrature(p_field.space, p_field.values, degree)
            logs = values_at_quadrature(p_field.space, log_piece.values, degree)
        meta = _metadata("diffusion", p_field, problem, process, data, degree, info)
        meta["fields"] = "finite-element"
        est, how = score_error_estimate(error_estimate, p_field, problem, data, meta, degree,
                                        pts, wts, dens, svals)
        meta["score_error_estimate"] = how
        return _gathered(cls, p_field.comm, root, meta, points=pts, weights=wts,
                         density=dens, log_density=logs, score=svals, times=p_field.times,
                         estimate=est)

    @classmethod
    def from_bridge(cls, bridge, *, data=None, final=None, degree: int | None = None,
                    root: int | None = 0, info: dict | None = None,
                    error_estimate: str = "auto") -> ReferenceBundle | None:
        """The bundle of a Schrödinger bridge (collective); see :meth:`from_fokker_planck`.

        ``bridge`` needs ``problem``, ``log_phi`` and ``log_phi_hat`` (log-representation
        space-time fields). ``data`` and ``final`` are its end marginals ρ0 and ρ1: when both
        are single Gaussians under a Brownian reference, ``score_error_estimate`` comes from
        the closed-form bridge marginals (:func:`bridgesolve.densities.gaussian_bridge`);
        ``error_estimate`` is ``"auto"``/``"closed-form"``/``"none"``.
        """
        from bridgesolve._dolfinx import MPI
        from bridgesolve.quadrature import values_at_quadrature
        from bridgesolve.score import grad_log

        lp, lph = bridge.log_phi, bridge.log_phi_hat
        k = lp.space.ufl_element().embedded_superdegree
        degree = int(degree or 2 * k + 2)
        pts, wts, g = grad_log(lp).at_quadrature(degree)
        _, _, gh = grad_log(lph).at_quadrature(degree)
        a = values_at_quadrature(lp.space, lp.values, degree)
        b = values_at_quadrature(lph.space, lph.values, degree)
        s = a + b
        # log Z_n = log Σ w e^{s} over all ranks, stably
        shift_local = s.max(axis=1) if s.shape[1] else np.full(s.shape[0], -np.inf)
        shift = np.empty_like(shift_local)
        lp.comm.Allreduce(shift_local, shift, op=MPI.MAX)
        local = (np.exp(s - shift[:, None]) @ wts) if s.shape[1] else np.zeros(s.shape[0])
        total = np.empty_like(local)
        lp.comm.Allreduce(local, total, op=MPI.SUM)
        logs = s - (shift + np.log(total))[:, None]
        extra = {"iterations": getattr(bridge, "iterations", None),
                 "converged": getattr(bridge, "converged", None),
                 "mode": getattr(bridge, "mode", None), **(info or {})}
        meta = _metadata("bridge", lp, bridge.problem, None, data, degree, extra)
        meta["fields"] = "finite-element"
        est, meta["score_error_estimate"] = bridge_score_error_estimate(
            error_estimate, bridge, data, final, pts, wts, g + gh)
        return _gathered(cls, lp.comm, root, meta, points=pts, weights=wts,
                         density=np.exp(logs), log_density=logs, score=g + gh, times=lp.times,
                         log_phi=a, log_phi_hat=b, grad_log_phi=g, grad_log_phi_hat=gh,
                         estimate=est)



def save_reference(source, path: str | os.PathLike, *, problem=None, data=None, final=None,
                   degree: int | None = None, info: dict | None = None,
                   dtype: str = DEFAULT_DTYPE, compress: bool = DEFAULT_COMPRESS,
                   error_estimate: str = "auto") -> ReferenceBundle | None:
    """Build the bundle of ``source`` (a Fokker–Planck field or a bridge) and write it once
    from rank 0 (collective). Returns the bundle on rank 0 (float64, as built), None
    elsewhere.

    Args:
        source: a Fokker–Planck :class:`~bridgesolve.SpaceTimeField` or a bridge.
        path: the ``.npz`` file.
        problem, data, degree, info, error_estimate: see
            :meth:`ReferenceBundle.from_fokker_planck`.
        final: a bridge's ρ1 (for the closed-form error estimate of Gaussian bridges; see
            :meth:`ReferenceBundle.from_bridge`).
        dtype, compress: storage of the file (:meth:`ReferenceBundle.save`): by default
            float32, compressed (the default 2D bundle: 39.5 MiB, against 152.6 MiB for
            float64 plain); ``dtype="float64"`` for a lossless file.
    """
    _dtype(dtype)
    if not isinstance(compress, bool):
        raise BridgesolveInputError(f"compress = {compress!r}: expected True or False")
    comm = source.log_phi.comm if hasattr(source, "log_phi") else source.comm
    if hasattr(source, "log_phi"):
        bundle = ReferenceBundle.from_bridge(source, data=data, final=final, degree=degree,
                                             info=info, error_estimate=error_estimate)
    else:
        bundle = ReferenceBundle.from_fokker_planck(source, problem=problem, data=data,
                                                    degree=degree, info=info,
                                                    error_estimate=error_estimate)
    write_on_root(bundle, path, comm, dtype=dtype, compress=compress)
    return bundle


def write_on_root(bundle, path, comm, *, dtype: str = DEFAULT_DTYPE,
                  compress: bool = DEFAULT_COMPRESS) -> None:
    """Rank 0 writes ``bundle`` (gathered there); a failure is raised on every rank."""
    error = None
    if comm.rank == 0:
        try:
            bundle.save(path, dtype=dtype, compress=compress)
        except Exception as exc:  # pass the failure to every rank instead of hanging them
            error = exc
    error = comm.bcast(error, root=0)
    if error is not None:
        raise error



def _metadata(kind, field, problem, process, data, degree, info) -> dict:
    """The metadata of a bundle built from an FE ``field`` (space-time field)."""
    k = field.space.ufl_element().embedded_superdegree
    field_info = {k: v for k, v in getattr(field, "info", {}).items()
                  if k in ("equation", "mass", "factorizations", "timings")}
    return metadata_record(kind, k, int(field.times.size), problem, process, data, degree,
                           {**field_info, **(info or {})})


def metadata_record(kind, element_degree, time_levels, problem, process, data, degree,
                    info) -> dict:
    """The metadata dict of the schema (module doc of :mod:`bridgesolve.reference`)."""
    from bridgesolve import __version__
    from bridgesolve._dolfinx import versions
    from bridgesolve._json import jsonable as _jsonable

    process = process if process is not None else getattr(problem, "process", None)
    desc = problem.describe() if problem is not None else {}
    disc = {"element": f"P{element_degree}", **desc.get("discretization", {}),
            "quadrature_degree": degree, "time": desc.get("time"),
            "time_levels": int(time_levels)}
    if data is not None and not hasattr(data, "describe"):
        raise BridgesolveInputError(f"data = {data!r}: expected a density of "
                                    "bridgesolve.densities (with describe()) or None")
    return _jsonable({
        "kind": kind,
        "process": None if process is None else process.describe(),
        "data": None if data is None else data.describe(),
        "domain": desc.get("domain"),
        "discretization": disc,
        "versions": {"bridgesolve": __version__, **versions()},
        "info": dict(info or {}),
        "schema": SCHEMA,
    })


def _gathered(cls, comm, root, meta, *, times, estimate=None, **local
              ) -> ReferenceBundle | None:
    """Concatenate the per-rank point blocks (points are the last-but-one axis of level
    arrays, the first of points/weights) on ``root`` (or on every rank). ``estimate``
    (rank-independent already) is passed through."""
    def axis(key):
        return 0 if key in ("points", "weights") else 1

    if comm.size == 1:
        gathered = local
    else:
        parts = {k: (comm.allgather(v) if root is None else comm.gather(v, root=root))
                 for k, v in local.items()}
        if root is not None and comm.rank != root:
            return None
        gathered = {k: np.concatenate(v, axis=axis(k)) for k, v in parts.items()}
    return cls(times=np.asarray(times), metadata=meta, score_error_estimate=estimate,
               **gathered)


