"""Model errors, one step and open loop: pure array functions (NumPy or JAX arrays in, JAX arrays out).

Targets are whatever the model predicts, in data units (for control models ``(next_obs - obs, reward)``).
``mask`` selects the rows that count, ``[N]`` (a row without a successor observation has no delta
target) or ``[N, D]`` per entry; all rows count when it is None.

Open-loop k-step error (:func:`k_step_windows`, :func:`k_step_targets`, :func:`open_loop`,
:func:`k_step_error`): a model replays held-out episodes' recorded actions from their recorded observations
and is compared with the recorded observations after ``k = 1..H`` steps, per dimension, normalised by the
data's per-dimension variance. These take a model object and call its ``init_state``/``step`` methods.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, ArrayLike, Bool, Float


def _mask(mask, shape) -> Float[Array, "n d"]:
    if mask is None:
        return jnp.ones(shape, jnp.float32)
    mask = jnp.asarray(mask)
    if mask.ndim == 1:
        mask = mask[:, None]
    return jnp.broadcast_to(mask, shape).astype(jnp.float32)


def masked_mean_rows(x: Float[ArrayLike, "... n d"],
                     mask: Bool[ArrayLike, " n"] | Bool[ArrayLike, "n d"] | None = None) -> Float[Array, "... d"]:
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


# ----------------------------------------------------------------------------------------------
# Open-loop k-step error
#
# From a held-out episode's row s, the model replays the recorded actions a_s, ..., a_{s+H-1} on its own
# predictions (open loop: it never sees the true observations after obs_s) and its observation after k steps is
# compared with the recorded next_obs_{s+k-1}. Errors compound with k; a perfect model (the simulator itself,
# dynlearn.tasks.oracle) gives 0 at every k.


def normalized_mse(pred: Float[ArrayLike, "... n d"], target: Float[ArrayLike, "... n d"],
                   mask: Bool[ArrayLike, "... n"] | None, scale: Float[ArrayLike, " d"]) -> Float[Array, "... d"]:
    """Per dimension: mean squared error over the rows where ``mask`` holds, divided by ``scale`` (e.g. the data's
    per-dimension variance, so 1 is the error of predicting the data's mean). 0 where no row counts."""
    pred, target = jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32)
    m = jnp.ones(pred.shape[:-1], jnp.float32) if mask is None else jnp.asarray(mask).astype(jnp.float32)
    sq = jnp.where(m[..., None] > 0, jnp.square(pred - target), 0.0)
    mse = jnp.sum(sq, axis=-2) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)[..., None]
    return mse / jnp.maximum(jnp.asarray(scale, jnp.float32), 1e-12)


def k_step_windows(episode_starts: np.ndarray, n_rows: int, horizon: int, *, min_length: int = 1,
                   max_windows: int | None = None, seed: int = 0) -> np.ndarray:
    """Start rows of open-loop windows: every row with at least ``min_length`` rows left in its episode (a window
    may run past the episode's end: :func:`k_step_targets` masks those steps), or ``max_windows`` of them drawn
    at random without replacement (sorted). ``horizon`` caps ``min_length``."""
    starts = np.asarray(episode_starts, np.int64)
    ends = np.append(starts[1:], n_rows)
    left = np.repeat(ends, ends - starts) - np.arange(n_rows)  # rows left in the episode, this one included
    rows = np.flatnonzero(left >= min(max(min_length, 1), horizon))
    if max_windows is not None and len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_windows, replace=False))
    return rows


def k_step_targets(obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray, next_obs_valid: np.ndarray,
                   episode_starts: np.ndarray, windows: np.ndarray, horizon: int):
    """Host arrays of the windows starting at rows ``windows``: ``(obs0 [W, obs], actions [H, W, act],
    targets [H, W, obs], mask [H, W])``. ``mask[k - 1, w]``: the episode has a recorded observation k steps
    after the window's start (the row exists in the same episode, and it and every earlier row of the window
    have a successor); actions and targets of masked steps are filled with the last valid ones."""
    n = len(obs)
    starts = np.asarray(episode_starts, np.int64)
    ends = np.append(starts[1:], n)
    episode_end = np.repeat(ends, ends - starts)  # one past the last row of each row's episode
    w = np.asarray(windows, np.int64)
    steps = w[None, :] + np.arange(horizon)[:, None]  # [H, W] row of step k-1
    inside = steps < episode_end[w][None, :]
    rows = np.minimum(steps, episode_end[w][None, :] - 1)
    valid = np.asarray(next_obs_valid, bool)[rows] & inside
    mask = np.cumprod(valid, axis=0).astype(bool)
    return (np.asarray(obs, np.float32)[w], np.asarray(act, np.float32)[rows], np.asarray(next_obs, np.float32)[rows], mask)


