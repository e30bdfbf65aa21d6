"""Offline training of any agent on a fixed dataset (BC, TD3+BC, IQL, SAC-N/EDAC, CQL, ...).

The dataset goes to the device once; gradient steps run in ``lax.scan`` blocks of ``block`` steps; the host
evaluates, logs and checkpoints between blocks. Seeds run one after another (on a CPU, batching seeds with
``vmap`` costs as much as running them in turn). Every key is derived from ``(seed, step)``, so a run killed
and resumed from its checkpoint ends with the same parameters as one that was not.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from .. import agents, interrupt
from ..agents.base import AgentSpec
from ..checkpoint import atomic_dir, latest_dir, write_json
from ..data.dataset import Dataset
from ..data.normalize import Normalizer
from ..errors import ConfigError
from ..results import RunFolder, SeedScore, dataset_record, make_results, write_final_score
from ..tasks.evaluate import evaluate
from ..tasks.policy import JaxPolicy


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """``dynlearn train ALGO DATA``: train an agent on logged data, evaluate its final policy in the task."""

    agent: str = "td3bc"
    """agent name (dynlearn.agents)"""
    steps: int = 100_000
    """gradient steps per seed"""
    seeds: int = 3
    """number of seeds, run one after another (seed, seed+1, ...)"""
    seed: int = 0
    """first seed"""
    block: int = 1_000
    """gradient steps per compiled lax.scan block"""
    eval_every: int = 10_000
    """evaluate the policy every this many steps (a multiple of block)"""
    eval_episodes: int = 10
    """episodes per evaluation (the final policy gets the same number)"""
    checkpoint_every: int = 10_000
    """write a resumable checkpoint every this many steps (a multiple of block)"""
    normalize_obs: bool = True
    """standardise observations with the dataset's statistics (TD3+BC does; harmless for the others)"""
    reward_normalization: str = "auto"
    """none | iql (rewards * 1000 / (max - min episode return), as IQL does for locomotion) | auto (iql for IQL)"""

    def __post_init__(self):
        for name in ("steps", "seeds", "block", "eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"OfflineConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.steps % self.block or self.eval_every % self.block or self.checkpoint_every % self.block:
            raise ConfigError(f"steps ({self.steps}), eval_every ({self.eval_every}) and checkpoint_every "
                              f"({self.checkpoint_every}) must be multiples of block ({self.block}).")
        if self.reward_normalization not in ("none", "iql", "auto"):
            raise ConfigError(f"reward_normalization must be none, iql or auto, got {self.reward_normalization!r}")


def prepare(dataset: Dataset, cfg: OfflineConfig):
    """Device-ready transitions (normalised as configured), the observation normalizer and the reward scale."""
    t = dataset.transitions
    norm = Normalizer.fit(t.obs) if cfg.normalize_obs else Normalizer.identity(t.obs_dim)
    mode = cfg.reward_normalization
    if mode == "auto":
        mode = "iql" if cfg.agent.lower() == "iql" else "none"
    scale = 1.0
    if mode == "iql":
        returns = dataset.episode_returns()[dataset.episode_complete] if dataset.episode_complete.any() else dataset.episode_returns()
        spread = float(returns.max() - returns.min())
        scale = 1000.0 / spread if spread > 0 else 1.0
    data = type(t)(
        obs=np.asarray(norm(t.obs), np.float32), act=np.asarray(t.act, np.float32), rew=np.asarray(t.rew, np.float32) * np.float32(scale),
        next_obs=np.asarray(norm(t.next_obs), np.float32), terminal=np.asarray(t.terminal), timeout=np.asarray(t.timeout),
        next_obs_valid=np.asarray(t.next_obs_valid))
    # rows without a successor cannot be bootstrapped from unless they are terminal
    usable = np.asarray(t.next_obs_valid) | np.asarray(t.terminal)
    return data.take(np.flatnonzero(usable)).to_device(), norm, scale


def normalized_policy(agent, state, norm: Normalizer) -> JaxPolicy:
    """The deterministic policy acting on raw observations (normalised inside, compiled once)."""
    act = jax.jit(lambda state, obs, key: agent.act(state, norm(obs), key=key, deterministic=True))
    return JaxPolicy(lambda obs, *, key: act(state, obs, key))


def train_offline(dataset: Dataset, task, cfg: OfflineConfig, out: str | Path, *, agent_config=None, resume: bool = False,
                  force: bool = False, until: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Train ``cfg.seeds`` seeds of ``cfg.agent`` on ``dataset``; write the run folder ``out``.

    ``resume=True`` continues every seed from its checkpoint (the config must match). ``until`` stops each
    seed after that many steps without finishing, as a kill would (tests of resumption use it).
    """
    out = Path(out)
    agent = agents.get(cfg.agent)
    agent_cfg = agent_config or agent.Config()
    config = {"offline": dataclasses.asdict(cfg), "agent": dataclasses.asdict(agent_cfg), "task": task.id,
              "dataset": dataset_record(dataset)}
    RunFolder.open(out, config, resume=resume, force=force)

    data, norm, reward_scale = prepare(dataset, cfg)
    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    started = time.perf_counter()
    scores, curves, seconds = [], {}, 0.0
    with interrupt.graceful_stop():  # SIGTERM / Ctrl-C: checkpoint after the current block and raise Stopped
        for seed in range(cfg.seed, cfg.seed + cfg.seeds):
            result = _train_seed(agent, agent_cfg, spec, data, norm, task, cfg, seed, out / f"seed_{seed}", until, log)
            if result is None:
                return out
            score, evals, train_s = result
            scores.append(score)
            seconds += train_s
            curves[f"seed {seed}"] = [(e["step"], e["return_mean"], e["return_std"]) for e in evals]
    wall = time.perf_counter() - started
    results = make_results(method=cfg.agent, task=task.id, dataset=dataset_record(dataset),
                           budget={"steps": cfg.steps, "seeds": cfg.seeds, "eval_episodes": cfg.eval_episodes},
                           seed_scores=scores, wall_time_s=wall, steps_per_s=cfg.steps * cfg.seeds / max(seconds, 1e-9),
                           extra={"reward_scale": reward_scale, "normalize_obs": cfg.normalize_obs, "training_s": seconds})
    write_json(out / "results.json", results)
    np.savez(out / "normalizer.npz", mean=np.asarray(norm.mean), std=np.asarray(norm.std))
    from ..report import learning_curve

    learning_curve(out / "learning_curve.png", curves, title=f"{cfg.agent} on {dataset.name}", ylabel="evaluation return")
    m = results["scores"]
    log(f"{cfg.agent} on {dataset.name}: {m['metric']} {m['mean']:.1f} ± {m['std']:.1f} over {cfg.seeds} seed(s), final policies")
    return out


def _train_seed(agent, agent_cfg, spec, data, norm, task, cfg: OfflineConfig, seed: int, folder: Path, until, log):
    init_key, update_key, eval_key = jax.random.split(jax.random.key(seed), 3)
    saved = latest_dir(folder / "checkpoint")
    if saved is not None and (saved / "progress.json").is_file():
        progress = json.loads((saved / "progress.json").read_text())
        state = agent.load(saved / "agent")
        if progress["step"] >= cfg.steps and (folder / "final.json").is_file():
            final = json.loads((folder / "final.json").read_text())
            return SeedScore(**final), progress["evals"], progress.get("train_s", 0.0)
    else:
        progress = {"step": 0, "evals": [], "train_s": 0.0}
        state = agent.init(init_key, spec, agent_cfg)
    stop = cfg.steps if until is None else min(cfg.steps, until)
    saved = progress["step"]  # the step the checkpoint on disk holds
    while progress["step"] < stop:
        step = progress["step"]
        if interrupt.requested():  # SIGTERM / Ctrl-C: keep every finished block
            if step != saved:
                _write_checkpoint(folder, agent, state, progress)
            raise interrupt.Stopped(folder, step)
        t0 = time.perf_counter()
        state, info = agent.update_block(state, data, key=jax.random.fold_in(update_key, step), steps=cfg.block)
        jax.block_until_ready(state)
        progress["train_s"] = progress.get("train_s", 0.0) + time.perf_counter() - t0
        progress["step"] = step = step + cfg.block
        if step % cfg.eval_every == 0 or step == cfg.steps:
            r = evaluate(normalized_policy(agent, state, norm), task, cfg.eval_episodes, key=jax.random.fold_in(eval_key, step))
            info = {k: float(v) for k, v in info.items()}
            progress["evals"].append({"step": step, "return_mean": r.mean, "return_std": r.std, "normalized": r.normalized_mean, "info": info})
            norm_txt = f" normalized {r.normalized_mean:6.1f}" if r.normalized_mean is not None else ""
            log(f"seed {seed} step {step:>8,}  return {r.mean:8.1f} ± {r.std:6.1f}{norm_txt}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _write_checkpoint(folder, agent, state, progress)
            saved = step
    if progress["step"] < cfg.steps:
        return None
    score = write_final_score(folder, seed, progress["evals"][-1], cfg.eval_episodes)
    return score, progress["evals"], progress["train_s"]


def _write_checkpoint(folder: Path, agent, state, progress: dict) -> None:
    with atomic_dir(folder / "checkpoint") as new:
        agent.save(new / "agent", state)
        write_json(new / "progress.json", progress)
