"""The one vocabulary of data sets: every name the trainer's ``[data]`` and the PDE side's
``[initial]``/``[final]`` accept, each an exact density.

* named sets (:data:`NAMED`): ``two_moons``, ``checkerboard``, ``swiss_roll``, ``rings``,
  ``circle``, ``circles``, ``s_curve``, ``eight_gaussians``, ``twenty_five_gaussians``,
  ``mixture1d``, each with its factory's keyword parameters;
* ``gaussian_mixture`` (weights, means, covs);
* ``file``: samples (``.npy``/``.csv``) as a Gaussian KDE (path, bandwidth);
* ``image``: an image (``.npy``/``.png``) as a box mixture of pixels (path, lower, upper).

:func:`density_from_config` builds one from a config table (its errors name the section and
the key); :func:`parameters` lists a type's keys.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.densities.boxes import checkerboard, image_from_file
from bridgesolve.densities.curves import circle, circles, rings, s_curve, swiss_roll, two_moons
from bridgesolve.densities.gaussian_mixture import (
    GaussianMixture,
    eight_gaussians,
    mixture1d,
    twenty_five_gaussians,
)
from bridgesolve.densities.kde import kde_from_file

#: Named data sets: type -> factory (its keyword arguments are the config keys).
NAMED: dict[str, Callable] = {
    "two_moons": two_moons,
    "checkerboard": checkerboard,
    "swiss_roll": swiss_roll,
    "rings": rings,
    "circle": circle,
    "circles": circles,
    "s_curve": s_curve,
    "eight_gaussians": eight_gaussians,
    "twenty_five_gaussians": twenty_five_gaussians,
    "mixture1d": mixture1d,
}
#: Data read from files: type -> (reader, its keys besides ``path``).
FILES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "file": (kde_from_file, ("bandwidth",)),
    "image": (image_from_file, ("lower", "upper")),
}
TYPES = ("gaussian_mixture", *NAMED, *FILES)


def parameters(kind: str) -> tuple[str, ...]:
    """The config keys of data type ``kind`` (besides ``type``)."""
    if kind == "gaussian_mixture":
        return ("weights", "means", "covs")
    if kind in FILES:
        return ("path", *FILES[kind][1])
    if kind in NAMED:
        return tuple(inspect.signature(NAMED[kind]).parameters)
    raise BridgesolveInputError(f"data type {kind!r}: expected one of "
                                f"{', '.join(map(repr, TYPES))}")


def resolve_path(path, base_dir: str | os.PathLike | None) -> Path:
    """A data file's path, relative ones against the config's folder when the file is there."""
    p = Path(path)
    if not p.is_absolute() and base_dir is not None and (Path(base_dir) / p).exists():
        return Path(base_dir) / p
    return p


def density_from_config(table: dict, *, where: str = "[data]",
                        base_dir: str | os.PathLike | None = None):
    """The density of a config table ``{"type": ..., key: value, ...}`` (module doc).

    Errors are :class:`BridgesolveInputError` lines that start with ``where`` and name the
    key and value."""
    table = dict(table)
    kind = table.pop("type", "gaussian_mixture")
    keys = parameters(kind) if kind in TYPES else None
    if keys is None:
        raise BridgesolveInputError(f"{where} type = {kind!r}: expected one of "
                                    f"{', '.join(map(repr, TYPES))}")
    extra = sorted(set(table) - set(keys))
    if extra:
        raise BridgesolveInputError(f"{where} {extra[0]} = {table[extra[0]]!r}: not a key of "
                                    f"type {kind!r} (its keys: {', '.join(keys) or 'none'})")
    try:
        if kind == "gaussian_mixture":
            missing = [k for k in ("weights", "means", "covs") if k not in table]
            if missing:
                raise BridgesolveInputError(f"{missing[0]}: missing (a Gaussian mixture needs "
                                            "weights, means and covs)")
            return GaussianMixture(table["weights"], table["means"], table["covs"])
        if kind in FILES:
            if "path" not in table:
                raise BridgesolveInputError("path: missing (the data file)")
            reader = FILES[kind][0]
            path = resolve_path(table.pop("path"), base_dir)
            return reader(path, **table)
        return NAMED[kind](**table)
    except BridgesolveInputError as exc:
        raise BridgesolveInputError(f"{where} {exc}") from None
    except TypeError as exc:  # a value of the wrong kind reached a factory
        raise BridgesolveInputError(f"{where} type = {kind!r}: {exc}") from None
