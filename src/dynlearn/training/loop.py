"""The one host loop every trainer runs: compiled blocks, evaluation, logging, checkpoints, graceful stop, resume.

A trainer is a **step function over a state**: ``block(state, progress) -> (state, metrics)`` runs one compiled block
(a ``lax.scan`` of steps; for a model-based method a rollout and then its agent updates) from ``progress["step"]`` and
returns the block's metrics as host numbers (the one host sync per block). ``state`` is a pytree of arrays (what is
checkpointed), ``progress`` a JSON-ready dict (what the host keeps between blocks: counters, histories, evaluations).
:func:`run` alone owns the host side around it:

- **blocks and steps**: ``progress["step"]`` advances by :attr:`Schedule.block` after each block (clipped at
  :attr:`Schedule.total`), or by the block function itself when ``block`` is None (the online trainer's blocks end
  at an update or an episode end);
- **evaluation**: ``evaluate(state, progress) -> scores`` after every block that crosses a multiple of ``eval_every``
  and after the last;
- **logging**: one JSONL row per block (``metrics.jsonl``: step, wall time, the block's metrics and scores;
  :mod:`.metrics`), the same rows to the optional sinks switched on (TensorBoard, W&B, MLflow: :mod:`.sinks`), and
  the progress line of :mod:`dynlearn.progress` (a bar in a terminal, timestamped lines in a log);
- **checkpoints** (:mod:`.checkpoints`): atomic and fingerprinted, every ``checkpoint_every`` steps and/or
  ``checkpoint_every_s`` seconds, at ``until``, on a stop request, and at the end where the run folder keeps it;
  ``can_stop(progress)`` says where a state can be saved at all (the online trainer: only at an episode end, as its
  simulator is not part of the state);
- **graceful stop**: inside :func:`dynlearn.interrupt.graceful_stop` a SIGTERM / Ctrl-C lets the running block finish
  (at least one block runs per invocation, so a stop never loses progress to a restart loop), writes the checkpoint of
  that step and raises :class:`dynlearn.interrupt.Stopped`;
- **resume**: the trainer loads the state and progress with :meth:`.Checkpoint.load` and calls :func:`run` again; every
  key derives from ``(seed, step)``, so the run ends bit-identical to one that never stopped;
- **wall time** across resumes (:mod:`.clock`): ``progress["wall_s"]`` is the whole run's, ``progress["train_s"]`` the
  time spent inside blocks.

>>> state, progress, done = run(block, state, progress, schedule=Schedule(block=1000, total=100_000, eval_every=10_000,
...                             checkpoint_every=10_000), clock=clock, checkpoint=Checkpoint(out / "checkpoint", fp),
...                             evaluate=evaluate, metrics=out / "metrics.jsonl")
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import interrupt
from ..progress import ProgressLine
from .checkpoints import Checkpoint
from .clock import WallClock
from .schedule import Schedule
from .seeds import SeedCheckpoints
from .sinks import RunLog, requested


Progress = dict[str, Any]
Metrics = dict[str, float] | list[dict[str, float]]


def _crossed(every: int | None, before: int, after: int) -> bool:
    return bool(every) and after // every > before // every


def run(block: Callable[[Any, Progress], tuple[Any, Metrics]], state: Any, progress: Progress, *, schedule: Schedule,
        clock: WallClock, checkpoint: Checkpoint | SeedCheckpoints | None = None,
        evaluate: Callable[[Any, Progress], Metrics | None] | None = None,
        finished: Callable[[Progress], bool] | None = None, can_stop: Callable[[Progress], bool] | None = None,
        line: ProgressLine | None = None, describe: Callable[[Progress, Metrics], str] | None = None,
        metrics: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> tuple[Any, Progress, bool]:
    """Train ``state`` with ``block`` until the run is done, ``until``, or a stop request; see the module docstring.

    ``progress`` is a fresh ``{}`` (step 0) or what :meth:`.Checkpoint.load` returned; ``clock`` the invocation's
    :class:`WallClock` (started before the trainer's setup, so that counts too). ``finished(progress)``: early stopping
    (checked after each block). ``metrics``: the JSONL file, or one per seed when ``block`` returns a list of metrics
    (seeds trained together); the optional sinks in force (:func:`.sinks.log_to`, ``DYNLEARN_LOG_TO``) write beside
    each. Returns ``(state, progress, done)``; ``done`` is False when stopped at ``until``. Raises
    :class:`dynlearn.interrupt.Stopped` on a stop request (only with a ``checkpoint``: without one there is nothing to
    resume from, and SIGTERM / Ctrl-C keep their usual meaning).
    """
    progress.setdefault("step", 0)
    progress.setdefault("train_s", 0.0)
    clock.resume_from(progress.get("wall_s", 0.0))
    progress["wall_s"] = clock.total()
    logs = _logs(metrics, progress["step"])
    closing = contextlib.ExitStack()
    for log in logs:
        closing.callback(log.close)
    finished = finished or (lambda p: False)
    can_stop = can_stop or (lambda p: True)
    total, until = schedule.total, schedule.until
    saved = progress["step"]  # the step the checkpoint on disk holds (0: nothing trained, nothing to keep)
    last_save, owed = time.perf_counter(), False

    def done_at(step: int) -> bool:
        return (total is not None and step >= total) or finished(progress)

    def save() -> None:
        nonlocal saved, last_save, owed
        progress["wall_s"] = clock.total()
        checkpoint.save(state, progress)
        saved, last_save, owed = progress["step"], time.perf_counter(), False

    stopping = interrupt.graceful_stop() if checkpoint is not None else contextlib.nullcontext()
    with closing, stopping, (line if line is not None else contextlib.nullcontext()):
        if line is not None and progress["step"]:
            line.update(progress["step"] // schedule.unit, f"continuing at step {progress['step']:,}")
        while not done_at(progress["step"]):
            step = progress["step"]
            if until is not None and step >= until:
                if checkpoint is not None and saved != step and can_stop(progress):
                    save()
                return state, progress, False
            t0 = time.perf_counter()
            state, row = block(state, progress)
            progress["train_s"] += time.perf_counter() - t0
            if schedule.block is not None:
                progress["step"] = step + schedule.block if total is None else min(step + schedule.block, total)
            new = progress["step"]
            done = done_at(new)
            progress["wall_s"] = clock.total()
            if evaluate is not None and (_crossed(schedule.eval_every, step, new) or (total is not None and new >= total)):
                scores = evaluate(state, progress)
                if scores:
                    row = [r | s for r, s in zip(row, scores)] if isinstance(row, list) else row | scores
            _log(logs, row, new, progress["wall_s"])
            if line is not None:
                line.update(new // schedule.unit, describe(progress, row) if describe is not None else f"step {new:,}")
            if checkpoint is None:
                continue
            due = (_crossed(schedule.checkpoint_every, step, new) or owed or (
                schedule.checkpoint_every_s is not None and time.perf_counter() - last_save >= schedule.checkpoint_every_s))
            if done:
                if schedule.checkpoint_at_end:
                    save()
            elif due:
                if can_stop(progress):
                    save()
                else:
                    owed = True  # saved at the first step where it can be
            if not done and interrupt.requested() and can_stop(progress):
                if saved != new:  # keep every finished block
                    save()
                raise interrupt.Stopped(checkpoint.where, new)
    if saved != progress["step"]:  # else the final checkpoint's time stands, so a finished run reads back the same
        progress["wall_s"] = clock.total()
    return state, progress, True


def _logs(metrics, step: int) -> list[RunLog]:
    if metrics is None:
        return []
    paths = [metrics] if isinstance(metrics, (str, os.PathLike)) else list(metrics)
    names = requested()  # checked once, before any file is touched
    return [RunLog(p, resume_step=step, names=names) for p in paths]


def _log(logs: list[RunLog], row: Metrics, step: int, wall_s: float) -> None:
    rows = row if isinstance(row, list) else [row]
    for log, r in zip(logs, rows):
        log.write(step, {"wall_s": wall_s, **r})
