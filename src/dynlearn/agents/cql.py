"""Conservative Q-Learning: Kumar, Zhou, Tucker & Levine 2020 (arXiv 2006.04779), the CQL(H) variant on SAC.

Each critic's TD loss gets ``cql_weight * (T logsumexp_a Q(s, a)/T - Q(s, a_data))`` (batch means):
pushing Q down on actions from a proposal (uniform, and the policy at s and at s') and up on the
data's actions, so the learned Q lower-bounds the policy's value off the data. The logsumexp is
estimated by importance sampling over ``num_repeat_actions`` draws from each proposal, each Q minus
its proposal's log-density. The actor and the temperature are SAC's.

Order of one step as in OfflineRL-Kit's ``CQLPolicy``: actor, temperature, then critics (with the
updated actor), then targets. Defaults are Kit's for D4RL MuJoCo (3 x 256 networks, actor lr 1e-4,
``cql_weight`` 5, deterministic backup, no Lagrange). Differences: OfflineRL-Kit's code discards its
``reshape`` of the sampled Q values, so its logsumexp runs over the 3 proposals of one draw at a
time; ours runs over all ``3 * num_repeat_actions`` draws per state, as in the paper and the
original code. Log-densities (policy and uniform) are in the unit box, which for [-1, 1] bounds is
Kit's ``log(0.5^act_dim)``.
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
from . import base, sac
from .base import AgentSpec, BatchSource, Info
from .networks import QEnsemble, TanhGaussianPolicy

NAME = "cql"


@dataclasses.dataclass(frozen=True)
class CQLConfig:
    """CQL hyperparameters; defaults are OfflineRL-Kit's for D4RL MuJoCo (run_cql.py)."""

    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the actor and of each critic (3 x 256 in Kit and CORL)."""
    n_critics: int = 2
    """Number of critics; the target and the actor use their minimum."""
    actor_lr: float = 1e-4
    """Adam learning rate of the policy."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    alpha_lr: float = 1e-4
    """Adam learning rate of log(alpha), SAC's temperature."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics, every step."""
    batch_size: int = 256
    """Rows per gradient step in update_block."""
    auto_alpha: bool = True
    """Tune SAC's temperature toward target_entropy; if False alpha stays init_alpha."""
    init_alpha: float = 1.0
    """Initial temperature."""
    target_entropy: float | None = None
    """Entropy target of the policy in the unit box; None means -act_dim."""
    cql_weight: float = 5.0
    """Weight of the conservative term (alpha in the paper; 5.0 in Kit and CORL for MuJoCo)."""
    temperature: float = 1.0
    """Temperature T of the logsumexp."""
    num_repeat_actions: int = 10
    """Draws per state from each proposal (uniform, policy at s, policy at s')."""
    deterministic_backup: bool = True
    """Leave the entropy term out of the TD target (Kit's default for CQL)."""
    max_q_backup: bool = False
    """Back up the max of the target Q over num_repeat_actions policy draws at s' (the paper's AntMaze option)."""
    with_lagrange: bool = False
    """Tune the conservative weight so the gap tracks lagrange_threshold (CQL-Lagrange)."""
    lagrange_threshold: float = 10.0
    """Target of the weighted conservative gap when with_lagrange."""
    cql_alpha_lr: float = 3e-4
    """Adam learning rate of the Lagrange multiplier."""
    log_std_min: float = -5.0
    """Lower clip of the policy's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the policy's log standard deviation."""

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1 or self.n_critics < 1 or self.batch_size < 1:
            raise ConfigError("CQLConfig: hidden widths, n_critics and batch_size must be positive")
        if not 0.0 < self.tau <= 1.0 or not 0.0 <= self.gamma <= 1.0 or self.init_alpha <= 0:
            raise ConfigError(f"CQLConfig: tau {self.tau} in (0, 1], gamma {self.gamma} in [0, 1], init_alpha > 0")
        if self.cql_weight < 0 or self.temperature <= 0 or self.num_repeat_actions < 1:
            raise ConfigError("CQLConfig: cql_weight >= 0, temperature > 0 and num_repeat_actions >= 1 are required")


Config = CQLConfig


class CQLState(eqx.Module):
    """Everything CQL needs to act and to resume training exactly."""

    actor: TanhGaussianPolicy
    critic: QEnsemble
    target_critic: QEnsemble
    log_alpha: Float[Array, ""]
    log_cql_alpha: Float[Array, ""]
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    cql_alpha_opt: optax.OptState
    step: Int[Array, ""]
    cfg: CQLConfig = eqx.field(static=True)
    spec: AgentSpec = eqx.field(static=True)


