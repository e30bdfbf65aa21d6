"""What every agent shares: the action-space spec, batch sources, the scanned update block, save/load.

An agent is a module of pure functions over an immutable state (an ``eqx.Module`` whose hyperparameters
are static fields):

- ``init(key, spec, cfg) -> state``
- ``update(state, batch, *, key, target_adjust=None) -> (state, info)``: one gradient step.
- ``update_block(state, data, *, key, steps, target_adjust=None) -> (state, info)``: ``steps`` updates
  in one ``lax.scan``, each on a fresh batch drawn from ``data``.
- ``act``, ``sample_action``, ``q_values``, ``save``, ``load``.

**The ``target_adjust`` hook.** Methods that change the critic's regression target (MOBILE's
uncertainty penalty, clipping) pass a callable ``target_adjust(state, batch, target, *, key) -> target``,
where ``target`` is the agent's TD target ``r + gamma * (1 - terminal) * next_value`` of shape
``[batch]`` and the return value (same shape) replaces it. It runs inside the jitted update, before the
critic loss, with the state *before* this step, so it may call the agent's ``q_values(state, obs, act,
target=True)`` and ``sample_action(state, obs, key=...)``. Pass an ``eqx.Module`` (its arrays are traced,
so new parameters do not recompile) or a plain function (static: a new function recompiles). Rows of
``batch`` are in the order the batch source produced them: :class:`MixedSampler` puts its sources'
rows one after another, so a hook can tell real rows from model rows by index. For example, a
MOBILE-style penalty on model rows::

    class Penalty(eqx.Module):
        coef: float
        n_real: int = eqx.field(static=True)

        def __call__(self, state, batch, target, *, key):
            u = ...  # [batch] uncertainty from sac.q_values(state, s', a', target=True) over sampled s'
            u = jnp.where(jnp.arange(target.shape[0]) < self.n_real, 0.0, u)  # zero on real rows
            return target - self.coef * u

``target`` is SAC's soft target (``next_value`` includes ``-alpha log pi``), TD3+BC's clipped
double-Q target, IQL's ``r + gamma (1 - terminal) V(s')`` and CQL's target as configured.

**Bootstrapping.** Targets use ``1 - terminal``: a timeout is not a terminal and bootstraps from
``next_obs``. A row with ``next_obs_valid`` False that is not terminal has no target; it is left
out of the critic losses (see :func:`td_mask`).

**Batch sources.** ``update_block`` takes a ``Transitions`` (sampled uniformly, ``cfg.batch_size`` rows
per step) or any callable ``source(*, key) -> Transitions`` such as :class:`UniformSampler` or
:class:`MixedSampler`; an ``eqx.Module`` source has its arrays traced, so refilling a buffer of the same
shape does not recompile.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Bool, Float, Int, Key
from ..checkpoint import load_leaves, read_header, save_module
from ..data.transitions import Transitions, sample
from ..errors import ConfigError, DataError

Info = dict[str, Float[Array, ""]]
S = TypeVar("S", bound=eqx.Module)


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """The shapes an agent is built for, and the action bounds its policy rescales to.

    Policies work in the unit box ``[-1, 1]^act_dim`` and map to ``[act_low, act_high]`` with
    :meth:`to_env`; critics take actions in environment units.
    """

    obs_dim: int
    """Size of an observation vector."""
    act_dim: int
    """Size of an action vector."""
    act_low: tuple[float, ...]
    """Lower action bound per dimension (finite)."""
    act_high: tuple[float, ...]
    """Upper action bound per dimension (finite, greater than ``act_low``)."""

    def __post_init__(self):
        low = tuple(float(x) for x in np.broadcast_to(np.asarray(self.act_low, np.float64), (self.act_dim,)))
        high = tuple(float(x) for x in np.broadcast_to(np.asarray(self.act_high, np.float64), (self.act_dim,)))
        object.__setattr__(self, "act_low", low)
        object.__setattr__(self, "act_high", high)
        if self.obs_dim < 1 or self.act_dim < 1:
            raise ConfigError(f"AgentSpec: obs_dim {self.obs_dim} and act_dim {self.act_dim} must be >= 1.")
        if not all(math.isfinite(lo) and math.isfinite(hi) and lo < hi for lo, hi in zip(low, high)):
            raise ConfigError(f"AgentSpec: action bounds must be finite with low < high, got {low} .. {high}.")

    @classmethod
    def from_env(cls, env) -> "AgentSpec":
        """From a Gymnasium environment with a flat ``Box`` observation and action space."""
        obs_space, act_space = env.observation_space, env.action_space
        return cls(int(np.prod(obs_space.shape)), int(np.prod(act_space.shape)),
                   tuple(np.ravel(act_space.low)), tuple(np.ravel(act_space.high)))

    @classmethod
    def from_dict(cls, d: dict) -> "AgentSpec":
        return cls(int(d["obs_dim"]), int(d["act_dim"]), tuple(d["act_low"]), tuple(d["act_high"]))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def center(self) -> Float[Array, " act"]:
        return (jnp.asarray(self.act_high, jnp.float32) + jnp.asarray(self.act_low, jnp.float32)) / 2

    @property
    def half_range(self) -> Float[Array, " act"]:
        return (jnp.asarray(self.act_high, jnp.float32) - jnp.asarray(self.act_low, jnp.float32)) / 2

    def to_env(self, u: Float[Array, "... act"]) -> Float[Array, "... act"]:
        """Unit-box action ``u`` in ``[-1, 1]`` to environment units."""
        return self.center + self.half_range * u

    def to_unit(self, a: Float[Array, "... act"]) -> Float[Array, "... act"]:
        """Environment-unit action to the unit box (inverse of :meth:`to_env`)."""
        return (a.astype(jnp.float32) - self.center) / self.half_range


# ----------------------------------------------------------------------------------------------
# Batch sources


class BatchSource(Protocol):
    """Anything ``update_block`` can draw a batch from inside ``lax.scan``."""

    def __call__(self, *, key: Key) -> Transitions: ...


class UniformSampler(eqx.Module):
    """``batch_size`` rows drawn uniformly with replacement from the first ``size`` rows of ``data``.

    ``size`` (a traced integer, default all rows) lets a fixed-size buffer that is only partly filled
    be sampled without recompiling as it fills.
    """

    data: Transitions
    batch_size: int = eqx.field(static=True)
    size: Int[Array, ""] | None = None

    def __call__(self, *, key: Key) -> Transitions:
        if self.size is None:
            return sample(self.data, self.batch_size, key=key)
        index = jax.random.randint(key, (self.batch_size,), 0, self.size)
        return jax.tree_util.tree_map(lambda x: jnp.take(x, index, axis=0), self.data)


class MixedSampler(eqx.Module):
    """Rows from several sources stacked in order (e.g. real rows first, then model rows).

    >>> source = MixedSampler.from_ratio(real, model_buffer, batch_size=256, real_ratio=0.05)
    """

    sources: tuple[UniformSampler, ...]

    @classmethod
    def from_ratio(cls, real: Transitions, model: Transitions, *, batch_size: int, real_ratio: float,
                   model_size: Int[Array, ""] | None = None) -> "MixedSampler":
        """``round(real_ratio * batch_size)`` real rows, then model rows (``model_size``: filled rows)."""
        if not 0.0 <= real_ratio <= 1.0:
            raise ConfigError(f"real_ratio {real_ratio} must be in [0, 1].")
        n_real = int(round(real_ratio * batch_size))
        parts = []
        if n_real > 0:
            parts.append(UniformSampler(real, n_real))
        if batch_size - n_real > 0:
            parts.append(UniformSampler(model, batch_size - n_real, model_size))
        return cls(tuple(parts))

    @property
    def batch_size(self) -> int:
        return sum(s.batch_size for s in self.sources)

    def __call__(self, *, key: Key) -> Transitions:
        keys = jax.random.split(key, len(self.sources))
        batches = [s(key=k) for s, k in zip(self.sources, keys)]
        if len(batches) == 1:
            return batches[0]
        return jax.tree_util.tree_map(lambda *xs: jnp.concatenate([x.astype(xs[0].dtype) for x in xs]), *batches)


def as_source(data: Transitions | BatchSource, batch_size: int) -> BatchSource:
    """A ``Transitions`` becomes a :class:`UniformSampler` of ``batch_size``; a callable is used as is."""
    if isinstance(data, Transitions):
        return UniformSampler(data, batch_size)
    if callable(data):
        return data
    raise TypeError(f"update_block needs Transitions or a callable batch source, got {type(data).__name__}")


def scan_updates(update: Callable, state: S, data: Transitions | BatchSource, *, key: Key, steps: int,
                 batch_size: int, target_adjust=None) -> tuple[S, Info]:
    """``steps`` calls of ``update`` in one ``lax.scan``; returns the final state and the mean info.

    Step ``i`` uses ``k_i = jax.random.split(key, steps)[i]``, then
    ``sample_key, update_key = jax.random.split(k_i)``: a batch from ``data`` with ``sample_key`` and
    ``update(state, batch, key=update_key, target_adjust=target_adjust)``. The same loop on the host
    gives the same result (up to float rounding).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"update_block: steps must be a positive int, got {steps!r}")
    source = as_source(data, batch_size)

    def body(state, keys):
        sample_key, update_key = keys
        batch = source(key=sample_key)
        return update(state, batch, key=update_key, target_adjust=target_adjust)

    # All keys up front (one vectorised threefry instead of one per step).
    keys = jax.vmap(jax.random.split)(jax.random.split(key, steps))
    state, infos = jax.lax.scan(body, state, (keys[:, 0], keys[:, 1]))
    return state, jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=0), infos)


