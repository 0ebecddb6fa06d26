"""The kernel path: exact-in-time solutions for linear reference processes on boxes.

Every linear reference (Brownian, OU, VP, VE, sub-VP, cosine, tabulated) has a Gaussian,
separable transition kernel, so forward Fokker–Planck solutions, backward Kolmogorov
solutions without killing, and Schrödinger bridges are convolutions that need no time
stepping: :func:`kernel_fokker_planck`, :class:`KernelExpectation` and :func:`kernel_bridge`
evaluate them at any point and time, exact up to the trapezoid rule on a grid that resolves
the data and the kernel (spectrally accurate where the box holds the data). They are
free-space solutions: ``mass_outside`` says how much has left the box.

The FE solvers take ``method="kernel"`` (or ``"auto"``) and return the same fields at the
dofs of their mesh (:mod:`bridgesolve.kernel.fields`), so everything downstream works.

Modules: ``grid`` (tensor grids, lattices of dofs), ``convolution`` (separable log-domain
kernels), ``propagate`` (source grids per kernel width; Gauss–Hermite for narrow kernels),
``sources`` (user data), ``diffusion`` (forward and backward solutions), ``bridge``
(Sinkhorn), ``fields`` (the FE solvers' API).
"""

from bridgesolve.kernel.bridge import KernelBridge, kernel_bridge
from bridgesolve.kernel.convolution import Transition, convolve, convolve_with_gradient
from bridgesolve.kernel.diffusion import KernelDensity, KernelExpectation, kernel_fokker_planck
from bridgesolve.kernel.grid import TensorGrid

__all__ = ["KernelBridge", "KernelDensity", "KernelExpectation", "TensorGrid", "Transition",
           "convolve", "convolve_with_gradient", "kernel_bridge", "kernel_fokker_planck"]