State = CQLState


def _optimisers(cfg: CQLConfig):
    return optax.adam(cfg.actor_lr), optax.adam(cfg.critic_lr), optax.adam(cfg.alpha_lr), optax.adam(cfg.cql_alpha_lr)


@eqx.filter_jit
def init(key: Key, spec: AgentSpec, cfg: CQLConfig = CQLConfig()) -> CQLState:
    """Fresh networks (targets copy the critics) and optimiser states."""
    actor_key, critic_key = jax.random.split(key)
    actor = TanhGaussianPolicy(spec.obs_dim, spec.act_dim, cfg.hidden, log_std_min=cfg.log_std_min,
                               log_std_max=cfg.log_std_max, key=actor_key)
    critic = QEnsemble(cfg.n_critics, spec.obs_dim, spec.act_dim, cfg.hidden, key=critic_key)
    log_alpha = jnp.asarray(math.log(cfg.init_alpha), jnp.float32)
    log_cql_alpha = jnp.zeros((), jnp.float32)
    actor_tx, critic_tx, alpha_tx, cql_tx = _optimisers(cfg)
    return CQLState(actor, critic, critic, log_alpha, log_cql_alpha, actor_tx.init(actor), critic_tx.init(critic),
                    alpha_tx.init(log_alpha), cql_tx.init(log_cql_alpha), jnp.zeros((), jnp.int32), cfg, spec)


