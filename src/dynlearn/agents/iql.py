"""Implicit Q-Learning: Kostrikov, Nair & Levine 2021 (arXiv 2110.06169).

IQL never queries the critic at actions outside the data. A value net ``V(s)`` fits an upper
expectile (``expectile``) of the target critics' ``min_i Q'_i(s, a)`` over the data's actions; the
critics regress to ``r + gamma (1 - terminal) V(s')``; the policy is extracted by advantage-weighted
regression with weights ``min(exp(temperature (Q'(s, a) - V(s))), 100)``.

Order of one step as in the reference code (ikostrikov/implicit_q_learning): value, actor (with the
new value), critics (with the new value), targets. The actor's learning rate follows a cosine decay
over ``max_steps`` (the reference's ``opt_decay_schedule="cosine"``).
Differences from the paper: none in the algorithm. The Gaussian policy is the reference's
(``tanh`` mean, state-independent ``log_std`` in [-5, 2], not squashed), in the unit box, so
log-densities of data actions are of their unit-box values; ``policy="deterministic"`` replaces the
log-likelihood by a weighted squared error (CORL's ``iql_deterministic``). Dropout is not
implemented (the paper uses none for locomotion). Reward scaling (the paper's ``1000 / (max return -
min return)`` for locomotion) is the caller's job.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._types import Array, Float, Int, Key
from ..data.transitions import Transitions
from ..errors import ConfigError
from . import base
from .base import AgentSpec, BatchSource, Info
from .networks import DeterministicPolicy, GaussianPolicy, QEnsemble, ValueNet

NAME = "iql"


@dataclasses.dataclass(frozen=True)
class IQLConfig:
    """IQL hyperparameters; defaults are the paper's for MuJoCo locomotion (appendix B)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor, the value net and each critic."""
    n_critics: int = 2
    """Number of critics; the value and the advantages use their minimum."""
    actor_lr: float = 3e-4
    """Initial Adam learning rate of the policy (cosine-decayed over max_steps)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    value_lr: float = 3e-4
    """Adam learning rate of the value net."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics, every step."""
    batch_size: int = 256
    """Rows per gradient step in update_block."""
    expectile: float = 0.7
    """Expectile of the value loss (0.7 locomotion, 0.9 AntMaze)."""
    temperature: float = 3.0
    """Inverse temperature beta of the advantage weights exp(beta * (Q - V)) (3.0 locomotion, 10 AntMaze)."""
    max_weight: float = 100.0
    """Clip of the advantage weights."""
    max_steps: int = 1_000_000
    """Length of the actor's cosine learning-rate decay (the planned number of updates)."""
    policy: Literal["gaussian", "deterministic"] = "gaussian"
    """Gaussian (weighted log-likelihood, the paper) or deterministic (weighted squared error)."""
    log_std_min: float = -5.0
    """Lower clip of the Gaussian policy's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the Gaussian policy's log standard deviation."""

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1 or self.n_critics < 1 or self.batch_size < 1:
            raise ConfigError("IQLConfig: hidden widths, n_critics and batch_size must be positive")
        if not 0.0 < self.expectile < 1.0 or self.temperature < 0 or self.max_weight <= 0:
            raise ConfigError(f"IQLConfig: expectile {self.expectile} in (0, 1), temperature >= 0, max_weight > 0")
        if not 0.0 < self.tau <= 1.0 or not 0.0 <= self.gamma <= 1.0 or self.max_steps < 1:
            raise ConfigError(f"IQLConfig: tau {self.tau} in (0, 1], gamma {self.gamma} in [0, 1], max_steps >= 1")
        if self.policy not in ("gaussian", "deterministic"):
            raise ConfigError(f"IQLConfig.policy must be 'gaussian' or 'deterministic', got {self.policy!r}")


Config = IQLConfig


class IQLState(eqx.Module):
    """Everything IQL needs to act and to resume training exactly."""

    actor: GaussianPolicy | DeterministicPolicy
    critic: QEnsemble
    target_critic: QEnsemble
    value: ValueNet
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    value_opt: optax.OptState
    step: Int[Array, ""]
    cfg: IQLConfig = eqx.field(static=True)
    spec: AgentSpec = eqx.field(static=True)


