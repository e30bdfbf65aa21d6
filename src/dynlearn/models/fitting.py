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
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._types import Array, Float, Key
from ..agents.base import apply_optimizer
from ..checkpoint import arrays_digest
from ..data.dataset import Dataset
from ..data.normalize import Normalizer
from ..data.transitions import Transitions
from ..progress import ProgressLine
from ..training import Checkpoint, Schedule, WallClock, fingerprint, key_data, run
from ..errors import ConfigError, DataError
from ..metrics import model_error
from .ensemble import EnsembleConfig, EnsembleMLP, ProbabilisticEnsemble


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How :func:`fit` trains; defaults are OfflineRL-Kit's dynamics training."""

    lr: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 256
    """Rows per member per gradient step."""
    bootstrap: bool = True
    """Each member trains on its own bootstrap resample of the training rows (else all members see all rows)."""
    holdout: str = "episodes"
    """What is held out for early stopping and elite selection: ``episodes`` (whole episodes, falling back to random
    transitions where that is impossible) or ``transitions`` (random rows, OfflineRL-Kit's rule, for comparisons with
    models fitted as the published methods fit theirs)."""
    holdout_episodes: int = 10
    """Fewest whole episodes held out for early stopping and elite selection."""
    holdout_fraction: float = 0.2
    """Largest share of the rows the holdout may take; above it, random transitions are held out instead."""
    holdout_max_transitions: int = 1000
    """Target holdout size in rows (more episodes are held out when 10 are shorter); cap of the transition fallback."""
    max_epochs: int | None = None
    """Stop after this many epochs even if the holdout error still improves (None: only early stopping)."""
    patience: int = 5
    """Stop after this many epochs without any member improving by more than min_improvement."""
    min_improvement: float = 0.01
    """Relative holdout-MSE improvement that counts (and replaces a member's best snapshot)."""
    min_epochs: int = 0
    """Early stopping may not end training before this many epochs (0: Kit's rule). A plateau before then lowers the
    learning rate once by ``plateau_lr_factor`` and training goes on; members still end at their best snapshots. The
    edge-of-reach (RAVL) reference fits with 350 and 0.3, as "some models terminate early"."""
    plateau_lr_factor: float = 0.3
    """Learning-rate factor at the first plateau before ``min_epochs`` (used only with ``min_epochs`` > 0)."""
    select_by: str = "mse"
    """The holdout error that early stopping, best snapshots and elites compare: ``mse`` (mean over target dims of the
    squared error in data units, OfflineRL-Kit's rule: the dims with the largest spread, velocities, decide) or
    ``normalized`` (each dim's squared error divided by the variance of that target on the training rows, then
    averaged: every dim, positions and reward included, counts alike)."""
    holdout_chunk: int = 4096
    """Holdout rows evaluated per chunk (bounds memory on large holdouts)."""
    progress: bool = True
    """Show a rich progress line (epoch, holdout MSE); False for quiet runs and tests."""

    def __post_init__(self):
        if self.lr <= 0 or self.batch_size < 1 or self.patience < 1 or self.holdout_chunk < 1:
            raise ConfigError(f"FitConfig: lr {self.lr}, batch_size {self.batch_size}, patience {self.patience} and "
                              f"holdout_chunk {self.holdout_chunk} must be positive.")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(f"FitConfig.max_epochs must be None or >= 1, got {self.max_epochs}.")
        if self.min_epochs < 0 or not 0.0 < self.plateau_lr_factor <= 1.0:
            raise ConfigError(f"FitConfig: min_epochs {self.min_epochs} must be >= 0 and plateau_lr_factor "
                              f"{self.plateau_lr_factor} in (0, 1].")
        if self.max_epochs is not None and self.min_epochs > self.max_epochs:
            raise ConfigError(f"FitConfig: min_epochs {self.min_epochs} is above max_epochs {self.max_epochs}, which would end "
                              "the fit first. Fix: raise max_epochs to at least min_epochs, or pass max_epochs=None (no cap).")
        if self.select_by not in SELECT_BY:
            raise ConfigError(f"FitConfig.select_by must be one of {', '.join(SELECT_BY)}, got {self.select_by!r}.")
        if self.holdout not in HOLDOUTS:
            raise ConfigError(f"FitConfig.holdout must be one of {', '.join(HOLDOUTS)}, got {self.holdout!r}.")
        if not 0.0 < self.holdout_fraction < 1.0 or self.holdout_episodes < 1 or self.holdout_max_transitions < 1:
            raise ConfigError(f"FitConfig: holdout_fraction {self.holdout_fraction} must be in (0, 1), holdout_episodes "
                              f"{self.holdout_episodes} and holdout_max_transitions {self.holdout_max_transitions} >= 1.")

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "FitConfig":
        from ..agents.base import config_from_dict

        return config_from_dict(cls, d, source=source)

    @classmethod
    def preset(cls, name: str, **overrides) -> "FitConfig":
        """A named fitting rule: ``offlinerl-kit`` (the reference's: random ``min(20%, 1000)`` transitions held out,
        raw-unit MSE, no epoch cap) or ``dynlearn`` (this class's defaults)."""
        if name not in FIT_PRESETS:
            raise ConfigError(f"FitConfig.preset: unknown preset {name!r}; known: {', '.join(FIT_PRESETS)}.")
        return dataclasses.replace(cls(), **{**FIT_PRESETS[name], **overrides})

    def identity(self) -> dict:
        """The fields the fitted model depends on (for cache keys and checkpoint fingerprints): all but ``progress``,
        and fields added after the first release only where they differ from their default, so the models and
        checkpoints made before them keep their keys."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k != "progress" and not (k in _ADDED_LATER and v == _ADDED_LATER[k])}


HOLDOUTS = ("episodes", "transitions")
SELECT_BY = ("mse", "normalized")
FIT_PRESETS: dict[str, dict[str, Any]] = {
    "dynlearn": {},
    "offlinerl-kit": {"holdout": "transitions", "select_by": "mse", "max_epochs": None, "min_epochs": 0},
}
_ADDED_LATER = {"holdout": "episodes", "min_epochs": 0, "plateau_lr_factor": 0.3, "select_by": "mse"}


@dataclasses.dataclass(frozen=True)
class FitReport:
    """What :func:`fit` did."""

    epochs: int
    """Epochs run."""
    stopped_early: bool
    """True when early stopping ended training (False: max_epochs)."""
    holdout_mse: tuple[float, ...]
    """Each member's best holdout error in the ``select_by`` metric: the snapshot it ends with."""
    elites: tuple[int, ...]
    """Elite members, best first."""
    train_size: int
    """Training rows."""
    holdout_size: int
    """Holdout rows."""
    holdout_mode: str
    """'episodes' (whole episodes held out) or 'transitions' (random rows: the fallback for few, long episodes)."""
    holdout_episodes: int
    """Episodes in the holdout (0 for the transition fallback)."""
    holdout_seed: int
    """Seed of the split: ``split_holdout(dataset, cfg, seed=holdout_seed)`` gives the same train/holdout rows."""
    rows_without_successor: int
    """Rows whose next-obs target was masked (``next_obs_valid`` False), train and holdout together."""
    steps: int
    """Gradient steps (each updates every member on its own batch)."""
    wall_s: float
    """Wall time of the whole fit, compilation included."""
    steps_per_s: float
    """Gradient steps per second after the first (compiling) epoch; the whole run if only one epoch. (A learning-rate
    drop compiles the epoch once more, inside this figure: about a second.)"""
    history: tuple[tuple[float, ...], ...]
    """Per epoch, every member's holdout MSE after that epoch."""
    epoch_s: tuple[float, ...]
    """Wall time of every epoch (the first, and the one after a learning-rate drop, include compilation)."""
    steps_per_epoch: int
    """Gradient steps per epoch, ``ceil(train_size / batch_size)``."""
    lr_lowered_at: int | None = None
    """The epoch after which a plateau before ``min_epochs`` lowered the learning rate (None: it was not lowered)."""
    select_by: str = "mse"
    """The metric of ``holdout_mse`` and ``history`` (:attr:`FitConfig.select_by`)."""
    holdout_dim_mse: tuple[tuple[float, ...], ...] = ()
    """Per member, the final snapshot's holdout MSE per target dim ``(delta obs..., reward)`` in data units."""
    target_var: tuple[float, ...] = ()
    """Variance of each target dim on the training rows (divide ``holdout_dim_mse`` by it for normalised errors)."""

    @classmethod
    def from_dict(cls, d: dict) -> "FitReport":
        """Inverse of ``dataclasses.asdict`` after a JSON round trip (lists back to tuples)."""
        tup = lambda v: tuple(tup(x) for x in v) if isinstance(v, list) else v  # noqa: E731
        return cls(**{k: tup(v) for k, v in d.items()})

    @property
    def elite_holdout_mse(self) -> float:
        """Mean best holdout MSE over the elites (Kit's logged ``dynamics_holdout_loss``)."""
        return float(np.mean([self.holdout_mse[i] for i in self.elites]))


