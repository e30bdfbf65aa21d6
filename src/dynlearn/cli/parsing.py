"""How the command line turns arguments into config dataclasses, and errors into the one line a user reads.

A command is a dataclass (its flags, each field's docstring its help) and a function run on the parsed arguments
(:class:`Command`). Config classes check themselves in ``__post_init__``; tyro builds an unchecked copy
(:func:`unchecked`) and the checks run afterwards, so that their :class:`~dynlearn.errors.ConfigError` becomes one line
naming the flags the user typed (:func:`user_message`) instead of tyro's box.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from typing import Any, Callable, NamedTuple

import tyro

from ..errors import ConfigError, DynlearnError


class Command(NamedTuple):
    """A ``dynlearn`` command: the dataclass its flags come from (its help, and the flags error messages name) and the
    function that runs it on its arguments."""

    cls: type
    run: Callable[[list[str], str], None]
    """``run(args, prog)``: parse ``args`` (``prog``: the command's name in help) and run"""


def command(cls: type, handler: Callable) -> Command:
    """A command that runs ``handler`` on ``args`` parsed into ``cls``."""
    return Command(cls, lambda args, prog: handler(parse(cls, args, prog=prog)))


@functools.cache
def unchecked(cls: type) -> type:
    """``cls`` without its own checks (``__post_init__``), for tyro to build: the checks then run outside tyro, whose
    box around an error they raise would hide the one line :func:`dynlearn.cli.main` prints."""
    return type(cls.__name__, (cls,), {"__post_init__": lambda self: None, "__module__": cls.__module__, "__doc__": cls.__doc__})


def parse(cls: type, args: list[str], *, prog: str):
    """``args`` parsed into the config dataclass ``cls``, whose own checks (``__post_init__``) run here, outside tyro:
    their ConfigError is then printed as one line by :func:`dynlearn.cli.main` (tyro would wrap it in a box of its
    own)."""
    raw = tyro.cli(unchecked(cls), args=args, prog=prog, description=cls.__doc__)
    return cls(**values(raw))


def preset_command(cls: type, handler: Callable, presets: Callable[[str], Any]) -> Command:
    """A command like :func:`command` whose ``--preset NAME`` (optional) starts every flag's default from
    ``cls(config=presets(NAME))``; the flags given beside it change that."""
    return Command(cls, lambda args, prog: handler(parse_with_preset(cls, args, presets, prog=prog)))


def parse_with_preset(cls: type, args: list[str], presets: Callable[[str], Any], *, prog: str):
    """``args`` parsed into ``cls`` (a job with a ``config`` field) as :func:`parse` does, the defaults taken from the
    preset that ``--preset NAME`` names (the last one given), if any."""
    rest, chosen = _take_option(args, "--preset", "a preset's name", "NAME")
    if not chosen:
        return parse(cls, rest, prog=prog)
    job = unchecked(cls)
    default = job(**{**values(job()), "config": presets(chosen[-1])})
    raw = tyro.cli(job, args=rest, prog=prog, description=cls.__doc__, default=default)
    return cls(**values(raw))


def values(cfg) -> dict:
    """A dataclass's fields, as keyword arguments (not recursive, unlike ``dataclasses.asdict``)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.init}


def force_replace_folders(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` without ``--force-replace-folder PATH`` (any command: with ``--force``, replace PATH even though dynlearn
    did not write it), and those PATHs."""
    rest, paths = _take_option(args, "--force-replace-folder", "the folder's path", "PATH")
    return rest, paths


def log_to_option(args: list[str]) -> tuple[list[str], str | None]:
    """``args`` without ``--log-to NAMES`` (any command that trains: also log to tensorboard, wandb and/or mlflow,
    comma-separated; :func:`dynlearn.training.log_to`), and NAMES (the last one given; None when absent)."""
    rest, values = _take_option(args, "--log-to", "the sinks' names", "tensorboard,wandb,mlflow")
    return rest, values[-1] if values else None


def _take_option(args: list[str], flag: str, what: str, example: str) -> tuple[list[str], list[str]]:
    """``args`` without every ``FLAG VALUE`` / ``FLAG=VALUE``, and the VALUEs in order."""
    rest, values = [], []
    it = iter(args)
    for arg in it:
        if arg == flag:
            value = next(it, None)
            if value is None:
                raise ConfigError(f"{flag} needs {what}. Fix: pass {flag} {example}.")
            values.append(value)
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, values


_CONFIG_FIELD = re.compile(r"\b[A-Z]\w*Config\.(\w+)")
_CONFIG_PREFIX = re.compile(r"^[A-Z]\w*Config: ")


def flag_names(cls: type, prefix: str = "") -> dict[str, str | None]:
    """Each field of the command's dataclass (and of the config dataclasses nested in it) -> the flag that sets it
    (None for a positional argument). A nested config's fields are ``--PARENT.FIELD``, or ``--FIELD`` where the parent
    is annotated ``tyro.conf.arg(name="")``; the outer name wins where two levels share a name."""
    hints = typing.get_type_hints(cls, include_extras=True)
    flags: dict[str, str | None] = {}
    nested = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name, f.type)
        meta = getattr(hint, "__metadata__", ())
        if "Positional" in repr(hint):
            flags[f.name] = None
            continue
        base = typing.get_args(hint)[0] if meta else hint
        if dataclasses.is_dataclass(base):
            unnamed = any(getattr(m, "name", None) == "" for m in meta)
            nested.append((base, prefix if unnamed else f"{prefix}{f.name}."))
        flags[f.name] = "--" + (prefix + f.name).replace("_", "-")
    for base, sub in nested:
        for name, flag in flag_names(base, sub).items():
            flags.setdefault(name, flag)
    return flags


def user_message(error: DynlearnError, cls: type, command: str) -> str:
    """The one line printed for ``error``. A configuration error raised by a config class deeper down names its fields
    (``OfflineConfig.steps``, ``eval_every (10)``); here they become the flags the user typed (``--steps``), and a
    message without a fix gets one."""
    message = " ".join(str(error).split("\n"))
    if isinstance(error, ConfigError):
        fields = flag_names(cls)
        positional = {n for n, f in fields.items() if f is None}

        def flag(name: str) -> str:
            if name in ("agent", "method") and "algo" in fields:
                return "ALGO"
            return name.upper() if name in positional else fields[name] if name in fields else name

        message = _CONFIG_PREFIX.sub("", _CONFIG_FIELD.sub(lambda m: flag(m[1]), message))
        named = [n for n in sorted(fields, key=len, reverse=True) if n not in positional]
        if named:  # bare field names: "steps (10)"; any snake_case one ("model_min_epochs 350", "eval_every must ...")
            bare = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, named)) + r")(?=\s+\(-?\d)")
            message = bare.sub(lambda m: flag(m[1]), message)
            underscored = [re.escape(n) for n in named if "_" in n]
            if underscored:
                message = re.sub(r"(?<![\w-])(" + "|".join(underscored) + r")(?![\w-])", lambda m: flag(m[1]), message)
    if "Fix:" not in message:
        message = message.rstrip()
        message += "" if message.endswith((".", ")")) else "."
        multiple = re.search(r"multiples? of [\w-]+ \((\d+)\)", message)
        flags = re.findall(r"(?<![\w-])--[a-z][\w-]*", message)
        if multiple:
            message += f" Fix: pass values that are multiples of {multiple[1]}."
        elif flags:
            message += f" Fix: change {flags[0]} (dynlearn {command} --help says what it takes)."
        else:
            message += f" Fix: see dynlearn {command} --help."
    return message
