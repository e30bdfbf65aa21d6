"""MBPO online: model-based policy optimisation in a task (Janner et al., NeurIPS 2019, "When to Trust Your Model",
arXiv 1906.08253).

SAC acts in the real task; every ``model_train_every`` real steps (250) a probabilistic ensemble is refitted on all real
data and ``rollout_batch`` branched rollouts of ``k`` steps start from real states drawn uniformly, with the current
policy and a random elite per row and step (:func:`dynlearn.rollout.rollout`); ``k`` grows linearly over the epochs
(:func:`rollout_length`, the paper's ``[a, b, x, y]``) and the model buffer keeps the rows of the last
``retain_epochs`` epochs. SAC takes ``utd`` gradient steps per real step on batches of ``real_ratio`` real rows and the
rest model rows. A branch ends at the task's termination function (a terminal row is kept; the branch adds no rows after
it), as in the reference code and :mod:`dynlearn.algos.model_based`.

What differs from the paper and the reference code (``jannerm/mbpo``), and why:

- **blocks**: the ``utd`` updates per real step run ``update_every`` real steps at a time, ``update_every * utd`` of them
  in one ``lax.scan`` (the policy acting in the task is at most ``update_every`` steps stale; the reference updates after
  every step). Rollouts run once per refit, as in the reference.
- **refits** continue from the previous ensemble (its input normaliser refitted on all data, as PETS here) and stop
  early as the reference's (holdout 20% of the rows, at most 5,000; 5 epochs without a 1% gain); ``fit_epochs`` caps
  them for CPU (None: no cap, the reference).
- **model buffer**: a fixed-size ring sized for the longest rollouts; batches are drawn from its most recent
  ``retain_epochs * k * rollout_batch * epoch_length / model_train_every`` rows (the size the reference reallocates
  its pool to when ``k`` changes).
- **the epoch** of the schedule counts real steps after the ``start_steps`` random ones, in ``epoch_length`` steps (the
  reference's epochs also start after its initial exploration).

:meth:`MBPOOnlineConfig.preset` holds the paper's values (``hopper``, ``halfcheetah``) and a CPU budget (the default).
They are read from the reference's ``examples/config`` and ``examples/development/base.py`` (5,000 random steps, 7/5
members, 100,000 rollouts per 250 steps, real ratio 0.05, 20 / 40 updates per step, target entropy -1 / -3, one epoch
retained), except hopper's schedule: the reference config runs ``k`` 1 -> 15 over epochs 20 -> 150, the paper's
appendix table 20 -> 100 (as issue 22 quotes it; the table itself could not be read here), which the preset follows.
:mod:`dynlearn.algos.coplanner` changes how actions are chosen (:meth:`MBPOOnlineConfig.explore_policy`,
:meth:`MBPOOnlineConfig.rollout_policy`) and nothing else.

(About 450 lines: the config with its presets, the model buffer and the loop belong together; the loop's state is
shared by all three and COPlanner overrides only the two policy hooks.)

Resumable as :mod:`dynlearn.algos.online`: episode ``i`` is reset with a seed from ``(seed, i)``, every random draw
derives from ``(seed, step)``, and the state (agent, real and model buffers, ensemble) is checkpointed by
:func:`dynlearn.training.run` at episode ends, so a run stopped and resumed ends with the same parameters as one that was
not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tyro

from .. import agents
from .._types import Array, Int, Key
from ..agents.base import AgentSpec, MixedSampler, UniformSampler
from ..agents.sac import SACConfig
from ..data.buffer import ReplayBuffer
from ..data.dataset import from_arrays
from ..data.normalize import Normalizer
from ..data.transitions import Transitions
from ..errors import ConfigError
from ..models import EnsembleConfig, FitConfig, ProbabilisticEnsemble, fit, save
from ..results import RunFolder, SeedScore, make_results
from ..rollout import AgentPolicy, add_valid, rollout
from ..tasks.evaluate import evaluate as evaluate_policy
from ..tasks.policy import JaxPolicy
from ..tasks.registry import get as get_task
from ..training import Checkpoint, Schedule, WallClock, fingerprint, run

__all__ = ["PRESETS", "MBPOOnlineConfig", "MBPOOnlineJob", "RecentRows", "branched_rollouts", "mixed_batches", "model_buffer_capacity",
           "model_epoch", "read_checkpoint", "refit", "rollout_length", "run_job", "train_mbpo_online"]

_FIELDS = ("obs", "act", "rew", "next_obs", "terminal", "timeout", "next_obs_valid")
_DTYPES = {"obs": np.float32, "act": np.float32, "rew": np.float32, "next_obs": np.float32, "terminal": bool, "timeout": bool,
           "next_obs_valid": bool}


@dataclasses.dataclass(frozen=True)
class MBPOOnlineConfig:
    """``dynlearn train mbpo-online``: MBPO in a task (SAC on branched rollouts of an ensemble refitted online)."""

    method: ClassVar[str] = "mbpo-online"

    task: str = "InvertedPendulum-v5"
    """task id (its termination function ends model rollouts)"""
    steps: int = 10_000
    """real environment steps in total, the random ones included"""
    seed: int = 0
    """seed of everything: resets, random actions, networks, fits, rollouts, updates"""
    start_steps: int = 500
    """uniformly random actions before the first model fit and the first update (paper: 5,000)"""
    epoch_length: int = 250
    """real steps per epoch, the unit of the rollout schedule and of the model buffer's retention (paper: 1,000)"""
    model_train_every: int = 250
    """refit the ensemble and start new branched rollouts every this many real steps (paper: 250)"""
    fit_epochs: int | None = 20
    """cap on the epochs of each refit (None: early stopping only, as the paper)"""
    rollout_batch: int = 5_000
    """branched rollouts started at each refit (paper: 100,000, i.e. 400 per real step)"""
    rollout_schedule: tuple[int, int, int, int] = (1, 15, 1, 1)
    """rollout length [a, b, x, y]: x before epoch a, y after epoch b, linear (truncated to an integer) in between"""
    retain_epochs: int = 1
    """epochs of model rollouts the model buffer keeps (paper: 1)"""
    real_ratio: float = 0.05
    """share of real rows in each SAC batch (paper: 0.05)"""
    utd: int = 5
    """SAC gradient steps per real step (paper: 20 hopper, 40 halfcheetah)"""
    update_every: int = 50
    """real steps per update block: its update_every * utd gradient steps run in one lax.scan"""
    learned_reward: bool = False
    """use the ensemble's reward even where the task has a reward function (the paper always learns it)"""
    eval_every: int = 1_000
    """evaluate the deterministic policy every this many real steps"""
    eval_episodes: int = 5
    """episodes per evaluation (paper: 1 per epoch)"""
    checkpoint_every: int = 5_000
    """write a resumable checkpoint at the first episode end after every this many real steps"""
    model: EnsembleConfig = EnsembleConfig(hidden=(200, 200, 200), weight_decay=(2.5e-5, 5e-5, 7.5e-5, 1e-4))
    """the ensemble (paper: 7 members, 5 elites, 4 hidden layers of 200, swish)"""
    fitting: FitConfig = FitConfig(holdout="transitions", holdout_fraction=0.2, holdout_max_transitions=5_000, progress=False)
    """how each refit trains (its max_epochs is fit_epochs)"""
    sac: SACConfig = SACConfig()
    """the SAC agent (paper: 256x256, lr 3e-4, target entropy -1 hopper, -3 halfcheetah)"""

    def __post_init__(self):
        for name in ("steps", "start_steps", "epoch_length", "model_train_every", "rollout_batch", "retain_epochs", "utd",
                     "update_every", "eval_every", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}.")
        if self.start_steps >= self.steps:
            raise ConfigError(f"{type(self).__name__}: start_steps ({self.start_steps}) must be below steps ({self.steps}).")
        for name in ("start_steps", "model_train_every", "eval_every"):
            if getattr(self, name) % self.update_every:
                raise ConfigError(f"{type(self).__name__}.{name} ({getattr(self, name)}) must be a multiple of update_every "
                                  f"({self.update_every}).")
        a, b, x, y = (*self.rollout_schedule, 0, 0, 0, 0)[:4]
        if len(self.rollout_schedule) != 4 or min(x, y) < 1 or a < 0 or (b <= a and x != y):
            raise ConfigError(f"{type(self).__name__}.rollout_schedule must be [a, b, x, y] with 0 <= a < b and lengths x, y "
                              f">= 1, got {list(self.rollout_schedule)}.")
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ConfigError(f"{type(self).__name__}.real_ratio must be in [0, 1], got {self.real_ratio}.")
        held = min(int(self.fitting.holdout_fraction * self.start_steps), self.fitting.holdout_max_transitions)
        if 2 * (self.start_steps - held) < self.fitting.batch_size:  # dynlearn.models.fit pads a short epoch from its own rows
            raise ConfigError(f"{type(self).__name__}: the first refit trains on about {self.start_steps - held} rows (start_steps "
                              f"{self.start_steps} less the holdout), under half of fitting.batch_size ({self.fitting.batch_size}). "
                              "Fix: raise start_steps or lower fitting.batch_size.")
        if self.fit_epochs is not None and self.fit_epochs < 1:
            raise ConfigError(f"{type(self).__name__}.fit_epochs must be None or >= 1, got {self.fit_epochs}.")

    @classmethod
    def preset(cls, name: str, **changes):
        """``"cpu"`` (the default), ``"hopper"`` / ``"halfcheetah"`` (the paper's values, module docstring),
        ``"inverted-pendulum"`` (the reference code's InvertedPendulum config) or ``"single-lipschitz"`` (the CPU budget with
        one probabilistic model and a Lipschitz-regularised critic, Zheng et al. 2023: :mod:`dynlearn.agents.lipschitz`);
        ``changes`` win."""
        if name not in PRESETS:
            raise ConfigError(f"{cls.__name__}.preset: unknown preset {name!r}; known: {', '.join(PRESETS)}.")
        return cls(**(PRESETS[name] | changes))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def rollout_policy(self, agent, agent_state, model) -> eqx.Module:
        """The policy of the branched rollouts, ``policy(obs [B, obs], *, key) -> act [B, act]``: SAC's samples."""
        return AgentPolicy(agent.act, agent_state)

    def explore_policy(self, agent, agent_state, model) -> eqx.Module:
        """The policy acting in the real task after the random steps: SAC's samples."""
        return AgentPolicy(agent.act, agent_state)