# ----------------------------------------------------------------------------------------------
# Data preparation (host)


class _Rows(eqx.Module):
    """Training or holdout rows on device, model-ready."""

    x: Float[Array, "n i"]      # (obs, act), standardised
    y: Float[Array, "n t"]      # (delta obs, reward), normalised if the config says so; 0 where masked
    y_raw: Float[Array, "n t"]  # the same in data units
    mask: Float[Array, "n t"]   # 1 where the target exists (delta obs needs a successor)
    terminal: Float[Array, " n"]


def _arrays(t: Transitions) -> tuple[np.ndarray, ...]:
    """``x = (obs, act)``, ``y = (next_obs - obs, rew)`` (0 where masked), ``mask [N, T]``, ``terminal``."""
    obs, nxt = np.asarray(t.obs, np.float32), np.asarray(t.next_obs, np.float32)
    valid = np.asarray(t.next_obs_valid, bool)
    with np.errstate(all="ignore"):  # whatever a row without successor holds never reaches an array we keep
        delta = np.where(valid[:, None], nxt - obs, 0.0).astype(np.float32)
    x = np.concatenate([obs, np.asarray(t.act, np.float32)], axis=1)
    y = np.concatenate([delta, np.asarray(t.rew, np.float32)[:, None]], axis=1)
    mask = np.concatenate([np.repeat(valid[:, None], obs.shape[1], axis=1), np.ones((len(obs), 1), bool)], axis=1)
    return x, y, mask, np.asarray(t.terminal, np.float32)


