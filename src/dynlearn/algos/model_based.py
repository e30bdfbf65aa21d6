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

A method is a module of :mod:`dynlearn.algos` (``mopo``, ``mobile``, ``ravl``) with ``DEFAULTS`` and ``PRESETS``
(config values, the paper's) and three functions: ``agent(cfg) -> (agent module, agent config)``,
``hooks(cfg) -> RolloutHooks`` and ``target_adjust(cfg, model, agent, n_real) -> module | None``.

``model="oracle"`` replaces the learned model by the true simulator (:class:`dynlearn.tasks.oracle.OracleModel`,
started from the dataset's recorded ``qpos``/``qvel``): the edge-of-reach experiment of Sims et al. (2024).
"""

from __future__ import annotations

import dataclasses
import importlib
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
from ..models.ensemble import EnsembleConfig
from ..models.fitting import HOLDOUTS, SELECT_BY, FitConfig
from ..results import RunFolder, dataset_record, make_results
from ..rollout import AgentPolicy, Rollout, RolloutHooks, add_valid, rollout
from ..tasks.evaluate import evaluate
from ..training import WallClock, run
from ..training.run_folder import SeedFolders, seed_schedule
from .offline import normalized_policy
from .penalty_scale import describe as describe_penalty_scale
from .penalty_scale import penalty_on_data

METHODS = ("mopo", "mobile", "ravl", "mbpo", "morec-mopo", "morec-mobile")
"""Registered methods (``mbpo``: MOPO with no penalty, the unpenalised baseline of the edge-of-reach paper;
``morec-*``: MOPO/MOBILE with MOREC's dynamics-reward transition filter, :mod:`dynlearn.algos.morec`)."""


@dataclasses.dataclass(frozen=True)
class ModelBasedConfig:
    """``dynlearn train METHOD DATA``: an offline model-based method. ``None`` means the method's default for the
    dataset (``method.PRESETS[preset]``, else ``method.DEFAULTS``); :meth:`resolve` fills them in."""

    method: str = "mopo"
    """mopo | mobile | ravl | mbpo | morec-mopo | morec-mobile"""
    preset: str | None = None
    """the paper's per-dataset hyperparameters, e.g. hopper-medium (default: from the dataset's name, if known)"""
    steps: int = 100_000
    """agent gradient steps per seed"""
    seeds: int = 3
    """seeds, run one after another"""
    seed: int = 0
    """first seed"""
    model: str = "ensemble"
    """ensemble (fitted on the dataset, cached) | oracle (the true simulator) | a model folder (dynlearn model train)"""
    model_seed: int = 0
    """seed of the ensemble fit (one model per dataset, shared by every method and agent seed)"""
    model_max_epochs: int | None = 60
    """cap on ensemble training epochs (None: early stopping only)"""
    model_min_epochs: int | None = None
    """ensemble training runs at least this many epochs, the learning rate lowered x 0.3 at the first plateau before
    them (the edge-of-reach/RAVL reference: 350); None: early stopping only"""
    model_holdout: str | None = None
    """what the ensemble fit holds out for early stopping: episodes (default) | transitions (OfflineRL-Kit's random
    rows, as the published methods fit their models)"""
    horizon: int | None = None
    """rollout length h"""
    penalty: str | None = None
    """MOPO's reward penalty: max_aleatoric, max_pairwise_diff, ensemble_std, ensemble_var, llv, loo_kl or none"""
    penalty_coef: float | None = None
    """weight lambda of the penalty (MOPO: reward - lambda u; MOBILE: beta of the Bellman-inconsistency term)"""
    penalty_part: str | None = None
    """which targets a MOPO penalty reads: obs | reward | all"""
    penalty_members: str | None = None
    """which members a MOPO penalty reads: all (MOPO's code: non-elites too) | elites (Lu et al.)"""
    real_ratio: float | None = None
    """share of each batch drawn from the dataset (the rest from model rollouts)"""
    rollout_batch: int | None = None
    """start states per rollout"""
    rollout_every: int | None = None
    """agent steps between rollouts (also the compiled update block)"""
    retain_epochs: int | None = None
    """rollouts the model buffer keeps (capacity rollout_batch * horizon * retain_epochs)"""
    mobile_samples: int | None = None
    """MOBILE: next-state samples per elite for the Bellman-inconsistency estimate"""
    q_floor: float | None = None
    """MOBILE: lower clamp of the penalised critic target (0 in the reference code, whose tasks have rewards >= 0;
    -inf: no clamp, for tasks with negative rewards)"""
    reward_model: str | None = None
    """MOREC: folder of the learned dynamics reward (dynlearn model reward)"""
    candidates: int | None = None
    """MOREC: candidate next states per step (K)"""
    reward_threshold: float | None = None
    """MOREC: a transition whose kept score is below this is dropped and its branch truncated"""
    min_length: int | None = None
    """MOREC: steps before truncation may start"""
    selection: str | None = None
    """MOREC: greedy (best candidate) or softmax (sampled by score)"""
    reward_discriminators: int | None = None
    """MOREC: historical discriminators combined into the reward (the latest ones)"""
    critics: int | None = None
    """critics in the agent's ensemble (SAC: 2; RAVL/EDAC: 10)"""
    eta: float | None = None
    """EDAC's gradient-diversity weight (RAVL)"""
    auto_alpha: bool | None = None
    """tune SAC's temperature (MOBILE's hopper presets fix it)"""
    alpha: float | None = None
    """SAC's (initial) temperature"""
    actor_lr_schedule: str | None = None
    """constant (default) | cosine: the policy's learning rate annealed to 0 over the run's steps, in steps of
    rollout_every updates (OfflineRL-Kit's MOPO and MOBILE)"""
    model_select_by: str | None = None
    """the holdout error the ensemble fit stops on and picks elites by: mse (data units, OfflineRL-Kit's; default) |
    normalized (each target dim divided by its variance)"""
    eval_every: int = 10_000
    """evaluate the policy every this many steps (a multiple of rollout_every)"""
    eval_episodes: int = 10
    """episodes per evaluation (the final policy gets the same number)"""
    checkpoint_every: int = 10_000
    """write a resumable checkpoint every this many steps (a multiple of rollout_every)"""

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"unknown model-based method {self.method!r}; choose one of {', '.join(METHODS)}.")
        for name in ("steps", "seeds", "eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ModelBasedConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("horizon", "rollout_batch", "rollout_every", "retain_epochs", "mobile_samples", "critics"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"ModelBasedConfig.{name} must be >= 1, got {v}.")
        if self.real_ratio is not None and not 0.0 <= self.real_ratio <= 1.0:
            raise ConfigError(f"ModelBasedConfig.real_ratio must be in [0, 1], got {self.real_ratio}.")
        if self.penalty_coef is not None and self.penalty_coef < 0:
            raise ConfigError(f"ModelBasedConfig.penalty_coef must be >= 0, got {self.penalty_coef}.")
        for name in ("candidates", "reward_discriminators"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"ModelBasedConfig.{name} must be >= 1, got {v}.")
        if self.min_length is not None and self.min_length < 0:
            raise ConfigError(f"ModelBasedConfig.min_length must be >= 0, got {self.min_length}.")
        if self.selection is not None and self.selection not in ("greedy", "softmax"):
            raise ConfigError(f"ModelBasedConfig.selection must be greedy or softmax, got {self.selection!r}.")
        if self.penalty_part is not None and self.penalty_part not in ("obs", "reward", "all"):
            raise ConfigError(f"ModelBasedConfig.penalty_part must be obs, reward or all, got {self.penalty_part!r}.")
        if self.model_holdout is not None and self.model_holdout not in HOLDOUTS:
            raise ConfigError(f"ModelBasedConfig.model_holdout must be one of {', '.join(HOLDOUTS)}, got {self.model_holdout!r}.")
        if self.model_min_epochs is not None and self.model_min_epochs < 0:
            raise ConfigError(f"ModelBasedConfig.model_min_epochs must be None or >= 0, got {self.model_min_epochs}.")
        if self.model_min_epochs and self.model_max_epochs is not None and self.model_min_epochs > self.model_max_epochs:
            raise ConfigError(f"ModelBasedConfig: model_min_epochs {self.model_min_epochs} is above model_max_epochs "
                              f"{self.model_max_epochs} (default 60), which would end the fit first. Fix: lift the cap (0 on the command "
                              "line, None in Python) or set model_max_epochs to at least model_min_epochs.")
        for name in _FIT_OPTIONS:
            if getattr(self, name) is not None and self.model != "ensemble":
                raise ConfigError(f"ModelBasedConfig.{name} chooses how the learned ensemble is fitted; model={self.model!r} is "
                                  f"not fitted here. Fix: drop {name} (--{name.replace('_', '-')}), or use model='ensemble'.")
        if self.actor_lr_schedule is not None and self.actor_lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"ModelBasedConfig.actor_lr_schedule must be constant or cosine, got {self.actor_lr_schedule!r}.")
        if self.model_select_by is not None and self.model_select_by not in SELECT_BY:
            raise ConfigError(f"ModelBasedConfig.model_select_by must be one of {', '.join(SELECT_BY)}, got {self.model_select_by!r}.")
        if self.penalty_members is not None and self.penalty_members not in ("elites", "all"):
            raise ConfigError(f"ModelBasedConfig.penalty_members must be elites or all, got {self.penalty_members!r}.")

    def resolve(self, dataset_name: str | None = None) -> "ModelBasedConfig":
        """Every ``None`` filled from the method's preset for the dataset, then its defaults; checks the schedule."""
        method = method_module(self.method)
        preset = self.preset if self.preset is not None else preset_of(dataset_name, method.PRESETS)
        if preset is not None and preset not in method.PRESETS:
            raise ConfigError(f"{self.method} has no preset {preset!r}; known: {', '.join(sorted(method.PRESETS)) or 'none'}.")
        values = dict(method.DEFAULTS) | (method.PRESETS.get(preset, {}) if preset else {})
        filled = {k: values[k] for k, v in dataclasses.asdict(self).items() if v is None and k in values}
        cfg = dataclasses.replace(self, preset=preset, **filled)
        missing = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is None and f.name not in _OPTIONAL]
        if missing:
            raise ConfigError(f"{self.method}: no value for {', '.join(missing)} (internal: DEFAULTS must cover them).")
        if cfg.steps % cfg.rollout_every or cfg.eval_every % cfg.rollout_every or cfg.checkpoint_every % cfg.rollout_every:
            raise ConfigError(f"steps ({cfg.steps}), eval_every ({cfg.eval_every}) and checkpoint_every ({cfg.checkpoint_every}) "
                              f"must be multiples of rollout_every ({cfg.rollout_every}).")
        if cfg.penalty not in ("none",) and cfg.penalty is not None:
            from ..penalties import PENALTIES

            if cfg.penalty not in PENALTIES:
                raise ConfigError(f"unknown penalty {cfg.penalty!r}; choose one of {', '.join(PENALTIES)} or none.")
        return cfg

    @property
    def buffer_capacity(self) -> int:
        return self.rollout_batch * self.horizon * self.retain_epochs


_FIT_OPTIONS = ("model_holdout", "model_min_epochs", "model_select_by")
"""Options of the ensemble's fit (None: the default fit), refused where no ensemble is fitted."""

LEGACY = {"model_based.penalty_members": "elites", "model_based.model_holdout": "episodes"}
"""What runs saved before a config field existed used: a MOPO run started before ``penalty_members`` read the elites
(it resumes with ``penalty_members="elites"``, and refuses to change to "all" mid-run); runs started before
``model_holdout`` held out episodes."""

_OPTIONAL = ("preset", "model_max_epochs", "model_min_epochs", "model_holdout", "model_select_by", "actor_lr_schedule",
             "penalty_members", "eta", "mobile_samples", "q_floor",
             "reward_model", "candidates", "reward_threshold", "min_length", "selection", "reward_discriminators")


def method_module(name: str):
    """The module implementing method ``name`` (``morec-mopo`` -> :mod:`dynlearn.algos.morec_mopo`)."""
    return importlib.import_module(f".{name.replace('-', '_')}", __package__)


def preset_of(dataset_name: str | None, presets: dict) -> str | None:
    """The preset whose name starts the dataset's name (``hopper-medium-replay-v5`` -> ``hopper-medium-replay``)."""
    if not dataset_name:
        return None
    matches = [p for p in presets if dataset_name == p or dataset_name.startswith(p + "-v")]
    return max(matches, key=len) if matches else None


# ----------------------------------------------------------------------------------------------
# Model and start states


def build_model(dataset: Dataset, task, cfg: ModelBasedConfig, log: Callable[[str], None]):
    """The learned ensemble (cached), the oracle, or a saved model folder."""
    if cfg.model == "oracle":
        from ..tasks.oracle import OracleModel

        if "qpos" not in dataset.metadata or "qvel" not in dataset.metadata:
            raise DataError(dataset.source, "has no simulator states (infos/qpos, infos/qvel), which the oracle model starts from.",
                            "use a dataset collected by dynlearn (dynlearn data generate) or one with infos/qpos and infos/qvel.",
                            key="infos/qpos")
        return OracleModel.for_task(task), None
    if cfg.model == "ensemble":
        from ..models import fitted

        model, report = fitted(dataset, *_ensemble_configs(cfg, task), seed=cfg.model_seed, task=task, log=log)
        return model, report
    from ..models import load

    folder = Path(cfg.model)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model {cfg.model!r} is not 'ensemble', 'oracle' or a model folder (no {folder / 'config.json'}). "
                          "Fix: pass --model ensemble, --model oracle or the run folder of `dynlearn model train`.")
    return load(folder, task=task), None


