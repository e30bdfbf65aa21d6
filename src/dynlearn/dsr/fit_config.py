"""How :func:`dynlearn.dsr.fit_dsr` builds and trains a PLRNN: :class:`FitDSRConfig` (model, teacher forcing, schedule,
batches, penalties, model selection) and the papers' settings by name (:data:`PRESETS`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ConfigError, DataError
from .plrnn import MODEL_KINDS
from .teacher_forcing import FORCING_MODES


@dataclasses.dataclass(frozen=True)
class FitDSRConfig:
    """How :func:`dynlearn.dsr.fit_dsr` builds and trains a model; defaults are the GTF paper's (clipped shPLRNN + aGTF).

    ``FitDSRConfig.preset("lorenz63-alrnn")`` gives the AL-RNN repository's Lorenz-63 settings.
    """

    model: str = "clipped_shplrnn"
    """Latent model: 'shplrnn', 'clipped_shplrnn' (bounded orbits) or 'alrnn' (almost-linear RNN)."""
    latent_dim: int | None = None
    """Latent units M (>= the data dimension N; the first N are read out). None: M = N."""
    hidden_dim: int = 100
    """Hidden width H of the shPLRNN's ReLU layer (unused by the AL-RNN)."""
    pwl_units: int = 2
    """Piecewise-linear (ReLU) units P of the AL-RNN, the last P of the M (unused by the shPLRNN)."""
    forcing: str = "adaptive"
    """Teacher forcing: 'adaptive' (aGTF), 'gtf' (constant alpha) or 'sparse' (replace readouts every tau steps)."""
    alpha: float = 1.0
    """GTF alpha in [0, 1]: the constant for 'gtf', the starting value for 'adaptive'."""
    alpha_interval: int = 5
    """aGTF: re-estimate alpha every this many iterations."""
    alpha_decay: float = 0.999
    """aGTF: gamma of alpha <- gamma alpha + (1 - gamma) alpha_est when the estimate is lower (in [0, 1])."""
    tau: int = 16
    """Sparse TF: force the readout units every tau steps."""
    iterations: int = 250_000
    """Gradient steps (batches)."""
    decay_iterations: int | None = None
    """Horizon of the learning-rate decay: the rate is ``lr (lr_end / lr)^(step / decay_iterations)``, reaching ``lr_end``
    at step ``decay_iterations`` and held there after. None: ``iterations`` (the whole decay within this run). Set it to
    a reference run's length (GTF 250,000; AL-RNN 100,000) to train for the first ``iterations`` steps of that schedule;
    below ``iterations``, the rate sits at ``lr_end`` for the remaining steps."""
    batch_size: int = 16
    """Subsequences per batch."""
    seq_len: int = 200
    """Steps per subsequence (each holds seq_len + 1 points: the start and seq_len targets)."""
    lr: float = 1e-3
    """Initial RAdam learning rate."""
    lr_end: float = 1e-6
    """Final learning rate (exponential decay over the iterations)."""
    grad_clip: float = 0.0
    """Largest gradient norm per parameter array (0: no clipping)."""
    regularization: float = 1e-5
    """Weight of the latent model's penalty (shPLRNN: L2 towards A = 1 and zero weights; AL-RNN: the reference's
    AR-convergence term)."""
    obs_regularization: float = 0.0
    """Weight of |L|^2 (the estimate of the unobserved latent units; only when latent_dim > N)."""
    noise: float = 0.0
    """Std of Gaussian noise added to each training batch (data units; the AL-RNN reference uses 0.05)."""
    block: int = 500
    """Iterations per compiled call (the host syncs, checks for NaNs and updates the progress bar between blocks)."""
    seed: int = 0
    """Seed for the initialisation and the batches when fit_dsr gets no key."""
    select_every: int = 0
    """Keep the best model by training-data D_stsp, scored every this many iterations and at the end (the AL-RNN
    repository's Python routine: 1,000; blocks shrink to ``gcd(block, select_every)``). 0: return the final model."""
    select_steps: int = 10_000
    """Length of the free run (from the first training point) that each selection score compares with the training
    data (the AL-RNN repository's: 10,000)."""

    def __post_init__(self):
        bad = []
        if self.model not in MODEL_KINDS:
            bad.append(f"model {self.model!r} is not one of {list(MODEL_KINDS)}")
        if self.forcing not in FORCING_MODES:
            bad.append(f"forcing {self.forcing!r} is not one of {list(FORCING_MODES)}")
        if self.latent_dim is not None and self.latent_dim < 1:
            bad.append(f"latent_dim must be None or >= 1, got {self.latent_dim}")
        for name in ("hidden_dim", "alpha_interval", "tau", "iterations", "batch_size", "seq_len", "block", "select_steps"):
            if int(getattr(self, name)) < 1:
                bad.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.select_every < 0:
            bad.append(f"select_every must be >= 0 (0: no selection), got {self.select_every}")
        if self.pwl_units < 0:
            bad.append(f"pwl_units must be >= 0, got {self.pwl_units}")
        if self.model == "alrnn" and self.latent_dim is not None and self.pwl_units > self.latent_dim:
            bad.append(f"pwl_units {self.pwl_units} exceeds latent_dim {self.latent_dim}")
        if self.iterations > 2**24:
            bad.append(f"iterations must be <= 2^24 (counted in float32), got {self.iterations}")
        if self.decay_iterations is not None and not (isinstance(self.decay_iterations, int) and 1 <= self.decay_iterations <= 2**24):
            bad.append(f"decay_iterations must be None or an integer in [1, 2^24], got {self.decay_iterations!r}")
        if not 0.0 <= self.alpha <= 1.0:
            bad.append(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.alpha_decay <= 1.0:
            bad.append(f"alpha_decay must be in [0, 1], got {self.alpha_decay}")
        if not (self.lr > 0 and 0 < self.lr_end <= self.lr):
            bad.append(f"need lr > 0 and 0 < lr_end <= lr, got lr {self.lr}, lr_end {self.lr_end}")
        for name in ("grad_clip", "regularization", "obs_regularization", "noise"):
            value = getattr(self, name)
            if not (value >= 0 and np.isfinite(value)):
                bad.append(f"{name} must be finite and >= 0, got {value}")
        if bad:
            raise ConfigError("FitDSRConfig: " + "; ".join(bad) + ".")

    @classmethod
    def preset(cls, name: str, **overrides) -> FitDSRConfig:
        """Paper settings by name: 'lorenz63-shplrnn' (GTF) or 'lorenz63-alrnn' (AL-RNN); fields can be overridden."""
        if name not in PRESETS:
            raise ConfigError(f"FitDSRConfig.preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**(PRESETS[name] | overrides))

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> FitDSRConfig:
        """From JSON; unknown keys raise :class:`~dynlearn.DataError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise DataError(source, f"unknown FitDSRConfig keys {unknown}.", f"use only {sorted(names)}.")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict] = {
    # GTF-shPLRNN settings/defaults.json (Lorenz-63): clipped shPLRNN M = 3, H = 100, aGTF, 5000 x 50 batches.
    "lorenz63-shplrnn": {"model": "clipped_shplrnn", "latent_dim": 3, "hidden_dim": 100, "forcing": "adaptive",
                         "alpha": 1.0, "alpha_interval": 5, "alpha_decay": 0.999, "iterations": 250_000, "lr": 1e-3,
                         "lr_end": 1e-6, "regularization": 1e-5, "noise": 0.0},
    # ALRNN-DSR settings/lorenz63.json: M = 20, P = 2, sparse TF tau = 16, noise 0.05, 2000 x 50 batches.
    "lorenz63-alrnn": {"model": "alrnn", "latent_dim": 20, "pwl_units": 2, "forcing": "sparse", "tau": 16,
                       "iterations": 100_000, "lr": 1e-3, "lr_end": 1e-5, "regularization": 0.0, "noise": 0.05},
}
