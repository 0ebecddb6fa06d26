"""What a convergence study measures: :class:`Quantity` and the table per equation."""

from __future__ import annotations

from dataclasses import dataclass

from bridgesolve._validate import BridgesolveInputError
from bridgesolve.equations import EQUATIONS, Equation


@dataclass(frozen=True)
class Quantity:
    """One measured quantity.

    Attributes:
        name: column name (``density_L2``).
        label: for tables and figures.
        norm: ``"L2"``, ``"L1"``, ``"Linf"``, ``"score"`` or ``"scalar"`` (``|c_h − c|``
            of a number the solver returns, e.g. a bridge's cost).
        derivative: 1 for gradient quantities (one order less in h).
        order_known: False where no reference slope is drawn (functionals).
        power: the error is this power of a norm (2 for a KL divergence).
    """

    name: str
    label: str
    norm: str
    derivative: int = 0
    order_known: bool = True
    power: int = 1

    def expected_order(self, refine: str, degree: int, theta: float) -> float | None:
        """The asymptotic order in h (``h``), dt (``dt``) or h with dt ∝ h (``hdt``)."""
        if not self.order_known:
            return None
        space = degree + 1 - self.derivative
        time_order = 2.0 if abs(theta - 0.5) < 1e-12 else 1.0
        order = {"h": float(space), "dt": time_order, "hdt": min(space, time_order)}.get(refine)
        return None if order is None else self.power * order


def _norms(field: str, symbol: str) -> list[Quantity]:
    return [Quantity(f"{field}_{n}", f"‖{symbol}_h − {symbol}‖_{n}", n) for n in
            ("L2", "L1", "Linf")]


def _measured(eq: Equation) -> list[Quantity]:
    """The field in three norms; the weighted score error of forward equations (their
    solution is a density, or its log); a bridge's KL cost by both formulas."""
    out = _norms(eq.field, eq.symbol)
    if eq.forward:
        w = "ρ" if eq.name == "bridge" else "p"
        out.append(Quantity("score_pL2", f"(∫{w}|∇log {w}_h − ∇log {w}|²)^½", "score",
                            derivative=1))
    if eq.name == "bridge":
        out += [Quantity("cost_kinetic", "|KL_h − KL| (kinetic)", "scalar", order_known=False),
                Quantity("cost_boundary", "|KL_h − KL| (boundary)", "scalar",
                         order_known=False)]
    return out


#: equation -> the quantities measured (a bridge: its marginal at T/2, its score, its cost).
QUANTITIES: dict[str, list[Quantity]] = {name: _measured(eq) for name, eq in EQUATIONS.items()}


def quantities_of(cfg) -> list[Quantity]:
    """The quantities measured for a config: :data:`QUANTITIES` of its equation, plus, for
    each ``[convergence] generated = [h, ...]`` (Fokker–Planck only, 0 < h ≤ 1),
    ``KL(ρ0 ‖ q_h)`` of the sampler driven by the solution's own score ``∇log p_h`` (by
    :func:`bridgesolve.score.grad_log`) from the exact ``p_T``
    (:func:`bridgesolve.likelihood.generated_density`; exactly 0 for the exact score, and
    of order twice the density's, a KL being quadratic in ``q_h - ρ0``)."""
    out = list(QUANTITIES[cfg.equation])
    hs = cfg.raw.get("convergence", {}).get("generated", [])
    if hs and cfg.equation != "fokker-planck":
        raise BridgesolveInputError(
            f"[convergence] generated = {hs!r}: generated densities need equation = "
            f"'fokker-planck' (the equation is {cfg.equation!r})")
    for h in hs:
        out.append(Quantity(kl_name(h), f"KL(ρ0 ‖ q_h), h = {float(h):g}", "scalar",
                            power=2))
    return out


def kl_name(h: float) -> str:
    """The quantity name of ``KL(ρ0 ‖ q_h)`` (``kl_generated_h0.5``)."""
    return f"kl_generated_h{float(h):g}"


__all__ = ["QUANTITIES", "Quantity", "kl_name", "quantities_of"]
