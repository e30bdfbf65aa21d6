"""How MOREC's dynamics reward ``r(s, a, s')`` is learned: adversarial imitation of the data's transitions.

Luo, Xu, Cao & Yu, *Reward-Consistent Dynamics Models are Strongly Generalizable for Offline Reinforcement
Learning*, ICLR 2024 (arXiv 2310.05422), with the discriminator ensemble of DARL (Luo, Cao, Qin & Yu,
*Transferable Reward Learning by Dynamics-Agnostic Discriminator Ensemble*, arXiv 2206.00238).

**A reconstruction.** MOREC's reward-learning code was never released (polixir/morec ships only the code that
*uses* pretrained rewards, which sit on a private file server). What follows is rebuilt from the papers and from
how the released code reads a reward; every choice the released code does not pin down is marked *ours*.

The idea: treat the dynamics as an agent whose state is ``(s, a)`` and whose action is the next state ``s'``. The
data's transitions are that agent's demonstrations, and the reward it maximises, the *dynamics reward*, is
recovered by adversarial imitation (GAIL): discriminators ``D(s, a, s')`` learn to tell dataset transitions from
transitions of a learned model (the generator), while the model is updated to fool them. DARL's point, which
MOREC builds on, is that one discriminator at the end of such a game is tied to the last generator, whereas the
*ensemble of historical discriminators* (snapshots taken during training) approximates the reward itself; MOREC
then filters model rollouts with that reward (:mod:`dynlearn.algos.morec`).

What is implemented:

- **Discriminator** and **combination**: :mod:`dynlearn.algos.morec.reward`. The released code's extra input ``z`` (a
  hidden factor, constant zero on MuJoCo) is dropped. The released code min-max scales observations to [-0.8, 0.8]
  and takes the change of the scaled observations; we standardise the change by its own std, which keeps small
  changes visible. Head widths (128, 128) and learning rates are *ours* (the released loader reads them from a
  config file that is not public).
- **Generator** (the adversary, ``generator``): by default a *fresh* Gaussian transition model, an MLP from ``(s, a)``
  to a diagonal Gaussian over the change of state, trained from scratch inside the game (the released loader hands the
  reward object the widths of a transition network and its learning rate, 1e-3); ``model`` fine-tunes the fitted ensemble's
  elites instead, ``frozen`` uses the fitted ensemble's samples unchanged. In the papers the transition model is
  updated by policy optimisation with the GAIL reward ``-log(1 - D) = softplus(logit)``; here each episode of the
  dynamics agent is one step from a dataset ``(s, a)`` (a contextual bandit: offline data have no behaviour policy to
  choose the next action), so we follow the *reparameterised* gradient of the same objective,
  ``E_{s' ~ T(s, a)}[softplus(logit)] + c H(T)`` with ``c = entropy_coef`` (the released code's initial entropy
  coefficient 0.001), through the Gaussian sample: same expectation as the policy gradient, far lower variance,
  affordable on a CPU. At the released learning rate (1e-3) such an adversary matches the data of the synthetic task
  of ``benchmarks/morec_synthetic.py`` within about a thousand steps, after which a snapshot cannot tell data from
  adversary and adds only noise to the combination; ``generator_lr`` is therefore 1e-5 (*ours*), so that snapshots
  over the whole run stay informative and span coarse to fine discriminators, DARL's mechanism. The adversary is
  discarded afterwards: rollouts use the supervised ensemble, as MOREC's released code does (its
  ``learned_dynamics`` are the supervised baseline models).
- **Discriminator loss**: binary cross-entropy, data transitions labelled 1 and the adversary's samples 0, one Adam
  step per training step, one adversary step after it.
- **Historical ensemble**: every ``snapshot_every`` steps the current discriminator is stored together with its
  mean logit on a batch of data transitions (*expert value*) and on the adversary's transitions from the same
  ``(s, a)`` (*learner value*), the calibration the released code reads as ``expert_value``/``learner_value`` (how
  it computed them is not public: the batch means are *ours*). The last ``snapshots`` snapshots form the reward.

Train with :func:`learn_reward`, save with :func:`~dynlearn.algos.morec.reward_io.save_reward` (config JSON + array
leaves, no pickle), read back with :func:`~dynlearn.algos.morec.reward_io.load_reward`;
:func:`~dynlearn.algos.morec.diagnostics.reward_diagnostics` compares the reward of real held-out transitions with that
of a model's transitions (where the model is not to be trusted).

>>> reward, report = learn_reward(dataset, model, DynamicsRewardConfig(), key=jax.random.key(0))
>>> r = reward(obs, act, next_obs)                    # [...], higher = more like the data's transitions
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ..._types import Array, Float, Key
from ...agents.base import apply_optimizer
from ...checkpoint import arrays_digest
from ...data.dataset import Dataset
from ...data.normalize import Normalizer
from ...data.transitions import Transitions
from ...errors import ConfigError, DataError
from ...models.ensemble import ProbabilisticEnsemble
from ...models.fit_config import FitConfig
from ...models.holdout import split_holdout
from ...progress import ProgressLine
from ...rollout import elite_view
from ...training import Checkpoint, Schedule, WallClock, fingerprint, key_data, run
from .diagnostics import model_sample, reward_diagnostics
from .reward import ACTIVATIONS, Discriminators, DynamicsReward, DynamicsRewardConfig, forward, stacked_layers
from .reward_io import RewardReport


class _Rows(eqx.Module):
    obs: Float[Array, "n obs"]
    act: Float[Array, "n act"]
    next_obs: Float[Array, "n obs"]


def _rows(t: Transitions) -> _Rows:
    t = t.with_successor()
    return _Rows(obs=jnp.asarray(t.obs, jnp.float32), act=jnp.asarray(t.act, jnp.float32), next_obs=jnp.asarray(t.next_obs, jnp.float32))



class _Norms(eqx.Module):
    input_norm: Normalizer
    delta_norm: Normalizer


def _standardised(norms: _Norms | DynamicsReward, obs, act, next_obs):
    sa = norms.input_norm(jnp.concatenate([obs, act], axis=-1))
    return sa, norms.delta_norm(next_obs - obs)


LOG_STD_RANGE = (-5.0, 1.0)
"""Bounds of the fresh generator's log-std in standardised units of ``s' - s``."""


class GaussianGenerator(eqx.Module):
    """The fresh adversary: an MLP from standardised ``(s, a)`` to a diagonal Gaussian over the standardised change
    ``s' - s`` (log-std squashed into :data:`LOG_STD_RANGE`). The last layer starts near mean 0 and log-std 0, so
    the first samples follow the data's mean and spread of changes whatever ``(s, a)``: the first discriminators
    learn the coarse relation between ``(s, a)`` and the change."""

    layers: tuple[tuple[Array, Array], ...]
    activation: str = eqx.field(static=True)

    @classmethod
    def init(cls, cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int, *, key: Key) -> GaussianGenerator:
        (layers,) = stacked_layers(((obs_dim + act_dim, *cfg.generator_hidden, 2 * obs_dim),), 1, key)
        w, _ = layers[-1]
        low, high = LOG_STD_RANGE
        unit_std = math.atanh(2.0 * (0.0 - low) / (high - low) - 1.0)  # the raw output whose log-std is 0
        b = jnp.concatenate([jnp.zeros((1, obs_dim), jnp.float32), jnp.full((1, obs_dim), unit_std, jnp.float32)], axis=-1)
        return cls(layers=(*layers[:-1], (0.01 * w, b)), activation=cfg.activation)

    def __call__(self, sa: Float[Array, "n sa"]) -> tuple[Float[Array, "n obs"], Float[Array, "n obs"]]:
        out = forward(self.layers, sa, ACTIVATIONS[self.activation], last=False)[0]
        d = out.shape[-1] // 2
        low, high = LOG_STD_RANGE
        return out[:, :d], low + 0.5 * (high - low) * (jnp.tanh(out[:, d:]) + 1.0)


def _generate(params, model: ProbabilisticEnsemble, norms: _Norms, obs, act, *, key: Key, kind: str):
    """The adversary's reparameterised sample of ``s'`` and its entropy. ``params``: the fresh generator, or the
    elites' network for ``model``/``frozen``."""
    if kind == "fresh":
        mean, log_std = params(norms.input_norm(jnp.concatenate([obs, act], axis=-1)))
        z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, jnp.float32)
        return obs + norms.delta_norm.inverse(z), jnp.sum(log_std, axis=-1)
    return model_sample(eqx.tree_at(lambda m: m.net, model, params), obs, act, key=key)


