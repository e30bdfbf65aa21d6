"""One progress line for the library's long loops (ensemble fit, dynamics reward, DSR fit; shown by the training loop,
:func:`dynlearn.training.run`): a rich bar updated between compiled blocks in a terminal; plain timestamped lines, at
most one every ``log_every_s`` seconds, when the output is a file or a pipe (a job under ``nohup`` or a scheduler), so a
log shows how far a long fit has got; nothing when quiet."""

from __future__ import annotations

import sys
import time


class ProgressLine:
    """``with ProgressLine(enabled, "fit ensemble", total) as line: line.update(done, "text")``.

    ``total=None`` shows no bar (an open-ended loop); ``remaining`` adds an estimate of the time left.
    """

    def __init__(self, enabled: bool, label: str, total: int | None, *, remaining: bool = False, log_every_s: float = 30.0,
                 stream=None):
        self.enabled, self.label, self.total, self.remaining = enabled, label, total, remaining
        self.log_every_s = log_every_s
        self._stream = stream
        self._bar = None
        self._plain = False
        self._start = self._last_line = 0.0
        self._pending: str | None = None

    def __enter__(self) -> ProgressLine:
        if not self.enabled:
            return self
        stream = self._stream if self._stream is not None else sys.stdout
        if not stream.isatty():
            self._plain, self._stream = True, stream
            self._start = time.monotonic()
            self._last_line = -float("inf")
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = [TextColumn(self.label)] + ([BarColumn(), MofNCompleteColumn()] if self.total else [])
        columns += [TextColumn("{task.description}"), TimeElapsedColumn()] + ([TimeRemainingColumn()] if self.remaining else [])
        self._bar = Progress(*columns, transient=False)
        self._bar.__enter__()
        self._task = self._bar.add_task("compiling...", total=self.total)
        return self

    def update(self, completed: int, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, description=description)
        elif self._plain:
            of = f"/{self.total}" if self.total else ""
            self._pending = f"{self.label} {completed}{of}: {description}"
            if time.monotonic() - self._last_line >= self.log_every_s:
                self._write()

    def _write(self) -> None:
        elapsed = int(time.monotonic() - self._start)
        stamp = time.strftime("%H:%M:%S")
        self._stream.write(f"[{stamp}] {self._pending} ({elapsed // 60}:{elapsed % 60:02d} elapsed)\n")
        self._stream.flush()
        self._pending, self._last_line = None, time.monotonic()

    def __exit__(self, *exc) -> bool:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self._plain and self._pending is not None:
            self._write()  # the last state, whenever the loop ends
        return False