_PAPER_MODEL = EnsembleConfig(weight_init="truncated")  # 7/5 members, 4 x 200 swish, MBPO's weight decays and init
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "hopper": dict(task="Hopper-v5", steps=125_000, start_steps=5_000, epoch_length=1_000, fit_epochs=None, rollout_batch=100_000,
                   rollout_schedule=(20, 100, 1, 15), utd=20, eval_every=1_000, eval_episodes=1, model=_PAPER_MODEL,
                   learned_reward=True, sac=SACConfig(target_entropy=-1.0)),
    "halfcheetah": dict(task="HalfCheetah-v5", steps=400_000, start_steps=5_000, epoch_length=1_000, fit_epochs=None,
                        rollout_batch=100_000, rollout_schedule=(20, 100, 1, 1), utd=40, eval_every=1_000, eval_episodes=1,
                        model=_PAPER_MODEL, learned_reward=True, sac=SACConfig(target_entropy=-3.0)),
    "inverted-pendulum": dict(task="InvertedPendulum-v5", steps=20_000, start_steps=500, epoch_length=250, fit_epochs=None,
                              rollout_batch=100_000, rollout_schedule=(1, 15, 1, 1), utd=10, eval_every=250, eval_episodes=1,
                              model=_PAPER_MODEL, learned_reward=True, sac=SACConfig(target_entropy=-0.05)),
    "single-lipschitz": dict(model=dataclasses.replace(MBPOOnlineConfig.model, members=1, elites=1),
                             sac=SACConfig(critic_spectral_norm="hidden", adversarial_eps=0.05, adversarial_coef=1.0, adversarial_steps=1)),
}
"""Preset name -> field values of :class:`MBPOOnlineConfig` (see its ``preset``)."""


