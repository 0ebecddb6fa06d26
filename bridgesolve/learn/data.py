r"""Training data for score networks: Gaussian mixtures, sample files and toy sets.

Every data set is a :class:`Dataset`: ``sample(n, rng) -> (n, d)`` NumPy array drawn with
the given generator, so that a batch depends only on the generator's seed (the trainer
seeds one per step: resuming after an interruption redraws exactly the same batches).
The classic low-dimensional sets are implemented here with NumPy (no downloads):

* ``two_moons``: two interleaved half circles, :math:`(\cos\theta, \sin\theta)` and
  :math:`(1 - \cos\theta, \tfrac12 - \sin\theta)`, centred, plus Gaussian noise;
* ``checkerboard``: uniform on the black squares of a 4×4 board on ``[-2, 2]^2``;
* ``swiss_roll``: :math:`r(\cos r, \sin r)/5` with :math:`r = \tfrac32\pi(1 + 2u)`;
* ``rings``: concentric circles of radii ``1, 2, ..., n_rings`` (scaled), radial noise;
* ``mixture1d``: a bimodal 1D Gaussian mixture (any other mixture: ``gaussian_mixture``).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError, check_values, positive, positive_int
from bridgesolve.densities import GaussianMixture


class Dataset:
    """A source of samples of the data law ρ0.

    Args:
        sampler: ``(n, rng) -> (n, dim)`` samples.
        dim: the dimension.
        name: a label.
        params: the parameters (for :meth:`describe` and checkpoints).
        mixture: the law as a :class:`GaussianMixture` when it is one (exact references).
    """

    def __init__(self, sampler: Callable[[int, np.random.Generator], np.ndarray], dim: int,
                 name: str, params: dict | None = None, mixture: GaussianMixture | None = None):
        self._sampler = sampler
        self.dim = int(dim)
        self.name = name
        self.params = dict(params or {})
        self.mixture = mixture

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` samples ``(n, dim)`` as float64; ``rng`` is a Generator or a seed."""
        n = positive_int("n", n)
        out = self._sampler(n, np.random.default_rng(rng))
        problem = check_values(f"the sampler of data set {self.name!r}", out, n, dim=self.dim)
        if problem is not None:
            raise BridgesolveInputError(problem)
        return np.asarray(out, dtype=float).reshape(n, self.dim)

    def describe(self) -> dict:
        return {"type": self.name, **self.params}

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, dim={self.dim})"


# -- the sets ----------------------------------------------------------------------------
def gaussian_mixture(mixture: GaussianMixture) -> Dataset:
    """Samples of a :class:`GaussianMixture` (any dimension)."""
    if not isinstance(mixture, GaussianMixture):
        raise BridgesolveInputError(f"mixture = {mixture!r}: expected a GaussianMixture")
    desc = mixture.describe()
    params = {k: desc[k] for k in ("weights", "means", "covs")}
    return Dataset(lambda n, rng: mixture.sample(n, rng), mixture.dim, "gaussian_mixture",
                   params, mixture=mixture)


def mixture1d(separation: float = 2.5, std: float = 0.5) -> Dataset:
    """A bimodal 1D mixture ``0.4 N(-s/2·1.2, std²) + 0.6 N(s/2·0.8, (1.2 std)²)``."""
    s, std = positive("separation", separation), positive("std", std)
    mix = GaussianMixture([0.4, 0.6], [[-0.6 * s], [0.4 * s]], [std**2, (1.2 * std) ** 2])
    ds = gaussian_mixture(mix)
    ds.name, ds.params = "mixture1d", {"separation": s, "std": std}
    return ds


def two_moons(noise: float = 0.1, scale: float = 1.0) -> Dataset:
    """Two interleaved half circles (centred at the origin), with isotropic noise."""
    noise = positive("noise", noise, allow_zero=True)
    scale = positive("scale", scale)

    def sampler(n, rng):
        upper = rng.random(n) < 0.5
        theta = math.pi * rng.random(n)
        x = np.where(upper, np.cos(theta), 1.0 - np.cos(theta)) - 0.5
        y = np.where(upper, np.sin(theta), 0.5 - np.sin(theta)) - 0.25
        pts = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
        return scale * pts

    return Dataset(sampler, 2, "two_moons", {"noise": noise, "scale": scale})


