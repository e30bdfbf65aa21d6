"""Model-predictive control: a planner and a model make a policy.

:class:`MPC` binds a planner config (:class:`~dynlearn.planning.CEMConfig`, :class:`~dynlearn.planning.MPPIConfig`
or :class:`~dynlearn.planning.RandomShootingConfig`), the objective's settings (:class:`ObjectiveConfig`) and any
:class:`~dynlearn.models.AbstractTransitionModel` into a jittable ``act(state, obs [B, obs], key) -> (act [B, act],
state)``: one plan per row (``vmap``), the first action executed, the search distribution shifted for the next step.

:class:`PlannerPolicy` wraps that into the batch-policy contract of :mod:`dynlearn.tasks.policy`
(``policy(obs [B, obs], rng) -> act``), so a planner is evaluated and collects data like any policy::

    >>> mpc = dl.planning.MPC(model, dl.planning.CEMConfig(horizon=25), low=task.act_low, high=task.act_high)
    >>> dl.tasks.evaluate(dl.planning.PlannerPolicy(mpc), task, episodes=10, key=0)

The policy keeps each row's warm start between calls and starts afresh when the batch size changes or on
:meth:`PlannerPolicy.reset`; a row whose episode ended and restarted keeps its previous plan as a warm start, which only
changes where the first iteration searches.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Float, Key
from ..errors import ConfigError
from .base import PlanState, initial_state, shift
from .cem import CEMConfig, cem_plan
from .mppi import MPPIConfig, mppi_plan
from .objective import check_propagation, sequence_returns
from .shooting import RandomShootingConfig, shooting_plan

PLANNERS = {CEMConfig: cem_plan, MPPIConfig: mppi_plan, RandomShootingConfig: shooting_plan}


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """How candidate sequences are scored (:func:`~dynlearn.planning.objective.sequence_returns`)."""

    propagation: str = "tsinf"
    """'tsinf' (a member per particle, PETS' TS-inf), 'ts1' (a random elite per step) or 'expectation' (elites' mean)."""
    particles: int = 20
    """Particles per candidate sequence (PETS: 20); 1 under 'expectation'."""
    discount: float = 1.0
    """Weight discount ** t of step t's reward."""

    def __post_init__(self):
        check_propagation(self.propagation, self.particles)
        if not 0.0 < self.discount <= 1.0:
            raise ConfigError(f"ObjectiveConfig.discount must be in (0, 1], got {self.discount}.")


class MPC(eqx.Module):
    """A planner over a model (see the module docstring). ``low``/``high``: the action bounds."""

    model: Any
    low: Float[Array, " act"]
    high: Float[Array, " act"]
    planner: Any = eqx.field(static=True)
    objective: ObjectiveConfig = eqx.field(static=True)

    def __init__(self, model, planner=CEMConfig(), *, low, high, objective: ObjectiveConfig = ObjectiveConfig()):
        if type(planner) not in PLANNERS:
            raise ConfigError(f"MPC: planner must be one of {[c.__name__ for c in PLANNERS]}, got {type(planner).__name__}.")
        self.model, self.planner, self.objective = model, planner, objective
        self.low, self.high = jnp.asarray(low, jnp.float32).reshape(-1), jnp.asarray(high, jnp.float32).reshape(-1)
        if self.low.shape != (model.act_dim,) or self.high.shape != (model.act_dim,) or not bool(jnp.all(self.low < self.high)):
            raise ConfigError(f"MPC: action bounds must be {model.act_dim} values each with low < high, got {low} and {high}.")

    def init(self, batch: int) -> PlanState:
        """A fresh search distribution per row: arrays ``[batch, H, act]``."""
        keep = getattr(self.planner, "kept", 0)
        one = initial_state(self.planner.horizon, self.low, self.high, self.planner.init_std, keep)
        return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (batch, *x.shape)), one)

    def plan(self, state: PlanState, obs: Float[Array, " obs"], key: Key):
        """One row: ``(sequence [H, act], refitted state)`` (not shifted)."""
        o = self.objective
        returns_fn = lambda actions, k: sequence_returns(self.model, obs, actions, k, propagation=o.propagation,  # noqa: E731
                                                         particles=o.particles, discount=o.discount)
        return PLANNERS[type(self.planner)](self.planner, returns_fn, state, self.low, self.high, key)

    @eqx.filter_jit
    def act(self, state: PlanState, obs: Float[Array, "b obs"], key: Key):
        """``(first actions [B, act], states shifted for the next step)``."""
        keys = jax.random.split(key, obs.shape[0])
        seqs, states = jax.vmap(self.plan)(state, obs.astype(jnp.float32), keys)
        shifted = jax.vmap(lambda s: shift(s, self.low, self.high, self.planner.init_std))(states)
        return seqs[:, 0], shifted


class PlannerPolicy:
    """An :class:`MPC` as a batch policy ``policy(obs [B, obs], rng) -> act [B, act]`` (NumPy in and out)."""

    def __init__(self, mpc: MPC):
        self.mpc = mpc
        self.state: PlanState | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        obs = jnp.asarray(np.asarray(obs, np.float32).reshape(-1, self.mpc.model.obs_dim))
        if self.state is None or self.state.mean.shape[0] != obs.shape[0]:
            self.state = self.mpc.init(obs.shape[0])
        key = jax.random.key(int(rng.integers(0, 2**31 - 1)))
        act, self.state = self.mpc.act(self.state, obs, key)
        return np.asarray(act, np.float32)
