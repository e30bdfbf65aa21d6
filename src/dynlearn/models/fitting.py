"""Supervised fitting of a :class:`ProbabilisticEnsemble`: holdout by episodes, bootstrap, early stopping, elites.

The procedure is OfflineRL-Kit's ``EnsembleDynamics.train`` (the MOPO/MOBILE model), compiled:

- **Holdout by whole episodes** (:meth:`Dataset.split`): at least ``holdout_episodes`` (10) episodes, more
  when episodes are short so the holdout holds about ``min(holdout_fraction * N, holdout_max_transitions)``
  rows. Where that would take more than ``holdout_fraction`` of the data (few, long episodes) or the data
  has too few episodes, it falls back to Kit's random ``min(20%, 1000)`` transitions (``FitReport.holdout_mode``).
  Kit always holds out random transitions; neighbouring steps of one episode are nearly equal, so that
  holdout measures interpolation, not generalisation. ``holdout="transitions"`` asks for Kit's rule (on our
  hopper-medium both rules stopped at epoch 18 and gave MOPO the same score: ``benchmarks/offline_mbrl.md``).
- **Rows without a successor** (``next_obs_valid == False``) are kept, but their ``next_obs - obs`` target is
  masked out of every loss and holdout error; their reward and terminal flag, which the data does hold, still
  train the reward output and the termination head (in a file without ``next_observations`` those are exactly
  the episode ends).
- **Bootstrap**: each member trains on its own resample (with replacement) of the training rows, drawn once
  and reshuffled every epoch, as Kit.
- **Epochs**: ``ceil(N / batch_size)`` Adam steps per epoch in one ``lax.scan`` (the last batch's missing rows
  are masked, as Kit's short last batch); all data on device; one host sync per epoch (the holdout MSE).
- **Early stopping**: after every epoch each member's holdout error is compared with its best: with
  ``select_by="mse"`` (Kit) the MSE in data units averaged over target dims, which the widest dims (velocities)
  dominate; with ``select_by="normalized"`` each dim's MSE divided by that target's variance on the training rows, so
  the position deltas and the reward count as much as the velocities. A relative improvement above
  ``min_improvement`` (1%) replaces that member's snapshot (``jnp.where`` on device). Training stops after
  ``patience`` (5) epochs in which no member improved, or at ``max_epochs``. With ``min_epochs`` (the
  edge-of-reach reference's rule) a plateau before that epoch lowers the learning rate once (x 0.3) and training
  goes on. Members end at their best snapshots; the shared log-variance bounds keep their final values (as Kit).
  Elites: the ``elites`` members with the lowest best holdout error.
- **Termination head** (when the config has one): binary cross-entropy on every row's terminal flag,
  trained jointly (same trunk, same steps), weighted by ``EnsembleConfig.termination_coef``.
- **Checkpoints** (``fit(..., checkpoint=DIR)``): the training state is written atomically every minute and when
  SIGTERM / Ctrl-C asks to stop (:mod:`dynlearn.interrupt`); the same call continues from it and ends with the
  uninterrupted fit's model. :func:`dynlearn.models.fitted` keeps one beside its cache entry, so a killed
  ``dynlearn train mopo DATA`` fits on from there when run again.

This module is the host loop (:func:`fit`); the config is in :mod:`.fit_config`, the holdout rule in :mod:`.holdout`, the
compiled epoch in :mod:`.fit_epoch` and the report in :mod:`.fit_report`; ``FitConfig``, ``FitReport``, ``split_holdout``,
``HOLDOUTS`` and ``SELECT_BY`` are importable from here too.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._types import Key
from ..checkpoint import arrays_digest
from ..data.dataset import Dataset
from ..data.normalize import Normalizer
from ..errors import ConfigError, DataError
from ..progress import ProgressLine
from ..training import Checkpoint, Schedule, WallClock, fingerprint, key_data, run
from .ensemble import EnsembleConfig, ProbabilisticEnsemble
from .fit_config import HOLDOUTS, SELECT_BY, FitConfig
from .fit_epoch import _adam, _arrays, _epoch, _holdout_mse, _rows, _target_variance
from .fit_report import FitReport
from .holdout import split_holdout, split_seed

__all__ = ["HOLDOUTS", "SELECT_BY", "FitConfig", "FitReport", "fit", "split_holdout"]


def fit(model_or_config: ProbabilisticEnsemble | EnsembleConfig, dataset: Dataset, *, key: Key,
        cfg: FitConfig = FitConfig(), task: Any | None = None, checkpoint: str | os.PathLike | None = None,
        checkpoint_every_s: float = 60.0, holdout_rows: np.ndarray | None = None,
        metrics: str | os.PathLike | None = None) -> tuple[ProbabilisticEnsemble, FitReport]:
    """Fit an ensemble to ``dataset``; returns the model (best snapshots, elites set) and a :class:`FitReport`.

    ``model_or_config``: an :class:`EnsembleConfig` builds a fresh model and fits its normalisers on the
    training split; a :class:`ProbabilisticEnsemble` is trained further from its parameters and keeps its
    normalisation statistics. ``task`` (a :class:`dynlearn.tasks.Task` or None) attaches the task's
    termination and reward functions to the returned model (see :meth:`ProbabilisticEnsemble.with_task`).
    ``checkpoint``: a folder for the training state, written every ``checkpoint_every_s`` seconds and on SIGTERM /
    Ctrl-C (then :class:`dynlearn.interrupt.Stopped` is raised); a call with the same inputs and folder continues from
    it (the epochs run by :func:`dynlearn.training.run`). The caller removes it when the fit is done. ``holdout_rows``:
    row indices of ``dataset`` to hold out instead of the configured split (to fit on the same rows as another library
    did). ``metrics``: a JSONL file that gets one row per epoch.
    """
    clock = WallClock()
    start = time.perf_counter()
    t = dataset.transitions
    init_key, _, boot_key, train_key = jax.random.split(key, 4)  # the second: split_seed
    if isinstance(model_or_config, EnsembleConfig):
        model = ProbabilisticEnsemble.init(model_or_config, t.obs_dim, t.act_dim, key=init_key)
        fresh = True
    elif isinstance(model_or_config, ProbabilisticEnsemble):
        model, fresh = model_or_config, False
        if (model.obs_dim, model.act_dim) != (t.obs_dim, t.act_dim):
            raise DataError(dataset.source, f"has obs/act dims {t.obs_dim}/{t.act_dim}, the model {model.obs_dim}/{model.act_dim}.",
                            "fit a model built for this data.")
    else:
        raise ConfigError(f"fit: expected an EnsembleConfig or a ProbabilisticEnsemble, got {type(model_or_config).__name__}.")
    ecfg = model.cfg

    seed = split_seed(key)
    train_t, hold_t, mode, hold_eps = split_holdout(dataset, cfg, seed=seed, holdout_rows=holdout_rows)
    tr, ho = _arrays(train_t), _arrays(hold_t)
    if not tr[2][:, 0].any():
        raise DataError(dataset.source, "no training row has a successor observation (next_obs_valid is False everywhere).",
                        "provide next_observations or episodes longer than one step.")

    if fresh:
        in_norm = Normalizer.fit(tr[0]) if ecfg.normalize_inputs else model.input_norm
        valid = tr[2][:, 0]
        if ecfg.normalize_targets:
            tgt = Normalizer.fit(tr[1][valid])
            tgt = Normalizer(tgt.mean.at[-1].set(float(tr[1][:, -1].mean())), tgt.std.at[-1].set(max(float(tr[1][:, -1].std()), 1e-6)))
        else:
            tgt = model.target_norm
        model = dataclasses.replace(model, input_norm=in_norm, target_norm=tgt)
    train, holdout = _rows(tr, model.input_norm, model.target_norm), _rows(ho, model.input_norm, model.target_norm)
    target_var = _target_variance(tr)
    dim_weight = jnp.asarray(1.0 / target_var if cfg.select_by == "normalized" else np.ones_like(target_var), jnp.float32)

    e, n = ecfg.members, len(train_t)
    boot = (jax.random.randint(boot_key, (e, n), 0, n, jnp.int32) if cfg.bootstrap
            else jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (e, n)))
    net = model.net
    state = (net, _adam(cfg.lr).init(net), net, jnp.full((e,), 1e10, jnp.float32))  # net, optimiser, best, best MSE
    steps_per_epoch = -(-n // cfg.batch_size)

    progress: dict[str, Any] = {"epoch": 0, "since": 0, "history": [], "epoch_s": [], "lr_lowered_at": None,
                                "stopped_early": False}
    store = None
    if checkpoint is not None:
        store = Checkpoint(checkpoint, _fingerprint(model_or_config, dataset, key, cfg, holdout_rows), owner="fit",
                           other="another fit (other data, config or key)")
        like = state
        loaded = store.load(lambda _: like)
        if loaded is not None:
            state, progress = loaded
    first_epoch = progress["epoch"]
    timing = {"last": time.perf_counter(), "first": None}  # end of the last epoch; of this call's first (compiling) one

    def epoch_block(state, progress):
        net, opt_state, best, best_mse = state
        lowered = progress["lr_lowered_at"] is not None
        net, opt_state, best, best_mse, mse, improved, info = _epoch(
            net, opt_state, best, best_mse, train, holdout, boot, model.target_norm,
            jax.random.fold_in(train_key, progress["epoch"]), dim_weight, cfg=ecfg,
            lr=cfg.lr * cfg.plateau_lr_factor if lowered else cfg.lr, batch_size=cfg.batch_size,
            min_improvement=cfg.min_improvement, chunk=cfg.holdout_chunk)
        mse_h, improved_h, best_h, info = jax.device_get((mse, improved, best_mse, info))  # the one host sync per epoch
        progress["epoch"] = epoch = progress["epoch"] + 1
        now = time.perf_counter()
        progress["epoch_s"].append(now - timing["last"])
        timing["last"] = now
        if timing["first"] is None:
            timing["first"] = now
        progress["history"].append([float(v) for v in mse_h])
        progress["since"] = since = 0 if improved_h.any() else progress["since"] + 1
        if since >= cfg.patience:
            if epoch >= cfg.min_epochs:
                progress["stopped_early"] = True
            elif progress["lr_lowered_at"] is None and cfg.plateau_lr_factor != 1.0:  # once, then train on to min_epochs
                progress["lr_lowered_at"], progress["since"] = epoch, 0
        row = {"epoch": epoch, "holdout/mse": float(mse_h.mean()),
               "holdout/elites_best": float(np.sort(best_h)[:ecfg.elites].mean()), "holdout/no_improvement": since,
               **{k: float(v) for k, v in info.items()}}
        return (net, opt_state, best, best_mse), row

    def describe(progress, row):
        return (f"epoch {row['epoch']}  holdout MSE {row['holdout/mse']:.4g} (elites' best {row['holdout/elites_best']:.4g})  "
                f"no improvement for {row['holdout/no_improvement']}")

    schedule = Schedule(block=steps_per_epoch, total=None if cfg.max_epochs is None else cfg.max_epochs * steps_per_epoch,
                        checkpoint_every_s=checkpoint_every_s, unit=steps_per_epoch)
    state, progress, _ = run(epoch_block, state, progress, schedule=schedule, clock=clock, checkpoint=store,
                             finished=lambda p: p["stopped_early"], describe=describe, metrics=metrics,
                             line=ProgressLine(cfg.progress, "fit ensemble", cfg.max_epochs))
    end = time.perf_counter()

    _, _, best, best_mse = state
    epoch = progress["epoch"]
    best_h = np.asarray(best_mse, np.float64)
    elites = tuple(int(i) for i in np.argsort(best_h, kind="stable")[:ecfg.elites])
    model = dataclasses.replace(model, net=best, elites=jnp.asarray(elites, jnp.int32))
    dim_mse = np.asarray(_holdout_mse(best, holdout, model.target_norm, cfg.holdout_chunk), np.float64)
    if task is not None:
        model = model.with_task(task)
    timed_steps = (epoch - first_epoch - 1) * steps_per_epoch  # this call's epochs after its first (compiling) one
    rate = (timed_steps / (end - timing["first"]) if timed_steps > 0
            else (epoch - first_epoch) * steps_per_epoch / max(end - start, 1e-9))
    report = FitReport(epochs=epoch, stopped_early=progress["stopped_early"], holdout_mse=tuple(float(v) for v in best_h),
                       elites=elites, train_size=n, holdout_size=len(hold_t), holdout_mode=mode, holdout_episodes=hold_eps,
                       holdout_seed=seed, rows_without_successor=int((~np.asarray(dataset.transitions.next_obs_valid, bool)).sum()),
                       steps=epoch * steps_per_epoch, wall_s=clock.total(), steps_per_s=rate,
                       history=tuple(tuple(h) for h in progress["history"]), epoch_s=tuple(progress["epoch_s"]),
                       steps_per_epoch=steps_per_epoch, lr_lowered_at=progress["lr_lowered_at"],
                       select_by=cfg.select_by, holdout_dim_mse=tuple(tuple(float(v) for v in m) for m in dim_mse),
                       target_var=tuple(float(v) for v in target_var))
    return model, report


def _fingerprint(model_or_config, dataset: Dataset, key: Key, cfg: FitConfig, holdout_rows=None) -> str:
    """What a fit's state depends on: a checkpoint of another fit is refused."""
    # a model trained further: its parameters
    what = model_or_config.to_dict() if isinstance(model_or_config, EnsembleConfig) else arrays_digest(model_or_config)
    parts = [what, cfg.identity(), dataset.content_hash(), key_data(key)]
    if holdout_rows is not None:
        parts.append(np.unique(np.asarray(holdout_rows)).tolist())
    return fingerprint(*parts)
