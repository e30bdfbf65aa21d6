"""One progress line for the library's long loops (ensemble fit, dynamics reward, DSR fit): a rich bar updated between
compiled blocks, or nothing when quiet."""

from __future__ import annotations


class ProgressLine:
    """``with ProgressLine(enabled, "fit ensemble", total) as line: line.update(done, "text")``.

    ``total=None`` shows no bar (an open-ended loop); ``remaining`` adds an estimate of the time left.
    """

    def __init__(self, enabled: bool, label: str, total: int | None, *, remaining: bool = False):
        self.enabled, self.label, self.total, self.remaining = enabled, label, total, remaining
        self._bar = None

    def __enter__(self) -> ProgressLine:
        if self.enabled:
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

    def __exit__(self, *exc) -> bool:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False
