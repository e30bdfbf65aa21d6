"""Probabilistic ensemble: E Gaussian MLPs predicting ``(next_obs - obs, reward)`` (PETS/MBPO/MOPO).

Chua et al. 2018 (PETS, arXiv 1805.12114) and Janner et al. 2019 (MBPO, 1906.08253), as configured in
OfflineRL-Kit's ``EnsembleDynamicsModel``/``EnsembleDynamics`` (the MOPO/MOBILE model): 7 members of
4 hidden layers of 200 with Swish, 5 elites chosen by holdout MSE, Gaussian heads whose log-variance is
soft-clamped between learned bounds ``max_logvar`` (init 0.5) and ``min_logvar`` (init -10) shared by
the members, with ``0.01 * (sum max_logvar - sum min_logvar)`` in the loss; L2 weight decay
``0.5 * wd_l * |W_l|^2`` per layer (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) added to the loss (Adam, not
AdamW); inputs ``(obs, act)`` standardised with the training split's statistics, targets in data units.

Member parameters are stacked on a leading axis: every layer is one batched matmul
(``einsum('eni,eio->eno')``), never a loop over members.

Differences from OfflineRL-Kit, each switchable in :class:`EnsembleConfig`:

- a logistic **termination head** (one more output per member, trained jointly with binary
  cross-entropy on every row) so a model of a task without a termination function still ends episodes;
  a task's ``termination_fn`` replaces it at :meth:`ProbabilisticEnsemble.step` when attached. Cost: one
  output column of 37 (0.1% of the FLOPs). ``termination_head=False`` removes it.
- ``normalize_targets`` (off by default, as in Kit) standardises ``(delta obs, reward)`` too; outputs
  are always returned in data units.
- none in the initialisation: weights are drawn from a normal of std ``1/(2 sqrt(fan_in))``, biases zero. Kit calls
  ``trunc_normal_`` with that std but cuts at +-2 absolute, which at these stds is no cut at all; MBPO's TensorFlow
  code cuts at 2 std (``weight_init="truncated"``), which spreads the weights 0.88x as wide and, on hopper-medium,
  leaves the fit's holdout error about 4% higher after the same epochs (``benchmarks/parity.md``, section 1).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array, Float, Int, Key
from ..data.normalize import Normalizer
from ..errors import ConfigError
from .base import AbstractTransitionModel, MemberOutputs, ModelState, Prediction, random_elites, select_member

ACTIVATIONS: dict[str, Callable] = {
    "swish": jax.nn.swish, "relu": jax.nn.relu, "tanh": jnp.tanh, "elu": jax.nn.elu, "gelu": jax.nn.gelu,
}


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """Architecture and loss of a :class:`ProbabilisticEnsemble`; defaults are OfflineRL-Kit's MOPO/MOBILE model."""

    members: int = 7
    """Number of Gaussian MLPs trained side by side (each on its own bootstrap sample)."""
    elites: int = 5
    """Members with the lowest holdout MSE that step() samples from."""
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden layer widths of every member."""
    activation: str = "swish"
    """Hidden activation: swish (x * sigmoid(x)), relu, tanh, elu or gelu."""
    weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    """L2 coefficient per layer (hidden layers then output): 0.5 * wd * sum(W^2) is added to the loss."""
    max_logvar_init: float = 0.5
    """Initial upper soft bound of the log-variance (per target dimension, shared by members)."""
    min_logvar_init: float = -10.0
    """Initial lower soft bound of the log-variance."""
    learn_logvar_bounds: bool = True
    """Train the bounds (with the regulariser below); if False they stay at their initial values."""
    logvar_bound_coef: float = 0.01
    """Weight of sum(max_logvar) - sum(min_logvar) in the loss (keeps the learned bounds tight)."""
    normalize_inputs: bool = True
    """Standardise (obs, act) with the training split's mean and std."""
    normalize_targets: bool = False
    """Standardise (delta obs, reward) too (OfflineRL-Kit does not); outputs stay in data units."""
    termination_head: bool = True
    """Add a logistic termination output per member (used when no termination_fn is attached)."""
    termination_coef: float = 1.0
    """Weight of the termination head's binary cross-entropy in the loss."""
    weight_init: str = "normal"
    """Weights' initial draw, std 1/(2 sqrt(fan_in)): "normal" (OfflineRL-Kit's in effect) or "truncated" at 2 std (MBPO's)."""

    def __post_init__(self):
        if self.members < 1 or not 1 <= self.elites <= self.members:
            raise ConfigError(f"EnsembleConfig: members ({self.members}) must be >= 1 and elites ({self.elites}) between 1 and "
                              "members.")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"EnsembleConfig.hidden must be positive widths, got {self.hidden}.")
        if len(self.weight_decay) != len(self.hidden) + 1:
            raise ConfigError(f"EnsembleConfig.weight_decay needs one value per layer ({len(self.hidden) + 1}: hidden layers "
                              f"then output), got {len(self.weight_decay)}.")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"EnsembleConfig.activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}.")
        if self.weight_init not in ("normal", "truncated"):
            raise ConfigError(f"EnsembleConfig.weight_init must be 'normal' or 'truncated', got {self.weight_init!r}.")
        if not self.min_logvar_init < self.max_logvar_init:
            raise ConfigError(f"EnsembleConfig: min_logvar_init {self.min_logvar_init} "
                              f"must be below max_logvar_init {self.max_logvar_init}.")

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "EnsembleConfig":
        """From JSON; unknown keys raise :class:`~dynlearn.DataError`, lists become tuples."""
        from ..agents.base import config_from_dict

        return config_from_dict(cls, d, source=source)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def soft_clamp(x, low, high):
    """Clamp between ``low`` and ``high`` with softplus edges, keeping gradients (MBPO/OfflineRL-Kit)."""
    x = high - jax.nn.softplus(high - x)
    return low + jax.nn.softplus(x - low)


