"""The README's physics example runs as printed and gives the numbers its comments claim."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def _physics_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The physics of diffusion models"):]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "README: no python block in the physics section"
    return match.group(1)


def test_readme_physics_example_runs_with_its_numbers():
    import bridgesolve as bs
    from bridgesolve import likelihood

    ns: dict = {}
    exec(compile(_physics_block(), "README.md", "exec"), ns)
    closed = bs.SymmetricTwoGaussianOU(1.0, 0.4)
    ep = ns["ep"]
    assert abs(ep.total[0] - closed.total(0.0)) < 1e-4, (ep.total[0], closed.total(0.0))
    assert abs(ns["t_s"] - closed.speciation_time) < 2e-4, (ns["t_s"], closed.speciation_time)
    assert abs(ns["t_s"] - 0.38641) < 1e-4, ns["t_s"]
    mean, err = ns["paths"].ift()
    assert abs(mean - 1.0) < 3 * err, (mean, err)
    # the score control's action against the minimal action KL(p0|p_inf) - KL(p_T|p_inf)
    assert abs(ns["r"].action - 0.10861) < 5e-5, ns["r"].action
    assert abs(ns["r"].action - ep.integral()) < 2e-4, (ns["r"].action, ep.integral())
    prob, score, prior, data = ns["prob"], ns["score"], ns["prior"], ns["data"]
    n0 = likelihood.nll(prob, score, prior, data, hbar=0.0)
    n1 = likelihood.nll(prob, score, prior, data, hbar=1.0)
    slope = likelihood.nll_slope(prob, score, prior, data)
    assert np.allclose([n0, n1, slope], [1.6457, 1.0628, -1.869], atol=2e-3), (n0, n1, slope)
