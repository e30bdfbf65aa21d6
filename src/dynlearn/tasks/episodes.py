"""Run a batch policy in several copies of a task's environment: the loop behind collection and evaluation."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .policy import Policy


@dataclasses.dataclass
class Episode:
    """One recorded episode; arrays have one row per step. ``truncated`` includes a cut by the step budget."""

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    next_obs: np.ndarray
    terminal: np.ndarray
    truncated: np.ndarray
    qpos: np.ndarray | None
    qvel: np.ndarray | None

    @property
    def ret(self) -> float:
        return float(self.rew.sum(dtype=np.float64))

    def __len__(self) -> int:
        return len(self.rew)


class _Recorder:
    """Accumulates one environment's current episode; ``record=False`` keeps only rewards and flags."""

    def __init__(self, record: bool, record_state: bool):
        self.rows: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "next_obs", "terminal", "truncated", "qpos", "qvel")}
        self.record, self.record_state = record, record_state

    def add(self, obs, act, rew, next_obs, terminal, truncated, state):
        r = self.rows
        r["rew"].append(rew), r["terminal"].append(terminal), r["truncated"].append(truncated)
        if self.record:
            r["obs"].append(obs), r["act"].append(act), r["next_obs"].append(next_obs)
        if self.record_state:
            r["qpos"].append(state[0]), r["qvel"].append(state[1])

    def finish(self, *, cut: bool = False) -> Episode:
        r = self.rows
        truncated = np.array(r["truncated"], bool)
        if cut:
            truncated[-1] = True
        ep = Episode(obs=np.array(r["obs"], np.float32), act=np.array(r["act"], np.float32), rew=np.array(r["rew"], np.float32),
                     next_obs=np.array(r["next_obs"], np.float32), terminal=np.array(r["terminal"], bool), truncated=truncated,
                     qpos=np.array(r["qpos"]) if r["qpos"] else None, qvel=np.array(r["qvel"]) if r["qvel"] else None)
        self.__init__(self.record, self.record_state)
        return ep


def run_episodes(
    task,
    policy: Policy,
    *,
    seed: int,
    num_envs: int = 8,
    episodes: int | None = None,
    steps: int | None = None,
    record: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> list[Episode]:
    """Run ``policy`` in ``num_envs`` environments until ``episodes`` episodes or ``steps`` steps are done.

    - By episodes: each environment is assigned its share of episodes up front, so short episodes are
      not over-represented. Episodes are returned in assignment order.
    - By steps: environments run until ``steps`` steps are recorded in total; episodes still running
      then are cut and returned with ``truncated`` set on their last step (a truncation, not a terminal).
    - Environment ``i`` is reset with seed ``seed + i`` once; later resets continue its own generator.
      The policy's randomness comes from ``np.random.default_rng(seed)``. Same arguments, same data.
    """
    if (episodes is None) == (steps is None):
        raise ValueError("pass exactly one of episodes= or steps=")
    if episodes is not None:
        num_envs = max(1, min(num_envs, episodes))
        quota = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
    else:
        quota = [None] * num_envs
    rng = np.random.default_rng(seed)
    envs = [task.make() for _ in range(num_envs)]
    record_state = record and task.sim_state is not None
    recorders = [_Recorder(record, record_state) for _ in envs]
    finished: list[list[Episode]] = [[] for _ in envs]
    try:
        obs = np.stack([np.asarray(env.reset(seed=seed + i)[0], np.float32).ravel() for i, env in enumerate(envs)])
        active = np.array([q is None or q > 0 for q in quota])
        total = 0
        low, high = np.asarray(task.act_low, np.float32), np.asarray(task.act_high, np.float32)
        while active.any():
            idx = np.flatnonzero(active)
            if steps is not None:
                idx = idx[: steps - total]
            act = np.clip(np.asarray(policy(obs[idx], rng), np.float32).reshape(len(idx), -1), low, high)
            for j, i in enumerate(idx):
                env = envs[i]
                state = task.sim_state(env) if record_state else None
                next_obs, rew, terminated, truncated, _ = env.step(act[j])
                next_obs = np.asarray(next_obs, np.float32).ravel()
                recorders[i].add(obs[i].copy(), act[j], float(rew), next_obs, bool(terminated), bool(truncated), state)
                total += 1
                if terminated or truncated:
                    finished[i].append(recorders[i].finish())
                    if quota[i] is not None and len(finished[i]) >= quota[i]:
                        active[i] = False
                        continue
                    next_obs = np.asarray(env.reset()[0], np.float32).ravel()
                obs[i] = next_obs
            if on_step is not None:
                on_step(len(idx))
            if steps is not None and total >= steps:
                for i in range(num_envs):
                    if recorders[i].rows["rew"]:
                        finished[i].append(recorders[i].finish(cut=True))
                break
    finally:
        for env in envs:
            env.close()
    return [ep for eps in finished for ep in eps]