# ----------------------------------------------------------------------------------------------
# Seeds stacked on a leading axis (for vmap)


def stack_states(states: list):
    """States (or any trees) of one structure -> one whose array leaves gain a leading seed axis (static fields kept):
    what ``eqx.filter_vmap(agent.update_block)`` trains all seeds with at once."""
    arrays = [eqx.filter(s, eqx.is_array) for s in states]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *arrays)
    return eqx.combine(stacked, eqx.filter(states[0], eqx.is_array, inverse=True))


def state_of(stacked, i: int):
    """Seed ``i``'s slice of a tree stacked by :func:`stack_states` (or made by a vmapped ``init``)."""
    return jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, stacked)


# ----------------------------------------------------------------------------------------------
# Small pure helpers


def polyak(target: S, online: S, tau: float) -> S:
    """``(1 - tau) * target + tau * online`` leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: t + tau * (o - t), target, online)


def apply_optimizer(opt, params: S, grads: S, opt_state) -> tuple[S, Any]:
    """One optax step on a module whose leaves are all arrays.

    optax mixes Python floats with its int32 step count, which strict dtype promotion rejects; the
    optimiser alone runs under standard promotion (its results are float32 either way).
    """
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = opt.update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state


def bootstrap(batch: Transitions) -> Float[Array, " batch"]:
    """``1 - terminal`` as float32: timeouts are not terminals, so they still bootstrap."""
    return 1.0 - batch.terminal.astype(jnp.float32)


def td_mask(batch: Transitions) -> Bool[Array, " batch"]:
    """Rows whose TD target is defined: a terminal, or a real successor observation.

    A non-terminal row without a successor (``next_obs_valid`` False, e.g. the last step of a
    truncated episode in a file without ``next_observations``) has no target and is left out of
    the critic losses; it still trains actors and value nets, which only need ``obs``.
    """
    return batch.terminal | batch.next_obs_valid


def successor(batch: Transitions) -> Float[Array, "batch obs"]:
    """``next_obs`` as float32, with ``obs`` in rows that have no successor (whatever the data holds
    there), so every network input is finite; those rows' targets are masked by :func:`td_mask`."""
    return jnp.where(batch.next_obs_valid[:, None], as_f32(batch.next_obs), as_f32(batch.obs))


