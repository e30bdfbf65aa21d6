"""One-step model errors: pure array functions (NumPy or JAX arrays in, JAX arrays out).

Targets are whatever the model predicts, in data units (for control models ``(next_obs - obs, reward)``).
``mask`` selects the rows that count, ``[N]`` (a row without a successor observation has no delta
target) or ``[N, D]`` per entry; all rows count when it is None.
"""

from __future__ import annotations

import jax.numpy as jnp

from .._types import Array, ArrayLike, Bool, Float


def _mask(mask, shape) -> Float[Array, "n d"]:
    if mask is None:
        return jnp.ones(shape, jnp.float32)
    mask = jnp.asarray(mask)
    if mask.ndim == 1:
        mask = mask[:, None]
    return jnp.broadcast_to(mask, shape).astype(jnp.float32)


def masked_mean_rows(x: Float[ArrayLike, "... n d"], mask: Bool[ArrayLike, " n"] | Bool[ArrayLike, "n d"] | None = None) -> Float[Array, "... d"]:
    """Mean over the row axis (second to last) of the entries where ``mask`` holds (0 where none do)."""
    x = jnp.asarray(x, jnp.float32)
    m = _mask(mask, x.shape[-2:])
    return jnp.sum(x * m, axis=-2) / jnp.maximum(jnp.sum(m, axis=0), 1.0)


def member_mse(mean: Float[ArrayLike, "members n d"], target: Float[ArrayLike, "n d"],
               mask: Bool[ArrayLike, " n"] | Bool[ArrayLike, "n d"] | None = None) -> Float[Array, "members d"]:
    """Per member and per dimension: mean squared error of each member's mean prediction."""
    err = jnp.square(jnp.asarray(mean, jnp.float32) - jnp.asarray(target, jnp.float32))
    return masked_mean_rows(jnp.where(_mask(mask, err.shape[-2:]) > 0, err, 0.0), mask)


def prediction_mse(mean: Float[ArrayLike, "n d"], target: Float[ArrayLike, "n d"],
                   mask: Bool[ArrayLike, " n"] | Bool[ArrayLike, "n d"] | None = None) -> Float[Array, " d"]:
    """Per dimension: mean squared error of one predictor (e.g. the mean over elites)."""
    return member_mse(jnp.asarray(mean)[None], target, mask)[0]


def mean_predictor_mse(target: Float[ArrayLike, "n d"], mask: Bool[ArrayLike, " n"] | Bool[ArrayLike, "n d"] | None = None, *,
                       reference: Float[ArrayLike, " d"] | None = None) -> Float[Array, " d"]:
    """Per dimension: MSE of the constant predictor ``reference`` (e.g. the training split's mean delta).

    Without ``reference`` the constant is the evaluated rows' own mean, so the result is their
    variance: the best any constant can do, a stricter baseline than the training mean.
    """
    target = jnp.asarray(target, jnp.float32)
    if reference is None:
        reference = masked_mean_rows(target, mask)
    return prediction_mse(jnp.broadcast_to(jnp.asarray(reference, jnp.float32), target.shape), target, mask)


def skill(mse: Float[ArrayLike, "... d"], baseline: Float[ArrayLike, " d"]) -> Float[Array, "... d"]:
    """``1 - mse / baseline`` per dimension: 1 is perfect, 0 is no better than the baseline, < 0 worse."""
    return 1.0 - jnp.asarray(mse, jnp.float32) / jnp.maximum(jnp.asarray(baseline, jnp.float32), 1e-30)
