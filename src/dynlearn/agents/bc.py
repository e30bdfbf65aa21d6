"""Behaviour cloning: supervised regression of the data's actions on observations.

``policy="deterministic"`` minimises the squared error of a ``tanh`` policy (the BC baseline of
TD3+BC, Fujimoto & Gu 2021); ``policy="gaussian"`` maximises the log-likelihood of a Gaussian with a
``tanh`` mean and a state-dependent ``log_std`` (not squashed, so data actions on the bounds keep a
finite density). Both work in the unit box ``[-1, 1]`` (environment actions are rescaled by the
bounds), so the loss does not depend on the action units.
Differences from the references: none beyond the unit-box scaling (identical for [-1, 1] bounds).
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
from .networks import DeterministicPolicy, GaussianPolicy

NAME = "bc"


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """BC hyperparameters (TD3+BC paper's BC baseline: 256x256, Adam 3e-4, batch 256)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the policy."""
    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Rows per gradient step in update_block."""
    policy: Literal["deterministic", "gaussian"] = "deterministic"
    """Squared error of a deterministic policy, or log-likelihood of a Gaussian one."""
    log_std_min: float = -5.0
    """Lower clip of the Gaussian policy's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the Gaussian policy's log standard deviation."""

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("BCConfig: hidden widths, batch_size and lr must be positive")
        if self.policy not in ("deterministic", "gaussian"):
            raise ConfigError(f"BCConfig.policy must be 'deterministic' or 'gaussian', got {self.policy!r}")


Config = BCConfig


class BCState(eqx.Module):
    """The policy, its optimiser state and the step count."""

    actor: DeterministicPolicy | GaussianPolicy
    actor_opt: optax.OptState
    step: Int[Array, ""]
    cfg: BCConfig = eqx.field(static=True)
    spec: AgentSpec = eqx.field(static=True)


State = BCState


@eqx.filter_jit
def init(key: Key, spec: AgentSpec, cfg: BCConfig = BCConfig()) -> BCState:
    """A fresh policy and optimiser state."""
    if cfg.policy == "gaussian":
        actor = GaussianPolicy(spec.obs_dim, spec.act_dim, cfg.hidden, state_dependent_std=True,
                               log_std_min=cfg.log_std_min, log_std_max=cfg.log_std_max, key=key)
    else:
        actor = DeterministicPolicy(spec.obs_dim, spec.act_dim, cfg.hidden, key=key)
    return BCState(actor, optax.adam(cfg.lr).init(actor), jnp.zeros((), jnp.int32), cfg, spec)


@eqx.filter_jit
def update(state: BCState, batch: Transitions, *, key: Key, target_adjust=None) -> tuple[BCState, Info]:
    """One supervised step on ``batch``. BC has no critic: ``target_adjust`` must be None; ``key`` is unused."""
    if target_adjust is not None:
        raise ConfigError("bc has no critic target: target_adjust must be None")
    cfg, spec = state.cfg, state.spec
    obs, unit_act = base.as_f32(batch.obs), spec.to_unit(batch.act)

    def loss_fn(actor):
        if cfg.policy == "gaussian":
            nll = -jnp.mean(actor.log_prob(obs, unit_act))
            mse = jnp.mean((actor.mode(obs) - unit_act) ** 2)
            return nll, {"loss/actor": nll, "bc/mse": mse}
        mse = jnp.mean((actor(obs) - unit_act) ** 2)
        return mse, {"loss/actor": mse, "bc/mse": mse}

    (_, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.actor)
    actor, actor_opt = base.apply_optimizer(optax.adam(cfg.lr), state.actor, grads, state.actor_opt)
    return BCState(actor, actor_opt, state.step + 1, cfg, spec), info


@eqx.filter_jit
def update_block(state: BCState, data: Transitions | BatchSource, *, key: Key, steps: int,
                 target_adjust=None) -> tuple[BCState, Info]:
    """``steps`` updates in one ``lax.scan``, each on ``cfg.batch_size`` rows of ``data``; mean info."""
    return base.scan_updates(update, state, data, key=key, steps=steps, batch_size=state.cfg.batch_size,
                             target_adjust=target_adjust)


def _mode(state: BCState, obs):
    return state.actor.mode(obs) if state.cfg.policy == "gaussian" else state.actor(obs)


@eqx.filter_jit
def act(state: BCState, obs: Float[Array, "... obs"], *, key: Key | None = None,
        deterministic: bool = False) -> Float[Array, "... act"]:
    """An action in environment units: the mean (``deterministic``, or a deterministic policy) or a
    Gaussian sample clipped to the bounds."""
    obs = base.as_f32(obs)
    if deterministic or state.cfg.policy == "deterministic":
        return state.spec.to_env(_mode(state, obs))
    base.check_key(key, deterministic, "bc.act")
    u, _ = state.actor.sample(obs, key=key)
    return state.spec.to_env(jnp.clip(u, -1.0, 1.0))


@eqx.filter_jit
def sample_action(state: BCState, obs: Float[Array, "... obs"], *, key: Key) -> tuple[Float[Array, "... act"], Float[Array, "..."]]:
    """A Gaussian sample clipped to the bounds and the unit-box log-density of the unclipped sample."""
    if state.cfg.policy != "gaussian":
        raise base.no_sampling(NAME + " (policy='deterministic')")
    u, log_prob = state.actor.sample(base.as_f32(obs), key=key)
    return state.spec.to_env(jnp.clip(u, -1.0, 1.0)), log_prob


def q_values(state: BCState, obs, act, *, target: bool = False):
    """Not defined: BC has no critic."""
    raise ConfigError("bc has no critic: q_values is not defined")


def save(folder: str | os.PathLike, state: BCState) -> Path:
    """Save the policy, optimiser state and step, with spec and config (no pickle)."""
    return base.save_state(folder, state, name=NAME)


def load(folder: str | os.PathLike) -> BCState:
    """Load what :func:`save` wrote; training resumes exactly."""
    return base.load_state(folder, name=NAME, init=init, config_cls=BCConfig)
