"""The density protocol every family implements, and the registry that rebuilds a density
from its ``describe()`` record (configs, bundles, the validator).

A family is a class with the methods of :class:`Density` and a ``from_description``
classmethod; :func:`register` adds it under the ``"type"`` its ``describe()`` writes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from bridgesolve._validate import BridgesolveInputError


@runtime_checkable
class Density(Protocol):
    """A probability density on R^d with exact evolution under the linear processes."""

    @property
    def dim(self) -> int: ...

    def pdf(self, x) -> np.ndarray: ...

    def log_pdf(self, x) -> np.ndarray: ...

    def score(self, x) -> np.ndarray: ...

    def sample(self, n: int, rng=None) -> np.ndarray: ...

    def evolve(self, process, t: float, s: float = 0.0) -> Density: ...

    def describe(self) -> dict: ...


def is_probability_density(obj) -> bool:
    """Whether ``obj`` is a normalized density of this package (the :class:`Density`
    protocol, with ``sample``: unnormalized values such as ``ScaledMixture`` are not)."""
    return isinstance(obj, Density)


_FAMILIES: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: ``density_from_description`` rebuilds ``cls`` from records whose
    ``"type"`` is ``cls.__name__``."""
    _FAMILIES[cls.__name__] = cls
    return cls


def register_preset(name: str, cls: type) -> None:
    """``density_from_description`` rebuilds records of ``"type": name`` (a preset such as
    ``"two_moons"``) with ``cls.from_description``."""
    _FAMILIES[name] = cls


def families() -> list[str]:
    """The registered ``"type"`` names (families and presets)."""
    return sorted(_FAMILIES)


def density_from_description(desc: dict) -> Density:
    """The density a ``describe()`` record stands for (the inverse of ``describe``)."""
    if not isinstance(desc, dict) or "type" not in desc:
        raise BridgesolveInputError(f"density description {desc!r}: expected a dict with a "
                                    "'type'")
    kind = desc["type"]
    if kind not in _FAMILIES:
        raise BridgesolveInputError(f"density type {kind!r}: expected one of "
                                    f"{', '.join(map(repr, sorted(_FAMILIES)))}")
    return _FAMILIES[kind].from_description(desc)


def data_from_description(desc: dict | None) -> Density | None:
    """The density a bundle's or checkpoint's ``data`` record names, or None when there is
    none or it cannot be rebuilt (an unknown type, a sample file that has moved)."""
    if not desc:
        return None
    try:
        return density_from_description(desc)
    except (BridgesolveInputError, KeyError, TypeError):
        return None
