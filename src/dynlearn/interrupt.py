"""Graceful stops: SIGTERM or Ctrl-C asks a training loop to checkpoint where it stands and exit.

A scheduler that preempts a job (SLURM sends SIGTERM, then SIGKILL after a grace period), a terminal's Ctrl-C, or
``kill PID`` should not cost the work done since the last periodic checkpoint. Inside :func:`graceful_stop` the first
SIGTERM or SIGINT only sets a flag; the one training loop, :func:`dynlearn.training.run`, which every trainer runs
(:func:`dynlearn.algos.model_based.train_model_based`, :func:`dynlearn.algos.offline.train_offline`,
:func:`dynlearn.algos.online.train_online`, and the fits given a checkpoint folder: :func:`dynlearn.models.fit`,
:func:`dynlearn.algos.morec.learn_reward`, :func:`dynlearn.dsr.fit_dsr`), tests it after each block, writes
its checkpoint for the step it has reached and raises :class:`Stopped`; nothing else tests it. The run then continues
exactly as if it had never stopped: the training runs with ``resume=True`` (``--resume``), the fits when called again
with the same inputs and checkpoint folder. A second Ctrl-C stops at once (``KeyboardInterrupt``), losing the work since
the last checkpoint.

>>> with graceful_stop():
...     train_model_based(data, task, cfg, "runs/mopo")   # raises Stopped(folder, step) after a SIGTERM

Signal handlers can only be installed from the main thread; elsewhere :func:`graceful_stop` changes nothing, and
:func:`request` (what the handler calls) still works, e.g. from another thread or a log callback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import DynlearnError

__all__ = ["Stopped", "graceful_stop", "request", "requested"]

_state = {"requested": False, "depth": 0}


class Stopped(DynlearnError):
    """A training loop stopped on request after checkpointing ``step`` in ``folder``."""

    def __init__(self, folder: str | Path, step: int):
        self.folder, self.step = Path(folder), int(step)
        where = f"{self.folder} holds a checkpoint of that step" if self.step else f"nothing of {self.folder} was trained yet"
        super().__init__(f"stopped on request at step {self.step:,}; {where}. Resume: run the same command again with "
                         "--resume (resume=True).")


def request() -> None:
    """Ask the running training loop to checkpoint and stop at its next block boundary."""
    _state["requested"] = True


def requested() -> bool:
    """Whether a stop has been requested (and not yet honoured by leaving :func:`graceful_stop`)."""
    return _state["requested"]


@contextlib.contextmanager
def graceful_stop() -> Iterator[None]:
    """Turn the first SIGTERM / SIGINT into :func:`request` for the duration (nested uses share one request)."""
    outermost = _state["depth"] == 0
    if outermost:
        _state["requested"] = False
    installed = {}
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            if _state["requested"] and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            request()
            print(f"dynlearn: {signal.Signals(signum).name} received; checkpointing at the end of the current block, then "
                  "stopping (Ctrl-C again to stop at once).", file=sys.stderr, flush=True)

        for sig in (signal.SIGTERM, signal.SIGINT):
            installed[sig] = signal.signal(sig, handler)
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        for sig, previous in installed.items():
            signal.signal(sig, previous)
        if outermost:
            _state["requested"] = False