def rollout_length(schedule: tuple[int, int, int, int], epoch: int) -> int:
    """The rollout length at ``epoch`` of the schedule ``[a, b, x, y]``: ``x`` up to epoch ``a``, then linear to ``y`` at
    epoch ``b``, truncated to an integer (the reference's ``int``), ``y`` afterwards."""
    a, b, x, y = schedule
    if epoch <= a or x == y:
        return int(x)
    return int(min((epoch - a) / (b - a), 1.0) * (y - x) + x)


def model_epoch(cfg: MBPOOnlineConfig, step: int) -> int:
    """The schedule's epoch at real step ``step``: epochs of ``epoch_length`` real steps after the random ones."""
    return max(step - cfg.start_steps, 0) // cfg.epoch_length


def _window(cfg: MBPOOnlineConfig, k: int) -> int:
    """Rows of model data the SAC batches draw from at rollout length ``k``."""
    return max(int(cfg.retain_epochs * k * cfg.rollout_batch * cfg.epoch_length / cfg.model_train_every), cfg.rollout_batch)


def model_buffer_capacity(cfg: MBPOOnlineConfig) -> int:
    """The model buffer's rows: the window of the longest rollouts, and at least one whole rollout."""
    longest = max(cfg.rollout_schedule[2:])
    return max(_window(cfg, longest), longest * cfg.rollout_batch)


