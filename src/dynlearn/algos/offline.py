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
import time
from pathlib import Path
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import agents, interrupt
from ..agents.base import AgentSpec, state_of
from ..checkpoint import write_json
from ..data.dataset import Dataset
from ..data.normalize import Normalizer
from ..errors import ConfigError
from ..results import RunFolder, dataset_record, make_results
from ..tasks.evaluate import evaluate
from ..tasks.policy import JaxPolicy
from ..training import WallClock, run
from ..training.run_folder import SeedFolders, seed_schedule


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
    part of the run's config. Each seed's blocks run in :func:`dynlearn.training.run`; its folder ``seed_K`` holds its
    checkpoint, ``metrics.jsonl``, ``final.json`` and the final agent (``agent/``).
    """
    started = time.perf_counter()
    out = Path(out)
    agent = agents.get(cfg.agent)
    agent_cfg = agent_config or agent.Config()
    config = {"offline": dataclasses.asdict(cfg), "agent": dataclasses.asdict(agent_cfg), "task": task.id,
              "dataset": dataset_record(dataset)}
    config = RunFolder.open(out, config, resume=resume, force=force, seeds_key="offline.seeds").config  # as the run knows it

    data, norm, reward_scale = prepare(dataset, cfg)
    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    scores, curves, seconds, wall = [], {}, 0.0, 0.0
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    trainer = _Run(agent, agent_cfg, spec, data, norm, task, cfg, config, until, log, started)
    with interrupt.graceful_stop():  # SIGTERM / Ctrl-C: checkpoint after the current block and raise Stopped
        outcomes = (trainer.seeds_together(seeds, out) if parallel_seeds
                    else (trainer.seed(seed, out) for seed in seeds))
        for seed, result in zip(seeds, outcomes):
            if result is None:
                return out
            score, progress = result
            scores.append(score)
            seconds += progress["train_s"]
            wall += progress["wall_s"]
            curves[f"seed {seed}"] = [(e["step"], e["return_mean"], e["return_std"]) for e in progress["evals"]]
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


class _Run:
    """What every seed of one offline run shares; :meth:`seed` trains one, :meth:`seeds_together` all at once."""

    def __init__(self, agent, agent_cfg, spec, data, norm, task, cfg: OfflineConfig, config: dict, until, log, started: float):
        self.agent, self.agent_cfg, self.spec, self.data, self.norm, self.task = agent, agent_cfg, spec, data, norm, task
        self.cfg, self.config, self.until, self.log = cfg, config, until, log
        self.mark = started  # where the next seed's clock starts: the call's set-up counts for the first seed it trains

    def _evaluate(self, state, step: int, evals: list, seed: int, eval_key, info: dict) -> dict:
        """Evaluate the seed's policy at ``step``, append it to its ``evals`` and log it; the scores for the metrics row."""
        r = evaluate(normalized_policy(self.agent, state, self.norm), self.task, self.cfg.eval_episodes,
                     key=jax.random.fold_in(eval_key, step))
        evals.append({"step": step, "return_mean": r.mean, "return_std": r.std, "normalized": r.normalized_mean, "info": info})
        norm_txt = f" normalized {r.normalized_mean:6.1f}" if r.normalized_mean is not None else ""
        self.log(f"seed {seed} step {step:>8,}  return {r.mean:8.1f} ± {r.std:6.1f}{norm_txt}")
        return {"eval/return_mean": r.mean, "eval/return_std": r.std, "eval/normalized": r.normalized_mean}

    def seed(self, seed: int, out: Path):
        """Train one seed; ``(score, progress)``, or None when stopped at ``until``."""
        agent, cfg = self.agent, self.cfg
        init_key, update_key, eval_key = _seed_keys(seed)
        folders = SeedFolders(out, [seed], self.config, cfg.steps)
        finished = folders.finished()
        if finished is not None:
            return finished[0]
        fresh = agent.init(init_key, self.spec, self.agent_cfg)
        state, progress = folders.stores[0].load(lambda _: fresh) or (fresh, {"evals": []})
        last = {}

        def block(state, progress):
            state, info = agent.update_block(state, self.data, key=jax.random.fold_in(update_key, progress["step"]),
                                             steps=cfg.block)
            last["info"] = {k: float(v) for k, v in jax.device_get(info).items()}  # the one host sync per block
            return state, last["info"]

        state, progress, done = run(block, state, progress, schedule=seed_schedule(cfg, cfg.block, self.until),
                                    clock=WallClock(since=self.mark), checkpoint=folders.stores[0], metrics=folders.metrics()[0],
                                    evaluate=lambda state, p: self._evaluate(state, p["step"], p["evals"], seed, eval_key, last["info"]))
        self.mark = time.perf_counter()
        return folders.finish(0, agent, state, progress, cfg.eval_episodes) if done else None

    def seeds_together(self, seeds, out: Path):
        """Every seed of the run in one ``vmap``-ed program; returns what :meth:`seed` returns, per seed."""
        agent, cfg, n = self.agent, self.cfg, len(seeds)
        keys = [_seed_keys(seed) for seed in seeds]
        folders = SeedFolders(out, seeds, self.config, cfg.steps)
        finished = folders.finished()
        if finished is not None:
            return finished
        fresh = eqx.filter_vmap(agent.init, in_axes=(0, None, None))(jnp.stack([k[0] for k in keys]), self.spec, self.agent_cfg)
        checkpoints = folders.checkpoints()
        state, progress = checkpoints.load(lambda _: state_of(fresh, 0)) or (fresh, {"seeds": [{"evals": []} for _ in seeds]})
        update_keys = jnp.stack([k[1] for k in keys])
        vblock = eqx.filter_jit(eqx.filter_vmap(lambda st, key, d: agent.update_block(st, d, key=key, steps=cfg.block),
                                                in_axes=(0, 0, None)))
        last = {}

        def block(state, progress):
            state, info = vblock(state, jax.vmap(jax.random.fold_in, in_axes=(0, None))(update_keys, progress["step"]), self.data)
            info = jax.device_get(info)
            last["rows"] = [{k: float(v[i]) for k, v in info.items()} for i in range(n)]
            return state, last["rows"]

        def evaluate_all(state, progress):
            return [self._evaluate(state_of(state, i), progress["step"], p["evals"], seed, keys[i][2], last["rows"][i])
                    for i, (seed, p) in enumerate(zip(seeds, progress["seeds"]))]

        state, progress, done = run(block, state, progress, schedule=seed_schedule(cfg, cfg.block, self.until),
                                    clock=WallClock(since=self.mark), checkpoint=checkpoints, evaluate=evaluate_all,
                                    metrics=folders.metrics())
        self.mark = time.perf_counter()
        return folders.finish_together(agent, state, progress, cfg.eval_episodes) if done else [None for _ in seeds]