def clean_target(target: Float[Array, " batch"], mask: Bool[Array, " batch"]) -> Float[Array, " batch"]:
    """Zero the target where it is undefined (so no NaN from a bogus ``next_obs`` reaches a gradient)
    and stop its gradient."""
    return jax.lax.stop_gradient(jnp.where(mask, target, 0.0))


def masked_mean(x: Float[Array, "... batch"], mask: Bool[Array, " batch"]) -> Float[Array, "..."]:
    """Mean over the last axis of the rows where ``mask`` holds (0 if none)."""
    total = jnp.sum(jnp.where(mask, x, 0.0), axis=-1)
    return total / jnp.maximum(jnp.sum(mask.astype(jnp.float32)), 1.0)


def as_f32(x) -> Float[Array, "..."]:
    return jnp.asarray(x).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------
# Checkpoints: config JSON (agent name, spec, config) + array leaves (networks, optimiser states, step)


def config_from_dict(cls: type, d: dict, *, source: str = "config"):
    """Rebuild a frozen config dataclass from JSON; unknown keys are an error, lists become tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise DataError(source, f"unknown {cls.__name__} keys {unknown}.", "load it with the dynlearn version that wrote it.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def save_state(folder: str | os.PathLike, state: eqx.Module, *, name: str) -> Path:
    """Write ``state`` (networks, target networks, optimiser states, step) and its spec + config."""
    config = {"agent": name, "spec": state.spec.to_dict(), "config": dataclasses.asdict(state.cfg)}
    return save_module(folder, state, config, kind=f"agent/{name}")


def load_state(folder: str | os.PathLike, *, name: str, init: Callable, config_cls: type) -> eqx.Module:
    """Read what :func:`save_state` wrote: rebuild the state's structure from the config, fill in the leaves."""
    header = read_header(folder, kind=f"agent/{name}")
    body = header["config"]
    spec = AgentSpec.from_dict(body["spec"])
    cfg = config_from_dict(config_cls, body["config"], source=str(Path(folder) / "config.json"))
    like = eqx.filter_eval_shape(init, jax.random.key(0), spec, cfg)
    return load_leaves(folder, like)


def check_key(key: Key | None, deterministic: bool, where: str) -> None:
    if key is None and not deterministic:
        raise ConfigError(f"{where}: pass key=... (or deterministic=True).")


def no_sampling(name: str) -> ConfigError:
    return ConfigError(f"{name}: the policy is deterministic, so sample_action (action, log_prob) is not defined; use act().")
