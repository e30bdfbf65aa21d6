"""Offline training of any agent on a fixed dataset (BC, TD3+BC, IQL, SAC-N/EDAC, CQL, ...).

The dataset goes to the device once; gradient steps run in ``lax.scan`` blocks of ``block`` steps; the host
evaluates, logs and checkpoints between blocks. Seeds run one after another, or with ``parallel_seeds=True``
(``--parallel-seeds``) together: every seed's state stacked on a leading axis and one ``vmap``-ed block updating
them all. That is meant for accelerators, where one seed's small networks leave the device mostly idle (not measured
here: no GPU was available); on one CPU core it is no faster than running them in turn (speed-up 0.91-0.99x, and
1.32x for SAC with two threads, on a busy machine: ``benchmarks/agents_speed.py``, ``benchmarks/README.md``). Both
ways write the same run folder (one ``seed_K`` folder per seed, so either can resume the other's run) and, every key
being derived from ``(seed, step)``, train the same seeds up to float rounding. A run killed and resumed from its
checkpoint ends with the same parameters as one that was not.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import agents, interrupt
from ..agents.base import AgentSpec, stack_states, state_of
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
                  force: bool = False, until: int | None = None, parallel_seeds: bool = False,
                  log: Callable[[str], None] = print) -> Path:
    """Train ``cfg.seeds`` seeds of ``cfg.agent`` on ``dataset``; write the run folder ``out``.

    ``resume=True`` continues every seed from its checkpoint (the config must match). ``until`` stops each
    seed after that many steps without finishing, as a kill would (tests of resumption use it).
    ``parallel_seeds``: train all seeds at once in one ``vmap``-ed program (module docstring); how the seeds run is not
    part of the run's config.
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
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    with interrupt.graceful_stop():  # SIGTERM / Ctrl-C: checkpoint after the current block and raise Stopped
        if parallel_seeds:
            outcomes = _train_seeds_together(agent, agent_cfg, spec, data, norm, task, cfg, seeds, out, until, log)
        else:
            outcomes = (_train_seed(agent, agent_cfg, spec, data, norm, task, cfg, seed, out / f"seed_{seed}", until, log)
                        for seed in seeds)
        for seed, result in zip(seeds, outcomes):
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
    from ..report import data_mean_return, learning_curve

    learning_curve(out / "learning_curve.png", curves, title=f"{cfg.agent} on {dataset.name}", ylabel="evaluation return",
                   references={"data (mean episode return)": data_mean_return(dataset)})
    m = results["scores"]
    log(f"{cfg.agent} on {dataset.name}: {m['metric']} {m['mean']:.1f} ± {m['std']:.1f} over {cfg.seeds} seed(s), final policies")
    return out


def _seed_keys(seed: int):
    """``(init_key, update_key, eval_key)`` of a seed: the same whichever way the seeds run."""
    return jax.random.split(jax.random.key(seed), 3)


def read_seed_checkpoint(folder: Path, steps: int):
    """``(checkpoint folder, progress, final score or None)`` of a seed's run folder, or None when it has no checkpoint;
    the final score only when the seed has done all ``steps``."""
    saved = latest_dir(folder / "checkpoint")
    if saved is None or not (saved / "progress.json").is_file():
        return None
    progress = json.loads((saved / "progress.json").read_text())
    done = progress["step"] >= steps and (folder / "final.json").is_file()
    return saved, progress, SeedScore(**json.loads((folder / "final.json").read_text())) if done else None


def _restore(agent, cfg: OfflineConfig, folder: Path):
    """``(progress, state, finished)`` from a seed's checkpoint, or None when it has none."""
    found = read_seed_checkpoint(folder, cfg.steps)
    if found is None:
        return None
    saved, progress, final = found
    finished = None if final is None else (final, progress["evals"], progress.get("train_s", 0.0))
    return progress, agent.load(saved / "agent"), finished


def _evaluate(agent, state, norm, task, cfg: OfflineConfig, progress: dict, seed: int, step: int, eval_key, info, log) -> None:
    r = evaluate(normalized_policy(agent, state, norm), task, cfg.eval_episodes, key=jax.random.fold_in(eval_key, step))
    info = {k: float(v) for k, v in info.items()}
    progress["evals"].append({"step": step, "return_mean": r.mean, "return_std": r.std, "normalized": r.normalized_mean, "info": info})
    norm_txt = f" normalized {r.normalized_mean:6.1f}" if r.normalized_mean is not None else ""
    log(f"seed {seed} step {step:>8,}  return {r.mean:8.1f} ± {r.std:6.1f}{norm_txt}")


