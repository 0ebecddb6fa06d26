"""Samples from files and arrays: the one reader of ``.npy``/``.csv`` sample files (the
trainer's ``[data] type = "file"`` and the KDE family both use it)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError


def check_samples(samples, where: str = "samples") -> np.ndarray:
    """``samples`` as an ``(n, d)`` float array with n >= 2 finite points in d = 1..3
    (a 1D array is n points in 1D)."""
    arr = np.asarray(samples, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2 or not 1 <= arr.shape[1] <= 3:
        raise BridgesolveInputError(f"{where} have shape {np.shape(samples)}: expected (n, d) "
                                    "with n >= 2 points in d = 1, 2 or 3 dimensions")
    bad = ~np.all(np.isfinite(arr), axis=1)
    if bad.any():
        raise BridgesolveInputError(f"{where} contain NaN or infinite values ({int(bad.sum())} "
                                    f"row(s), first: row {int(np.flatnonzero(bad)[0])})")
    return arr


def read_samples(path: str | os.PathLike) -> np.ndarray:
    """Samples from a ``.npy`` array ``(n, d)`` or a ``.csv`` file (one point per row; a
    header line is skipped when it is not numeric).

    Returns the ``(n, d)`` float array (n >= 2, d = 1..3, finite). Every problem with the
    file (missing, not a .npy file, truncated, pickled objects, text that is not numbers,
    ragged rows, no data, a shape other than ``(n, d)`` with n >= 2 and d in 1..3, NaN or
    infinite values) is a :class:`BridgesolveInputError` whose one line names the file and
    what is wrong.
    """
    path = Path(path)
    where = f"samples file {str(path)!r}"
    if path.suffix.lower() not in (".npy", ".csv"):
        raise BridgesolveInputError(f"{where}: expected a .npy or .csv file")
    if not path.is_file():
        raise BridgesolveInputError(f"{where} does not exist")

    def fail(what: str):
        return BridgesolveInputError(f"{where}: {' '.join(str(what).split())}")

    try:
        if path.suffix.lower() == ".npy":
            with path.open("rb") as fh:
                magic = fh.read(6)
            if magic != b"\x93NUMPY":
                raise fail("not a NumPy .npy file (expected a file written by numpy.save; "
                           f"it starts with {magic!r})")
            arr = np.load(path, allow_pickle=False)
        else:
            with path.open(encoding="utf-8") as fh:
                first = fh.readline()
            try:
                [float(v) for v in first.replace(",", " ").split()]
                skip = 0
            except ValueError:
                skip = 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                arr = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    except BridgesolveInputError:
        raise
    except UnicodeDecodeError:
        raise fail("not a UTF-8 text file (expected comma-separated numbers, one point "
                   "per row)") from None
    except EOFError:
        raise fail("truncated: it ends before the array header") from None
    except (OSError, ValueError) as exc:
        text = str(exc).split("; use `usecols`")[0]  # numpy's advice does not apply here
        raise fail(f"cannot be read: {text}") from None
    if arr.dtype.kind not in "biuf":
        raise fail(f"holds an array of {arr.dtype} values: expected numbers")
    if arr.size == 0:
        raise fail("contains no samples: expected (n, d) numbers, one point per row")
    try:
        return check_samples(arr)
    except BridgesolveInputError as exc:
        raise fail(str(exc)) from None
