"""A diffusers schedule as a process, end to end: FE solve, bundles, validate.

For diffusers' own ``DDPMScheduler`` of each beta schedule, the Fokker–Planck solve under
``Tabulated`` has, at the step times ``t_k = (k + 1)/N`` of the grid, the law of the
discrete forward process ``x_k = √ᾱ_k x_0 + √(1 - ᾱ_k) ε`` (a mixture
``N(√ᾱ_k μ, ᾱ_k Σ + (1 - ᾱ_k))``, written from diffusers' ``alphas_cumprod`` directly, not
through the process). Bundles of it (solved and exact) keep the process through their
metadata, and a diffusers ε-model of the exact score validates against them.
"""

from __future__ import annotations

import numpy as np
import pytest

import bridgesolve as bs
from bridgesolve.learn.adapters import adapt
from bridgesolve.learn.validation import problem_from_bundle, validate
from bridgesolve.process import Tabulated
from bridgesolve.reference import ReferenceBundle, exact_bundle

SCHEDULES = {
    "linear": {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
               "beta_schedule": "linear"},
    "scaled_linear": {"num_train_timesteps": 1000, "beta_start": 0.00085,
                      "beta_end": 0.012, "beta_schedule": "scaled_linear"},
    "squaredcos_cap_v2": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"},
    "laplace": {"num_train_timesteps": 1000, "beta_schedule": "laplace"},
    "sigmoid": {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                "beta_schedule": "sigmoid"},
}
MIX1 = bs.GaussianMixture([0.4, 0.6], [[-1.0], [1.2]], [0.1, 0.2])
#: Step times t_k = (k + 1)/N only: every 20th step, then each of the last 20, where the
#: cosine schedule's ᾱ falls 1000-fold in one step (∫β = 12.9 from 0.98 to 1: one
#: Crank–Nicolson step of that size does not damp, 4e-3 L1 error at T).
TIMES = np.concatenate([np.arange(50) / 50, (np.arange(981, 1001)) / 1000])
#: More times where a step of TIMES is too large for Crank–Nicolson to damp the high modes:
#: laplace's first 20 steps (β_0 = 0.021 per step; 9.3e-3 L1 at k = 19 without them) and
#: 16 sub-steps inside its last one (β_999 = 0.85, ∫β = 1.9 over [0.999, 1]: 9.3e-3 at
#: k = 999 in one step, 4.7e-4 in 4, 3.9e-5 in 16); the sub-steps are no table step and
#: are not compared. sigmoid: every 10th step in [0.3, 0.7], where ∫β rises fastest
#: (8.7e-4 at k = 459 on TIMES alone).
EXTRA = {"laplace": np.concatenate([np.arange(1, 20) / 1000,
                                    0.999 + 0.001 * np.arange(1, 16) / 16]),
         "sigmoid": np.arange(30, 70) / 100}


def discrete_law(abar_k: float) -> bs.GaussianMixture:
    return bs.GaussianMixture(MIX1.weights, np.sqrt(abar_k) * MIX1.means,
                              abar_k * MIX1.covs + (1.0 - abar_k))


def solved(cfg, comm, times=TIMES):
    proc = Tabulated.from_scheduler_config(cfg)
    problem = bs.Problem(bs.Domain.box([-6.0], [6.0], [96], comm=comm), proc,
                         bs.TimeGrid.from_times(times), degree=2)
    return problem, bs.solve_fokker_planck(problem, MIX1, progress=False)


@pytest.mark.mpi
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_fe_marginals_are_the_discrete_forward_process(schedule, comm):
    diffusers = pytest.importorskip("diffusers")
    cfg = SCHEDULES[schedule]
    abar = diffusers.DDPMScheduler(**cfg).alphas_cumprod.double().numpy()
    problem, p = solved(cfg, comm, np.union1d(TIMES, EXTRA.get(schedule, [])))
    times = problem.grid.times[1:]
    times = times[np.abs(times * abar.size - np.round(times * abar.size)) < 1e-9]  # t_k only
    steps = np.round(times * abar.size).astype(int) - 1
    errors = np.array([p.error(discrete_law(float(abar[k])).pdf, float(t), norm="L1")
                       for k, t in zip(steps, times, strict=True)])
    shown = {int(k): f"{e:.2e}" for k, e in zip(steps, errors, strict=True)
             if k in (0, 19, 199, 459, 499, 799, 979, 999)}
    worst = int(np.argmax(errors))
    print(schedule, f"{problem.grid.steps} steps, {times.size} compared; max L1 "
          f"{errors[worst]:.2e} at k = {steps[worst]}; L1 error at step k:", shown)
    assert errors.max() < 1e-3, errors
    # the law of the next grid time (20 steps on) is far: the comparison sees the table
    half = int(np.flatnonzero(times == 0.5)[0])
    shifted = p.error(discrete_law(float(abar[499 + 20])).pdf, 0.5, norm="L1")
    assert steps[half] == 499 and shifted > 10 * errors[half], (shifted, errors[half])


