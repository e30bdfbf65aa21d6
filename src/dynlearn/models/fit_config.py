"""How an ensemble is fitted: :class:`FitConfig` (learning rate, batches, holdout rule, early stopping, selection metric)
and its named presets.

The rules themselves are described in :mod:`dynlearn.models.fitting`; :meth:`FitConfig.identity` is the part of the
config that cache keys and checkpoint fingerprints hash.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..agents.base import config_from_dict
from ..errors import ConfigError


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How :func:`dynlearn.models.fit` trains; defaults are OfflineRL-Kit's dynamics training."""

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