def _rows(arrays, input_norm: Normalizer, target_norm: Normalizer) -> _Rows:
    x, y, mask, term = (jnp.asarray(a) for a in arrays)
    yn = jnp.where(mask, target_norm(y), 0.0)
    return _Rows(x=input_norm(x), y=yn, y_raw=y, mask=mask.astype(jnp.float32), terminal=term)


def split_holdout(dataset: Dataset, cfg: FitConfig = FitConfig(), *, seed: int = 0,
                  holdout_rows: np.ndarray | None = None) -> tuple[Transitions, Transitions, str, int]:
    """``(train, holdout, mode, holdout_episodes)`` as :func:`fit` splits ``dataset`` (see the module docstring).

    ``mode`` is 'episodes' (whole episodes held out with :meth:`Dataset.split`), 'transitions' (random rows) or
    'given' (``holdout_rows``: these row indices are held out, every other row trains).
    """
    n = len(dataset)
    if n < 2:
        raise DataError(dataset.source, f"has {n} rows; fitting a model needs at least 2.", "provide more data.")
    if holdout_rows is not None:
        rows = np.unique(np.asarray(holdout_rows))
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or rows.size == 0 or rows.size >= n \
                or rows[0] < 0 or rows[-1] >= n:
            raise ConfigError(f"fit: holdout_rows must be distinct integer row indices in [0, {n}) leaving rows to train on; "
                              f"got {rows.size} values of dtype {rows.dtype}.")
        return (*_without(dataset.transitions, rows), "given", 0)
    target = min(cfg.holdout_fraction * n, cfg.holdout_max_transitions)
    k = max(cfg.holdout_episodes, math.ceil(target * dataset.n_episodes / n))
    if cfg.holdout == "episodes" and dataset.n_episodes > k:
        # A vanishing fraction: Dataset.split then holds out exactly min_holdout_episodes = k episodes.
        train, hold = dataset.split(1e-9, min_holdout_episodes=k, seed=seed)
        if len(hold) <= cfg.holdout_fraction * n:
            return train.transitions, hold.transitions, "episodes", hold.n_episodes
    return (*_without(dataset.transitions, transition_holdout(n, cfg, seed=seed)), "transitions", 0)


def _without(t: Transitions, rows: np.ndarray) -> tuple[Transitions, Transitions]:
    """``(every row but rows, rows)`` in their order in ``t``."""
    keep = np.ones(len(t.rew), bool)
    keep[rows] = False
    return t.take(np.flatnonzero(keep)), t.take(rows)


def split_seed(key: Key) -> int:
    """The seed of the train/holdout split that :func:`fit` draws from its ``key`` (``FitReport.holdout_seed``)."""
    return int(jax.random.randint(jax.random.split(key, 4)[1], (), 0, 2**31 - 1))


