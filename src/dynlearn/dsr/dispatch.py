"""Fit any DSR model by its command-line name: the registry of fitters (:data:`FITTERS`), the config each one takes for a
``dsr fit`` job, and :func:`fit_model`, which hands the training series to the right fitter.

Every fitter has one signature, ``fit(series, cfg, *, key, checkpoint=None, progress=True) -> FittedModel``: ``series`` a
:class:`~dynlearn.data.timeseries.TimeSeries`, ``cfg`` the method's own config (built from the job by the entry's
``config``). The PLRNNs (shPLRNN, clipped shPLRNN, AL-RNN) are trained by :func:`dynlearn.dsr.fit_dsr` with the teacher
forcing of the GTF paper (Hess et al., ICML 2023, arXiv 2306.04406) or the AL-RNN paper (Brenner et al., NeurIPS 2024,
arXiv 2410.14240); the baselines by :func:`dynlearn.dsr.sindy.fit_sindy`, :func:`dynlearn.dsr.neural_ode.fit_neural_ode`
and :func:`dynlearn.dsr.esn.fit_esn`, which fit in one go (no checkpoint) and show no progress line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from .._types import Key
from ..data.timeseries import TimeSeries
from .base import AbstractLatentModel
from .esn import ESNConfig, fit_esn
from .fit import fit_dsr
from .fit_config import FitDSRConfig
from .job_config import PLRNN_MODELS, TRAINING_CHOICES, DSRFit, canonical_model
from .neural_ode import NeuralODEConfig, fit_neural_ode
from .sindy import SINDyConfig, fit_sindy


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
    """What a fitter returns: the model, the config it was fitted with, a JSON summary and the training losses."""

    model: AbstractLatentModel
    fit_config: Any
    """:class:`FitDSRConfig`, :class:`~dynlearn.dsr.sindy.SINDyConfig`, :class:`~dynlearn.dsr.neural_ode.NeuralODEConfig`
    or :class:`~dynlearn.dsr.esn.ESNConfig`"""
    info: dict
    losses: np.ndarray | None
    """per-iteration training loss (gradient-trained models), else None"""


@dataclasses.dataclass(frozen=True)
class Fitter:
    """One entry of :data:`FITTERS`: how a ``dsr fit`` job fits one model."""

    config: Callable[[DSRFit, int], Any]
    """``config(job, dim)``: the method's own config for the job on ``dim``-dimensional data"""
    fit: Callable[..., FittedModel]
    """``fit(series, cfg, *, key, checkpoint=None, progress=True)``: the model fitted to the training series"""


# ----------------------------------------------------------------------------------------------
# PLRNNs: teacher forcing (dynlearn.dsr.fit_dsr)


def plrnn_fit_config(cfg: DSRFit, kind: str, n: int) -> FitDSRConfig:
    """The :class:`FitDSRConfig` a ``dsr fit`` of the PLRNN ``kind`` on ``n``-dimensional data trains with: the options
    given, else the defaults of the GTF code (shPLRNNs) or the AL-RNN code (``alrnn``)."""
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


def fit_plrnn(series: TimeSeries, cfg: FitDSRConfig, *, key: Key, checkpoint=None, progress: bool = True) -> FittedModel:
    """:func:`dynlearn.dsr.fit_dsr` on the series' trajectories; ``checkpoint``: its training-state folder (written every
    minute and on SIGTERM / Ctrl-C, resumed from when present)."""
    trajectories = [series.trajectory(k) for k in range(series.n_trajectories)]
    model, report = fit_dsr(trajectories if len(trajectories) > 1 else trajectories[0], cfg, key=key, progress=progress,
                            checkpoint=checkpoint)
    info = {"iterations": report.iterations, "wall_s": report.wall_s, "iterations_per_s": report.iterations_per_s,
            "first_block_s": report.first_block_s, "final_loss": float(np.mean(report.losses[-min(500, len(report.losses)):])),
            "final_alpha": report.final_alpha, "training": next(k for k, v in TRAINING_CHOICES.items() if v == cfg.forcing),
            "selected_iteration": report.selected_iteration,
            "selection": [[it, score if np.isfinite(score) else None] for it, score in report.selection]}
    return FittedModel(model, cfg, info, np.asarray(report.losses))