class EnsembleMLP(eqx.Module):
    """The trainable part: stacked member weights ``[E, in, out]`` and the shared log-variance bounds.

    Works in normalised units: inputs are standardised, outputs are (normalised) target mean,
    clamped log-variance and termination logit.
    """

    weights: tuple[Float[Array, "members i o"], ...]
    biases: tuple[Float[Array, "members o"], ...]
    max_logvar: Float[Array, " target"]
    min_logvar: Float[Array, " target"]
    activation: str = eqx.field(static=True)
    target_dim: int = eqx.field(static=True)
    termination_head: bool = eqx.field(static=True)
    learn_logvar_bounds: bool = eqx.field(static=True)

    @classmethod
    def init(cls, cfg: EnsembleConfig, in_dim: int, target_dim: int, *, key: Key) -> "EnsembleMLP":
        out = 2 * target_dim + int(cfg.termination_head)
        sizes = (in_dim, *cfg.hidden, out)
        layers = list(zip(sizes[:-1], sizes[1:]))
        e = cfg.members
        # One draw for all weights, sliced per layer (each separate draw compiles its own threefry program).
        shape = (sum(e * a * b for a, b in layers),)
        if cfg.weight_init == "truncated":
            z = jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32)
        else:
            z = jax.random.normal(key, shape, jnp.float32)
        weights, start = [], 0
        for a, b in layers:
            weights.append((z[start:start + e * a * b] / (2.0 * math.sqrt(a))).reshape(e, a, b))
            start += e * a * b
        biases = tuple(jnp.zeros((e, b), jnp.float32) for _, b in layers)
        return cls(tuple(weights), biases, jnp.full((target_dim,), cfg.max_logvar_init, jnp.float32),
                   jnp.full((target_dim,), cfg.min_logvar_init, jnp.float32), cfg.activation, target_dim,
                   cfg.termination_head, cfg.learn_logvar_bounds)

    @property
    def n_members(self) -> int:
        return int(self.weights[0].shape[0])

    def __call__(self, x: Float[Array, "n i"] | Float[Array, "members n i"]):
        """``x``: one input batch shared by every member ``[n, in]``, or one per member ``[E, n, in]``.

        Returns ``(mean [E, n, target], logvar [E, n, target], logit [E, n] | None)``.
        """
        act = ACTIVATIONS[self.activation]
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = jnp.einsum("ni,eio->eno" if h.ndim == 2 else "eni,eio->eno", h, w) + b[:, None, :]
            if i < last:
                h = act(h)
        d = self.target_dim
        mean, logvar = h[..., :d], h[..., d:2 * d]
        high, low = self.max_logvar, self.min_logvar
        if not self.learn_logvar_bounds:
            high, low = jax.lax.stop_gradient(high), jax.lax.stop_gradient(low)
        logvar = soft_clamp(logvar, low, high)
        logit = h[..., 2 * d] if self.termination_head else None
        return mean, logvar, logit

    def decay(self, coefs: tuple[float, ...]) -> Float[Array, ""]:
        """``sum_l 0.5 * wd_l * |W_l|^2`` over every member (weights only, as OfflineRL-Kit)."""
        return sum(0.5 * c * jnp.sum(jnp.square(w)) for c, w in zip(coefs, self.weights))


class EnsembleState(ModelState):
    """One member index per particle (for planners that keep a member per particle)."""

    member: Int[Array, "..."]


