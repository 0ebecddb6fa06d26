"""The option names of bridgesolve, each list defined once (NumPy- and DOLFINx-free).

Config validation, the command line, the solvers and the studies all read these tuples, so
that a new choice is added in one place.
"""

from __future__ import annotations

#: Schrödinger-bridge iteration modes (``solve_bridge(mode=...)``, ``[bridge] mode``).
BRIDGE_MODES = ("auto", "linear", "log")
#: Refinements of a convergence study (``--refine``, ``[convergence] refine``).
REFINEMENTS = ("h", "p", "dt", "hdt")
#: What a convergence study measures errors against (``[convergence] reference``).
REFERENCES = ("auto", "exact", "finest")
#: Time-grid spacings (``[time] spacing``).
SPACINGS = ("clock", "uniform", "graded")
#: θ-schemes of the stepping engine (``[discretization] scheme``).
SCHEMES = ("crank-nicolson", "backward-euler")
#: Weights λ(t) of score-matching losses (``[train] weighting``, ``validate --weighting``).
WEIGHTINGS = ("sigma2", "g2", "none")
#: Boundary conditions (``[discretization] boundary``, ``Problem(boundary=...)``).
BOUNDARIES = ("reflecting", "absorbing")
#: Solution methods of the solvers (``method=``, ``[discretization] method``): finite
#: elements, exact transition kernels (linear processes on boxes), or the kernel where it
#: applies.
METHODS = ("fe", "kernel", "auto")
#: Where fields keep their time levels (``Problem(storage=...)``, ``[discretization]
#: storage``): memory, disk (memory-mapped files), or disk beyond a memory budget.
STORAGES = ("auto", "memory", "disk")

#: Conventions of score networks from other codebases (``bridgesolve.learn.adapters.adapt``,
#: ``validate --convention``): name -> what the model computes, from what input.
CONVENTIONS: dict[str, str] = {
    "score": "bridgesolve's own: model(x, t) returns ∇log p_t(x) at bridgesolve time t",
    "score_sde_vp": "score_sde continuous VP: model(x, 999 t) predicts ε; s = -ε̂/σ(t) "
                    "(process: VP(0.1, 20))",
    "score_sde_subvp": "score_sde sub-VP: model(x, 999 t) predicts ε; σ(t) = 1 - e^{-B(t)} "
                       "(process: SubVP(0.1, 20))",
    "score_sde_vp_discrete": "score_sde discrete VP (DDPM): model(x, t (N-1)) predicts ε; σ from "
                             "sqrt_1m_alphas_cumprod[floor(t (N-1))]",
    "score_sde_ve": "score_sde continuous VE: model(x, σ) returns the score of the data "
                    "blurred by N(0, σ²) (process: VE(0.01, 50))",
    "diffusers": "diffusers UNet, prediction_type read from the scheduler config",
    "diffusers_epsilon": "diffusers unet(x, k), DDPM step k in [0, N-1] (0 = least noise), "
                         "predicts ε",
    "diffusers_sample": "diffusers unet(x, k) predicts x0 (prediction_type 'sample')",
    "diffusers_v": "diffusers unet(x, k) predicts v = √ᾱ ε - √(1-ᾱ) x0 ('v_prediction')",
    "denoiser": "model(x, σ) returns the denoiser D(x; σ) in VE coordinates (EDMPrecond, "
                "k-diffusion's Denoiser)",
    "edm": "raw EDM network F(c_in x, ¼ log σ), D = c_skip x + c_out F, σ_data = 0.5; "
           "for VE processes (a = 1)",
    "edm_vp": "the EDM network of 'edm' for any linear process (VP: x_VE = x/a, σ = s/a)",
    "k_diffusion": "k-diffusion inner model F(c_in x, σ), EDM scalings with σ_data = 1.0",
    "flow_matching": "velocity v(x, τ) of a Gaussian flow, τ = 0 noise, τ = 1 data "
                     "(path 'linear': x = (1-τ) z + τ x1; or 'cosine')",
}


def conventions_text() -> str:
    """``CONVENTIONS`` as aligned two-column lines (``--help``, the README)."""
    width = max(map(len, CONVENTIONS))
    return "\n".join(f"  {name:<{width}}  {text}" for name, text in CONVENTIONS.items())


__all__ = ["BOUNDARIES", "BRIDGE_MODES", "CONVENTIONS", "METHODS", "REFERENCES",
           "REFINEMENTS", "SCHEMES", "SPACINGS", "STORAGES", "WEIGHTINGS", "conventions_text"]