@eqx.filter_jit
def update(state: CQLState, batch: Transitions, *, key: Key, target_adjust=None) -> tuple[CQLState, Info]:
    """One CQL step on ``batch`` (see :mod:`dynlearn.agents.base` for ``target_adjust``)."""
    cfg, spec = state.cfg, state.spec
    actor_tx, critic_tx, alpha_tx, cql_tx = _optimisers(cfg)
    normal_key, uniform_key = jax.random.split(key)
    obs, act = base.as_f32(batch.obs), base.as_f32(batch.act)
    next_obs, rew = base.successor(batch), base.as_f32(batch.rew)
    b, r, a_dim = obs.shape[0], cfg.num_repeat_actions, spec.act_dim
    alpha = jnp.exp(state.log_alpha)
    # Noise for every policy sample of the step: actor loss (1), target (r if max_q_backup else 1),
    # and the proposals at s (r) and at s' (r).
    n_target = r if cfg.max_q_backup else 1
    eps = jax.random.normal(normal_key, (b, 1 + n_target + 2 * r, a_dim), jnp.float32)
    eps_actor, eps_target = eps[:, 0], eps[:, 1:1 + n_target]
    eps_pi, eps_next_pi = eps[:, 1 + n_target:1 + n_target + r], eps[:, 1 + n_target + r:]

    # Actor and temperature: SAC's, against the current critics.
    def actor_loss(actor: TanhGaussianPolicy):
        u, log_prob = actor.sample_with(obs, eps_actor)
        q = jnp.min(state.critic(obs, spec.to_env(u)), axis=0)
        loss = jnp.mean(alpha * log_prob - q)
        return loss, (log_prob, {"loss/actor": loss, "q/policy": jnp.mean(q)})

    (_, (log_prob, actor_info)), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
    actor, actor_opt = base.apply_optimizer(actor_tx, state.actor, grads, state.actor_opt)
    entropy = -jnp.mean(log_prob)
    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    if cfg.auto_alpha:
        target_entropy = -float(a_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        gap = jax.lax.stop_gradient(entropy - target_entropy)
        log_alpha, alpha_opt = base.apply_optimizer(alpha_tx, state.log_alpha, gap, state.alpha_opt)
        alpha = jnp.exp(log_alpha)  # Kit updates alpha before the critic step

    # TD target with the updated actor and the target critics.
    next_rep = jnp.broadcast_to(next_obs[:, None], (b, n_target, next_obs.shape[-1]))
    next_u, next_log_prob = actor.sample_with(next_rep, eps_target)
    next_q = jnp.min(state.target_critic(next_rep, spec.to_env(next_u)), axis=0)  # [b, n_target]
    next_v = jnp.max(next_q, axis=1) if cfg.max_q_backup else next_q[:, 0]
    if not cfg.deterministic_backup:
        next_v = next_v - alpha * (next_log_prob[:, 0] if not cfg.max_q_backup else jnp.mean(next_log_prob, axis=1))
    mask = base.td_mask(batch)
    target = rew + cfg.gamma * base.bootstrap(batch) * next_v
    if target_adjust is not None:
        target = target_adjust(state, batch, target, key=jax.random.fold_in(key, 1))
    target = base.clean_target(target, mask)

    # Proposal actions (detached) and their unit-box log-densities, all evaluated at s.
    obs_rep = jnp.broadcast_to(obs[:, None], (b, r, obs.shape[-1]))
    pi_u, pi_log_prob = actor.sample_with(obs_rep, eps_pi)
    next_pi_u, next_pi_log_prob = actor.sample_with(
        jnp.broadcast_to(next_obs[:, None], obs_rep.shape[:-1] + next_obs.shape[-1:]), eps_next_pi)
    rand_u = jax.random.uniform(uniform_key, (b, r, a_dim), jnp.float32, -1.0, 1.0)
    proposals = jax.lax.stop_gradient(spec.to_env(jnp.concatenate([rand_u, pi_u, next_pi_u], axis=1)))  # [b, 3r, act]
    log_density = jax.lax.stop_gradient(jnp.concatenate(
        [jnp.full((b, r), -a_dim * math.log(2.0), jnp.float32), pi_log_prob, next_pi_log_prob], axis=1))
    cql_alpha = jnp.clip(jnp.exp(state.log_cql_alpha), 0.0, 1e6)

    def critic_loss(critic: QEnsemble):
        q = critic(obs, act)  # [n, b]
        mse = base.masked_mean((q - target) ** 2, mask)
        q_prop = critic(jnp.broadcast_to(obs[:, None], proposals.shape[:-1] + obs.shape[-1:]), proposals)  # [n, b, 3r]
        lse = cfg.temperature * jax.nn.logsumexp((q_prop - log_density) / cfg.temperature, axis=-1)
        gap = cfg.cql_weight * (jnp.mean(lse, axis=1) - jnp.mean(q, axis=1))  # [n]
        conservative = cql_alpha * (gap - cfg.lagrange_threshold) if cfg.with_lagrange else gap
        loss = jnp.sum(mse + conservative)
        info = {"loss/critic": jnp.mean(mse), "loss/cql": jnp.mean(gap), "q/mean": jnp.mean(q),
                "q/logsumexp": jnp.mean(lse)}
        return loss, (gap, info)

    (_, (gap, critic_info)), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    critic, critic_opt = base.apply_optimizer(critic_tx, state.critic, grads, state.critic_opt)

    log_cql_alpha, cql_alpha_opt = state.log_cql_alpha, state.cql_alpha_opt
    info = {}
    if cfg.with_lagrange:
        # Loss -cql_alpha * mean_i(gap_i - threshold): the multiplier grows while the gap exceeds the threshold.
        grad = -cql_alpha * jax.lax.stop_gradient(jnp.mean(gap) - cfg.lagrange_threshold)
        log_cql_alpha, cql_alpha_opt = base.apply_optimizer(cql_tx, state.log_cql_alpha, grad, state.cql_alpha_opt)
        info["cql/alpha"] = cql_alpha

    target_critic = base.polyak(state.target_critic, critic, cfg.tau)
    new = CQLState(actor, critic, target_critic, log_alpha, log_cql_alpha, actor_opt, critic_opt, alpha_opt,
                   cql_alpha_opt, state.step + 1, cfg, spec)
    info.update({**actor_info, **critic_info, "q/target": base.masked_mean(target, mask), "policy/alpha": jnp.exp(state.log_alpha),
                 "policy/entropy": entropy})
    return new, info


@eqx.filter_jit
def update_block(state: CQLState, data: Transitions | BatchSource, *, key: Key, steps: int,
                 target_adjust=None) -> tuple[CQLState, Info]:
    """``steps`` updates in one ``lax.scan``, each on ``cfg.batch_size`` rows of ``data``; mean info."""
    return base.scan_updates(update, state, data, key=key, steps=steps, batch_size=state.cfg.batch_size,
                             target_adjust=target_adjust)


# CQL's actor and critics are SAC's (same fields), so acting and evaluating are SAC's functions.
act = sac.act
sample_action = sac.sample_action
q_values = sac.q_values


def save(folder: str | os.PathLike, state: CQLState) -> Path:
    """Save networks, targets, optimiser states, multipliers and step, with spec and config (no pickle)."""
    return base.save_state(folder, state, name=NAME)


def load(folder: str | os.PathLike) -> CQLState:
    """Load what :func:`save` wrote; training resumes exactly."""
    return base.load_state(folder, name=NAME, init=init, config_cls=CQLConfig)
