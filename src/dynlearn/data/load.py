"""``load(path_or_id)``: one call for every supported source, picked by what the path is."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .d4rl import load_d4rl
from .dataset import Dataset
from .minari import find_minari, load_minari
from .tabular import Columns, load_csv, load_npz
from .task_lookup import task_by_id

_NAMED: dict[str, callable] = {}


def register_named(prefix_or_name: str, resolver) -> None:
    """Let a higher layer (the benchmark suite) resolve dataset names such as ``hopper-medium-v5``.

    ``resolver(name) -> Dataset | None``; consulted for names that are not existing paths.
    """
    _NAMED[prefix_or_name] = resolver


def load(path_or_id: str | os.PathLike, *, task=None, columns: Columns | None = None, name: str | None = None,
         delimiter: str | None = None) -> Dataset:
    """Load a dataset from a D4RL-layout ``.hdf5``, a Minari dataset (folder or id), an ``.npz`` or a ``.csv``.

    Args:
        path_or_id: a file, a Minari dataset folder, a Minari id under ``$MINARI_DATASETS_PATH``,
            or a named suite dataset (e.g. ``hopper-medium-v5``) once the suite is available.
        task: a task id or :class:`dynlearn.tasks.Task`; checks observation/action sizes.
        columns: column mapping for ``.npz``/``.csv`` (required for CSV).
        name: dataset name recorded in results (default: the file stem or Minari id).
        delimiter: ``.csv``/``.tsv`` column separator (default ``,`` for ``.csv``, tab for ``.tsv``).

    Raises:
        DataError: one line naming the file, the key and the fix.
    """
    if isinstance(task, str):
        task = task_by_id(task)
    path = Path(path_or_id)
    if path.is_dir() or (not path.exists() and find_minari(path_or_id) is not None):
        return load_minari(path_or_id, task=task)
    if path.exists():
        suffix = path.suffix.lower()
        if suffix in (".hdf5", ".h5", ".hdf"):
            return load_d4rl(path, task=task, name=name)
        if suffix == ".npz":
            return load_npz(path, columns, task=task, name=name)
        if suffix in (".csv", ".tsv"):
            if columns is None:
                raise DataError(str(path), "is a CSV, which needs a column mapping.",
                                "pass columns=Columns.parse(obs='obs_*', act='act_*', rew='reward', ...) or --obs-cols/--act-cols.")
            return load_csv(path, columns, task=task, name=name, delimiter=delimiter or ("\t" if suffix == ".tsv" else ","))
        raise DataError(str(path), f"has an unknown extension '{suffix}'.", "use .hdf5 (D4RL), .npz, .csv, or a Minari dataset folder.")
    for prefix, resolver in _NAMED.items():
        if str(path_or_id).startswith(prefix):
            dataset = resolver(str(path_or_id))
            if dataset is not None:
                return dataset
    raise DataError(str(path_or_id), "no such file, Minari dataset or named dataset.",
                    "check the path; Minari ids are looked up under $MINARI_DATASETS_PATH.")
