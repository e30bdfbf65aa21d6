"""``dynlearn navigation fit`` and ``dynlearn navigation plan``: the 2-D navigation task's learned forward model with a
failure head, fitted and saved, then planned over by MPPI.

``fit`` collects transitions of the noisy goal-seeking behaviour policy (:mod:`dynlearn.tasks.navigation_data`) on
random maps, fits a :class:`~dynlearn.models.failure.FailureModel` (checkpointed; ``--resume`` continues a stopped
fit) and writes a run folder: ``model/`` (:func:`~dynlearn.models.failure.save_failure_model`), ``results.json``
(the held-out quality: motion RMSE, the failure head's AUC and accuracy), ``metrics.jsonl`` (the fit's losses).

``plan`` plays ``--episodes`` solvable maps with MPPI over a saved model (or, with ``--true-model``, over the exact
dynamics and collision check) and writes ``results.json``: the success, collision and time-out rates and the steps to
the goal. An episode's return is 1 when the robot reaches the goal and 0 otherwise, so the mean return is the success
rate. ``--ignore-failure`` plans without the failure term (the comparison ``benchmarks/planning.md`` reports).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Annotated

import jax
import tyro

from ..errors import ConfigError
from ..models.failure import FailureFitConfig, FailureModelConfig, fit_failure_model, load_failure_model, save_failure_model
from ..results import RunFolder, SeedScore, make_results
from ..tasks import navigation as nav
from ..tasks.navigation_data import CollectConfig, collect, failure_rate
from .failure_cost import FailureCostConfig, LearnedRollout, TrueRollout
from .mppi import MPPIConfig
from .navigation_mpc import run_navigation

__all__ = ["NavigationFit", "NavigationPlan", "navigation_fit", "navigation_plan"]


@dataclasses.dataclass(frozen=True)
class NavigationFit:
    """dynlearn navigation fit: collect navigation data with the noisy goal-seeking policy, fit a forward model with a
    failure head, save it in OUT/model."""

    robots: int = 256
    """robots simulated in parallel while collecting (rows = robots x steps)"""
    steps: int = 200
    """steps per robot"""
    holdout_robots: int = 64
    """robots of the held-out data (other maps, same steps), on which the fit is measured"""
    model: FailureModelConfig = FailureModelConfig()
    """the network: local patch size and spacing, trunk widths"""
    fit: FailureFitConfig = FailureFitConfig()
    """Adam steps, batch size, learning rate, the failure loss's weight"""
    task: nav.NavigationConfig = nav.NavigationConfig()
    """the navigation task (arena, obstacles, robot dynamics, perception)"""
    seed: int = 0
    """seed of the data, the initialisation and the minibatches"""
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/navigation-model")
    """run folder"""
    resume: bool = False
    """continue a stopped fit in --out"""
    force: bool = False
    """replace an existing run folder in --out"""

    def __post_init__(self):
        for name in ("robots", "steps", "holdout_robots"):
            if getattr(self, name) < 1:
                raise ConfigError(f"NavigationFit.{name} must be >= 1, got {getattr(self, name)}.")


def _collect_config(job: NavigationFit, robots: int) -> CollectConfig:
    return CollectConfig(envs=robots, steps=job.steps, patch=job.model.patch, patch_cell=job.model.patch_cell)


def navigation_fit(job: NavigationFit, log=print) -> dict:
    """Collect, fit, save; returns the results written to ``job.out/results.json``."""
    start = time.perf_counter()
    run = RunFolder.open(job.out, {"command": "navigation fit", "job": dataclasses.asdict(job)}, resume=job.resume,
                         force=job.force)
    try:
        data_key, holdout_key, fit_key = jax.random.split(jax.random.key(job.seed), 3)
        data = collect(job.task, _collect_config(job, job.robots), key=data_key)
        holdout = collect(job.task, _collect_config(job, job.holdout_robots), key=holdout_key)
        log(f"collected {len(data):,} transitions ({failure_rate(data):.1%} collisions) and {len(holdout):,} held out")
        model, report = fit_failure_model(data, job.task, job.model, job.fit, key=fit_key, holdout=holdout,
                                          checkpoint=run.path / "checkpoint", metrics=run.path / "metrics.jsonl")
        save_failure_model(run.path / "model", model, job.task)
        shutil.rmtree(run.path / "checkpoint", ignore_errors=True)  # the fit is done: nothing left to resume
        held = report["holdout"]
        results = make_results(method="failure-model-fit", task="navigation", dataset=None,
                               budget={"steps": job.fit.steps, "seeds": 0, "rows": len(data), "fit_seed": job.seed,
                                       "note": "a model fit: no policy is trained, so there are no policy seeds or scores"},
                               seed_scores=[], wall_time_s=time.perf_counter() - start,
                               steps_per_s=job.fit.steps / max(report["fit_s"], 1e-9),
                               extra={"holdout": held, "failure_rate": report["failure_rate"],
                                      "holdout_rows": len(holdout)})
        run.write_results(results)
    finally:
        run.close()
    log(f"saved {run.path / 'model'}: held out, failure AUC {held['failure/auc']:.4f}, accuracy "
        f"{held['failure/accuracy']:.4f} (base rate {held['failure/base_rate']:.3f}), dx RMSE {held['rmse/dx']:.4f}")
    return results


