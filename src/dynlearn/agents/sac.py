"""Soft Actor-Critic: Haarnoja et al. 2018 (arXiv 1801.01290), automatic temperature from 1812.05905.

A tanh-Gaussian policy maximises ``min_i Q_i(s, a) - alpha log pi(a|s)``; ``n_critics`` critics (2 by
default) regress to ``r + gamma (1 - terminal) (min_i Q'_i(s', a') - alpha log pi(a'|s'))`` with Polyak
-averaged targets ``Q'``, and ``alpha`` is tuned so the policy's entropy tracks ``-act_dim``.

The critics are one stacked ensemble, so SAC-N (An et al. 2021) is this code with ``n_critics=N``;
EDAC's gradient-diversity term is ``eta > 0`` (see :mod:`dynlearn.agents.edac`).
Order of one step, as in OfflineRL-Kit: critics, then the actor (against the updated critics), then
the temperature, then the targets.
Differences from the paper: none in the algorithm. Log-probabilities are of the action in the unit box
``[-1, 1]`` (before rescaling to the bounds), so the entropy target does not depend on the bounds;
``log_std`` is clipped to [-5, 2] (OfflineRL-Kit). The paper uses one learning rate 3e-4 for all
parts; OfflineRL-Kit's MOPO/MOBILE use actor 1e-4 and alpha 1e-4 (set them in the config).
Options for a Lipschitz-regularised critic (Zheng et al. 2023, :mod:`dynlearn.agents.lipschitz`): spectral normalisation
of its layers (``critic_spectral_norm``) and an adversarial state perturbation term in its loss (``adversarial_eps``); both
off by default.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._types import Array, Float, Int, Key
from ..data.transitions import Transitions
from ..errors import ConfigError
from . import base, lipschitz
from .base import AgentSpec, BatchSource, Info
from .networks import QEnsemble, TanhGaussianPolicy, edac_init

NAME = "sac"
INITS = (None, "edac")
"""Network initialisations :class:`SACConfig` knows (see its ``init``)."""


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters; defaults are the paper's (Haarnoja et al. 2018, table 1) with 256x256 networks."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of each critic (256x256: SAC's paper and the offline MBRL papers)."""
    n_critics: int = 2
    """Number of critics; the target and the actor use their minimum (2: SAC; 10-50: SAC-N/EDAC)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the policy."""
    actor_lr_decay_steps: int | None = None
    """Cosine-anneal the policy's learning rate from ``actor_lr`` to 0 over this many updates (OfflineRL-Kit's MOPO and
    MOBILE: the run's length); None keeps it constant."""
    actor_lr_decay_every: int = 1
    """Updates between changes of the annealed rate (OfflineRL-Kit steps its scheduler once per epoch of 1,000
    updates; 1 anneals smoothly)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log(alpha)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics: target <- (1 - tau) target + tau online, every step."""
    batch_size: int = 256
    """Rows per gradient step in update_block."""
    auto_alpha: bool = True
    """Tune the temperature toward target_entropy; if False alpha stays init_alpha."""
    init_alpha: float = 1.0
    """Initial temperature (log_alpha = 0, as in OfflineRL-Kit and CORL)."""
    alpha_max: float | None = None
    """Upper clamp of the temperature the losses use (OfflineRL-Kit's SAC, MOPO and MOBILE: 1.0); None: no clamp."""
    target_entropy: float | None = None
    """Entropy target of the policy in the unit box; None means -act_dim."""
    backup_entropy: bool = True
    """Subtract alpha log pi(a'|s') in the critic target (the soft Bellman backup)."""
    eta: float = 0.0
    """EDAC's gradient-diversity weight (An et al. 2021); 0 is plain SAC/SAC-N."""
    log_std_min: float = -5.0
    """Lower clip of the policy's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the policy's log standard deviation."""
    init: str | None = None
    """Network initialisation: None is PyTorch's ``Linear`` default (OfflineRL-Kit's SAC, MOPO, MOBILE); "edac" is
    EDAC's (its code, CORL and the RAVL reference): hidden biases 0.1, last layers uniform in +-3e-3 (critics) and
    +-1e-3 (policy), so every initial Q is near 0 (:func:`dynlearn.agents.networks.edac_init`)."""
    critic_spectral_norm: str | None = None
    """Spectral normalisation of the critics (Miyato et al. 2018; Zheng et al. 2023): "hidden" every layer but the output,
    "all" every layer, one power iteration per update; None: off (:mod:`dynlearn.agents.lipschitz`)."""
    adversarial_eps: float | None = None
    """Radius (L-infinity, observation units) of the adversarial state perturbation whose squared change of each Q is added
    to the critic loss (Zheng et al. 2023's robust regularisation); None: off."""
    adversarial_coef: float | None = None
    """Weight of that term (needs adversarial_eps); None: 1.0."""
    adversarial_steps: int | None = None
    """Projected sign-gradient ascent steps that find the perturbation (needs adversarial_eps); None: 1."""

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"SACConfig.hidden must be positive widths, got {self.hidden}")
        if self.n_critics < 1 or (self.eta > 0 and self.n_critics < 2):
            raise ConfigError(f"SACConfig.n_critics must be >= 1 (>= 2 with eta > 0), got {self.n_critics}")
        if not 0.0 < self.tau <= 1.0 or not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"SACConfig: tau {self.tau} must be in (0, 1], gamma {self.gamma} in [0, 1]")
        if self.alpha_max is not None and self.alpha_max <= 0:
            raise ConfigError(f"SACConfig.alpha_max must be None or > 0, got {self.alpha_max}")
        if self.init_alpha <= 0 or self.batch_size < 1 or self.eta < 0:
            raise ConfigError("SACConfig: init_alpha > 0, batch_size >= 1 and eta >= 0 are required")
        if self.actor_lr_decay_steps is not None and self.actor_lr_decay_steps < 1 or self.actor_lr_decay_every < 1:
            raise ConfigError(f"SACConfig: actor_lr_decay_steps ({self.actor_lr_decay_steps}) must be None or >= 1 and "
                              f"actor_lr_decay_every ({self.actor_lr_decay_every}) >= 1")
        if self.init not in INITS:
            raise ConfigError(f"SACConfig.init must be None (PyTorch's default) or 'edac', got {self.init!r}")
        if self.critic_spectral_norm not in (None, *lipschitz.LAYERS):
            raise ConfigError(f"SACConfig.critic_spectral_norm must be None (off), 'hidden' or 'all', "
                              f"got {self.critic_spectral_norm!r}")
        if self.adversarial_eps is None:
            if self.adversarial_coef is not None or self.adversarial_steps is not None:
                raise ConfigError("SACConfig: adversarial_coef and adversarial_steps need adversarial_eps (the perturbation's "
                                  "radius); set it, or leave all three None.")
        elif not self.adversarial_eps > 0 or self.adversarial_coef is not None and not self.adversarial_coef > 0:
            raise ConfigError(f"SACConfig: adversarial_eps ({self.adversarial_eps}) and adversarial_coef ({self.adversarial_coef}) "
                              "must be > 0 (None: off, and 1.0).")
        if self.adversarial_steps is not None and self.adversarial_steps < 1:
            raise ConfigError(f"SACConfig.adversarial_steps must be None (1) or >= 1, got {self.adversarial_steps}")