def _disc_loss(disc: Discriminators, norms: _Norms, obs, act, real_next, fake_next):
    real = disc(*_standardised(norms, obs, act, real_next))[0]
    fake = disc(*_standardised(norms, obs, act, fake_next))[0]
    loss = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    accuracy = 0.5 * (jnp.mean((real > 0).astype(jnp.float32)) + jnp.mean((fake < 0).astype(jnp.float32)))
    return loss, {"disc/loss": loss, "disc/accuracy": accuracy, "disc/logit_data": jnp.mean(real), "disc/logit_model": jnp.mean(fake)}


def _gen_loss(params, model, disc: Discriminators, norms: _Norms, obs, act, *, key, cfg: DynamicsRewardConfig):
    """Minus the GAIL reward ``softplus(logit) = -log(1 - D)`` of the adversary's samples, minus the entropy bonus."""
    fake_next, entropy = _generate(params, model, norms, obs, act, key=key, kind=cfg.generator)
    gail = jnp.mean(jax.nn.softplus(disc(*_standardised(norms, obs, act, fake_next))[0]))
    return -gail - cfg.entropy_coef * jnp.mean(entropy), {"gen/reward": gail, "gen/entropy": jnp.mean(entropy)}


@eqx.filter_jit
def _block(disc, disc_opt, gen, gen_opt, model: ProbabilisticEnsemble, norms: _Norms, data: _Rows, key, *, cfg: DynamicsRewardConfig):
    """``cfg.snapshot_every`` training steps in one ``lax.scan``, then the snapshot's calibration: the discriminator's
    mean logit on ``cfg.calibration_rows`` data transitions (expert value) and on the adversary's samples from the
    same ``(s, a)`` (learner value). Returns the new states, the two values and the block's mean metrics."""
    d_opt, g_opt = optax.adam(cfg.discriminator_lr), optax.adam(cfg.generator_lr)
    n = data.obs.shape[0]
    scan_key, index_key, fake_key = jax.random.split(key, 3)

    def step(carry, k):
        disc, disc_opt, gen, gen_opt = carry
        index_key, fake_key, gen_key = jax.random.split(k, 3)
        index = jax.random.randint(index_key, (cfg.batch_size,), 0, n)
        obs, act, real_next = data.obs[index], data.act[index], data.next_obs[index]
        fake_next = jax.lax.stop_gradient(_generate(gen, model, norms, obs, act, key=fake_key, kind=cfg.generator)[0])
        (_, info), grads = jax.value_and_grad(_disc_loss, has_aux=True)(disc, norms, obs, act, real_next, fake_next)
        disc, disc_opt = apply_optimizer(d_opt, disc, grads, disc_opt)
        if cfg.generator != "frozen":
            (_, g_info), g_grads = jax.value_and_grad(_gen_loss, has_aux=True)(gen, model, disc, norms, obs, act, key=gen_key, cfg=cfg)
            gen, gen_opt = apply_optimizer(g_opt, gen, g_grads, gen_opt)
            info = info | g_info
        return (disc, disc_opt, gen, gen_opt), info

    (disc, disc_opt, gen, gen_opt), infos = jax.lax.scan(step, (disc, disc_opt, gen, gen_opt),
                                                         jax.random.split(scan_key, cfg.snapshot_every))
    index = jax.random.randint(index_key, (cfg.calibration_rows,), 0, n)
    obs, act = data.obs[index], data.act[index]
    fake_next = _generate(gen, model, norms, obs, act, key=fake_key, kind=cfg.generator)[0]
    expert = jnp.mean(disc(*_standardised(norms, obs, act, data.next_obs[index]))[0])
    learner = jnp.mean(disc(*_standardised(norms, obs, act, fake_next))[0])
    return disc, disc_opt, gen, gen_opt, expert, learner, jax.tree_util.tree_map(jnp.mean, infos)