@dataclasses.dataclass(frozen=True)
class NavigationPlan:
    """dynlearn navigation plan: MPPI with a saved navigation model (or the true one) on solvable maps; success,
    collision and time-out rates."""

    model: Annotated[Path | None, tyro.conf.Positional, tyro.conf.arg(metavar="MODEL")] = None
    """the run folder of `dynlearn navigation fit` (or its model/); omit with --true-model"""
    true_model: bool = False
    """plan over the exact dynamics and collision check instead of a learned model"""
    ignore_failure: bool = False
    """plan without the failure term (the probability of a collision, or the true collision check)"""
    failure_cost: float = 10.0
    """cost of a failure, weighed against progress to the goal (units of distance)"""
    episodes: int = 100
    """maps played (solvable ones: a flood fill shows the goal is reachable)"""
    mppi: MPPIConfig = MPPIConfig(horizon=15, samples=128, temperature=0.1, noise_beta=2.0)
    """the planner (one MPPI update per control step, warm-started from the shifted plan)"""
    seed: int = 0
    """seed of MPPI's sampling"""
    scene_seed: int = 10_000
    """seed of the maps (benchmarks/planning.md uses 10,000)"""
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/navigation-plan")
    """run folder"""
    force: bool = False
    """replace an existing run folder in --out"""

    def __post_init__(self):
        if (self.model is None) != self.true_model:
            raise ConfigError("dynlearn navigation plan: pass either MODEL (a folder of `dynlearn navigation fit`) or "
                              "--true-model, not both and not neither.")
        if self.episodes < 1:
            raise ConfigError(f"NavigationPlan.episodes must be >= 1, got {self.episodes}.")
        if not self.failure_cost >= 0:
            raise ConfigError(f"NavigationPlan.failure_cost must be >= 0, got {self.failure_cost}.")


def navigation_plan(job: NavigationPlan, log=print) -> dict:
    """Play the maps; returns the results written to ``job.out/results.json``."""
    start = time.perf_counter()
    if job.true_model:
        task = nav.NavigationConfig()
        rollout, what = TrueRollout(nav=task), "the true model"
    else:
        model, task = load_failure_model(job.model)
        rollout, what = LearnedRollout(model=model, nav=task), str(job.model)
    cost = FailureCostConfig(failure_cost=job.failure_cost, use_failure=not job.ignore_failure)
    run = RunFolder.open(job.out, {"command": "navigation plan", "job": dataclasses.asdict(job)}, force=job.force)
    try:
        scenes = nav.scenes(task, job.episodes, key=jax.random.key(job.scene_seed))
        out = run_navigation(rollout, scenes, job.mppi, cost, key=jax.random.key(job.seed)).summary()
        wall = time.perf_counter() - start
        score = SeedScore(seed=job.seed, return_mean=out["success"],
                          return_std=float((out["success"] * (1 - out["success"])) ** 0.5), normalized=None,
                          episodes=out["episodes"])
        results = make_results(method="mppi-navigation", task="navigation", dataset=None,
                               budget={"steps": job.episodes * task.time_limit, "seeds": 1, "episodes": job.episodes},
                               seed_scores=[score], wall_time_s=wall, steps_per_s=None,
                               extra={"outcomes": out, "model": what, "failure_term": not job.ignore_failure,
                                      "mppi": dataclasses.asdict(job.mppi), "scene_seed": job.scene_seed})
        run.write_results(results)
    finally:
        run.close()
    log(f"MPPI over {what}{'' if cost.use_failure else ', failure ignored'}, {job.episodes} maps: success "
        f"{out['success']:.2f}, collision {out['collision']:.2f}, time-out {out['timeout']:.2f}, steps to goal "
        f"{out['steps_to_goal']:.1f} ({wall:.0f} s)")
    return results