def transition_holdout(n: int, cfg: FitConfig = FitConfig(), *, seed: int = 0) -> np.ndarray:
    """The sorted row indices that the random-transition holdout (OfflineRL-Kit's rule, ``min(20%, 1000)`` rows) of
    ``n`` rows holds out for a split seed (``FitReport.holdout_seed``): to fit another library on the same rows."""
    size = max(1, min(int(cfg.holdout_fraction * n), cfg.holdout_max_transitions))
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


# ----------------------------------------------------------------------------------------------
# The compiled epoch


@functools.lru_cache(maxsize=8)
def _adam(lr: float) -> optax.GradientTransformation:
    # Cached so repeated fits with the same settings reuse the compiled epoch.
    return optax.adam(lr)


def _loss(net: EnsembleMLP, x, y, mask, terminal, cfg: EnsembleConfig):
    """Kit's loss: per member mean over rows and dims of ``(mu - y)^2 exp(-logvar) + logvar``, summed over
    members, + weight decay + bound regulariser (+ termination BCE). ``mask [E, B, T]``."""
    mean, logvar, logit = net(x)
    nll = jnp.square(mean - y) * jnp.exp(-logvar) + logvar
    count = jnp.maximum(jnp.sum(mask, axis=(1, 2)), 1.0)
    per_member = jnp.sum(jnp.where(mask > 0, nll, 0.0), axis=(1, 2)) / count
    loss = jnp.sum(per_member) + net.decay(cfg.weight_decay)
    info = {"loss/nll": jnp.mean(per_member)}
    if cfg.learn_logvar_bounds:
        loss = loss + cfg.logvar_bound_coef * (jnp.sum(net.max_logvar) - jnp.sum(net.min_logvar))
    if logit is not None:
        rows = mask[..., -1]  # the reward entry: 1 on every real row, 0 on batch padding
        bce = optax.sigmoid_binary_cross_entropy(logit, terminal)
        per_member_bce = jnp.sum(rows * bce, axis=1) / jnp.maximum(jnp.sum(rows, axis=1), 1.0)
        loss = loss + cfg.termination_coef * jnp.sum(per_member_bce)
        info["loss/terminal"] = jnp.mean(per_member_bce)
    return loss, info


def _holdout_mse(net: EnsembleMLP, rows: _Rows, target_norm: Normalizer, chunk: int) -> Float[Array, "members t"]:
    """Per member and target dim: MSE of the mean in data units over the holdout rows (masked)."""
    n = rows.x.shape[0]
    chunks = -(-n // chunk)
    chunk = -(-n // chunks)  # balanced chunks: at most chunks - 1 padding rows
    pad = chunks * chunk - n
    padded = lambda a: jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), a.dtype)]).reshape(chunks, chunk, *a.shape[1:])  # noqa: E731
    xs, ys, ms = padded(rows.x), padded(rows.y_raw), padded(rows.mask)

    def one(args):
        x, y, m = args
        mean = target_norm.inverse(net(x)[0])
        return jnp.sum(jnp.where(m > 0, jnp.square(mean - y), 0.0), axis=1)  # [E, T]

    sums = jnp.sum(jax.lax.map(one, (xs, ys, ms)), axis=0)
    return sums / jnp.maximum(jnp.sum(rows.mask, axis=0), 1.0)