@eqx.filter_jit
def _start(cfg: DynamicsRewardConfig, model: ProbabilisticEnsemble, data: _Rows, key):
    """The input statistics, the first discriminator, the adversary (and the elites' model) and both optimiser states."""
    obs, act, nxt = data.obs, data.act, data.next_obs

    def stats(x):
        return Normalizer(mean=jnp.mean(x, axis=0), std=jnp.maximum(jnp.std(x, axis=0), 1e-6))

    norms = _Norms(input_norm=stats(jnp.concatenate([obs, act], axis=1)), delta_norm=stats(nxt - obs))
    disc_key, gen_key = jax.random.split(key)
    disc = Discriminators.init(cfg, model.obs_dim, model.act_dim, 1, key=disc_key)
    elites = elite_view(model)
    gen = GaussianGenerator.init(cfg, model.obs_dim, model.act_dim, key=gen_key) if cfg.generator == "fresh" else elites.net
    return norms, disc, optax.adam(cfg.discriminator_lr).init(disc), elites, gen, optax.adam(cfg.generator_lr).init(gen)


@eqx.filter_jit
def _assemble(kept: list, norms: _Norms, *, cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int) -> DynamicsReward:
    discs = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=0), *[d for d, _, _ in kept])
    return DynamicsReward(discriminators=discs, expert_logit=jnp.stack([e for _, e, _ in kept]),
                          learner_logit=jnp.stack([lo for _, _, lo in kept]), input_norm=norms.input_norm, delta_norm=norms.delta_norm,
                          cfg=cfg, obs_dim=obs_dim, act_dim=act_dim)