def _ensemble_configs(cfg: ModelBasedConfig, task):
    """The learned ensemble's configs. The termination head is fitted only for a task without a termination function:
    with one, rollouts never read the head, and training it beside the dynamics slowed the fit on hopper-medium-v5
    (early stopping at epoch 12 instead of the reference's 30+; ``benchmarks/parity.md``, section 1)."""
    return EnsembleConfig(termination_head=getattr(task, "termination_fn", None) is None), FitConfig(max_epochs=cfg.model_max_epochs,
                                       holdout="episodes" if cfg.model_holdout is None else cfg.model_holdout,
                                       min_epochs=0 if cfg.model_min_epochs is None else cfg.model_min_epochs,
                                       select_by="mse" if cfg.model_select_by is None else cfg.model_select_by)


def ensemble_entry(dataset: Dataset, task, cfg: ModelBasedConfig) -> Path:
    """The cache folder of the learned ensemble :func:`build_model` uses for ``dataset`` (once fitted)."""
    from ..models.cache import cache_entry

    return cache_entry(dataset, *_ensemble_configs(cfg, task), seed=cfg.model_seed, task=task)


class StartStates:
    """Rollout start states on the device: observations, and the simulator state for the oracle."""

    def __init__(self, dataset: Dataset, model):
        t = dataset.transitions
        self.obs = jnp.asarray(t.obs, jnp.float32)
        self.state_from = getattr(model, "state_from", None)
        if self.state_from is not None:  # host float64: the oracle keeps the simulator state's full precision
            self.qpos = np.asarray(dataset.metadata["qpos"], np.float64)
            self.qvel = np.asarray(dataset.metadata["qvel"], np.float64)

    def draw(self, n: int, *, key) -> tuple[jax.Array, Any]:
        index = jax.random.randint(key, (n,), 0, self.obs.shape[0])
        if self.state_from is None:
            return self.obs[index], None
        rows = np.asarray(index)
        return self.obs[index], self.state_from(self.qpos[rows], self.qvel[rows])

    @staticmethod
    def draw_obs(obs: jax.Array, n: int, *, key) -> jax.Array:
        """:meth:`draw`'s observations as a pure function of the observation array (for vmapped seeds)."""
        return obs[jax.random.randint(key, (n,), 0, obs.shape[0])]


