"""Save and load models: ``config.json`` (kind, format, library version, structure, leaf shapes) + ``leaves.eqx``.

No pickle. Loading rebuilds the structure from the config, checks the library version (same major.minor)
and every leaf's shape against what the config implies, then fills in the arrays. A task's termination
and reward functions are code, not data: the checkpoint records the task id and :func:`load` takes the
task again (``load(folder, task=dl.tasks.get(id))``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax

from ..checkpoint import check_same_minor_version, load_leaves, read_header, save_module
from ..errors import ConfigError, DataError
from .base import AbstractTransitionModel
from .ensemble import ProbabilisticEnsemble

KIND = "model"
MODEL_FORMAT = 1
_MODELS: dict[str, type] = {"ensemble": ProbabilisticEnsemble}


def save(folder: str | os.PathLike, model: AbstractTransitionModel, *, force: bool = True) -> Path:
    """Write ``model`` to ``folder`` (``config.json`` + ``leaves.eqx``), atomically per file."""
    if not hasattr(model, "header"):
        raise ConfigError(f"save: {type(model).__name__} cannot be saved (no header()).")
    header = model.header() | {"model_format": MODEL_FORMAT}
    return save_module(folder, model, header, kind=KIND, force=force)



def load(folder: str | os.PathLike, *, task: Any | None = None) -> AbstractTransitionModel:
    """Read what :func:`save` wrote. ``task``: required when the model was fitted with a task's
    termination/reward functions (their ids must match); the functions are re-attached from it."""
    folder = Path(folder)
    source = str(folder / "config.json")
    header = read_header(folder, kind=KIND)
    check_same_minor_version(header, source)
    body = header.get("config")
    if not isinstance(body, dict) or body.get("model_format") != MODEL_FORMAT or body.get("model") not in _MODELS:
        raise DataError(source, f"not a model checkpoint of format {MODEL_FORMAT} "
                                f"(model {body.get('model') if isinstance(body, dict) else None!r}).",
                        "pass a folder written by dynlearn.models.save.", key="config")
    try:
        like = _MODELS[body["model"]].skeleton(body, source=source)
    except (KeyError, TypeError) as e:
        raise DataError(source, f"incomplete model config ({e!r}).",
                        "pass a folder written by dynlearn.models.save.", key="config") from None
    expected = [list(x.shape) for x in jax.tree_util.tree_leaves(like)]
    stored = body.get("leaf_shapes")
    if stored != expected:
        raise DataError(source, f"leaf shapes {stored} do not match the structure its config describes ({expected}).",
                        "the checkpoint is corrupt or was edited; re-save it.", key="leaf_shapes")
    model = load_leaves(folder, like)
    saved_task = body.get("task")
    if saved_task is not None:
        if task is None:
            raise ConfigError(f"{folder}: the model was fitted for task {saved_task!r} and uses its termination/reward "
                              f"functions. Fix: load(folder, task=dl.tasks.get({saved_task!r})).")
        if task.id != saved_task:
            raise ConfigError(f"{folder}: the model was fitted for task {saved_task!r}, not {task.id!r}.")
    return model.with_task(task)
