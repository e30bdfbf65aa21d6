"""Local Minari datasets (format 0.5): ``<root>/<dataset_id>/data/{main_data.hdf5, metadata.json}``.

``main_data.hdf5`` holds one group ``episode_{i}`` per episode with ``observations [T+1, obs]``
(the final observation included), ``actions [T, act]``, ``rewards [T]``, ``terminations [T]``,
``truncations [T]``. Step ``t`` therefore pairs ``observations[t]`` with ``observations[t+1]``:
every row has a valid successor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from ._hdf5 import has_key, node_at, open_hdf5
from .dataset import Dataset, from_arrays
from .task_lookup import known_task


def minari_root() -> Path:
    """Where Minari keeps local datasets: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``."""
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))


def find_minari(path_or_id: str | os.PathLike) -> Path | None:
    """The dataset folder (the one holding ``data/``) for a path or a Minari id, or None."""
    p = Path(path_or_id)
    for candidate in (p, p.parent if p.name == "data" else None, minari_root() / str(path_or_id)):
        if candidate is not None and (candidate / "data" / "main_data.hdf5").is_file():
            return candidate
    return None


def load_minari(path_or_id: str | os.PathLike, *, task=None) -> Dataset:
    """Read a Minari dataset from its folder or by id (under :func:`minari_root`)."""
    folder = find_minari(path_or_id)
    if folder is None:
        raise DataError(str(path_or_id), f"is neither a Minari dataset folder nor an id under {minari_root()}.",
                        "pass the folder holding data/main_data.hdf5, or set MINARI_DATASETS_PATH.")
    meta_path = folder / "data" / "metadata.json"
    metadata: dict = {"format": "minari"}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(str(meta_path), "is not UTF-8 text.", "restore metadata.json from the dataset.") from None
        except json.JSONDecodeError as e:
            raise DataError(str(meta_path), f"invalid JSON ({e.msg}).", "restore metadata.json from the dataset.") from None
        if not isinstance(meta, dict):
            raise DataError(str(meta_path), "is not a JSON object.", "restore metadata.json from the dataset.")
        metadata.update({k: meta[k] for k in ("dataset_id", "total_episodes", "total_steps", "ref_min_score", "ref_max_score")
                         if k in meta})
        env_id = _env_id(meta.get("env_spec"))
        if env_id:
            metadata["env_id"] = env_id
            if task is None:
                task = known_task(env_id)
    source = str(folder / "data" / "main_data.hdf5")
    parts = _read_episodes(source)
    lengths = np.array([len(p["rewards"]) for p in parts])
    if "total_steps" in metadata and int(metadata["total_steps"]) != int(lengths.sum()):
        raise DataError(str(meta_path), f"says total_steps={metadata['total_steps']} but the episodes hold {int(lengths.sum())} steps.",
                        "the dataset is incomplete: re-create or re-download it.", key="total_steps")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return from_arrays(
        obs=cat["obs"], act=cat["actions"], rew=cat["rewards"], terminal=cat["terminations"], timeout=cat["truncations"],
        next_obs=cat["next_obs"], episode_starts=starts, name=str(metadata.get("dataset_id", folder.name)), source=source,
        task=task, metadata=metadata,
        keys={"obs": "episode_*/observations", "act": "episode_*/actions", "rew": "episode_*/rewards",
              "terminal": "episode_*/terminations", "timeout": "episode_*/truncations", "next_obs": "episode_*/observations"},
    )


def _read_episodes(source: str) -> list[dict[str, np.ndarray]]:
    with open_hdf5(source) as f:
        names = sorted((k for k in f.keys() if k.startswith("episode_") and k[8:].isdigit()), key=lambda k: int(k[8:]))
        if not names:
            raise DataError(source, "holds no episode_* groups.", "pass a Minari dataset written by minari>=0.4.")
        parts = []
        for name in names:
            group = node_at(f, name, source)
            if not isinstance(group, h5py.Group):
                raise DataError(source, "is an array, expected an episode group.", "re-create the dataset with minari's DataCollector.",
                                key=name)
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                if not has_key(group, key):
                    raise DataError(source, "is missing.", "re-create the dataset with minari's DataCollector.", key=f"{name}/{key}")
                if isinstance(node_at(group, key, f"{source} [{name}]"), h5py.Group):
                    raise DataError(source, "is a dictionary space; dynlearn needs flat Box observations and actions.",
                                    "flatten the spaces (gymnasium.wrappers.FlattenObservation) when collecting.", key=f"{name}/{key}")
            try:
                obs = group["observations"][()]
                ep = {k: group[k][()] for k in ("actions", "rewards", "terminations", "truncations")}
            except OSError as e:
                raise DataError(source, f"cannot be read ({str(e).splitlines()[0][:120]}); the file may be truncated.",
                                "re-create or re-download it.", key=name) from None
            t = len(ep["rewards"])
            if obs.shape[0] != t + 1:
                raise DataError(source, f"has {obs.shape[0]} observations for {t} steps; Minari stores T+1.",
                                "re-create the dataset with minari's DataCollector.", key=f"{name}/observations")
            if obs.ndim == 1:
                obs = obs[:, None]
            parts.append({"obs": obs[:-1], "next_obs": obs[1:], **ep})
    return parts


def _env_id(env_spec) -> str | None:
    if isinstance(env_spec, str):
        try:
            env_spec = json.loads(env_spec)
        except json.JSONDecodeError:
            return None
    return env_spec.get("id") if isinstance(env_spec, dict) else None
