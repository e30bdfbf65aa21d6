"""HyperCRL: continual model-based RL with a hypernetwork dynamics model, and its baselines on the same loop.

Huang, Xie, Bharadhwaj and Shkurti 2021, "Continual Model-Based Reinforcement Learning with Hypernetworks" (ICRA 2021,
arXiv 2009.11997; reference code ``rvl-lab-utoronto/HyperCRL``). Tasks come one after another, each the same
Gymnasium task with changed physics. For each task ``t``: ``initial_steps`` uniformly random actions, then CEM-MPC on
the dynamics network the hypernetwork generates for ``t`` (:mod:`dynlearn.models.hypernet`), the hypernetwork trained
on task ``t``'s data every ``train_every`` real steps and at the task's end (``train_iters`` Adam steps per fit; the
optimisers and the regulariser's targets made afresh when the task starts, as the reference's ``augment_model``); then
the return of MPC on every task seen so far, each with its own generated network. Forgetting of task ``j`` = its
return right after it was learned minus its return after the last task.

``method``, all on the same hypernetwork so that only the continual-learning rule differs:

- ``hypercrl``: the output regulariser (``model.beta``, 0.05), the current task's data only;
- ``finetune``: beta 0, the current task's data only (the earlier tasks' generated weights drift freely);
- ``multitask``: beta 0, every earlier task's data replayed, a minibatch per earlier task at every step, the earlier
  embeddings trained too (the reference's ``hnet_mt``);
- ``coreset``: beta 0, ``coreset_size`` random transitions of each earlier task kept and replayed the same way.

The reference's own baselines are an MLP with one output head per task (``hypercrl/model/mbrl.py``); ours keep its
data rules (coreset of 50 for Pendulum, multitask replay) on the hypernetwork instead.

``sequence``: ``pendulum-mass`` (default): Pendulum-v1 with the pole's mass x1, x0.3, x2. Pendulum-v1's mass scales
only the torque's effect, ``3 / (m l^2)``: at x0.3 the motor can lift the pole straight up, at x1 and x2 it must swing
it up (x2 with half the push), so a model of one task plans the wrong motion on another and forgetting shows in the
return; a 200-step episode and a 3-dim state keep a run CPU-sized. ``pendulum-gravity``: the reference's Pendulum
sequence, gravity 10, 12, 14, 16, 18 (milder changes). ``inverted-pendulum``: InvertedPendulum-v5 with the pole x1,
x4 as heavy and the motor reversed (gear x-1). Each change scales the default value of a physics parameter.

Settings follow the reference's Pendulum defaults (``default_arg_pendulum`` with ``add_hnet_hparams``): 400 random
steps, a fit of 1000 steps of batch 20 every 400 steps, target network 32-32, hypernetwork 16-16. Differences: CEM
(horizon 15, population 200, 20 elites, 5 iterations) instead of its MPPI for Pendulum; 2,000 steps per task by default
instead of 10,400 (:meth:`HyperCRLConfig.preset` ``"reference"`` restores the budget and the gravity sequence).

Resumable like :mod:`dynlearn.algos.pets`: one block of :func:`dynlearn.training.run` = one episode (the task's last
one also fits, stores the coreset and evaluates); every draw derives from ``(seed, episode, ...)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tyro

from ..errors import ConfigError
from ..models.hypernet import HyperDynamics, HyperNetConfig, Replay, init_optimizer, train_task
from ..planning import MPC, CEMConfig, ObjectiveConfig, PlannerPolicy
from ..progress import ProgressLine
from ..results import RunFolder, SeedScore, make_results
from ..tasks.registry import get as get_task
from ..training import Checkpoint, Schedule, WallClock, fingerprint, run

METHODS = ("hypercrl", "finetune", "multitask", "coreset")
SEQUENCES: dict[str, tuple[str, tuple[dict[str, float], ...]]] = {
    "pendulum-mass": ("Pendulum-v1", ({}, {"m": 0.3}, {"m": 2.0})),
    "pendulum-gravity": ("Pendulum-v1", tuple({"g": 1.0 + 0.2 * i} for i in range(5))),
    "inverted-pendulum": ("InvertedPendulum-v5", ({}, {"mass.pole": 4.0}, {"gear": -1.0})),
}
_EXPECTATION = ObjectiveConfig(propagation="expectation", particles=1)


@dataclasses.dataclass(frozen=True)
class HyperCRLConfig:
    """``dynlearn train hypercrl``: continual model-based RL over a sequence of tasks with changed physics."""

    method: str = "hypercrl"
    """hypercrl (output regulariser), finetune (beta 0), multitask (all earlier data replayed), coreset (a sample replayed)"""
    sequence: str = "pendulum-mass"
    """task sequence: pendulum-mass, pendulum-gravity or inverted-pendulum"""
    tasks: int | None = None
    """learn only the sequence's first this many tasks (default all)"""
    steps_per_task: int = 2_000
    """real environment steps per task, the random ones included"""
    initial_steps: int = 400
    """uniformly random actions at the start of each task"""
    train_every: int = 400
    """fit the hypernetwork every this many real steps of a task (and at its end)"""
    train_iters: int = 1_000
    """Adam steps per fit"""
    coreset_size: int = 50
    """transitions kept of each finished task (method coreset)"""
    eval_episodes: int = 3
    """episodes per task per evaluation"""
    seed: int = 0
    """seed of everything: resets, random actions, the model, fits, planning"""
    model: HyperNetConfig = HyperNetConfig(batch_size=20)
    """the hypernetwork and its training (beta is used by method hypercrl only)"""
    planner: CEMConfig = CEMConfig(horizon=15, population=200, elites=20, iterations=5, alpha=0.1)
    """the CEM planner over the generated network (deterministic: the expected next state)"""

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"HyperCRLConfig.method must be one of {METHODS}, got {self.method!r}.")
        if self.sequence not in SEQUENCES:
            raise ConfigError(f"HyperCRLConfig.sequence must be one of {sorted(SEQUENCES)}, got {self.sequence!r}.")
        if self.tasks is not None and not 1 <= self.tasks <= len(SEQUENCES[self.sequence][1]):
            raise ConfigError(f"HyperCRLConfig.tasks must be between 1 and {len(SEQUENCES[self.sequence][1])}, got {self.tasks}.")
        for name in ("steps_per_task", "initial_steps", "train_every", "train_iters", "coreset_size", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"HyperCRLConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.initial_steps >= self.steps_per_task or self.coreset_size > self.steps_per_task:
            raise ConfigError(f"HyperCRLConfig: initial_steps ({self.initial_steps}) must be below steps_per_task "
                              f"({self.steps_per_task}), and coreset_size ({self.coreset_size}) at most that.")

    @property
    def variants(self) -> tuple[dict[str, float], ...]:
        changes = SEQUENCES[self.sequence][1]
        return changes if self.tasks is None else changes[: self.tasks]

    @property
    def fit_config(self) -> HyperNetConfig:
        return self.model if self.method == "hypercrl" else dataclasses.replace(self.model, beta=0.0)

    @classmethod
    def preset(cls, name: str, **changes) -> "HyperCRLConfig":
        """``"cpu"``: the default; ``"reference"``: the reference's Pendulum run (gravity sequence, 400 + 10,000 steps per
        task, 5 evaluation episodes)."""
        if name == "cpu":
            return cls(**changes)
        if name == "reference":
            return cls(**({"sequence": "pendulum-gravity", "steps_per_task": 10_400, "eval_episodes": 5} | changes))
        raise ConfigError(f"HyperCRLConfig.preset: unknown preset {name!r}; known: 'cpu', 'reference'.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_env(task, changes: dict[str, float]):
    """``task``'s environment with each physics parameter in ``changes`` scaled: Pendulum-v1's ``g``, ``m``, ``l``
    (any attribute of the unwrapped env), or MuJoCo's ``gravity``, ``gear`` (every actuator) and ``mass.<body>`` (the
    body's mass and inertia together)."""
    env = task.make()
    u = env.unwrapped
    for name, factor in changes.items():
        if name == "gravity":
            u.model.opt.gravity[:] *= factor
        elif name == "gear":
            u.model.actuator_gear[:, 0] *= factor
        elif name.startswith("mass."):
            body = u.model.body(name[5:]).id
            u.model.body_mass[body] *= factor
            u.model.body_inertia[body] *= factor
        elif isinstance(getattr(u, name, None), (int, float)):
            setattr(u, name, getattr(u, name) * factor)
        else:
            env.close()
            raise ConfigError(f"make_env: {task.id} has no physics parameter {name!r}.")
    return env


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _empty(cfg: HyperCRLConfig, task) -> dict:
    tasks, s, i, o = len(cfg.variants), cfg.steps_per_task, task.obs_dim + task.act_dim, task.obs_dim
    model = HyperDynamics.init(cfg.model, task.obs_dim, task.act_dim, tasks, key=jax.random.key(cfg.seed))
    p = model.net.all_weights().shape[1]
    return {"model": model, "opt": init_optimizer(model, cfg.model), "targets": jnp.zeros((tasks, p), jnp.float32),
            "x": jnp.zeros((tasks, s, i), jnp.float32), "y": jnp.zeros((tasks, s, o), jnp.float32),
            "coreset": jnp.zeros((tasks, cfg.coreset_size), jnp.int32)}


def _replay(cfg: HyperCRLConfig, state: dict, t: int) -> Replay | None:
    earlier = (np.arange(len(cfg.variants)) < t).astype(np.int32)
    if cfg.method == "multitask":
        return Replay(state["x"], state["y"], jnp.asarray(earlier * cfg.steps_per_task))
    if cfg.method == "coreset":
        take = lambda a: a[jnp.arange(a.shape[0])[:, None], state["coreset"]]  # noqa: E731
        return Replay(take(state["x"]), take(state["y"]), jnp.asarray(earlier * cfg.coreset_size))
    return None


def _fit(cfg: HyperCRLConfig, state: dict, t: int, x: np.ndarray, y: np.ndarray, rows: int, fits: int) -> tuple[dict, dict]:
    model = state["model"].with_normalizer(t, x[:rows], y[:rows])
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1_000 + fits)
    model, opt, info = train_task(model, state["opt"], t, jnp.asarray(x), jnp.asarray(y), cfg=cfg.fit_config, steps=cfg.train_iters,
                                  key=key, rows=rows, targets=state["targets"], replay=_replay(cfg, state, t))
    return state | {"model": model, "opt": opt}, info


def _policy(cfg: HyperCRLConfig, model: HyperDynamics, t: int, task) -> PlannerPolicy:
    target = model.target(t, reward_fn=task.reward_fn, termination_fn=task.termination_fn)
    return PlannerPolicy(MPC(target, cfg.planner, low=task.act_low, high=task.act_high, objective=_EXPECTATION))


def evaluate(cfg: HyperCRLConfig, model: HyperDynamics, t: int, j: int, task) -> float:
    """Mean return of MPC on task ``j``'s generated network in task ``j``, after learning task ``t``; the episodes of
    task ``j`` start from the same states at every evaluation."""
    env, policy, returns = make_env(task, cfg.variants[j]), _policy(cfg, model, j, task), []
    try:
        for e in range(cfg.eval_episodes):
            rng = np.random.default_rng(_seed(cfg.seed, 3, t, j, e))
            obs, done, ret = np.asarray(env.reset(seed=_seed(cfg.seed, 4, j, e))[0], np.float32), False, 0.0
            policy.reset()
            while not done:
                obs, rew, terminated, truncated, _ = env.step(policy(obs[None], rng)[0])
                obs, ret, done = np.asarray(obs, np.float32), ret + float(rew), bool(terminated or truncated)
            returns.append(ret)
    finally:
        env.close()
    return float(np.mean(returns))


def train_hypercrl(cfg: HyperCRLConfig, out: str | Path, *, resume: bool = False, force: bool = False, until: int | None = None,
                   log=print) -> dict:
    """Run ``cfg`` into the run folder ``out`` (config.json, results.json, metrics.jsonl, the final hypernetwork as
    ``model.eqx``, the checkpoint while it runs); returns the results ({} when stopped at ``until`` real steps)."""
    clock = WallClock()
    task = get_task(SEQUENCES[cfg.sequence][0])
    if task.reward_fn is None:
        raise ConfigError(f"HyperCRL plans with the task's reward function; {task.id} has none.")
    n_tasks, s = len(cfg.variants), cfg.steps_per_task
    run_folder = RunFolder.open(out, {"method": _name(cfg), "config": cfg.to_dict()}, resume=resume, force=force)
    out = run_folder.path
    ckpt = Checkpoint(out / "checkpoint", fingerprint(run_folder.config["config"]), owner="hypercrl")
    loaded = ckpt.load(lambda progress: _empty(cfg, task)) if resume else None
    state, progress = loaded if loaded is not None else (_empty(cfg, task), {})
    for k, v in (("episode", 0), ("started", -1), ("fitted_at", -1), ("fits", []), ("episodes", []), ("returns", [])):
        progress.setdefault(k, v)
    low, high = np.asarray(task.act_low, np.float32), np.asarray(task.act_high, np.float32)
    envs: dict[int, object] = {}

    def episode(state, progress):
        step, ep = progress["step"], progress["episode"]
        t, local = divmod(step, s)
        if progress["started"] < t:  # the task's first block: its optimisers and the regulariser's targets
            state = state | {"targets": state["model"].net.all_weights(), "opt": init_optimizer(state["model"], cfg.model)}
            progress["started"] = t
        if t not in envs:
            for old in envs.values():
                old.close()
            envs.clear()
            envs[t] = make_env(task, cfg.variants[t])
        env, rng = envs[t], np.random.default_rng(_seed(cfg.seed, ep))
        obs = np.asarray(env.reset(seed=_seed(cfg.seed, ep, 1))[0], np.float32)
        x, y = np.array(state["x"][t]), np.array(state["y"][t])
        policy, planned, ret, length, done = None, local >= cfg.initial_steps, 0.0, 0, False
        while not done and local < s:
            if local >= cfg.initial_steps and (local - cfg.initial_steps) % cfg.train_every == 0 and progress["fitted_at"] != step:
                state, policy = _fitted(state, progress, t, x, y, local, step), None
            if local >= cfg.initial_steps and policy is None:
                policy = _policy(cfg, state["model"], t, task)
            act = rng.uniform(low, high).astype(np.float32) if local < cfg.initial_steps else policy(obs[None], rng)[0]
            nxt, rew, terminated, truncated, _ = env.step(act)
            nxt = np.asarray(nxt, np.float32)
            x[local], y[local] = np.concatenate([obs, act]), nxt - obs
            ret, length, local, step, obs = ret + float(rew), length + 1, local + 1, step + 1, nxt
            done = bool(terminated or truncated)
        state = state | {"x": state["x"].at[t].set(x), "y": state["y"].at[t].set(y)}
        row = {"task": t, "episode": ep, "return": ret, "length": length, "planned": float(planned)}
        if local == s:  # the task's end: a last fit on all its data, its coreset, and the evaluation on every task so far
            if progress["fitted_at"] != step:
                state = _fitted(state, progress, t, x, y, s, step)
            keep = np.random.default_rng(_seed(cfg.seed, 2, t)).choice(s, cfg.coreset_size, replace=False)
            state = state | {"coreset": state["coreset"].at[t].set(jnp.asarray(keep, jnp.int32))}
            returns = [evaluate(cfg, state["model"], t, j, task) for j in range(t + 1)]
            progress["returns"].append(returns)
            row |= {f"eval/task{j}": r for j, r in enumerate(returns)}
        progress["step"], progress["episode"] = step, ep + 1
        progress["episodes"].append([t, ret, length, bool(planned), done])
        return state, row

    def _fitted(state, progress, t, x, y, rows, step):
        state, info = _fit(cfg, state, t, x, y, rows, len(progress["fits"]))
        progress["fits"].append([t, step, info["loss"], info["regularizer"]])
        progress["fitted_at"] = step
        return state

    line = ProgressLine(True, f"HyperCRL {cfg.method} {cfg.sequence}", n_tasks * s)
    describe = lambda p, row: f"task {row['task']}  episode {row['episode']}  return {row['return']:.1f}"  # noqa: E731
    try:
        state, progress, done = run(episode, state, progress, schedule=Schedule(block=None, total=n_tasks * s, until=until),
                                    clock=clock, checkpoint=ckpt, line=line, describe=describe, metrics=out / "metrics.jsonl")
    except BaseException:
        run_folder.close()
        raise
    finally:
        for env in envs.values():
            env.close()
    if not done:
        run_folder.close()
        return {}
    results = _results(cfg, task, progress)
    eqx.tree_serialise_leaves(out / "model.eqx", state["model"])
    run_folder.write_results(results)
    ckpt.remove()
    run_folder.close()
    extra = results["extra"]
    log(f"HyperCRL {cfg.method} {cfg.sequence}: mean return over the {n_tasks} tasks {extra['final_mean_return']:.1f}, "
        f"mean forgetting {extra['mean_forgetting']:.1f}")
    return results


def _name(cfg: HyperCRLConfig) -> str:
    return "hypercrl" if cfg.method == "hypercrl" else f"hypercrl-{cfg.method}"


def forgetting(returns: list[list[float]]) -> list[float]:
    """Per task but the last: its return right after it was learned minus its return after the last task."""
    return [returns[j][j] - returns[-1][j] for j in range(len(returns) - 1)]


def _results(cfg: HyperCRLConfig, task, progress: dict) -> dict:
    returns, n_tasks = progress["returns"], len(cfg.variants)
    final = np.asarray(returns[-1], np.float64)
    lost = forgetting(returns)
    score = SeedScore(seed=cfg.seed, return_mean=float(final.mean()), return_std=float(final.std()), normalized=None,
                      episodes=cfg.eval_episodes * n_tasks)
    budget = {"steps": n_tasks * cfg.steps_per_task, "env_steps": n_tasks * cfg.steps_per_task, "seeds": 1, "tasks": n_tasks,
              "steps_per_task": cfg.steps_per_task, "initial_steps": cfg.initial_steps}
    return make_results(method=_name(cfg), task=task.id, dataset=None, budget=budget, seed_scores=[score],
                        wall_time_s=progress["wall_s"], steps_per_s=budget["steps"] / max(progress["train_s"], 1e-9),
                        extra={"sequence": cfg.sequence, "variants": list(cfg.variants), "returns_after_task": returns,
                               "forgetting": lost, "mean_forgetting": float(np.mean(lost)) if lost else 0.0,
                               "final_mean_return": float(final.mean()),
                               "fits": [{"task": f[0], "step": f[1], "loss": f[2], "regularizer": f[3]} for f in progress["fits"]],
                               "episodes": [{"task": e[0], "return": e[1], "length": e[2], "planned": e[3], "ended": e[4]}
                                            for e in progress["episodes"]],
                               "score": "mean over the tasks of MPC's return on each after the last task (normalized: none, "
                                        "the physics differ from the task's reference)"})


@dataclasses.dataclass(frozen=True)
class HyperCRLJob:
    """dynlearn train hypercrl: HyperCRL (or a baseline: --method) over a sequence of tasks with changed physics; writes a
    run folder with results.json (every task's return after each task, the forgetting), metrics.jsonl and the model."""

    config: Annotated[HyperCRLConfig, tyro.conf.arg(name="")] = HyperCRLConfig()
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/hypercrl")
    """run folder"""
    resume: bool = False
    """continue a stopped run in --out"""
    force: bool = False
    """replace an existing run folder in --out"""


def run_job(job: HyperCRLJob) -> None:
    train_hypercrl(job.config, job.out, resume=job.resume, force=job.force)