def checkerboard(scale: float = 1.0) -> Dataset:
    """Uniform on the 8 black squares of a 4×4 board on ``[-2, 2]^2`` (times ``scale``)."""
    scale = positive("scale", scale)

    def sampler(n, rng):
        x = 4.0 * rng.random(n) - 2.0
        # y in the black squares of the column of x: parity of floor(x) + floor(y) even
        y = rng.random(n) - 2.0 * rng.integers(0, 2, n) + np.mod(np.floor(x), 2.0)
        return scale * np.stack([x, y], axis=1)

    return Dataset(sampler, 2, "checkerboard", {"scale": scale})


def swiss_roll(noise: float = 0.1, scale: float = 1.0) -> Dataset:
    """The 2D swiss roll ``r (cos r, sin r) / 5``, ``r = 1.5π (1 + 2u)``, plus noise."""
    noise = positive("noise", noise, allow_zero=True)
    scale = positive("scale", scale)

    def sampler(n, rng):
        r = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
        pts = np.stack([r * np.cos(r), r * np.sin(r)], axis=1) / 5.0
        return scale * (pts + noise * rng.standard_normal((n, 2)))

    return Dataset(sampler, 2, "swiss_roll", {"noise": noise, "scale": scale})


def rings(n_rings: int = 3, noise: float = 0.08, scale: float = 1.0) -> Dataset:
    """Concentric circles of radii ``scale · k`` (k = 1..n_rings), mass ∝ radius."""
    n_rings = positive_int("n_rings", n_rings)
    noise = positive("noise", noise, allow_zero=True)
    scale = positive("scale", scale)
    radii = np.arange(1, n_rings + 1, dtype=float)

    def sampler(n, rng):
        r = rng.choice(radii, size=n, p=radii / radii.sum()) + noise * rng.standard_normal(n)
        theta = 2.0 * math.pi * rng.random(n)
        return scale * np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)

    return Dataset(sampler, 2, "rings", {"n_rings": n_rings, "noise": noise, "scale": scale})


def from_array(samples, *, name: str = "samples", params: dict | None = None) -> Dataset:
    """Resampling (with replacement) of a fixed set of samples ``(n, d)`` (or ``(n,)`` 1D)."""
    arr = np.asarray(samples, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2 or not 1 <= arr.shape[1] <= 3:
        raise BridgesolveInputError(f"samples have shape {np.shape(samples)}: expected (n, d) "
                                    "with n >= 2 points in d = 1, 2 or 3 dimensions")
    if not np.all(np.isfinite(arr)):
        raise BridgesolveInputError("samples contain NaN or infinite values")
    arr.setflags(write=False)
    return Dataset(lambda n, rng: arr[rng.integers(0, arr.shape[0], n)], arr.shape[1], name,
                   {"n_samples": arr.shape[0], **(params or {})})


def from_file(path: str | os.PathLike) -> Dataset:
    """Samples from a ``.npy`` array ``(n, d)`` or a ``.csv`` file (one point per row; a
    header line is skipped when it is not numeric).

    Every problem with the file (missing, not a .npy file, truncated, pickled objects, text
    that is not numbers, ragged rows, no data, a shape other than ``(n, d)`` with n >= 2 and
    d in 1..3, NaN or infinite values) is a :class:`BridgesolveInputError` whose one line
    names the file and what is wrong.
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
        return from_array(arr, name="file", params={"path": str(path)})
    except BridgesolveInputError as exc:
        raise fail(str(exc)) from None


#: ``[data] type`` -> (factory, its keyword parameters)
TOY_SETS: dict[str, Callable[..., Dataset]] = {
    "two_moons": two_moons,
    "checkerboard": checkerboard,
    "swiss_roll": swiss_roll,
    "rings": rings,
    "mixture1d": mixture1d,
}


def as_dataset(data) -> Dataset:
    """A :class:`Dataset` from a Dataset, a GaussianMixture, an array of samples or a path."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, GaussianMixture):
        return gaussian_mixture(data)
    if isinstance(data, str | os.PathLike):
        return from_file(data)
    if isinstance(data, np.ndarray | list | tuple):
        return from_array(data)
    raise BridgesolveInputError(f"data = {data!r}: expected a Dataset, a GaussianMixture, "
                                "an (n, d) array of samples or a .npy/.csv path")
