"""MPPI over a navigation rollout model, closed loop in the navigation task: every episode of a batch in one compiled call.

:func:`run_navigation` plays ``B`` scenes (:func:`dynlearn.tasks.navigation.scenes`) at once: a ``lax.scan`` over the
time limit, ``vmap`` over scenes; at every step each robot observes, plans with :func:`~dynlearn.planning.mppi.mppi_plan`
over :func:`~dynlearn.planning.failure_cost.navigation_returns` (its rollout model, its failure cost), executes the
plan's first action in the exact task and warm-starts the next step from the shifted plan (:func:`~dynlearn.planning.base.shift`).
An episode ends at the goal (success), at a collision (failure) or at the time limit; finished episodes idle.

:class:`NavigationPolicy` is the same planner as a batch policy ``policy(obs [B, obs], rng) -> act`` of
:mod:`dynlearn.tasks.policy` for a rollout model that reads only the observation (:class:`LearnedRollout`).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Bool, Int, Key
from ..errors import ConfigError
from ..tasks import navigation as nav
from .base import PlanState, initial_state, shift
from .failure_cost import AbstractNavigationRollout, FailureCostConfig, LearnedRollout, navigation_returns
from .mppi import MPPIConfig, mppi_plan

LOW, HIGH = -np.ones(2, np.float32), np.ones(2, np.float32)


class Outcomes(eqx.Module):
    """Per episode: reached the goal, collided, and the steps taken (the time limit when neither)."""

    success: Bool[Array, " b"]
    failure: Bool[Array, " b"]
    steps: Int[Array, " b"]

    def summary(self) -> dict[str, float]:
        """Success and collision rates, and the mean steps of the successful episodes (nan when none)."""
        s, f, t = (np.asarray(x) for x in (self.success, self.failure, self.steps))
        return {"success": float(s.mean()), "collision": float(f.mean()), "timeout": float((~s & ~f).mean()),
                "steps_to_goal": float(t[s].mean()) if s.any() else float("nan"), "episodes": int(s.size)}


def _plan(rollout: AbstractNavigationRollout, mppi: MPPIConfig, cost: FailureCostConfig, plan: PlanState, obs, scene, state,
          key: Key):
    context, pose, vel, goal = rollout.start(obs, scene, state)
    returns_fn = lambda actions, _: navigation_returns(rollout, context, pose, vel, goal, actions, cost)  # noqa: E731
    seq, plan = mppi_plan(mppi, returns_fn, plan, LOW, HIGH, key)
    return seq[0], shift(plan, LOW, HIGH, mppi.init_std)


@eqx.filter_jit
def run_navigation(rollout: AbstractNavigationRollout, scenes: nav.Scene, mppi: MPPIConfig, cost: FailureCostConfig, *,
                   key: Key) -> Outcomes:
    """Play every scene of the stack once with MPPI over ``rollout`` (see the module docstring)."""
    cfg = rollout.nav
    b = scenes.goal.shape[0]
    plan0 = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (b, *x.shape)), initial_state(mppi.horizon, LOW, HIGH, mppi.init_std))

    def one(scene, state, plan, done, out, t, k):
        act, plan = _plan(rollout, mppi, cost, plan, nav.observe(cfg, scene, state), scene, state, k)
        nxt, failed, reached = nav.step(cfg, scene, state, act)
        success, failure, steps = out
        live = ~done
        out = (success | (live & reached), failure | (live & failed), jnp.where(live, t + 1, steps))
        state = jax.tree_util.tree_map(lambda a, c: jnp.where(live, a, c), nxt, state)
        return state, plan, done | failed | reached, out

    def body(carry, inputs):
        state, plan, done, out = carry
        t, k = inputs
        state, plan, done, out = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None, 0))(scenes, state, plan, done, out, t, k)
        return (state, plan, done, out), None

    state0 = jax.vmap(nav.reset)(scenes)
    out0 = (jnp.zeros(b, bool), jnp.zeros(b, bool), jnp.zeros(b, jnp.int32))
    steps = (jnp.arange(cfg.time_limit, dtype=jnp.int32), jax.random.split(key, (cfg.time_limit, b)))
    (_, _, _, (success, failure, n)), _ = jax.lax.scan(body, (state0, plan0, jnp.zeros(b, bool), out0), steps)
    return Outcomes(success=success, failure=failure, steps=n)


@dataclasses.dataclass
class NavigationPolicy:
    """MPPI over a :class:`LearnedRollout` as a batch policy (NumPy in and out), warm-started between calls."""

    rollout: LearnedRollout
    mppi: MPPIConfig = MPPIConfig(horizon=15, samples=128)
    cost: FailureCostConfig = FailureCostConfig()
    state: PlanState | None = None

    def __post_init__(self):
        if not isinstance(self.rollout, LearnedRollout):
            raise ConfigError("NavigationPolicy: the rollout must read only the observation (a LearnedRollout). Fix: plan "
                              "with run_navigation for a rollout that needs the scene.")
        self._act = eqx.filter_jit(jax.vmap(lambda r, p, o, k: _plan(r, self.mppi, self.cost, p, o, None, None, k),
                                            in_axes=(None, 0, 0, 0)))

    def reset(self) -> None:
        self.state = None

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        obs = jnp.asarray(np.asarray(obs, np.float32).reshape(-1, self.rollout.nav.obs_dim))
        if self.state is None or self.state.mean.shape[0] != obs.shape[0]:
            one = initial_state(self.mppi.horizon, LOW, HIGH, self.mppi.init_std)
            self.state = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (obs.shape[0], *x.shape)), one)
        keys = jax.random.split(jax.random.key(int(rng.integers(0, 2**31 - 1))), obs.shape[0])
        act, self.state = self._act(self.rollout, self.state, obs, keys)
        return np.asarray(act, np.float32)
