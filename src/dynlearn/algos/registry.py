"""The registered offline model-based methods: a method's name -> its config class (:class:`ModelBasedConfig`).

The built-in methods are registered below, one line each. A new method is one module with its config class and one
:func:`register` call (or ``@register`` on the class); ``dynlearn train NAME`` then trains it, its config's fields as
flags, when the method is registered before :func:`dynlearn.cli.main` runs.

A run folder's ``config.json`` records the method's name and every field (:meth:`ModelBasedConfig.record`);
:func:`load_config` rebuilds the very config the run trained.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

from .. import agents
from ..errors import ConfigError, DataError
from .base import ModelBasedConfig
from .mbpo import MBPOConfig
from .mobile import MOBILEConfig
from .mopo import MOPOConfig
from .morec.mobile import MORECMOBILEConfig
from .morec.mopo import MORECMOPOConfig
from .ravl import RAVLConfig

C = TypeVar("C", bound=type[ModelBasedConfig])

_METHODS: dict[str, type[ModelBasedConfig]] = {}
RESERVED = ("pets",)
"""Names of other ``dynlearn train`` commands (the agents' names are reserved too)."""


def register(config_cls: C) -> C:
    """Register a method's config class under its ``name``; returns the class (usable as a decorator).

    Registering the same class again does nothing; another class under a taken name, an abstract class, or a name of
    an agent (``sac``, ``td3bc``, ...) is refused.
    """
    if not (isinstance(config_cls, type) and issubclass(config_cls, ModelBasedConfig) and dataclasses.is_dataclass(config_cls)):
        raise ConfigError(f"register: {config_cls!r} is not a ModelBasedConfig dataclass. Fix: subclass "
                          "dynlearn.algos.ModelBasedConfig with @dataclasses.dataclass(frozen=True).")
    if inspect.isabstract(config_cls):
        missing = ", ".join(sorted(config_cls.__abstractmethods__))
        raise ConfigError(f"register: {config_cls.__name__} does not implement {missing}. Fix: define them on the class.")
    name = getattr(config_cls, "name", None)
    if not isinstance(name, str) or not name or name != name.lower() or " " in name:
        raise ConfigError(f"register: {config_cls.__name__}.name must be a lower-case name without spaces (its command: "
                          f"dynlearn train NAME), got {name!r}. Fix: set name: ClassVar[str] = \"my-method\" on the class.")
    if name in RESERVED or name in agents.names():
        raise ConfigError(f"register: {name!r} is the name of another `dynlearn train` command. Fix: choose another name.")
    taken = _METHODS.get(name)
    if taken is not None and taken is not config_cls:
        raise ConfigError(f"register: {name!r} is taken by {taken.__module__}.{taken.__qualname__}. Fix: choose another name.")
    _METHODS[name] = config_cls
    return config_cls


def method(name: str) -> type[ModelBasedConfig]:
    """The config class of the method registered as ``name``."""
    try:
        return _METHODS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown model-based method {name!r}. Fix: choose one of {', '.join(_METHODS)}.") from None


def names() -> tuple[str, ...]:
    """The registered methods' names, in the order they were registered."""
    return tuple(_METHODS)


def config_from_record(record: dict[str, Any]) -> ModelBasedConfig:
    """The config a record of :meth:`ModelBasedConfig.record` was made from: the method's class with every field the
    record holds. A field the class lacks, or one the record lacks, is refused (the record is of another version)."""
    if "method" not in record:
        raise ConfigError("the config record names no method (its 'method' key). Fix: pass a record that "
                          "ModelBasedConfig.record() wrote (config.json's model_based section).")
    cls = method(record["method"])
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in record.items() if k != "method"}
    unknown, missing = sorted(set(values) - fields), sorted(fields - set(values))
    if unknown or missing:
        parts = ([f"fields {cls.__name__} does not have: {', '.join(unknown)}"] if unknown else []) + (
            [f"no value for {', '.join(missing)}"] if missing else [])
        raise ConfigError(f"the {cls.name} config record does not match {cls.__name__} ({'; '.join(parts)}): it was written by "
                          "another version of the method. Fix: start the run again with this version.")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _field_value(v, hints[k]) for k, v in values.items()})


def load_config(run: str | Path) -> ModelBasedConfig:
    """The config a model-based run folder (or its ``config.json``) was trained with."""
    path = Path(run)
    path = path / "config.json" if path.is_dir() else path
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(str(path), "does not exist.", "pass the run folder of a model-based run (dynlearn train METHOD).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(str(path), f"is not valid JSON ({e}).", "pass the config.json of a model-based run.") from None
    if "model_based" not in config:
        raise DataError(str(path), "is not the config of a model-based run (no model_based section).",
                        "pass the run folder of `dynlearn train METHOD` (mopo, mobile, ...).")
    return config_from_record(config["model_based"])


def _field_value(value, hint):
    """A JSON value as the field holds it: text back to a non-finite float, a list back to a tuple."""
    if isinstance(value, str) and float in (hint, *typing.get_args(hint)):
        return float(value)
    if isinstance(value, list):
        return tuple(value)
    return value


register(MOPOConfig)
register(MOBILEConfig)
register(RAVLConfig)
register(MBPOConfig)
register(MORECMOPOConfig)
register(MORECMOBILEConfig)
