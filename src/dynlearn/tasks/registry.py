"""Task registry: id -> environment factory, termination and reward functions, bounds, reference returns.

Nothing else in dynlearn hard-codes an environment name: code asks the registry. Users add their own
tasks with :func:`register`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import gymnasium as gym
import numpy as np

from ..errors import ConfigError
from . import termination as T

D4RL_REFERENCE = "D4RL reference returns"


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything dynlearn needs to know about an environment.

    ``termination_fn(obs, act, next_obs) -> bool[...]`` (JAX, vectorised) or None when unknown (models
    then learn a termination head). ``reward_fn`` likewise, only where the reward truly is a function
    of ``(s, a, s')``; locomotion rewards use the x position, which observations drop, so they are None
    (learned). ``ref_random``/``ref_expert`` give the normalized-score scale; ``ref_source`` says where
    they come from. ``sim_state(env) -> (qpos, qvel)`` reads the full simulator state (None if not MuJoCo-like).
    """

    id: str
    make: Callable[..., gym.Env]
    obs_dim: int
    act_dim: int
    act_low: tuple[float, ...]
    act_high: tuple[float, ...]
    max_episode_steps: int | None
    termination_fn: Callable | None = None
    reward_fn: Callable | None = None
    ref_random: float | None = None
    ref_expert: float | None = None
    ref_source: str = "none"
    sim_state: Callable | None = None
    aliases: tuple[str, ...] = ()

    @classmethod
    def from_gym(cls, env_id: str, *, make: Callable[..., gym.Env] | None = None, **fields) -> "Task":
        """Fill dims, action bounds and the episode limit from a Gymnasium environment (built once)."""
        make = make or (lambda **kw: gym.make(env_id, **kw))
        env = make()
        try:
            obs_space, act_space = env.observation_space, env.action_space
            if not isinstance(act_space, gym.spaces.Box) or not isinstance(obs_space, gym.spaces.Box):
                raise ConfigError(f"task {env_id}: dynlearn needs Box observation and action spaces, got "
                                  f"{type(obs_space).__name__} and {type(act_space).__name__}. "
                                  "Fix: wrap the env (e.g. FlattenObservation).")
            spec_steps = env.spec.max_episode_steps if env.spec is not None else None
            fields.setdefault("sim_state", _mujoco_state if hasattr(env.unwrapped, "data") else None)
            return cls(id=env_id, make=make, obs_dim=int(np.prod(obs_space.shape)), act_dim=int(np.prod(act_space.shape)),
                       act_low=tuple(float(x) for x in act_space.low.ravel()), act_high=tuple(float(x) for x in act_space.high.ravel()),
                       max_episode_steps=fields.pop("max_episode_steps", spec_steps), **fields)
        finally:
            env.close()

    def normalized_score(self, returns):
        """``100 * (R - random) / (expert - random)`` with this task's reference returns."""
        from ..metrics.returns import normalized_score

        if self.ref_random is None or self.ref_expert is None:
            raise ConfigError(f"task {self.id} has no reference returns, so normalized scores are undefined. "
                              "Fix: register the task with ref_random and ref_expert.")
        return normalized_score(returns, self.ref_random, self.ref_expert)

    @property
    def has_reference(self) -> bool:
        return self.ref_random is not None and self.ref_expert is not None


