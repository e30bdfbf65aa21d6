"""The training loop every offline model-based method shares (MOPO, MOBILE, RAVL, ...).

One dynamics model per dataset (fitted once and cached: :func:`dynlearn.models.fitted`), then for each seed the
host alternates, every ``rollout_every`` agent steps:

1. **rollout**: ``rollout_batch`` start states drawn from the dataset, ``horizon`` model steps with the current
   policy (one compiled call, :func:`dynlearn.rollout.rollout`, with the method's hooks: MOPO's reward penalty);
   the valid rows go into a fixed-size device buffer that keeps ``retain_epochs`` rollouts;
2. **updates**: one ``lax.scan`` over ``rollout_every`` agent updates, each on a batch of ``real_ratio`` dataset rows
   and the rest model rows (with the method's ``target_adjust``: MOBILE's Bellman-inconsistency penalty);

and evaluates, logs and checkpoints between blocks. Every key is derived from ``(seed, step)`` and the checkpoint
holds the agent, the whole model buffer (arrays, size, cursor) and the progress, so a run killed and resumed ends
with the same parameters as one that was not.

A method is a frozen config, a subclass of :class:`dynlearn.algos.base.ModelBasedConfig` (``MOPOConfig``,
``MOBILEConfig``, ...), whose methods build its parts: ``agent()``, ``hooks()`` and ``target_adjust(model, agent,
n_real)``; the config is used as given (``MOPOConfig.preset("hopper-medium")`` for a paper's values). The run folder's
``config.json`` records it (:func:`dynlearn.algos.registry.load_config` reads it back).

The model is the learned ensemble, the true simulator (``model="oracle"``) or a saved model folder
(:mod:`dynlearn.algos.model_source`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import interrupt
from ..agents.base import AgentSpec, MixedSampler, stack_states, state_of
from ..checkpoint import write_json
from ..data.buffer import ReplayBuffer
from ..data.dataset import Dataset
from ..data.normalize import Normalizer
from ..data.transitions import Transitions
from ..errors import ConfigError, DataError
from ..results import RunFolder, dataset_record, make_results
from ..rollout import AgentPolicy, Rollout, RolloutHooks, add_valid, rollout
from ..tasks.evaluate import evaluate
from ..training import WallClock, run
from ..training.run_folder import SeedFolders, seed_schedule
from .base import FIT_OPTIONS, ModelBasedConfig, field_default
from .model_source import StartStates, build_model, real_rows
from .offline import normalized_policy
from .penalty_scale import describe as describe_penalty_scale
from .penalty_scale import penalty_on_data


# ----------------------------------------------------------------------------------------------
# Training


def train_model_based(dataset: Dataset, task, cfg: ModelBasedConfig, out: str | Path, *, model=None, agent_config=None,
                      resume: bool = False, force: bool = False, until: int | None = None, parallel_seeds: bool = False,
                      only_seed: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Train ``cfg.seeds`` seeds of the method ``cfg`` configures (any :class:`~dynlearn.algos.base.ModelBasedConfig`,
    used as given) on ``dataset``; write the run folder ``out``.

    ``model``: a ready model (e.g. fitted by the caller) instead of ``cfg.model``. ``agent_config``: replaces the
    method's agent config (same agent). ``resume=True`` continues every seed from its checkpoint (the config must
    match). ``until`` stops each seed after that many steps without finishing (checkpointed as usual), then trains the next
    seed the same way: tests use it as a kill; benchmarks use it to bring every seed to an intermediate budget first.
    ``parallel_seeds``: train every seed at once, states and model buffers stacked and each block's rollout and updates
    one ``vmap``-ed program each (:mod:`dynlearn.algos.offline` says when that pays); the same run folder, resumable
    either way; not with the oracle model (its simulator state lives on the host).
    ``only_seed``: train that one of the run's seeds and only read the others' results, so that each seed can train in
    its own process (one per CPU core: start one with ``resume=False``, the others with ``resume=True`` once its
    ``config.json`` exists; every seed has its own subfolder). The call that finds every seed finished writes the
    results.
    """
    out = Path(out)
    if not isinstance(cfg, ModelBasedConfig):
        raise ConfigError(f"train_model_based needs a method's config (MOPOConfig, MOBILEConfig, ...), got {type(cfg).__name__}. "
                          "Fix: pass e.g. dynlearn.algos.MOPOConfig.preset('hopper-medium').")
    if only_seed is not None and not cfg.seed <= only_seed < cfg.seed + cfg.seeds:
        raise ConfigError(f"only_seed={only_seed} is not one of this run's seeds ({cfg.seed}..{cfg.seed + cfg.seeds - 1}). "
                          "Fix: pick one of them.")
    if only_seed is not None and parallel_seeds:
        raise ConfigError("only_seed trains one seed; parallel_seeds trains them all together. Fix: choose one.")
    agent, agent_cfg = cfg.agent()
    if agent_config is not None:
        if not isinstance(agent_config, type(agent_cfg)):
            raise ConfigError(f"{cfg.name} trains {agent.NAME}: agent_config must be a {type(agent_cfg).__name__}, "
                              f"got {type(agent_config).__name__}.")
        agent_cfg = agent_config
    for name in FIT_OPTIONS:
        if model is not None and getattr(cfg, name) != field_default(type(cfg), name):
            raise ConfigError(f"{name} chooses how the learned ensemble is fitted, but a ready model was passed (model=...). "
                              f"Fix: drop {name}.")
    # Everything the user can get wrong is checked before the run folder is written (a refused run leaves no config.json
    # behind to block the corrected command): MOREC's dynamics reward, and the oracle or a model folder, quick to load.
    started = time.perf_counter()
    hooks = cfg.hooks()  # built once: MOREC's hooks load the dynamics reward from disk
    fit_report = None
    if model is None and cfg.model != "ensemble":
        model, fit_report = build_model(dataset, task, cfg, log)
    if parallel_seeds and getattr(model, "state_from", None) is not None:
        raise ConfigError("parallel seeds need a model whose state is its observation; the oracle steps a host "
                          "simulator. Fix: run the oracle's seeds one after another (no --parallel-seeds).")
    config = {"model_based": cfg.record(), "agent": {"name": agent.NAME, **dataclasses.asdict(agent_cfg)},
              "task": task.id, "dataset": dataset_record(dataset)}
    # one process per seed (only_seed) writes its own part of the run: seeds share the folder, a whole-run writer does not
    run_folder = RunFolder.open(out, config, resume=resume, force=force,
                                part=None if only_seed is None else f"seed_{only_seed}", seeds_key="model_based.seeds")
    try:
        if model is None:  # the learned ensemble: fitted (or read from the cache) once the run folder is there
            model, fit_report = build_model(dataset, task, cfg, log)
        if fit_report is not None:
            write_json(out / "model_fit.json", dataclasses.asdict(fit_report))

        spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
        real, starts = real_rows(dataset), StartStates(dataset, model)
        scale = penalty_on_data(model, hooks.penalty, real)  # the method's reward penalty in rollouts, where it has one
        if scale is not None:
            log(describe_penalty_scale(scale))
            write_json(out / "penalty_on_data.json", scale)
        scores, curves, seconds, wall, unfinished = [], {}, 0.0, 0.0, False
        seeds = range(cfg.seed, cfg.seed + cfg.seeds)
        trainer = _Seeds(agent, agent_cfg, spec, model, real, starts, task, cfg, hooks, run_folder.config, until, log, started)
        with interrupt.graceful_stop():  # SIGTERM / Ctrl-C: checkpoint after the current block and raise Stopped
            if parallel_seeds:
                outcomes = trainer.together(seeds, out)
            else:
                outcomes = (trainer.seed(seed, out) if only_seed in (None, seed) else trainer.finished(seed, out) for seed in seeds)
            for seed, result in zip(seeds, outcomes):
                if result is None:  # stopped at ``until``: go on with the next seed, write no results
                    unfinished = True
                    continue
                score, progress = result
                scores.append(score)
                seconds += progress["train_s"]
                wall += progress["wall_s"]
                curves[f"seed {seed}"] = [(e["step"], e["return_mean"], e["return_std"]) for e in progress["evals"]]
        if unfinished:
            return out
        results = make_results(method=cfg.name, task=task.id, dataset=dataset_record(dataset),
                               budget={"steps": cfg.steps, "seeds": cfg.seeds, "eval_episodes": cfg.eval_episodes,
                                       "horizon": cfg.horizon, "rollout_batch": cfg.rollout_batch, "rollout_every": cfg.rollout_every},
                               seed_scores=scores, wall_time_s=wall, steps_per_s=cfg.steps * cfg.seeds / max(seconds, 1e-9),
                               extra={"model": cfg.model, "preset": cfg.preset, "training_s": seconds,
                                      "model_holdout_mse": None if fit_report is None else fit_report.elite_holdout_mse,
                                      "penalty_on_data": scale})
        write_json(out / "results.json", results)
        from ..report import data_mean_return, learning_curve

        learning_curve(out / "learning_curve.png", curves, title=f"{cfg.name} on {dataset.name}", ylabel="evaluation return",
                       references={"data (mean episode return)": data_mean_return(dataset)})
        m = results["scores"]
        log(f"{cfg.name} on {dataset.name}: {m['metric']} {m['mean']:.1f} ± {m['std']:.1f} over {cfg.seeds} seed(s), final policies")
        return out
    finally:
        run_folder.close()  # this call's lock on the folder (a later call, or another seed's process, takes it)


