"""How well a dynamics reward tells real transitions from a model's: the reward of held-out data against that of the
model's samples from the same ``(s, a)``, and the AUC between them."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._types import Key
from ...data.dataset import Dataset
from ...data.transitions import Transitions
from ...errors import DataError
from ...models.base import random_elites, select_member
from ...models.ensemble import ProbabilisticEnsemble
from ...rollout import elite_view
from .reward import DynamicsReward


def model_sample(model: ProbabilisticEnsemble, obs, act, *, key: Key):
    """A random elite's reparameterised Gaussian sample of ``s'`` and the entropy (nats, up to a constant) of its
    next-state part."""
    out = model.members(obs, act)
    member_key, noise_key = jax.random.split(key)
    member = random_elites(out.elites, obs.shape[:-1], key=member_key)
    mean = select_member(out.mean, member)[..., : model.obs_dim]
    logvar = select_member(out.logvar, member)[..., : model.obs_dim]
    next_obs = obs + mean + jnp.exp(0.5 * logvar) * jax.random.normal(noise_key, mean.shape, jnp.float32)
    return next_obs, 0.5 * jnp.sum(logvar, axis=-1)


@eqx.filter_jit
def _rewards_and_model_rewards(reward: DynamicsReward, model: ProbabilisticEnsemble, obs, act, next_obs, key):
    model_next = model_sample(elite_view(model), obs, act, key=key)[0]
    return reward(obs, act, next_obs), reward(obs, act, model_next)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """``P(x > y)`` for ``x`` from ``positive`` and ``y`` from ``negative`` (ties count half), by ranks."""
    positive, negative = np.asarray(positive, np.float64).ravel(), np.asarray(negative, np.float64).ravel()
    values = np.concatenate([positive, negative])
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos - 1) / 2.0) / (n_pos * n_neg))


def reward_diagnostics(reward: DynamicsReward, model: ProbabilisticEnsemble, data: Dataset | Transitions, *, key: Key,
                       max_rows: int = 20_000) -> dict[str, float]:
    """Dynamics reward of real transitions against the model's transitions from the same ``(s, a)``.

    Returns ``rows``, ``reward_data`` and ``reward_model`` (means), ``auc`` (P(data > model)) and
    ``low_fraction_model`` (share of model transitions below MOREC's truncation threshold 0.6). An AUC near 0.5
    means the reward cannot tell the model from the data there (the model is trustworthy, or the reward is weak);
    near 1, the model's transitions look unlike the data's (do not trust long rollouts).
    """
    t = (data.transitions if isinstance(data, Dataset) else data).with_successor()
    if len(t) > max_rows:
        t = t.take(np.sort(np.random.default_rng(0).choice(len(t), max_rows, replace=False)))
    if len(t) == 0:
        raise DataError("reward_diagnostics", "no transitions with a successor observation.", "pass data with next observations.")
    r_data, r_model = _rewards_and_model_rewards(reward, model, jnp.asarray(t.obs, jnp.float32), jnp.asarray(t.act, jnp.float32),
                                                 jnp.asarray(t.next_obs, jnp.float32), key)
    r_data, r_model = np.asarray(r_data), np.asarray(r_model)
    return {"rows": len(t), "reward_data": float(r_data.mean()), "reward_model": float(r_model.mean()),
            "auc": auc(r_data, r_model), "low_fraction_model": float((r_model < 0.6).mean())}