def open_loop(model, obs0: Float[ArrayLike, "w obs"], actions: Float[ArrayLike, "h w act"], *, key, state=None,
              mode: str = "mean") -> Float[Array, "h w obs"]:
    """The model's observations after ``1..H`` steps of replaying ``actions`` from ``obs0`` (one compiled scan).

    ``mode="mean"``: each window keeps one member for its whole replay (``model.init_state``'s draw: a random
    elite per window for an ensemble) and follows that member's mean, no noise. ``mode="sample"``: the
    model's own sampling at every step (a random elite and its Gaussian noise, as MBPO/MOPO rollouts).
    ``state``: the model's state for the windows (the simulator state for an oracle); default
    ``model.init_state(obs0)``. Terminal predictions do not stop the replay (the data's mask does).
    """
    if mode not in ("mean", "sample"):
        raise ValueError(f"open_loop: mode must be 'mean' or 'sample', got {mode!r}")
    return _open_loop(model, jnp.asarray(obs0, jnp.float32), jnp.asarray(actions, jnp.float32), key, state, mode == "mean")


@eqx.filter_jit
def _open_loop(model, obs0, actions, key, state, deterministic: bool):
    init_key, scan_key = jax.random.split(key)
    if state is None:
        state = model.init_state(obs0, key=init_key)

    def body(carry, inputs):
        obs, state = carry
        act, k = inputs
        member = getattr(state, "member", None) if deterministic else None
        state, pred = model.step(state, obs, act, key=k, member=member, deterministic=deterministic)
        return (pred.next_obs.astype(jnp.float32), state), pred.next_obs.astype(jnp.float32)

    _, preds = jax.lax.scan(body, (obs0, state), (actions, jax.random.split(scan_key, actions.shape[0])))
    return preds


def k_step_error(pred: Float[ArrayLike, "h w obs"], targets: Float[ArrayLike, "h w obs"], mask: Bool[ArrayLike, "h w"],
                 scale: Float[ArrayLike, " obs"]) -> Float[Array, "h obs"]:
    """Normalised MSE per step ``k = 1..H`` (rows) and observation dimension: :func:`normalized_mse` over the
    windows whose episode reaches step k. With ``scale`` the data's per-dimension observation variance, 1 is
    the error of predicting the data's mean observation."""
    return normalized_mse(pred, targets, mask, scale)



def fit_linear(x: Float[ArrayLike, "n i"], y: Float[ArrayLike, "n t"], *, mask: Bool[ArrayLike, " n"] | None = None,
               ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linear baseline ``y ~ [(x - mu) / sd, 1] W``, fitted by ridge-stabilised least squares on the rows where
    ``mask`` holds (float64, host). ``ridge`` is relative to the mean diagonal of the Gram matrix (the bias is not
    shrunk). Returns ``(mu, sd, W)`` for :func:`predict_linear`."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if mask is not None:
        keep = np.asarray(mask, bool)
        x, y = x[keep], y[keep]
    mu, sd = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-12)
    design = np.concatenate([(x - mu) / sd, np.ones((len(x), 1))], axis=1)
    gram = design.T @ design
    reg = ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
    reg[-1, -1] = 0.0
    return mu, sd, np.linalg.solve(gram + reg, design.T @ y)


def predict_linear(params: tuple[np.ndarray, np.ndarray, np.ndarray], x: Float[ArrayLike, "m i"]) -> np.ndarray:
    """Predictions of a :func:`fit_linear` model."""
    mu, sd, w = params
    x = np.asarray(x, np.float64)
    return np.concatenate([(x - mu) / sd, np.ones((len(x), 1))], axis=1) @ w
