"""MOREC's dynamics reward: ``r(s, a, s')``, learned by adversarial imitation of the data's transitions.

Luo, Xu, Cao & Yu, *Reward-Consistent Dynamics Models are Strongly Generalizable for Offline Reinforcement
Learning*, ICLR 2024 (arXiv 2310.05422), with the discriminator ensemble of DARL (Luo, Cao, Qin & Yu,
*Transferable Reward Learning by Dynamics-Agnostic Discriminator Ensemble*, arXiv 2206.00238).

**A reconstruction.** MOREC's reward-learning code was never released (polixir/morec ships only the code that
*uses* pretrained rewards, which sit on a private file server). What follows is rebuilt from the papers and from
how the released code reads a reward; every choice the released code does not pin down is marked *ours*.

The idea: treat the dynamics as an agent whose state is ``(s, a)`` and whose action is the next state ``s'``. The
data's transitions are that agent's demonstrations, and the reward it maximises, the *dynamics reward*, is
recovered by adversarial imitation (GAIL): discriminators ``D(s, a, s')`` learn to tell dataset transitions from
transitions of a learned model (the generator), while the model is updated to fool them. DARL's point, which
MOREC builds on, is that one discriminator at the end of such a game is tied to the last generator, whereas the
*ensemble of historical discriminators* (snapshots taken during training) approximates the reward itself; MOREC
then filters model rollouts with that reward (:mod:`dynlearn.algos.morec`).

What is implemented:

- **Discriminator** (the released code's ``DiscriminatorRestrain`` with its ``restrain`` encoder): an MLP on the
  state-action ``(s, a)`` (hidden 256, 128, embedding 64, ReLU) and one on the change ``s' - s`` (hidden 256, 128,
  embedding 16, ReLU), concatenated and fed to a head MLP that outputs a logit. The released code's extra input
  ``z`` (a hidden factor, constant zero on MuJoCo) is dropped. Inputs are standardised with the data's mean and
  std (the released code min-max scales observations to [-0.8, 0.8] and takes the change of the scaled
  observations; we standardise the change by its own std, which keeps small changes visible). Head widths
  (128, 128) and learning rates are *ours* (the released loader reads them from a config file that is not public).
- **Generator** (the adversary, ``generator``): by default a *fresh* Gaussian transition model, an MLP from ``(s, a)``
  to a diagonal Gaussian over the change of state, trained from scratch inside the game (the released loader hands the reward object the
  widths of a transition network and its learning rate, 1e-3); ``model`` fine-tunes the fitted ensemble's
  elites instead, ``frozen`` uses the fitted ensemble's samples unchanged. In the papers the transition model is
  updated by policy optimisation with the GAIL reward ``-log(1 - D) = softplus(logit)``; here each episode of the
  dynamics agent is one step from a dataset ``(s, a)`` (a contextual bandit: offline data have no behaviour policy to
  choose the next action), so we follow the *reparameterised* gradient of the same objective,
  ``E_{s' ~ T(s, a)}[softplus(logit)] + c H(T)`` with ``c = entropy_coef`` (the released code's initial entropy
  coefficient 0.001), through the Gaussian sample: same expectation as the policy gradient, far lower variance,
  affordable on a CPU. That gradient is far more efficient than a policy gradient: at the released learning rate
  (1e-3) our adversary matches the data of the synthetic task within about a thousand steps, after which each
  snapshot's expert and learner values coincide (it cannot tell data from adversary) and it adds only noise to the
  combination. We slow the adversary down (``generator_lr`` 1e-5) so that snapshots over the whole run stay
  informative and span coarse to fine discriminators, DARL's mechanism; on the synthetic task of
  benchmarks/morec_synthetic.py it was the best or tied of 1e-3, 1e-4 and 1e-5 (one seed each). The adversary is
  discarded afterwards: rollouts use the supervised ensemble, as MOREC's released code does (its
  ``learned_dynamics`` are the supervised baseline models).
- **Discriminator loss**: binary cross-entropy, data transitions labelled 1 and the adversary's samples 0, one Adam
  step per training step, one adversary step after it.
- **Historical ensemble**: every ``snapshot_every`` steps the current discriminator is stored together with its
  mean logit on a batch of data transitions (*expert value*) and on the adversary's transitions from the same
  ``(s, a)`` (*learner value*),
  the calibration the released code reads as ``expert_value``/``learner_value`` (how it computed them is not
  public: the batch means are *ours*). The last ``snapshots`` snapshots form the reward.
- **Combination** (the released code's ``prob_mean_clip`` with ``load_min_max=False``): each snapshot's logit is
  clamped to ``[learner value, expert value]`` and mapped linearly onto ``[-1, 1]``; ``p_k = sigmoid`` of it; the
  reward is ``-log(1 - mean_k min(p_k, prob_clip) + 1e-9)``. So a transition a snapshot finds as typical as the
  data scores ``p = 0.73``, one as typical as the model's ``p = 0.27``; the reward lies in ``[0.31, 1.31]``, and
  MOREC's truncation threshold 0.6 means a mean ``p`` below 0.45. ``calibrate=False`` uses the raw sigmoid.

Train with :func:`learn_reward`, save with :func:`save_reward` (config JSON + array leaves, no pickle), read
back with :func:`load_reward`; :func:`reward_diagnostics` compares the reward of real held-out transitions with
that of a model's transitions (where the model is not to be trusted).

>>> reward, report = learn_reward(dataset, model, DynamicsRewardConfig(), key=jax.random.key(0))
>>> r = reward(obs, act, next_obs)                    # [...], higher = more like the data's transitions
>>> save_reward("runs/reward", reward, report); reward = load_reward("runs/reward")
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._types import Array, Float, Key
from ..checkpoint import arrays_digest, load_leaves, read_header, save_module, write_json
from ..data.dataset import Dataset
from ..data.normalize import Normalizer
from ..data.transitions import Transitions
from ..progress import ProgressLine
from ..training import Checkpoint, Schedule, WallClock, fingerprint, key_data, run
from ..errors import ConfigError, DataError
from .base import random_elites, select_member
from .ensemble import ProbabilisticEnsemble
from .fitting import FitConfig, split_holdout

__all__ = ["DynamicsReward", "DynamicsRewardConfig", "RewardReport", "learn_reward", "load_reward", "reward_diagnostics",
           "save_reward"]

KIND = "dynamics_reward"
REWARD_FORMAT = 1
GENERATORS = ("fresh", "model", "frozen")
_ACTIVATIONS: dict[str, Callable] = {"relu": jax.nn.relu, "tanh": jnp.tanh, "swish": jax.nn.swish, "elu": jax.nn.elu}


@dataclasses.dataclass(frozen=True)
class DynamicsRewardConfig:
    """How :func:`learn_reward` learns a dynamics reward; see the module docstring for which values are MOREC's."""

    steps: int = 10_000
    """Training steps (each: one discriminator update and one generator update on a batch) (ours)."""
    batch_size: int = 256
    """Dataset transitions (and as many model transitions) per step (ours)."""
    snapshot_every: int = 250
    """Steps between discriminator snapshots (also the compiled block of steps); the defaults spread the 40 kept
    snapshots over the whole training, as DARL averages every historical discriminator."""
    snapshots: int = 40
    """Historical discriminators kept and combined: the last ones taken (the released MOREC-MOPO runs combine 40)."""
    state_hidden: tuple[int, ...] = (256, 128)
    """Hidden widths of the state-action encoder (released code)."""
    state_embedding: int = 64
    """Output width of the state-action encoder (released code)."""
    delta_hidden: tuple[int, ...] = (256, 128)
    """Hidden widths of the encoder of s' - s (released code)."""
    delta_embedding: int = 16
    """Output width of the encoder of s' - s (released code)."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the head on the two embeddings (ours)."""
    activation: str = "relu"
    """Activation of every hidden and embedding layer: relu, tanh, swish or elu."""
    discriminator_lr: float = 3e-4
    """Adam learning rate of the discriminator (ours)."""
    generator: str = "fresh"
    """The adversary: fresh (a Gaussian transition MLP trained from scratch, as in adversarial imitation), model (the
    fitted ensemble's elites, fine-tuned adversarially) or frozen (the fitted ensemble's samples, never updated)."""
    generator_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the fresh generator (ours; the released code sizes it like the discriminator)."""
    generator_lr: float = 1e-5
    """Adam learning rate of the generator (ours: see the module docstring on the adversary's pace)."""
    entropy_coef: float = 1e-3
    """Weight of the generator's Gaussian entropy in its objective (released code's initial value)."""
    prob_clip: float = 1.0
    """Upper clip of each snapshot's probability before averaging (the released runs use 1.0)."""
    calibrate: bool = True
    """Clamp and rescale each snapshot's logit between its learner and expert values (released code)."""
    calibration_rows: int = 4096
    """Dataset rows (and model samples) on which each snapshot's expert and learner values are measured."""
    progress: bool = True
    """Show a rich progress line; False for quiet runs and tests."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "snapshot_every", "snapshots", "state_embedding", "delta_embedding",
                     "calibration_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DynamicsRewardConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("state_hidden", "delta_hidden", "hidden"):
            if any(w < 1 for w in getattr(self, name)):
                raise ConfigError(f"DynamicsRewardConfig.{name} must hold positive widths, got {getattr(self, name)}.")
        if self.generator not in GENERATORS:
            raise ConfigError(f"DynamicsRewardConfig.generator {self.generator!r} is not one of {', '.join(GENERATORS)}.")
        if any(w < 1 for w in self.generator_hidden):
            raise ConfigError(f"DynamicsRewardConfig.generator_hidden must hold positive widths, got {self.generator_hidden}.")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(f"DynamicsRewardConfig.activation {self.activation!r} is not one of {sorted(_ACTIVATIONS)}.")
        if self.discriminator_lr <= 0 or self.generator_lr <= 0:
            raise ConfigError(f"DynamicsRewardConfig: learning rates must be > 0, got {self.discriminator_lr}, {self.generator_lr}.")
        if self.entropy_coef < 0:
            raise ConfigError(f"DynamicsRewardConfig.entropy_coef must be >= 0, got {self.entropy_coef}.")
        if not 0.0 < self.prob_clip <= 1.0:
            raise ConfigError(f"DynamicsRewardConfig.prob_clip must be in (0, 1], got {self.prob_clip}.")
        if self.steps // self.snapshot_every < self.snapshots:
            raise ConfigError(f"DynamicsRewardConfig: {self.steps} steps take {self.steps // self.snapshot_every} snapshots "
                              f"(one every {self.snapshot_every}), fewer than the {self.snapshots} to keep. Fix: raise steps "
                              "to at least snapshots * snapshot_every, or lower snapshots or snapshot_every.")

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> DynamicsRewardConfig:
        """From JSON; unknown keys raise :class:`~dynlearn.DataError`, lists become tuples."""
        from ..agents.base import config_from_dict

        return config_from_dict(cls, d, source=source)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Networks: every layer stacked over a leading snapshot axis S (one batched matmul for all snapshots)


def _stacked_layers(layer_sizes: tuple[tuple[int, ...], ...], stack: int, key: Key) -> tuple[tuple[tuple[Array, Array], ...], ...]:
    """For every network (a tuple of widths), ``[(W [S, i, o], b [S, o])]`` drawn uniformly in ``+-1/sqrt(fan_in)``
    (PyTorch's Linear default), from one draw sliced per layer (each separate draw compiles its own program)."""
    shapes = [[((stack, a, b), a), ((stack, b), a)] for sizes in layer_sizes for a, b in itertools.pairwise(sizes)]
    flat = [s for pair in shapes for s in pair]
    z = jax.random.uniform(key, (sum(math.prod(shape) for shape, _ in flat),), jnp.float32, -1.0, 1.0)
    arrays, start = [], 0
    for shape, fan_in in flat:
        size = math.prod(shape)
        arrays.append(z[start:start + size].reshape(shape) / math.sqrt(fan_in))
        start += size
    nets, i = [], 0
    for sizes in layer_sizes:
        layers = []
        for _ in range(len(sizes) - 1):
            layers.append((arrays[i], arrays[i + 1]))
            i += 2
        nets.append(tuple(layers))
    return tuple(nets)


def _forward(layers, x: Float[Array, "n i"] | Float[Array, "s n i"], act: Callable, *, last: bool) -> Float[Array, "s n o"]:
    """Every layer with ``act``; the last one too when ``last`` (embeddings), else linear (logits)."""
    h = x
    for i, (w, b) in enumerate(layers):
        h = jnp.einsum("ni,sio->sno" if h.ndim == 2 else "sni,sio->sno", h, w) + b[:, None, :]
        if last or i < len(layers) - 1:
            h = act(h)
    return h


class Discriminators(eqx.Module):
    """``S`` discriminators ``D(s, a, s')`` stacked on a leading axis; inputs already standardised."""

    state_net: tuple[tuple[Array, Array], ...]
    delta_net: tuple[tuple[Array, Array], ...]
    head: tuple[tuple[Array, Array], ...]
    activation: str = eqx.field(static=True)

    @classmethod
    def init(cls, cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int, stack: int, *, key: Key) -> Discriminators:
        state_net, delta_net, head = _stacked_layers(((obs_dim + act_dim, *cfg.state_hidden, cfg.state_embedding),
                                                      (obs_dim, *cfg.delta_hidden, cfg.delta_embedding),
                                                      (cfg.state_embedding + cfg.delta_embedding, *cfg.hidden, 1)), stack, key)
        return cls(state_net=state_net, delta_net=delta_net, head=head, activation=cfg.activation)

    @property
    def stack(self) -> int:
        return int(self.head[0][0].shape[0])

    def __call__(self, sa: Float[Array, "n sa"], delta: Float[Array, "rn obs"]) -> Float[Array, "s rn"]:
        """Every snapshot's logit for every row of ``delta``. ``delta`` may hold ``r`` candidates per ``(s, a)`` row,
        candidate-major (``r * n`` rows: row ``k * n + i`` pairs with ``sa[i]``): the state embedding is then computed
        once per ``(s, a)`` and shared by its candidates."""
        act = _ACTIVATIONS[self.activation]
        n, rn = sa.shape[0], delta.shape[0]
        if n and rn % n:
            raise ValueError(f"Discriminators: {rn} delta rows are not a whole number of copies of {n} (s, a) rows")
        zs = _forward(self.state_net, sa, act, last=True)  # [s, n, e]
        if n and rn != n:
            zs = jnp.broadcast_to(zs[:, None], (zs.shape[0], rn // n, n, zs.shape[-1])).reshape(zs.shape[0], rn, zs.shape[-1])
        z = jnp.concatenate([zs, _forward(self.delta_net, delta, act, last=True)], axis=-1)
        return _forward(self.head, z, act, last=False)[..., 0]

    def take(self, index) -> Discriminators:
        """The snapshots at ``index`` (host integer array)."""
        return jax.tree_util.tree_map(lambda x: x[index], self)


class DynamicsReward(eqx.Module):
    """The historical discriminator ensemble and how it becomes a reward; see the module docstring.

    ``reward(obs, act, next_obs)`` takes any leading batch axes (none included) and returns one reward per row.
    Every array is a traced leaf: a new reward of the same shapes does not recompile a rollout that uses it.
    """

    discriminators: Discriminators
    expert_logit: Float[Array, " s"]
    """Each snapshot's mean logit on data transitions when it was taken."""
    learner_logit: Float[Array, " s"]
    """Each snapshot's mean logit on model transitions when it was taken."""
    input_norm: Normalizer
    """Standardises ``(obs, act)``."""
    delta_norm: Normalizer
    """Standardises ``next_obs - obs``."""
    cfg: DynamicsRewardConfig = eqx.field(static=True)
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    @classmethod
    def init(cls, cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int, *, key: Key, discriminators: int | None = None) -> DynamicsReward:
        """An untrained reward of ``discriminators`` (default ``cfg.snapshots``) random discriminators, identity
        normalisers, expert value 1 and learner value 0: the structure :func:`learn_reward` fills (and a stand-in in tests)."""
        stack = cfg.snapshots if discriminators is None else int(discriminators)
        if obs_dim < 1 or act_dim < 1 or stack < 1:
            raise ConfigError(f"DynamicsReward.init: obs_dim {obs_dim}, act_dim {act_dim} and discriminators {stack} must be >= 1.")
        return eqx.filter_jit(_empty_reward)(cfg, obs_dim, act_dim, stack, key)

    @property
    def n_discriminators(self) -> int:
        return self.discriminators.stack

    def logits(self, obs: Float[Array, "... obs"], act: Float[Array, "... act"],
               next_obs: Float[Array, "... obs"]) -> Float[Array, "s ..."]:
        """Every snapshot's raw logit, ``[S, ...]``."""
        if obs.shape[-1] != self.obs_dim or act.shape[-1] != self.act_dim or next_obs.shape[-1] != self.obs_dim:
            raise ConfigError(f"DynamicsReward: learned for obs/act dims {self.obs_dim}/{self.act_dim}, called with obs "
                              f"{obs.shape}, act {act.shape}, next_obs {next_obs.shape}. Fix: use the reward learned on this task's data.")
        batch = next_obs.shape[:-1]
        rows = tuple(jnp.broadcast_shapes(obs.shape[:-1], act.shape[:-1]))  # the (s, a) batch, leading 1s dropped
        while rows and rows[0] == 1:
            rows = rows[1:]
        if len(rows) > len(batch) or batch[len(batch) - len(rows):] != rows:
            rows = batch  # (s, a) varies along next_obs's leading axes too: one state embedding per transition
        trim = lambda x: x.reshape(x.shape[max(0, x.ndim - 1 - len(rows)):])  # noqa: E731 (dropped axes are all 1)
        obs_rows = jnp.broadcast_to(trim(obs), (*rows, self.obs_dim)).astype(jnp.float32)
        act_rows = jnp.broadcast_to(trim(act), (*rows, self.act_dim)).astype(jnp.float32)
        sa = self.input_norm(jnp.concatenate([obs_rows, act_rows], axis=-1)).reshape(-1, self.obs_dim + self.act_dim)
        delta = self.delta_norm(next_obs.astype(jnp.float32) - obs_rows).reshape(-1, self.obs_dim)  # leading candidate axes first
        return self.discriminators(sa, delta).reshape(-1, *batch)

    def probabilities(self, obs, act, next_obs) -> Float[Array, "s ..."]:
        """Every snapshot's probability that the transition is the data's, calibrated when ``cfg.calibrate``."""
        logit = self.logits(obs, act, next_obs)
        if self.cfg.calibrate:
            shape = (-1,) + (1,) * (logit.ndim - 1)
            low, high = self.learner_logit.reshape(shape), self.expert_logit.reshape(shape)
            # torch.clamp's order (max, then min): a snapshot whose expert value is not above its learner value maps
            # everything to +1 (a constant that ranks nothing), as in the released code.
            clamped = jnp.minimum(jnp.maximum(logit, low), high)
            logit = 2.0 * (clamped - low) / (high - low + 1e-7) - 1.0
        return jax.nn.sigmoid(logit)

    def __call__(self, obs: Float[Array, "... obs"], act: Float[Array, "... act"],
                 next_obs: Float[Array, "... obs"]) -> Float[Array, "..."]:  # noqa: UP037
        """``-log(1 - mean_k min(p_k, prob_clip) + 1e-9)``: the dynamics reward of each transition."""
        p = jnp.mean(jnp.minimum(self.probabilities(obs, act, next_obs), self.cfg.prob_clip), axis=0)
        return -jnp.log(1.0 - p + 1e-9)

    def thinned(self, count: int) -> DynamicsReward:
        """``count`` snapshots evenly spread over the kept ones, the latest included (the released code keeps every
        10th of the last 400 for MOREC-MOPO, every 40th for MOREC-MOBILE): fewer discriminator passes per candidate."""
        s = self.n_discriminators
        if not 1 <= count <= s:
            raise ConfigError(f"DynamicsReward.thinned: count must be in [1, {s}] (the snapshots kept), got {count}.")
        index = np.unique(np.round(np.linspace(s - 1, 0, count)).astype(np.int64))
        return dataclasses.replace(self, discriminators=self.discriminators.take(index), expert_logit=self.expert_logit[index],
                                   learner_logit=self.learner_logit[index])

    # ------------------------------------------------------------------------------------------
    # Checkpoints

    def header(self) -> dict:
        return {"model": "dynamics_reward", "reward_format": REWARD_FORMAT, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "discriminators": self.n_discriminators, "config": self.cfg.to_dict(),
                "leaf_shapes": [list(x.shape) for x in jax.tree_util.tree_leaves(self)]}

    @classmethod
    def skeleton(cls, header: dict, *, source: str) -> DynamicsReward:
        cfg = DynamicsRewardConfig.from_dict(header["config"], source=source)
        obs_dim, act_dim, stack = int(header["obs_dim"]), int(header["act_dim"]), int(header["discriminators"])
        return eqx.filter_eval_shape(_empty_reward, cfg, obs_dim, act_dim, stack, jax.random.key(0))


def _empty_reward(cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int, stack: int, key: Key) -> DynamicsReward:
    return DynamicsReward(discriminators=Discriminators.init(cfg, obs_dim, act_dim, stack, key=key),
                          expert_logit=jnp.ones((stack,), jnp.float32), learner_logit=jnp.zeros((stack,), jnp.float32),
                          input_norm=Normalizer.identity(obs_dim + act_dim), delta_norm=Normalizer.identity(obs_dim), cfg=cfg,
                          obs_dim=obs_dim, act_dim=act_dim)


# ----------------------------------------------------------------------------------------------
# Training


@dataclasses.dataclass(frozen=True)
class RewardReport:
    """What :func:`learn_reward` did, and how well the reward separates held-out data from model transitions."""

    steps: int
    """Training steps run."""
    discriminators: int
    """Snapshots in the reward."""
    train_size: int
    """Training transitions (with a successor observation)."""
    holdout_size: int
    """Held-out transitions the numbers below are measured on (the model fit's holdout split)."""
    holdout_reward_data: float
    """Mean dynamics reward of held-out dataset transitions."""
    holdout_reward_model: float
    """Mean dynamics reward of the fitted model's transitions (a random elite's sample) from the same ``(s, a)``."""
    holdout_auc: float
    """P(reward of a held-out data transition > reward of a model transition), ties counted half."""
    wall_s: float
    """Wall time, compilation included."""
    steps_per_s: float
    """Training steps per second after the first (compiling) block."""
    history: tuple[dict, ...]
    """Per block: step, discriminator loss and accuracy, mean logit on data and on model samples, generator reward."""

    @classmethod
    def from_dict(cls, d: dict) -> RewardReport:
        return cls(**(d | {"history": tuple(d["history"])}))


class _Rows(eqx.Module):
    obs: Float[Array, "n obs"]
    act: Float[Array, "n act"]
    next_obs: Float[Array, "n obs"]


def _rows(t: Transitions) -> _Rows:
    t = t.with_successor()
    return _Rows(obs=jnp.asarray(t.obs, jnp.float32), act=jnp.asarray(t.act, jnp.float32), next_obs=jnp.asarray(t.next_obs, jnp.float32))


def elite_model(model: ProbabilisticEnsemble) -> ProbabilisticEnsemble:
    """The ensemble restricted to its elites (non-elites are never sampled)."""
    take = lambda x: jnp.take(x, model.elites, axis=0)
    net = eqx.tree_at(lambda n: (n.weights, n.biases), model.net, (tuple(map(take, model.net.weights)), tuple(map(take, model.net.biases))))
    return eqx.tree_at(lambda m: (m.net, m.elites), model, (net, jnp.arange(model.elites.shape[0], dtype=jnp.int32)))


def _model_sample(model: ProbabilisticEnsemble, obs, act, *, key: Key):
    """A random member's reparameterised Gaussian sample of ``s'`` and the entropy (nats, up to a constant) of its
    next-state part."""
    out = model.members(obs, act)
    member_key, noise_key = jax.random.split(key)
    member = random_elites(out.elites, obs.shape[:-1], key=member_key)
    mean = select_member(out.mean, member)[..., : model.obs_dim]
    logvar = select_member(out.logvar, member)[..., : model.obs_dim]
    next_obs = obs + mean + jnp.exp(0.5 * logvar) * jax.random.normal(noise_key, mean.shape, jnp.float32)
    return next_obs, 0.5 * jnp.sum(logvar, axis=-1)


class _Norms(eqx.Module):
    input_norm: Normalizer
    delta_norm: Normalizer


def _standardised(norms: _Norms | DynamicsReward, obs, act, next_obs):
    sa = norms.input_norm(jnp.concatenate([obs, act], axis=-1))
    return sa, norms.delta_norm(next_obs - obs)


LOG_STD_RANGE = (-5.0, 1.0)
"""Bounds of the fresh generator's log-std in standardised units of ``s' - s``."""


class GaussianGenerator(eqx.Module):
    """The fresh adversary: an MLP from standardised ``(s, a)`` to a diagonal Gaussian over the standardised change
    ``s' - s`` (log-std squashed into :data:`LOG_STD_RANGE`). The last layer starts near mean 0 and log-std 0, so
    the first samples follow the data's mean and spread of changes whatever ``(s, a)``: the first discriminators
    learn the coarse relation between ``(s, a)`` and the change."""

    layers: tuple[tuple[Array, Array], ...]
    activation: str = eqx.field(static=True)

    @classmethod
    def init(cls, cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int, *, key: Key) -> GaussianGenerator:
        (layers,) = _stacked_layers(((obs_dim + act_dim, *cfg.generator_hidden, 2 * obs_dim),), 1, key)
        w, _ = layers[-1]
        low, high = LOG_STD_RANGE
        unit_std = math.atanh(2.0 * (0.0 - low) / (high - low) - 1.0)  # the raw output whose log-std is 0
        b = jnp.concatenate([jnp.zeros((1, obs_dim), jnp.float32), jnp.full((1, obs_dim), unit_std, jnp.float32)], axis=-1)
        return cls(layers=(*layers[:-1], (0.01 * w, b)), activation=cfg.activation)

    def __call__(self, sa: Float[Array, "n sa"]) -> tuple[Float[Array, "n obs"], Float[Array, "n obs"]]:
        out = _forward(self.layers, sa, _ACTIVATIONS[self.activation], last=False)[0]
        d = out.shape[-1] // 2
        low, high = LOG_STD_RANGE
        return out[:, :d], low + 0.5 * (high - low) * (jnp.tanh(out[:, d:]) + 1.0)


def _generate(params, model: ProbabilisticEnsemble, norms: _Norms, obs, act, *, key: Key, kind: str):
    """The adversary's reparameterised sample of ``s'`` and its entropy. ``params``: the fresh generator, or the
    elites' network for ``model``/``frozen``."""
    if kind == "fresh":
        mean, log_std = params(norms.input_norm(jnp.concatenate([obs, act], axis=-1)))
        z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, jnp.float32)
        return obs + norms.delta_norm.inverse(z), jnp.sum(log_std, axis=-1)
    return _model_sample(eqx.tree_at(lambda m: m.net, model, params), obs, act, key=key)


def _disc_loss(disc: Discriminators, norms: _Norms, obs, act, real_next, fake_next):
    real = disc(*_standardised(norms, obs, act, real_next))[0]
    fake = disc(*_standardised(norms, obs, act, fake_next))[0]
    loss = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    accuracy = 0.5 * (jnp.mean((real > 0).astype(jnp.float32)) + jnp.mean((fake < 0).astype(jnp.float32)))
    return loss, {"disc/loss": loss, "disc/accuracy": accuracy, "disc/logit_data": jnp.mean(real), "disc/logit_model": jnp.mean(fake)}


def _gen_loss(params, model, disc: Discriminators, norms: _Norms, obs, act, *, key, cfg: DynamicsRewardConfig):
    """Minus the GAIL reward ``softplus(logit) = -log(1 - D)`` of the adversary's samples, minus the entropy bonus."""
    fake_next, entropy = _generate(params, model, norms, obs, act, key=key, kind=cfg.generator)
    gail = jnp.mean(jax.nn.softplus(disc(*_standardised(norms, obs, act, fake_next))[0]))
    return -gail - cfg.entropy_coef * jnp.mean(entropy), {"gen/reward": gail, "gen/entropy": jnp.mean(entropy)}


def _apply(opt, params, grads, opt_state):
    from ..agents.base import apply_optimizer

    return apply_optimizer(opt, params, grads, opt_state)


@eqx.filter_jit
def _block(disc, disc_opt, gen, gen_opt, model: ProbabilisticEnsemble, norms: _Norms, data: _Rows, key, *, cfg: DynamicsRewardConfig):
    """``cfg.snapshot_every`` training steps in one ``lax.scan``, then the snapshot's calibration: the discriminator's
    mean logit on ``cfg.calibration_rows`` data transitions (expert value) and on the adversary's samples from the
    same ``(s, a)`` (learner value). Returns the new states, the two values and the block's mean metrics."""
    d_opt, g_opt = optax.adam(cfg.discriminator_lr), optax.adam(cfg.generator_lr)
    n = data.obs.shape[0]
    scan_key, index_key, fake_key = jax.random.split(key, 3)

    def step(carry, k):
        disc, disc_opt, gen, gen_opt = carry
        index_key, fake_key, gen_key = jax.random.split(k, 3)
        index = jax.random.randint(index_key, (cfg.batch_size,), 0, n)
        obs, act, real_next = data.obs[index], data.act[index], data.next_obs[index]
        fake_next = jax.lax.stop_gradient(_generate(gen, model, norms, obs, act, key=fake_key, kind=cfg.generator)[0])
        (_, info), grads = jax.value_and_grad(_disc_loss, has_aux=True)(disc, norms, obs, act, real_next, fake_next)
        disc, disc_opt = _apply(d_opt, disc, grads, disc_opt)
        if cfg.generator != "frozen":
            (_, g_info), g_grads = jax.value_and_grad(_gen_loss, has_aux=True)(gen, model, disc, norms, obs, act, key=gen_key, cfg=cfg)
            gen, gen_opt = _apply(g_opt, gen, g_grads, gen_opt)
            info = info | g_info
        return (disc, disc_opt, gen, gen_opt), info

    (disc, disc_opt, gen, gen_opt), infos = jax.lax.scan(step, (disc, disc_opt, gen, gen_opt),
                                                         jax.random.split(scan_key, cfg.snapshot_every))
    index = jax.random.randint(index_key, (cfg.calibration_rows,), 0, n)
    obs, act = data.obs[index], data.act[index]
    fake_next = _generate(gen, model, norms, obs, act, key=fake_key, kind=cfg.generator)[0]
    expert = jnp.mean(disc(*_standardised(norms, obs, act, data.next_obs[index]))[0])
    learner = jnp.mean(disc(*_standardised(norms, obs, act, fake_next))[0])
    return disc, disc_opt, gen, gen_opt, expert, learner, jax.tree_util.tree_map(jnp.mean, infos)


@eqx.filter_jit
def _start(cfg: DynamicsRewardConfig, model: ProbabilisticEnsemble, data: _Rows, key):
    """The input statistics, the first discriminator, the adversary (and the elites' model) and both optimiser states."""
    obs, act, nxt = data.obs, data.act, data.next_obs

    def stats(x):
        return Normalizer(mean=jnp.mean(x, axis=0), std=jnp.maximum(jnp.std(x, axis=0), 1e-6))

    norms = _Norms(input_norm=stats(jnp.concatenate([obs, act], axis=1)), delta_norm=stats(nxt - obs))
    disc_key, gen_key = jax.random.split(key)
    disc = Discriminators.init(cfg, model.obs_dim, model.act_dim, 1, key=disc_key)
    elites = elite_model(model)
    gen = GaussianGenerator.init(cfg, model.obs_dim, model.act_dim, key=gen_key) if cfg.generator == "fresh" else elites.net
    return norms, disc, optax.adam(cfg.discriminator_lr).init(disc), elites, gen, optax.adam(cfg.generator_lr).init(gen)


@eqx.filter_jit
def _assemble(kept: list, norms: _Norms, *, cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int) -> DynamicsReward:
    discs = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=0), *[d for d, _, _ in kept])
    return DynamicsReward(discriminators=discs, expert_logit=jnp.stack([e for _, e, _ in kept]),
                          learner_logit=jnp.stack([lo for _, _, lo in kept]), input_norm=norms.input_norm, delta_norm=norms.delta_norm,
                          cfg=cfg, obs_dim=obs_dim, act_dim=act_dim)


def learn_reward(dataset: Dataset, model: ProbabilisticEnsemble, cfg: DynamicsRewardConfig = DynamicsRewardConfig(), *, key: Key,
                 holdout_seed: int = 0, fit_cfg: FitConfig = FitConfig(), log: Callable[[str], None] | None = None,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every_s: float = 60.0,
                 metrics: str | os.PathLike | None = None) -> tuple[DynamicsReward, RewardReport]:
    """Learn a dynamics reward from ``dataset`` against ``model`` (a fitted ensemble); see the module docstring.

    The data are split as :func:`dynlearn.models.fit` split them for ``model``: pass the fit's
    ``FitReport.holdout_seed`` and the ``FitConfig`` it was fitted with (its ``holdout`` rule and sizes; the default
    is the default fit's). Training uses the training rows, the report's numbers the held-out ones, which ``model``
    never trained on either.

    ``checkpoint``: a folder for the training state (discriminator, adversary, optimisers, the snapshots kept so far),
    written every ``checkpoint_every_s`` seconds and on SIGTERM / Ctrl-C (then :class:`dynlearn.interrupt.Stopped` is
    raised); a call with the same inputs and folder continues from it and returns the uninterrupted call's reward.
    A checkpoint of other inputs is refused. The caller deletes the folder once the reward is saved. The blocks run in
    :func:`dynlearn.training.run`; ``metrics``: a JSONL file that gets one row per block.
    """
    if not isinstance(model, ProbabilisticEnsemble):
        raise ConfigError(f"learn_reward needs a fitted ProbabilisticEnsemble as the generator, got {type(model).__name__}.")
    t = dataset.transitions
    if t.obs_dim != model.obs_dim or t.act_dim != model.act_dim:
        raise DataError(dataset.source, f"has obs/act dims {t.obs_dim}/{t.act_dim}, the model {model.obs_dim}/{model.act_dim}.",
                        "learn the reward with the model fitted on this data.")
    train_t, hold_t, _, _ = split_holdout(dataset, fit_cfg, seed=holdout_seed)
    train = _rows(train_t)
    n = int(train.obs.shape[0])
    if n < cfg.batch_size:
        raise DataError(dataset.source, f"has {n} training transitions with a successor, fewer than batch_size {cfg.batch_size}.",
                        "lower DynamicsRewardConfig.batch_size or provide more data.")
    clock = WallClock()
    init_key, train_key, eval_key = jax.random.split(key, 3)
    model = model.with_task(None)  # the adversary needs no termination or reward function
    norms, disc, disc_opt, elites, gen, gen_opt = _start(cfg, model, train, init_key)

    # state: discriminator, adversary, their optimisers and the snapshots kept (the last cfg.snapshots);
    # progress: the history and this call's timing of blocks after its first (compiling) one, summed over calls
    state = (disc, disc_opt, gen, gen_opt, [])
    progress = {"kept": 0, "history": [], "timed_steps": 0, "timed_s": 0.0}
    blocks = cfg.steps // cfg.snapshot_every
    store = None
    if checkpoint is not None:
        store = Checkpoint(checkpoint, _reward_fingerprint(cfg, dataset, model, key, holdout_seed, fit_cfg), owner="learn_reward",
                           other="another reward's training (other data, model, config or key; `dynlearn model reward ... "
                                 "--force` deletes it)")
        snapshot_like = (disc, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        loaded = store.load(lambda p: (disc, disc_opt, gen, gen_opt, [snapshot_like] * int(p["kept"])))
        if loaded is not None:
            state, progress = loaded
            if log is not None:
                log(f"dynamics reward: continuing from {store.folder} at step {progress['step']:,}")
    timing = {"last": None}

    def reward_block(state, progress):
        disc, disc_opt, gen, gen_opt, kept = state
        b = progress["step"] // cfg.snapshot_every
        disc, disc_opt, gen, gen_opt, expert, learner, info = _block(disc, disc_opt, gen, gen_opt, elites, norms, train,
                                                                     jax.random.fold_in(train_key, b), cfg=cfg)
        kept = (list(kept) + [(disc, expert, learner)])[-cfg.snapshots:]
        info, expert_h, learner_h = jax.device_get((info, expert, learner))  # the one host sync per block
        row = {"step": (b + 1) * cfg.snapshot_every, **{k: float(v) for k, v in info.items()},
               "snapshot/expert_logit": float(expert_h), "snapshot/learner_logit": float(learner_h)}
        progress["history"].append(row)
        progress["kept"] = len(kept)
        now = time.perf_counter()
        if timing["last"] is not None:
            progress["timed_steps"] += cfg.snapshot_every
            progress["timed_s"] += now - timing["last"]
        timing["last"] = now
        if log is not None and (b + 1) % max(1, blocks // 10) == 0:
            log(f"dynamics reward: step {row['step']:,}  D loss {row['disc/loss']:.3f}  D accuracy {row['disc/accuracy']:.2f}")
        return (disc, disc_opt, gen, gen_opt, kept), row

    state, progress, _ = run(
        reward_block, state, progress, clock=clock, checkpoint=store, metrics=metrics,
        schedule=Schedule(block=cfg.snapshot_every, total=blocks * cfg.snapshot_every, checkpoint_every_s=checkpoint_every_s,
                          unit=cfg.snapshot_every),
        describe=lambda p, row: f"D loss {row['disc/loss']:.3f}  accuracy {row['disc/accuracy']:.2f}",
        line=ProgressLine(cfg.progress, "dynamics reward", blocks))

    reward = _assemble(list(state[4]), norms, cfg=cfg, obs_dim=model.obs_dim, act_dim=model.act_dim)
    diag = reward_diagnostics(reward, model, hold_t if len(hold_t) else train_t, key=eval_key)
    wall = clock.total()
    rate = progress["timed_steps"] / progress["timed_s"] if progress["timed_steps"] else cfg.steps / wall
    report = RewardReport(steps=blocks * cfg.snapshot_every, discriminators=reward.n_discriminators, train_size=n,
                          holdout_size=diag["rows"], holdout_reward_data=diag["reward_data"], holdout_reward_model=diag["reward_model"],
                          holdout_auc=diag["auc"], wall_s=wall, steps_per_s=rate, history=tuple(progress["history"]))
    return reward, report


def _reward_fingerprint(cfg: DynamicsRewardConfig, dataset: Dataset, model: ProbabilisticEnsemble, key: Key, holdout_seed: int,
                        fit_cfg: FitConfig) -> str:
    """What the training state depends on: a checkpoint of another reward's training is refused."""
    fields = {k: v for k, v in cfg.to_dict().items() if k != "progress"}
    return fingerprint(fields, dataset.content_hash(), arrays_digest(model), key_data(key), holdout_seed, fit_cfg.identity())


# ----------------------------------------------------------------------------------------------
# Diagnostics


@eqx.filter_jit
def _rewards_and_model_rewards(reward: DynamicsReward, model: ProbabilisticEnsemble, obs, act, next_obs, key):
    model_next = _model_sample(elite_model(model), obs, act, key=key)[0]
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


# ----------------------------------------------------------------------------------------------
# Save / load


def save_reward(folder: str | os.PathLike, reward: DynamicsReward, report: RewardReport | None = None, *, force: bool = True) -> Path:
    """Write ``config.json`` (structure, config, library version, leaf shapes) + ``leaves.eqx`` (+ ``report.json``)."""
    folder = save_module(folder, reward, reward.header(), kind=KIND, force=force)
    if report is not None:
        write_json(Path(folder) / "report.json", dataclasses.asdict(report), force=force)
    return Path(folder)


def load_reward(folder: str | os.PathLike) -> DynamicsReward:
    """Read what :func:`save_reward` wrote; checks the library version (same major.minor) and every leaf's shape."""
    from .. import __version__

    folder = Path(folder)
    source = str(folder / "config.json")
    header = read_header(folder, kind=KIND)
    saved = header.get("dynlearn_version")
    if saved is None or tuple(str(saved).split(".")[:2]) != tuple(__version__.split(".")[:2]):
        raise DataError(source, f"written by dynlearn {saved}, this is {__version__} (checkpoints are compatible within one "
                        "major.minor version).", "load it with the dynlearn version that wrote it.", key="dynlearn_version")
    body = header.get("config")
    if not isinstance(body, dict) or body.get("reward_format") != REWARD_FORMAT:
        raise DataError(source, f"not a dynamics reward of format {REWARD_FORMAT}.", "pass a folder written by save_reward.", key="config")
    try:
        like = DynamicsReward.skeleton(body, source=source)
    except (KeyError, TypeError) as e:
        raise DataError(source, f"incomplete dynamics reward config ({e!r}).",
                        "pass a folder written by save_reward.", key="config") from None
    expected = [list(x.shape) for x in jax.tree_util.tree_leaves(like)]
    if body.get("leaf_shapes") != expected:
        raise DataError(source, f"leaf shapes {body.get('leaf_shapes')} do not match the structure its config describes ({expected}).",
                        "the checkpoint is corrupt or was edited; re-save it.", key="leaf_shapes")
    return load_leaves(folder, like)


def load_report(folder: str | os.PathLike) -> RewardReport | None:
    """The :class:`RewardReport` saved beside a reward, if any."""
    path = Path(folder) / "report.json"
    return RewardReport.from_dict(json.loads(path.read_text())) if path.is_file() else None
