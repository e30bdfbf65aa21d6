"""Save and load every DSR model: the PLRNNs (shPLRNN, clipped shPLRNN, AL-RNN) and the SINDy, neural-ODE and echo-state
baselines, in one layout: ``config.json`` (kind ``dsr_model``: the model's header, array-leaf shapes, library version,
the fit config if given) + ``leaves.eqx`` (the arrays). No pickle.

Loading rebuilds the model's structure from its header (shapes only, no arrays allocated), checks the library version
(same major.minor) and every array leaf's shape, then fills in the arrays (:func:`dynlearn.checkpoint.load_leaves`),
so a loaded model steps exactly as the saved one.

>>> dl.dsr.save("runs/l63", model, config=cfg)
>>> model = dl.dsr.load("runs/l63")
>>> cfg = dl.dsr.read_config("runs/l63")       # the FitDSRConfig / SINDyConfig / NeuralODEConfig / ESNConfig, or None
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from ..checkpoint import check_same_minor_version, load_leaves, read_header, save_module
from ..errors import ConfigError, DataError
from .base import AbstractLatentModel
from .esn import ESN, ESNConfig
from .fit_config import FitDSRConfig
from .neural_ode import NeuralODE, NeuralODEConfig
from .plrnn import MODEL_KINDS, build_model
from .sindy import SINDyConfig, SINDyModel

KIND = "dsr_model"
DSR_FORMAT = 1


# ----------------------------------------------------------------------------------------------
# Skeletons: the structure of each kind of model, rebuilt from its header()


def _plrnn(body: dict) -> AbstractLatentModel:
    kind, n, m = body["model"], int(body["obs_dim"]), int(body["latent_dim"])
    sizes = {"hidden_dim": int(body["hidden_dim"])} if kind != "alrnn" else {"pwl_units": int(body["pwl_units"])}
    return build_model(kind, n, m, key=jax.random.key(0), **sizes)


def _sindy(body: dict) -> SINDyModel:
    monomials = tuple(tuple(int(i) for i in mono) for mono in body["monomials"])
    n = int(body["obs_dim"])
    return SINDyModel(coefficients=jnp.zeros((n, len(monomials)), jnp.float32), obs_dim=n, latent_dim=int(body["latent_dim"]),
                      monomials=monomials, dt=float(body["dt"]), substeps=int(body["substeps"]))


def _neural_ode(body: dict) -> NeuralODE:
    # the header names the activation; folders saved before it did have it in their fit config ("tanh": the default)
    activation = body.get("activation") or (body.get("fit_config") or {}).get("activation", "tanh")
    return NeuralODE.init(int(body["obs_dim"]), dt=float(body["dt"]), width=int(body["width"]), depth=int(body["depth"]),
                          activation=activation, time_scale=float(body["time_scale"]), solver=body["solver"],
                          substeps=int(body["substeps"]), key=jax.random.key(0))


def _esn(body: dict) -> ESN:
    n, m, anchors = int(body["obs_dim"]), int(body["latent_dim"]), int(body["anchors"])
    squared = bool(body["squared_features"])
    features = 1 + m + (len(range(0, m, 2)) if squared else 0)  # ESN.features: (1, r, r[::2]^2)
    z = lambda *shape: jnp.zeros(shape, jnp.float32)
    return ESN(W=z(m, m), W_in=z(m, n), b=z(m), W_out=z(n, features), anchor_x=z(anchors, n), anchor_r=z(anchors, m),
               obs_dim=n, latent_dim=m, leak_rate=float(body["leak_rate"]), squared_features=squared)


_SKELETONS: dict[str, Callable[[dict], AbstractLatentModel]] = {kind: _plrnn for kind in MODEL_KINDS} | {
    "sindy": _sindy, "neural_ode": _neural_ode, "esn": _esn}
"""header ``model`` -> the function that rebuilds the model's structure from its header."""
FIT_CONFIGS: dict[str, type] = {kind: FitDSRConfig for kind in MODEL_KINDS} | {
    "sindy": SINDyConfig, "neural_ode": NeuralODEConfig, "esn": ESNConfig}
"""header ``model`` -> the config class that fits it (what :func:`save` stores and :func:`read_config` returns)."""


