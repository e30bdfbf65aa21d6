"""Behaviour policies for collection and evaluation: ``policy(obs[B, obs], rng) -> act[B, act]``.

Policies act on a batch of observations (one row per environment) and draw any randomness from the
NumPy ``Generator`` they are given, so a seed fixes a whole collection run.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Policy(Protocol):
    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


class RandomPolicy:
    """Uniform actions within the task's bounds."""

    def __init__(self, task):
        self.low = np.asarray(task.act_low, np.float32)
        self.high = np.asarray(task.act_high, np.float32)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=(obs.shape[0], self.low.size)).astype(np.float32)


class NoisyPolicy:
    """``base`` plus Gaussian noise of scale ``noise`` (in units of the action range's half-width), clipped to bounds.

    With probability ``epsilon`` a step takes a uniformly random action instead.
    """

    def __init__(self, base: Policy, task, *, noise: float = 0.0, epsilon: float = 0.0):
        self.base, self.noise, self.epsilon = base, noise, epsilon
        self.low = np.asarray(task.act_low, np.float32)
        self.high = np.asarray(task.act_high, np.float32)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        act = np.asarray(self.base(obs, rng), np.float32)
        half = (self.high - self.low) / 2
        act = act + self.noise * half * rng.standard_normal(act.shape).astype(np.float32)
        if self.epsilon > 0:
            swap = rng.random(act.shape[0]) < self.epsilon
            act[swap] = rng.uniform(self.low, self.high, size=(int(swap.sum()), self.low.size))
        return np.clip(act, self.low, self.high)


class JaxPolicy:
    """Wrap ``act_fn(obs[B, obs], *, key) -> act[B, act]`` (a jitted JAX policy) as a :class:`Policy`.

    A fresh JAX key per call is drawn from the NumPy generator, so runs stay reproducible from one seed.
    """

    def __init__(self, act_fn):
        self.act_fn = act_fn

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import jax

        key = jax.random.key(int(rng.integers(0, 2**31 - 1)))
        return np.asarray(self.act_fn(obs, key=key), np.float32)