class RecentRows(eqx.Module):
    """``batch_size`` rows drawn uniformly from the most recent ``min(size, window)`` rows of a ring buffer."""

    data: Transitions
    batch_size: int = eqx.field(static=True)
    size: Int[Array, ""]
    cursor: Int[Array, ""]
    window: Int[Array, ""]

    def __call__(self, *, key: Key) -> Transitions:
        capacity = self.data.obs.shape[0]
        n = jnp.maximum(jnp.minimum(self.size, self.window), 1)
        back = jax.random.randint(key, (self.batch_size,), 0, n)
        index = (self.cursor - 1 - back) % capacity
        return jax.tree_util.tree_map(lambda x: jnp.take(x, index, axis=0), self.data)


def mixed_batches(real: ReplayBuffer, model: ReplayBuffer, window, *, batch_size: int, real_ratio: float) -> MixedSampler:
    """SAC's batch source: ``round(real_ratio * batch_size)`` real rows, then model rows from the recent ``window``."""
    n_real = int(round(real_ratio * batch_size))
    parts = []
    if n_real:
        parts.append(UniformSampler(real.data, n_real, real.size))
    if batch_size - n_real:
        parts.append(RecentRows(model.data, batch_size - n_real, model.size, model.cursor, jnp.asarray(window, jnp.int32)))
    return MixedSampler(tuple(parts))


@eqx.filter_jit
def branched_rollouts(policy, model, real: ReplayBuffer, buffer: ReplayBuffer, key: Key, *, batch: int,
                      horizon: int) -> tuple[ReplayBuffer, dict]:
    """``batch`` rollouts of ``horizon`` model steps from real states drawn uniformly, their rows added to ``buffer``
    (time-major; a branch adds no rows after its terminal row); returns the buffer and the rollout statistics."""
    start_key, rollout_key = jax.random.split(key)
    start = jnp.take(real.data.obs, jax.random.randint(start_key, (batch,), 0, real.size), axis=0)
    ro = rollout(model, policy, start, horizon, key=rollout_key)
    valid = ro.valid.astype(jnp.float32)
    rows = jnp.maximum(jnp.sum(valid), 1.0)
    stats = {"rollout/length": jnp.mean(jnp.sum(valid, axis=0)), "rollout/rows": jnp.sum(valid),
             "rollout/reward": jnp.sum(jnp.where(ro.valid, ro.rew, 0.0)) / rows,
             "rollout/terminal_fraction": jnp.sum(ro.terminal.astype(jnp.float32)) / rows}
    return add_valid(buffer, *ro.masked()), stats


