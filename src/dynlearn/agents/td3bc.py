"""TD3+BC: Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning" (arXiv 2106.06860).

TD3 (twin critics, target policy smoothing, delayed actor and target updates) with one change: the
actor maximises ``lambda Q_1(s, pi(s)) - (pi(s) - a)^2`` where ``lambda = alpha / mean|Q_1(s, pi(s))|``
(the mean is not differentiated), so the policy stays close to the data's actions.

Differences from the paper: none in the algorithm. State normalisation (the paper standardises
observations) is the caller's job. Noise and clipping are in the unit box (``0.2`` and ``0.5`` times
the half-range of each action dimension, which is the paper's ``max_action`` scaling for symmetric
bounds); the BC term is in environment units as in the reference code. On steps without an actor
update the info repeats the last actor update's metrics (kept in the state), so block means are
honest averages of real actor updates.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._types import Array, Float, Int, Key
from ..data.transitions import Transitions
from ..errors import ConfigError
from . import base
from .base import AgentSpec, BatchSource, Info
from .networks import DeterministicPolicy, QEnsemble

NAME = "td3bc"


@dataclasses.dataclass(frozen=True)
class TD3BCConfig:
    """TD3+BC hyperparameters; defaults are the paper's (Fujimoto & Gu 2021, table 3)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of each critic."""
    n_critics: int = 2
    """Number of critics; the target uses their minimum, the actor the first."""
    actor_lr: float = 3e-4
    """Adam learning rate of the policy."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target actor and critics, applied on actor-update steps."""
    batch_size: int = 256
    """Rows per gradient step in update_block."""
    alpha: float = 2.5
    """Weight of the Q term: lambda = alpha / mean |Q(s, pi(s))|."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise, as a fraction of each action's half-range."""
    noise_clip: float = 0.5
    """Clip of the smoothing noise, same units."""
    policy_delay: int = 2
    """Update the actor and the targets every this many critic steps."""

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1 or self.n_critics < 1 or self.batch_size < 1:
            raise ConfigError("TD3BCConfig: hidden widths, n_critics and batch_size must be positive")
        if not 0.0 < self.tau <= 1.0 or not 0.0 <= self.gamma <= 1.0 or self.policy_delay < 1:
            raise ConfigError(f"TD3BCConfig: tau {self.tau} in (0, 1], gamma {self.gamma} in [0, 1], policy_delay >= 1")
        if self.alpha < 0 or self.policy_noise < 0 or self.noise_clip < 0:
            raise ConfigError("TD3BCConfig: alpha, policy_noise and noise_clip must be >= 0")


Config = TD3BCConfig

_ACTOR_KEYS = ("loss/actor", "loss/bc", "q/policy", "td3bc/lambda")


class TD3BCState(eqx.Module):
    """Everything TD3+BC needs to act and to resume training exactly."""

    actor: DeterministicPolicy
    target_actor: DeterministicPolicy
    critic: QEnsemble
    target_critic: QEnsemble
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    step: Int[Array, ""]
    actor_info: dict[str, Float[Array, ""]]
    """Metrics of the last actor update, reported on steps without one."""
    cfg: TD3BCConfig = eqx.field(static=True)
    spec: AgentSpec = eqx.field(static=True)


State = TD3BCState


def _optimisers(cfg: TD3BCConfig):
    return optax.adam(cfg.actor_lr), optax.adam(cfg.critic_lr)


@eqx.filter_jit
def init(key: Key, spec: AgentSpec, cfg: TD3BCConfig = TD3BCConfig()) -> TD3BCState:
    """Fresh networks (targets are copies) and optimiser states."""
    actor_key, critic_key = jax.random.split(key)
    actor = DeterministicPolicy(spec.obs_dim, spec.act_dim, cfg.hidden, key=actor_key)
    critic = QEnsemble(cfg.n_critics, spec.obs_dim, spec.act_dim, cfg.hidden, key=critic_key)
    actor_tx, critic_tx = _optimisers(cfg)
    actor_info = {k: jnp.zeros((), jnp.float32) for k in _ACTOR_KEYS}
    return TD3BCState(actor, actor, critic, critic, actor_tx.init(actor), critic_tx.init(critic),
                      jnp.zeros((), jnp.int32), actor_info, cfg, spec)


