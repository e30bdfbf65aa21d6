"""The D4RL HDF5 layout: reading it without pairing ``obs[i+1]`` across episode ends, and writing it.

Root datasets: ``observations [N, obs]``, ``actions [N, act]``, ``rewards [N]`` (``[N, 1]`` is squeezed),
``terminals [N]``, ``timeouts [N]`` (missing in some old files: then all False), optional
``next_observations [N, obs]``, ``infos/qpos``, ``infos/qvel`` (simulator state at ``observations``),
``metadata/*``. Episodes are contiguous and end at ``terminals | timeouts``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..checkpoint import atomic_path
from ..errors import DataError, DynlearnError, OutputExistsError
from ._hdf5 import _short, has_key, node_at, open_hdf5, read_array, text_value
from .dataset import Dataset, from_arrays
from .task_lookup import known_task


def load_d4rl(path: str | os.PathLike, *, task=None, name: str | None = None) -> Dataset:
    """Read a D4RL-layout HDF5 file.

    When ``next_observations`` is absent, successors are derived inside episodes only: the last
    step of every episode is kept (its reward and terminal flag matter) with ``next_obs_valid=False``.
    ``infos/qpos`` and ``infos/qvel``, when present, land in ``metadata["qpos"]``/``["qvel"]``.
    """
    path = Path(path)
    source = str(path)
    with open_hdf5(path) as f:
        arrays = {key: read_array(f, key, source) for key in ("observations", "actions", "rewards", "terminals")}
        def optional(key):
            return read_array(f, key, source) if has_key(f, key) else None

        timeouts, next_obs = optional("timeouts"), optional("next_observations")
        next_valid, starts = optional("infos/next_obs_valid"), optional("metadata/episode_starts")
        metadata: dict = {"format": "d4rl"}
        for key in ("qpos", "qvel"):
            if has_key(f, f"infos/{key}"):
                metadata[key] = np.asarray(read_array(f, f"infos/{key}", source), np.float64)
        group = node_at(f, "metadata", source) if has_key(f, "metadata") else None
        if isinstance(group, h5py.Group):
            for key in group.keys():
                node = node_at(group, key, source)
                if isinstance(node, h5py.Dataset) and node.size < 64 and key != "episode_starts":
                    value = read_array(f, f"metadata/{key}", source)
                    text = isinstance(value, (bytes, np.bytes_)) or (isinstance(value, np.ndarray) and value.dtype.kind in "SO"
                                                                       and value.shape == ())
                    metadata[f"metadata/{key}"] = text_value(value, source, f"metadata/{key}") if text else np.asarray(value).tolist()
    task_id = metadata.get("metadata/task")
    if task is None and isinstance(task_id, str):
        task = known_task(task_id)
    dataset = from_arrays(
        obs=arrays["observations"], act=arrays["actions"], rew=arrays["rewards"], terminal=arrays["terminals"],
        timeout=timeouts, next_obs=next_obs, next_obs_valid=next_valid, episode_starts=starts, name=name or path.stem, source=source,
        task=task, metadata=metadata,
    )
    for key in ("qpos", "qvel"):
        if key in metadata and metadata[key].shape[0] != len(dataset):
            raise DataError(source, f"has {metadata[key].shape[0]} rows but observations have {len(dataset)}.",
                            "store one simulator state per step, or drop infos/.", key=f"infos/{key}")
    return dataset


HDF5_SUFFIXES = (".hdf5", ".h5", ".hdf")


def check_output_file(path: str | os.PathLike, *, force: bool, flag: str = "--out", suffix: bool = True) -> Path:
    """Check, before any work, that a dataset can be written to ``path``: a file path ending in .hdf5 whose folder exists
    or can be made in a writable folder, and that is not an existing file unless ``force`` (never a folder, ``force`` or not).
    ``suffix``: also require an HDF5 extension (what :func:`dynlearn.data.load` reads back as D4RL).
    Creates nothing. Raises :class:`DataError` / :class:`OutputExistsError` naming ``path`` and ``flag``."""
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise DataError(source, f"is a folder; {flag} names the .hdf5 file to write (--force replaces a file, never a folder).",
                        f"pass a file path, e.g. {flag} {path / 'dataset.hdf5'}.")
    if suffix and path.suffix.lower() not in HDF5_SUFFIXES:
        raise DataError(source, "does not end in .hdf5: the dataset is written in the D4RL HDF5 layout, and dynlearn picks a "
                        "file's reader by its extension.", f"pass {flag} {path.with_suffix('.hdf5')}.")
    if path.exists() and not force:
        raise OutputExistsError(path)
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p == Path(p.anchor) or str(p) == ".")
    if not existing.is_dir():
        raise DataError(source, f"cannot be written: {existing} is a file, not a folder.", f"pass {flag} a path in a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(source, f"cannot be written: no write permission in {existing}.",
                        f"pass {flag} a path in a folder you can write to.")
    return path


def write_d4rl(path: str | os.PathLike, dataset: Dataset, *, force: bool = False, compression: str | None = "gzip") -> Path:
    """Write ``dataset`` in the D4RL layout, atomically; refuses to overwrite unless ``force``.

    ``next_observations`` is always written (rows without a successor hold a copy of the observation
    and are recorded in ``infos/next_obs_valid``), together with ``timeouts``, ``infos/qpos``/``qvel``
    when the dataset carries them, and ``metadata/task``, ``metadata/name``, ``metadata/episode_starts``.
    """
    t = dataset.transitions
    check_output_file(path, force=force, flag="path", suffix=False)
    try:
        with atomic_path(path, force=force) as tmp:
            with h5py.File(tmp, "w") as f:
                kw = {"compression": compression} if compression else {}
                f.create_dataset("observations", data=np.asarray(t.obs, np.float32), **kw)
                f.create_dataset("actions", data=np.asarray(t.act, np.float32), **kw)
                f.create_dataset("rewards", data=np.asarray(t.rew, np.float32), **kw)
                f.create_dataset("next_observations", data=np.asarray(t.next_obs, np.float32), **kw)
                f.create_dataset("terminals", data=np.asarray(t.terminal, bool))
                f.create_dataset("timeouts", data=np.asarray(t.timeout, bool))
                f.create_dataset("infos/next_obs_valid", data=np.asarray(t.next_obs_valid, bool))
                for key in ("qpos", "qvel"):
                    if key in dataset.metadata:
                        f.create_dataset(f"infos/{key}", data=np.asarray(dataset.metadata[key], np.float64), **kw)
                f.create_dataset("metadata/episode_starts", data=dataset.episode_starts.astype(np.int64))
                f["metadata/name"] = dataset.name
                if dataset.task:
                    f["metadata/task"] = dataset.task
    except DynlearnError:
        raise
    except OSError as e:  # a folder that cannot be made, a full disk, a read-only file system
        raise DataError(str(path), f"cannot be written ({e.strerror or _short(e)}).", "pass a path in a folder you can write to, "
                        "with free space.") from None
    return Path(path)