def _rollout_stats(ro: Rollout) -> dict[str, jax.Array]:
    """The block's rollout statistics as 0-d arrays (traceable: computed inside the vmapped block of parallel seeds)."""
    valid = ro.valid
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    count = jnp.sum(f32(valid))
    n = jnp.maximum(count, 1.0)
    mean_valid = lambda x: jnp.sum(jnp.where(valid, f32(x), 0.0)) / n
    return {"rollout/valid_fraction": jnp.mean(f32(valid)),
            "rollout/length": jnp.mean(jnp.sum(f32(valid), axis=0)),
            "rollout/terminal_fraction": jnp.sum(f32(ro.terminal)) / n,
            "rollout/truncated_fraction": jnp.mean(f32(jnp.any(ro.truncated, axis=0))),
            "rollout/reward": mean_valid(ro.rew),
            "rollout/penalty": mean_valid(ro.penalty),
            "rollout/penalty_max": jnp.where(count > 0, jnp.max(jnp.where(valid, f32(ro.penalty), -jnp.inf)), 0.0)}


def rollout_into(agent, state, buffer: ReplayBuffer, model, start_obs, hooks, horizon: int, *, key, model_state=None):
    """Model rollouts of the agent's policy from ``start_obs`` added to ``buffer``; returns the buffer and the rollout
    statistics (traceable)."""
    ro = rollout(model, AgentPolicy(agent.act, state), start_obs, horizon, key=key, model_state=model_state, hooks=hooks)
    return add_valid(buffer, *ro.masked()), _rollout_stats(ro)


