"""Opening HDF5 files with errors that say what is wrong with the file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

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


def node_at(f: h5py.File | h5py.Group, key: str, source: str):
    """``f[key]``; a dangling soft link or an external link whose file or target cannot be opened is a DataError
    naming the key and where the link points (h5py would raise a bare KeyError)."""
    try:
        return f[key]
    except (KeyError, OSError, ValueError) as e:
        try:
            link = f.get(key, getlink=True)
        except (KeyError, OSError, ValueError):
            link = None
        if isinstance(link, h5py.SoftLink):
            raise DataError(source, f"is a soft link to {link.path}, which does not exist in the file.",
                            "store the array itself under this key, or fix the link.", key=key) from None
        if isinstance(link, h5py.ExternalLink):
            raise DataError(source, f"is an external link to {link.path} in {link.filename}, which cannot be opened ({_short(e)}).",
                            "store the array in this file (h5py: f[key] = other[path][()]), or put the linked file in place.",
                            key=key) from None
        raise DataError(source, f"cannot be opened ({_short(e)}); the file may be corrupt.", "re-download or re-generate it.",
                        key=key) from None


def has_key(f: h5py.File | h5py.Group, key: str) -> bool:
    """Whether ``key`` names something in ``f``, a broken link included (so that reading it then says what is wrong)."""
    try:
        return key in f or f.get(key, getlink=True) is not None
    except (KeyError, OSError, ValueError):
        return False


def read_array(f: h5py.File, key: str, source: str):
    """Read dataset ``key`` fully; a missing key, a broken link or unreadable (truncated) data is a DataError."""
    if not has_key(f, key):
        raise DataError(source, "is missing.", f"a D4RL-layout file needs root datasets {', '.join(D4RL_REQUIRED)}.", key=key)
    node = node_at(f, key, source)
    if not isinstance(node, h5py.Dataset):
        raise DataError(source, "is a group, expected an array.", "store it as an HDF5 dataset.", key=key)
    try:
        return node[()]
    except (OSError, KeyError) as e:
        raise DataError(source, f"cannot be read ({_short(e)}); the file may be truncated.",
                        "re-download or re-generate it.", key=key) from None


def text_value(value, source: str, key: str) -> str:
    """A string attribute or scalar dataset as ``str``; bytes that are not UTF-8 are a DataError naming the key."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(source, f"holds bytes that are not UTF-8 text (0x{bytes(value)[e.start]:02x} at byte {e.start}).",
                            "store it as a UTF-8 string (h5py: f[key] = 'text'), or delete it.", key=key) from None
    return str(value)


D4RL_REQUIRED = ("observations", "actions", "rewards", "terminals")


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:160]