Config = SACConfig


class SACState(eqx.Module):
    """Everything SAC needs to act and to resume training exactly."""

    actor: TanhGaussianPolicy
    critic: QEnsemble
    target_critic: QEnsemble
    log_alpha: Float[Array, ""]
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    step: Int[Array, ""]
    critic_sn: tuple[Float[Array, "n o"], ...] | None
    """Power-iteration vectors of the critics' normalised layers (``critic_spectral_norm``); None without it. ``critic``
    holds the raw weights; :func:`dynlearn.agents.lipschitz.effective_critic` gives the normalised critics."""
    cfg: SACConfig = eqx.field(static=True)
    spec: AgentSpec = eqx.field(static=True)


State = SACState


def actor_lr_schedule(cfg: SACConfig):
    """The policy's learning rate at an update count: constant, or cosine-annealed in steps of ``actor_lr_decay_every``
    updates, ``actor_lr * (1 + cos(pi * min(k, K) / K)) / 2`` with ``k = count // every`` and ``K = decay_steps / every``
    (PyTorch's ``CosineAnnealingLR`` stepped once per epoch, as OfflineRL-Kit)."""
    if cfg.actor_lr_decay_steps is None:
        return cfg.actor_lr
    every = cfg.actor_lr_decay_every
    periods = max(cfg.actor_lr_decay_steps / every, 1.0)

    def schedule(count):
        k = jnp.minimum(count // every, periods)
        return cfg.actor_lr * 0.5 * (1.0 + jnp.cos(jnp.pi * k / periods))

    return schedule


def _optimisers(cfg: SACConfig):
    return optax.adam(actor_lr_schedule(cfg)), optax.adam(cfg.critic_lr), optax.adam(cfg.alpha_lr)


def _target_entropy(state: SACState) -> float:
    cfg = state.cfg
    return -float(state.spec.act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)


@eqx.filter_jit
def init(key: Key, spec: AgentSpec, cfg: SACConfig = SACConfig()) -> SACState:
    """Fresh networks (targets copy the critics) and optimiser states."""
    actor_key, critic_key = jax.random.split(key)
    actor = TanhGaussianPolicy(spec.obs_dim, spec.act_dim, cfg.hidden, log_std_min=cfg.log_std_min,
                               log_std_max=cfg.log_std_max, key=actor_key)
    critic = QEnsemble(cfg.n_critics, spec.obs_dim, spec.act_dim, cfg.hidden, key=critic_key)
    if cfg.init == "edac":  # new keys only here, so the default init draws exactly what it always drew
        actor_last, critic_last = jax.random.split(jax.random.fold_in(key, 1))
        actor = eqx.tree_at(lambda a: a.net, actor, edac_init(actor.net, last_bound=1e-3, key=actor_last))
        critic = eqx.tree_at(lambda c: c.net.members, critic, edac_init(critic.net.members, last_bound=3e-3, key=critic_last))
    critic_sn, target = None, critic
    if cfg.critic_spectral_norm is not None:  # a key of its own (default draws unchanged); targets copy the normalised critics
        critic_sn = lipschitz.power_vectors(critic, cfg.critic_spectral_norm, key=jax.random.fold_in(key, 2))
        target = lipschitz.normalise(critic, critic_sn)
    log_alpha = jnp.asarray(math.log(cfg.init_alpha), jnp.float32)
    actor_tx, critic_tx, alpha_tx = _optimisers(cfg)
    return SACState(actor, critic, target, log_alpha, actor_tx.init(actor), critic_tx.init(critic),
                    alpha_tx.init(log_alpha), jnp.zeros((), jnp.int32), critic_sn, cfg, spec)


def _q_and_diversity(critic: QEnsemble, obs, act) -> tuple[Float[Array, "n batch"], Float[Array, ""]]:
    """Every critic's ``Q(obs, act)`` and EDAC's gradient-diversity loss from one forward pass: the
    sum over pairs i != j of cos(grad_a Q_i, grad_a Q_j), mean over rows, divided by n - 1. Each
    critic gets its own copy of the actions, so one backward pass gives every critic's gradient."""
    n = critic.net.n

    def total(a):
        q = critic.per_member(obs, a)
        return jnp.sum(q), q

    g, q = jax.grad(total, has_aux=True)(jnp.broadcast_to(act, (n, *act.shape)))  # g: [n, B, act]
    g = g / (jnp.linalg.norm(g, axis=-1, keepdims=True) + 1e-10)
    cos = jnp.einsum("ibk,jbk->bij", g, g)  # [B, n, n]
    off_diagonal = jnp.sum(cos, axis=(1, 2)) - jnp.trace(cos, axis1=1, axis2=2)
    return q, jnp.mean(off_diagonal) / (n - 1)


def _diversity(critic: QEnsemble, obs, act) -> Float[Array, ""]:
    """EDAC's gradient-diversity loss alone (see :func:`_q_and_diversity`)."""
    return _q_and_diversity(critic, obs, act)[1]


@eqx.filter_jit
def update(state: SACState, batch: Transitions, *, key: Key, target_adjust=None) -> tuple[SACState, Info]:
    """One SAC step on ``batch`` (see :mod:`dynlearn.agents.base` for ``target_adjust``)."""
    cfg, spec = state.cfg, state.spec
    actor_tx, critic_tx, alpha_tx = _optimisers(cfg)
    obs, act = base.as_f32(batch.obs), base.as_f32(batch.act)
    next_obs, rew = base.successor(batch), base.as_f32(batch.rew)
    alpha = jnp.exp(state.log_alpha) if cfg.alpha_max is None else jnp.minimum(jnp.exp(state.log_alpha), cfg.alpha_max)
    # One draw for both policy samples (at s' for the target, at s for the actor loss).
    next_eps, eps = jax.random.normal(key, (2, *act.shape), jnp.float32)

    # Critic target from the current policy and the target critics.
    next_u, next_log_prob = state.actor.sample_with(next_obs, next_eps)
    next_v = jnp.min(state.target_critic(next_obs, spec.to_env(next_u)), axis=0)
    if cfg.backup_entropy:
        next_v = next_v - alpha * next_log_prob
    mask = base.td_mask(batch)
    target = rew + cfg.gamma * base.bootstrap(batch) * next_v
    if target_adjust is not None:
        target = target_adjust(state, batch, target, key=jax.random.fold_in(key, 1))
    target = base.clean_target(target, mask)

    # Spectral normalisation: one power iteration on the raw weights; the losses see W / sigma (gradient through sigma).
    critic_sn = None if state.critic_sn is None else lipschitz.power_step(state.critic, state.critic_sn)
    effective = (lambda raw: raw) if critic_sn is None else (lambda raw: lipschitz.normalise(raw, critic_sn))  # noqa: E731
    if cfg.adversarial_eps is not None:  # the perturbed states, from the critics before this step (no gradient)
        obs_adv = lipschitz.adversarial_obs(effective(state.critic), obs, act, eps=cfg.adversarial_eps,
                                            steps=cfg.adversarial_steps or 1, key=jax.random.fold_in(key, 2))

    def critic_loss(raw: QEnsemble):
        critic = effective(raw)
        if cfg.eta > 0:
            q, div = _q_and_diversity(critic, obs, act)  # [n, B], EDAC's term from the same forward pass
        else:
            q = critic(obs, act)  # [n, B]
        mse = base.masked_mean((q - target) ** 2, mask)
        loss = jnp.sum(mse)
        info = {"loss/critic": jnp.mean(mse), "q/mean": jnp.mean(q), "q/std_members": jnp.mean(jnp.std(q, axis=0))}
        if cfg.eta > 0:
            loss = loss + cfg.eta * div
            info["loss/diversity"] = div
        if cfg.adversarial_eps is not None:
            penalty = lipschitz.adversarial_penalty(critic, obs_adv, act, q)  # [n]
            loss = loss + (1.0 if cfg.adversarial_coef is None else cfg.adversarial_coef) * jnp.sum(penalty)
            info["loss/adversarial"] = jnp.mean(penalty)
        return loss, info

    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    raw_critic, critic_opt = base.apply_optimizer(critic_tx, state.critic, grads, state.critic_opt)
    critic = effective(raw_critic)
    if critic_sn is not None:
        critic_info["critic/sigma_raw"] = jnp.mean(jnp.stack(lipschitz.estimated_sigmas(state.critic, critic_sn)))

    def actor_loss(actor: TanhGaussianPolicy):
        u, log_prob = actor.sample_with(obs, eps)
        q = jnp.min(critic(obs, spec.to_env(u)), axis=0)
        loss = jnp.mean(alpha * log_prob - q)
        return loss, (log_prob, {"loss/actor": loss, "q/policy": jnp.mean(q)})

    (_, (log_prob, actor_info)), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
    actor, actor_opt = base.apply_optimizer(actor_tx, state.actor, grads, state.actor_opt)

    entropy = -jnp.mean(log_prob)
    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    alpha_loss = jnp.zeros((), jnp.float32)
    if cfg.auto_alpha:
        # Loss -log_alpha * mean(log_prob + target_entropy) = log_alpha * (entropy - target_entropy):
        # its gradient is the entropy gap, so alpha falls while the entropy is above target.
        gap = jax.lax.stop_gradient(entropy - _target_entropy(state))
        alpha_loss = state.log_alpha * gap
        log_alpha, alpha_opt = base.apply_optimizer(alpha_tx, state.log_alpha, gap, state.alpha_opt)

    target_critic = base.polyak(state.target_critic, critic, cfg.tau)
    new = SACState(actor, raw_critic, target_critic, log_alpha, actor_opt, critic_opt, alpha_opt, state.step + 1, critic_sn,
                   cfg, spec)
    info = {**critic_info, **actor_info, "q/target": base.masked_mean(target, mask), "policy/alpha": alpha,
            "loss/alpha": alpha_loss, "policy/entropy": entropy}
    return new, info


@eqx.filter_jit
def update_block(state: SACState, data: Transitions | BatchSource, *, key: Key, steps: int,
                 target_adjust=None) -> tuple[SACState, Info]:
    """``steps`` updates in one ``lax.scan``, each on ``cfg.batch_size`` rows of ``data``; mean info."""
    return base.scan_updates(update, state, data, key=key, steps=steps, batch_size=state.cfg.batch_size,
                             target_adjust=target_adjust)


@eqx.filter_jit
def act(state: SACState, obs: Float[Array, "... obs"], *, key: Key | None = None,
        deterministic: bool = False) -> Float[Array, "... act"]:
    """An action in environment units: the policy's mean (``deterministic``) or a sample."""
    base.check_key(key, deterministic, "sac.act")
    obs = base.as_f32(obs)
    u = state.actor.mode(obs) if deterministic else state.actor.sample(obs, key=key)[0]
    return state.spec.to_env(u)


@eqx.filter_jit
def sample_action(state: SACState, obs: Float[Array, "... obs"], *, key: Key) -> tuple[Float[Array, "... act"], Float[Array, "..."]]:
    """A sampled action (environment units) and its log-density in the unit box."""
    u, log_prob = state.actor.sample(base.as_f32(obs), key=key)
    return state.spec.to_env(u), log_prob


@eqx.filter_jit
def q_values(state: SACState, obs: Float[Array, "... obs"], act: Float[Array, "... act"], *,
             target: bool = False) -> Float[Array, "n ..."]:
    """Every critic's ``Q(obs, act)`` (``target=True``: the target critics), shape ``[n_critics, ...]``."""
    critic = state.target_critic if target else lipschitz.effective_critic(state)
    return critic(base.as_f32(obs), base.as_f32(act))


def save(folder: str | os.PathLike, state: SACState) -> Path:
    """Save networks, targets, optimiser states and step, with spec and config (no pickle)."""
    return base.save_state(folder, state, name=NAME)


def load(folder: str | os.PathLike) -> SACState:
    """Load what :func:`save` wrote; training resumes exactly."""
    return base.load_state(folder, name=NAME, init=init, config_cls=SACConfig)
