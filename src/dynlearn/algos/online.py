"""Online off-policy training of an agent in a task (SAC by default): the behaviour-policy trainer.

The host steps one environment with the current policy; every ``update_every`` environment steps the new
transitions go to a device-resident replay buffer in one transfer and the agent takes ``update_every``
gradient steps in one ``lax.scan`` (an update-to-data ratio of 1, applied in blocks: the policy acting
in the environment is at most ``update_every`` steps stale).

Reproducible and resumable: episode ``i`` is reset with a seed derived from ``(seed, i)``, the warm-up's
random actions and every JAX key are derived from ``(seed, step)``, and a checkpoint (agent state, replay
buffer, pending block, counters, evaluation history) is written atomically by :func:`dynlearn.training.run` at the
first episode end after every multiple of ``checkpoint_every`` steps. A run killed and resumed therefore ends with
the same parameters as one that was not. Policy snapshots are kept every ``snapshot_every`` steps (the benchmark
suite draws its medium and medium-replay behaviour policies from them).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from .. import agents
from ..agents.base import AgentSpec, UniformSampler
from ..checkpoint import write_json
from ..data.buffer import ReplayBuffer
from ..data.transitions import Transitions
from ..errors import ConfigError, DataError
from ..results import RunFolder, SeedScore, make_results
from ..tasks.evaluate import evaluate as evaluate_policy
from ..tasks.policy import JaxPolicy
from ..tasks.registry import get as get_task
from ..training import Checkpoint, Schedule, WallClock, fingerprint, run


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """``dynlearn train sac --online``: off-policy training by interacting with the task."""

    task: str = "Hopper-v5"
    """task id"""
    agent: str = "sac"
    """agent name (dynlearn.agents)"""
    steps: int = 500_000
    """environment steps (= gradient steps)"""
    seed: int = 0
    """seed of everything: resets, warm-up actions, network initialisation, sampling"""
    start_steps: int = 10_000
    """uniform-random actions for the first start_steps steps; gradient steps start after them"""
    update_every: int = 50
    """environment steps per update block (the block's gradient steps run in one lax.scan)"""
    buffer_size: int = 1_000_000
    """replay capacity (rows)"""
    eval_every: int = 10_000
    """evaluate the deterministic policy every this many steps"""
    eval_episodes: int = 10
    """episodes per evaluation"""
    snapshot_every: int = 10_000
    """keep a policy snapshot every this many steps (0: none)"""
    checkpoint_every: int = 25_000
    """write a resumable checkpoint at the first episode end after every this many steps"""

    def __post_init__(self):
        for name in ("steps", "update_every", "eval_every", "eval_episodes", "buffer_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"OnlineConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every % self.update_every or (self.snapshot_every and self.snapshot_every % self.update_every):
            raise ConfigError(f"eval_every ({self.eval_every}) and snapshot_every ({self.snapshot_every}) must be "
                              f"multiples of update_every ({self.update_every}).")


def _episode_seed(seed: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


_FIELDS = ("obs", "act", "rew", "next_obs", "terminal", "timeout", "next_obs_valid")


def _empty_pending() -> dict:
    return {f: [] for f in _FIELDS}


def train_online(cfg: OnlineConfig, out: str | Path, *, resume: bool = False, force: bool = False,
                 until: int | None = None, log: Callable[[str], None] = print, agent_config=None) -> Path:
    """Train ``cfg.agent`` online in ``cfg.task``; write a run folder at ``out``.

    ``resume=True`` continues from ``out/checkpoint`` (the config must match). ``until`` stops after that
    many steps without finishing the run, as a kill would (used by tests of resumption).
    Returns the run folder. The blocks (environment steps up to the next update or episode end) run in
    :func:`dynlearn.training.run`, which checkpoints only at episode ends (the simulator is not part of the state).
    """
    clock = WallClock()
    out = Path(out)
    task = get_task(cfg.task)
    agent = agents.get(cfg.agent)
    agent_cfg = agent_config or agent.Config()
    config = {"online": dataclasses.asdict(cfg), "agent": dataclasses.asdict(agent_cfg)}
    if resume and Checkpoint(out / "checkpoint", "").saved() is None:
        raise DataError(str(out), "has no checkpoint to resume from.", "start a new run without --resume.")
    config = RunFolder.open(out, config, resume=resume, force=force).config  # as the run knows it: its checkpoints' tag
    store = Checkpoint(out / "checkpoint", fingerprint(config), owner=str(out), other="another run (its config.json differs)",
                       where=out)

    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    root = jax.random.key(cfg.seed)
    init_key, act_key, update_key, eval_key = jax.random.split(root, 4)
    # state: the agent and the replay buffer; progress: counters, the rows since the last update (a checkpoint at an
    # episode end may fall inside an update block), training returns, evaluations and snapshots
    fresh = (agent.init(init_key, spec, agent_cfg), ReplayBuffer.empty(min(cfg.buffer_size, cfg.steps), task.obs_dim, task.act_dim))
    loaded = store.load(lambda _: fresh) if resume else None
    if loaded is not None:
        state, progress = loaded
        log(f"resuming {out} at step {progress['step']:,} (episode {progress['episode']})")
    else:
        state = fresh
        progress = {"episode": 0, "episode_return": 0.0, "episode_end": True, "pending": _empty_pending(),
                    "train_returns": [], "evals": [], "snapshots": []}

    def policy_of(agent_state):
        return JaxPolicy(lambda obs, *, key: agent.act(agent_state, obs, key=key, deterministic=True))

    # One compiled call per environment step: the key is derived inside, from the step index.
    act_step = jax.jit(lambda agent_state, obs, t: agent.act(agent_state, obs, key=jax.random.fold_in(act_key, t)))

    env = task.make()
    low, high = np.asarray(task.act_low, np.float32), np.asarray(task.act_high, np.float32)
    current = {"obs": np.asarray(env.reset(seed=_episode_seed(cfg.seed, progress["episode"]))[0], np.float32)}
    limit = cfg.steps if until is None else min(cfg.steps, until)

    def block(state, progress):
        """Environment steps up to the next update (then ``update_every`` gradient steps in one ``lax.scan``), an episode
        end or ``until``."""
        agent_state, buffer = state
        obs, pending, row = current["obs"], progress["pending"], {}
        while True:
            t = progress["step"]
            if t < cfg.start_steps:
                action = np.random.default_rng([cfg.seed, t]).uniform(low, high).astype(np.float32)
            else:
                action = np.asarray(act_step(agent_state, obs, t), np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            next_obs = np.asarray(next_obs, np.float32)
            for f, v in zip(_FIELDS, (obs, action, reward, next_obs, terminated, truncated, True)):
                pending[f].append(v)
            progress["episode_return"] += float(reward)
            progress["step"] = t = t + 1
            updated = t % cfg.update_every == 0
            if updated:
                buffer = buffer.add(Transitions(**{f: np.asarray(pending[f], _DTYPES[f]) for f in _FIELDS}))
                pending = _empty_pending()
                if t > cfg.start_steps:
                    sampler = UniformSampler(buffer.data, agent_cfg.batch_size, buffer.size)
                    agent_state, info = agent.update_block(agent_state, sampler, key=jax.random.fold_in(update_key, t),
                                                           steps=cfg.update_every)
                    row = {k: float(v) for k, v in jax.device_get(info).items()}
            progress["episode_end"] = bool(terminated or truncated)
            if progress["episode_end"]:
                progress["train_returns"].append([t, progress["episode_return"]])
                row["train/episode_return"] = progress["episode_return"]
                progress["episode"] += 1
                progress["episode_return"] = 0.0
                next_obs = np.asarray(env.reset(seed=_episode_seed(cfg.seed, progress["episode"]))[0], np.float32)
            obs = next_obs
            if updated or progress["episode_end"] or t >= limit:
                break
        current["obs"], progress["pending"] = obs, _json_rows(pending)
        return (agent_state, buffer), row

    def evaluate(state, progress):
        t, scores = progress["step"], {}
        if t % cfg.eval_every == 0:
            r = evaluate_policy(policy_of(state[0]), task, cfg.eval_episodes, key=jax.random.fold_in(eval_key, t))
            progress["evals"].append({"step": t, "return_mean": r.mean, "return_std": r.std, "normalized": r.normalized_mean,
                                      "wall_s": progress["wall_s"]})
            norm = f"  normalized {r.normalized_mean:6.1f}" if r.normalized_mean is not None else ""
            log(f"step {t:>9,}  return {r.mean:9.1f} ± {r.std:7.1f}{norm}  ({progress['wall_s']:.0f} s)")
            scores = {"eval/return_mean": r.mean, "eval/return_std": r.std, "eval/normalized": r.normalized_mean}
        if cfg.snapshot_every and t % cfg.snapshot_every == 0:
            _snapshot(out, agent, state[0], progress, t)
        return scores

    with contextlib.closing(env):
        state, progress, done = run(
            block, state, progress, clock=clock, checkpoint=store, evaluate=evaluate, metrics=out / "metrics.jsonl",
            can_stop=lambda p: p["episode_end"],
            schedule=Schedule(block=None, total=cfg.steps, until=until, eval_every=cfg.update_every,
                              checkpoint_every=cfg.checkpoint_every, checkpoint_at_end=True))
    if not done:
        return out
    agent.save(out / "final", state[0])
    final = evaluate_policy(policy_of(state[0]), task, cfg.eval_episodes, key=jax.random.fold_in(eval_key, cfg.steps + 1))
    _write_run(out, cfg, task, progress, final, clock.total())
    return out


def _json_rows(pending: dict) -> dict:
    """The pending rows as JSON-ready lists (float32 values survive the round trip exactly)."""
    return {f: [np.asarray(v).tolist() for v in rows] for f, rows in pending.items()}


_DTYPES = {"obs": np.float32, "act": np.float32, "rew": np.float32, "next_obs": np.float32, "terminal": bool,
           "timeout": bool, "next_obs_valid": bool}


def _snapshot(out: Path, agent, state, progress: dict, step: int) -> None:
    path = out / "snapshots" / f"step_{step:08d}"
    agent.save(path, state)
    last = progress["evals"][-1] if progress["evals"] and progress["evals"][-1]["step"] == step else None
    progress["snapshots"].append({"step": step, "path": str(path.relative_to(out)),
                               "return_mean": None if last is None else last["return_mean"],
                               "normalized": None if last is None else last["normalized"]})


def _write_run(out: Path, cfg: OnlineConfig, task, progress: dict, final, wall_s: float) -> None:
    from ..report import learning_curve

    write_json(out / "evals.json", {"evals": progress["evals"], "train_returns": progress["train_returns"],
                                    "snapshots": progress["snapshots"]})
    score = SeedScore(seed=cfg.seed, return_mean=final.mean, return_std=final.std, normalized=final.normalized_mean,
                      episodes=cfg.eval_episodes)
    results = make_results(method=f"{cfg.agent}-online", task=task.id, dataset=None, budget={"steps": cfg.steps, "seeds": 1},
                           seed_scores=[score], wall_time_s=wall_s, steps_per_s=cfg.steps / max(wall_s, 1e-9),
                           extra={"final_eval": final.to_dict()})
    write_json(out / "results.json", results)
    learning_curve(out / "learning_curve.png", [(e["step"], e["return_mean"], e["return_std"]) for e in progress["evals"]],
                   title=f"{cfg.agent.upper()} online, {task.id}, seed {cfg.seed}", ylabel="evaluation return")
