"""Save and load DSR models: ``config.json`` (kind, sizes, leaf shapes, library version, optional fit config) +
``leaves.eqx`` (the arrays). No pickle.

Loading rebuilds the model's structure from the config, checks the library version (same major.minor) and every
leaf's shape, then fills in the arrays (:func:`dynlearn.checkpoint.load_leaves`), so a loaded model steps exactly as
the saved one.

>>> dl.dsr.save("runs/l63", model, config=cfg)
>>> model = dl.dsr.load("runs/l63")
"""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import jax

from ..checkpoint import check_same_minor_version, load_leaves, read_header, save_module
from ..errors import ConfigError, DataError
from .base import AbstractLatentModel
from .fit import FitDSRConfig
from .plrnn import MODEL_KINDS, build_model

KIND = "dsr_model"
DSR_FORMAT = 1


def save(folder: str | os.PathLike, model: AbstractLatentModel, *, config: FitDSRConfig | None = None,
         force: bool = True) -> Path:
    """Write ``model`` (and the :class:`FitDSRConfig` that trained it, if given) to ``folder``, atomically per file."""
    if not hasattr(model, "header"):
        raise ConfigError(f"dsr.save: {type(model).__name__} cannot be saved (no header()).")
    header = model.header() | {"dsr_format": DSR_FORMAT,
                               "leaf_shapes": [list(x.shape) for x in jax.tree_util.tree_leaves(model)],
                               "fit_config": None if config is None else config.to_dict()}
    return save_module(folder, model, header, kind=KIND, force=force)



def _skeleton(body: dict, source: str) -> AbstractLatentModel:
    try:
        kind = body["model"]
        n, m = int(body["obs_dim"]), int(body["latent_dim"])
        sizes = {"hidden_dim": int(body["hidden_dim"])} if kind != "alrnn" else {"pwl_units": int(body["pwl_units"])}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(source, f"incomplete DSR model config ({e!r}).", "pass a folder written by dynlearn.dsr.save.",
                        key="config") from None
    return eqx.filter_eval_shape(lambda: build_model(kind, n, m, key=jax.random.key(0), **sizes))


def read_config(folder: str | os.PathLike) -> FitDSRConfig | None:
    """The :class:`FitDSRConfig` stored with a model (None when it was saved without one)."""
    body = read_header(folder, kind=KIND)["config"]
    stored = body.get("fit_config") if isinstance(body, dict) else None
    return None if stored is None else FitDSRConfig.from_dict(stored, source=str(Path(folder) / "config.json"))


def load(folder: str | os.PathLike) -> AbstractLatentModel:
    """Read what :func:`save` wrote."""
    folder = Path(folder)
    source = str(folder / "config.json")
    header = read_header(folder, kind=KIND)
    check_same_minor_version(header, source)
    body = header.get("config")
    if not isinstance(body, dict) or body.get("dsr_format") != DSR_FORMAT or body.get("model") not in MODEL_KINDS:
        raise DataError(source, f"not a DSR model checkpoint of format {DSR_FORMAT} "
                        f"(model {body.get('model') if isinstance(body, dict) else None!r}).",
                        "pass a folder written by dynlearn.dsr.save.", key="config")
    like = _skeleton(body, source)
    expected = [list(x.shape) for x in jax.tree_util.tree_leaves(like)]
    if body.get("leaf_shapes") != expected:
        raise DataError(source, f"leaf shapes {body.get('leaf_shapes')} do not match the structure its config describes "
                        f"({expected}).", "the checkpoint is corrupt or was edited; re-save it.", key="leaf_shapes")
    return load_leaves(folder, like)
