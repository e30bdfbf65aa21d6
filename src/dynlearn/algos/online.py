"""Online off-policy training of an agent in a task (SAC by default): the behaviour-policy trainer.

The host steps one environment with the current policy; every ``update_every`` environment steps the new
transitions go to a device-resident replay buffer in one transfer and the agent takes ``update_every``
gradient steps in one ``lax.scan`` (an update-to-data ratio of 1, applied in blocks: the policy acting
in the environment is at most ``update_every`` steps stale).

Reproducible and resumable: episode ``i`` is reset with a seed derived from ``(seed, i)``, the warm-up's
random actions and every JAX key are derived from ``(seed, step)``, and a checkpoint (agent state, replay
buffer, pending block, counters, evaluation history) is written atomically at the first episode end after
every ``checkpoint_every`` steps. A run killed and resumed therefore ends with the same parameters as one
that was not. Policy snapshots are kept every ``snapshot_every`` steps (the benchmark suite draws its
medium and medium-replay behaviour policies from them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from .. import agents, interrupt
from ..agents.base import AgentSpec, UniformSampler
from ..checkpoint import atomic_dir, latest_dir, write_json
from ..data.buffer import ReplayBuffer
from ..data.transitions import Transitions
from ..errors import ConfigError, DataError
from ..results import RunFolder, SeedScore, make_results
from ..tasks.evaluate import evaluate
from ..tasks.policy import JaxPolicy
from ..tasks.registry import get as get_task


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


@dataclasses.dataclass
class _Progress:
    """Host-side counters and history; saved as JSON in the checkpoint."""

    step: int = 0
    episode: int = 0
    episode_return: float = 0.0
    last_checkpoint: int = 0
    train_returns: list = dataclasses.field(default_factory=list)  # [step, return] per finished episode
    evals: list = dataclasses.field(default_factory=list)  # {"step", "return_mean", "return_std", "normalized", ...}
    snapshots: list = dataclasses.field(default_factory=list)  # {"step", "path", "return_mean", "normalized"}
    wall_s: float = 0.0


class _Checkpoint:
    """``out/checkpoint/``: agent/, buffer.npz, pending.npz, progress.json, replaced atomically as a folder."""

    def __init__(self, out: Path):
        self.path = out / "checkpoint"

    def exists(self) -> bool:
        saved = latest_dir(self.path)
        return saved is not None and (saved / "progress.json").is_file()

    def write(self, agent, state, buffer: ReplayBuffer, pending: dict, progress: _Progress) -> None:
        with atomic_dir(self.path) as new:
            agent.save(new / "agent", state)
            rows = buffer.filled()
            np.savez(new / "buffer.npz", capacity=buffer.capacity, **{f: getattr(rows, f) for f in _FIELDS})
            np.savez(new / "pending.npz", **{k: np.asarray(v) for k, v in pending.items()})
            write_json(new / "progress.json", dataclasses.asdict(progress))

    def read(self, agent):
        folder = latest_dir(self.path)
        state = agent.load(folder / "agent")
        with np.load(folder / "buffer.npz") as z:
            rows = Transitions(**{f: z[f] for f in _FIELDS})
            buffer = ReplayBuffer.from_rows(rows, int(z["capacity"]))
        with np.load(folder / "pending.npz") as z:
            pending = {k: list(z[k]) for k in z.files}
        progress = _Progress(**json.loads((folder / "progress.json").read_text()))
        return state, buffer, pending, progress


_FIELDS = ("obs", "act", "rew", "next_obs", "terminal", "timeout", "next_obs_valid")


def _empty_pending() -> dict:
    return {f: [] for f in _FIELDS}


def train_online(cfg: OnlineConfig, out: str | Path, *, resume: bool = False, force: bool = False,
                 until: int | None = None, log: Callable[[str], None] = print, agent_config=None) -> Path:
    """Train ``cfg.agent`` online in ``cfg.task``; write a run folder at ``out``.

    ``resume=True`` continues from ``out/checkpoint`` (the config must match). ``until`` stops after that
    many steps without finishing the run, as a kill would (used by tests of resumption).
    Returns the run folder.
    """
    out = Path(out)
    task = get_task(cfg.task)
    agent = agents.get(cfg.agent)
    agent_cfg = agent_config or agent.Config()
    ckpt = _Checkpoint(out)
    config = {"online": dataclasses.asdict(cfg), "agent": dataclasses.asdict(agent_cfg)}
    if resume and not ckpt.exists():
        raise DataError(str(out), "has no checkpoint to resume from.", "start a new run without --resume.")
    RunFolder.open(out, config, resume=resume, force=force)

    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    root = jax.random.key(cfg.seed)
    init_key, act_key, update_key, eval_key = jax.random.split(root, 4)
    if resume:
        state, buffer, pending, progress = ckpt.read(agent)
        log(f"resuming {out} at step {progress.step:,} (episode {progress.episode})")
    else:
        state = agent.init(init_key, spec, agent_cfg)
        buffer = ReplayBuffer.empty(min(cfg.buffer_size, cfg.steps), task.obs_dim, task.act_dim)
        pending, progress = _empty_pending(), _Progress()

    def policy_of(state):
        return JaxPolicy(lambda obs, *, key: agent.act(state, obs, key=key, deterministic=True))

    # One compiled call per environment step: the key is derived inside, from the step index.
    act_step = jax.jit(lambda state, obs, t: agent.act(state, obs, key=jax.random.fold_in(act_key, t)))

    env = task.make()
    low, high = np.asarray(task.act_low, np.float32), np.asarray(task.act_high, np.float32)
    obs = np.asarray(env.reset(seed=_episode_seed(cfg.seed, progress.episode))[0], np.float32)
    started = time.perf_counter() - progress.wall_s
    stop = min(cfg.steps, until) if until is not None else cfg.steps
    with interrupt.graceful_stop(), contextlib.closing(env):
        while progress.step < stop:
            t = progress.step
            if t < cfg.start_steps:
                action = np.random.default_rng([cfg.seed, t]).uniform(low, high).astype(np.float32)
            else:
                action = np.asarray(act_step(state, obs, t), np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            next_obs = np.asarray(next_obs, np.float32)
            for f, v in zip(_FIELDS, (obs, action, reward, next_obs, terminated, truncated, True)):
                pending[f].append(v)
            progress.episode_return += float(reward)
            progress.step = t = t + 1
            if t % cfg.update_every == 0:
                block = Transitions(**{f: np.asarray(pending[f], _DTYPES[f]) for f in _FIELDS})
                buffer = buffer.add(block)
                pending = _empty_pending()
                if t > cfg.start_steps:
                    sampler = UniformSampler(buffer.data, agent_cfg.batch_size, buffer.size)
                    state, _ = agent.update_block(state, sampler, key=jax.random.fold_in(update_key, t), steps=cfg.update_every)
                if t % cfg.eval_every == 0:
                    _evaluate(progress, task, policy_of(state), cfg, jax.random.fold_in(eval_key, t), started, log)
                if cfg.snapshot_every and t % cfg.snapshot_every == 0:
                    _snapshot(out, agent, state, progress, t)
            if terminated or truncated:
                progress.train_returns.append([t, progress.episode_return])
                progress.episode += 1
                progress.episode_return = 0.0
                next_obs = np.asarray(env.reset(seed=_episode_seed(cfg.seed, progress.episode))[0], np.float32)
                if t - progress.last_checkpoint >= cfg.checkpoint_every or interrupt.requested():
                    progress.last_checkpoint = t
                    progress.wall_s = time.perf_counter() - started
                    ckpt.write(agent, state, buffer, pending, progress)
                    if interrupt.requested():  # SIGTERM / Ctrl-C: stopped at this episode's end, checkpointed
                        raise interrupt.Stopped(out, t)
            obs = next_obs
    if progress.step < cfg.steps:
        return out
    progress.wall_s = time.perf_counter() - started
    ckpt.write(agent, state, buffer, pending, progress)
    agent.save(out / "final", state)
    final = evaluate(policy_of(state), task, cfg.eval_episodes, key=jax.random.fold_in(eval_key, cfg.steps + 1))
    _write_run(out, cfg, task, progress, final)
    return out


_DTYPES = {"obs": np.float32, "act": np.float32, "rew": np.float32, "next_obs": np.float32, "terminal": bool,
           "timeout": bool, "next_obs_valid": bool}


def _evaluate(progress: _Progress, task, policy, cfg: OnlineConfig, key, started: float, log) -> None:
    r = evaluate(policy, task, cfg.eval_episodes, key=key)
    entry = {"step": progress.step, "return_mean": r.mean, "return_std": r.std, "normalized": r.normalized_mean,
             "wall_s": time.perf_counter() - started}
    progress.evals.append(entry)
    norm = f"  normalized {r.normalized_mean:6.1f}" if r.normalized_mean is not None else ""
    log(f"step {progress.step:>9,}  return {r.mean:9.1f} ± {r.std:7.1f}{norm}  ({entry['wall_s']:.0f} s)")


def _snapshot(out: Path, agent, state, progress: _Progress, step: int) -> None:
    path = out / "snapshots" / f"step_{step:08d}"
    agent.save(path, state)
    last = progress.evals[-1] if progress.evals and progress.evals[-1]["step"] == step else None
    progress.snapshots.append({"step": step, "path": str(path.relative_to(out)),
                               "return_mean": None if last is None else last["return_mean"],
                               "normalized": None if last is None else last["normalized"]})


def _write_run(out: Path, cfg: OnlineConfig, task, progress: _Progress, final) -> None:
    from ..report import learning_curve

    write_json(out / "evals.json", {"evals": progress.evals, "train_returns": progress.train_returns, "snapshots": progress.snapshots})
    score = SeedScore(seed=cfg.seed, return_mean=final.mean, return_std=final.std, normalized=final.normalized_mean,
                      episodes=cfg.eval_episodes)
    results = make_results(method=f"{cfg.agent}-online", task=task.id, dataset=None, budget={"steps": cfg.steps, "seeds": 1},
                           seed_scores=[score], wall_time_s=progress.wall_s, steps_per_s=cfg.steps / max(progress.wall_s, 1e-9),
                           extra={"final_eval": final.to_dict()})
    write_json(out / "results.json", results)
    learning_curve(out / "learning_curve.png", [(e["step"], e["return_mean"], e["return_std"]) for e in progress.evals],
                   title=f"{cfg.agent.upper()} online, {task.id}, seed {cfg.seed}", ylabel="evaluation return")
