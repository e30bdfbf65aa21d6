"""What :func:`dynlearn.models.fit` did: :class:`FitReport` (epochs, holdout split, every member's best holdout error,
elites, timing), JSON round trip included."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FitReport:
    """What :func:`dynlearn.models.fit` did."""

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