State = IQLState


def _optimisers(cfg: IQLConfig):
    schedule = optax.cosine_decay_schedule(cfg.actor_lr, cfg.max_steps)
    return optax.adam(schedule), optax.adam(cfg.critic_lr), optax.adam(cfg.value_lr)


@eqx.filter_jit
def init(key: Key, spec: AgentSpec, cfg: IQLConfig = IQLConfig()) -> IQLState:
    """Fresh networks (target critics copy the critics) and optimiser states."""
    actor_key, critic_key, value_key = jax.random.split(key, 3)
    if cfg.policy == "gaussian":
        actor = GaussianPolicy(spec.obs_dim, spec.act_dim, cfg.hidden, state_dependent_std=False,
                               log_std_min=cfg.log_std_min, log_std_max=cfg.log_std_max, key=actor_key)
    else:
        actor = DeterministicPolicy(spec.obs_dim, spec.act_dim, cfg.hidden, key=actor_key)
    critic = QEnsemble(cfg.n_critics, spec.obs_dim, spec.act_dim, cfg.hidden, key=critic_key)
    value = ValueNet(spec.obs_dim, cfg.hidden, key=value_key)
    actor_tx, critic_tx, value_tx = _optimisers(cfg)
    with jax.numpy_dtype_promotion("standard"):
        actor_opt = actor_tx.init(actor)
    return IQLState(actor, critic, critic, value, actor_opt, critic_tx.init(critic), value_tx.init(value),
                    jnp.zeros((), jnp.int32), cfg, spec)


