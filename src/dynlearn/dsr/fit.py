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
  of one 50-batch epoch; ours is smooth (:func:`~.fit_block.lr_schedule`). Gradient
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

This module is the host loop (:func:`fit_dsr`) and the model selection; the config is in :mod:`.fit_config`, the report
in :mod:`.fit_report`, the compiled block and its learning-rate schedule in :mod:`.fit_block` and the training windows
in :mod:`.sequences`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import ArrayLike, Key
from ..checkpoint import arrays_digest
from ..errors import ConfigError
from ..metrics.dsr import is_diverged, state_space_divergence
from ..progress import ProgressLine
from ..training import Checkpoint, Schedule, WallClock, fingerprint, key_data, run
from .base import AbstractLatentModel
from .fit_block import _Hyper, _optimizer, _train_block
from .fit_config import FitDSRConfig
from .fit_report import FitDSRReport
from .plrnn import build_model
from .sequences import TrainingDivergedError, prepare_sequences



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
