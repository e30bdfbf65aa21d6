"""dynlearn: learned dynamics models — fit how a system evolves from logged data, measure how far to trust it, use it.

>>> import dynlearn as dl
>>> data = dl.data.load("hopper-medium.hdf5", task="Hopper-v5")
>>> task = dl.tasks.get("Hopper-v5")
>>> dl.algos.train(dl.algos.MOPOConfig.preset("hopper-medium"), data, task, out="runs/mopo")
"""

from __future__ import annotations

from ._version import __version__


def _enable_compilation_cache() -> None:
    """Persist compiled XLA programs across runs (``$DYNLEARN_CACHE_DIR/jax``, default ``~/.cache/dynlearn/jax``).

    Respects a cache directory the user already configured for JAX; ``DYNLEARN_COMPILATION_CACHE=0`` leaves it off.
    """
    import os

    import jax

    if jax.config.jax_compilation_cache_dir or os.environ.get("DYNLEARN_COMPILATION_CACHE", "1") == "0":
        return
    base = os.environ.get("DYNLEARN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dynlearn")
    jax.config.update("jax_compilation_cache_dir", os.path.join(base, "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


_enable_compilation_cache()

from . import agents, data, dsr, interrupt, metrics, models, penalties, planning, rollout, tasks, training  # noqa: E402
from .errors import ConfigError, DataError, DynlearnError, OutputExistsError  # noqa: E402

__all__ = ["ConfigError", "DataError", "DynlearnError", "OutputExistsError", "__version__", "agents", "algos", "data", "dsr",
           "interrupt", "metrics", "models", "penalties", "planning", "rollout", "tasks", "training"]


def __getattr__(name: str):
    """``dl.algos`` is imported on first use: the trainers sit above every other layer (and import it themselves)."""
    if name == "algos":
        import importlib

        return importlib.import_module(".algos", __name__)
    raise AttributeError(f"module 'dynlearn' has no attribute {name!r}")
