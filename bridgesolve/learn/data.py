r"""Training data for score networks: Gaussian mixtures, sample files and toy sets.

Every data set is a :class:`Dataset`: ``sample(n, rng) -> (n, d)`` NumPy array drawn with
the given generator, so that a batch depends only on the generator's seed (the trainer
seeds one per step: resuming after an interruption redraws exactly the same batches).
The classic low-dimensional sets are implemented here with NumPy (no downloads):

* ``two_moons``: two interleaved half circles, :math:`(\cos\theta, \sin\theta)` and
  :math:`(1 - \cos\theta, \tfrac12 - \sin\theta)`, centred, plus Gaussian noise;
* ``checkerboard``: uniform on the black squares of a 4×4 board on ``[-2, 2]^2``;
* ``swiss_roll``: :math:`r(\cos r, \sin r)/5` with :math:`r = \tfrac32\pi(1 + 2u)`;
* ``rings``: concentric circles of radii ``1, 2, ..., n_rings`` (scaled), isotropic noise;
* through :func:`named`, the catalog's other sets: ``circle``, ``circles`` (scikit-learn's
  ``make_circles``, DSB's circle set: the unit circle and one of radius ``factor``, half
  the mass each), ``s_curve``, ``eight_gaussians``, ``twenty_five_gaussians``;

each drawn from its exact density (:mod:`bridgesolve.densities`), so every set has a PDE
reference; files of samples are Gaussian KDEs of a stated bandwidth;
* ``mixture1d``: a bimodal 1D Gaussian mixture (any other mixture: ``gaussian_mixture``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import numpy as np

from bridgesolve import densities
from bridgesolve._validate import BridgesolveInputError, check_values, positive_int
from bridgesolve.densities import Density, GaussianKDE, GaussianMixture, catalog
from bridgesolve.densities.files import read_samples


class Dataset:
    """A source of samples of the data law ρ0.

    Args:
        sampler: ``(n, rng) -> (n, dim)`` samples.
        dim: the dimension.
        name: a label.
        params: the parameters (for :meth:`describe` and checkpoints).
        mixture: the law as a :class:`GaussianMixture` when it is one (exact references).
        density: the law as a density of :mod:`bridgesolve.densities` (every set but
            resampled arrays has one).
    """

    def __init__(self, sampler: Callable[[int, np.random.Generator], np.ndarray], dim: int,
                 name: str, params: dict | None = None, mixture: GaussianMixture | None = None,
                 density=None):
        self._sampler = sampler
        self.dim = int(dim)
        self.name = name
        self.params = dict(params or {})
        self.mixture = mixture
        self.density = density if density is not None else mixture

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` samples ``(n, dim)`` as float64; ``rng`` is a Generator or a seed."""
        n = positive_int("n", n)
        out = self._sampler(n, np.random.default_rng(rng))
        problem = check_values(f"the sampler of data set {self.name!r}", out, n, dim=self.dim)
        if problem is not None:
            raise BridgesolveInputError(problem)
        return np.asarray(out, dtype=float).reshape(n, self.dim)

    def describe(self) -> dict:
        """The law's own record when it has a density (what bundles store, so that the
        validator can tell whether a score was trained on a bundle's data), else the set's
        name and parameters."""
        if self.density is not None:
            return self.density.describe()
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
    """A bimodal 1D mixture ``0.4 N(-0.6 s, std²) + 0.6 N(0.4 s, (1.2 std)²)``."""
    ds = gaussian_mixture(densities.mixture1d(separation, std))
    ds.name, ds.params = "mixture1d", {"separation": float(separation), "std": float(std)}
    return ds


def from_density(density, *, name: str | None = None, params: dict | None = None) -> Dataset:
    """Samples of any density of :mod:`bridgesolve.densities` (curve and box mixtures,
    images, KDEs, Gaussian mixtures): the dataset's law is that density, exactly."""
    if not isinstance(density, Density):
        raise BridgesolveInputError(f"density = {density!r}: expected a bridgesolve density "
                                    "(pdf, log_pdf, score, sample, evolve, describe)")
    desc = density.describe()
    name = name or desc["type"]
    params = params if params is not None else {k: v for k, v in desc.items() if k != "type"}
    return Dataset(lambda n, rng: density.sample(n, rng), density.dim, name, params,
                   mixture=density if isinstance(density, GaussianMixture) else None,
                   density=density)


def two_moons(noise: float = 0.1, scale: float = 1.0) -> Dataset:
    """Two interleaved half circles (centred at the origin), with isotropic noise
    (:func:`bridgesolve.densities.two_moons`)."""
    return from_density(densities.two_moons(noise, scale))


def checkerboard(scale: float = 1.0) -> Dataset:
    """Uniform on the 8 black squares of a 4×4 board on ``[-2, 2]^2`` (times ``scale``)."""
    return from_density(densities.checkerboard(scale))


def swiss_roll(noise: float = 0.1, scale: float = 1.0) -> Dataset:
    """The 2D swiss roll ``r (cos r, sin r) / 5``, ``r = 1.5π (1 + 2u)``, plus noise."""
    return from_density(densities.swiss_roll(noise, scale))


def rings(n_rings: int = 3, noise: float = 0.08, scale: float = 1.0) -> Dataset:
    """Concentric circles of radii ``scale · k`` (k = 1..n_rings), mass ∝ radius, plus
    isotropic noise."""
    return from_density(densities.rings(n_rings, noise, scale))


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


def from_file(path: str | os.PathLike, bandwidth: str | float = "scott") -> Dataset:
    """Samples from a ``.npy`` array ``(n, d)`` or a ``.csv`` file (one point per row; a
    header line is skipped when it is not numeric), as the Gaussian KDE of ``bandwidth``
    (:class:`~bridgesolve.densities.GaussianKDE`): training draws from the smoothed law, so
    that its PDE reference is exact. Problems with the file are one
    :class:`BridgesolveInputError` line naming the file (:func:`~bridgesolve.densities.
    files.read_samples`)."""
    arr = read_samples(path)
    kde = GaussianKDE(arr, bandwidth, path=str(path))
    return from_density(kde, name="file", params={"path": str(path), "bandwidth": bandwidth})


def named(kind: str, **params) -> Dataset:
    """The named set ``kind`` of :data:`bridgesolve.densities.catalog.NAMED` (two moons,
    checkerboard, ..., 8 and 25 Gaussians, mixture1d), drawn from its exact density."""
    if kind == "mixture1d":
        return mixture1d(**params)
    if kind not in catalog.NAMED:
        raise BridgesolveInputError(f"data set {kind!r}: expected one of "
                                    f"{', '.join(map(repr, catalog.NAMED))}")
    return from_density(catalog.NAMED[kind](**params), name=kind, params=params)


#: ``[data] type`` -> factory (its keyword parameters are the config keys): every named set
#: of the catalog, the four with their own function here included.
TOY_SETS: dict[str, Callable[..., Dataset]] = {
    **{k: functools.partial(named, k) for k in catalog.NAMED},
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
