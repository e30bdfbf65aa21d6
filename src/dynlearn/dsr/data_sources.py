"""The data of a ``dsr fit`` / ``dsr eval`` run: a training and a test series from a file, a dataset of the GTF paper or a
simulated system, and a JSON record of where they came from.

DATA is a ``.npy`` / ``.npz`` / ``.csv`` file, ``gtf:NAME`` (the datasets of Hess et al., ICML 2023, arXiv 2306.04406:
``lorenz63``, ``ecg``, ``eeg``, with their own train/test split, used as published) or ``system:NAME`` (a system of
:mod:`dynlearn.data.systems` simulated: a noisy training series and a noise-free test series). File and system data are
z-scored with the training series' statistics unless told not to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..data._csv import parse_delimiter
from ..data.gtf import gtf_dataset
from ..data.systems import Lorenz63, make_system, simulate
from ..data.timeseries import load_timeseries
from ..errors import ConfigError, DataError
from .job_config import DSRFit


@dataclasses.dataclass(frozen=True)
class DSRData:
    """A training and a test series in the model's coordinates, and what is known about where they came from."""

    train: Any
    """:class:`dynlearn.data.timeseries.TimeSeries` the model is fitted on"""
    test: Any
    """:class:`dynlearn.data.timeseries.TimeSeries` the model is measured on"""
    task: str
    """name of the system or dataset (results.json ``task``)"""
    system: Any
    """the true :class:`dynlearn.data.systems.AbstractODESystem` when known (Lyapunov reference), else None"""
    stats: tuple[list[float], list[float]] | None
    """``(mean, std)`` of the training series applied to both (None: used as given)"""
    record: dict
    """JSON description (source, shapes, dt, noise, hashes)"""


def array_hash(values: np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of the float32 array bytes."""
    return hashlib.sha256(np.ascontiguousarray(values, np.float32).tobytes()).hexdigest()[:16]


def parse_source(data: str) -> tuple[str, str]:
    """``("gtf" | "system" | "file", name)`` of a DATA argument."""
    text = str(data).strip()
    if not text:
        raise ConfigError("dsr: DATA is empty. Fix: pass a .npy/.npz/.csv file, gtf:lorenz63 or system:lorenz63.")
    for prefix in ("gtf", "system"):
        if text.lower().startswith(prefix + ":"):
            name = text.split(":", 1)[1].strip().lower()
            if not name:
                raise ConfigError(f"dsr: DATA {text!r} names no {prefix}. Fix: e.g. {prefix}:lorenz63.")
            return prefix, name
    return "file", text


def _gtf_system(name: str):
    return Lorenz63() if name.replace("-", "") == "lorenz63" else None


def load_dsr_data(cfg: DSRFit) -> DSRData:
    """The training and test series that ``cfg.data`` names, standardised per ``cfg.standardize``."""
    kind, name = parse_source(cfg.data)
    system = None
    if kind == "gtf":
        if cfg.test is not None:
            raise ConfigError("dsr fit: --test is for a file DATA; gtf:NAME brings its own test split.")
        train, test = gtf_dataset(name, "train"), gtf_dataset(name, "test")
        if cfg.dt is not None and not math.isclose(cfg.dt, train.dt, rel_tol=1e-6):
            raise ConfigError(f"dsr fit: gtf:{name} is sampled every {train.dt:g}; --dt {cfg.dt} contradicts it. Fix: drop --dt.")
        task, system = name.replace("-", ""), _gtf_system(name)
        record = {"source": f"gtf:{name}", "paper": "Hess et al., ICML 2023, arXiv:2306.04406", "note": train.provenance.get("note")}
        stats = None
    elif kind == "system":
        if cfg.test is not None:
            raise ConfigError("dsr fit: --test is for a file DATA; a system's test series is simulated.")
        system = make_system(name)
        data_key = jax.random.key(cfg.data_seed)
        train_key, test_key = jax.random.split(data_key)
        train = simulate(system, cfg.length, cfg.dt, key=train_key, noise=cfg.noise)
        test = simulate(system, cfg.length if cfg.test_length is None else cfg.test_length, cfg.dt, key=test_key, noise=0.0)
        task = system.name
        record = {"source": f"system:{system.name}", "params": system.params(), "noise": cfg.noise, "data_seed": cfg.data_seed,
                  "transient_time": train.provenance.get("transient_time"), "test_noise": 0.0}
        stats = None
    else:
        delimiter = parse_delimiter(cfg.delimiter) or ","
        train = load_timeseries(name, dt=cfg.dt, delimiter=delimiter)
        if cfg.test is not None:
            test = load_timeseries(cfg.test, dt=train.dt if cfg.dt is None else cfg.dt, delimiter=delimiter)
            if test.dim != train.dim:
                raise DataError(cfg.test, f"has {test.dim} channels, the training series {train.dim}.",
                                "pass a test series of the same system.")
        else:
            train, test = train.split(cfg.train_fraction)
        task = Path(name).stem
        record = {"source": str(name), "test_source": cfg.test or f"last {1 - cfg.train_fraction:g} of each trajectory"}
        stats = None
    if kind != "gtf" and cfg.standardize:
        train, (mean, std) = train.standardize()
        test, _ = test.standardize((mean, std))
        stats = (np.asarray(mean, np.float64).tolist(), np.asarray(std, np.float64).tolist())
    record |= {"dt": train.dt, "time_unit": train.provenance.get("time_unit"), "train_shape": list(train.values.shape),
               "test_shape": list(test.values.shape), "train_hash": array_hash(train.values), "test_hash": array_hash(test.values),
               "standardized_with_train_stats": stats is not None}
    return DSRData(train=train, test=test, task=task, system=system, stats=stats, record=record)


def load_eval_data(data: str, run_record: dict, stats, *, length: int | None, dt: float | None, data_seed: int,
                   delimiter: str | None = None) -> DSRData:
    """New test data for :func:`run_eval`, in the coordinates of the run (its training statistics)."""
    kind, name = parse_source(data)
    run_dt = float(run_record["dt"])
    system = None
    if kind == "gtf":
        test = gtf_dataset(name, "test")
        task, system = name.replace("-", ""), _gtf_system(name)
        record = {"source": f"gtf:{name} (test split)"}
    elif kind == "system":
        system = make_system(name)
        test = simulate(system, int(run_record["test_shape"][1]) if length is None else length, run_dt if dt is None else dt,
                        key=jax.random.key(data_seed), noise=0.0)
        task = system.name
        record = {"source": f"system:{system.name}", "params": system.params(), "data_seed": data_seed, "test_noise": 0.0}
    else:
        test = load_timeseries(name, dt=dt, delimiter=parse_delimiter(delimiter) or ",")
        task = Path(name).stem
        record = {"source": str(name)}
    if not math.isclose(test.dt, run_dt, rel_tol=1e-4):
        raise DataError(str(data), f"is sampled every {test.dt:g}, the model was fitted at {run_dt:g} (a map of one sampling interval).",
                        "resample the data to the run's dt, or pass --dt if the file's is wrong.", key="dt")
    channels = int(run_record["test_shape"][-1])
    if test.dim != channels:
        raise DataError(str(data), f"has {test.dim} channels; the model observes {channels}.",
                        "evaluate on data of the system the model was fitted to.")
    if stats is not None:
        test, _ = test.standardize(tuple(np.asarray(s, np.float32) for s in stats))
    record |= {"dt": test.dt, "test_shape": list(test.values.shape), "test_hash": array_hash(test.values),
               "standardized_with_train_stats": stats is not None}
    return DSRData(train=None, test=test, task=task, system=system, stats=stats, record=record)