@eqx.filter_jit
def update(state: TD3BCState, batch: Transitions, *, key: Key, target_adjust=None) -> tuple[TD3BCState, Info]:
    """One critic step; every ``policy_delay``-th call (the 2nd, 4th, ...) also an actor and target step."""
    cfg, spec = state.cfg, state.spec
    actor_tx, critic_tx = _optimisers(cfg)
    obs, act = base.as_f32(batch.obs), base.as_f32(batch.act)
    next_obs, rew = base.successor(batch), base.as_f32(batch.rew)

    # Target policy smoothing in the unit box, then the clipped double-Q target.
    noise = jnp.clip(cfg.policy_noise * jax.random.normal(key, act.shape, jnp.float32), -cfg.noise_clip, cfg.noise_clip)
    next_u = jnp.clip(state.target_actor(next_obs) + noise, -1.0, 1.0)
    next_v = jnp.min(state.target_critic(next_obs, spec.to_env(next_u)), axis=0)
    mask = base.td_mask(batch)
    target = rew + cfg.gamma * base.bootstrap(batch) * next_v
    if target_adjust is not None:
        target = target_adjust(state, batch, target, key=jax.random.fold_in(key, 1))
    target = base.clean_target(target, mask)

    def critic_loss(critic: QEnsemble):
        q = critic(obs, act)
        mse = base.masked_mean((q - target) ** 2, mask)
        return jnp.sum(mse), {"loss/critic": jnp.mean(mse), "q/mean": jnp.mean(q), "q/target": base.masked_mean(target, mask)}

    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    critic, critic_opt = base.apply_optimizer(critic_tx, state.critic, grads, state.critic_opt)

    def actor_loss(actor: DeterministicPolicy):
        pi = spec.to_env(actor(obs))
        q = critic.member(0, obs, pi)
        lam = cfg.alpha / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)))
        bc = jnp.mean((pi - act) ** 2)
        loss = bc - lam * jnp.mean(q)
        return loss, {"loss/actor": loss, "loss/bc": bc, "q/policy": jnp.mean(q), "td3bc/lambda": lam}

    def actor_step(_):
        (_, info), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
        actor, actor_opt = base.apply_optimizer(actor_tx, state.actor, grads, state.actor_opt)
        return (actor, actor_opt, base.polyak(state.target_actor, actor, cfg.tau),
                base.polyak(state.target_critic, critic, cfg.tau), info)

    def skip(_):
        return state.actor, state.actor_opt, state.target_actor, state.target_critic, state.actor_info

    do_actor = (state.step + 1) % cfg.policy_delay == 0
    actor, actor_opt, target_actor, target_critic, actor_info = jax.lax.cond(do_actor, actor_step, skip, None)
    new = TD3BCState(actor, target_actor, critic, target_critic, actor_opt, critic_opt, state.step + 1,
                     actor_info, cfg, spec)
    return new, {**critic_info, **actor_info}


@eqx.filter_jit
def update_block(state: TD3BCState, data: Transitions | BatchSource, *, key: Key, steps: int,
                 target_adjust=None) -> tuple[TD3BCState, Info]:
    """``steps`` updates in one ``lax.scan``, each on ``cfg.batch_size`` rows of ``data``; mean info."""
    return base.scan_updates(update, state, data, key=key, steps=steps, batch_size=state.cfg.batch_size,
                             target_adjust=target_adjust)


@eqx.filter_jit
def act(state: TD3BCState, obs: Float[Array, "... obs"], *, key: Key | None = None,
        deterministic: bool = False, noise: float = 0.1) -> Float[Array, "... act"]:
    """The policy's action in environment units; with ``deterministic=False``, plus Gaussian
    exploration noise of std ``noise`` (fraction of the half-range), clipped to the bounds."""
    base.check_key(key, deterministic, "td3bc.act")
    u = state.actor(base.as_f32(obs))
    if not deterministic:
        u = jnp.clip(u + noise * jax.random.normal(key, u.shape, jnp.float32), -1.0, 1.0)
    return state.spec.to_env(u)


def sample_action(state: TD3BCState, obs, *, key: Key):
    """Not defined: the policy is deterministic (there is no log-density)."""
    raise base.no_sampling(NAME)


@eqx.filter_jit
def q_values(state: TD3BCState, obs: Float[Array, "... obs"], act: Float[Array, "... act"], *,
             target: bool = False) -> Float[Array, "n ..."]:
    """Every critic's ``Q(obs, act)`` (``target=True``: the target critics), shape ``[n_critics, ...]``."""
    critic = state.target_critic if target else state.critic
    return critic(base.as_f32(obs), base.as_f32(act))


def save(folder: str | os.PathLike, state: TD3BCState) -> Path:
    """Save networks, targets, optimiser states, step and last actor metrics, with spec and config."""
    return base.save_state(folder, state, name=NAME)


def load(folder: str | os.PathLike) -> TD3BCState:
    """Load what :func:`save` wrote; training resumes exactly."""
    return base.load_state(folder, name=NAME, init=init, config_cls=TD3BCConfig)
