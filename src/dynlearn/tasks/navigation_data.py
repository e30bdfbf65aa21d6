"""Transitions of the navigation task (:mod:`.navigation`) from a noisy goal-seeking behaviour policy, for fitting a
forward model with a failure head (:mod:`dynlearn.models.failure`).

**Behaviour policy**: steer toward the goal (speed ``cos(bearing)``, turn ``2 * bearing / pi``) plus temporally
correlated noise (an AR(1) process, correlation 0.8 per step) whose scale is drawn per episode from ``noise``; it drives
into obstacles often, which is what the failure head has to learn from. **Collection**: ``envs`` robots in parallel for
``steps`` steps each, one ``lax.scan``, each episode on a map drawn from a pool of ``maps`` random maps (not filtered
for solvability). A collision is recorded as a failed transition; for coverage near obstacles the robot then stays
where it was, stopped, and goes on (its episode restarts on a new map with probability ``restart_after_failure``); an
episode also restarts at the goal and at the time limit. Each row keeps what the model reads (the local patch cut from
the observation's grid at the robot's own pose, the velocities, the action) and its targets (the exact motion in the
robot's frame, the next velocities, the failure flag; a failed row's motion is where the robot would have gone).
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, Bool, Float, Key
from ..errors import ConfigError
from . import navigation as nav


class NavigationData(eqx.Module):
    """Transitions, one row each (arrays on device)."""

    patch: Float[Array, "n p p"]
    """Local occupancy around the robot, cut from its observation (robot frame)."""
    vel: Float[Array, "n 2"]
    act: Float[Array, "n 2"]
    delta: Float[Array, "n 3"]
    """The motion ``(dx, dy, dheading)`` in the robot's frame."""
    next_vel: Float[Array, "n 2"]
    failed: Bool[Array, " n"]

    def __len__(self) -> int:
        return int(self.failed.shape[0])

    def take(self, rows) -> "NavigationData":
        return jax.tree_util.tree_map(lambda x: x[rows], self)


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    envs: int = 256
    """Robots simulated in parallel."""
    steps: int = 200
    """Steps per robot (rows = envs * steps)."""
    maps: int = 1024
    """Random maps (not filtered for solvability) an episode draws its map, start and goal from."""
    noise: tuple[float, float] = (0.3, 1.0)
    """Per-episode scale of the action noise (uniform in this range; actions span [-1, 1])."""
    restart_after_failure: float = 0.25
    """Probability that a collision ends the robot's episode (else it stays, stopped, and goes on)."""
    patch: int = 9
    """Cells per side of the local patch kept per row."""
    patch_cell: float = 0.2
    """Spacing of the patch (units)."""

    def __post_init__(self):
        if min(self.envs, self.steps, self.patch, self.maps) < 1 or not 0 <= self.restart_after_failure <= 1:
            raise ConfigError("CollectConfig: envs, steps, maps and patch must be >= 1 and 0 <= restart_after_failure <= 1.")


def goal_seeking(obs_goal: Float[Array, "... 2"]) -> Float[Array, "... 2"]:
    """The noise-free behaviour action: drive toward the goal, faster the better it is aligned."""
    bearing = jnp.arctan2(obs_goal[..., 1], obs_goal[..., 0])
    return jnp.stack([jnp.cos(bearing), jnp.clip(2 * bearing / jnp.pi, -1.0, 1.0)], axis=-1)


def collect(cfg: nav.NavigationConfig, collect_cfg: CollectConfig = CollectConfig(), *, key: Key) -> NavigationData:
    """``envs * steps`` transitions of the behaviour policy (see the module docstring); deterministic in ``key``."""
    patch, vel, act, delta, next_vel, failed = _collect(cfg, collect_cfg, key)
    return NavigationData(patch=patch, vel=vel, act=act, delta=delta, next_vel=next_vel, failed=failed)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _collect(cfg: nav.NavigationConfig, c: CollectConfig, key: Key):
    def fresh(pool, k):
        pick_key, noise_key = jax.random.split(k)
        scene = jax.tree_util.tree_map(lambda x: x[jax.random.randint(pick_key, (), 0, x.shape[0])], pool)
        scale = jax.random.uniform(noise_key, (), minval=c.noise[0], maxval=c.noise[1])
        return scene, nav.reset(scene), jnp.zeros(2, jnp.float32), scale, jnp.zeros((), jnp.int32)

    def one(pool, carry, k):
        scene, state, noise, scale, t = carry
        noise_key, restart_key, reset_key = jax.random.split(k, 3)
        obs = nav.observe(cfg, scene, state)
        goal, vel, grid = nav.split_obs(cfg, obs)
        noise = 0.8 * noise + 0.6 * scale * jax.random.normal(noise_key, (2,))
        act = jnp.clip(goal_seeking(goal) + noise, -1.0, 1.0)
        delta, next_vel = nav.body_motion(cfg, vel, act)
        nxt, failed, reached = nav.step(cfg, scene, state, act)
        patch = nav.local_patch(cfg, grid, jnp.zeros(3), c.patch, c.patch_cell)
        row = (patch, vel, act, delta, next_vel, failed)
        stay = nav.NavState(pose=state.pose, vel=jnp.zeros(2, jnp.float32))
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(failed, a, b), stay, nxt)
        t = t + 1
        restart = reached | (t >= cfg.time_limit) | (failed & (jax.random.uniform(restart_key) < c.restart_after_failure))
        new = fresh(pool, reset_key)
        carry = jax.tree_util.tree_map(lambda a, b: jnp.where(restart, a, b), new, (scene, state, noise, scale, t))
        return carry, row

    pool_key, start_key, scan_key = jax.random.split(key, 3)
    pool = jax.vmap(lambda k: nav.generate(cfg, k))(jax.random.split(pool_key, c.maps))
    carry = jax.vmap(fresh, in_axes=(None, 0))(pool, jax.random.split(start_key, c.envs))
    keys = jax.random.split(scan_key, (c.steps, c.envs))
    _, rows = jax.lax.scan(lambda carry, k: jax.vmap(one, in_axes=(None, 0, 0))(pool, carry, k), carry, keys)
    return jax.tree_util.tree_map(lambda x: x.reshape(-1, *x.shape[2:]), rows)


def failure_rate(data: NavigationData) -> float:
    return float(np.mean(np.asarray(data.failed)))
