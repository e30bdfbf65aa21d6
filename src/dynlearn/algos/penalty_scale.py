"""How a reward penalty ``lambda u`` compares with the dataset's own rewards, measured before training.

A MOPO-style method trains on ``r - lambda u``. Its published ``lambda`` was tuned on the papers' models and data;
where a model's ``u`` is larger (less data, harder dynamics), the same ``lambda`` turns many *real* transitions into
losses, and in tasks that terminate (Hopper, Walker2d) a loss per step makes ending the episode the best policy.
:func:`penalty_on_data` measures that share on the dataset's rows, so the training log says it before any compute
is spent (``benchmarks/offline_mbrl.md``, "The penalty's scale on our data", has the case that motivated it).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..data.transitions import Transitions
from ..rollout import Penalty

FLIPPED_SHARE_WARNING = 0.25
"""Above this share of real transitions turned into losses (``r >= 0 > r - lambda u``), the training log warns."""


def penalty_on_data(model, penalty: Penalty | None, rows: Transitions, *, max_rows: int = 20_000, seed: int = 0) -> dict | None:
    """``u`` (the unweighted heuristic) on up to ``max_rows`` of ``rows``, and the share of them the penalty turns
    into losses (``r >= 0`` but ``r - lambda u < 0``; rows whose reward is negative already do not count, so tasks with
    cost-like rewards such as Pendulum are not flagged).

    It also says where the uncertainty sits, since one hard target dimension often dominates it:
    ``variance_share`` is each target dimension's share of the predicted (aleatoric) variance, averaged over the
    members the penalty reads and the rows, in data units (``delta obs[0..]``, then the reward); ``top_dim`` is the
    largest, and ``top_dim_sq_error`` / ``top_dim_variance`` are the elites' mean squared error there against their
    mean predicted variance (about equal when the model is calibrated in that dimension, error below variance when it
    is over-cautious).

    Returns None when there is no penalty, the model has no member outputs (the oracle), or no row has a successor.
    Keys: ``rows``, ``coef``, ``u_median``, ``u_mean``, ``u_p90``, ``reward_mean``, ``flipped_share``, ``variance_share``,
    ``top_dim``, ``top_dim_name``, ``top_dim_share``, ``top_dim_sq_error``, ``top_dim_variance``.
    """
    if penalty is None or not hasattr(model, "members"):
        return None
    t = sample_rows(rows, max_rows, seed=seed)
    if len(t) == 0:
        return None
    u, variance, sq_error, elite_variance = (np.asarray(x, np.float64) for x in _uncertainty(
        model, penalty, jnp.asarray(t.obs, jnp.float32), jnp.asarray(t.act, jnp.float32),
        jnp.asarray(t.next_obs, jnp.float32), jnp.asarray(t.rew, jnp.float32)))
    reward = np.asarray(t.rew, np.float64)
    coef = float(f"{float(penalty.coef):.7g}")  # the float32 lambda, as it was given
    share = variance / variance.sum()
    top = int(np.argmax(share))
    obs_dim = share.size - 1
    return {"rows": len(t), "coef": coef, "u_median": float(np.median(u)), "u_mean": float(u.mean()),
            "u_p90": float(np.percentile(u, 90)), "reward_mean": float(reward.mean()),
            "flipped_share": float(np.mean((reward >= 0) & (reward - coef * u < 0))),
            "variance_share": [float(x) for x in share], "top_dim": top,
            "top_dim_name": "reward" if top == obs_dim else f"delta obs[{top}]", "top_dim_share": float(share[top]),
            "top_dim_sq_error": float(sq_error[top]), "top_dim_variance": float(elite_variance[top])}


def sample_rows(rows: Transitions, max_rows: int, *, seed: int = 0) -> Transitions:
    """The rows :func:`penalty_on_data` measures: up to ``max_rows`` of those with a successor, drawn without
    replacement and kept in order."""
    t = rows.with_successor()
    if len(t) > max_rows:
        t = t.take(np.sort(np.random.default_rng(seed).choice(len(t), max_rows, replace=False)))
    return t


@eqx.filter_jit
def _uncertainty(model, penalty: Penalty, obs, act, next_obs, reward):
    """u per row; the predicted variance per target dim (mean over the members the penalty reads and the rows); the
    elites' squared error and predicted variance per target dim."""
    outputs = model.members(obs, act)
    y = jnp.concatenate([next_obs - obs, reward[:, None]], axis=-1)
    elite_mean, elite_logvar = outputs.mean[outputs.elites], outputs.logvar[outputs.elites]
    read_logvar = outputs.logvar if penalty.members == "all" else elite_logvar
    return (penalty.uncertainty(outputs, y), jnp.exp(read_logvar).mean(axis=(0, 1)), jnp.square(elite_mean - y).mean(axis=(0, 1)),
            jnp.exp(elite_logvar).mean(axis=(0, 1)))


def describe(scale: dict) -> str:
    """One log line (two when the share of losses is large)."""
    line = (f"penalty on the data: u median {scale['u_median']:.3g} (mean {scale['u_mean']:.3g}, 90th percentile "
            f"{scale['u_p90']:.3g}) against a mean reward of {scale['reward_mean']:.3g}; r - {scale['coef']:g} u turns "
            f"{100 * scale['flipped_share']:.0f}% of {scale['rows']:,} real transitions into losses; "
            f"{100 * scale['top_dim_share']:.0f}% of the predicted variance is in {scale['top_dim_name']} (elites' squared "
            f"error there {scale['top_dim_sq_error']:.3g} against a predicted variance of {scale['top_dim_variance']:.3g})")
    if scale["flipped_share"] > FLIPPED_SHARE_WARNING:
        line += ("\nwarning: the penalty turns that share of the data's own transitions into losses; in a task that "
                 "terminates, ending episodes early then pays. This model's u may be larger than the one the preset's "
                 "lambda was tuned for: consider a smaller penalty_coef (benchmarks/offline_mbrl.md).")
    return line
