"""The configs of ``dynlearn dsr fit`` (:class:`DSRFit`) and ``dynlearn dsr eval`` (:class:`DSREval`), one field per
command-line option (tyro), checked on construction, and the model and training names they accept. The jobs that run
them are in :mod:`.jobs`, the fitters they name are reached through :mod:`.dispatch`."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated

import tyro

from ..errors import ConfigError, check_minimums

PLRNN_MODELS = {"shplrnn": "shplrnn", "clipped-shplrnn": "clipped_shplrnn", "alrnn": "alrnn"}
"""CLI model name -> :data:`dynlearn.dsr.plrnn.MODEL_KINDS` entry."""
BASELINE_MODELS = {"sindy": "sindy", "node": "neural_ode", "esn": "esn"}
"""CLI model name -> the baseline's header name (:mod:`.sindy`, :mod:`.neural_ode`, :mod:`.esn`)."""
MODEL_CHOICES = tuple(PLRNN_MODELS) + tuple(BASELINE_MODELS)
TRAINING_CHOICES = {"gtf": "gtf", "agtf": "adaptive", "stf": "sparse"}
"""CLI training name -> :data:`dynlearn.dsr.teacher_forcing.FORCING_MODES` entry."""


def canonical_model(name: str) -> str:
    """The CLI model name (:data:`MODEL_CHOICES`) that ``name`` means; raises :class:`~dynlearn.ConfigError` if none."""
    key = str(name).lower().replace("_", "-")
    key = {"neural-ode": "node", "clipped-shallowplrnn": "clipped-shplrnn", "shallowplrnn": "shplrnn"}.get(key, key)
    if key not in MODEL_CHOICES:
        raise ConfigError(f"dsr fit: unknown --model {name!r}; choose one of {list(MODEL_CHOICES)}.")
    return key