def _mujoco_state(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    data = env.unwrapped.data
    return data.qpos.copy(), data.qvel.copy()


def _pendulum_state(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    th, thdot = env.unwrapped.state
    return np.array([th]), np.array([thdot])


_REGISTRY: dict[str, Task] = {}
_FACTORIES: dict[str, Callable[[], Task]] = {}


def _key(task_id: str) -> str:
    return task_id.lower()


def register(task: Task | None = None, /, *, overwrite: bool = False, **fields) -> Task:
    """Add a task. Pass a :class:`Task`, or ``id=...`` plus fields for :meth:`Task.from_gym`.

    >>> dl.tasks.register(id="MyArm-v0", termination_fn=my_done, ref_random=-50.0, ref_expert=900.0)
    """
    if task is None:
        if "id" not in fields:
            raise ConfigError("register() needs a Task or id=<gymnasium id>. Fix: register(id='MyEnv-v0', ...).")
        task = Task.from_gym(fields.pop("id"), **fields)
    names = (task.id, *task.aliases)
    for name in names:
        if not overwrite and (_key(name) in _REGISTRY or _key(name) in _FACTORIES):
            raise ConfigError(f"task {name} is already registered. Fix: pass overwrite=True to replace it.")
    for name in names:
        _FACTORIES.pop(_key(name), None)
        _REGISTRY[_key(name)] = task
    return task


def is_registered(task_id: str) -> bool:
    return _key(task_id) in _REGISTRY or _key(task_id) in _FACTORIES


def get(task: "str | Task") -> Task:
    """The task for an id (case-insensitive; short aliases such as ``hopper`` work too)."""
    if isinstance(task, Task):
        return task
    k = _key(task)
    if k not in _REGISTRY and k in _FACTORIES:
        built = _FACTORIES[k]()
        for name in (built.id, *built.aliases):
            _REGISTRY[_key(name)] = built
            _FACTORIES.pop(_key(name), None)
    if k not in _REGISTRY:
        raise ConfigError(f"unknown task '{task}'. Known: {', '.join(ids())}. Fix: pick one, or dl.tasks.register() your own.")
    return _REGISTRY[k]


def ids() -> list[str]:
    """Registered task ids (without aliases)."""
    names = {t.id for t in _REGISTRY.values()}
    names |= {getattr(f, "task_id") for f in _FACTORIES.values()}
    return sorted(names)


def _lazy(task_id: str, aliases: tuple[str, ...], **fields) -> None:
    """Register a built-in task whose env is built (for dims and bounds) only when first asked for."""

    def build() -> Task:
        return Task.from_gym(task_id, aliases=aliases, **fields)

    build.task_id = task_id  # type: ignore[attr-defined]
    for name in (task_id, *aliases):
        _FACTORIES[_key(name)] = build


# D4RL's reference returns (random, expert) for the three locomotion tasks; the other tasks' references were
# measured here: see benchmarks/README.md, "Reference returns", for the commands and numbers.
_lazy("HalfCheetah-v5", ("halfcheetah",), termination_fn=T.never_terminates,
      ref_random=-280.178953, ref_expert=12135.0, ref_source=D4RL_REFERENCE)
_lazy("Hopper-v5", ("hopper",), termination_fn=T.hopper_terminal,
      ref_random=-20.272305, ref_expert=3234.3, ref_source=D4RL_REFERENCE)
_lazy("Walker2d-v5", ("walker2d", "walker"), termination_fn=T.walker2d_terminal,
      ref_random=1.629008, ref_expert=4592.3, ref_source=D4RL_REFERENCE)
_lazy("Ant-v5", ("ant",), termination_fn=T.ant_terminal, ref_random=-40.511,
      ref_source="random measured; no expert reference yet (normalized scores undefined)")
_lazy("InvertedPendulum-v5", ("invertedpendulum", "inverted-pendulum"), termination_fn=T.inverted_pendulum_terminal,
      reward_fn=T.inverted_pendulum_reward, ref_random=5.040, ref_expert=1000.0,
      ref_source="measured: random policy; expert = balance controller (the maximum return, 1000)")
_lazy("Reacher-v5", ("reacher",), termination_fn=T.never_terminates, reward_fn=T.reacher_reward, ref_random=-42.487,
      ref_expert=-5.553, ref_source="measured: random policy; expert = Jacobian-transpose reaching controller")
_lazy("Pendulum-v1", ("pendulum",), termination_fn=T.never_terminates, reward_fn=T.pendulum_reward,
      sim_state=_pendulum_state, ref_random=-1203.593, ref_expert=-139.196,
      ref_source="measured: random policy; expert = swing-up controller")