def _is_array_leaf(x) -> bool:
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def _array_shapes(model) -> list[list[int]]:
    """Shapes of the array leaves (static fields and functions, such as an MLP's activation, are not leaves here)."""
    return [list(x.shape) for x in jax.tree_util.tree_leaves(eqx.filter(model, _is_array_leaf))]


def _skeleton(body: dict, source: str) -> AbstractLatentModel:
    """The model's structure with shape-only leaves (``jax.ShapeDtypeStruct``), from its stored header."""
    kind = body.get("model")
    try:
        return eqx.filter_eval_shape(_SKELETONS[kind], body)
    except (KeyError, TypeError, ValueError) as e:  # ValueError includes the models' ConfigError
        raise DataError(source, f"incomplete or inconsistent {kind!r} model config ({e!r}).",
                        "pass a folder written by dynlearn.dsr.save.", key="config") from None


# ----------------------------------------------------------------------------------------------
# save / load / read_config


def save(folder: str | os.PathLike, model: AbstractLatentModel, *, config=None, force: bool = True) -> Path:
    """Write ``model`` (and the config that fitted it, if given: a :class:`FitDSRConfig` for a PLRNN, a
    :class:`SINDyConfig`, :class:`NeuralODEConfig` or :class:`ESNConfig` for a baseline) to ``folder``, atomically per file."""
    if not (isinstance(model, AbstractLatentModel) and hasattr(model, "header")):
        raise ConfigError(f"dsr.save: {type(model).__name__} cannot be saved (not a DSR model with a header()).")
    kind = model.header().get("model")
    if kind not in _SKELETONS:
        raise ConfigError(f"dsr.save: model kind {kind!r} cannot be saved; savable kinds are {sorted(_SKELETONS)}.")
    if config is not None and not isinstance(config, FIT_CONFIGS[kind]):
        raise ConfigError(f"dsr.save: a {kind!r} model is fitted by a {FIT_CONFIGS[kind].__name__}, got config of type "
                          f"{type(config).__name__}.")
    header = model.header() | {"dsr_format": DSR_FORMAT, "leaf_shapes": _array_shapes(model),
                               "fit_config": None if config is None else config.to_dict()}
    return save_module(folder, model, header, kind=KIND, force=force)


def _header_body(folder: Path, source: str) -> dict:
    header = read_header(folder, kind=KIND)
    check_same_minor_version(header, source)
    body = header.get("config")
    if not isinstance(body, dict) or body.get("dsr_format") != DSR_FORMAT or body.get("model") not in _SKELETONS:
        raise DataError(source, f"not a DSR model checkpoint of format {DSR_FORMAT} "
                        f"(model {body.get('model') if isinstance(body, dict) else None!r}; known kinds {sorted(_SKELETONS)}).",
                        "pass a folder written by dynlearn.dsr.save.", key="config")
    return body


def read_config(folder: str | os.PathLike):
    """The config stored with a model (:data:`FIT_CONFIGS` gives its class per kind), or None when it was saved
    without one. Unknown keys raise :class:`~dynlearn.DataError`; keys added to a config class after the model was saved
    take their defaults."""
    folder = Path(folder)
    source = str(folder / "config.json")
    body = _header_body(folder, source)
    stored = body.get("fit_config")
    if stored is None:
        return None
    cls = FIT_CONFIGS[body["model"]]
    names = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(stored, dict) or set(stored) - names:
        unknown = sorted(set(stored) - names) if isinstance(stored, dict) else stored
        raise DataError(source, f"fit_config holds unknown {cls.__name__} keys {unknown}.", f"use only {sorted(names)}.",
                        key="fit_config")
    return cls(**stored)


def load(folder: str | os.PathLike) -> AbstractLatentModel:
    """Read what :func:`save` wrote (any DSR model kind)."""
    folder = Path(folder)
    source = str(folder / "config.json")
    body = _header_body(folder, source)
    like = _skeleton(body, source)
    expected = _array_shapes(like)
    if body.get("leaf_shapes") != expected:
        raise DataError(source, f"leaf shapes {body.get('leaf_shapes')} do not match the structure its config describes "
                        f"({expected}).", "the checkpoint is corrupt or was edited; re-save it.", key="leaf_shapes")
    return load_leaves(folder, like)
