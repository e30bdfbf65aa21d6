"""What every planner shares: the search distribution over action sequences, its warm start, and the bounds.

A planner improves a distribution over ``H``-step action sequences for one start observation, given
``returns_fn(actions [N, H, act], key) -> [N]`` (:func:`~dynlearn.planning.objective.sequence_returns` bound to a
model), and returns the sequence to execute. Model-predictive control executes its first action, then at the next step
warm-starts from the mean shifted by one step (:func:`shift`), the freed last step at the middle of the action range,
and the spread reset to its initial value everywhere (as PETS' and mbrl-lib's CEM: a std that shrank around one
state's plan would keep the search from leaving it when the state changes, e.g. after an episode restarts).
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax.numpy as jnp

from .._types import Array, Float, Key

ReturnsFn = Callable[[Float[Array, "n h act"], Key], Float[Array, " n"]]


class PlanState(eqx.Module):
    """The search distribution for one start observation: per-step mean and std (std unused by MPPI's update), and
    the last iteration's elite sequences (iCEM's elite memory; shape ``[0, H, act]`` when unused)."""

    mean: Float[Array, "h act"]
    std: Float[Array, "h act"]
    elites: Float[Array, "k h act"]


def initial_state(horizon: int, low, high, init_std: float, keep: int = 0) -> PlanState:
    """The mean at the middle of ``[low, high]``, std ``init_std`` times the half-range, no elites yet (zeros)."""
    low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    mid, half = (low + high) / 2, (high - low) / 2
    return PlanState(mean=jnp.broadcast_to(mid, (horizon, mid.size)), std=jnp.broadcast_to(init_std * half, (horizon, mid.size)),
                     elites=jnp.broadcast_to(mid, (keep, horizon, mid.size)))


def shift(state: PlanState, low, high, init_std: float) -> PlanState:
    """Warm start for the next control step: the mean and elites without step 0, the initial mean appended as the new
    last step; the std back at its initial value."""
    fresh = initial_state(state.mean.shape[-2], low, high, init_std, keep=state.elites.shape[0])
    roll = lambda x, new: jnp.concatenate([x[..., 1:, :], new[..., -1:, :]], axis=-2)  # noqa: E731
    return PlanState(mean=roll(state.mean, fresh.mean), std=fresh.std, elites=roll(state.elites, fresh.elites))


def clip(actions, low, high):
    return jnp.clip(actions, jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32))
