"""Policies by name, as the CLI's ``--policy`` takes them."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .controllers import InvertedPendulumBalance, PendulumSwingUp
from .policy import Policy, RandomPolicy

CONTROLLERS = {"Pendulum-v1": PendulumSwingUp, "InvertedPendulum-v5": InvertedPendulumBalance}


def policy_from_name(name: str, task) -> Policy:
    """``random``, ``controller`` (the task's hand-written controller), or a saved agent folder."""
    if name == "random":
        return RandomPolicy(task)
    if name == "controller":
        if task.id not in CONTROLLERS:
            raise ConfigError(f"--policy controller: task {task.id} has no hand-written controller "
                              f"(available for {', '.join(CONTROLLERS)}). Fix: use random or a saved agent folder.")
        return CONTROLLERS[task.id]()
    path = Path(name)
    if path.is_dir():
        from ..agents import load_policy

        return load_policy(path, task)
    raise ConfigError(f"--policy {name}: not 'random', 'controller' or an existing agent folder. Fix: pass one of those.")
