"""One TOML table with typed accessors whose errors name ``[section] key = value``.

The config readers (:mod:`bridgesolve.config`, :mod:`bridgesolve.learn.config`) check every
key through :class:`_Section`, so that a bad value fails up front with a message that names
the section, the key, the value and what was expected (NumPy- and DOLFINx-free).
"""

from __future__ import annotations

import math
from typing import NoReturn

from bridgesolve._validate import BridgesolveInputError

_MISSING = object()


class ConfigError(BridgesolveInputError):
    """A configuration value is missing, unknown or invalid."""


def _options(options) -> str:
    return ", ".join(map(repr, options))


class _Section:
    """One TOML table and typed accessors whose errors name ``[section] key = value``."""

    def __init__(self, name: str, table: dict):
        self.name = name
        self.table = table

    def fail(self, key: str, value, expected: str) -> NoReturn:
        raise ConfigError(f"[{self.name}] {key} = {value!r}: expected {expected}")

    def only(self, allowed) -> None:
        for key in self.table:
            if key not in allowed:
                raise ConfigError(f"[{self.name}] unknown key {key!r} (expected one of: "
                                  f"{', '.join(allowed)})")

    def get(self, key: str, expected: str, default=_MISSING):
        """The raw value; ``default`` when absent, an error naming ``expected`` without one."""
        if key in self.table:
            return self.table[key]
        if default is _MISSING:
            raise ConfigError(f"[{self.name}] missing key {key!r}: expected {expected}")
        return default

    def number(self, key: str, *, positive: bool = False, default=_MISSING) -> float:
        expected = "a finite positive number" if positive else "a finite number"
        value = self.get(key, expected, default)
        # bool is an int subclass: `true` must not pass for 1.
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or (positive and value <= 0)):
            self.fail(key, value, expected)
        return float(value)

    def integer(self, key: str, *, default=_MISSING) -> int:
        value = self.get(key, "a positive integer", default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(key, value, "a positive integer")
        return value

    def string(self, key: str, choices=None, *, default=_MISSING) -> str:
        if not choices:
            expected = "a string"
        else:
            expected = f"one of {_options(choices)}" if len(choices) > 1 else repr(choices[0])
        value = self.get(key, expected, default)
        if not isinstance(value, str) or (choices and value not in choices):
            self.fail(key, value, expected)
        return value

    def boolean(self, key: str, *, default=_MISSING) -> bool:
        value = self.get(key, "true or false", default)
        if not isinstance(value, bool):
            self.fail(key, value, "true or false")
        return value

    def numbers(self, key: str, expected: str = "a list of finite numbers", *,
                default=_MISSING) -> list[float]:
        """A number or a list of numbers, as a list."""
        value = self.get(key, expected, default)
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   for v in items):
            self.fail(key, value, expected)
        return [float(v) for v in items]

    def integers(self, key: str, length: int) -> list[int]:
        """A positive integer (repeated ``length`` times) or a list of ``length`` of them."""
        expected = (f"a positive integer or a list of {length}" if length > 1
                    else "a positive integer")
        value = self.get(key, expected, _MISSING)
        items = value if isinstance(value, list) else [value] * length
        if len(items) != length or not all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in items):
            self.fail(key, value, expected)
        return items


def _prefixed(section: str, exc: BridgesolveInputError) -> ConfigError:
    """A library validation error re-raised under the section it came from."""
    return ConfigError(f"[{section}] {exc}")


__all__ = ["ConfigError"]
