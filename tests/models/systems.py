"""Small known systems for model tests, generated in NumPy (no simulator)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

import dynlearn as dl

A = np.array([[0.9, 0.1, 0.0], [0.0, 0.95, 0.1], [-0.1, 0.0, 0.9]], np.float32)
B = np.array([[0.0], [0.1], [0.2]], np.float32)
C = np.array([1.0, -0.5, 0.25], np.float32)
NOISE = 0.01


def linear_dataset(episodes: int = 60, length: int = 40, seed: int = 0, *, terminate_above: float | None = None) -> dl.data.Dataset:
    """``x' = A x + B u + noise``, ``r = C.x + 0.5 u``; episodes start at N(0, I) and time out after ``length``.

    With ``terminate_above``, an episode also ends (terminal) when ``x'[0]`` exceeds it.
    """
    rng = np.random.default_rng(seed)
    obs, act, nxt, rew, term, tout = [], [], [], [], [], []
    for _ in range(episodes):
        x = rng.normal(size=3).astype(np.float32)
        for t in range(length):
            u = rng.uniform(-1, 1, 1).astype(np.float32)
            x2 = (A @ x + B @ u + NOISE * rng.normal(size=3)).astype(np.float32)
            done = terminate_above is not None and x2[0] > terminate_above
            obs.append(x), act.append(u), nxt.append(x2), rew.append(float(C @ x + 0.5 * u[0]))
            term.append(done), tout.append(t == length - 1 and not done)
            x = x2
            if done:
                break
    return dl.data.from_arrays(obs=np.array(obs), act=np.array(act), next_obs=np.array(nxt), rew=np.array(rew, np.float32),
                               terminal=np.array(term), timeout=np.array(tout), name="linear")


def marked_dataset(lengths, obs_dim: int = 2, seed: int = 0) -> dl.data.Dataset:
    """Episodes whose ``obs[:, 0]`` is the episode index (so a row's episode can be read back)."""
    rng = np.random.default_rng(seed)
    n = int(sum(lengths))
    ids = np.repeat(np.arange(len(lengths)), lengths).astype(np.float32)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    obs[:, 0] = ids
    timeout = np.zeros(n, bool)
    timeout[np.cumsum(lengths) - 1] = True
    return dl.data.from_arrays(obs=obs, act=rng.normal(size=(n, 1)).astype(np.float32), next_obs=obs + 0.1,
                               rew=np.zeros(n, np.float32), terminal=np.zeros(n, bool), timeout=timeout)


@dataclasses.dataclass(frozen=True)
class FakeTask:
    """What a model reads from a task (dynlearn.tasks.Task has the same fields)."""

    id: str
    obs_dim: int
    act_dim: int
    termination_fn: Callable | None = None
    reward_fn: Callable | None = None


def first_obs_positive(obs, act, next_obs):
    return next_obs[..., 0] > 0.0


def act_reward(obs, act, next_obs):
    return 2.0 * act[..., 0]
