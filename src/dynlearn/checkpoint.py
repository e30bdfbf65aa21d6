"""Atomic file writes and pickle-free checkpoints (config JSON + array leaves + library version).

Every file dynlearn writes goes through :func:`atomic_write`: the bytes land in a temporary file in
the same folder and are renamed over the target, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Any, Iterator

import equinox as eqx
import jax
import numpy as np

from .errors import DataError, NotDynlearnOutputError, OutputExistsError
from ._version import __version__

CHECKPOINT_FORMAT = 1


RUN_MARKER = ".dynlearn-run"
"""The file that marks a folder as a dynlearn run folder (written by :class:`dynlearn.results.RunFolder`): ``--force``
replaces such a folder, and no other without ``--force-replace-folder``."""
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")  # what _temp_file names
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_REPLACEABLE: set[str] = set()


@contextlib.contextmanager
def replacing(*paths: str | os.PathLike) -> Iterator[None]:
    """Within the block, ``force`` may replace these folders even though dynlearn did not write them (the CLI's
    ``--force-replace-folder PATH``: the user named the folder twice)."""
    added = {os.path.realpath(p) for p in paths} - _REPLACEABLE
    _REPLACEABLE.update(added)
    try:
        yield
    finally:
        _REPLACEABLE.difference_update(added)


def is_leftover(path: Path) -> bool:
    """Whether ``path`` is a lock file or a temporary file of dynlearn's (nothing a user would lose)."""
    return (path.name.startswith(".dynlearn.") and path.name.endswith(".lock")) or bool(_TEMP_NAME.match(path.name))


def is_dynlearn_output(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is something dynlearn wrote (or holds nothing but dynlearn's leftovers): a run folder (its
    :data:`RUN_MARKER`, or a ``results.json`` of dynlearn's schema from before the marker), or a saved model, agent or
    reward (``config.json`` with dynlearn's header)."""
    folder = Path(folder)
    entries = [p for p in folder.iterdir() if not is_leftover(p)]
    if not entries or (folder / RUN_MARKER).is_file():
        return True
    for name, test in (("config.json", lambda d: {"kind", "format", "dynlearn_version"} <= set(d)),
                       ("results.json", lambda d: str(d.get("schema", "")).startswith("dynlearn.results/"))):
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and test(data):
            return True
    return False


def check_replaceable(path: str | os.PathLike, *, folder: bool) -> None:
    """Refuse to let ``--force`` replace ``path`` unless it is an output of the same kind that dynlearn wrote.

    ``folder``: the output is a folder (a run folder, a saved model): an existing folder must be dynlearn's
    (:func:`is_dynlearn_output`) or named by :func:`replacing`; a file is never deleted. Else the output is a file:
    a folder is refused, and a ``.hdf5``/``.h5`` file must be an HDF5 file."""
    path = Path(path)
    if folder:
        if not path.is_dir():
            raise NotDynlearnOutputError(f"{path}: is a file, not a folder, and --force never deletes a file. Fix: choose "
                                         "another --out, or move the file away yourself.")
        if not is_dynlearn_output(path) and os.path.realpath(path) not in _REPLACEABLE:
            raise NotDynlearnOutputError(
                f"{path}: is a folder that dynlearn did not write (no {RUN_MARKER} or dynlearn config.json in it), and "
                f"--force replaces only dynlearn's own outputs. Fix: choose another --out, or add --force-replace-folder "
                f"{path} to delete it and everything in it.")
        return
    if path.is_dir():
        raise NotDynlearnOutputError(f"{path}: is a folder; this output is a file. Fix: name a file, e.g. "
                                     f"--out {path / 'data.hdf5'}, or choose another --out.")
    if path.suffix.lower() in (".hdf5", ".h5"):
        try:
            with open(path, "rb") as f:
                head = f.read(len(_HDF5_SIGNATURE))
        except OSError:
            head = b""
        if head != _HDF5_SIGNATURE:
            raise NotDynlearnOutputError(f"{path}: is not an HDF5 file, and --force replaces only a dataset file "
                                         "(never another file). Fix: choose another --out, or move the file away yourself.")


def check_writable(path: str | os.PathLike, *, force: bool, folder: bool = False) -> Path:
    """Refuse to overwrite ``path`` unless ``force`` (and then only an output of dynlearn's: :func:`check_replaceable`;
    ``folder``: the output is a folder); create its parent folder."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputExistsError(path)
        check_replaceable(path, folder=folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def clean_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files and unfinished ``atomic_dir`` folders (``*.new``) that a killed writer left in
    ``folder`` (recursively); call it only while holding the folder's lock. Returns what was deleted."""
    removed = []
    for root, dirs, files in os.walk(folder):
        for name in files:
            if _TEMP_NAME.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, name))
                removed.append(Path(root, name))
        for name in list(dirs):
            if name.endswith(".new") and name[:-4]:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                removed.append(Path(root, name))
                dirs.remove(name)
    return removed


_TEMP_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))