def update_on_mix(agent, state, buffer: ReplayBuffer, real: Transitions, adjust, cfg: ModelBasedConfig, batch_size: int, *, key):
    """``cfg.rollout_every`` agent updates on batches mixing ``real`` rows and the model buffer's (traceable)."""
    source = MixedSampler.from_ratio(real, buffer.data, batch_size=batch_size, real_ratio=cfg.real_ratio, model_size=buffer.size)
    return agent.update_block(state, source, key=key, steps=cfg.rollout_every, target_adjust=adjust)


def _check_model_data(stats: dict, buffer_size: int) -> None:
    if stats["rollout/valid_fraction"] == 0 and buffer_size == 0:
        raise DataError("rollout", "produced no valid row (every branch was stopped or ended at its first step), so there "
                        "is no model data to train on.", "lower the stop hook's threshold (MOREC: reward_threshold) or raise "
                        "min_length.")


def run_block(agent, state, buffer: ReplayBuffer, model, starts: StartStates, real: Transitions, hooks, adjust,
              cfg: ModelBasedConfig, batch_size: int, *, rollout_key, update_key) -> tuple[Any, ReplayBuffer, dict[str, float]]:
    """One block of the loop: a rollout into ``buffer``, then ``cfg.rollout_every`` agent updates in one ``lax.scan``.

    Returns the new agent state and buffer, and the block's agent info, rollout statistics and timings (seconds in
    the rollout and in the updates), read with one host sync.
    """
    t0 = time.perf_counter()
    start_key, ro_key = jax.random.split(rollout_key)
    start_obs, model_state = starts.draw(cfg.rollout_batch, key=start_key)
    buffer, stats = rollout_into(agent, state, buffer, model, start_obs, hooks, cfg.horizon, key=ro_key, model_state=model_state)
    stats = {k: float(v) for k, v in jax.device_get(stats).items()}  # one transfer for every statistic
    _check_model_data(stats, int(buffer.size))
    t1 = time.perf_counter()
    state, info = update_on_mix(agent, state, buffer, real, adjust, cfg, batch_size, key=update_key)
    info = {k: float(v) for k, v in jax.device_get(info).items()}
    t2 = time.perf_counter()
    return state, buffer, {**info, **stats, "time/rollout_s": t1 - t0, "time/update_s": t2 - t1}