def real_rows(dataset: Dataset) -> Transitions:
    """The dataset's rows an agent can learn from (a successor observation, or terminal), on the device."""
    t = dataset.transitions
    usable = np.asarray(t.next_obs_valid) | np.asarray(t.terminal)
    return t.take(np.flatnonzero(usable)).to_device()


# ----------------------------------------------------------------------------------------------
# Training


def train_model_based(dataset: Dataset, task, cfg: ModelBasedConfig, out: str | Path, *, model=None, agent_config=None,
                      resume: bool = False, force: bool = False, until: int | None = None, parallel_seeds: bool = False,
                      only_seed: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Train ``cfg.seeds`` seeds of ``cfg.method`` on ``dataset``; write the run folder ``out``.

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
    cfg = cfg.resolve(dataset.name)
    if only_seed is not None and not cfg.seed <= only_seed < cfg.seed + cfg.seeds:
        raise ConfigError(f"only_seed={only_seed} is not one of this run's seeds ({cfg.seed}..{cfg.seed + cfg.seeds - 1}). "
                          "Fix: pick one of them.")
    if only_seed is not None and parallel_seeds:
        raise ConfigError("only_seed trains one seed; parallel_seeds trains them all together. Fix: choose one.")
    method = method_module(cfg.method)
    agent, agent_cfg = method.agent(cfg)
    if agent_config is not None:
        if not isinstance(agent_config, type(agent_cfg)):
            raise ConfigError(f"{cfg.method} trains {agent.NAME}: agent_config must be a {type(agent_cfg).__name__}, "
                              f"got {type(agent_config).__name__}.")
        agent_cfg = agent_config
    for name in _FIT_OPTIONS:
        if model is not None and getattr(cfg, name) is not None:
            raise ConfigError(f"{name} chooses how the learned ensemble is fitted, but a ready model was passed (model=...). "
                              f"Fix: drop {name}.")
    # Everything the user can get wrong is checked before the run folder is written (a refused run leaves no config.json
    # behind to block the corrected command): MOREC's dynamics reward, and the oracle or a model folder, quick to load.
    started = time.perf_counter()
    hooks = method.hooks(cfg)  # built once: MOREC's hooks load the dynamics reward from disk
    fit_report = None
    if model is None and cfg.model != "ensemble":
        model, fit_report = build_model(dataset, task, cfg, log)
    if parallel_seeds and getattr(model, "state_from", None) is not None:
        raise ConfigError("parallel seeds need a model whose state is its observation; the oracle steps a host "
                          "simulator. Fix: run the oracle's seeds one after another (no --parallel-seeds).")
    config = {"model_based": dataclasses.asdict(cfg), "agent": {"name": agent.NAME, **dataclasses.asdict(agent_cfg)},
              "task": task.id, "dataset": dataset_record(dataset)}
    # one process per seed (only_seed) writes its own part of the run: seeds share the folder, a whole-run writer does not
    run_folder = RunFolder.open(out, config, resume=resume, force=force, legacy=LEGACY,
                                part=None if only_seed is None else f"seed_{only_seed}")
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
        trainer = _Seeds(method, agent, agent_cfg, spec, model, real, starts, task, cfg, hooks, config, until, log, started)
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
        results = make_results(method=cfg.method, task=task.id, dataset=dataset_record(dataset),
                               budget={"steps": cfg.steps, "seeds": cfg.seeds, "eval_episodes": cfg.eval_episodes,
                                       "horizon": cfg.horizon, "rollout_batch": cfg.rollout_batch, "rollout_every": cfg.rollout_every},
                               seed_scores=scores, wall_time_s=wall, steps_per_s=cfg.steps * cfg.seeds / max(seconds, 1e-9),
                               extra={"model": cfg.model, "preset": cfg.preset, "training_s": seconds,
                                      "model_holdout_mse": None if fit_report is None else fit_report.elite_holdout_mse,
                                      "penalty_on_data": scale})
        write_json(out / "results.json", results)
        from ..report import data_mean_return, learning_curve

        learning_curve(out / "learning_curve.png", curves, title=f"{cfg.method} on {dataset.name}", ylabel="evaluation return",
                       references={"data (mean episode return)": data_mean_return(dataset)})
        m = results["scores"]
        log(f"{cfg.method} on {dataset.name}: {m['metric']} {m['mean']:.1f} ± {m['std']:.1f} over {cfg.seeds} seed(s), final policies")
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

    def __init__(self, method, agent, agent_cfg, spec, model, real: Transitions, starts: StartStates, task, cfg: ModelBasedConfig,
                 hooks: RolloutHooks, config: dict, until, log, started: float):
        self.method, self.agent, self.agent_cfg, self.spec, self.model = method, agent, agent_cfg, spec, model
        self.real, self.starts, self.task, self.cfg, self.hooks = real, starts, task, cfg, hooks
        self.config, self.until, self.log = config, until, log
        self.mark = started  # where the next seed's clock starts: the call's set-up counts for the first seed it trains
        n_real = int(round(cfg.real_ratio * agent_cfg.batch_size))
        self.adjust = method.target_adjust(cfg, model, agent, n_real)
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
