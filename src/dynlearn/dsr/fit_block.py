"""The compiled block of a PLRNN fit (:func:`dynlearn.dsr.fit_dsr`): ``block`` iterations of batch sampling, (aGTF) alpha
estimation, the forced loss and a RAdam step, in one ``lax.scan`` on device.

Only what shapes the program is static (batch and sequence sizes, block length, the model's structure); the forcing
mode, tau, learning rates, iteration count, penalties, noise and clipping are traced scalars (:class:`_Hyper`), so runs
that differ only in those (a sweep, or GTF vs aGTF vs sparse TF) reuse one compiled block.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._types import Array, Bool, Float, Int
from .base import AbstractLatentModel
from .fit_config import FitDSRConfig
from .teacher_forcing import anneal_alpha, estimate_alpha, forced_mse


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
    """The optimiser :func:`dynlearn.dsr.fit_dsr` uses for ``cfg``: per-array clipping, RAdam, exponential decay ``lr -> lr_end``."""
    return _optimizer(_Hyper.of(cfg))


def lr_schedule(cfg: FitDSRConfig) -> optax.Schedule:
    """The learning rate :func:`dynlearn.dsr.fit_dsr` uses at each step (0-based count of updates done) for ``cfg``:
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
