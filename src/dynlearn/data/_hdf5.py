"""Opening HDF5 files with errors that say what is wrong with the file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from ..errors import DataError


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open ``path`` read-only; a missing, non-HDF5 or truncated file is a one-line DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "no such file.", "check the path.")
    if path.is_dir():
        raise DataError(str(path), "is a folder, not an HDF5 file.", "pass the .hdf5 file, or a Minari dataset folder.")
    if not h5py.is_hdf5(path):
        raise DataError(str(path), "is not an HDF5 file (no HDF5 signature).",
                        "pass a D4RL/Minari .hdf5 file, or an .npz/.csv with column options.")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(str(path), f"cannot be read as HDF5 ({_short(e)}); the file may be truncated or corrupt.",
                        "re-download or re-generate it.") from None


def read_array(f: h5py.File, key: str, source: str):
    """Read dataset ``key`` fully; a missing key or unreadable (truncated) data is a DataError."""
    if key not in f:
        raise DataError(source, "is missing.", f"a D4RL-layout file needs root datasets {', '.join(D4RL_REQUIRED)}.", key=key)
    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise DataError(source, "is a group, expected an array.", "store it as an HDF5 dataset.", key=key)
    try:
        return node[()]
    except (OSError, KeyError) as e:
        raise DataError(source, f"cannot be read ({_short(e)}); the file may be truncated.",
                        "re-download or re-generate it.", key=key) from None


D4RL_REQUIRED = ("observations", "actions", "rewards", "terminals")


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:160]
