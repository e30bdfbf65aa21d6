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
from ..errors import DataError
from ._hdf5 import open_hdf5, read_array
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
        timeouts = read_array(f, "timeouts", source) if "timeouts" in f else None
        next_obs = read_array(f, "next_observations", source) if "next_observations" in f else None
        next_valid = read_array(f, "infos/next_obs_valid", source) if "infos/next_obs_valid" in f else None
        starts = read_array(f, "metadata/episode_starts", source) if "metadata/episode_starts" in f else None
        metadata: dict = {"format": "d4rl"}
        for key in ("qpos", "qvel"):
            if f"infos/{key}" in f:
                metadata[key] = np.asarray(read_array(f, f"infos/{key}", source), np.float64)
        if "metadata" in f and isinstance(f["metadata"], h5py.Group):
            for key, node in f["metadata"].items():
                if isinstance(node, h5py.Dataset) and node.size < 64 and key != "episode_starts":
                    value = node[()]
                    metadata[f"metadata/{key}"] = value.decode() if isinstance(value, bytes) else np.asarray(value).tolist()
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


def write_d4rl(path: str | os.PathLike, dataset: Dataset, *, force: bool = False, compression: str | None = "gzip") -> Path:
    """Write ``dataset`` in the D4RL layout, atomically; refuses to overwrite unless ``force``.

    ``next_observations`` is always written (rows without a successor hold a copy of the observation
    and are recorded in ``infos/next_obs_valid``), together with ``timeouts``, ``infos/qpos``/``qvel``
    when the dataset carries them, and ``metadata/task``, ``metadata/name``, ``metadata/episode_starts``.
    """
    t = dataset.transitions
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
    return Path(path)
