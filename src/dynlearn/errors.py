"""Errors that mean "the input is wrong", raised at the library's boundary.

Every message is one line that names the file (or argument), the key and the fix. The CLI prints
these without a traceback and exits non-zero; anything else escaping is a bug in dynlearn.
"""

from __future__ import annotations


class DynlearnError(Exception):
    """Base class for user-facing errors (bad input, bad config, refused overwrite)."""


class DataError(DynlearnError, ValueError):
    """A dataset file or array is missing something, is malformed or holds bad values."""

    def __init__(self, source: str, problem: str, fix: str | None = None, *, key: str | None = None):
        where = f"{source}" + (f" [{key}]" if key else "")
        message = f"{where}: {problem}" + (f" Fix: {fix}" if fix else "")
        super().__init__(message)
        self.source, self.key, self.problem, self.fix = source, key, problem, fix


class ConfigError(DynlearnError, ValueError):
    """A configuration or command-line value is invalid."""


def check_minimums(cfg, minimums: dict[str, int | float], *, command: str) -> None:
    """Refuse an option of ``cfg`` (a command's config: one field per flag) below its minimum, naming the flag the user
    typed. None means the option was left out: its default applies (so a 0 is never taken for "the default")."""
    for name, low in minimums.items():
        value = getattr(cfg, name)
        if value is not None and value < low:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{command}: {flag} must be at least {low}, got {value}. Fix: pass {flag} {low} or more, or leave "
                              f"{flag} out for its default.")


class OutputExistsError(DynlearnError, FileExistsError):
    """Refusing to write over an existing output without ``force``."""

    def __init__(self, path):
        from pathlib import Path

        folder = Path(path)  # an unfinished training run (a checkpoint, no results) can be resumed instead
        checkpoints = (*folder.glob("checkpoint"), *folder.glob("seed_*/checkpoint"))
        resumable = not (folder / "results.json").is_file() and any(p.is_dir() for p in checkpoints)
        hint = ", --resume to continue its unfinished run," if resumable else ""
        super().__init__(f"{path}: already exists. Fix: choose another output path{hint} or pass --force to overwrite it.")
        self.path = path


class TrainingFailedError(DynlearnError):
    """Training ran but produced no valid result (e.g. a NaN or infinite final score); nothing is written as a result."""


class LockedError(DynlearnError):
    """Another process is writing the run folder (or model-cache entry): one writer at a time (:mod:`dynlearn.locking`)."""

    def __init__(self, lock_file, what: str, holder=None, *, other_host: bool = False, others: int = 0):
        self.lock_file, self.what, self.holder = lock_file, what, holder
        who = holder.describe() if holder is not None else "another process"
        if others:
            who += f" and {others} other process{'es' if others > 1 else ''}"
        if other_host:
            super().__init__(f"{what} is locked by {who}, and whether that process still runs cannot be checked from "
                             f"this host. Fix: if no dynlearn process on {holder.host} writes it any more, delete "
                             f"{lock_file} and run again; otherwise wait for it or write elsewhere (another --out).")
        else:
            stop = f" (kill {holder.pid})" if holder is not None and holder.pid else ""
            super().__init__(f"{what} is being written by {who}. Fix: wait for it to finish, stop it{stop}, or write "
                             "elsewhere (another --out).")


class NotDynlearnOutputError(DynlearnError, FileExistsError):
    """``--force`` replaces only what dynlearn wrote: refused for a folder or file dynlearn did not write."""


class RunFinished(DynlearnError):
    """``--resume`` of a run that is finished: nothing to do, and its results are kept as they are (the CLI exits 0)."""

    def __init__(self, path):
        self.path = path
        super().__init__(f"{path}: the run is finished (results.json); there is nothing to resume and its results are "
                         "unchanged. To train it again, pass --force instead of --resume (this replaces the run).")


def warn(message: str) -> None:
    """Print a one-line warning on stderr: something was wrong and dynlearn dealt with it (e.g. a damaged cache entry,
    refitted); not a Python warning, so that it reads the same in scripts, tests and the CLI."""
    import sys

    print(f"dynlearn: warning: {message}", file=sys.stderr, flush=True)