@dataclasses.dataclass(frozen=True)
class DSRFit:
    """Fit a dynamical-systems reconstruction model to a time series (DATA), free-run it and measure it. Writes a run
    folder: config.json, model/, results.json (D_stsp, D_H, PE(20), Lyapunov exponent), figures."""

    data: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")]
    """a .npy/.npz/.csv series, gtf:lorenz63 | gtf:ecg | gtf:eeg (the GTF paper's data), or system:NAME (lorenz63, rossler,
    lorenz96, thomas, chua, vanderpol) simulated"""
    model: str = "clipped-shplrnn"
    """shplrnn | clipped-shplrnn | alrnn, or a baseline: sindy | node | esn"""
    training: str | None = None
    """teacher forcing for the PLRNNs: gtf (constant --alpha) | agtf (adaptive alpha) | stf (sparse, every --tau steps);
    default agtf for the shPLRNNs, stf for the AL-RNN"""
    latent: int | None = None
    """latent units M (default: the data dimension for the shPLRNNs, max(20, N) for the AL-RNN, 400 for the ESN)"""
    hidden: int | None = None
    """shPLRNN hidden width H (default 100); neural ODE: MLP width (default 64)"""
    pwl_units: int = 2
    """AL-RNN piecewise-linear units P"""
    iterations: int = 20_000
    """gradient steps (PLRNNs, neural ODE; SINDy and the ESN are fitted in closed form)"""
    decay_iterations: int | None = None
    """PLRNNs: steps over which the learning rate decays from --lr to --lr-end (default --iterations); e.g. 100000 with
    --iterations 20000 trains for the first 20000 steps of the AL-RNN reference's 100000-step schedule"""
    alpha: float = 0.1
    """GTF alpha for --training gtf (agtf starts at 1 and adapts)"""
    tau: int | None = None
    """sparse-TF interval (default 16)"""
    lr: float | None = None
    """initial learning rate (default: 1e-3 for the PLRNNs, 3e-3 for the neural ODE)"""
    lr_end: float | None = None
    """final learning rate (default: 1e-6 shPLRNN, 1e-5 AL-RNN and neural ODE)"""
    seq_len: int | None = None
    """training subsequence length (default 200)"""
    batch_noise: float | None = None
    """std of Gaussian noise added to training batches (default: 0 shPLRNN, 0.05 AL-RNN as its reference code)"""
    select_every: int = 0
    """PLRNNs: every this many iterations score a 10,000-step free run by D_stsp against the *training* series and keep
    the best model (the AL-RNN repository's Python routine: 1000); 0 keeps the final model"""
    seed: int = 0
    """seed of the model's initialisation and its batches"""
    out: Path = Path("runs/dsr")
    """run folder"""
    force: bool = False
    """replace an existing run folder"""
    resume: bool = False
    """continue the fit in --out from its checkpoint (PLRNNs: written every minute and on SIGTERM / Ctrl-C); the other
    options must be those it was started with"""
    test: str | None = None
    """test series (a file) for a file DATA; default: the last (1 - train_fraction) of DATA"""
    train_fraction: float = 0.8
    """a file DATA without --test: share of each trajectory used for training"""
    length: int = 100_000
    """system DATA: samples in the training series (and in the test series unless --test-length)"""
    test_length: int | None = None
    """system DATA: samples in the test series (default --length)"""
    dt: float | None = None
    """sampling interval (system DATA: default the system's; file DATA: default from the file, else 1)"""
    delimiter: str | None = None
    """a .csv DATA or --test: the column separator, one character (tab, semicolon, ... by name); default ,"""
    noise: float = 0.05
    """system DATA: observation noise on the training series, as a fraction of each channel's std (test is noise-free)"""
    data_seed: int = 0
    """system DATA: seed of the simulated initial states and noise (fixed across model seeds)"""
    standardize: bool = True
    """z-score file and system DATA with the training series' statistics (gtf: data are used as published)"""
    lyapunov_steps: int = 50_000
    """steps of the QR method for the largest Lyapunov exponents (model and true system)"""
    pe_steps: int = 20
    """n of the n-step prediction error PE(n)"""
    figures: bool = True
    """write the figures"""
    progress: bool = True
    """show a progress bar while fitting"""

    def __post_init__(self):
        canonical_model(self.model)
        bad = []
        if self.training is not None and self.training not in TRAINING_CHOICES:
            bad.append(f"--training {self.training!r} is not one of {list(TRAINING_CHOICES)}")
        for name in ("pwl_units", "iterations", "length", "lyapunov_steps", "pe_steps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= (0 if name == "pwl_units" else 1)):
                bad.append(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("latent", "hidden", "tau", "seq_len", "test_length", "decay_iterations"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                bad.append(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.decay_iterations is not None and self.decay_iterations > 2**24:
            bad.append(f"--decay-iterations must be <= 2^24 (counted in float32), got {self.decay_iterations}")
        if self.decay_iterations is not None and canonical_model(self.model) not in PLRNN_MODELS:
            bad.append(f"--decay-iterations applies to the PLRNNs ({', '.join(PLRNN_MODELS)}), not --model {self.model}")
        if not (isinstance(self.select_every, int) and self.select_every >= 0):
            bad.append(f"--select-every must be an integer >= 0 (0: keep the final model), got {self.select_every!r}")
        elif self.select_every and canonical_model(self.model) not in PLRNN_MODELS:
            bad.append(f"--select-every applies to the PLRNNs ({', '.join(PLRNN_MODELS)}), not --model {self.model}")
        if not 0.0 <= self.alpha <= 1.0:
            bad.append(f"--alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 < self.train_fraction < 1.0:
            bad.append(f"--train-fraction must be in (0, 1), got {self.train_fraction}")
        for name in ("lr", "lr_end", "dt"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                bad.append(f"--{name.replace('_', '-')} must be positive, got {value}")
        for name in ("noise", "batch_noise"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                bad.append(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if bad:
            raise ConfigError("dsr fit: " + "; ".join(bad) + ".")


@dataclasses.dataclass(frozen=True)
class DSREval:
    """Re-compute the reconstruction metrics of a saved `dsr fit` run (DIR) on its test series, or on new DATA
    (standardised with the run's training statistics). Writes DIR/eval (or --out): results.json and figures."""

    run: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="DIR")]
    """run folder of `dynlearn dsr fit`"""
    data: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="DATA")] = None
    """test data: a file (used whole), gtf:NAME (its test split) or system:NAME (a fresh noise-free trajectory);
    default: the run's own test series"""
    out: Path | None = None
    """output folder (default: DIR/eval)"""
    force: bool = False
    """replace an existing output folder"""
    length: int | None = None
    """system DATA: samples (default: the run's test length)"""
    dt: float | None = None
    """sampling interval of DATA (default: the run's)"""
    delimiter: str | None = None
    """a .csv DATA: the column separator, one character (tab, semicolon, ... by name); default ,"""
    data_seed: int = 1
    """system DATA: seed of the fresh trajectory (the fit used data_seed for its own)"""
    lyapunov_steps: int | None = None
    """QR steps for the Lyapunov exponents (default: the run's)"""
    pe_steps: int | None = None
    """n of PE(n) (default: the run's)"""
    figures: bool = True
    """write the figures"""

    def __post_init__(self):
        check_minimums(self, {"length": 1, "lyapunov_steps": 1, "pe_steps": 1}, command="dsr eval")
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise ConfigError(f"dsr eval: --dt must be positive, got {self.dt}. Fix: pass the sampling interval of DATA, or leave "
                              "--dt out for the run's.")


