"""``dynlearn plan MODEL``: model-predictive control with a saved model, evaluated in the real task.

MODEL is a model folder (:func:`dynlearn.models.save`), a run folder holding one in ``model/`` (``dynlearn model train``,
``dynlearn train pets``) or a cached ensemble. The planner (CEM, MPPI or random shooting) plans every step with the
model and acts in the task for ``--episodes`` episodes; the run folder gets ``config.json`` and ``results.json`` (the
episodes' returns, their mean and normalised score).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from ..errors import ConfigError, DataError
from ..results import RunFolder, SeedScore, make_results
from ..tasks.evaluate import evaluate
from ..tasks.registry import get as get_task
from .cem import CEMConfig
from .mpc import MPC, ObjectiveConfig, PlannerPolicy
from .mppi import MPPIConfig
from .shooting import RandomShootingConfig


@dataclasses.dataclass(frozen=True)
class PlanJob:
    """dynlearn plan: model-predictive control with a saved model (CEM, MPPI or random shooting), evaluated in the task."""

    model: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="MODEL")]
    """a model folder, a run folder with model/ (`dynlearn model train`, `dynlearn train pets`) or a cached ensemble"""
    task: str | None = None
    """the task to act in (default: the task the model was fitted for)"""
    planner: Literal["cem", "mppi", "shooting"] = "cem"
    """cem (PETS' optimiser, with iCEM's --noise-beta), mppi, or shooting (random shooting)"""
    horizon: int = 15
    """planning horizon (steps)"""
    population: int = 200
    """candidate sequences per iteration (CEM), samples (MPPI, random shooting)"""
    elites: int = 20
    """CEM: best candidates the distribution is refitted to"""
    iterations: int = 5
    """CEM: refits per step; MPPI: weighted updates per step"""
    temperature: float = 1.0
    """MPPI: lambda in softmax(return / lambda)"""
    noise_beta: float = 0.0
    """CEM, MPPI: colored-noise exponent along time (iCEM; 0 = white noise)"""
    objective: ObjectiveConfig = ObjectiveConfig()
    """how candidate sequences are scored in the model"""
    episodes: int = 5
    """episodes in the task"""
    seed: int = 0
    """seed of the episodes' resets and the planner's sampling"""
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/plan")
    """run folder"""
    force: bool = False
    """replace an existing run folder in --out"""

    def __post_init__(self):
        for name in ("horizon", "population", "elites", "iterations", "episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PlanJob.{name} must be >= 1, got {getattr(self, name)}.")

    def planner_config(self):
        if self.planner == "cem":
            return CEMConfig(horizon=self.horizon, population=self.population, elites=self.elites, iterations=self.iterations,
                             noise_beta=self.noise_beta)
        if self.planner == "mppi":
            return MPPIConfig(horizon=self.horizon, samples=self.population, iterations=self.iterations,
                              temperature=self.temperature, noise_beta=self.noise_beta)
        return RandomShootingConfig(horizon=self.horizon, samples=self.population)


def _model_folder(path: Path) -> Path:
    for folder in (path, path / "model"):
        if (folder / "config.json").is_file() and (folder / "leaves.eqx").is_file():
            return folder
    raise DataError(str(path), "holds no saved model (config.json and leaves.eqx, here or in model/).",
                    "pass a model folder, or the run folder of `dynlearn model train` or `dynlearn train pets`.")


def run_plan(job: PlanJob, log=print) -> dict:
    """Plan with the model in the task for ``job.episodes`` episodes; write and return the results."""
    from ..checkpoint import read_header
    from ..models import load

    start = time.perf_counter()
    folder = _model_folder(job.model)
    fitted_for = (read_header(folder).get("config") or {}).get("task")
    task_id = job.task or fitted_for
    if task_id is None:
        raise ConfigError(f"{folder}: the model records no task. Fix: pass --task.")
    task = get_task(task_id)
    model = load(folder, task=task if fitted_for is not None else None)
    if fitted_for is None:
        model = model.with_task(task)
    planner = job.planner_config()
    run = RunFolder.open(job.out, {"command": "plan", "model": str(folder), "task": task.id, "job": dataclasses.asdict(job)},
                         force=job.force)
    try:
        mpc = MPC(model, planner, low=task.act_low, high=task.act_high, objective=job.objective)
        result = evaluate(PlannerPolicy(mpc), task, job.episodes, key=job.seed, num_envs=1)
        normalized = result.normalized_mean
        score = SeedScore(seed=job.seed, return_mean=result.mean, return_std=result.std, normalized=normalized,
                          episodes=int(result.returns.size))
        results = make_results(method=f"mpc-{job.planner}", task=task.id, dataset=None,
                               budget={"steps": int(result.lengths.sum()), "seeds": 1, "episodes": job.episodes,
                                       "horizon": job.horizon, "population": job.population},
                               seed_scores=[score], wall_time_s=time.perf_counter() - start,
                               steps_per_s=float(result.lengths.sum()) / max(time.perf_counter() - start, 1e-9),
                               extra={"returns": result.returns.tolist(), "lengths": result.lengths.tolist(),
                                      "planner": dataclasses.asdict(planner)})
        run.write_results(results)
    finally:
        run.close()
    norm = "" if normalized is None else f" (normalized {normalized:.1f})"
    log(f"MPC ({job.planner}, horizon {job.horizon}) with {folder} in {task.id}: return {result.mean:.1f} ± "
        f"{result.std:.1f}{norm} over {job.episodes} episodes; {np.round(result.returns, 1).tolist()}")
    return results