class _Seeds:
    """What every seed of one run shares; :meth:`seed` trains one seed, :meth:`together` all of them in one vmapped
    program, both through :func:`dynlearn.training.run` (a block: one rollout, then ``rollout_every`` agent updates)."""

    def __init__(self, agent, agent_cfg, spec, model, real: Transitions, starts: StartStates, task, cfg: ModelBasedConfig,
                 hooks: RolloutHooks, config: dict, until, log, started: float):
        self.agent, self.agent_cfg, self.spec, self.model = agent, agent_cfg, spec, model
        self.real, self.starts, self.task, self.cfg, self.hooks = real, starts, task, cfg, hooks
        self.config, self.until, self.log = config, until, log
        self.mark = started  # where the next seed's clock starts: the call's set-up counts for the first seed it trains
        n_real = int(round(cfg.real_ratio * agent_cfg.batch_size))
        self.adjust = cfg.target_adjust(model, agent, n_real)
        self.empty = ReplayBuffer.empty(cfg.buffer_capacity, spec.obs_dim, spec.act_dim)

    def finished(self, seed: int, out: Path):
        """A seed's result as :meth:`seed` returns it, when another process has finished it; else None."""
        done = SeedFolders(out, [seed], self.config, self.cfg.steps).finished()
        return None if done is None else done[0]

    def _record(self, progress: dict, row: dict, step: int, folder: Path) -> None:
        """Book a finished block into a seed's ``progress``: its history row and a divergence check."""
        progress["history"].append({"step": step, **row})
        if not np.isfinite(row.get("q/mean", 0.0)):
            write_json(folder / "diverged.json", {**progress, "step": step})  # the history up to the divergence, for diagnosis
            raise DataError(str(folder), f"the critic diverged (Q = {row.get('q/mean')}) at step {step}.",
                            "lower the learning rates, raise the penalty, or shorten the horizon.")

    def _evaluate(self, agent_state, step: int, evals: list, seed: int, eval_key, row: dict) -> dict:
        """Evaluate a seed's policy at ``step``, append it to its ``evals`` and log it; the scores for the metrics row."""
        policy = normalized_policy(self.agent, agent_state, Normalizer.identity(self.task.obs_dim))
        r = evaluate(policy, self.task, self.cfg.eval_episodes, key=jax.random.fold_in(eval_key, step))
        evals.append({"step": step, "return_mean": r.mean, "return_std": r.std, "normalized": r.normalized_mean,
                      "q_mean": row.get("q/mean"), "penalty": row["rollout/penalty"]})
        norm_txt = f" normalized {r.normalized_mean:6.1f}" if r.normalized_mean is not None else ""
        self.log(f"seed {seed} step {step:>8,}  return {r.mean:8.1f} ± {r.std:6.1f}{norm_txt}  Q {row.get('q/mean', 0):8.1f}  "
                 f"penalty {row['rollout/penalty']:.3f}  rollout {row['rollout/length']:.2f} steps")
        return {"eval/return_mean": r.mean, "eval/return_std": r.std, "eval/normalized": r.normalized_mean}

    def seed(self, seed: int, out: Path):
        """Train one seed; ``(score, progress)``, or None when stopped at ``until``."""
        agent, cfg = self.agent, self.cfg
        init_key, update_key, rollout_key, eval_key = jax.random.split(jax.random.key(seed), 4)
        folders = SeedFolders(out, [seed], self.config, cfg.steps)
        finished, folder, store = folders.finished(), folders.folders[0], folders.stores[0]
        if finished is not None:
            return finished[0]
        fresh = (agent.init(init_key, self.spec, self.agent_cfg), self.empty)
        state, progress = store.load(lambda _: fresh) or (fresh, {"evals": [], "history": []})
        last = {}

        def block(state, progress):
            agent_state, buffer = state
            step = progress["step"]
            agent_state, buffer, row = run_block(agent, agent_state, buffer, self.model, self.starts, self.real, self.hooks,
                                                 self.adjust, cfg, self.agent_cfg.batch_size,
                                                 rollout_key=jax.random.fold_in(rollout_key, step),
                                                 update_key=jax.random.fold_in(update_key, step))
            self._record(progress, row, step + cfg.rollout_every, folder)
            last["row"] = row
            return (agent_state, buffer), row

        state, progress, done = run(
            block, state, progress, schedule=seed_schedule(cfg, cfg.rollout_every, self.until),
            clock=WallClock(since=self.mark), checkpoint=store, metrics=folder / "metrics.jsonl",
            evaluate=lambda state, p: self._evaluate(state[0], p["step"], p["evals"], seed, eval_key, last["row"]))
        self.mark = time.perf_counter()
        return folders.finish(0, agent, state[0], progress, cfg.eval_episodes) if done else None

    def together(self, seeds, out: Path):
        """Every seed at once: what :meth:`seed` does, with the agents' states and model buffers stacked on a leading
        axis and each block one vmapped rollout and one vmapped update; returns :meth:`seed`'s result per seed."""
        agent, cfg, n = self.agent, self.cfg, len(seeds)
        keys = [jax.random.split(jax.random.key(seed), 4) for seed in seeds]  # init, update, rollout, eval: as seed()
        folders = SeedFolders(out, seeds, self.config, cfg.steps)
        finished = folders.finished()
        if finished is not None:
            return finished
        fresh = eqx.filter_vmap(agent.init, in_axes=(0, None, None))(jnp.stack([k[0] for k in keys]), self.spec, self.agent_cfg)
        checkpoints = folders.checkpoints()
        state, progress = checkpoints.load(lambda _: (state_of(fresh, 0), self.empty)) or (
            (fresh, stack_states([self.empty] * n)), {"seeds": [{"evals": [], "history": []} for _ in seeds]})
        update_keys, rollout_keys = jnp.stack([k[1] for k in keys]), jnp.stack([k[2] for k in keys])

        def seed_rollout(state, buffer, key, model, obs, hooks):
            start_key, ro_key = jax.random.split(key)  # as run_block
            start_obs = StartStates.draw_obs(obs, cfg.rollout_batch, key=start_key)
            return rollout_into(agent, state, buffer, model, start_obs, hooks, cfg.horizon, key=ro_key)

        def seed_update(state, buffer, key, real, adjust):
            return update_on_mix(agent, state, buffer, real, adjust, cfg, self.agent_cfg.batch_size, key=key)

        rollouts = eqx.filter_jit(eqx.filter_vmap(seed_rollout, in_axes=(0, 0, 0, None, None, None)))
        updates = eqx.filter_jit(eqx.filter_vmap(seed_update, in_axes=(0, 0, 0, None, None)))
        at_step = jax.vmap(jax.random.fold_in, in_axes=(0, None))
        last = {}

        def block(state, progress):
            agent_state, buffer = state
            step = progress["step"]
            t0 = time.perf_counter()
            buffer, stats = rollouts(agent_state, buffer, at_step(rollout_keys, step), self.model, self.starts.obs, self.hooks)
            stats = jax.device_get(stats)
            t1 = time.perf_counter()
            agent_state, info = updates(agent_state, buffer, at_step(update_keys, step), self.real, self.adjust)
            info, sizes = jax.device_get((info, buffer.size))
            t2 = time.perf_counter()
            share = {"time/rollout_s": (t1 - t0) / n, "time/update_s": (t2 - t1) / n}  # each seed's part
            rows = []
            for i, (folder, p) in enumerate(zip(folders.folders, progress["seeds"])):
                row = {**{k: float(v[i]) for k, v in info.items()}, **{k: float(v[i]) for k, v in stats.items()}, **share}
                _check_model_data(row, int(sizes[i]))
                self._record(p, row, step + cfg.rollout_every, folder)
                rows.append(row)
            last["rows"] = rows
            return (agent_state, buffer), rows

        def evaluate_all(state, progress):
            return [self._evaluate(state_of(state[0], i), progress["step"], p["evals"], seed, keys[i][3], last["rows"][i])
                    for i, (seed, p) in enumerate(zip(seeds, progress["seeds"]))]

        state, progress, done = run(block, state, progress, schedule=seed_schedule(cfg, cfg.rollout_every, self.until),
                                    clock=WallClock(since=self.mark), checkpoint=checkpoints, evaluate=evaluate_all,
                                    metrics=folders.metrics())
        self.mark = time.perf_counter()
        return folders.finish_together(agent, state[0], progress, cfg.eval_episodes) if done else [None for _ in seeds]
