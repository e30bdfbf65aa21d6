"""``dynlearn dsr fit`` and ``dynlearn dsr eval``: fit a reconstruction model to a time series, free-run it, measure it.

**fit** (:class:`DSRFit`, :func:`run_fit`): read DATA (a ``.npy`` / ``.npz`` / ``.csv`` file, a dataset of the GTF paper
``gtf:lorenz63`` / ``gtf:ecg`` / ``gtf:eeg``, or a simulated system ``system:lorenz63`` / ``system:rossler`` /
``system:lorenz96`` ...), fit one model (shPLRNN / clipped shPLRNN / AL-RNN with GTF, aGTF or sparse TF; or the SINDy,
neural-ODE and echo-state baselines), then evaluate it on the test series by the protocol of the GTF reference code
(Hess et al., ICML 2023, arXiv 2306.04406; DurstewitzLab/GTF-shPLRNN ``src/evaluation.jl``): free-run ``1.25 T`` steps
from the first test point, drop the first ``0.25 T`` as transient, and compare the remaining ``T`` points with the ``T``
test points by D_stsp and D_H; PE(20) on the test series; the largest Lyapunov exponent of the model (QR method on its
Jacobians, per unit time) against the true system's where it is known. The run folder holds ``config.json``, the model
(``model/``, :func:`dynlearn.dsr.io.save`), ``results.json`` (schema ``dynlearn.results/1``; DSR metrics under
``extra``) and figures: ``attractor.png`` (true vs generated, 3-D and 2-D projections), ``power_spectra.png``,
``loss.png`` (gradient-trained models) and, for an AL-RNN, ``occupancy.png`` (linear subregions visited and the
symbolic sequence; Brenner et al., NeurIPS 2024, arXiv 2410.14240).

**A free run that diverges** (NaN/inf, or a blow-up far outside the data: :func:`dynlearn.metrics.dsr.is_diverged`),
and a training run that diverges, are failures: ``extra.status = "diverged"`` with the stage and reason, and every
metric ``null``; never a number.

**eval** (:class:`DSREval`, :func:`run_eval`): re-compute the metrics of a saved run on its own test series or on new
DATA (standardised with the run's training statistics), into ``DIR/eval`` (or ``--out``).

The evaluation protocol behind the benchmark tables is written down in ``benchmarks/dsr_protocol.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tyro

from ..errors import ConfigError, DataError, DynlearnError
from .base import AbstractLatentModel

# --------------------------------------------------------------------------------------------------------------------
# Names

PLRNN_MODELS = {"shplrnn": "shplrnn", "clipped-shplrnn": "clipped_shplrnn", "alrnn": "alrnn"}
"""CLI model name -> :data:`dynlearn.dsr.plrnn.MODEL_KINDS` entry."""
BASELINE_MODELS = {"sindy": "sindy", "node": "neural_ode", "esn": "esn"}
"""CLI model name -> the baseline's header name (:mod:`.sindy`, :mod:`.neural_ode`, :mod:`.esn`)."""
MODEL_CHOICES = tuple(PLRNN_MODELS) + tuple(BASELINE_MODELS)
TRAINING_CHOICES = {"gtf": "gtf", "agtf": "adaptive", "stf": "sparse"}
"""CLI training name -> :data:`dynlearn.dsr.teacher_forcing.FORCING_MODES` entry."""
LITERATURE_LYAPUNOV = {"lorenz63": 0.9056, "rossler": 0.0714}
"""Largest Lyapunov exponents per unit time at the default parameters (Sprott, Chaos and Time-Series Analysis, 2003, app. A)."""
FREE_RUN_FACTOR = 1.25
"""Free-run length as a multiple of the test length; the first (factor - 1) share is dropped as transient (GTF code)."""


