"""Fitted models cached by what determines them: the dataset's content, the model and fit configs, the seed.

Offline model-based methods fit one dynamics model per dataset and reuse it across methods and seeds (as
MOPO/MOBILE/RAVL papers and OfflineRL-Kit do). :func:`fitted` returns the cached model when one exists for the
same ``(dataset content hash, EnsembleConfig, FitConfig minus display options, seed, task, library
major.minor)`` and fits and stores it otherwise.

>>> model, report = dl.models.fitted(dataset, EnsembleConfig(), FitConfig(), seed=0, task=task)

The cache lives in ``$DYNLEARN_CACHE_DIR/models`` (default ``~/.cache/dynlearn/models``); each entry is a model
folder (:func:`dynlearn.models.save`) with ``fit_report.json``, ``key.json`` and ``manifest.json`` (the sha256 of
each file, checked before use: a damaged entry is fitted again) beside it, written atomically and by one process
at a time (``<entry>.lock``), so a killed fit leaves no entry; the fit's own checkpoint (``<entry>.fitting``,
:func:`dynlearn.models.fit`) lets the next call continue it instead of starting over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import jax

from .. import locking
from ..checkpoint import atomic_dir, file_sha256, latest_dir, remove_dir, write_json
from ..data.dataset import Dataset
from ..errors import ConfigError, DataError, warn
from .ensemble import EnsembleConfig, ProbabilisticEnsemble
from .fit_config import FitConfig
from .fit_report import FitReport
from .fitting import fit
from .io import load, save
from .._version import __version__


def cache_root() -> Path:
    """``$DYNLEARN_CACHE_DIR/models`` or ``~/.cache/dynlearn/models``."""
    base = os.environ.get("DYNLEARN_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "dynlearn") / "models"


def cache_key(dataset: Dataset, model_cfg: EnsembleConfig, fit_cfg: FitConfig, *, seed: int, task: Any | None) -> dict:
    """Everything the fitted model depends on, as JSON-ready values."""

    return {"dataset": dataset.content_hash(), "model": model_cfg.to_dict(), "fit": fit_cfg.identity(), "seed": int(seed),
            "task": None if task is None else task.id, "dynlearn": ".".join(__version__.split(".")[:2])}


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cache_entry(dataset: Dataset, model_cfg: EnsembleConfig = EnsembleConfig(), fit_cfg: FitConfig = FitConfig(), *,
                seed: int = 0, task: Any | None = None, root: str | os.PathLike | None = None) -> Path:
    """The folder :func:`fitted` keeps this model in (it exists once the model has been fitted)."""
    return _entry(cache_key(dataset, model_cfg, fit_cfg, seed=seed, task=task), root)


def _entry(key: dict, root: str | os.PathLike | None) -> Path:
    return (Path(root) if root is not None else cache_root()) / _digest(key)


MANIFEST = "manifest.json"
"""Each entry's list of its files with their sha256, checked before the entry is used."""


def _check_entry(saved: Path, key: dict) -> None:
    """Raise (any exception) unless the entry ``saved`` is complete and intact: every file of its manifest there with
    the recorded sha256 (entries written before the manifest existed: the files that matter readable), and its key
    this one."""
    manifest = json.loads((saved / MANIFEST).read_text()) if (saved / MANIFEST).is_file() else None
    if manifest is not None:
        for name, digest in manifest["files"].items():
            if file_sha256(saved / name) != digest:
                raise DataError(str(saved / name), "content does not match the sha256 in manifest.json.")
    if json.loads((saved / "key.json").read_text()) != json.loads(json.dumps(key)):
        raise DataError(str(saved / "key.json"), "is the key of another model.")


def _read_entry(entry: Path, key: dict, task: Any | None, log: Callable[[str], None] | None, *, quiet: bool = False
                ) -> tuple[ProbabilisticEnsemble, FitReport] | str | None:
    """The cached model and report, None when there is none, or ``"damaged"`` (after a one-line warning) when the entry
    is truncated, changed or unreadable: it is then fitted again, never used."""
    saved = latest_dir(entry)
    if saved is None or not (saved / "fit_report.json").is_file():
        return None
    try:
        _check_entry(saved, key)
        report = FitReport.from_dict(json.loads((saved / "fit_report.json").read_text()))
        model = load(saved / "model", task=task)
    except ConfigError:
        raise  # the caller's task does not fit the model: their mistake, not damage
    except Exception as e:  # noqa: BLE001  (whatever is wrong with it, a cache entry is only a copy: fit it again)
        if not quiet:
            why = str(e).split(" Fix:")[0][:300]  # (its own fix is this: fitting it again)
            warn(f"the cached dynamics model {saved} is damaged ({type(e).__name__}: {why}); fitting it again.")
        return "damaged"
    if log:
        log(f"dynamics model: cached ({saved})")
    return model, report


def fitted(dataset: Dataset, model_cfg: EnsembleConfig = EnsembleConfig(), fit_cfg: FitConfig = FitConfig(), *, seed: int = 0,
           task: Any | None = None, root: str | os.PathLike | None = None,
           log: Callable[[str], None] | None = None) -> tuple[ProbabilisticEnsemble, FitReport]:
    """The model :func:`dynlearn.models.fit` gives for these inputs, from the cache or fitted now (and cached).

    One process fits an entry at a time (a lock beside it): another that needs the same model waits for it, then reads
    the entry. An entry whose files do not match their recorded sha256 (or cannot be read) is fitted again, with a
    warning."""
    key = cache_key(dataset, model_cfg, fit_cfg, seed=seed, task=task)
    entry = _entry(key, root)
    cached = _read_entry(entry, key, task, log)
    if isinstance(cached, tuple):
        return cached
    entry.parent.mkdir(parents=True, exist_ok=True)
    with locking.hold(entry.with_name(entry.name + ".lock"), f"the model cache entry {entry}", wait=True,
                      on_wait=lambda line: (log or warn)(f"dynamics model: {line}")):
        cached = _read_entry(entry, key, task, log, quiet=True)  # another process may have fitted it while we waited
        if isinstance(cached, tuple):
            return cached
        remove_dir(entry)  # a damaged entry (or nothing)
        partial = entry.with_name(entry.name + ".fitting")  # the fit's checkpoint: a killed fit goes on from it next time
        if log:
            resumed = " (continuing a stopped fit)" if latest_dir(partial) is not None else ""
            log(f"dynamics model: fitting on {len(dataset):,} transitions{resumed} (cached afterwards in {entry})")
        model, report = fit(model_cfg, dataset, key=jax.random.key(seed), cfg=fit_cfg, task=task, checkpoint=partial)
        with atomic_dir(entry) as new:
            save(new / "model", model)
            write_json(new / "fit_report.json", dataclasses.asdict(report))
            write_json(new / "key.json", key)
            files = ["model/config.json", "model/leaves.eqx", "fit_report.json", "key.json"]
            write_json(new / MANIFEST, {"files": {name: file_sha256(new / name) for name in files}})
        remove_dir(partial)
    return model, report
