"""``dl.algos.train(cfg, data, task, out=...)``: one entry point for every trainer, chosen by the config's type.

>>> cfg = dl.algos.MOPOConfig.preset("hopper-medium")
>>> dl.algos.train(cfg, "hopper-medium-v5", "Hopper-v5", out="runs/mopo")
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.dataset import Dataset
from ..data.load import load
from ..errors import ConfigError
from ..tasks.registry import get as get_task
from .base import ModelBasedConfig
from .model_based import train_model_based
from .offline import OfflineConfig, train_offline
from .online import OnlineConfig, train_online
from .pets import PETSConfig, train_pets


def train(cfg, data: Dataset | str | os.PathLike | None = None, task=None, *, out: str | os.PathLike, **options):
    """Train what ``cfg`` configures into the run folder ``out``; returns what the trainer returns (the run folder;
    PETS: its results).

    - a model-based method's config (:class:`MOPOConfig`, :class:`MOBILEConfig`, ... any registered one):
      :func:`~dynlearn.algos.model_based.train_model_based` on ``data`` (a dataset, or what :func:`dynlearn.data.load`
      reads), evaluated in ``task`` (a task or its id; default: the one the dataset records);
    - :class:`OfflineConfig`: :func:`~dynlearn.algos.offline.train_offline`, the same way;
    - :class:`OnlineConfig`, :class:`PETSConfig`: online in the config's own task (no ``data``, no ``task``).

    ``options`` go to the trainer as they are (``resume``, ``force``, ``parallel_seeds``, ``log``, ...).
    """
    if isinstance(cfg, (OnlineConfig, PETSConfig)):
        if data is not None or task is not None:
            raise ConfigError(f"{type(cfg).__name__} trains online in its own task ({cfg.task}); it takes no data and no task. "
                              "Fix: drop them (set the config's task field to change the task).")
        return (train_online if isinstance(cfg, OnlineConfig) else train_pets)(cfg, out, **options)
    if not isinstance(cfg, (ModelBasedConfig, OfflineConfig)):
        raise ConfigError(f"train: {type(cfg).__name__} is no trainer's config. Fix: pass a method's config (MOPOConfig, "
                          "MOBILEConfig, ..., OfflineConfig, OnlineConfig, PETSConfig).")
    if data is None:
        raise ConfigError(f"{type(cfg).__name__} trains on a dataset. Fix: pass data (a dataset, a file or a named dataset).")
    dataset = data if isinstance(data, Dataset) else load(data, task=task)
    task_id = task if task is not None else dataset.task
    if task_id is None:
        raise ConfigError(f"{dataset.name} does not record its task. Fix: pass task (e.g. 'Hopper-v5').")
    trainer = train_model_based if isinstance(cfg, ModelBasedConfig) else train_offline
    return trainer(dataset, get_task(task_id), cfg, Path(out), **options)