def _temp_file(path: Path) -> tuple[int, str]:
    """Create a fresh temporary file next to ``path``: ``(fd, name)``.

    Unlike :func:`tempfile.mkstemp` (always 0600) it is created with mode 0666 less the process umask, as a plain
    ``open`` would create ``path``: renamed over ``path``, it has the permissions the user expects (e.g. group-readable
    in a shared folder)."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name next to {path}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, force: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success rename it over ``path``, else delete it. The file gets the
    permissions a plain ``open`` would give it (0666 less the umask)."""
    path = check_writable(path, force=force)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Give a temporary path next to ``path`` for writers that need a file name (h5py); rename on success."""
    path = check_writable(path, force=force)
    fd, tmp = _temp_file(path)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def json_safe(x: Any) -> Any:
    """JSON-ready copy of ``x``: NaN/inf become None, NumPy arrays lists, NumPy scalars Python numbers, keys strings.

    Strict JSON has no NaN or Infinity; every JSON file and printout of dynlearn goes through this (``null`` instead)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def json_text(obj: Any, *, indent: int | None = 2) -> str:
    """``obj`` as strict JSON text (:func:`json_safe`: NaN and inf as ``null``, never bare ``NaN``)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False, default=_json_default)


def write_json(path: str | os.PathLike, obj: Any, *, force: bool = True) -> Path:
    """Write ``obj`` as indented strict JSON (:func:`json_text`), atomically."""
    with atomic_write(path, "w", force=force) as f:
        f.write(json_text(obj) + "\n")
    return Path(path)


def arrays_digest(tree: Any) -> str:
    """A hash of every array leaf of ``tree`` (e.g. a model's parameters), for checkpoint fingerprints."""
    digest = hashlib.sha256()
    for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array)):
        x = np.asarray(x)
        digest.update(f"{x.dtype}{x.shape}".encode())
        digest.update(x.tobytes())
    return digest.hexdigest()