def learn_reward(dataset: Dataset, model: ProbabilisticEnsemble, cfg: DynamicsRewardConfig = DynamicsRewardConfig(), *, key: Key,
                 holdout_seed: int = 0, fit_cfg: FitConfig = FitConfig(), log: Callable[[str], None] | None = None,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every_s: float = 60.0,
                 metrics: str | os.PathLike | None = None) -> tuple[DynamicsReward, RewardReport]:
    """Learn a dynamics reward from ``dataset`` against ``model`` (a fitted ensemble); see the module docstring.

    The data are split as :func:`dynlearn.models.fit` split them for ``model``: pass the fit's
    ``FitReport.holdout_seed`` and the ``FitConfig`` it was fitted with (its ``holdout`` rule and sizes; the default
    is the default fit's). Training uses the training rows, the report's numbers the held-out ones, which ``model``
    never trained on either.

    ``checkpoint``: a folder for the training state (discriminator, adversary, optimisers, the snapshots kept so far),
    written every ``checkpoint_every_s`` seconds and on SIGTERM / Ctrl-C (then :class:`dynlearn.interrupt.Stopped` is
    raised); a call with the same inputs and folder continues from it and returns the uninterrupted call's reward.
    A checkpoint of other inputs is refused. The caller deletes the folder once the reward is saved. The blocks run in
    :func:`dynlearn.training.run`; ``metrics``: a JSONL file that gets one row per block.
    """
    if not isinstance(model, ProbabilisticEnsemble):
        raise ConfigError(f"learn_reward needs a fitted ProbabilisticEnsemble as the generator, got {type(model).__name__}.")
    t = dataset.transitions
    if t.obs_dim != model.obs_dim or t.act_dim != model.act_dim:
        raise DataError(dataset.source, f"has obs/act dims {t.obs_dim}/{t.act_dim}, the model {model.obs_dim}/{model.act_dim}.",
                        "learn the reward with the model fitted on this data.")
    train_t, hold_t, _, _ = split_holdout(dataset, fit_cfg, seed=holdout_seed)
    train = _rows(train_t)
    n = int(train.obs.shape[0])
    if n < cfg.batch_size:
        raise DataError(dataset.source, f"has {n} training transitions with a successor, fewer than batch_size {cfg.batch_size}.",
                        "lower DynamicsRewardConfig.batch_size or provide more data.")
    clock = WallClock()
    init_key, train_key, eval_key = jax.random.split(key, 3)
    model = model.with_task(None)  # the adversary needs no termination or reward function
    norms, disc, disc_opt, elites, gen, gen_opt = _start(cfg, model, train, init_key)

    # state: discriminator, adversary, their optimisers and the snapshots kept (the last cfg.snapshots);
    # progress: the history and this call's timing of blocks after its first (compiling) one, summed over calls
    state = (disc, disc_opt, gen, gen_opt, [])
    progress = {"kept": 0, "history": [], "timed_steps": 0, "timed_s": 0.0}
    blocks = cfg.steps // cfg.snapshot_every
    store = None
    if checkpoint is not None:
        store = Checkpoint(checkpoint, _reward_fingerprint(cfg, dataset, model, key, holdout_seed, fit_cfg), owner="learn_reward",
                           other="another reward's training (other data, model, config or key; `dynlearn model reward ... "
                                 "--force` deletes it)")
        snapshot_like = (disc, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        loaded = store.load(lambda p: (disc, disc_opt, gen, gen_opt, [snapshot_like] * int(p["kept"])))
        if loaded is not None:
            state, progress = loaded
            if log is not None:
                log(f"dynamics reward: continuing from {store.folder} at step {progress['step']:,}")
    timing = {"last": None}

    def reward_block(state, progress):
        disc, disc_opt, gen, gen_opt, kept = state
        b = progress["step"] // cfg.snapshot_every
        disc, disc_opt, gen, gen_opt, expert, learner, info = _block(disc, disc_opt, gen, gen_opt, elites, norms, train,
                                                                     jax.random.fold_in(train_key, b), cfg=cfg)
        kept = (list(kept) + [(disc, expert, learner)])[-cfg.snapshots:]
        info, expert_h, learner_h = jax.device_get((info, expert, learner))  # the one host sync per block
        row = {"step": (b + 1) * cfg.snapshot_every, **{k: float(v) for k, v in info.items()},
               "snapshot/expert_logit": float(expert_h), "snapshot/learner_logit": float(learner_h)}
        progress["history"].append(row)
        progress["kept"] = len(kept)
        now = time.perf_counter()
        if timing["last"] is not None:
            progress["timed_steps"] += cfg.snapshot_every
            progress["timed_s"] += now - timing["last"]
        timing["last"] = now
        if log is not None and (b + 1) % max(1, blocks // 10) == 0:
            log(f"dynamics reward: step {row['step']:,}  D loss {row['disc/loss']:.3f}  D accuracy {row['disc/accuracy']:.2f}")
        return (disc, disc_opt, gen, gen_opt, kept), row

    state, progress, _ = run(
        reward_block, state, progress, clock=clock, checkpoint=store, metrics=metrics,
        schedule=Schedule(block=cfg.snapshot_every, total=blocks * cfg.snapshot_every, checkpoint_every_s=checkpoint_every_s,
                          unit=cfg.snapshot_every),
        describe=lambda p, row: f"D loss {row['disc/loss']:.3f}  accuracy {row['disc/accuracy']:.2f}",
        line=ProgressLine(cfg.progress, "dynamics reward", blocks))

    reward = _assemble(list(state[4]), norms, cfg=cfg, obs_dim=model.obs_dim, act_dim=model.act_dim)
    diag = reward_diagnostics(reward, model, hold_t if len(hold_t) else train_t, key=eval_key)
    wall = clock.total()
    rate = progress["timed_steps"] / progress["timed_s"] if progress["timed_steps"] else cfg.steps / wall
    report = RewardReport(steps=blocks * cfg.snapshot_every, discriminators=reward.n_discriminators, train_size=n,
                          holdout_size=diag["rows"], holdout_reward_data=diag["reward_data"], holdout_reward_model=diag["reward_model"],
                          holdout_auc=diag["auc"], wall_s=wall, steps_per_s=rate, history=tuple(progress["history"]))
    return reward, report


def _reward_fingerprint(cfg: DynamicsRewardConfig, dataset: Dataset, model: ProbabilisticEnsemble, key: Key, holdout_seed: int,
                        fit_cfg: FitConfig) -> str:
    """What the training state depends on: a checkpoint of another reward's training is refused."""
    fields = {k: v for k, v in cfg.to_dict().items() if k != "progress"}
    return fingerprint(fields, dataset.content_hash(), arrays_digest(model), key_data(key), holdout_seed, fit_cfg.identity())

