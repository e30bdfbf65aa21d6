"""Users' own logs as NPZ archives or CSV tables, with a mapping from columns to fields.

A column mapping names which arrays (NPZ) or columns (CSV) hold each field. Names may be shell-style
patterns (``obs_*``) that expand in file order; several names are stacked side by side. Rows are steps,
episodes contiguous; episode boundaries come from an episode-id column or from terminal/timeout flags.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._csv import read_numeric_csv
from .dataset import Dataset, episode_starts_from_ids, from_arrays


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which columns (CSV) or arrays (NPZ) hold each field. Defaults follow the D4RL key names."""

    obs: tuple[str, ...] = ("observations",)
    """observation columns (names or patterns such as ``obs_*``), stacked in order"""
    act: tuple[str, ...] = ("actions",)
    """action columns"""
    rew: str = "rewards"
    """reward column"""
    terminal: str | None = "terminals"
    """terminal-flag column (0/1); None or absent means no terminals"""
    timeout: str | None = "timeouts"
    """timeout/truncation flag column; None or absent means none"""
    next_obs: tuple[str, ...] | None = None
    """successor-observation columns; None uses ``next_observations`` if the file has it, else derives them inside episodes"""
    episode: str | None = None
    """episode-id column; when given, episodes are its contiguous blocks"""

    @classmethod
    def parse(cls, *, obs=None, act=None, rew=None, terminal=None, timeout=None, next_obs=None, episode=None) -> "Columns":
        """Build from CLI-style strings (``"obs_0,obs_1"`` or ``"obs_*"``); None keeps the default."""
        split = lambda s: tuple(p.strip() for p in s.split(",") if p.strip()) if isinstance(s, str) else tuple(s)  # noqa: E731
        kw = {}
        for name, value in (("obs", obs), ("act", act), ("next_obs", next_obs)):
            if value is not None:
                kw[name] = split(value)
        for name, value in (("rew", rew), ("terminal", terminal), ("timeout", timeout), ("episode", episode)):
            if value is not None:
                kw[name] = value
        return cls(**kw)


def _expand(patterns: tuple[str, ...], available: list[str], source: str, field: str) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        hits = ([a for a in available if fnmatch.fnmatchcase(a, pattern)] if any(c in pattern for c in "*?[")
                else [pattern] if pattern in available else [])
        if not hits:
            shown = ", ".join(available[:12]) + (" ..." if len(available) > 12 else "")
            raise DataError(source, f"has no column matching '{pattern}' (available: {shown}).",
                            f"pass the right names with --{field.replace('_', '-')}-cols.", key=pattern)
        names += [h for h in hits if h not in names]
    return names


def _table_to_dataset(table: dict[str, np.ndarray], order: list[str], cols: Columns, source: str, *, task, name) -> Dataset:
    def stack(patterns, field):
        names = _expand(patterns, order, source, field)
        parts = [np.asarray(table[n]) for n in names]
        parts = [p[:, None] if p.ndim == 1 else p for p in parts]
        try:
            return np.concatenate(parts, axis=1), ",".join(names)
        except ValueError:
            raise DataError(source, f"columns {names} have different lengths.",
                            "store one row per step in each.", key=",".join(names)) from None

    def single(column, field, required):
        if column is None or column not in table:
            if required:
                raise DataError(source, f"has no '{column}' column.", f"pass the {field} column with --{field}-col.", key=str(column))
            return None
        return np.asarray(table[column])

    obs, obs_key = stack(cols.obs, "obs")
    act, act_key = stack(cols.act, "act")
    next_cols = cols.next_obs or (("next_observations",) if "next_observations" in table else None)
    next_obs, next_key = stack(next_cols, "next_obs") if next_cols else (None, "next_observations")
    rew = single(cols.rew, "rew", True)
    terminal = single(cols.terminal, "terminal", False)
    if terminal is None:
        terminal = np.zeros(obs.shape[0], bool)
    timeout = single(cols.timeout, "timeout", False)
    starts = None
    if cols.episode is not None:
        ids = single(cols.episode, "episode", True)
        if ids.shape[0] != obs.shape[0]:
            raise DataError(source, f"has {ids.shape[0]} rows but observations have {obs.shape[0]}.",
                            "store one row per step.", key=cols.episode)
        starts = episode_starts_from_ids(ids, source, cols.episode)
    return from_arrays(
        obs=obs, act=act, rew=rew, terminal=terminal, timeout=timeout, next_obs=next_obs, episode_starts=starts,
        name=name, source=source, task=task, metadata={"format": Path(source).suffix.lstrip(".")},
        keys={"obs": obs_key, "act": act_key, "rew": cols.rew, "terminal": str(cols.terminal), "timeout": str(cols.timeout),
              "next_obs": next_key},
    )


def load_npz(path: str | os.PathLike, columns: Columns | None = None, *, task=None, name: str | None = None) -> Dataset:
    """Read an ``.npz`` archive whose arrays are named by ``columns`` (D4RL key names by default)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(source, "no such file.", "check the path.")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            table = {k: archive[k] for k in archive.files}
    except ValueError as e:
        raise DataError(source, f"cannot be read as an NPZ archive of plain arrays ({str(e).splitlines()[0][:120]}).",
                        "save it with numpy.savez of numeric arrays (no object arrays).") from None
    except (OSError, EOFError, Exception) as e:  # zipfile.BadZipFile and truncated archives
        raise DataError(source, f"is not a readable NPZ archive ({type(e).__name__}); it may be truncated.",
                        "re-save it with numpy.savez.") from None
    if not table:
        raise DataError(source, "holds no arrays.", "save the dataset arrays with numpy.savez.")
    return _table_to_dataset(table, list(table), columns or Columns(), source, task=task, name=name or path.stem)


def load_csv(path: str | os.PathLike, columns: Columns, *, task=None, name: str | None = None, delimiter: str = ",") -> Dataset:
    """Read a CSV table with a header row; ``columns`` names the observation, action, reward, ... columns.

    Read with the standard library's ``csv`` reader (quoted values accepted) after encoding detection (a byte-order
    mark, else UTF-8, else latin-1 with a warning); an unnamed or repeated column name is refused.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(source, "no such file.", "check the path.")
    header, data = read_numeric_csv(path, delimiter=delimiter, unit="step", header_required=False)
    table = {name: data[:, j] for j, name in enumerate(header)}
    return _table_to_dataset(table, header, columns, source, task=task, name=name or path.stem)
