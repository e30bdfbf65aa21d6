"""Termination and reward functions of observations, vectorised over leading axes (JAX).

Each is ``f(obs, act, next_obs) -> [...]`` with the batch in the leading axes and features last.
They read only what the Gymnasium v5 observation holds (default ``exclude_current_positions`` settings).
"""

from __future__ import annotations

import jax.numpy as jnp


def never_terminates(obs, act, next_obs):
    """For tasks that end only by time limit (HalfCheetah, Pendulum)."""
    return jnp.zeros(next_obs.shape[:-1], dtype=bool)


def hopper_terminal(obs, act, next_obs):
    """Hopper-v5: unhealthy when height <= 0.7, |torso angle| >= 0.2, or any of obs[1:] outside (-100, 100).

    Gymnasium checks ``state_vector()[2:]`` with *unclipped* velocities while the observation clips
    them to +-10, so a velocity beyond 100 in magnitude is invisible here (rare; measured in benchmarks/).
    """
    z, angle, rest = next_obs[..., 0], next_obs[..., 1], next_obs[..., 1:]
    healthy = (z > 0.7) & (angle > -0.2) & (angle < 0.2) & jnp.all((rest > -100.0) & (rest < 100.0), axis=-1)
    return ~healthy


def walker2d_terminal(obs, act, next_obs):
    """Walker2d-v5: unhealthy when height is outside (0.8, 2.0) or the torso angle outside (-1, 1)."""
    z, angle = next_obs[..., 0], next_obs[..., 1]
    return ~((z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0))


def ant_terminal(obs, act, next_obs):
    """Ant-v5: unhealthy when the torso height is outside [0.2, 1.0] or the state is not finite."""
    z = next_obs[..., 0]
    return ~(jnp.all(jnp.isfinite(next_obs), axis=-1) & (z >= 0.2) & (z <= 1.0))


def inverted_pendulum_terminal(obs, act, next_obs):
    """InvertedPendulum-v5: ends when the pole angle |obs[1]| exceeds 0.2 or the state is not finite."""
    return ~jnp.all(jnp.isfinite(next_obs), axis=-1) | (jnp.abs(next_obs[..., 1]) > 0.2)


def inverted_pendulum_reward(obs, act, next_obs):
    """InvertedPendulum-v5: 1 for every step that does not terminate, else 0."""
    return (~inverted_pendulum_terminal(obs, act, next_obs)).astype(jnp.float32)


def reacher_reward(obs, act, next_obs):
    """Reacher-v5: ``-||fingertip - target|| - ||a||^2``, the distance *after* the step (``next_obs[8:10]`` holds
    fingertip minus target in the plane; Gymnasium 1.x computes the reward after simulating) and the action as given."""
    return -jnp.linalg.norm(next_obs[..., 8:10], axis=-1) - jnp.sum(jnp.square(act), axis=-1)


def pendulum_reward(obs, act, next_obs):
    """Pendulum-v1: ``-(theta^2 + 0.1 thetadot^2 + 0.001 u^2)`` at the state *before* the step.

    ``theta`` is recovered as ``atan2(sin, cos)`` from ``obs = [cos theta, sin theta, thetadot]`` (already in
    [-pi, pi], as Gymnasium's ``angle_normalize``); the torque is clipped to [-2, 2] as the env does.
    """
    theta = jnp.arctan2(obs[..., 1], obs[..., 0])
    u = jnp.clip(act[..., 0], -2.0, 2.0)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * u**2)
