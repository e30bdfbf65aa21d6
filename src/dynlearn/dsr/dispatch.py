"""Fit any DSR model by its command-line name: the name tables, the :class:`~dynlearn.dsr.fit.FitDSRConfig` a
``dsr fit`` implies, and :func:`fit_model`, which hands the training series to the right fitter.

The PLRNNs (shPLRNN, clipped shPLRNN, AL-RNN) are trained by :func:`dynlearn.dsr.fit.fit_dsr` with the teacher forcing of
the GTF paper (Hess et al., ICML 2023, arXiv 2306.04406) or the AL-RNN paper (Brenner et al., NeurIPS 2024,
arXiv 2410.14240); the baselines by :func:`dynlearn.dsr.sindy.fit_sindy`, :func:`dynlearn.dsr.neural_ode.fit_neural_ode`
and :func:`dynlearn.dsr.esn.fit_esn`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import AbstractLatentModel

from .job_config import PLRNN_MODELS, TRAINING_CHOICES, DSRFit, canonical_model

if TYPE_CHECKING:
    from .fit import FitDSRConfig

def _given(value, default):
    """An option's value, or ``default`` when it was left out (None); a 0 stays 0 (and :class:`DSRFit` refuses it)."""
    return default if value is None else value


def method_name(cfg: DSRFit) -> str:
    """results.json ``method``: the model, and for a PLRNN its teacher forcing (``"alrnn+stf"``)."""
    name = canonical_model(cfg.model)
    if name in PLRNN_MODELS:
        training = cfg.training if cfg.training is not None else ("stf" if name == "alrnn" else "agtf")
        return f"{name}+{training}"
    return name


@dataclasses.dataclass(frozen=True)
class FittedModel:
    """What :func:`fit_model` returns: the model, the config it was fitted with, a JSON summary and the training losses."""

    model: AbstractLatentModel
    fit_config: Any
    """:class:`FitDSRConfig`, :class:`~dynlearn.dsr.sindy.SINDyConfig`, :class:`~dynlearn.dsr.neural_ode.NeuralODEConfig`
    or :class:`~dynlearn.dsr.esn.ESNConfig`"""
    info: dict
    losses: np.ndarray | None
    """per-iteration training loss (gradient-trained models), else None"""


def plrnn_fit_config(cfg: DSRFit, kind: str, n: int) -> FitDSRConfig:
    """The :class:`FitDSRConfig` a ``dsr fit`` of the PLRNN ``kind`` on ``n``-dimensional data trains with: the options
    given, else the defaults of the GTF code (shPLRNNs) or the AL-RNN code (``alrnn``)."""
    from .fit import FitDSRConfig

    alrnn = kind == "alrnn"
    training = cfg.training if cfg.training is not None else ("stf" if alrnn else "agtf")
    forcing = TRAINING_CHOICES[training]
    return FitDSRConfig(
        model=kind, latent_dim=_given(cfg.latent, max(20, n) if alrnn else n), hidden_dim=_given(cfg.hidden, 100),
        pwl_units=cfg.pwl_units, forcing=forcing, alpha=cfg.alpha if forcing == "gtf" else 1.0, tau=_given(cfg.tau, 16),
        iterations=cfg.iterations, decay_iterations=cfg.decay_iterations, seq_len=_given(cfg.seq_len, 200), lr=_given(cfg.lr, 1e-3),
        lr_end=_given(cfg.lr_end, 1e-5 if alrnn else 1e-6), regularization=0.0 if alrnn else 1e-5,
        noise=cfg.batch_noise if cfg.batch_noise is not None else (0.05 if alrnn else 0.0), seed=cfg.seed,
        select_every=cfg.select_every)


def fit_model(cfg: DSRFit, train, *, key, checkpoint=None) -> FittedModel:
    """Fit the model ``cfg.model`` names to the training series; raises ``TrainingDivergedError`` on divergence.

    ``checkpoint``: the PLRNNs' training-state folder (:func:`dynlearn.dsr.fit.fit_dsr`: written every minute and on
    SIGTERM / Ctrl-C, resumed from when present); the baselines fit in one go and ignore it."""
    name = canonical_model(cfg.model)
    trajectories = [train.trajectory(k) for k in range(train.n_trajectories)]
    if name in PLRNN_MODELS:
        from .fit import fit_dsr

        fit_cfg = plrnn_fit_config(cfg, PLRNN_MODELS[name], train.dim)
        model, report = fit_dsr(trajectories if len(trajectories) > 1 else trajectories[0], fit_cfg, key=key, progress=cfg.progress,
                                checkpoint=checkpoint)
        info = {"iterations": report.iterations, "wall_s": report.wall_s, "iterations_per_s": report.iterations_per_s,
                "first_block_s": report.first_block_s, "final_loss": float(np.mean(report.losses[-min(500, len(report.losses)):])),
                "final_alpha": report.final_alpha, "training": next(k for k, v in TRAINING_CHOICES.items() if v == fit_cfg.forcing),
                "selected_iteration": report.selected_iteration,
                "selection": [[it, score if np.isfinite(score) else None] for it, score in report.selection]}
        return FittedModel(model, fit_cfg, info, np.asarray(report.losses))
    if name == "sindy":
        from .sindy import SINDyConfig, fit_sindy

        fit_cfg = SINDyConfig(differentiation="smoothed")
        model, report = fit_sindy(train, fit_cfg)
        info = {"iterations": 0, "wall_s": report.wall_s, "iterations_per_s": None, "equations": list(report.equations),
                "derivative_r2": report.derivative_r2, "training": "closed form (STLSQ)"}
        return FittedModel(model, fit_cfg, info, None)
    if name == "node":
        from .neural_ode import NeuralODEConfig, fit_neural_ode

        fit_cfg = NeuralODEConfig(width=_given(cfg.hidden, 64), iterations=cfg.iterations, lr=_given(cfg.lr, 3e-3),
                                  lr_end=_given(cfg.lr_end, 1e-5), seed=cfg.seed)
        model, report = fit_neural_ode(train, fit_cfg, key=key)
        info = {"iterations": report.iterations, "wall_s": report.wall_s, "iterations_per_s": report.iterations_per_s,
                "final_loss": float(np.mean(report.losses[-min(500, len(report.losses)):])), "training": "multiple shooting"}
        return FittedModel(model, fit_cfg, info, np.asarray(report.losses))
    from .esn import ESNConfig, fit_esn

    fit_cfg = ESNConfig(reservoir_size=_given(cfg.latent, 400), seed=cfg.seed)
    model, report = fit_esn(train, fit_cfg, key=key)
    info = {"iterations": 0, "wall_s": report.wall_s, "iterations_per_s": None, "train_mse": report.train_mse,
            "training": "closed form (ridge readout)"}
    return FittedModel(model, fit_cfg, info, None)