def expectile_loss(diff: Float[Array, "..."], expectile: float) -> Float[Array, "..."]:
    """``|expectile - 1(diff < 0)| diff^2``: an asymmetric square that fits the ``expectile``."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff * diff


@eqx.filter_jit
def update(state: IQLState, batch: Transitions, *, key: Key, target_adjust=None) -> tuple[IQLState, Info]:
    """One IQL step on ``batch`` (value, actor, critics, targets); see :mod:`dynlearn.agents.base` for
    ``target_adjust`` (applied to ``r + gamma (1 - terminal) V(s')``). IQL samples nothing: ``key``
    only feeds ``target_adjust``."""
    cfg, spec = state.cfg, state.spec
    actor_tx, critic_tx, value_tx = _optimisers(cfg)
    obs, act = base.as_f32(batch.obs), base.as_f32(batch.act)
    next_obs, rew = base.successor(batch), base.as_f32(batch.rew)
    q_data = jnp.min(state.target_critic(obs, act), axis=0)  # target critics at the data's actions

    def value_loss(value: ValueNet):
        v = value(obs)
        loss = jnp.mean(expectile_loss(q_data - v, cfg.expectile))
        return loss, {"loss/value": loss, "v/mean": jnp.mean(v)}

    (_, value_info), grads = jax.value_and_grad(value_loss, has_aux=True)(state.value)
    value, value_opt = base.apply_optimizer(value_tx, state.value, grads, state.value_opt)

    # One forward of the new value net over s and s' (advantages and the critic target).
    v_both = value(jnp.concatenate([obs, next_obs], axis=0))
    v, next_v = v_both[: obs.shape[0]], v_both[obs.shape[0]:]
    adv = q_data - v
    weight = jax.lax.stop_gradient(jnp.minimum(jnp.exp(cfg.temperature * adv), cfg.max_weight))
    unit_act = spec.to_unit(act)

    def actor_loss(actor):
        if cfg.policy == "gaussian":
            fit = -actor.log_prob(obs, unit_act)
        else:
            fit = jnp.sum((actor(obs) - unit_act) ** 2, axis=-1)
        loss = jnp.mean(weight * fit)
        return loss, {"loss/actor": loss}

    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
    actor, actor_opt = base.apply_optimizer(actor_tx, state.actor, grads, state.actor_opt)

    mask = base.td_mask(batch)
    target = rew + cfg.gamma * base.bootstrap(batch) * next_v
    if target_adjust is not None:
        target = target_adjust(state, batch, target, key=key)
    target = base.clean_target(target, mask)

    def critic_loss(critic: QEnsemble):
        q = critic(obs, act)
        mse = base.masked_mean((q - target) ** 2, mask)
        return jnp.sum(mse), {"loss/critic": jnp.mean(mse), "q/mean": jnp.mean(q), "q/target": base.masked_mean(target, mask)}

    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    critic, critic_opt = base.apply_optimizer(critic_tx, state.critic, grads, state.critic_opt)

    target_critic = base.polyak(state.target_critic, critic, cfg.tau)
    new = IQLState(actor, critic, target_critic, value, actor_opt, critic_opt, value_opt, state.step + 1, cfg, spec)
    info = {**value_info, **actor_info, **critic_info, "adv/mean": jnp.mean(adv), "weight/mean": jnp.mean(weight),
            "weight/clipped": jnp.mean((weight >= cfg.max_weight).astype(jnp.float32))}
    return new, info


@eqx.filter_jit
def update_block(state: IQLState, data: Transitions | BatchSource, *, key: Key, steps: int,
                 target_adjust=None) -> tuple[IQLState, Info]:
    """``steps`` updates in one ``lax.scan``, each on ``cfg.batch_size`` rows of ``data``; mean info."""
    return base.scan_updates(update, state, data, key=key, steps=steps, batch_size=state.cfg.batch_size,
                             target_adjust=target_adjust)


def _mode(state: IQLState, obs):
    return state.actor.mode(obs) if state.cfg.policy == "gaussian" else state.actor(obs)


@eqx.filter_jit
def act(state: IQLState, obs: Float[Array, "... obs"], *, key: Key | None = None,
        deterministic: bool = False) -> Float[Array, "... act"]:
    """An action in environment units: the policy's mean (``deterministic``, or a deterministic
    policy) or a Gaussian sample clipped to the bounds."""
    obs = base.as_f32(obs)
    if deterministic or state.cfg.policy == "deterministic":
        return state.spec.to_env(_mode(state, obs))
    base.check_key(key, deterministic, "iql.act")
    u, _ = state.actor.sample(obs, key=key)
    return state.spec.to_env(jnp.clip(u, -1.0, 1.0))


@eqx.filter_jit
def sample_action(state: IQLState, obs: Float[Array, "... obs"], *, key: Key) -> tuple[Float[Array, "... act"], Float[Array, "..."]]:
    """A Gaussian sample clipped to the bounds (environment units) and the unit-box log-density of the
    unclipped sample. Gaussian policy only."""
    if state.cfg.policy != "gaussian":
        raise base.no_sampling(NAME + " (policy='deterministic')")
    u, log_prob = state.actor.sample(base.as_f32(obs), key=key)
    return state.spec.to_env(jnp.clip(u, -1.0, 1.0)), log_prob


@eqx.filter_jit
def q_values(state: IQLState, obs: Float[Array, "... obs"], act: Float[Array, "... act"], *,
             target: bool = False) -> Float[Array, "n ..."]:
    """Every critic's ``Q(obs, act)`` (``target=True``: the target critics), shape ``[n_critics, ...]``."""
    critic = state.target_critic if target else state.critic
    return critic(base.as_f32(obs), base.as_f32(act))


@eqx.filter_jit
def values(state: IQLState, obs: Float[Array, "... obs"]) -> Float[Array, "..."]:
    """The value net's ``V(obs)``."""
    return state.value(base.as_f32(obs))


def save(folder: str | os.PathLike, state: IQLState) -> Path:
    """Save networks, targets, optimiser states and step, with spec and config (no pickle)."""
    return base.save_state(folder, state, name=NAME)


def load(folder: str | os.PathLike) -> IQLState:
    """Load what :func:`save` wrote; training resumes exactly."""
    return base.load_state(folder, name=NAME, init=init, config_cls=IQLConfig)
