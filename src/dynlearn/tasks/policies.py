"""Policies by name, as the CLI's ``--policy`` takes them."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .controllers import InvertedPendulumBalance, PendulumSwingUp, ReacherReach
from .policy import Policy, RandomPolicy

CONTROLLERS = {"Pendulum-v1": PendulumSwingUp, "InvertedPendulum-v5": InvertedPendulumBalance, "Reacher-v5": ReacherReach}


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
        return saved_policy(path, task)
    raise ConfigError(f"--policy {name}: not 'random', 'controller' or an existing agent folder. Fix: pass one of those.")


def saved_policy(folder, task, *, deterministic: bool = False) -> Policy:
    """A saved policy (``save_policy`` or a full agent checkpoint) as a batch :class:`Policy`.

    Gaussian policies sample their actions unless ``deterministic`` (D4RL's datasets were collected with
    the stochastic policy). The policy's action size must match the task's.
    """
    import jax

    from ..agents.export import load_policy
    from .policy import JaxPolicy

    policy = load_policy(folder)
    if policy.spec.obs_dim != task.obs_dim or policy.spec.act_dim != task.act_dim:
        raise ConfigError(f"policy {folder} is for obs {policy.spec.obs_dim}/act {policy.spec.act_dim}, but {task.id} has "
                          f"{task.obs_dim}/{task.act_dim}. Fix: pass a policy trained on {task.id}.")
    act = jax.jit(lambda obs, key: policy(obs, key=key, deterministic=deterministic))
    return JaxPolicy(lambda obs, *, key: act(obs, key))
