"""PETS: probabilistic ensembles with trajectory sampling, online (Chua et al. 2018, arXiv 1805.12114).

The loop: act in the real task with model-predictive control (CEM over a probabilistic ensemble, TS-inf particles:
:mod:`dynlearn.planning`), keep every transition, and refit the ensemble on all data so far every ``train_every`` real
steps (the first fit after ``initial_steps`` uniformly random steps). The score of the method is the return of the
episodes the planner itself collects: PETS has no separate policy.

Settings follow mbrl-lib's PETS (Pineda et al. 2021, ``conf/algorithm/pets.yaml`` and
``conf/overrides/pets_inv_pendulum.yaml``): 20 particles, TS-inf, the refitted ensemble continued from its previous
weights with its normaliser refitted on all data, ``train_every`` 250, 31 epochs per fit (lr 1.43e-3, weight decay
3.3e-5, batch 256, 20% validation), CEM with 5 iterations, population 480, elite ratio 0.078, alpha 0.134, planning
horizon 45, the mean of the last elites executed; a first trial of random actions. :meth:`PETSConfig.preset`
``"mbrl-lib"`` is that; the default is a CPU budget of it (smaller population, horizon and network; stated in
``benchmarks/planning.md``), since one planned action of the reference settings is about 0.5 TFLOP.

Resumable: the state (ensemble, all transitions) is checkpointed at episode ends by :func:`dynlearn.training.run`
(one block = one episode); episode ``i`` is reset with a seed derived from ``(seed, i)`` and every random draw from
``(seed, episode, step)``, so a resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from ..data.dataset import from_arrays
from ..data.normalize import Normalizer
from ..errors import ConfigError
from ..models import EnsembleConfig, FitConfig, ProbabilisticEnsemble, fit, save
from ..planning import MPC, CEMConfig, ObjectiveConfig, PlannerPolicy
from ..progress import ProgressLine
from ..results import RunFolder, SeedScore, make_results
from ..tasks.registry import get as get_task
from ..training import Checkpoint, Schedule, WallClock, fingerprint, run

_FIELDS = ("obs", "act", "rew", "next_obs", "terminal", "timeout")


@dataclasses.dataclass(frozen=True)
class PETSConfig:
    """``dynlearn train pets``: model-predictive control over a refitted ensemble, online."""

    task: str = "InvertedPendulum-v5"
    """task id (its termination function ends imagined episodes)"""
    steps: int = 5_000
    """real environment steps in total, the random ones included"""
    initial_steps: int = 250
    """uniformly random actions before the first fit"""
    train_every: int = 250
    """refit the ensemble every this many real steps"""
    fit_epochs: int = 31
    """epochs per refit"""
    learned_reward: bool = False
    """plan with the ensemble's reward even where the task has a reward function"""
    seed: int = 0
    """seed of everything: resets, random actions, model initialisation and fits, planning"""
    model: EnsembleConfig = EnsembleConfig(members=7, elites=5, hidden=(200, 200, 200), weight_decay=(3.3e-5,) * 4)
    """the ensemble"""
    fitting: FitConfig = FitConfig(lr=1.43e-3, holdout="transitions", holdout_fraction=0.2, holdout_max_transitions=100_000,
                                   patience=50, progress=False)
    """how each refit trains (its max_epochs is fit_epochs)"""
    planner: CEMConfig = CEMConfig(horizon=15, population=100, elites=10, iterations=5, alpha=0.134)
    """the CEM planner"""
    objective: ObjectiveConfig = ObjectiveConfig(particles=20)
    """how candidate action sequences are scored in the ensemble"""

    def __post_init__(self):
        for name in ("steps", "initial_steps", "train_every", "fit_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PETSConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.initial_steps >= self.steps:
            raise ConfigError(f"PETSConfig: initial_steps ({self.initial_steps}) must be below steps ({self.steps}).")

    @classmethod
    def preset(cls, name: str, **changes) -> "PETSConfig":
        """``"mbrl-lib"``: the reference's InvertedPendulum settings (module docstring); ``"cpu"``: the default."""
        if name == "cpu":
            return cls(**changes)
        if name == "mbrl-lib":
            ref = dict(initial_steps=1_000, steps=20_000, learned_reward=True,
                       model=EnsembleConfig(members=7, elites=5, hidden=(200, 200, 200, 200), weight_decay=(3.3e-5,) * 5),
                       planner=CEMConfig(horizon=45, population=480, elites=37, iterations=5, alpha=0.134484))
            return cls(**(ref | changes))
        raise ConfigError(f"PETSConfig.preset: unknown preset {name!r}; known: 'cpu', 'mbrl-lib'.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class _ModelTask:
    """What the ensemble reads from the task: its termination function and (unless learned) its reward function."""

    def __init__(self, task, learned_reward: bool):
        self.id, self.obs_dim, self.act_dim = task.id, task.obs_dim, task.act_dim
        self.termination_fn = task.termination_fn
        self.reward_fn = None if learned_reward else task.reward_fn


def _empty(cfg: PETSConfig, task, key) -> dict:
    model = ProbabilisticEnsemble.init(cfg.model, task.obs_dim, task.act_dim, key=key)
    n, o, a = cfg.steps, task.obs_dim, task.act_dim
    data = {"obs": np.zeros((n, o), np.float32), "act": np.zeros((n, a), np.float32), "rew": np.zeros(n, np.float32),
            "next_obs": np.zeros((n, o), np.float32), "terminal": np.zeros(n, bool), "timeout": np.zeros(n, bool)}
    return {"model": model, "data": {k: jnp.asarray(v) for k, v in data.items()}}


def _refit(cfg: PETSConfig, model: ProbabilisticEnsemble, data: dict, rows: int, fits: int, task) -> ProbabilisticEnsemble:
    """Fit on the first ``rows`` transitions: a fresh ensemble the first time, else ``model`` continued with its input
    normaliser refitted on all the data."""
    d = {k: v[:rows] for k, v in data.items()}
    timeout = d["timeout"].copy()
    timeout[-1] = not d["terminal"][-1]  # the last row may end mid-episode: a truncation for the dataset
    dataset = from_arrays(obs=d["obs"], act=d["act"], rew=d["rew"], next_obs=d["next_obs"], terminal=d["terminal"],
                          timeout=timeout, name=f"pets-{task.id}")
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1_000 + fits)
    fit_cfg = dataclasses.replace(cfg.fitting, max_epochs=cfg.fit_epochs)
    if fits == 0:
        start = cfg.model
    else:
        x = np.concatenate([d["obs"], d["act"]], axis=1)
        start = dataclasses.replace(model, input_norm=Normalizer.fit(x))
    model, _ = fit(start, dataset, key=key, cfg=fit_cfg, task=_ModelTask(task, cfg.learned_reward))
    return model


def train_pets(cfg: PETSConfig, out: str | Path, *, resume: bool = False, force: bool = False, until: int | None = None,
               log=print) -> dict:
    """Run PETS into the run folder ``out`` (config.json, results.json, metrics.jsonl, the final ensemble in ``model/``,
    the checkpoint while it runs); returns the results ({} when stopped at ``until``)."""
    clock = WallClock()
    task = get_task(cfg.task)
    run_folder = RunFolder.open(out, {"method": "pets", "config": cfg.to_dict()}, resume=resume, force=force)
    out = run_folder.path
    ckpt = Checkpoint(out / "checkpoint", fingerprint(run_folder.config["config"]), owner="pets")
    loaded = ckpt.load(lambda progress: _empty(cfg, task, jax.random.key(cfg.seed))) if resume else None
    state, progress = loaded if loaded is not None else (_empty(cfg, task, jax.random.key(cfg.seed)), {})
    progress.setdefault("episode", 0)
    progress.setdefault("fits", 0)
    progress.setdefault("episodes", [])  # [end step, return, length, planned, ended (not cut by the step budget)]
    env = task.make()
    low, high = np.asarray(task.act_low, np.float32), np.asarray(task.act_high, np.float32)

    def episode(state, progress):
        step0, ep = progress["step"], progress["episode"]
        rng = np.random.default_rng(_seed(cfg.seed, ep))
        obs = np.asarray(env.reset(seed=_seed(cfg.seed, ep, 1))[0], np.float32)
        policy, planned = None, step0 >= cfg.initial_steps
        data = {k: np.array(v) for k, v in state["data"].items()}  # host copies, written row by row
        ret, length, step, done = 0.0, 0, step0, False
        while not done and step < cfg.steps:
            due = step >= cfg.initial_steps and (step - cfg.initial_steps) % cfg.train_every == 0
            if due and progress.get("fitted_at") != step:
                state = {"model": _refit(cfg, state["model"], data, step, progress["fits"], task), "data": state["data"]}
                progress["fits"] += 1
                progress["fitted_at"] = step
                policy = None
            if step >= cfg.initial_steps and policy is None:
                policy = PlannerPolicy(MPC(state["model"], cfg.planner, low=low, high=high, objective=cfg.objective))
            if step < cfg.initial_steps:
                act = rng.uniform(low, high).astype(np.float32)
            else:
                act = policy(obs[None], rng)[0]
            nxt, rew, terminated, truncated, _ = env.step(act)
            nxt = np.asarray(nxt, np.float32)
            for k, v in zip(_FIELDS, (obs, act, rew, nxt, terminated, truncated and not terminated)):
                data[k][step] = v
            ret, length, step = ret + float(rew), length + 1, step + 1
            done = bool(terminated or truncated)
            obs = nxt
        progress["step"], progress["episode"] = step, ep + 1
        progress["episodes"].append([step, ret, length, bool(planned), done])
        new_state = {"model": state["model"], "data": {k: jnp.asarray(v) for k, v in data.items()}}
        return new_state, {"episode": ep, "return": ret, "length": length, "planned": float(planned)}

    line = ProgressLine(True, f"PETS {task.id}", cfg.steps)
    describe = lambda p, row: f"step {p['step']:,}  episode {row['episode']}  return {row['return']:.1f}"  # noqa: E731
    try:
        state, progress, done = run(episode, state, progress, schedule=Schedule(block=None, total=cfg.steps, until=until),
                                    clock=clock, checkpoint=ckpt, line=line, describe=describe, metrics=out / "metrics.jsonl")
    except BaseException:
        run_folder.close()
        raise
    finally:
        env.close()
    if not done:
        run_folder.close()
        return {}
    planned = [e for e in progress["episodes"] if e[3] and e[4]]  # planned episodes that ended, none cut by the budget
    returns = np.asarray([e[1] for e in planned[-3:]] or [np.nan], np.float64)
    normalized = task.normalized_score(returns) if task.has_reference else None
    score = SeedScore(seed=cfg.seed, return_mean=float(returns.mean()), return_std=float(returns.std()),
                      normalized=None if normalized is None else float(np.mean(normalized)), episodes=int(returns.size))
    results = make_results(method="pets", task=task.id, dataset=None,
                           budget={"steps": cfg.steps, "env_steps": cfg.steps, "seeds": 1, "initial_steps": cfg.initial_steps},
                           seed_scores=[score], wall_time_s=progress["wall_s"], steps_per_s=cfg.steps / max(progress["train_s"], 1e-9),
                           extra={"episodes": [{"end_step": e[0], "return": e[1], "length": e[2], "planned": e[3], "ended": e[4]}
                                               for e in progress["episodes"]],
                                  "score": "mean return of the last 3 planned episodes that ended (not cut by the step budget)"})
    save(out / "model", state["model"])
    run_folder.write_results(results)
    ckpt.remove()
    run_folder.close()
    log(f"PETS {task.id}: last planned episodes' return {score.return_mean:.1f} after {cfg.steps:,} real steps")
    return results


@dataclasses.dataclass(frozen=True)
class PETSJob:
    """dynlearn train pets: PETS online in a task (model-predictive control over a refitted ensemble); writes a run
    folder with results.json (the planned episodes' returns), metrics.jsonl and the final ensemble."""

    config: Annotated[PETSConfig, tyro.conf.arg(name="")] = PETSConfig()
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/pets")
    """run folder"""
    resume: bool = False
    """continue a stopped run in --out"""
    force: bool = False
    """replace an existing run folder in --out"""


def run_job(job: PETSJob) -> None:
    train_pets(job.config, job.out, resume=job.resume, force=job.force)
