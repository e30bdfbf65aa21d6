"""The compiled epoch of an ensemble fit (:func:`dynlearn.models.fit`): the rows on device, the loss, the holdout error,
and one epoch of Adam steps for every member with its best-snapshot update.

Host side: :func:`_arrays` turns transitions into inputs ``(obs, act)``, targets ``(delta obs, reward)``, their mask and
the terminal flags; :func:`_rows` puts them on device, normalised. Device side: :func:`_epoch` runs
``ceil(N / batch_size)`` steps in one ``lax.scan`` (each member on its own reshuffled bootstrap rows; the last batch's
missing rows masked), then measures every member on the holdout and keeps each member's best snapshot.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._types import Array, Float, Key
from ..agents.base import apply_optimizer
from ..data.normalize import Normalizer
from ..data.transitions import Transitions
from .ensemble import EnsembleConfig, EnsembleMLP
from .targets import target_mask, targets

# ----------------------------------------------------------------------------------------------
# Data preparation (host)


class _Rows(eqx.Module):
    """Training or holdout rows on device, model-ready."""

    x: Float[Array, "n i"]      # (obs, act), standardised
    y: Float[Array, "n t"]      # (delta obs, reward), normalised if the config says so; 0 where masked
    y_raw: Float[Array, "n t"]  # the same in data units
    mask: Float[Array, "n t"]   # 1 where the target exists (delta obs needs a successor)
    terminal: Float[Array, " n"]


def _arrays(t: Transitions) -> tuple[np.ndarray, ...]:
    """``x = (obs, act)``, ``y = (next_obs - obs, rew)`` (0 where masked), ``mask [N, T]``, ``terminal``."""
    x = np.concatenate([np.asarray(t.obs, np.float32), np.asarray(t.act, np.float32)], axis=1)
    return x, targets(t), target_mask(t), np.asarray(t.terminal, np.float32)


def _rows(arrays, input_norm: Normalizer, target_norm: Normalizer) -> _Rows:
    x, y, mask, term = (jnp.asarray(a) for a in arrays)
    yn = jnp.where(mask, target_norm(y), 0.0)
    return _Rows(x=input_norm(x), y=yn, y_raw=y, mask=mask.astype(jnp.float32), terminal=term)


def _target_variance(arrays) -> np.ndarray:
    """Variance of every target dim over the rows where it exists, floored at 1e-6 of the largest so that a (nearly)
    constant target, such as a reward that never changes, cannot turn tiny errors into the whole selection metric."""
    _, y, mask, _ = arrays
    y, mask = np.asarray(y, np.float64), np.asarray(mask, bool)
    count = np.maximum(mask.sum(axis=0), 1)
    mean = np.where(mask, y, 0.0).sum(axis=0) / count
    var = np.where(mask, (y - mean) ** 2, 0.0).sum(axis=0) / count
    return np.maximum(var, 1e-6 * float(var.max()) + 1e-12)


# ----------------------------------------------------------------------------------------------
# The compiled epoch


@functools.lru_cache(maxsize=8)
def _adam(lr: float) -> optax.GradientTransformation:
    # Cached so repeated fits with the same settings reuse the compiled epoch.
    return optax.adam(lr)


def _loss(net: EnsembleMLP, x, y, mask, terminal, cfg: EnsembleConfig):
    """Kit's loss: per member mean over rows and dims of ``(mu - y)^2 exp(-logvar) + logvar``, summed over
    members, + weight decay + bound regulariser (+ termination BCE). ``mask [E, B, T]``."""
    mean, logvar, logit = net(x)
    nll = jnp.square(mean - y) * jnp.exp(-logvar) + logvar
    count = jnp.maximum(jnp.sum(mask, axis=(1, 2)), 1.0)
    per_member = jnp.sum(jnp.where(mask > 0, nll, 0.0), axis=(1, 2)) / count
    loss = jnp.sum(per_member) + net.decay(cfg.weight_decay)
    info = {"loss/nll": jnp.mean(per_member)}
    if cfg.learn_logvar_bounds:
        loss = loss + cfg.logvar_bound_coef * (jnp.sum(net.max_logvar) - jnp.sum(net.min_logvar))
    if logit is not None:
        rows = mask[..., -1]  # the reward entry: 1 on every real row, 0 on batch padding
        bce = optax.sigmoid_binary_cross_entropy(logit, terminal)
        per_member_bce = jnp.sum(rows * bce, axis=1) / jnp.maximum(jnp.sum(rows, axis=1), 1.0)
        loss = loss + cfg.termination_coef * jnp.sum(per_member_bce)
        info["loss/terminal"] = jnp.mean(per_member_bce)
    return loss, info


def _holdout_mse(net: EnsembleMLP, rows: _Rows, target_norm: Normalizer, chunk: int) -> Float[Array, "members t"]:
    """Per member and target dim: MSE of the mean in data units over the holdout rows (masked)."""
    n = rows.x.shape[0]
    chunks = -(-n // chunk)
    chunk = -(-n // chunks)  # balanced chunks: at most chunks - 1 padding rows
    pad = chunks * chunk - n
    padded = lambda a: jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), a.dtype)]).reshape(chunks, chunk, *a.shape[1:])  # noqa: E731
    xs, ys, ms = padded(rows.x), padded(rows.y_raw), padded(rows.mask)

    def one(args):
        x, y, m = args
        mean = target_norm.inverse(net(x)[0])
        return jnp.sum(jnp.where(m > 0, jnp.square(mean - y), 0.0), axis=1)  # [E, T]

    sums = jnp.sum(jax.lax.map(one, (xs, ys, ms)), axis=0)
    return sums / jnp.maximum(jnp.sum(rows.mask, axis=0), 1.0)


@eqx.filter_jit
def _epoch(net: EnsembleMLP, opt_state, best: EnsembleMLP, best_mse, train: _Rows, holdout: _Rows, boot, target_norm: Normalizer,
           key: Key, dim_weight: Float[Array, " t"], *, cfg: EnsembleConfig, lr: float, batch_size: int, min_improvement: float,
           chunk: int):
    """One epoch of Adam steps for every member, then the holdout error (per-dim MSE weighted by ``dim_weight``, averaged
    over dims) and the best-snapshot update."""
    opt = _adam(lr)
    e, n = boot.shape
    b = batch_size
    steps = -(-n // b)
    perm = jax.vmap(jax.random.permutation)(jax.random.split(key, e), boot)  # each member's rows, reshuffled
    pad = steps * b - n
    perm = jnp.concatenate([perm, perm[:, :pad]], axis=1).reshape(e, steps, b).transpose(1, 0, 2)
    real = (jnp.arange(steps * b) < n).reshape(steps, 1, b, 1).astype(jnp.float32)

    def body(carry, inputs):
        net, opt_state = carry
        idx, row_ok = inputs
        x, y, m, t = train.x[idx], train.y[idx], train.mask[idx] * row_ok, train.terminal[idx]
        (loss, info), grads = jax.value_and_grad(_loss, has_aux=True)(net, x, y, m, t, cfg)
        net, opt_state = apply_optimizer(opt, net, grads, opt_state)
        return (net, opt_state), {"loss/total": loss, **info}

    (net, opt_state), infos = jax.lax.scan(body, (net, opt_state), (perm, real))
    mse = jnp.mean(_holdout_mse(net, holdout, target_norm, chunk) * dim_weight, axis=1)  # [E]
    improved = (best_mse - mse) / best_mse > min_improvement
    best_mse = jnp.where(improved, mse, best_mse)

    stacked = (best.weights, best.biases)
    best_w, best_b = jax.tree_util.tree_map(lambda b_, c_: jnp.where(improved.reshape(e, *(1,) * (b_.ndim - 1)), c_, b_),
                                            stacked, (net.weights, net.biases))
    best = dataclasses.replace(net, weights=best_w, biases=best_b)  # bounds: the current values (as Kit)
    return net, opt_state, best, best_mse, mse, improved, jax.tree_util.tree_map(jnp.mean, infos)

