"""The bundle file format: schema name, field names, storage defaults, array checks."""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError

SCHEMA = "bridgesolve.reference/1"
FIELDS = ("density", "log_density", "score")
BRIDGE_FIELDS = ("log_phi", "log_phi_hat", "grad_log_phi", "grad_log_phi_hat")
KINDS = ("diffusion", "bridge")
DTYPES = ("float64", "float32")
# Storage defaults of files (module docstring: float32 + deflate is 3.9x smaller than
# float64 plain on the default 2D bundle, and the validator's numbers agree to 3e-8).
DEFAULT_DTYPE = "float32"
DEFAULT_COMPRESS = True
# what a damaged .npz raises while it is opened or read (truncated, garbage, bad members;
# numpy tokenizes a member's header, so null bytes there raise tokenize.TokenError)
_FILE_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
                UnicodeDecodeError, tokenize.TokenError, SyntaxError)



def _dtype(dtype) -> str:
    if dtype not in DTYPES:
        raise BridgesolveInputError(f"dtype = {dtype!r}: expected one of "
                                    f"{', '.join(map(repr, DTYPES))}")
    return dtype


def _real(arr: np.ndarray, key: str, path: Path) -> np.ndarray:
    """A stored array as float64, refusing strings, objects and complex numbers."""
    if arr.dtype.kind not in "fiu":
        raise BridgesolveInputError(f"bundle {str(path)!r}: {key} has dtype {arr.dtype}: "
                                    "expected real numbers")
    return arr.astype(float, copy=False)


