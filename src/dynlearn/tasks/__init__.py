"""Tasks: environments, their termination/reward functions and reference returns; collection and evaluation.

>>> import dynlearn as dl
>>> task = dl.tasks.get("Hopper-v5")
>>> data = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=10_000, seed=0)
>>> dl.tasks.evaluate(dl.tasks.RandomPolicy(task), task, episodes=10, key=0).normalized_mean
"""

from . import suite, termination
from .collect import collect
from .evaluate import EvalResult, evaluate
from .oracle import OracleModel, OracleState
from .policy import JaxPolicy, NoisyPolicy, Policy, RandomPolicy
from .registry import Task, get, ids, is_registered, register

from ..data.load import register_named as _register_named
from ..data.task_lookup import register_task_lookup as _register_task_lookup

for _short in suite.TASKS:
    _register_named(f"{_short}-", suite.load_named)
_register_task_lookup(get, is_registered)

__all__ = ["EvalResult", "JaxPolicy", "NoisyPolicy", "OracleModel", "OracleState", "Policy", "RandomPolicy", "Task", "collect",
           "evaluate", "get", "ids", "is_registered", "register", "suite", "termination"]