class ProbabilisticEnsemble(AbstractTransitionModel):
    """E Gaussian MLPs over ``(next_obs - obs, reward)``; see the module docstring.

    Build with :meth:`init` (or let :func:`dynlearn.models.fit` build it from an :class:`EnsembleConfig`);
    attach a task's termination/reward functions with :meth:`with_task`.

    >>> model, report = dl.models.fit(dl.models.EnsembleConfig(), dataset, key=key, task=task)
    >>> state = model.init_state(obs, key=k0)
    >>> state, pred = model.step(state, obs, act, key=k1)            # random elite per sample
    """

    net: EnsembleMLP
    input_norm: Normalizer
    target_norm: Normalizer
    elites: Int[Array, " elites"]
    cfg: EnsembleConfig = eqx.field(static=True)
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    task_id: str | None = eqx.field(static=True, default=None)
    termination_fn: Callable | None = eqx.field(static=True, default=None)
    reward_fn: Callable | None = eqx.field(static=True, default=None)

    @classmethod
    def init(cls, cfg: EnsembleConfig, obs_dim: int, act_dim: int, *, key: Key) -> "ProbabilisticEnsemble":
        """Fresh parameters, identity normalisers, elites ``0..elites-1`` (``fit`` sets all three)."""
        if obs_dim < 1 or act_dim < 1:
            raise ConfigError(f"ProbabilisticEnsemble: obs_dim {obs_dim} and act_dim {act_dim} must be >= 1.")
        target = obs_dim + 1
        net = eqx.filter_jit(EnsembleMLP.init)(cfg, obs_dim + act_dim, target, key=key)  # one compiled program, not one per op
        return cls(net=net, input_norm=Normalizer.identity(obs_dim + act_dim),
                   target_norm=Normalizer.identity(target), elites=jnp.arange(cfg.elites, dtype=jnp.int32), cfg=cfg,
                   obs_dim=obs_dim, act_dim=act_dim)

    def with_task(self, task: Any | None) -> "ProbabilisticEnsemble":
        """Attach ``task.termination_fn`` / ``task.reward_fn`` (either may be None: then the learned
        head / reward is used). ``None`` detaches. Any object with ``id``, ``termination_fn``, ``reward_fn``
        works (a :class:`dynlearn.tasks.Task`)."""
        if task is None:
            return dataclasses.replace(self, task_id=None, termination_fn=None, reward_fn=None)
        if getattr(task, "obs_dim", self.obs_dim) != self.obs_dim or getattr(task, "act_dim", self.act_dim) != self.act_dim:
            raise ConfigError(f"task {task.id} has obs/act dims {task.obs_dim}/{task.act_dim}, the model {self.obs_dim}/{self.act_dim}.")
        return dataclasses.replace(self, task_id=task.id, termination_fn=task.termination_fn, reward_fn=task.reward_fn)

    @property
    def target_dim(self) -> int:
        return self.obs_dim + 1

    @property
    def n_members(self) -> int:
        return self.cfg.members

    # ------------------------------------------------------------------------------------------
    # Inference

    @eqx.filter_jit
    def init_state(self, obs: Float[Array, "... obs"], *, key: Key) -> EnsembleState:
        """A random elite per particle, kept for the particle's whole rollout (pass ``member=state.member``)."""
        return EnsembleState(member=random_elites(self.elites, obs.shape[:-1], key=key))

    @eqx.filter_jit
    def members(self, obs: Float[Array, "... obs"], act: Float[Array, "... act"]) -> MemberOutputs:
        batch = obs.shape[:-1]
        x = jnp.concatenate([obs.astype(jnp.float32), jnp.broadcast_to(act, (*batch, self.act_dim)).astype(jnp.float32)], axis=-1)
        mean, logvar, logit = self.net(self.input_norm(x.reshape(-1, x.shape[-1])))
        mean = self.target_norm.inverse(mean)
        logvar = logvar + 2.0 * jnp.log(self.target_norm.std)
        e = mean.shape[0]
        return MemberOutputs(mean=mean.reshape(e, *batch, self.target_dim), logvar=logvar.reshape(e, *batch, self.target_dim),
                             terminal_logit=None if logit is None else logit.reshape(e, *batch), elites=self.elites,
                             obs_dim=self.obs_dim)

    @eqx.filter_jit
    def step(self, state: EnsembleState, obs: Float[Array, "... obs"], act: Float[Array, "... act"], *, key: Key,
             member: Int[Array, "..."] | int | None = None, deterministic: bool = False) -> tuple[EnsembleState, Prediction]:
        """Sample ``(next_obs, reward, terminal)`` from one member per row.

        ``member=None`` draws a random elite per row (MBPO/MOPO); pass ``member=state.member`` for a fixed
        member per particle, or an int. ``deterministic=True`` returns the member's mean (no noise).
        Terminal: the attached ``termination_fn(obs, act, next_obs)``, else the member's termination head
        (probability > 0.5). Reward: the attached ``reward_fn(obs, act, next_obs)``, else the sample.
        """
        outputs = self.members(obs, act)
        batch = obs.shape[:-1]
        member_key, noise_key = jax.random.split(key)
        if member is None:
            member = random_elites(self.elites, batch, key=member_key)
        else:
            member = jnp.broadcast_to(jnp.asarray(member, jnp.int32), batch)
        mean = select_member(outputs.mean, member)
        if deterministic:
            y = mean
        else:
            std = jnp.exp(0.5 * select_member(outputs.logvar, member))
            y = mean + std * jax.random.normal(noise_key, mean.shape, mean.dtype)
        obs32 = obs.astype(jnp.float32)
        next_obs = obs32 + y[..., : self.obs_dim]
        reward = y[..., self.obs_dim] if self.reward_fn is None else self.reward_fn(obs32, act, next_obs).astype(jnp.float32)
        if self.termination_fn is not None:
            terminal = jnp.asarray(self.termination_fn(obs32, act, next_obs), bool)
        elif outputs.terminal_logit is not None:
            terminal = select_member(outputs.terminal_logit[..., None], member)[..., 0] > 0.0
        else:
            raise ConfigError("ProbabilisticEnsemble.step: no termination_fn attached and no termination head "
                              "(EnsembleConfig.termination_head=False). Fix: model.with_task(task) or refit with the head.")
        return state, Prediction(next_obs=next_obs, reward=reward, terminal=terminal, member=member, outputs=outputs)

    @eqx.filter_jit
    def step_elite_blocks(self, obs: Float[Array, "elites n obs"], act: Float[Array, "elites n act"], *, key: Key,
                          deterministic: bool = False):
        """Step block ``k`` of the rows with elite ``elites[k]`` only: ``(next_obs, reward, terminal)``, each ``[elites, n, ...]``.

        The trajectory-sampling planners (PETS' TS-inf) keep one member per particle; arranging the particles in one
        block per elite lets each elite evaluate only its own rows (one batched matmul per layer), ``elites / members``
        of the FLOPs of :meth:`step`, which evaluates every member on every row. Same distribution per row as
        ``step(..., member=elites[k])``.
        """
        if obs.shape[0] != self.elites.shape[0]:
            raise ConfigError(f"step_elite_blocks: need one block per elite ({self.elites.shape[0]}), got {obs.shape[0]}.")
        take = lambda x: jnp.take(x, self.elites, axis=0)  # noqa: E731
        net = eqx.tree_at(lambda n: (n.weights, n.biases), self.net,
                          (tuple(map(take, self.net.weights)), tuple(map(take, self.net.biases))))
        x = jnp.concatenate([obs.astype(jnp.float32), act.astype(jnp.float32)], axis=-1)
        mean, logvar, logit = net(self.input_norm(x))
        y = self.target_norm.inverse(mean)
        if not deterministic:
            y = y + jnp.exp(0.5 * logvar) * self.target_norm.std * jax.random.normal(key, y.shape, y.dtype)
        obs32 = obs.astype(jnp.float32)
        next_obs = obs32 + y[..., : self.obs_dim]
        reward = y[..., self.obs_dim] if self.reward_fn is None else self.reward_fn(obs32, act, next_obs).astype(jnp.float32)
        if self.termination_fn is not None:
            terminal = jnp.asarray(self.termination_fn(obs32, act, next_obs), bool)
        elif logit is not None:
            terminal = logit > 0.0
        else:
            raise ConfigError("ProbabilisticEnsemble.step_elite_blocks: no termination_fn attached and no termination head. "
                              "Fix: model.with_task(task) or refit with the head.")
        return next_obs, reward, terminal

    # ------------------------------------------------------------------------------------------
    # Checkpoints

    def header(self) -> dict:
        """What :func:`dynlearn.models.load` needs to rebuild the structure (stored in config.json)."""
        shapes = [list(x.shape) for x in jax.tree_util.tree_leaves(self)]
        return {"model": "ensemble", "obs_dim": self.obs_dim, "act_dim": self.act_dim, "task": self.task_id,
                "config": self.cfg.to_dict(), "leaf_shapes": shapes}

    @classmethod
    def skeleton(cls, header: dict, *, source: str) -> "ProbabilisticEnsemble":
        """A model with the structure ``header`` describes (values to be filled from the leaves)."""
        cfg = EnsembleConfig.from_dict(header["config"], source=source)
        obs_dim, act_dim = int(header["obs_dim"]), int(header["act_dim"])
        return eqx.filter_eval_shape(lambda: cls.init(cfg, obs_dim, act_dim, key=jax.random.key(0)))