def _episode_seed(seed: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _model_task(task, learned_reward: bool):
    """What the ensemble reads from the task: its termination function and (unless learned) its reward function."""
    return types.SimpleNamespace(id=task.id, obs_dim=task.obs_dim, act_dim=task.act_dim, termination_fn=task.termination_fn,
                                 reward_fn=None if learned_reward else task.reward_fn)


def _fresh(cfg: MBPOOnlineConfig, task, agent) -> dict:
    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    init_key, model_key = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), 1))
    model = ProbabilisticEnsemble.init(cfg.model, task.obs_dim, task.act_dim, key=model_key)
    model = model.with_task(_model_task(task, cfg.learned_reward))
    return {"agent": agent.init(init_key, spec, cfg.sac), "real": ReplayBuffer.empty(cfg.steps, task.obs_dim, task.act_dim),
            "model_buffer": ReplayBuffer.empty(model_buffer_capacity(cfg), task.obs_dim, task.act_dim), "model": model}


def refit(cfg: MBPOOnlineConfig, task, model: ProbabilisticEnsemble, real: ReplayBuffer, fits: int):
    """The ensemble fitted on every real row: fresh the first time, else ``model`` continued with its input normaliser
    refitted on all the data. Returns ``(model, FitReport)``."""
    d = real.filled()
    timeout = np.asarray(d.timeout, bool).copy()
    timeout[-1] = not bool(d.terminal[-1])  # the last row may end mid-episode: a truncation for the dataset
    dataset = from_arrays(obs=d.obs, act=d.act, rew=d.rew, next_obs=d.next_obs, terminal=d.terminal, timeout=timeout,
                          name=f"{cfg.method}-{task.id}")
    if fits == 0:
        start = cfg.model
    else:
        start = dataclasses.replace(model, input_norm=Normalizer.fit(np.concatenate([d.obs, d.act], axis=1)))
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1_000 + fits)
    return fit(start, dataset, key=key, cfg=dataclasses.replace(cfg.fitting, max_epochs=cfg.fit_epochs),
               task=_model_task(task, cfg.learned_reward))


def _store(cfg: MBPOOnlineConfig, out: Path, config: dict | None = None) -> Checkpoint:
    """The run's checkpoint, tagged with ``config`` (the run folder's :attr:`~dynlearn.results.RunFolder.config`;
    default: ``cfg``'s record)."""
    config = {"method": cfg.method, "config": cfg.to_dict()} if config is None else config
    return Checkpoint(out / "checkpoint", fingerprint(config), owner=cfg.method)


def read_checkpoint(cfg: MBPOOnlineConfig, out: str | Path) -> tuple[dict, dict] | None:
    """``(state, progress)`` of the run in ``out`` at its last checkpoint (state: ``agent``, ``real`` and ``model_buffer``
    :class:`~dynlearn.data.buffer.ReplayBuffer`, ``model``), or None without one."""
    task = get_task(cfg.task)
    return _store(cfg, Path(out)).load(lambda _: _fresh(cfg, task, agents.get("sac")))


