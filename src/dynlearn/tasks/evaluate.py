"""Evaluate a policy in the real task: per-episode returns and normalized scores, episodes batched across envs."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from .episodes import run_episodes
from .policy import Policy
from .registry import Task, get


@dataclasses.dataclass(frozen=True)
class EvalResult:
    task: str
    returns: np.ndarray
    lengths: np.ndarray
    normalized: np.ndarray | None

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    @property
    def normalized_mean(self) -> float | None:
        return None if self.normalized is None else float(self.normalized.mean())

    def to_dict(self) -> dict:
        return {"task": self.task, "episodes": int(self.returns.size), "return_mean": self.mean, "return_std": self.std,
                "normalized_mean": self.normalized_mean, "returns": self.returns.tolist(), "lengths": self.lengths.tolist()}


def evaluate(policy: Policy, task: "str | Task", episodes: int = 10, *, key, num_envs: int = 8) -> EvalResult:
    """Run ``episodes`` full episodes of ``policy`` and score them.

    ``key`` is a JAX key (or an int seed); it fixes environment resets and the policy's randomness.
    ``normalized`` is None when the task has no reference returns.
    """
    task = get(task)
    seed = int(key) if isinstance(key, (int, np.integer)) else int(jax.random.randint(key, (), 0, 2**30))
    eps = run_episodes(task, policy, seed=seed, num_envs=num_envs, episodes=episodes, record=False)
    returns = np.array([e.ret for e in eps])
    lengths = np.array([len(e) for e in eps])
    normalized = task.normalized_score(returns) if task.has_reference else None
    return EvalResult(task=task.id, returns=returns, lengths=lengths, normalized=normalized)
