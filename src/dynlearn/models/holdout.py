"""Which rows an ensemble fit holds out for early stopping and elite selection.

:func:`split_holdout` applies :class:`~dynlearn.models.FitConfig`'s rule: at least ``holdout_episodes`` whole episodes
(more when episodes are short, so the holdout holds about ``min(holdout_fraction * N, holdout_max_transitions)`` rows),
falling back to OfflineRL-Kit's random ``min(20%, 1000)`` transitions (:func:`transition_holdout`) where whole
episodes would take more than ``holdout_fraction`` of the data or there are too few episodes; or given row indices.
:func:`split_seed` is the seed :func:`dynlearn.models.fit` draws for the split from its key.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from .._types import Key
from ..data.dataset import Dataset
from ..data.transitions import Transitions
from ..errors import ConfigError, DataError
from .fit_config import FitConfig


def split_holdout(dataset: Dataset, cfg: FitConfig = FitConfig(), *, seed: int = 0,
                  holdout_rows: np.ndarray | None = None) -> tuple[Transitions, Transitions, str, int]:
    """``(train, holdout, mode, holdout_episodes)`` as :func:`dynlearn.models.fit` splits ``dataset`` (module docstring).

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
    """The seed of the train/holdout split that :func:`dynlearn.models.fit` draws from its ``key``
    (``FitReport.holdout_seed``)."""
    return int(jax.random.randint(jax.random.split(key, 4)[1], (), 0, 2**31 - 1))


def transition_holdout(n: int, cfg: FitConfig = FitConfig(), *, seed: int = 0) -> np.ndarray:
    """The sorted row indices that the random-transition holdout (OfflineRL-Kit's rule, ``min(20%, 1000)`` rows) of
    ``n`` rows holds out for a split seed (``FitReport.holdout_seed``): to fit another library on the same rows."""
    size = max(1, min(int(cfg.holdout_fraction * n), cfg.holdout_max_transitions))
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])