@eqx.filter_jit
def _epoch(net: EnsembleMLP, opt_state, best: EnsembleMLP, best_mse, train: _Rows, holdout: _Rows, boot, target_norm: Normalizer,
           key: Key, dim_weight: Float[Array, " t"], *, cfg: EnsembleConfig, lr: float, batch_size: int, min_improvement: float,
           chunk: int):
    """One epoch of Adam steps for every member, then the holdout error (per-dim MSE weighted by ``dim_weight``, averaged
    over dims) and the best-snapshot update."""
    opt = _adam(lr)
    e, n = boot.shape
    b = batch_size
    steps = -(-n // b)
    perm = jax.vmap(jax.random.permutation)(jax.random.split(key, e), boot)  # each member's rows, reshuffled
    pad = steps * b - n
    perm = jnp.concatenate([perm, perm[:, :pad]], axis=1).reshape(e, steps, b).transpose(1, 0, 2)
    real = (jnp.arange(steps * b) < n).reshape(steps, 1, b, 1).astype(jnp.float32)

    def body(carry, inputs):
        net, opt_state = carry
        idx, row_ok = inputs
        x, y, m, t = train.x[idx], train.y[idx], train.mask[idx] * row_ok, train.terminal[idx]
        (loss, info), grads = jax.value_and_grad(_loss, has_aux=True)(net, x, y, m, t, cfg)
        net, opt_state = apply_optimizer(opt, net, grads, opt_state)
        return (net, opt_state), {"loss/total": loss, **info}

    (net, opt_state), infos = jax.lax.scan(body, (net, opt_state), (perm, real))
    mse = jnp.mean(_holdout_mse(net, holdout, target_norm, chunk) * dim_weight, axis=1)  # [E]
    improved = (best_mse - mse) / best_mse > min_improvement
    best_mse = jnp.where(improved, mse, best_mse)

    stacked = (best.weights, best.biases)
    best_w, best_b = jax.tree_util.tree_map(lambda b_, c_: jnp.where(improved.reshape(e, *(1,) * (b_.ndim - 1)), c_, b_),
                                            stacked, (net.weights, net.biases))
    best = dataclasses.replace(net, weights=best_w, biases=best_b)  # bounds: the current values (as Kit)
    return net, opt_state, best, best_mse, mse, improved, jax.tree_util.tree_map(jnp.mean, infos)


# ----------------------------------------------------------------------------------------------
# fit


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


def _target_variance(arrays) -> np.ndarray:
    """Variance of every target dim over the rows where it exists, floored at 1e-6 of the largest so that a (nearly)
    constant target, such as a reward that never changes, cannot turn tiny errors into the whole selection metric."""
    _, y, mask, _ = arrays
    y, mask = np.asarray(y, np.float64), np.asarray(mask, bool)
    count = np.maximum(mask.sum(axis=0), 1)
    mean = np.where(mask, y, 0.0).sum(axis=0) / count
    var = np.where(mask, (y - mean) ** 2, 0.0).sum(axis=0) / count
    return np.maximum(var, 1e-6 * float(var.max()) + 1e-12)


def _fingerprint(model_or_config, dataset: Dataset, key: Key, cfg: FitConfig, holdout_rows=None) -> str:
    """What a fit's state depends on: a checkpoint of another fit is refused."""
    # a model trained further: its parameters
    what = model_or_config.to_dict() if isinstance(model_or_config, EnsembleConfig) else arrays_digest(model_or_config)
    parts = [what, cfg.identity(), dataset.content_hash(), key_data(key)]
    if holdout_rows is not None:
        parts.append(np.unique(np.asarray(holdout_rows)).tolist())
    return fingerprint(*parts)


# ----------------------------------------------------------------------------------------------
# One-step error on held-out data


@dataclasses.dataclass(frozen=True)
class OneStepError:
    """One-step errors of a model's mean predictions on some rows, per target dim ``(delta obs..., reward)``."""

    member_mse: np.ndarray
    """``[members, target]``: each member's mean prediction."""
    elite_mean_mse: np.ndarray
    """``[target]``: the mean over elites of their mean predictions."""
    baseline_mse: np.ndarray
    """``[target]``: the constant mean predictor (the rows' own mean delta and reward: their variance)."""

    @property
    def skill(self) -> np.ndarray:
        """``1 - elite_mean_mse / baseline_mse`` per target dim (> 0: better than the mean predictor)."""
        return np.asarray(model_error.skill(self.elite_mean_mse, self.baseline_mse))


@eqx.filter_jit
def _members(model, obs, act):
    return model.members(obs, act)


def one_step_error(model: ProbabilisticEnsemble, data: Dataset | Transitions, *, reference: np.ndarray | None = None) -> OneStepError:
    """Per member and per dim one-step MSE on ``data`` (rows without a successor skip the delta dims).

    ``reference``: the constant for the baseline (e.g. the training split's mean target); default the
    evaluated rows' own mean (the strictest constant).
    """
    t = data.transitions if isinstance(data, Dataset) else data
    x, y, mask, _ = _arrays(t)
    out = _members(model, jnp.asarray(t.obs, jnp.float32), jnp.asarray(t.act, jnp.float32))
    mean = out.mean
    return OneStepError(
        member_mse=np.asarray(model_error.member_mse(mean, y, mask)),
        elite_mean_mse=np.asarray(model_error.prediction_mse(jnp.mean(jnp.take(mean, model.elites, axis=0), axis=0), y, mask)),
        baseline_mse=np.asarray(model_error.mean_predictor_mse(y, mask, reference=reference)),
    )
