"""Fitted models cached by what determines them: the dataset's content, the model and fit configs, the seed.

Offline model-based methods fit one dynamics model per dataset and reuse it across methods and seeds (as
MOPO/MOBILE/RAVL papers and OfflineRL-Kit do). :func:`fitted` returns the cached model when one exists for the
same ``(dataset content hash, EnsembleConfig, FitConfig minus display options, seed, task, library
major.minor)`` and fits and stores it otherwise.

>>> model, report = dl.models.fitted(dataset, EnsembleConfig(), FitConfig(), seed=0, task=task)

The cache lives in ``$DYNLEARN_CACHE_DIR/models`` (default ``~/.cache/dynlearn/models``); each entry is a model
folder (:func:`dynlearn.models.save`) with ``fit_report.json`` and ``key.json`` beside it, written atomically,
so a killed fit leaves no entry; the fit's own checkpoint (``<entry>.fitting``, :func:`dynlearn.models.fit`) lets
the next call continue it instead of starting over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import jax

from ..checkpoint import atomic_dir, latest_dir, remove_dir, write_json
from ..data.dataset import Dataset
from .ensemble import EnsembleConfig, ProbabilisticEnsemble
from .fitting import FitConfig, FitReport, fit
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


def fitted(dataset: Dataset, model_cfg: EnsembleConfig = EnsembleConfig(), fit_cfg: FitConfig = FitConfig(), *, seed: int = 0,
           task: Any | None = None, root: str | os.PathLike | None = None,
           log: Callable[[str], None] | None = None) -> tuple[ProbabilisticEnsemble, FitReport]:
    """The model :func:`dynlearn.models.fit` gives for these inputs, from the cache or fitted now (and cached)."""
    key = cache_key(dataset, model_cfg, fit_cfg, seed=seed, task=task)
    entry = _entry(key, root)
    saved = latest_dir(entry)
    if saved is not None and (saved / "fit_report.json").is_file():
        if log:
            log(f"dynamics model: cached ({saved})")
        report = FitReport.from_dict(json.loads((saved / "fit_report.json").read_text()))
        return load(saved / "model", task=task), report
    partial = entry.with_name(entry.name + ".fitting")  # the fit's checkpoint: a killed fit goes on from it next time
    if log:
        resumed = " (continuing a stopped fit)" if latest_dir(partial) is not None else ""
        log(f"dynamics model: fitting on {len(dataset):,} transitions{resumed} (cached afterwards in {entry})")
    model, report = fit(model_cfg, dataset, key=jax.random.key(seed), cfg=fit_cfg, task=task, checkpoint=partial)
    with atomic_dir(entry) as new:
        save(new / "model", model)
        write_json(new / "fit_report.json", dataclasses.asdict(report))
        write_json(new / "key.json", key)
    remove_dir(partial)
    return model, report