# ----------------------------------------------------------------------------------------------
# Baselines


def sindy_fit_config(cfg: DSRFit, n: int) -> SINDyConfig:
    """SINDy on smoothed derivatives (the job's options do not apply)."""
    return SINDyConfig(differentiation="smoothed")


def fit_sindy_model(series: TimeSeries, cfg: SINDyConfig, *, key: Key, checkpoint=None, progress: bool = True) -> FittedModel:
    """:func:`dynlearn.dsr.sindy.fit_sindy` (closed form: ``key``, ``checkpoint`` and ``progress`` are not used)."""
    model, report = fit_sindy(series, cfg)
    info = {"iterations": 0, "wall_s": report.wall_s, "iterations_per_s": None, "equations": list(report.equations),
            "derivative_r2": report.derivative_r2, "training": "closed form (STLSQ)"}
    return FittedModel(model, cfg, info, None)


def neural_ode_fit_config(cfg: DSRFit, n: int) -> NeuralODEConfig:
    """The job's width (``--hidden``), iterations, learning rates and seed; defaults 64, 3e-3 -> 1e-5."""
    return NeuralODEConfig(width=_given(cfg.hidden, 64), iterations=cfg.iterations, lr=_given(cfg.lr, 3e-3),
                           lr_end=_given(cfg.lr_end, 1e-5), seed=cfg.seed)


def fit_neural_ode_model(series: TimeSeries, cfg: NeuralODEConfig, *, key: Key, checkpoint=None,
                         progress: bool = True) -> FittedModel:
    """:func:`dynlearn.dsr.neural_ode.fit_neural_ode` (one go: ``checkpoint`` and ``progress`` are not used)."""
    model, report = fit_neural_ode(series, cfg, key=key)
    info = {"iterations": report.iterations, "wall_s": report.wall_s, "iterations_per_s": report.iterations_per_s,
            "final_loss": float(np.mean(report.losses[-min(500, len(report.losses)):])), "training": "multiple shooting"}
    return FittedModel(model, cfg, info, np.asarray(report.losses))


def esn_fit_config(cfg: DSRFit, n: int) -> ESNConfig:
    """The job's reservoir size (``--latent``, default 400) and seed."""
    return ESNConfig(reservoir_size=_given(cfg.latent, 400), seed=cfg.seed)


def fit_esn_model(series: TimeSeries, cfg: ESNConfig, *, key: Key, checkpoint=None, progress: bool = True) -> FittedModel:
    """:func:`dynlearn.dsr.esn.fit_esn` (closed-form readout: ``checkpoint`` and ``progress`` are not used)."""
    model, report = fit_esn(series, cfg, key=key)
    info = {"iterations": 0, "wall_s": report.wall_s, "iterations_per_s": None, "train_mse": report.train_mse,
            "training": "closed form (ridge readout)"}
    return FittedModel(model, cfg, info, None)


def _plrnn(kind: str) -> Fitter:
    return Fitter(config=lambda cfg, n: plrnn_fit_config(cfg, kind, n), fit=fit_plrnn)


FITTERS: dict[str, Fitter] = {
    **{name: _plrnn(kind) for name, kind in PLRNN_MODELS.items()},
    "sindy": Fitter(config=sindy_fit_config, fit=fit_sindy_model),
    "node": Fitter(config=neural_ode_fit_config, fit=fit_neural_ode_model),
    "esn": Fitter(config=esn_fit_config, fit=fit_esn_model),
}
"""CLI model name (:data:`~dynlearn.dsr.job_config.MODEL_CHOICES`) -> its fitter."""


def fit_model(cfg: DSRFit, train: TimeSeries, *, key: Key, checkpoint=None) -> FittedModel:
    """Fit the model ``cfg.model`` names to the training series; raises ``TrainingDivergedError`` on divergence.

    ``checkpoint``: the PLRNNs' training-state folder (:func:`dynlearn.dsr.fit_dsr`: written every minute and on
    SIGTERM / Ctrl-C, resumed from when present); the baselines fit in one go and ignore it."""
    fitter = FITTERS[canonical_model(cfg.model)]
    return fitter.fit(train, fitter.config(cfg, train.dim), key=key, checkpoint=checkpoint, progress=cfg.progress)