def json_digest(*parts: Any) -> str:
    """A short hash of JSON-ready ``parts``: what a training checkpoint depends on (a checkpoint of other inputs is refused)."""
    return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode()).hexdigest()[:20]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class _HashingWriter:
    """A write-only file that hashes what passes through it (the leaves' sha256, computed while they are written)."""

    def __init__(self, f):
        self.f, self.sha = f, hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return self.f.write(data)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (read in chunks)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def save_module(folder: str | os.PathLike, module: eqx.Module, config: dict, *, kind: str, force: bool = True) -> Path:
    """Save ``module``'s array leaves and the ``config`` that rebuilds its structure.

    ``folder/config.json`` holds ``{"kind", "format", "dynlearn_version", "config", "leaves_sha256"}``;
    ``folder/leaves.eqx`` holds the leaves (``eqx.tree_serialise_leaves``), whose sha256 :func:`load_leaves`
    checks. No pickle.
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "leaves.eqx", "wb", force=force) as f:
        writer = _HashingWriter(f)
        eqx.tree_serialise_leaves(writer, module)
    header = {"kind": kind, "format": CHECKPOINT_FORMAT, "dynlearn_version": __version__, "config": config,
              "leaves_sha256": writer.sha.hexdigest()}
    write_json(folder / "config.json", header, force=force)
    return folder


def read_header(folder: str | os.PathLike, *, kind: str | None = None) -> dict:
    """Read and check a checkpoint's ``config.json``; returns the stored header."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise DataError(str(folder), "not a dynlearn checkpoint (no config.json).", "pass the folder that save() wrote.")
    try:
        header = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(str(cfg_path), f"invalid JSON ({e.msg} at line {e.lineno}).", "restore the file from the run folder.") from None
    if header.get("format") != CHECKPOINT_FORMAT:
        raise DataError(str(cfg_path), f"checkpoint format {header.get('format')!r} is not {CHECKPOINT_FORMAT}.",
                        "load it with the dynlearn version that wrote it.", key="format")
    if kind is not None and header.get("kind") != kind:
        raise DataError(str(cfg_path), f"holds a {header.get('kind')!r}, expected a {kind!r}.", "pass the matching checkpoint.", key="kind")
    return header


def check_same_minor_version(header: dict, source: str, what: str = "model") -> None:
    """Raise unless the checkpoint was written by this library's major.minor version (the compatibility promise)."""

    saved = header.get("dynlearn_version")
    if saved is None or str(saved).split(".")[:2] != __version__.split(".")[:2]:
        raise DataError(source, f"written by dynlearn {saved}, this is {__version__} ({what} checkpoints are "
                        "compatible within one major.minor version).", "load it with the dynlearn version that wrote it.",
                        key="dynlearn_version")


def load_leaves(folder: str | os.PathLike, like: eqx.Module) -> eqx.Module:
    """Fill the structure ``like`` with the leaves saved in ``folder``; shapes and dtypes must match, and the file's
    sha256 the one ``config.json`` records (folders saved before the hash was recorded are read unchecked)."""
    folder = Path(folder)
    path = folder / "leaves.eqx"
    try:
        expected = json.loads((folder / "config.json").read_text()).get("leaves_sha256")
    except (OSError, ValueError, AttributeError):
        expected = None
    try:
        if expected is not None and file_sha256(path) != expected:
            raise DataError(str(path), "is damaged: its content does not match the sha256 that config.json records (the "
                            "file was truncated or changed after it was saved).",
                            "restore the folder from a copy, or save (fit, train) it again.")
        return eqx.tree_deserialise_leaves(path, like)
    except FileNotFoundError:
        raise DataError(str(path), "missing.", "pass the folder that save() wrote.") from None
    except (RuntimeError, ValueError, EOFError, OSError, TypeError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(str(path), f"is unreadable or does not match the structure in config.json ({type(e).__name__}: "
                        f"{str(e)[:200]}).", "restore the folder from a copy, or save (fit, train) it again.") from None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh folder next to ``path``; on success it replaces ``path`` (the old one is kept until the swap is done).

    A crash leaves either the old folder at ``path`` or, between the two renames, at ``path.old``:
    :func:`latest_dir` finds it.
    """
    path = Path(path)
    new, old = path.with_name(path.name + ".new"), path.with_name(path.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    new.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def latest_dir(path: str | os.PathLike) -> Path | None:
    """The folder :func:`atomic_dir` last completed at ``path`` (or its ``.old`` twin after a crash), else None."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".old")):
        if candidate.is_dir():
            return candidate
    return None


def remove_dir(path: str | os.PathLike) -> None:
    """Delete what :func:`atomic_dir` wrote at ``path``, with its ``.old`` and ``.new`` twins (a spent training state)."""
    path = Path(path)
    for folder in (path, path.with_name(path.name + ".old"), path.with_name(path.name + ".new")):
        shutil.rmtree(folder, ignore_errors=True)
