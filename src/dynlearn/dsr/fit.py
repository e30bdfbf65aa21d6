"""Fit a shPLRNN or AL-RNN to time series with (adaptive) generalized or sparse teacher forcing.

The training procedure of the reference code, compiled: DurstewitzLab/GTF-shPLRNN (Hess et al., ICML 2023,
arXiv 2306.04406; ``src/tf_training/training.jl``, ``settings/defaults.json``) and DurstewitzLab/ALRNN-DSR
(Brenner et al., NeurIPS 2024, arXiv 2410.14240; ``src/training/training_rnn.jl``).

- **Batches**: ``batch_size`` (16) subsequences of ``seq_len + 1`` (201) consecutive points, drawn uniformly, with
  replacement, from all windows of the training trajectories (several trajectories: windows never cross one's end).
  Optional Gaussian noise on the batch (the AL-RNN's ``gaussian_noise_level`` 0.05), forcing signals included.
- **Loss**: MSE of the forced model's predictions ``observe(z_t)`` against ``x_t`` (:mod:`.teacher_forcing`), plus
  ``regularization * model.penalty()`` (shPLRNN: the GTF code's L2 ``|1 - A|^2 + |W1|^2 + ...``, lambda = 1e-5 by
  default) and ``obs_regularization * |L|^2``.
- **Optimiser**: RAdam (``optax.radam``), learning rate decaying exponentially from ``lr`` (1e-3) to ``lr_end``
  (1e-6) over ``decay_iterations`` (default: ``iterations``, the whole decay in the run; set it to the reference's
  250,000 / 100,000 to train for the first ``iterations`` of the reference schedule). The reference decays in steps
  of one 50-batch epoch; ours is smooth (:func:`lr_schedule`). Gradient
  clipping as the reference's Flux ``ClipNorm``: each parameter array's gradient is rescaled to norm at most
  ``grad_clip`` (off by default, as in both repositories).
- **Forcing**: ``"adaptive"`` (aGTF, the GTF paper's default: alpha re-estimated every ``alpha_interval`` = 5 batches
  from the Jacobian-product growth, annealed with ``alpha_decay`` = 0.999, starting at ``alpha`` = 1), ``"gtf"``
  (constant ``alpha``) or ``"sparse"`` (readout units replaced by the data every ``tau`` = 16 steps; the AL-RNN's).
- **Compiled blocks**: ``block`` iterations per compiled call (``lax.scan``; batch sampling, alpha estimation and
  the update all on device); the host only reads the block's losses, updates the progress bar and checks for
  divergence. A non-finite loss or parameter raises :class:`TrainingDivergedError`. One program is compiled per
  model structure and batch shape: the forcing mode, tau, learning rates, iteration count, penalties, noise and
  clipping are traced values, so a sweep over them does not recompile.

The reference trains 5000 epochs x 50 batches = 250,000 iterations (GTF) or 2000 x 50 = 100,000 (AL-RNN).
- **Which model is returned**: the final one (the GTF code evaluates its latest checkpoint), or with
  ``select_every > 0`` the best by D_stsp *on the training series*, as the AL-RNN repository's Python training
  routine does (``train_sh(..., use_best_model=True)``: every 20 epochs = 1,000 iterations, a 10,000-step free run
  from the first training point scored against the training data). The test series is never looked at, so the
  selection is part of training, not a peek at the evaluation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._types import Array, ArrayLike, Bool, Float, Int, Key
from ..checkpoint import arrays_digest
from ..errors import ConfigError, DataError, DynlearnError
from ..progress import ProgressLine
from ..training import Checkpoint, Schedule, WallClock, fingerprint, key_data, run
from ..metrics.dsr import is_diverged, state_space_divergence
from .base import AbstractLatentModel
from .plrnn import MODEL_KINDS, build_model
from .teacher_forcing import FORCING_MODES, anneal_alpha, estimate_alpha, forced_mse


class TrainingDivergedError(DynlearnError, FloatingPointError):
    """Training produced a non-finite loss or parameter (exploding gradients)."""


@dataclasses.dataclass(frozen=True)
class FitDSRConfig:
    """How :func:`fit_dsr` builds and trains a model; defaults are the GTF paper's (clipped shPLRNN + aGTF).

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


@dataclasses.dataclass(frozen=True)
class FitDSRReport:
    """What :func:`fit_dsr` did."""

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


