"""MOREC's transition filter, as rollout hooks.

MOREC keeps the offline MBRL method it is added to (MOPO, MOBILE) and changes how the model's rollouts are made.
At every step the dynamics model proposes ``K`` candidate next states, a learned *dynamics reward* scores them
(:mod:`dynlearn.algos.morec.reward`, a reconstruction: MOREC's reward-learning code was never released), and
the rollout keeps the best; a branch whose kept transition scores below a threshold is cut there. With the
filter the paper runs rollouts up to ``h = 100`` steps, twenty times MOPO's.

Both parts are rollout hooks (:mod:`dynlearn.rollout`):

- :class:`TransitionFilter` (``select``): the ``K`` candidates are Gaussian resamples of the elites' outputs that
  the rollout step has already computed (candidate ``k`` from elite ``k mod E``; ``K = 10`` with 5 elites is the
  released code's 2 resamples per elite), so the filter costs ``K x discriminators`` discriminator passes per row and
  no extra ensemble pass. It keeps the best-scored candidate (``greedy``) or samples one with probability
  ``softmax(score / 0.1)`` (``softmax``, the released code's ``softmax_elite``, temperature 0.1).
- :class:`ScoreTruncation` (``stop``): from step ``min_length`` on (0-based; the released code's
  ``minimal_rollout_length``), a transition whose kept score is below ``threshold`` (0.6) is dropped and its branch
  truncated.

Differences from the released code (polixir/morec, ``EnsembleDynamics.step``):

- it marks a low-scored transition *terminal* and stores it; we drop it and truncate the branch (not a terminal,
  so nothing bootstraps a false zero value from it), as :mod:`dynlearn.rollout` specifies;
- like it, transitions the termination function ends are exempt from the cut (the rollout passes ``terminal`` to
  the ``stop`` hook);
- it clips candidate states to ``+-25``; we do not (as our MOPO does not).

The methods and their presets: :mod:`dynlearn.algos.morec.mopo` and :mod:`dynlearn.algos.morec.mobile`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._types import Array, Bool, Float, Int, Key
from ...errors import ConfigError
from ...models.base import MemberOutputs
from ...rollout import RolloutHooks, Selection
from .reward import DynamicsReward
from .reward_io import load_reward

SELECTIONS = ("greedy", "softmax")
SOFTMAX_TEMPERATURE = 0.1
"""The released code multiplies scores by 10 before its softmax."""

class Candidates(eqx.Module):
    """``K`` candidate transitions per row, member axis first (``[K, b, ...]``)."""

    next_obs: Float[Array, "k b obs"]
    reward: Float[Array, "k b"]
    member: Int[Array, "k b"]
    """Index into the outputs' member axis of the elite each candidate was drawn from."""
    scores: Float[Array, "k b"]
    """The dynamics reward of each candidate."""


class TransitionFilter(eqx.Module):
    """``select`` hook: ``K`` Gaussian resamples of the elites' outputs scored by a dynamics reward; keep the best
    (``greedy``) or sample by ``softmax(score / temperature)``. The reward's arrays are traced (a new reward of the
    same shapes does not recompile); ``candidates``, ``selection`` and ``temperature`` are static.

    ``Selection.scores`` is the kept candidate's score ``[b]`` (what :class:`ScoreTruncation` tests).
    """

    reward: DynamicsReward
    candidates: int = eqx.field(static=True, default=10)
    selection: str = eqx.field(static=True, default="greedy")
    temperature: float = eqx.field(static=True, default=SOFTMAX_TEMPERATURE)

    def __check_init__(self):
        if self.candidates < 1:
            raise ConfigError(f"TransitionFilter.candidates must be >= 1, got {self.candidates}.")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"TransitionFilter.selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}.")
        if not self.temperature > 0:
            raise ConfigError(f"TransitionFilter.temperature must be > 0, got {self.temperature}.")

    def propose(self, obs: Float[Array, "b obs"], act: Float[Array, "b act"], outputs: MemberOutputs, *, key: Key) -> Candidates:
        """The ``K`` scored candidates (candidate ``k`` is a sample of elite ``k mod E``); no model pass."""
        elites = outputs.elite()
        e = elites.mean.shape[0]
        which = np.arange(self.candidates) % e  # static: which elite each candidate comes from
        mean, logvar = elites.mean[which], elites.logvar[which]  # [K, b, target]
        y = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
        obs = obs.astype(jnp.float32)
        next_obs = obs[None] + y[..., : outputs.obs_dim]
        scores = self.reward(obs[None], act[None], next_obs).astype(jnp.float32)
        member = jnp.broadcast_to(jnp.take(outputs.elites, jnp.asarray(which))[:, None], scores.shape).astype(jnp.int32)
        return Candidates(next_obs=next_obs, reward=y[..., outputs.obs_dim], member=member, scores=scores)

    def choose(self, scores: Float[Array, "k b"], *, key: Key) -> Int[Array, " b"]:
        """Which candidate each row keeps."""
        if self.selection == "greedy":
            return jnp.argmax(scores, axis=0)
        return jax.random.categorical(key, scores / self.temperature, axis=0)

    def __call__(self, obs: Float[Array, "b obs"], act: Float[Array, "b act"], outputs: MemberOutputs, *, key: Key) -> Selection:
        propose_key, choose_key = jax.random.split(key)
        c = self.propose(obs, act, outputs, key=propose_key)
        index = self.choose(c.scores, key=choose_key)
        pick = lambda x: jnp.take_along_axis(x, index.reshape(1, -1, *(1,) * (x.ndim - 2)), axis=0)[0]
        return Selection(next_obs=pick(c.next_obs), reward=pick(c.reward), member=pick(c.member), scores=pick(c.scores))


