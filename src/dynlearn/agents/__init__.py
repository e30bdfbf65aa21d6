"""Pure, jitted RL agents: SAC, SAC-N/EDAC, TD3+BC, IQL, CQL, BC.

Each agent is a module with the same functions (see :mod:`dynlearn.agents.base`)::

    agent = dynlearn.agents.get("sac")
    state = agent.init(key, AgentSpec.from_env(env), agent.Config())
    state, info = agent.update_block(state, data, key=key, steps=1000)
    action = agent.act(state, obs, deterministic=True)
    agent.save("run/agent", state); state = dynlearn.agents.load("run/agent")
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Protocol

from ..checkpoint import read_header
from ..errors import ConfigError, DataError
from .base import AgentSpec, BatchSource, MixedSampler, UniformSampler

_MODULES = {"sac": "sac", "edac": "edac", "td3bc": "td3bc", "iql": "iql", "cql": "cql", "bc": "bc"}
_ALIASES = {"td3+bc": "td3bc", "td3_bc": "td3bc", "sac-n": "edac", "sac_n": "edac", "sacn": "edac"}


class Agent(Protocol):
    """What ``get(name)`` returns: a module with these names."""

    NAME: str
    Config: type
    State: type

    def init(self, key, spec: AgentSpec, cfg: Any = ...) -> Any: ...
    def update(self, state, batch, *, key, target_adjust=None) -> tuple[Any, dict]: ...
    def update_block(self, state, data, *, key, steps: int, target_adjust=None) -> tuple[Any, dict]: ...
    def act(self, state, obs, *, key=None, deterministic: bool = False) -> Any: ...
    def sample_action(self, state, obs, *, key) -> tuple[Any, Any]: ...
    def q_values(self, state, obs, act, *, target: bool = False) -> Any: ...
    def save(self, folder, state) -> Any: ...
    def load(self, folder) -> Any: ...


def names() -> tuple[str, ...]:
    """Registered agent names."""
    return tuple(_MODULES)


def get(name: str) -> Agent:
    """The agent module for ``name``: one of :func:`names` or an alias (``"td3+bc"``, ``"sac-n"``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _MODULES:
        raise ConfigError(f"unknown agent {name!r}; choose one of {', '.join(names())}")
    module: ModuleType = importlib.import_module(f".{_MODULES[key]}", __name__)
    return module  # type: ignore[return-value]


def load(folder: str | os.PathLike) -> Any:
    """Load any agent's state saved with its ``save`` (the checkpoint names the agent)."""
    kind = read_header(folder).get("kind", "")
    if not kind.startswith("agent/"):
        raise DataError(str(folder), f"holds a {kind!r}, not an agent.", "pass a folder written by an agent's save().", key="kind")
    return get(kind.removeprefix("agent/")).load(folder)


__all__ = ["Agent", "AgentSpec", "BatchSource", "MixedSampler", "UniformSampler", "get", "load", "names"]
