"""MOREC's dynamics reward ``r(s, a, s')``: an ensemble of historical discriminators and how it becomes a reward.

The structure learned by :func:`dynlearn.algos.morec.learning.learn_reward` (what is MOREC's and what is *ours*:
that module's docstring):

- **Discriminator** (the released code's ``DiscriminatorRestrain`` with its ``restrain`` encoder): an MLP on the
  state-action ``(s, a)`` (hidden 256, 128, embedding 64, ReLU) and one on the change ``s' - s`` (hidden 256, 128,
  embedding 16, ReLU), concatenated and fed to a head MLP that outputs a logit. Inputs are standardised with the
  data's mean and std. Every layer is stacked over a leading snapshot axis (one batched matmul for all snapshots).
- **Combination** (the released code's ``prob_mean_clip`` with ``load_min_max=False``): each snapshot's logit is
  clamped to ``[learner value, expert value]`` and mapped linearly onto ``[-1, 1]``; ``p_k = sigmoid`` of it; the
  reward is ``-log(1 - mean_k min(p_k, prob_clip) + 1e-9)``. So a transition a snapshot finds as typical as the
  data scores ``p = 0.73``, one as typical as the model's ``p = 0.27``; the reward lies in ``[0.31, 1.31]``, and
  MOREC's truncation threshold 0.6 means a mean ``p`` below 0.45. ``calibrate=False`` uses the raw sigmoid.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._types import Array, Float, Key
from ...agents.base import config_from_dict
from ...data.normalize import Normalizer
from ...errors import ConfigError

REWARD_FORMAT = 1
GENERATORS = ("fresh", "model", "frozen")
ACTIVATIONS: dict[str, Callable] = {"relu": jax.nn.relu, "tanh": jnp.tanh, "swish": jax.nn.swish, "elu": jax.nn.elu}


@dataclasses.dataclass(frozen=True)
class DynamicsRewardConfig:
    """How :func:`~dynlearn.algos.morec.learning.learn_reward` learns a dynamics reward (which values are MOREC's: that
    module's docstring)."""

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
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"DynamicsRewardConfig.activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}.")
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
        return config_from_dict(cls, d, source=source)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)



# ----------------------------------------------------------------------------------------------
# Networks: every layer stacked over a leading snapshot axis S (one batched matmul for all snapshots)


def stacked_layers(layer_sizes: tuple[tuple[int, ...], ...], stack: int, key: Key) -> tuple[tuple[tuple[Array, Array], ...], ...]:
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


def forward(layers, x: Float[Array, "n i"] | Float[Array, "s n i"], act: Callable, *, last: bool) -> Float[Array, "s n o"]:
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
        state_net, delta_net, head = stacked_layers(((obs_dim + act_dim, *cfg.state_hidden, cfg.state_embedding),
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
        act = ACTIVATIONS[self.activation]
        n, rn = sa.shape[0], delta.shape[0]
        if n and rn % n:
            raise ValueError(f"Discriminators: {rn} delta rows are not a whole number of copies of {n} (s, a) rows")
        zs = forward(self.state_net, sa, act, last=True)  # [s, n, e]
        if n and rn != n:
            zs = jnp.broadcast_to(zs[:, None], (zs.shape[0], rn // n, n, zs.shape[-1])).reshape(zs.shape[0], rn, zs.shape[-1])
        z = jnp.concatenate([zs, forward(self.delta_net, delta, act, last=True)], axis=-1)
        return forward(self.head, z, act, last=False)[..., 0]

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
        return eqx.filter_jit(empty_reward)(cfg, obs_dim, act_dim, stack, key)

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
        return eqx.filter_eval_shape(empty_reward, cfg, obs_dim, act_dim, stack, jax.random.key(0))


def empty_reward(cfg: DynamicsRewardConfig, obs_dim: int, act_dim: int, stack: int, key: Key) -> DynamicsReward:
    return DynamicsReward(discriminators=Discriminators.init(cfg, obs_dim, act_dim, stack, key=key),
                          expert_logit=jnp.ones((stack,), jnp.float32), learner_logit=jnp.zeros((stack,), jnp.float32),
                          input_norm=Normalizer.identity(obs_dim + act_dim), delta_norm=Normalizer.identity(obs_dim), cfg=cfg,
                          obs_dim=obs_dim, act_dim=act_dim)