def _canonical_model(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    key = {"neural-ode": "node", "clipped-shallowplrnn": "clipped-shplrnn", "shallowplrnn": "shplrnn"}.get(key, key)
    if key not in MODEL_CHOICES:
        raise ConfigError(f"dsr fit: unknown --model {name!r}; choose one of {list(MODEL_CHOICES)}.")
    return key


# --------------------------------------------------------------------------------------------------------------------
# Command-line configs


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
    seed: int = 0
    """seed of the model's initialisation and its batches"""
    out: Path = Path("runs/dsr")
    """run folder"""
    force: bool = False
    """replace an existing run folder"""
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
        _canonical_model(self.model)
        bad = []
        if self.training is not None and self.training not in TRAINING_CHOICES:
            bad.append(f"--training {self.training!r} is not one of {list(TRAINING_CHOICES)}")
        for name in ("pwl_units", "iterations", "length", "lyapunov_steps", "pe_steps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= (0 if name == "pwl_units" else 1)):
                bad.append(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("latent", "hidden", "tau", "seq_len", "test_length"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                bad.append(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
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
    data_seed: int = 1
    """system DATA: seed of the fresh trajectory (the fit used data_seed for its own)"""
    lyapunov_steps: int | None = None
    """QR steps for the Lyapunov exponents (default: the run's)"""
    pe_steps: int | None = None
    """n of PE(n) (default: the run's)"""
    figures: bool = True
    """write the figures"""


# --------------------------------------------------------------------------------------------------------------------
# Data


@dataclasses.dataclass(frozen=True)
class DSRData:
    """A training and a test series in the model's coordinates, and what is known about where they came from."""

    train: Any
    """:class:`dynlearn.data.timeseries.TimeSeries` the model is fitted on"""
    test: Any
    """:class:`dynlearn.data.timeseries.TimeSeries` the model is measured on"""
    task: str
    """name of the system or dataset (results.json ``task``)"""
    system: Any
    """the true :class:`dynlearn.data.systems.AbstractODESystem` when known (Lyapunov reference), else None"""
    stats: tuple[list[float], list[float]] | None
    """``(mean, std)`` of the training series applied to both (None: used as given)"""
    record: dict
    """JSON description (source, shapes, dt, noise, hashes)"""


def array_hash(values: np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of the float32 array bytes."""
    return hashlib.sha256(np.ascontiguousarray(values, np.float32).tobytes()).hexdigest()[:16]


def _parse_source(data: str) -> tuple[str, str]:
    """``("gtf" | "system" | "file", name)``."""
    text = str(data).strip()
    if not text:
        raise ConfigError("dsr: DATA is empty. Fix: pass a .npy/.npz/.csv file, gtf:lorenz63 or system:lorenz63.")
    for prefix in ("gtf", "system"):
        if text.lower().startswith(prefix + ":"):
            name = text.split(":", 1)[1].strip().lower()
            if not name:
                raise ConfigError(f"dsr: DATA {text!r} names no {prefix}. Fix: e.g. {prefix}:lorenz63.")
            return prefix, name
    return "file", text


def _system_for(name: str):
    from ..data.systems import make_system

    return make_system(name)


def _gtf_system(name: str):
    from ..data.systems import Lorenz63

    return Lorenz63() if name.replace("-", "") == "lorenz63" else None


def load_dsr_data(cfg: DSRFit) -> DSRData:
    """The training and test series that ``cfg.data`` names, standardised per ``cfg.standardize``."""
    from ..data.systems import simulate
    from ..data.timeseries import gtf_dataset, load_timeseries

    kind, name = _parse_source(cfg.data)
    system = None
    if kind == "gtf":
        if cfg.test is not None:
            raise ConfigError("dsr fit: --test is for a file DATA; gtf:NAME brings its own test split.")
        train, test = gtf_dataset(name, "train"), gtf_dataset(name, "test")
        if cfg.dt is not None and not math.isclose(cfg.dt, train.dt, rel_tol=1e-6):
            raise ConfigError(f"dsr fit: gtf:{name} is sampled every {train.dt:g}; --dt {cfg.dt} contradicts it. Fix: drop --dt.")
        task, system = name.replace("-", ""), _gtf_system(name)
        record = {"source": f"gtf:{name}", "paper": "Hess et al., ICML 2023, arXiv:2306.04406", "note": train.provenance.get("note")}
        stats = None
    elif kind == "system":
        if cfg.test is not None:
            raise ConfigError("dsr fit: --test is for a file DATA; a system's test series is simulated.")
        system = _system_for(name)
        data_key = jax.random.key(cfg.data_seed)
        train_key, test_key = jax.random.split(data_key)
        train = simulate(system, cfg.length, cfg.dt, key=train_key, noise=cfg.noise)
        test = simulate(system, cfg.test_length or cfg.length, cfg.dt, key=test_key, noise=0.0)
        task = system.name
        record = {"source": f"system:{system.name}", "params": system.params(), "noise": cfg.noise, "data_seed": cfg.data_seed,
                  "transient_time": train.provenance.get("transient_time"), "test_noise": 0.0}
        stats = None
    else:
        train = load_timeseries(name, dt=cfg.dt)
        if cfg.test is not None:
            test = load_timeseries(cfg.test, dt=train.dt if cfg.dt is None else cfg.dt)
            if test.dim != train.dim:
                raise DataError(cfg.test, f"has {test.dim} channels, the training series {train.dim}.", "pass a test series of the same system.")
        else:
            train, test = train.split(cfg.train_fraction)
        task = Path(name).stem
        record = {"source": str(name), "test_source": cfg.test or f"last {1 - cfg.train_fraction:g} of each trajectory"}
        stats = None
    if kind != "gtf" and cfg.standardize:
        train, (mean, std) = train.standardize()
        test, _ = test.standardize((mean, std))
        stats = (np.asarray(mean, np.float64).tolist(), np.asarray(std, np.float64).tolist())
    record |= {"dt": train.dt, "time_unit": train.provenance.get("time_unit"), "train_shape": list(train.values.shape),
               "test_shape": list(test.values.shape), "train_hash": array_hash(train.values), "test_hash": array_hash(test.values),
               "standardized_with_train_stats": stats is not None}
    return DSRData(train=train, test=test, task=task, system=system, stats=stats, record=record)


def load_eval_data(data: str, run_record: dict, stats, *, length: int | None, dt: float | None, data_seed: int) -> DSRData:
    """New test data for :func:`run_eval`, in the coordinates of the run (its training statistics)."""
    from ..data.systems import simulate
    from ..data.timeseries import gtf_dataset, load_timeseries

    kind, name = _parse_source(data)
    run_dt = float(run_record["dt"])
    system = None
    if kind == "gtf":
        test = gtf_dataset(name, "test")
        task, system = name.replace("-", ""), _gtf_system(name)
        record = {"source": f"gtf:{name} (test split)"}
    elif kind == "system":
        system = _system_for(name)
        test = simulate(system, length or int(run_record["test_shape"][1]), dt or run_dt, key=jax.random.key(data_seed), noise=0.0)
        task = system.name
        record = {"source": f"system:{system.name}", "params": system.params(), "data_seed": data_seed, "test_noise": 0.0}
    else:
        test = load_timeseries(name, dt=dt)
        task = Path(name).stem
        record = {"source": str(name)}
    if not math.isclose(test.dt, run_dt, rel_tol=1e-4):
        raise DataError(str(data), f"is sampled every {test.dt:g}, the model was fitted at {run_dt:g} (a map of one sampling interval).",
                        "resample the data to the run's dt, or pass --dt if the file's is wrong.", key="dt")
    channels = int(run_record["test_shape"][-1])
    if test.dim != channels:
        raise DataError(str(data), f"has {test.dim} channels; the model observes {channels}.",
                        "evaluate on data of the system the model was fitted to.")
    if stats is not None:
        test, _ = test.standardize(tuple(np.asarray(s, np.float32) for s in stats))
    record |= {"dt": test.dt, "test_shape": list(test.values.shape), "test_hash": array_hash(test.values),
               "standardized_with_train_stats": stats is not None}
    return DSRData(train=None, test=test, task=task, system=system, stats=stats, record=record)


# --------------------------------------------------------------------------------------------------------------------
# Fitting


@dataclasses.dataclass(frozen=True)
class _Fitted:
    model: AbstractLatentModel
    fit_config: Any
    info: dict
    losses: np.ndarray | None


def _plrnn_config(cfg: DSRFit, kind: str, n: int):
    from .fit import FitDSRConfig

    alrnn = kind == "alrnn"
    training = cfg.training or ("stf" if alrnn else "agtf")
    forcing = TRAINING_CHOICES[training]
    return FitDSRConfig(
        model=kind, latent_dim=cfg.latent or (max(20, n) if alrnn else n), hidden_dim=cfg.hidden or 100, pwl_units=cfg.pwl_units,
        forcing=forcing, alpha=cfg.alpha if forcing == "gtf" else 1.0, tau=cfg.tau or 16, iterations=cfg.iterations,
        seq_len=cfg.seq_len or 200, lr=cfg.lr or 1e-3, lr_end=cfg.lr_end or (1e-5 if alrnn else 1e-6),
        regularization=0.0 if alrnn else 1e-5,
        noise=cfg.batch_noise if cfg.batch_noise is not None else (0.05 if alrnn else 0.0), seed=cfg.seed)


def fit_model(cfg: DSRFit, train, *, key) -> _Fitted:
    """Fit the model ``cfg.model`` names to the training series; raises ``TrainingDivergedError`` on divergence."""
    name = _canonical_model(cfg.model)
    trajectories = [train.trajectory(k) for k in range(train.n_trajectories)]
    if name in PLRNN_MODELS:
        from .fit import fit_dsr

        fit_cfg = _plrnn_config(cfg, PLRNN_MODELS[name], train.dim)
        model, report = fit_dsr(trajectories if len(trajectories) > 1 else trajectories[0], fit_cfg, key=key, progress=cfg.progress)
        info = {"iterations": report.iterations, "wall_s": report.wall_s, "iterations_per_s": report.iterations_per_s,
                "first_block_s": report.first_block_s, "final_loss": float(np.mean(report.losses[-min(500, len(report.losses)):])),
                "final_alpha": report.final_alpha, "training": next(k for k, v in TRAINING_CHOICES.items() if v == fit_cfg.forcing)}
        return _Fitted(model, fit_cfg, info, np.asarray(report.losses))
    if name == "sindy":
        from .sindy import SINDyConfig, fit_sindy

        fit_cfg = SINDyConfig(differentiation="smoothed")
        model, report = fit_sindy(train, fit_cfg)
        info = {"iterations": 0, "wall_s": report.wall_s, "iterations_per_s": None, "equations": list(report.equations),
                "derivative_r2": report.derivative_r2, "training": "closed form (STLSQ)"}
        return _Fitted(model, fit_cfg, info, None)
    if name == "node":
        from .neural_ode import NeuralODEConfig, fit_neural_ode

        fit_cfg = NeuralODEConfig(width=cfg.hidden or 64, iterations=cfg.iterations, lr=cfg.lr or 3e-3,
                                  lr_end=cfg.lr_end or 1e-5, seed=cfg.seed)
        model, report = fit_neural_ode(train, fit_cfg, key=key)
        info = {"iterations": report.iterations, "wall_s": report.wall_s, "iterations_per_s": report.iterations_per_s,
                "final_loss": float(np.mean(report.losses[-min(500, len(report.losses)):])), "training": "multiple shooting"}
        return _Fitted(model, fit_cfg, info, np.asarray(report.losses))
    from .esn import ESNConfig, fit_esn

    fit_cfg = ESNConfig(reservoir_size=cfg.latent or 400, seed=cfg.seed)
    model, report = fit_esn(train, fit_cfg, key=key)
    info = {"iterations": 0, "wall_s": report.wall_s, "iterations_per_s": None, "train_mse": report.train_mse,
            "training": "closed form (ridge readout)"}
    return _Fitted(model, fit_cfg, info, None)


def parameter_counts(model: AbstractLatentModel) -> dict:
    """``latent_map`` (the papers' count), ``observation`` (L of the identity readout), ``trained`` and ``total``."""
    latent_map = int(model.n_params)
    observation = int(getattr(model, "n_observation_params", 0))
    trained = int(getattr(model, "n_trained_params", latent_map + observation))
    return {"latent_map": latent_map, "observation": observation, "trained": trained, "total": latent_map + observation}


# --------------------------------------------------------------------------------------------------------------------
# Saving and loading any DSR model (the PLRNNs through dsr.io; the baselines rebuilt here from their headers)


def save_model(folder: Path, model: AbstractLatentModel, fit_config) -> Path:
    """The PLRNNs by :func:`dynlearn.dsr.io.save`; a baseline in the same layout (``config.json`` of kind
    ``dsr_model`` with its header, array-leaf shapes and fit config, plus ``leaves.eqx``), read back by :func:`load_model`."""
    from ..checkpoint import save_module
    from .io import DSR_FORMAT, KIND, save
    from .plrnn import MODEL_KINDS

    if model.header().get("model") in MODEL_KINDS:
        return save(folder, model, config=fit_config, force=True)
    header = model.header() | {"dsr_format": DSR_FORMAT, "leaf_shapes": _array_shapes(model), "fit_config": fit_config.to_dict()}
    return save_module(folder, model, header, kind=KIND, force=True)


def _array_shapes(model) -> list[list[int]]:
    return [list(x.shape) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def load_model(folder: str | Path) -> AbstractLatentModel:
    """Load a model saved by :func:`save_model`: the PLRNNs by :func:`dynlearn.dsr.io.load`, the baselines here."""
    from .. import __version__
    from ..checkpoint import load_leaves, read_header
    from .io import KIND, load
    from .plrnn import MODEL_KINDS

    folder = Path(folder)
    header = read_header(folder, kind=KIND)
    body = header.get("config") if isinstance(header.get("config"), dict) else {}
    kind = body.get("model")
    if kind in MODEL_KINDS:
        return load(folder)
    source = str(folder / "config.json")
    if str(header.get("dynlearn_version", "")).split(".")[:2] != __version__.split(".")[:2]:
        raise DataError(source, f"written by dynlearn {header.get('dynlearn_version')}, this is {__version__}.",
                        "load it with the dynlearn version that wrote it.", key="dynlearn_version")
    try:
        like = _baseline_skeleton(kind, body)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(source, f"incomplete {kind!r} model config ({e!r}).", "pass a folder written by dsr fit.", key="config") from None
    expected = _array_shapes(like)
    if body.get("leaf_shapes") != expected:
        raise DataError(source, f"leaf shapes {body.get('leaf_shapes')} do not match the structure its config describes ({expected}).",
                        "the checkpoint is corrupt or was edited; re-save it.", key="leaf_shapes")
    return load_leaves(folder, like)


def _baseline_skeleton(kind: str | None, body: dict) -> AbstractLatentModel:
    shapes = [tuple(s) for s in body["leaf_shapes"]]
    n, m = int(body["obs_dim"]), int(body["latent_dim"])
    if kind == "sindy":
        from .sindy import SINDyModel

        monomials = tuple(tuple(int(i) for i in mono) for mono in body["monomials"])
        return SINDyModel(coefficients=jnp.zeros(shapes[0], jnp.float32), obs_dim=n, latent_dim=m, monomials=monomials,
                          dt=float(body["dt"]), substeps=int(body["substeps"]))
    if kind == "neural_ode":
        from .neural_ode import NeuralODE

        fit = body.get("fit_config") or {}
        return NeuralODE.init(n, dt=float(body["dt"]), width=int(body["width"]), depth=int(body["depth"]),
                              activation=fit.get("activation", "tanh"), time_scale=float(body["time_scale"]), solver=body["solver"],
                              substeps=int(body["substeps"]), key=jax.random.key(0))
    if kind == "esn":
        from .esn import ESN

        w, w_in, b, w_out, ax, ar = (jnp.zeros(s, jnp.float32) for s in shapes)
        return ESN(W=w, W_in=w_in, b=b, W_out=w_out, anchor_x=ax, anchor_r=ar, obs_dim=n, latent_dim=m,
                   leak_rate=float(body["leak_rate"]), squared_features=bool(body["squared_features"]))
    raise ValueError(f"unknown model kind {kind!r}")


# --------------------------------------------------------------------------------------------------------------------
# Evaluation

_TRUE_LYAPUNOV_CACHE: dict = {}


def true_max_lyapunov(system, dt: float, steps: int) -> float:
    """Largest Lyapunov exponent per unit time of ``system`` by the QR method on its RK4 ``dt``-map, started on the
    attractor (a state after the system's default transient); cached per (system, dt, steps)."""
    from ..data.systems import simulate
    from ..metrics.dsr import flow_max_lyapunov

    cache_key = (system.name, json.dumps(system.params(), sort_keys=True, default=str), float(dt), int(steps))
    if cache_key not in _TRUE_LYAPUNOV_CACHE:
        x0 = simulate(system, 2, dt, key=jax.random.key(12345)).values[0, -1]
        _TRUE_LYAPUNOV_CACHE[cache_key] = flow_max_lyapunov(system.vector_field, x0, dt=dt, steps=steps, transient=1000)
    return _TRUE_LYAPUNOV_CACHE[cache_key]


def _chunked_prediction_error(model: AbstractLatentModel, x: np.ndarray, n: int, chunk: int = 20_000) -> float:
    """PE(n) over every window of ``x`` (as the reference), computed in chunks of windows to bound memory: the mean over
    chunks weighted by their windows equals the mean over all windows."""
    from ..metrics.dsr import prediction_error

    step, encode, observe = jax.vmap(model.step), jax.vmap(model.encode), jax.vmap(model.observe)
    windows = len(x) - n
    total, count = 0.0, 0
    for start in range(0, windows, chunk):
        stop = min(start + chunk, windows)
        part = x[start: stop + n]
        total += prediction_error(step, part, n, encode=encode, observe=observe, on_diverged="nan") * (stop - start)
        count += stop - start
    return total / count


def _first_bad_step(x_gen: np.ndarray, reference: np.ndarray, factor: float = 10.0) -> int:
    centre = reference.mean(axis=0)
    radius = np.maximum(np.max(np.abs(reference - centre), axis=0), 1e-12)
    with np.errstate(invalid="ignore"):
        bad = ~np.all(np.isfinite(x_gen), axis=1) | np.any(np.abs(x_gen - centre) > factor * radius, axis=1)
    return int(np.argmax(bad)) if bad.any() else -1


def evaluate_model(model: AbstractLatentModel, x_test: np.ndarray, dt: float, *, system=None, lyapunov_steps: int = 50_000,
                   pe_steps: int = 20) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """The GTF reference's evaluation of a model on one test trajectory ``x_test [T, N]`` plus Lyapunov exponents.

    Returns ``(record, x_gen, z_gen)``: ``x_gen [T, N]`` is the free run after the dropped transient (None if it
    diverged), ``z_gen`` its latent states for an AL-RNN (else None). ``record["status"]`` is ``"ok"`` or
    ``"diverged"``; a diverged model gets ``null`` metrics and a ``failure`` entry.
    """
    from ..metrics.dsr import (
        TrajectoryDivergedError,
        is_diverged,
        max_lyapunov,
        power_spectrum_distance,
        state_space_divergence,
    )
    from .plrnn import ALRNN

    x_test = np.asarray(x_test, np.float32)
    t_len, n = x_test.shape
    drop = math.floor((FREE_RUN_FACTOR - 1.0) * t_len)
    total = drop + t_len
    protocol = {"free_run_steps": total, "transient_dropped": drop, "compared_steps": t_len, "x0": "first test point",
                "pe_n": pe_steps, "lyapunov_steps": lyapunov_steps, "lyapunov_transient": 1000, "dt": dt,
                "d_stsp": "binned, 30 bins" if n < 6 else "Gaussian mixture, variance 1, 1000 MC samples, first 1e4 points",
                "d_h": "smoothing sigma 20"}
    empty = {"D_stsp": None, "D_H": None, "PE": None}
    record: dict[str, Any] = {"status": "ok", "failure": None, "metrics": dict(empty), "protocol": protocol}

    def failed(stage: str, reason: str):
        record.update(status="diverged", failure={"stage": stage, "reason": reason}, metrics=dict(empty))
        record["lyapunov"] = _lyapunov_record(None, system, dt, lyapunov_steps)
        return record, None, None

    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))]
    if not all(np.all(np.isfinite(x)) for x in leaves):
        return failed("model", "the model's parameters hold NaN/inf")
    is_alrnn = isinstance(model, ALRNN)  # latent states are kept only where the subregion analysis needs them
    run = np.asarray(model.generate(total, x0=jnp.asarray(x_test[0]), latent=is_alrnn))
    z_all, x_all = (run, np.asarray(jax.vmap(model.observe)(jnp.asarray(run)))) if is_alrnn else (None, run)
    if is_diverged(x_all, reference=x_test):
        bad = _first_bad_step(x_all, x_test)
        return failed("free_run", f"the free-running trajectory blew up (NaN/inf or > 10x the data's extent) at step {bad} of {total}")
    x_gen = x_all[drop:]
    z_gen = z_all[drop:] if is_alrnn else None
    pe = _chunked_prediction_error(model, x_test, pe_steps)
    if not math.isfinite(pe):
        return failed("prediction", f"the {pe_steps}-step predictions from the test points hold NaN/inf")
    try:
        d_stsp = state_space_divergence(x_test, x_gen)
    except TrajectoryDivergedError as e:  # bounded, but not one generated point inside the data's box
        return failed("free_run", f"the free-running trajectory left the data's range ({e.problem.rstrip('.')})")
    record["metrics"] = {"D_stsp": d_stsp, "D_H": power_spectrum_distance(x_test, x_gen), "PE": pe}
    lam = max_lyapunov(model.step, model.encode(jnp.asarray(x_test[0])), steps=lyapunov_steps, transient=1000, dt=dt, on_diverged="nan")
    record["lyapunov"] = _lyapunov_record(lam, system, dt, lyapunov_steps)
    if is_alrnn:
        record["subregions"] = _subregion_record(z_gen, model)
    return record, x_gen, z_gen


def _lyapunov_record(lam: float | None, system, dt: float, steps: int) -> dict:
    true = true_max_lyapunov(system, dt, steps) if system is not None else None
    rec = {"model_per_time": lam if lam is not None and math.isfinite(lam) else None, "true_per_time": true,
           "true_source": f"QR method on the true {system.name} vector field (RK4 map, dt={dt:g})" if system is not None
           else "unknown (no known system)",
           "literature": LITERATURE_LYAPUNOV.get(system.name) if system is not None else None,
           "abs_error": None, "rel_error": None}
    if rec["model_per_time"] is not None and true is not None:
        rec["abs_error"] = abs(rec["model_per_time"] - true)
        rec["rel_error"] = rec["abs_error"] / abs(true) if true != 0 else None
    return rec


def _subregion_record(z_gen: np.ndarray, model) -> dict:
    from .analysis import subregion_stats

    stats = subregion_stats(z_gen, model)
    p = stats.pwl_units
    return {"pwl_units": p, "max_regions": 2**p, "n_regions": stats.n_regions, "regions": stats.regions.tolist(),
            "bits": ["".join(map(str, stats.bits(int(r)))) for r in stats.regions], "occupancy": stats.occupancy.tolist(),
            "n_crossings": stats.n_crossings, "mean_dwell": float(np.mean(stats.dwell)), "transitions": stats.transitions.tolist(),
            "symbols_head": stats.symbols[:40].tolist()}


# --------------------------------------------------------------------------------------------------------------------
# Figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_attractor(path: Path, x_true: np.ndarray, x_gen: np.ndarray, *, names: tuple[str, ...], title: str, points: int = 20_000) -> Path:
    """True vs generated trajectory: a 3-D view of the first three channels (N >= 3) and the 2-D projections."""
    plt = _plt()
    xt, xg = np.asarray(x_true)[:points], np.asarray(x_gen)[:points]
    n = xt.shape[1]
    pairs = [(0, 1), (0, 2), (1, 2)][: 3 if n >= 3 else 1]
    cols = len(pairs) + (2 if n >= 3 else 0)
    fig = plt.figure(figsize=(3.6 * cols, 3.6))
    col = 1
    if n >= 3:
        for label, x, color in (("true", xt, "tab:blue"), ("generated", xg, "tab:red")):
            ax = fig.add_subplot(1, cols, col, projection="3d")
            ax.plot(x[:, 0], x[:, 1], x[:, 2], lw=0.3, color=color)
            ax.set_title(label)
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            ax.set_zlabel(names[2])
            col += 1
    for i, j in pairs:
        ax = fig.add_subplot(1, cols, col)
        ax.plot(xt[:, i], xt[:, j], lw=0.3, color="tab:blue", label="true")
        ax.plot(xg[:, i], xg[:, j], lw=0.3, color="tab:red", alpha=0.7, label="generated")
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        col += 1
    fig.axes[-1].legend(loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smoothed_spectrum(x: np.ndarray, sigma: float = 20.0) -> np.ndarray:
    """Per channel: z-score, |rfft|^2, Gaussian smoothing, normalised to sum 1 (the D_H spectra, for plotting)."""
    z = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0, ddof=1), 1e-12)
    ps = np.abs(np.fft.rfft(z, axis=0)) ** 2
    radius = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(ps, ((radius, radius), (0, 0)), mode="symmetric")
    smooth = np.stack([np.convolve(padded[:, c], k, mode="valid") for c in range(ps.shape[1])], axis=1)
    return smooth / np.maximum(smooth.sum(axis=0, keepdims=True), 1e-300)  # a constant channel plots as zeros


def plot_power_spectra(path: Path, x_true: np.ndarray, x_gen: np.ndarray, dt: float, *, names: tuple[str, ...], title: str,
                       max_channels: int = 5) -> Path:
    """Smoothed, normalised power spectra of the true and generated series, one panel per channel (the first few)."""
    plt = _plt()
    n = min(x_true.shape[1], max_channels)
    st, sg = _smoothed_spectrum(np.asarray(x_true, np.float64)[:, :n]), _smoothed_spectrum(np.asarray(x_gen, np.float64)[:, :n])
    freq = np.fft.rfftfreq(len(x_true), d=dt)
    keep = max(10, int(np.searchsorted(np.cumsum(st.mean(axis=1)), 0.995)) + 1)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.0), squeeze=False)
    for c, ax in enumerate(axes[0]):
        ax.semilogy(freq[:keep], st[:keep, c], color="tab:blue", label="true")
        ax.semilogy(freq[:keep], np.maximum(sg[:keep, c], 1e-12), color="tab:red", label="generated")
        ax.set_title(names[c], fontsize=9)
        ax.set_xlabel("frequency (1 / time unit)")
    axes[0][0].set_ylabel("normalised power")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_occupancy(path: Path, z_gen: np.ndarray, x_gen: np.ndarray, model, *, title: str, steps: int = 3000) -> Path:
    """AL-RNN subregion analysis: occupancy of the linear subregions, the symbolic sequence over time, and the generated
    attractor coloured by subregion."""
    from .analysis import subregion_stats

    plt = _plt()
    stats = subregion_stats(z_gen, model)
    labels = ["".join(map(str, stats.bits(int(r)))) for r in stats.regions]
    colours = plt.get_cmap("tab10")
    colour_of = {int(r): colours(i % 10) for i, r in enumerate(stats.regions)}
    fig = plt.figure(figsize=(13, 3.8))
    ax = fig.add_subplot(1, 3, 1)
    ax.bar(range(len(labels)), stats.occupancy, color=[colour_of[int(r)] for r in stats.regions])
    ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 8 else 0, fontsize=7)
    ax.set_ylabel("share of steps")
    ax.set_title(f"{stats.n_regions} of {2 ** stats.pwl_units} subregions visited", fontsize=9)
    ax = fig.add_subplot(1, 3, 2)
    ids = stats.ids[:steps]
    pos = {int(r): i for i, r in enumerate(stats.regions)}
    ax.plot(np.arange(len(ids)), [pos[int(i)] for i in ids], lw=0.6, color="k")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("step")
    ax.set_title(f"symbolic sequence (first {len(ids)} steps, {stats.n_crossings} crossings in all)", fontsize=9)
    n = x_gen.shape[1]
    pts = slice(0, min(len(x_gen), 20_000))
    c = [colour_of[int(i)] for i in stats.ids[pts]]
    if n >= 3:
        ax = fig.add_subplot(1, 3, 3, projection="3d")
        ax.scatter(x_gen[pts, 0], x_gen[pts, 1], x_gen[pts, 2], s=0.2, c=c)
    else:
        ax = fig.add_subplot(1, 3, 3)
        ax.scatter(x_gen[pts, 0], x_gen[pts, min(1, n - 1)], s=0.2, c=c)
    ax.set_title("generated attractor by subregion", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss(path: Path, losses: np.ndarray, *, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    window = max(1, len(losses) // 200)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.semilogy(np.arange(len(smooth)) + window, smooth)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training MSE")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _figures(folder: Path, record: dict, x_test, x_gen, z_gen, model, dt: float, names, title: str) -> list[str]:
    written = []
    if x_gen is None:
        return written
    written.append(plot_attractor(folder / "attractor.png", x_test, x_gen, names=names, title=title).name)
    written.append(plot_power_spectra(folder / "power_spectra.png", x_test, x_gen, dt, names=names, title=title).name)
    if z_gen is not None:
        written.append(plot_occupancy(folder / "occupancy.png", z_gen, x_gen, model, title=title).name)
    return written


# --------------------------------------------------------------------------------------------------------------------
# Results


def _clean(x):
    """JSON-safe: NaN/inf become None, NumPy values Python ones."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _results(*, method: str, task: str, dataset: dict, iterations: int, seed: int, wall: float, steps_per_s, extra: dict) -> dict:
    from ..results import make_results

    budget = {"steps": int(iterations), "seeds": 0, "fit_seed": int(seed),
              "note": "one model fit (fit_seed): DSR metrics are in extra.metrics, extra.lyapunov; no policy seeds or scores"}
    return _clean(make_results(method=method, task=task, dataset=dataset, budget=budget, seed_scores=[], wall_time_s=wall,
                               steps_per_s=steps_per_s, extra=extra))


def _method_name(cfg: DSRFit) -> str:
    name = _canonical_model(cfg.model)
    if name in PLRNN_MODELS:
        training = cfg.training or ("stf" if name == "alrnn" else "agtf")
        return f"{name}+{training}"
    return name


def _summary_line(record: dict) -> str:
    if record["status"] != "ok":
        return f"FAILED ({record['status']}, {record['failure']['stage']}): {record['failure']['reason']}"
    m, lyap = record["metrics"], record["lyapunov"]
    line = f"D_stsp {m['D_stsp']:.3f}  D_H {m['D_H']:.3f}  PE({record['protocol']['pe_n']}) {m['PE']:.3g}"
    if lyap.get("model_per_time") is not None:
        line += f"  lambda_max {lyap['model_per_time']:.3f}"
        if lyap.get("true_per_time") is not None:
            line += f" (true {lyap['true_per_time']:.3f}, rel. error {lyap['rel_error']:.1%})"
    return line


def run_fit(cfg: DSRFit, *, log: Callable[[str], None] = print) -> Path:
    """Fit, free-run and measure one model; write the run folder ``cfg.out`` and return it (see the module docstring).

    A run whose training or free run diverges is still written, with ``extra.status = "diverged"``."""
    from ..results import RunFolder
    from .fit import TrainingDivergedError

    if not isinstance(cfg, DSRFit):
        raise ConfigError(f"run_fit: cfg must be a DSRFit, got {type(cfg).__name__}.")
    start = time.perf_counter()
    data = load_dsr_data(cfg)
    x_test = data.test.trajectory(0)
    run = RunFolder.open(cfg.out, dataclasses.asdict(cfg) | {"out": str(cfg.out)}, force=cfg.force)
    name = _canonical_model(cfg.model)
    log(f"dsr fit: {name} on {data.record['source']} (train {tuple(data.train.values.shape)}, test {tuple(data.test.values.shape)}, "
        f"dt {data.train.dt:g}), seed {cfg.seed}")
    fitted, fit_failure = None, None
    try:
        fitted = fit_model(cfg, data.train, key=jax.random.key(cfg.seed))
    except TrainingDivergedError as e:
        fit_failure = str(e)
    method = _method_name(cfg)
    extra: dict[str, Any] = {"data": data.record | {"standardization": None if data.stats is None else
                                                    {"mean": data.stats[0], "std": data.stats[1]}}}
    if fitted is None:
        record = {"status": "diverged", "failure": {"stage": "training", "reason": fit_failure},
                  "metrics": {"D_stsp": None, "D_H": None, "PE": None}, "lyapunov": _lyapunov_record(None, data.system, data.test.dt, cfg.lyapunov_steps)}
        extra |= record | {"fit": {"iterations": cfg.iterations}, "params": None, "model": None, "figures": []}
        fit_wall, rate = time.perf_counter() - start, None
    else:
        save_model(run.file("model"), fitted.model, fitted.fit_config)
        eval_start = time.perf_counter()
        record, x_gen, z_gen = evaluate_model(fitted.model, x_test, data.test.dt, system=data.system,
                                              lyapunov_steps=cfg.lyapunov_steps, pe_steps=cfg.pe_steps)
        eval_wall = time.perf_counter() - eval_start
        figures = []
        if cfg.figures:
            title = f"{method} on {data.task} (seed {cfg.seed}, {fitted.info['iterations']} it.)"
            figures = _figures(run.path, record, x_test, x_gen, z_gen, fitted.model, data.test.dt, data.test.names, title)
            if fitted.losses is not None and len(fitted.losses):
                figures.append(plot_loss(run.file("loss.png"), fitted.losses, title=title).name)
        extra |= record | {"fit": fitted.info | {"config": fitted.fit_config.to_dict()}, "params": parameter_counts(fitted.model),
                           "model": fitted.model.header(), "eval_wall_s": eval_wall, "figures": figures}
        fit_wall, rate = fitted.info["wall_s"], fitted.info.get("iterations_per_s")
    extra["fit_wall_s"] = fit_wall
    dataset = {"name": data.record["source"], "hash": data.record["train_hash"], "transitions": data.train.length * data.train.n_trajectories,
               "test_hash": data.record["test_hash"], "test_transitions": data.test.length * data.test.n_trajectories}
    results = _results(method=method, task=data.task, dataset=dataset,
                       iterations=cfg.iterations if name not in ("sindy", "esn") else 0, seed=cfg.seed,
                       wall=time.perf_counter() - start, steps_per_s=rate, extra=extra)
    run.write_results(results)
    log(f"dsr fit: {_summary_line(extra)}; run folder {run.path}")
    return run.path


def run_eval(cfg: DSREval, *, log: Callable[[str], None] = print) -> Path:
    """Measure the model of a ``dsr fit`` run on its test series or on ``cfg.data``; write ``cfg.out`` (default
    ``DIR/eval``) with ``results.json`` and figures, and return it."""
    from ..results import RunFolder

    if not isinstance(cfg, DSREval):
        raise ConfigError(f"run_eval: cfg must be a DSREval, got {type(cfg).__name__}.")
    start = time.perf_counter()
    folder = Path(cfg.run)
    config_path, results_path = folder / "config.json", folder / "results.json"
    if not (config_path.is_file() and results_path.is_file()):
        raise DataError(str(folder), "is not a finished `dsr fit` run (config.json or results.json missing).",
                        "pass the --out folder of a completed `dynlearn dsr fit`.")
    try:
        fit_cfg = DSRFit(**{k: v for k, v in json.loads(config_path.read_text()).items() if k != "out"} | {"out": folder})
        fit_results = json.loads(results_path.read_text())
    except (TypeError, json.JSONDecodeError, DynlearnError) as e:
        raise DataError(str(config_path), f"cannot be read as a `dsr fit` config ({e}).", "pass a run folder of `dynlearn dsr fit`.") from None
    if not (folder / "model" / "config.json").is_file():
        reason = (fit_results.get("extra", {}).get("failure") or {}).get("reason", "no model was saved")
        raise DataError(str(folder), f"has no model to evaluate ({reason}).", "evaluate a run whose training finished.")
    model = load_model(folder / "model")
    fit_record = fit_results["extra"]["data"]
    stand = fit_record.get("standardization")
    stats = None if stand is None else (stand["mean"], stand["std"])
    if cfg.data is None:
        if any(v is not None for v in (cfg.length, cfg.dt)):
            raise ConfigError("dsr eval: --length and --dt apply to a new DATA; without DATA the run's own test series is used.")
        data = load_dsr_data(fit_cfg)
        data = dataclasses.replace(data, record=data.record | {"note": "the run's own test series"})
    else:
        data = load_eval_data(cfg.data, fit_record, stats, length=cfg.length, dt=cfg.dt, data_seed=cfg.data_seed)
    if data.test.dim != model.obs_dim:
        raise DataError(str(cfg.data or fit_cfg.data), f"has {data.test.dim} channels; the model observes {model.obs_dim}.",
                        "evaluate on data of the system the model was fitted to.")
    out = cfg.out or folder / "eval"
    config = dataclasses.asdict(cfg) | {"run": str(cfg.run), "out": str(out)}
    evaluation = RunFolder.open(out, config, force=cfg.force)
    lyap_steps = cfg.lyapunov_steps or fit_cfg.lyapunov_steps
    pe_steps = cfg.pe_steps or fit_cfg.pe_steps
    x_test = data.test.trajectory(0)
    record, x_gen, z_gen = evaluate_model(model, x_test, data.test.dt, system=data.system, lyapunov_steps=lyap_steps, pe_steps=pe_steps)
    method = fit_results.get("method", _canonical_model(fit_cfg.model))
    figures = []
    if cfg.figures:
        title = f"{method} (run {folder.name}) on {data.record['source']}"
        figures = _figures(evaluation.path, record, x_test, x_gen, z_gen, model, data.test.dt, data.test.names, title)
    extra = record | {"data": data.record, "params": parameter_counts(model), "model": model.header(), "figures": figures,
                      "run": str(folder), "fit_task": fit_results.get("task")}
    dataset = {"name": data.record["source"], "hash": data.record["test_hash"], "transitions": data.test.length * data.test.n_trajectories,
               "role": "test data", "fit_train_hash": fit_record.get("train_hash")}
    results = _results(method=method, task=data.task, dataset=dataset, iterations=0, seed=fit_cfg.seed,
                       wall=time.perf_counter() - start, steps_per_s=None, extra=extra)
    evaluation.write_results(results)
    log(f"dsr eval: {_summary_line(extra)}; output {evaluation.path}")
    return evaluation.path
