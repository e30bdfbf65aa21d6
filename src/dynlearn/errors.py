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
