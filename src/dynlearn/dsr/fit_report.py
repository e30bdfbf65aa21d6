"""What :func:`dynlearn.dsr.fit_dsr` did: :class:`FitDSRReport` (losses, alphas, timing, parameter counts, the model
selection's scores)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .fit_config import FitDSRConfig


@dataclasses.dataclass(frozen=True)
class FitDSRReport:
    """What :func:`dynlearn.dsr.fit_dsr` did."""

    losses: np.ndarray
    """Teacher-forced training MSE of every iteration (the data term, without the penalties)."""
    alphas: np.ndarray
    """GTF alpha used at every iteration ('adaptive': the annealed estimate; 'gtf': constant; 'sparse': empty)."""
    iterations: int
    """Gradient steps taken."""
    wall_s: float
    """Wall time of the whole fit, compilation included."""
    first_block_s: float
    """Wall time of the first block (includes compilation)."""
    iterations_per_s: float
    """Iterations per second after the first (compiling) block; the whole run if there was one block."""
    block_s: tuple[float, ...]
    """Wall time of every block of ``config.block`` iterations (the first includes compilation; the last may be padded)."""
    n_params: int
    """Parameters of the latent map (the papers' count)."""
    n_observation_params: int
    """Parameters of the observation model (L)."""
    config: FitDSRConfig
    """The configuration used."""
    selection: tuple[tuple[int, float], ...] = ()
    """``(iteration, training-data D_stsp)`` of every scored model (``select_every > 0``; inf: its free run diverged)."""
    selected_iteration: int | None = None
    """Iterations done by the returned model when selecting (None: the final model, no selection)."""

    @property
    def final_alpha(self) -> float | None:
        return float(self.alphas[-1]) if len(self.alphas) else None
