"""Where the training loop's metrics go: the JSONL file always, and TensorBoard, Weights & Biases or MLflow on request.

Every row the loop logs (``step``, ``wall_s`` and the block's metrics) goes to ``metrics.jsonl`` (:mod:`.metrics`)
and to each sink that was switched on. Switch sinks on with one setting, read by every trainer when it opens its
metrics (the ensemble fit, the dynamics-reward fit, the DSR fit, the offline, model-based and online trainers):

- on the command line, ``--log-to tensorboard,wandb,mlflow`` on ``dynlearn train``, ``dynlearn model train`` and
  ``dynlearn dsr fit``;
- in Python, ``with dl.training.log_to("tensorboard,mlflow"):`` around any training call (a name or a list of names);
- otherwise the environment variable ``DYNLEARN_LOG_TO`` (same spelling), which subprocesses inherit.

The optional sinks are extras: ``pip install "dynlearn[tensorboard]"`` (``[wandb]``, ``[mlflow]``); asking for one
whose package is missing, or for an unknown name, raises :class:`~dynlearn.errors.ConfigError` before anything
trains. Each sink writes under the run, beside its ``metrics.jsonl`` (per seed for trainers with seed folders); see
:mod:`.trackers` for where exactly. A resumed run continues the same TensorBoard logdir, W&B run and MLflow run.

A sink never costs a run: when one fails mid-run (a W&B server gone, a full disk under the TensorBoard folder), it
warns once (:class:`SinkFailed`), is dropped for the rest of the invocation, and training goes on; the JSONL file is
always written.

A sink is anything with ``write(step, metrics)`` and ``close()`` (:class:`Sink`).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from .metrics import MetricsLog
from .trackers import ENV, MLflowSink, TensorBoardSink, WandbSink, import_extra


class Sink(Protocol):
    """Receives the loop's rows: ``metrics`` holds ``wall_s`` and the block's metrics (numbers, or None for a missing
    value); ``close`` is called once when the loop returns or stops."""

    def write(self, step: int, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class SinkFailed(UserWarning):
    """An optional sink failed and was dropped; the run and its JSONL file go on."""


SINKS: dict[str, tuple[str, Callable[[Path, int], Sink]]] = {
    "tensorboard": ("tensorboardX", TensorBoardSink),
    "wandb": ("wandb", WandbSink),
    "mlflow": ("mlflow", MLflowSink),
}
"""The optional sinks: name (also the name of the extra that installs it) -> (the package it imports, a factory)."""

NAMES = tuple(SINKS)
"""The names ``--log-to`` / :func:`log_to` / ``DYNLEARN_LOG_TO`` accept (``jsonl`` too: always on)."""


def require(name: str) -> Any:
    """Import the package of sink ``name``, or raise a ConfigError naming the extra that installs it."""
    return import_extra(SINKS[name][0], name)


def sink_names(names: str | Iterable[str] | None, *, source: str = "--log-to") -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` (or a list of names) as a checked tuple: known names, packages importable, each once.

    Commas and spaces separate names; case is ignored; ``jsonl`` (always written) and empty entries are dropped.
    ``source`` names the setting in the error (the flag, ``log_to``, the environment variable).
    """
    if names is None:
        return ()
    parts = re.split(r"[,\s]+", names) if isinstance(names, str) else [p for n in names for p in re.split(r"[,\s]+", n)]
    chosen: list[str] = []
    for part in (p.strip().lower() for p in parts):
        if part in ("", "jsonl") or part in chosen:
            continue
        if part not in SINKS:
            raise ConfigError(f"{source}: unknown sink {part!r}. Fix: use a comma-separated list of {', '.join(NAMES)} "
                              "(the JSONL metrics file is always written).")
        chosen.append(part)
    for name in chosen:
        require(name)
    return tuple(chosen)


_ACTIVE: ContextVar[tuple[str, ...] | None] = ContextVar("dynlearn_log_to", default=None)


@contextlib.contextmanager
def log_to(names: str | Iterable[str] | None) -> Iterator[tuple[str, ...]]:
    """Inside the ``with``, every training loop also logs to the sinks ``names`` (``"tensorboard,wandb,mlflow"``).

    Checked on entry (unknown names, missing packages: ConfigError). ``None`` changes nothing (``DYNLEARN_LOG_TO`` or an
    outer ``log_to`` decides), so a command-line flag that defaults to None passes straight in; ``""`` or ``[]`` turns
    every optional sink off. Yields the names in force. It holds in the thread (or asyncio task) that entered it; a
    subprocess reads ``DYNLEARN_LOG_TO``.
    """
    if names is None:
        yield requested()
        return
    token = _ACTIVE.set(sink_names(names, source="log_to"))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


def requested() -> tuple[str, ...]:
    """The optional sinks in force: the innermost :func:`log_to`, else ``DYNLEARN_LOG_TO``, else none."""
    active = _ACTIVE.get()
    return active if active is not None else sink_names(os.environ.get(ENV), source=ENV)


def sinks_from_names(names: str | Iterable[str] | None, folder: str | os.PathLike, *, resume_step: int = 0) -> list[Sink]:
    """Open the optional sinks ``names`` for the run whose ``metrics.jsonl`` is in ``folder``; ``resume_step``: the step
    a resumed run continues from (0: a fresh run). Errors of opening propagate (the loop guards them instead)."""
    return [SINKS[name][1](Path(folder), resume_step) for name in sink_names(names)]


class RunLog:
    """The rows of one metrics file: the JSONL file (:class:`.MetricsLog`) plus the optional sinks ``names`` beside it
    (default: :func:`requested`), each guarded so that its failure only warns (:class:`SinkFailed`)."""

    def __init__(self, path: str | os.PathLike, *, resume_step: int = 0, names: Iterable[str] | None = None):
        self.jsonl = MetricsLog(path, resume_step=resume_step)
        self.path = Path(path)
        self.sinks: dict[str, Sink] = {}
        for name in (requested() if names is None else sink_names(names)):
            try:
                self.sinks[name] = SINKS[name][1](self.path.parent, resume_step)
            except Exception as error:  # noqa: BLE001 - a sink that cannot start must not stop the run
                self._failed(name, "could not start", error)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        self.jsonl.write(step, metrics)
        for name, sink in list(self.sinks.items()):
            try:
                sink.write(step, metrics)
            except Exception as error:  # noqa: BLE001
                del self.sinks[name]
                self._failed(name, f"failed at step {step:,}", error)
                _close_quietly(sink)

    def close(self) -> None:
        for name, sink in list(self.sinks.items()):
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001
                self._failed(name, "failed to close", error)
        self.sinks.clear()

    def _failed(self, name: str, what: str, error: Exception) -> None:
        warnings.warn(f"{self.path.parent}: logging to {name} {what} ({type(error).__name__}: {error}); training goes on "
                      f"without it, and {self.path.name} has every row.", SinkFailed, stacklevel=3)


def _close_quietly(sink: Sink) -> None:
    with contextlib.suppress(Exception):
        sink.close()
