"""MPPI's objective for navigation with a failure model: expected progress to the goal, discounted by the probability
of having failed, minus the cost of failing.

Kim et al. 2022 (RSS, arXiv 2204.08647) score each sampled command sequence in their sampling-based MPC with the
learned model's predicted trajectory (progress along the path) and its predicted collision probabilities; Roth et al.
2025 (RSS, arXiv 2504.19322) plan with MPPI over a learned perceptive forward model's predicted poses and failure risk,
so that the cost needs no hand-tuned obstacle terms. Here a rollout model gives, per step ``t`` of a sequence, the next
pose and ``p_t``, the probability of failing during that step; the survival probability ``S_t = prod_{k<=t} (1 - p_k)``
(P(no failure so far)) weights each step's progress ``d_{t-1} - d_t`` (distance to the goal) and the objective is

    J = sum_t S_t (d_{t-1} - d_t)  -  failure_cost * (1 - S_H),

the expected return of an episode that pays ``failure_cost`` when it fails and ends there. A rollout that reaches the
goal (``d_t < goal_radius``) stops there: no more progress, no more risk. With ``use_failure=False`` every ``p_t`` is
taken as 0: the same model and planner with the failure head ignored.

Rollout models (:class:`AbstractNavigationRollout`): ``start(obs, scene, state)`` gives what the rollout reads and the
initial pose, velocities and goal in its frame; ``step(context, pose, vel, act)`` gives the next pose, velocities and
``p``. :class:`LearnedRollout` reads only the observation (the robot-centric grid, in the robot's frame at planning
time) and the learned model; :class:`TrueRollout` is the exact simulator with the exact collision check on the world
map (``p`` is 0 or 1).
"""

from __future__ import annotations

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array, Float
from ..errors import ConfigError
from ..models.failure import FailureModel
from ..tasks import navigation as nav


@dataclasses.dataclass(frozen=True)
class FailureCostConfig:
    failure_cost: float = 10.0
    """Cost of a failure, in units of distance (progress to the goal); 0 ignores failure in the cost."""
    use_failure: bool = True
    """False: every step's failure probability is taken as 0 (the planner without the failure head)."""

    def __post_init__(self):
        if self.failure_cost < 0:
            raise ConfigError(f"FailureCostConfig.failure_cost must be >= 0, got {self.failure_cost}.")


class AbstractNavigationRollout(eqx.Module):
    """A model the navigation objective rolls sequences through (see the module docstring)."""

    nav: eqx.AbstractVar[nav.NavigationConfig]

    @abc.abstractmethod
    def start(self, obs: Float[Array, " obs"], scene: nav.Scene, state: nav.NavState):
        """``(context, pose [3], vel [2], goal [2])`` in the rollout's frame."""

    @abc.abstractmethod
    def step(self, context, pose: Float[Array, "3"], vel: Float[Array, "2"], act: Float[Array, "2"]):
        """``(next pose [3], next velocities [2], P(failure during the step) [])``."""


class LearnedRollout(AbstractNavigationRollout):
    """The learned model on the perceived grid: the patch at each predicted pose is read from the observation's grid."""

    model: FailureModel
    nav: nav.NavigationConfig = eqx.field(static=True)

    def start(self, obs, scene=None, state=None):
        goal, vel, grid = nav.split_obs(self.nav, obs)
        return grid, jnp.zeros(3, jnp.float32), vel, goal

    def step(self, context, pose, vel, act):
        patch = nav.local_patch(self.nav, context, pose, self.model.cfg.patch, self.model.cfg.patch_cell)
        delta, vel, logit = self.model(patch, vel, act)
        return nav.compose(pose, delta), vel, jax.nn.sigmoid(logit)


class TrueRollout(AbstractNavigationRollout):
    """The exact dynamics and collision check on the whole world map (privileged: more than the robot perceives)."""

    nav: nav.NavigationConfig = eqx.field(static=True)

    def start(self, obs, scene, state):
        return scene.occ, state.pose, state.vel, scene.goal

    def step(self, context, pose, vel, act):
        delta, vel = nav.body_motion(self.nav, vel, act)
        nxt = nav.compose(pose, delta)
        return nxt, vel, nav.collides(self.nav, context, pose, nxt).astype(jnp.float32)


def navigation_returns(rollout: AbstractNavigationRollout, context, pose: Float[Array, "3"], vel: Float[Array, "2"],
                       goal: Float[Array, "2"], actions: Float[Array, "n h 2"], cost: FailureCostConfig) -> Float[Array, " n"]:
    """``J`` of the module docstring for each of ``N`` action sequences (jittable)."""
    n = actions.shape[0]
    radius = rollout.nav.goal_radius
    step = jax.vmap(rollout.step, in_axes=(None, 0, 0, 0))

    def body(carry, act):
        pose, vel, alive, reached, ret = carry
        nxt, nvel, p = step(context, pose, vel, act)
        p = p if cost.use_failure else jnp.zeros_like(p)
        before = jnp.linalg.norm(goal - pose[:, :2], axis=-1)
        after = jnp.linalg.norm(goal - nxt[:, :2], axis=-1)
        survive = alive * (1 - p)
        ret = ret + jnp.where(reached, 0.0, survive * (before - after) - cost.failure_cost * alive * p)
        alive = jnp.where(reached, alive, survive)
        pose = jnp.where(reached[:, None], pose, nxt)
        vel = jnp.where(reached[:, None], vel, nvel)
        return (pose, vel, alive, reached | (after < radius), ret), None

    carry = (jnp.broadcast_to(pose, (n, 3)), jnp.broadcast_to(vel, (n, 2)), jnp.ones(n), jnp.zeros(n, bool), jnp.zeros(n))
    (_, _, _, _, ret), _ = jax.lax.scan(body, carry, actions.swapaxes(0, 1).astype(jnp.float32))
    return ret