def train_mbpo_online(cfg: MBPOOnlineConfig, out: str | Path, *, resume: bool = False, force: bool = False,
                      until: int | None = None, log: Callable[[str], None] = print) -> dict:
    """Run ``cfg`` (MBPO, or a subclass's method such as COPlanner) into the run folder ``out``: config.json,
    results.json (the final deterministic policy's evaluation), metrics.jsonl, evaluations, the final agent in ``final/``
    and ensemble in ``model/``, and the checkpoint while it runs. ``resume=True`` continues from the checkpoint (same
    config); ``until`` stops after that many real steps without finishing, as a kill would. Returns the results ({} when
    stopped at ``until``)."""
    clock = WallClock()
    task, agent = get_task(cfg.task), agents.get("sac")
    run_folder = RunFolder.open(out, {"method": cfg.method, "config": cfg.to_dict()}, resume=resume, force=force)
    out = run_folder.path
    store = _store(cfg, out, run_folder.config)
    act_key, update_key, rollout_key, eval_key = jax.random.split(jax.random.key(cfg.seed), 4)
    loaded = store.load(lambda _: _fresh(cfg, task, agent)) if resume else None
    if loaded is not None:
        state, progress = loaded
        log(f"resuming {out} at step {progress['step']:,} (episode {progress['episode']})")
    else:
        state = _fresh(cfg, task, agent)
        progress = {"episode": 0, "episode_return": 0.0, "episode_end": True, "pending": {f: [] for f in _FIELDS}, "fits": 0,
                    "window": 0, "rollout_lengths": [], "train_returns": [], "evals": []}

    explore = eqx.filter_jit(lambda policy, obs, t: policy(obs[None], key=jax.random.fold_in(act_key, t))[0])
    env = task.make()
    low, high = np.asarray(task.act_low, np.float32), np.asarray(task.act_high, np.float32)
    current = {"obs": np.asarray(env.reset(seed=_episode_seed(cfg.seed, progress["episode"]))[0], np.float32)}
    limit = cfg.steps if until is None else min(cfg.steps, until)

    def learn(state, progress, t: int) -> tuple[dict, dict]:
        """At an update step: refit and roll out when due, then ``update_every * utd`` SAC updates (one lax.scan)."""
        row = {}
        if (t - cfg.start_steps) % cfg.model_train_every == 0:
            model, report = refit(cfg, task, state["model"], state["real"], progress["fits"])
            progress["fits"] += 1
            k = rollout_length(cfg.rollout_schedule, model_epoch(cfg, t))
            policy = cfg.rollout_policy(agent, state["agent"], model)
            buffer, stats = branched_rollouts(policy, model, state["real"], state["model_buffer"], jax.random.fold_in(rollout_key, t),
                                              batch=cfg.rollout_batch, horizon=k)
            progress["window"] = _window(cfg, k)
            progress["rollout_lengths"].append([t, k])
            state = {**state, "model": model, "model_buffer": buffer}
            row = {"rollout/k": k, "model/epochs": report.epochs, "model/holdout_mse": float(np.mean(report.holdout_mse)),
                   **{name: float(v) for name, v in jax.device_get(stats).items()}}
        source = mixed_batches(state["real"], state["model_buffer"], progress["window"], batch_size=cfg.sac.batch_size,
                               real_ratio=cfg.real_ratio)
        agent_state, info = agent.update_block(state["agent"], source, key=jax.random.fold_in(update_key, t),
                                               steps=cfg.update_every * cfg.utd)
        return {**state, "agent": agent_state}, row | {name: float(v) for name, v in jax.device_get(info).items()}

    def block(state, progress):
        """Real steps up to the next update step (then refit, rollouts and updates), an episode end or ``until``."""
        obs, pending, row = current["obs"], progress["pending"], {}
        while True:
            t = progress["step"]
            if t < cfg.start_steps:
                action = np.random.default_rng([cfg.seed, t]).uniform(low, high).astype(np.float32)
            else:
                policy = cfg.explore_policy(agent, state["agent"], state["model"])
                action = np.asarray(explore(policy, jnp.asarray(obs), jnp.asarray(t, jnp.int32)), np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            next_obs = np.asarray(next_obs, np.float32)
            for f, v in zip(_FIELDS, (obs, action, reward, next_obs, terminated, truncated and not terminated, True)):
                pending[f].append(v)
            progress["episode_return"] += float(reward)
            progress["step"] = t = t + 1
            updated = t % cfg.update_every == 0
            if updated:
                real = state["real"].add(Transitions(**{f: np.asarray(pending[f], _DTYPES[f]) for f in _FIELDS}))
                state, pending = {**state, "real": real}, {f: [] for f in _FIELDS}
                if t >= cfg.start_steps:
                    state, row = learn(state, progress, t)
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
        current["obs"] = obs
        progress["pending"] = {f: [np.asarray(v).tolist() for v in rows] for f, rows in pending.items()}  # JSON-ready
        return state, row

    def policy_of(agent_state):
        return JaxPolicy(lambda obs, *, key: agent.act(agent_state, obs, key=key, deterministic=True))

    def evaluate(state, progress):
        t = progress["step"]
        if t % cfg.eval_every:
            return {}
        r = evaluate_policy(policy_of(state["agent"]), task, cfg.eval_episodes, key=jax.random.fold_in(eval_key, t))
        progress["evals"].append({"step": t, "return_mean": r.mean, "return_std": r.std, "normalized": r.normalized_mean,
                                  "wall_s": progress["wall_s"]})
        log(f"{cfg.method} step {t:>8,}  return {r.mean:9.1f} ± {r.std:7.1f}  ({progress['wall_s']:.0f} s)")
        return {"eval/return_mean": r.mean, "eval/return_std": r.std, "eval/normalized": r.normalized_mean}

    try:
        with contextlib.closing(env):
            state, progress, done = run(
                block, state, progress, clock=clock, checkpoint=store, evaluate=evaluate, metrics=out / "metrics.jsonl",
                can_stop=lambda p: p["episode_end"],
                schedule=Schedule(block=None, total=cfg.steps, until=until, eval_every=cfg.update_every,
                                  checkpoint_every=cfg.checkpoint_every))
        if not done:
            return {}
        results = _finish(cfg, out, task, agent, state, progress, policy_of, jax.random.fold_in(eval_key, cfg.steps + 1))
        run_folder.write_results(results)
        store.remove()
        return results
    finally:
        run_folder.close()


def _finish(cfg: MBPOOnlineConfig, out: Path, task, agent, state: dict, progress: dict, policy_of, key) -> dict:
    """Save the final agent and ensemble, evaluate the final policy, and assemble results.json."""
    from ..checkpoint import write_json
    from ..report import learning_curve

    agent.save(out / "final", state["agent"])
    save(out / "model", state["model"])
    final = evaluate_policy(policy_of(state["agent"]), task, cfg.eval_episodes, key=key)
    write_json(out / "evals.json", {"evals": progress["evals"], "train_returns": progress["train_returns"],
                                    "rollout_lengths": progress["rollout_lengths"]})
    learning_curve(out / "learning_curve.png", [(e["step"], e["return_mean"], e["return_std"]) for e in progress["evals"]],
                   title=f"{cfg.method}, {task.id}, seed {cfg.seed}", ylabel="evaluation return")
    score = SeedScore(seed=cfg.seed, return_mean=final.mean, return_std=final.std, normalized=final.normalized_mean,
                      episodes=cfg.eval_episodes)
    return make_results(method=cfg.method, task=task.id, dataset=None,
                        budget={"steps": cfg.steps, "env_steps": cfg.steps, "seeds": 1, "utd": cfg.utd,
                                "gradient_steps": (cfg.steps // cfg.update_every - cfg.start_steps // cfg.update_every + 1)
                                * cfg.update_every * cfg.utd,
                                "rollout_batch": cfg.rollout_batch, "model_train_every": cfg.model_train_every},
                        seed_scores=[score], wall_time_s=progress["wall_s"], steps_per_s=cfg.steps / max(progress["train_s"], 1e-9),
                        extra={"final_eval": final.to_dict(), "fits": progress["fits"], "rollout_lengths": progress["rollout_lengths"],
                               "training_s": progress["train_s"]})


@dataclasses.dataclass(frozen=True)
class MBPOOnlineJob:
    """dynlearn train mbpo-online: MBPO online in a task (SAC on branched rollouts of an ensemble refitted as data comes
    in); writes a run folder with results.json (the final policy's evaluation), metrics.jsonl, the agent and the ensemble.
    --preset NAME starts from a preset (cpu, hopper, halfcheetah, inverted-pendulum, single-lipschitz); flags change it."""

    config: Annotated[MBPOOnlineConfig, tyro.conf.arg(name="")] = MBPOOnlineConfig()
    out: Annotated[Path, tyro.conf.arg(aliases=("-o",))] = Path("runs/mbpo-online")
    """run folder"""
    resume: bool = False
    """continue a stopped run in --out"""
    force: bool = False
    """replace an existing run folder in --out"""


def run_job(job: MBPOOnlineJob) -> None:
    train_mbpo_online(job.config, job.out, resume=job.resume, force=job.force)

