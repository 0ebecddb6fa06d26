r"""Densities from samples: a Gaussian kernel density estimate with a stated bandwidth.

``p(x) = \frac1n \sum_i N(x; x_i, H)`` with ``H = h² Σ̂`` (``Σ̂`` the sample covariance, as
scipy's ``gaussian_kde``) for Scott's (``h = n^{-1/(d+4)}``) or Silverman's rule
(``h = (n (d + 2)/4)^{-1/(d+4)}``), or ``H = h² I`` for a given number ``h``. It is the exact
law of the *smoothed* empirical measure, so everything downstream is exact for it: under a
linear process it is a KDE with centres ``a x_i + b`` and ``H_t = a² H + v I``. Evaluated in
the log domain in chunks (one matrix product per block of points and samples).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bridgesolve._validate import BridgesolveInputError, positive_int
from bridgesolve.densities._gaussian_sums import Affine, EqualCovarianceSum, check_points
from bridgesolve.densities.files import check_samples, read_samples
from bridgesolve.densities.protocol import register

BANDWIDTH_RULES = ("scott", "silverman")


def _samples(arr, where: str) -> np.ndarray:
    return check_samples(arr, where)


@register
class GaussianKDE:
    """A Gaussian KDE of ``samples`` (module doc).

    Args:
        samples: ``(n, d)`` points (n >= 2, d = 1..3), or ``(n,)`` in 1D.
        bandwidth: ``"scott"``, ``"silverman"`` or a number ``h > 0`` (then ``H = h² I``).
        path: the file the samples came from (``describe`` names it instead of the points).
    """

    def __init__(self, samples, bandwidth: str | float = "scott", *, path: str | None = None,
                 state: Affine | None = None):
        self.samples = _samples(samples, "samples" if path is None else
                                f"samples file {path!r}")
        n, d = self.samples.shape
        if isinstance(bandwidth, str):
            if bandwidth not in BANDWIDTH_RULES:
                raise BridgesolveInputError(f"bandwidth = {bandwidth!r}: expected "
                                            "'scott', 'silverman' or a number > 0")
            h = n ** (-1.0 / (d + 4)) if bandwidth == "scott" else \
                (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
            cov = np.atleast_2d(np.cov(self.samples.T))
            if np.linalg.matrix_rank(cov) < d:
                raise BridgesolveInputError(
                    f"samples span fewer than {d} dimensions (singular covariance): give a "
                    "numeric bandwidth")
            self.H = h * h * cov
        else:
            try:
                h = float(bandwidth)
            except (TypeError, ValueError):
                raise BridgesolveInputError(f"bandwidth = {bandwidth!r}: expected 'scott', "
                                            "'silverman' or a number > 0") from None
            if not (np.isfinite(h) and h > 0):
                raise BridgesolveInputError(
                    f"bandwidth = {bandwidth!r}: must be > 0 (a zero bandwidth is the "
                    "empirical measure, which has no density)")
            self.H = h * h * np.eye(d)
        self.bandwidth, self.path = bandwidth, path
        self.state = state or Affine()
        self._sum = None

    @property
    def dim(self) -> int:
        return self.samples.shape[1]

    @property
    def covariance(self) -> np.ndarray:
        """The kernel covariance at the current time, ``a² H + v I``."""
        return self.state.a**2 * self.H + self.state.v * np.eye(self.dim)

    @property
    def length_scale(self) -> float:
        """The kernel's smallest std."""
        return float(np.sqrt(np.linalg.eigvalsh(self.covariance).min()))

    def _kernel_sum(self) -> EqualCovarianceSum:
        if self._sum is None:
            st = self.state
            self._sum = EqualCovarianceSum(np.zeros(self.samples.shape[0]),
                                           st.a * self.samples + st.shift(self.dim),
                                           self.covariance)
        return self._sum

    def log_pdf(self, x) -> np.ndarray:
        return self._kernel_sum().log_pdf(check_points(x, self.dim))

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.log_pdf(x))

    def score(self, x) -> np.ndarray:
        return self._kernel_sum().log_pdf_and_score(check_points(x, self.dim))[1]

    def log_pdf_and_score(self, x):
        return self._kernel_sum().log_pdf_and_score(check_points(x, self.dim))

    def sample(self, n: int, rng=None) -> np.ndarray:
        n = positive_int("n", n)
        rng = np.random.default_rng(rng)
        st = self.state
        centres = st.a * self.samples[rng.integers(0, self.samples.shape[0], n)]
        L = np.linalg.cholesky(self.covariance)
        return centres + st.shift(self.dim) + rng.standard_normal((n, self.dim)) @ L.T

    def evolve(self, process, t: float, s: float = 0.0) -> GaussianKDE:
        out = GaussianKDE.__new__(GaussianKDE)
        out.__dict__.update(self.__dict__)
        out.state = self.state.then(process, t, s, self.dim)
        out._sum = None
        return out

    def describe(self) -> dict:
        out = {"type": "GaussianKDE", "bandwidth": self.bandwidth,
               "kernel_covariance": self.H.tolist(), "n_samples": self.samples.shape[0]}
        if self.path is not None:
            out["path"] = self.path
        else:
            out["samples"] = self.samples.tolist()
        if not self.state.identity:
            out["state"] = self.state.describe()
        return out

    @classmethod
    def from_description(cls, desc: dict) -> GaussianKDE:
        state = Affine.from_description(desc.get("state"))
        bw = desc.get("bandwidth", "scott")
        if "path" in desc:
            out = kde_from_file(desc["path"], bw)
            out.state = state
            return out
        if "samples" not in desc:
            raise BridgesolveInputError("GaussianKDE description: needs 'path' or 'samples'")
        return cls(desc["samples"], bw, state=state)

    def __repr__(self) -> str:
        return f"GaussianKDE(n={self.samples.shape[0]}, d={self.dim}, bandwidth={self.bandwidth!r})"


def kde_from_file(path: str | os.PathLike, bandwidth: str | float = "scott") -> GaussianKDE:
    """A KDE of the samples in a ``.npy`` or ``.csv`` file (one point per row; the trainer's
    reader, so the same files and the same errors)."""
    arr = read_samples(Path(path))
    return GaussianKDE(arr, bandwidth, path=str(path))
