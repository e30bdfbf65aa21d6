"""Collect a dataset by running a behaviour policy in a task: ``policy x task -> Dataset``."""

from __future__ import annotations

import numpy as np

from ..data.dataset import Dataset, from_arrays
from .episodes import run_episodes
from .policy import Policy
from .registry import Task, get


def collect(task: "str | Task", policy: Policy, *, steps: int, seed: int = 0, num_envs: int = 8,
            name: str | None = None, policy_name: str = "custom", on_step=None) -> Dataset:
    """Run ``policy`` for ``steps`` environment steps and return them as a :class:`Dataset`.

    Episodes are contiguous; ``timeout`` marks Gymnasium truncations and episodes cut by the step budget.
    Successor observations are the environment's own (every row valid). For MuJoCo tasks the simulator
    state before each step is kept in ``metadata["qpos"]``/``["qvel"]`` (written as ``infos/qpos``/``qvel``).
    """
    task = get(task)
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    eps = run_episodes(task, policy, seed=seed, num_envs=num_envs, steps=steps, on_step=on_step)
    cat = lambda field: np.concatenate([getattr(e, field) for e in eps])  # noqa: E731
    lengths = np.array([len(e) for e in eps])
    metadata = {"format": "generated", "policy": policy_name, "seed": seed, "num_envs": num_envs}
    if eps[0].qpos is not None:
        metadata["qpos"], metadata["qvel"] = cat("qpos"), cat("qvel")
    return from_arrays(
        obs=cat("obs"), act=cat("act"), rew=cat("rew"), next_obs=cat("next_obs"), terminal=cat("terminal"),
        timeout=cat("truncated"), episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
        name=name or f"{task.id}-{policy_name}", source=f"collect({task.id}, {policy_name}, seed={seed})", task=task, metadata=metadata,
    )
