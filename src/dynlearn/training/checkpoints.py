"""A training state on disk: one folder, replaced atomically, tagged with what it depends on.

``folder/state.eqx`` holds the state's array leaves (``eqx.tree_serialise_leaves``: no pickle) and
``folder/progress.json`` the host side: ``format``, ``fingerprint``, the loop's counters (``step``, ``wall_s``,
``train_s``) and whatever the trainer keeps between blocks (histories, evaluations, early-stopping counters). The folder
is written with :func:`dynlearn.checkpoint.atomic_dir`, so a kill at any moment leaves the previous checkpoint or the
new one, never a mix.

The **fingerprint** is a digest of every input the training depends on (data, configuration, key, initial model):
loading a checkpoint with another fingerprint is refused with a message that says which training wrote it, so a
folder is never silently continued by a different run. Only :mod:`dynlearn.training` writes these folders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import equinox as eqx
import jax
import numpy as np

from ..checkpoint import atomic_dir, json_digest, latest_dir, remove_dir, write_json
from ..errors import ConfigError, DataError

FORMAT = 1
"""Version of the checkpoint layout (folders of another format are refused, not misread)."""


def fingerprint(*parts: Any) -> str:
    """A digest of JSON-ready ``parts`` (configs as dicts, content hashes, :func:`key_data` of keys)."""
    return json_digest(*parts)


def key_data(key) -> list:
    """A JAX key as JSON-ready numbers, for :func:`fingerprint`."""
    return np.asarray(jax.random.key_data(key)).tolist()


class Checkpoint:
    """The training state of one run in ``folder``.

    ``owner`` names the trainer in messages (``"fit"``); ``other`` says what a refused checkpoint belongs to (``"another
    fit (other data, config or key)"``). ``where`` is the folder a :class:`dynlearn.interrupt.Stopped` names (default
    ``folder``).
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: str, *, owner: str = "training",
                 other: str = "another run (other data, configuration or key)", where: str | os.PathLike | None = None):
        self.folder, self.fingerprint, self.owner, self.other = Path(folder), fingerprint, owner, other
        self.where = Path(where) if where is not None else self.folder

    def saved(self) -> Path | None:
        """The folder holding the last complete checkpoint, or None when there is none."""
        found = latest_dir(self.folder)
        return found if found is not None and (found / "progress.json").is_file() else None

    def read_progress(self) -> dict | None:
        """The saved progress (checked: format and fingerprint), without loading the arrays; None without a checkpoint."""
        found = self.saved()
        return None if found is None else self._progress(found)

    def _progress(self, found: Path) -> dict:
        try:
            progress = json.loads((found / "progress.json").read_text())
        except json.JSONDecodeError as e:
            raise DataError(str(found / "progress.json"), f"invalid JSON ({e.msg}).",
                            "delete the checkpoint folder to start the training over.") from None
        if progress.get("format") != FORMAT or progress.get("fingerprint") != self.fingerprint:
            raise ConfigError(f"{self.owner}: the checkpoint in {self.folder} belongs to {self.other}, not to this training. "
                              "Fix: delete it, or continue with the inputs that wrote it.")
        return {k: v for k, v in progress.items() if k not in ("format", "fingerprint")}

    def load(self, like: Callable[[dict], Any]) -> tuple[Any, dict] | None:
        """``(state, progress)`` from the last checkpoint, or None when there is none.

        ``like(progress)`` builds a state of the saved structure (its arrays are replaced by the saved ones): a function
        of the progress, because some states grow (a list of snapshots, the losses so far)."""
        found = self.saved()
        if found is None:
            return None
        progress = self._progress(found)
        path = found / "state.eqx"
        try:
            state = eqx.tree_deserialise_leaves(path, like(progress))
        except (OSError, RuntimeError, ValueError) as e:
            raise DataError(str(path), f"does not match this training's state ({e}).",
                            "delete the checkpoint folder to start the training over.") from None
        return state, progress

    def save(self, state: Any, progress: dict) -> None:
        """Write ``state``'s arrays and ``progress`` (JSON-ready) as the new checkpoint, atomically."""
        with atomic_dir(self.folder) as new:
            eqx.tree_serialise_leaves(new / "state.eqx", state)
            write_json(new / "progress.json", {"format": FORMAT, "fingerprint": self.fingerprint, **progress})

    def remove(self) -> None:
        """Delete the checkpoint (a finished training's spent state)."""
        remove_dir(self.folder)