def _train_seed(agent, agent_cfg, spec, data, norm, task, cfg: OfflineConfig, seed: int, folder: Path, until, log):
    init_key, update_key, eval_key = _seed_keys(seed)
    restored = _restore(agent, cfg, folder)
    if restored is not None:
        progress, state, finished = restored
        if finished is not None:
            return finished
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
            _evaluate(agent, state, norm, task, cfg, progress, seed, step, eval_key, info, log)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _write_checkpoint(folder, agent, state, progress)
            saved = step
    if progress["step"] < cfg.steps:
        return None
    score = write_final_score(folder, seed, progress["evals"][-1], cfg.eval_episodes)
    return score, progress["evals"], progress["train_s"]


def _train_seeds_together(agent, agent_cfg, spec, data, norm, task, cfg: OfflineConfig, seeds, out: Path, until, log):
    """Every seed of the run in one ``vmap``-ed program; returns what :func:`_train_seed` returns, per seed."""
    folders = [out / f"seed_{seed}" for seed in seeds]
    keys = [_seed_keys(seed) for seed in seeds]
    restored = [_restore(agent, cfg, folder) for folder in folders]
    if all(r is None for r in restored):
        progresses = [{"step": 0, "evals": [], "train_s": 0.0} for _ in seeds]
        state = eqx.filter_vmap(agent.init, in_axes=(0, None, None))(jnp.stack([k[0] for k in keys]), spec, agent_cfg)
    else:
        require_same_step([None if r is None else r[0]["step"] for r in restored], out)
        if all(r[2] is not None for r in restored):
            return [r[2] for r in restored]
        progresses = [r[0] for r in restored]
        state = stack_states([r[1] for r in restored])
    update_keys = jnp.stack([k[1] for k in keys])
    block = eqx.filter_jit(eqx.filter_vmap(lambda st, key, d: agent.update_block(st, d, key=key, steps=cfg.block),
                                           in_axes=(0, 0, None)))
    stop = cfg.steps if until is None else min(cfg.steps, until)
    step = saved = progresses[0]["step"]
    while step < stop:
        if interrupt.requested():  # SIGTERM / Ctrl-C: keep every finished block
            if step != saved:
                for i, folder in enumerate(folders):
                    _write_checkpoint(folder, agent, state_of(state, i), progresses[i])
            raise interrupt.Stopped(out, step)
        t0 = time.perf_counter()
        state, info = block(state, jax.vmap(jax.random.fold_in, in_axes=(0, None))(update_keys, step), data)
        jax.block_until_ready(state)
        share = (time.perf_counter() - t0) / len(folders)  # each seed's part of the wall time
        step += cfg.block
        for i, (seed, progress) in enumerate(zip(seeds, progresses)):
            progress["train_s"] = progress.get("train_s", 0.0) + share
            progress["step"] = step
            if step % cfg.eval_every == 0 or step == cfg.steps:
                _evaluate(agent, state_of(state, i), norm, task, cfg, progress, seed, step, keys[i][2], state_of(info, i), log)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _write_checkpoint(folders[i], agent, state_of(state, i), progress)
                saved = step
    if step < cfg.steps:
        return [None for _ in seeds]
    return [(write_final_score(folder, seed, progress["evals"][-1], cfg.eval_episodes), progress["evals"], progress["train_s"])
            for seed, folder, progress in zip(seeds, folders, progresses)]


def require_same_step(steps: list, out: Path) -> None:
    """Seeds continue together only from checkpoints of one step (None: a seed without one)."""
    if len(set(steps)) != 1:
        raise ConfigError(f"{out}: the seeds' checkpoints are at different steps ({sorted(map(str, set(steps)))}), so they "
                          "cannot continue together. Fix: resume without --parallel-seeds (seeds one after another).")


def _write_checkpoint(folder: Path, agent, state, progress: dict) -> None:
    with atomic_dir(folder / "checkpoint") as new:
        agent.save(new / "agent", state)
        write_json(new / "progress.json", progress)