@pytest.mark.mpi
def test_bundles_keep_the_tabulated_process_and_validate(comm):
    cfg = SCHEDULES["squaredcos_cap_v2"]
    problem, p = solved(cfg, comm)
    fe = ReferenceBundle.from_fokker_planck(p, problem=problem, data=MIX1, root=None)
    ex = exact_bundle(problem, MIX1, root=None)
    for b in (fe, ex):
        back = b.process()
        assert isinstance(back, Tabulated)
        np.testing.assert_array_equal(back.alphas_cumprod, problem.process.alphas_cumprod)
        rebuilt = problem_from_bundle(b, comm=comm)
        assert rebuilt.process.describe() == problem.process.describe()
    # the same points: the solved density against the exact one, level by level
    l1 = np.abs(fe.density - ex.density) @ fe.weights
    assert np.all(l1 < 1e-3), l1

    def eps(x, k):  # diffusers unet(x, k): the exact ε̂ of step k (fractional k allowed)
        abar_k = problem.process.transition((float(k[0]) + 1) / 1000)[0] ** 2
        law = bs.GaussianMixture(MIX1.weights, np.sqrt(abar_k) * MIX1.means,
                                 abar_k * MIX1.covs + (1.0 - abar_k))
        return -np.sqrt(1.0 - abar_k) * law.score(x)

    model = adapt(eps, "diffusers_epsilon", scheduler_config=cfg, time_shape="vector")
    on_exact = validate(model, ex, hs=(), n_mc=64, progress=False)
    assert max(on_exact["esm"]["relative"][1:]) < 1e-9
    assert not on_exact["convention_check"]["triggered"]
    with pytest.warns(RuntimeWarning, match="bundle's own score error is not small"):
        on_fe = validate(model, fe, hs=(1.0,), n_mc=64, progress=False, problem=problem)
    print("against the FE bundle: relative ESM", np.round(on_fe["esm"]["relative"][1::10], 5),
          "KL(ρ0‖q_1)", on_fe["kl"])
    assert max(on_fe["esm"]["relative"][1:]) < 0.05
    assert not any("trained for" in n for n in on_fe["notes"])


RUN = """\
[domain]
type = "interval"
lower = [-6.0]
upper = [6.0]
cells = 40

[process]
type = "Tabulated"
scheduler_config = "unet"

[initial]
weights = [0.4, 0.6]
means = [[-1.5], [1.0]]
covs = [0.3, 0.5]

[time]
T = 1.0
steps = 20
"""


@pytest.mark.mpi
def test_run_config_with_a_scheduler_config(mpi_tmp_path, comm, monkeypatch):
    """`bridgesolve run` of a config whose [process] is a diffusers scheduler_config.json
    (its folder, next to the config; the run starts elsewhere): exact errors against the
    Gaussian law of the table, and the summary's process is a [process] section again."""
    import json

    from bridgesolve.cli import main
    from bridgesolve.config import validate

    folder = mpi_tmp_path / "configs"
    if comm.rank == 0:
        (folder / "unet").mkdir(parents=True)
        (folder / "unet" / "scheduler_config.json").write_text(
            json.dumps({"_class_name": "DDPMScheduler", **SCHEDULES["linear"]}))
        (folder / "run.toml").write_text(RUN)
    comm.barrier()
    monkeypatch.chdir(mpi_tmp_path)
    out = mpi_tmp_path / "out"
    assert main(["run", str(folder / "run.toml"), "-o", str(out), "--quiet", "--no-vtx"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    desc = summary["problem"]["process"]
    assert desc == Tabulated.from_scheduler_config(SCHEDULES["linear"]).describe()
    # P1, h = 0.3, 20 clock steps: L2 error 2.97e-3 at T against the exact mixture
    assert summary["exact_solution"] and summary["error_at_report_time"]["t"] == 1.0
    assert summary["error_at_report_time"]["L2"] < 4e-3, summary["error_at_report_time"]
    raw = {**summary["config"], "process": desc}  # the recorded table as the config's process
    assert validate(raw).process().describe() == desc


def test_train_config_finds_its_scheduler_config_next_to_it(tmp_path, monkeypatch):
    """A train config's relative ``scheduler_config`` is read next to the config, not in the
    working directory (as the PDE side's configs do)."""
    import json

    from bridgesolve.learn.config import load_train_config

    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDPMScheduler", **SCHEDULES["linear"]}))
    (folder / "train.toml").write_text(
        '[data]\ntype = "mixture1d"\n\n[process]\ntype = "Tabulated"\n'
        'scheduler_config = "scheduler_config.json"\n\n[train]\nsteps = 10\n')
    monkeypatch.chdir(tmp_path)  # the JSON is not in the working directory
    process = load_train_config(folder / "train.toml").process()
    expected = Tabulated.from_scheduler_config(SCHEDULES["linear"])
    assert process.describe() == expected.describe()