# ----------------------------------------------------------------------------------------------
# Data (host)


def prepare_sequences(x_train: ArrayLike | Sequence[ArrayLike], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(data [sum T_i, N] float32, starts [n_windows] int32)``: the trajectories end to end and every start index
    whose window of ``seq_len + 1`` points stays inside one trajectory."""
    trajectories = list(x_train) if isinstance(x_train, (list, tuple)) else [x_train]
    if not trajectories:
        raise DataError("x_train", "is an empty list.", "pass one array [T, N] or a list of them.")
    arrays, starts, offset, dim = [], [], 0, None
    for i, x in enumerate(trajectories):
        source = "x_train" if len(trajectories) == 1 else f"x_train[{i}]"
        try:
            a = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(source, f"is not a numeric array ({e}).", "pass a float array [T, N].") from None
        if a.ndim != 2 or a.shape[1] < 1:
            raise DataError(source, f"has shape {a.shape}; expected [T, N] (time, observed dimensions).",
                            "reshape it (a 1-D series x becomes x[:, None]).")
        if dim is not None and a.shape[1] != dim:
            raise DataError(source, f"has {a.shape[1]} dimensions, the first trajectory {dim}.", "pass trajectories of one system.")
        dim = a.shape[1]
        if not np.isfinite(a).all():
            bad = int(np.argwhere(~np.isfinite(a))[0, 0])
            raise DataError(source, f"holds non-finite values (first at row {bad}).", "remove or interpolate them.")
        if len(a) < seq_len + 1:
            raise DataError(source, f"has {len(a)} points; a training window needs seq_len + 1 = {seq_len + 1}.",
                            "pass longer trajectories or a smaller FitDSRConfig.seq_len.")
        arrays.append(a)
        starts.append(offset + np.arange(len(a) - seq_len, dtype=np.int64))
        offset += len(a)
    if offset >= 2**31:
        raise DataError("x_train", f"holds {offset} points; more than 2^31 is not supported.", "subsample the data.")
    return np.concatenate(arrays), np.concatenate(starts).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# The compiled block
#
# Only what shapes the program is static (batch and sequence sizes, block length, the model's structure); the forcing
# mode, tau, learning rates, iteration count, penalties, noise and clipping are traced scalars, so runs that differ
# only in those (a sweep, or GTF vs aGTF vs sparse TF) reuse one compiled block.


class _Hyper(eqx.Module):
    """The numeric hyperparameters and the forcing mode as traced scalars (not compiled in)."""

    lr: Float[Array, ""]
    lr_end: Float[Array, ""]
    iterations: Float[Array, ""]
    decay_iterations: Float[Array, ""]
    adaptive: Bool[Array, ""]
    sparse: Bool[Array, ""]
    tau: Int[Array, ""]
    alpha_interval: Int[Array, ""]
    alpha_decay: Float[Array, ""]
    grad_clip: Float[Array, ""]
    regularization: Float[Array, ""]
    obs_regularization: Float[Array, ""]
    noise: Float[Array, ""]

    @classmethod
    def of(cls, cfg: FitDSRConfig) -> _Hyper:
        f = lambda v: jnp.asarray(v, jnp.float32)
        i = lambda v: jnp.asarray(v, jnp.int32)
        decay = cfg.iterations if cfg.decay_iterations is None else cfg.decay_iterations
        return cls(f(cfg.lr), f(cfg.lr_end), f(cfg.iterations), f(decay), jnp.asarray(cfg.forcing == "adaptive"),
                   jnp.asarray(cfg.forcing == "sparse"), i(cfg.tau), i(cfg.alpha_interval), f(cfg.alpha_decay),
                   f(cfg.grad_clip), f(cfg.regularization), f(cfg.obs_regularization), f(cfg.noise))


def _schedule(hyper: _Hyper) -> optax.Schedule:
    """``lr (lr_end / lr)^(step / decay_iterations)``, never below ``lr_end``."""

    def schedule(count):
        frac = count.astype(jnp.float32) / hyper.decay_iterations
        return jnp.maximum(hyper.lr * (hyper.lr_end / hyper.lr) ** frac, hyper.lr_end)

    return schedule


def _optimizer(hyper: _Hyper) -> optax.GradientTransformation:
    """Per-array gradient clipping (Flux's ``ClipNorm``: rescale an array whose L2 norm exceeds ``grad_clip``; off at
    0), then RAdam with the learning rate of :func:`_schedule`."""

    def clip(updates, params=None):
        del params

        def one(g):
            scale = jnp.minimum(1.0, hyper.grad_clip / (jnp.linalg.norm(g) + 1e-12))
            return g * jnp.where(hyper.grad_clip > 0, scale, 1.0)

        return jax.tree_util.tree_map(one, updates)

    return optax.chain(optax.stateless(clip), optax.radam(_schedule(hyper)))


def make_optimizer(cfg: FitDSRConfig) -> optax.GradientTransformation:
    """The optimiser :func:`fit_dsr` uses for ``cfg``: per-array clipping, RAdam, exponential decay ``lr -> lr_end``."""
    return _optimizer(_Hyper.of(cfg))


def lr_schedule(cfg: FitDSRConfig) -> optax.Schedule:
    """The learning rate :func:`fit_dsr` uses at each step (0-based count of updates done) for ``cfg``:
    ``lr (lr_end / lr)^(step / decay_iterations)``, never below ``lr_end`` (``decay_iterations`` None: ``iterations``)."""
    return _schedule(_Hyper.of(cfg))


def _loss(model: AbstractLatentModel, x, alphas, hyper: _Hyper):
    mse = forced_mse(model, x, alphas)
    total = mse + hyper.regularization * model.penalty() + hyper.obs_regularization * model.observation_penalty()
    return total, mse


def _apply(opt, model, grads, opt_state):
    # optax mixes Python floats with its int32 step count, which strict dtype promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = opt.update(grads, opt_state, model)
    return eqx.apply_updates(model, updates), opt_state


def _train_step(model, opt_state, alpha, x, it, hyper: _Hyper, opt, *, seq_len: int):
    """One iteration on a batch ``x``: (aGTF: alpha update), forced loss, gradient, RAdam step."""
    alpha = jax.lax.cond(hyper.adaptive & ((it + 1) % hyper.alpha_interval == 0),
                         lambda: anneal_alpha(alpha, estimate_alpha(model, x)[0], hyper.alpha_decay), lambda: alpha)
    sparse = (jnp.arange(1, seq_len + 1) % hyper.tau == 0).astype(jnp.float32)  # forcing_schedule("sparse", ...)
    alphas = jnp.where(hyper.sparse, sparse, jnp.full((seq_len,), alpha, jnp.float32))
    (_, mse), grads = eqx.filter_value_and_grad(_loss, has_aux=True)(model, x, alphas, hyper)
    model, opt_state = _apply(opt, model, grads, opt_state)
    return model, opt_state, alpha, mse


@eqx.filter_jit
def _train_block(model, opt_state, alpha, data, starts, it0, key, hyper: _Hyper, *, batch_size: int, seq_len: int,
                 length: int):
    opt = _optimizer(hyper)
    window = jnp.arange(seq_len + 1)

    def body(carry, it):
        model, opt_state, alpha = carry
        k_batch, k_noise = jax.random.split(jax.random.fold_in(key, it))
        rows = starts[jax.random.randint(k_batch, (batch_size,), 0, starts.shape[0])]
        x = data[rows[:, None] + window]  # [batch, seq_len + 1, N]
        x = x + hyper.noise * jax.random.normal(k_noise, x.shape, x.dtype)

        def update(_):
            return _train_step(model, opt_state, alpha, x, it, hyper, opt, seq_len=seq_len)

        def skip(_):  # padding past the last iteration in the last block
            return model, opt_state, alpha, jnp.zeros((), jnp.float32)

        model, opt_state, alpha, mse = jax.lax.cond(it.astype(jnp.float32) < hyper.iterations, update, skip, None)
        return (model, opt_state, alpha), (mse, alpha)

    (model, opt_state, alpha), (mse, alphas) = jax.lax.scan(body, (model, opt_state, alpha), it0 + jnp.arange(length))
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree_util.tree_leaves(model)]))
    return model, opt_state, alpha, mse, alphas, finite


# ----------------------------------------------------------------------------------------------
# Model selection by training-data D_stsp


@eqx.filter_jit
def _free_run(model: AbstractLatentModel, x0, steps: int):
    return model.generate(steps, x0=x0)


def training_dstsp(model: AbstractLatentModel, reference: np.ndarray, steps: int) -> float:
    """D_stsp of a ``steps``-long free run from ``reference[0]`` against ``reference`` (inf when the run diverges):
    the score of :class:`FitDSRConfig`'s ``select_every``."""
    x_gen = np.asarray(_free_run(model, jnp.asarray(reference[0], jnp.float32), int(steps)))
    if is_diverged(x_gen, reference):
        return math.inf
    score = state_space_divergence(reference, x_gen, on_diverged="nan")
    return score if np.isfinite(score) else math.inf


# ----------------------------------------------------------------------------------------------
# fit_dsr


def fit_dsr(x_train: ArrayLike | Sequence[ArrayLike], cfg: FitDSRConfig = FitDSRConfig(), *, key: Key | None = None,
            progress: bool = True, model: AbstractLatentModel | None = None, checkpoint: str | os.PathLike | None = None,
            checkpoint_every_s: float = 60.0, metrics: str | os.PathLike | None = None) -> tuple[AbstractLatentModel, FitDSRReport]:
    """Train a latent model on ``x_train`` (one array ``[T, N]`` or a list of trajectories, standardised by the
    caller) with teacher forcing; returns ``(model, report)``.

    ``key``: initialisation and batches (default ``jax.random.key(cfg.seed)``). ``model``: continue training this
    model instead of building one from ``cfg`` (its kind and sizes then win over ``cfg``'s).
    ``checkpoint``: a folder for the training state (model, optimiser, alpha, losses, selection), written atomically
    every ``checkpoint_every_s`` seconds of training and when SIGTERM / Ctrl-C asks to stop (then
    :class:`dynlearn.interrupt.Stopped` is raised); a fit called again with the same folder, data, ``cfg`` and ``key``
    continues from it and ends exactly as an uninterrupted fit (every batch derives from ``key`` and the iteration); the
    blocks run in :func:`dynlearn.training.run`. ``metrics``: a JSONL file that gets one row per block.
    Raises :class:`TrainingDivergedError` when the loss or a parameter becomes non-finite.
    """
    clock, progress_bar = WallClock(), progress
    if not isinstance(cfg, FitDSRConfig):
        raise ConfigError(f"fit_dsr: cfg must be a FitDSRConfig, got {type(cfg).__name__}.")
    data, starts = prepare_sequences(x_train, cfg.seq_len)
    n = data.shape[1]
    key = jax.random.key(cfg.seed) if key is None else key
    init_key, train_key = jax.random.split(key)
    if model is None:
        m = n if cfg.latent_dim is None else cfg.latent_dim
        if m < n:
            raise ConfigError(f"FitDSRConfig.latent_dim {m} is below the data dimension {n}; the identity readout needs "
                              f"latent_dim >= {n}.")
        model = build_model(cfg.model, n, m, hidden_dim=cfg.hidden_dim, pwl_units=cfg.pwl_units, key=init_key)
    elif not isinstance(model, AbstractLatentModel) or model.obs_dim != n:
        raise ConfigError(f"fit_dsr: model must be a latent model observing {n} dimensions, got "
                          f"{type(model).__name__} (obs_dim {getattr(model, 'obs_dim', None)}).")

    hyper = _Hyper.of(cfg)
    opt_state = _optimizer(hyper).init(model)
    alpha = jnp.asarray(cfg.alpha, jnp.float32)
    data_d, starts_d = jnp.asarray(data), jnp.asarray(starts)
    # every block has this length (the last one padded): one compiled program per structure; selection scores fall on
    # block ends
    length = math.gcd(cfg.block, cfg.select_every) if cfg.select_every else cfg.block
    n_blocks = -(-cfg.iterations // length)
    reference = np.asarray(x_train[0] if isinstance(x_train, (list, tuple)) else x_train, np.float32)

    # state: the model, optimiser, alpha, the best model so far (the model itself until one is selected) and every
    # iteration's loss and alpha; progress: the selection's scores, the best's, and each block's wall time
    empty = np.zeros(0, np.float32)
    state = (model, opt_state, alpha, model, empty, empty)
    progress = {"selection": [], "best": None, "block_s": []}
    store = None
    if checkpoint is not None:
        store = Checkpoint(checkpoint, fingerprint(cfg.to_dict(), key_data(key), arrays_digest(data), arrays_digest(model)),
                           owner="fit_dsr", other="a fit with another configuration, data, key or initial model")
        grown = lambda p: state[:4] + (np.zeros(p["step"], np.float32),) * 2  # noqa: E731 (the losses so far)
        loaded = store.load(grown)
        if loaded is not None:
            state, progress = loaded

    def train_block(state, progress):
        model, opt_state, alpha, best_model, losses, alphas = state
        it0 = progress["step"]
        t0 = time.perf_counter()
        model_next, opt_next, alpha_next, mse, alpha_hist, finite = _train_block(
            model, opt_state, alpha, data_d, starts_d, jnp.asarray(it0, jnp.int32), train_key, hyper,
            batch_size=cfg.batch_size, seq_len=cfg.seq_len, length=length)
        mse_h = np.asarray(mse)[: cfg.iterations - it0]  # the one host sync per block
        progress["block_s"].append(time.perf_counter() - t0)
        bad = ~np.isfinite(mse_h)
        if bad.any() or not bool(finite):
            first = it0 + int(np.argmax(bad)) if bad.any() else it0 + len(mse_h) - 1
            last_ok = float(mse_h[~bad][-1]) if (~bad).any() else (float(losses[-1]) if len(losses) else float("nan"))
            raise TrainingDivergedError(
                f"fit_dsr: training diverged at iteration {first} (non-finite loss or parameters; last finite loss "
                f"{last_ok:.4g}). Fix: standardise the data, lower lr (now {cfg.lr}), set grad_clip > 0, use "
                f"forcing='adaptive' or a smaller tau (sparse TF), or a clipped shPLRNN.")
        losses = np.concatenate([losses, mse_h])
        alphas = np.concatenate([alphas, np.asarray(alpha_hist, np.float32)[: cfg.iterations - it0]])
        model, opt_state, alpha = model_next, opt_next, alpha_next
        row = {"loss": float(mse_h.mean()), "iterations_per_s": len(mse_h) / progress["block_s"][-1]}
        if cfg.forcing != "sparse":
            row["alpha"] = float(alphas[-1])
        done = it0 + len(mse_h)
        if cfg.select_every and (done // cfg.select_every > it0 // cfg.select_every or done == cfg.iterations):
            # part of training (it picks the model returned), so here and not in an evaluation hook
            score = training_dstsp(model, reference, cfg.select_steps)
            progress["selection"].append([done, _finite(score)])
            if progress["best"] is None or score <= _inf(progress["best"]["score"]):  # ties (all inf) go to the later model
                progress["best"], best_model = {"score": _finite(score), "iteration": done}, model
            row["dstsp_train"] = _finite(score)
        return (model, opt_state, alpha, best_model, losses, alphas), row

    def describe(progress, row):
        status = f"  alpha {row['alpha']:.3f}" if "alpha" in row else ""
        if "dstsp_train" in row:
            best = progress["best"]
            status += f"  D_stsp(train) {_inf(row['dstsp_train']):.3g} (best {_inf(best['score']):.3g} at {best['iteration']})"
        return f"loss {row['loss']:.4g}{status}  {row['iterations_per_s']:.0f} it/s"

    state, progress, _ = run(train_block, state, progress, clock=clock, checkpoint=store, describe=describe, metrics=metrics,
                             schedule=Schedule(block=length, total=cfg.iterations, checkpoint_every_s=checkpoint_every_s),
                             line=ProgressLine(progress_bar, "fit_dsr", cfg.iterations, remaining=True))
    model, _, _, best_model, losses, alphas = state
    block_s = progress["block_s"]
    best = progress["best"]
    if best is not None:
        model = best_model
    rate = (cfg.iterations - min(length, cfg.iterations)) / sum(block_s[1:]) if n_blocks > 1 else cfg.iterations / sum(block_s)
    report = FitDSRReport(
        losses=np.asarray(losses, np.float32),
        alphas=np.asarray(alphas, np.float32) if cfg.forcing != "sparse" else np.zeros(0, np.float32),
        iterations=cfg.iterations, wall_s=clock.total(), first_block_s=block_s[0], iterations_per_s=rate, block_s=tuple(block_s),
        n_params=model.n_params, n_observation_params=getattr(model, "n_observation_params", 0), config=cfg,
        selection=tuple((it, _inf(sc)) for it, sc in progress["selection"]),
        selected_iteration=None if best is None else best["iteration"])
    return model, report


def _finite(x: float) -> float | None:
    """JSON has no inf: a diverged free run's score is stored as None."""
    return float(x) if math.isfinite(x) else None


def _inf(x: float | None) -> float:
    return math.inf if x is None else x
