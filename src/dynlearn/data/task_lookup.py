"""How the data layer finds a task by its id without importing :mod:`dynlearn.tasks` (a higher layer).

Files record the task they were collected in (D4RL's ``metadata/task``, Minari's ``env_spec``); loaders use it to check
observation and action sizes. :mod:`dynlearn.tasks` registers its registry here when it is imported (``import dynlearn``
does), so data never depends on environments.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import ConfigError

_lookup: dict[str, Callable[[str], Any]] = {}


def register_task_lookup(get: Callable[[str], Any], is_registered: Callable[[str], bool]) -> None:
    """Install the task registry: ``get(task_id) -> task`` (raising a clear error for unknown ids) and
    ``is_registered(task_id) -> bool``."""
    _lookup["get"], _lookup["is_registered"] = get, is_registered


def task_by_id(task_id: str) -> Any:
    """The registered task ``task_id`` (the registry's own error for an unknown id)."""
    if "get" not in _lookup:
        raise ConfigError(f"task {task_id!r}: no task registry is loaded. Fix: import dynlearn (or dynlearn.tasks) first, or "
                          "pass a task object instead of its id.")
    return _lookup["get"](task_id)


def known_task(task_id: str) -> Any | None:
    """The registered task ``task_id``, or None when it is unknown (a file may name a task this install lacks)."""
    if "is_registered" not in _lookup or not _lookup["is_registered"](task_id):
        return None
    return _lookup["get"](task_id)