class ScoreTruncation(eqx.Module):
    """``stop`` hook: from step ``min_length`` on (0-based), stop a branch whose kept transition scores below
    ``threshold``; the rollout drops that row and never marks it terminal. Both values are traced arrays (changing
    them does not recompile). A transition the rollout reports as ``terminal`` is exempt (the released code's rule),
    when the rollout passes that keyword."""

    threshold: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, jnp.float32))
    min_length: Int[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, jnp.int32), default=0)

    def __call__(self, t: Int[Array, ""], *, scores: Float[Array, " b"] | None, terminal: Bool[Array, " b"] | None = None,
                 **_) -> Bool[Array, " b"]:
        if scores is None:
            raise ConfigError("ScoreTruncation needs a select hook that returns scores (TransitionFilter).")
        stop = (t >= self.min_length) & (scores < self.threshold)
        return stop if terminal is None else stop & ~terminal


# ----------------------------------------------------------------------------------------------
# The filter's settings in a method's config


@dataclasses.dataclass(frozen=True)
class MORECOptions:
    """MOREC's fields of a method config (``MORECMOPOConfig``, ``MORECMOBILEConfig``), the released run scripts'
    settings: ``K = 2`` resamples x 5 elites, threshold 0.6, no minimum length, softmax selection (the hopper datasets'
    choice), 40 historical discriminators (MOREC-MOPO; MOREC-MOBILE uses 10)."""

    reward_model: str | None = None
    """folder of the learned dynamics reward (dynlearn model reward); required"""
    candidates: int = 10
    """candidate next states per step (K)"""
    reward_threshold: float = 0.6
    """a transition whose kept score is below this is dropped and its branch truncated"""
    min_length: int = 0
    """steps before truncation may start"""
    selection: str = "softmax"
    """greedy (best candidate) or softmax (sampled by score)"""
    reward_discriminators: int = 40
    """historical discriminators combined into the reward (the latest ones)"""


def check_options(cfg: MORECOptions) -> None:
    """Refuse MOREC settings out of range (the reward folder is read, and checked, by :func:`filter_hooks`)."""
    me = type(cfg).__name__
    for name in ("candidates", "reward_discriminators"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{me}.{name} must be >= 1, got {getattr(cfg, name)}.")
    if cfg.min_length < 0:
        raise ConfigError(f"{me}.min_length must be >= 0, got {cfg.min_length}.")
    if cfg.selection not in SELECTIONS:
        raise ConfigError(f"{me}.selection must be greedy or softmax, got {cfg.selection!r}.")


def filter_hooks(cfg: MORECOptions, base: RolloutHooks, *, reward: DynamicsReward | None = None) -> RolloutHooks:
    """``base`` (the method's penalty hook) plus MOREC's filter and truncation, configured from ``cfg``.

    The dynamics reward is read from ``cfg.reward_model`` (a folder written by
    :func:`dynlearn.algos.morec.reward_io.save_reward`) unless passed as ``reward``.
    """
    if reward is None:
        folder = cfg.reward_model
        if folder is None:
            raise ConfigError("MOREC needs a learned dynamics reward: learn one with `dynlearn model reward DATA --model MODEL "
                              "--out DIR` (or dynlearn.algos.morec.learn_reward) and pass its folder as reward_model.")
        if not (Path(folder) / "config.json").is_file():
            raise ConfigError(f"reward_model {folder!r} is not a dynamics reward folder (no config.json). Fix: pass the folder "
                              "that `dynlearn model reward` wrote.")
        reward = load_reward(folder)
    if cfg.reward_discriminators < reward.n_discriminators:
        reward = reward.thinned(cfg.reward_discriminators)
    return RolloutHooks(penalty=base.penalty, select=TransitionFilter(reward, candidates=cfg.candidates, selection=cfg.selection),
                        stop=ScoreTruncation(float(cfg.reward_threshold), cfg.min_length))
