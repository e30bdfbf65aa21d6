"""HyperCRL's dynamics model: a hypernetwork that writes every weight of a task's dynamics network.

Huang, Xie, Bharadhwaj and Shkurti 2021, "Continual Model-Based Reinforcement Learning with Hypernetworks" (ICRA 2021,
arXiv 2009.11997; reference code ``rvl-lab-utoronto/HyperCRL``, its hypernetwork after von Oswald et al. 2020,
arXiv 1906.00695). Each task ``t`` has a learned embedding ``e_t``; a hypernetwork MLP ``h(e; theta)`` outputs the flat
parameter vector of a *target* MLP ``(obs, act) -> delta obs``, so one fixed-size ``theta`` holds the dynamics of every
task seen. While task ``t`` trains, an output regulariser keeps the weights generated for each earlier task where they
were when task ``t`` started::

    loss = MSE_t + beta * 1/t * sum_{j<t} || h(e_j; theta + dtheta) - h(e_j; theta_saved) ||^2

with the earlier embeddings frozen and ``dtheta`` the step the optimiser would take on ``MSE_t`` alone (the reference's
two-step "look-ahead"; ``lookahead=False`` drops it). The embedding of task ``t`` learns from ``MSE_t`` only, with its
own Adam.

Followed from the reference (``hypercrl/tools/default_arg.py``, ``hypercrl/hnet_exp.py``, ``hypercl/utils/
hnet_regularizer.py``): embedding size 10, embeddings drawn from N(0, 1), beta 0.05, Adam with learning rate 1e-4 for
``theta`` and the embedding, gradients clipped to norm 5, the hypernetwork's weights Xavier-uniform (one output head per
target tensor, so each head's bound uses that tensor's size) and biases zero, ReLU in both networks, per-task input and
output standardisation, a deterministic target network trained by mean squared error on the change of the observation
(the reference's ``out_var=False`` of its pendulum and inverted-pendulum settings; its Gaussian head for HalfCheetah is
not implemented). The regulariser is a plain sum of squares over all generated weights, averaged over earlier tasks,
as the reference's ``calc_fix_target_reg``; the task loss is a batch mean (the reference sums over the batch and scales
beta by the batch size: the same ratio). Not implemented: the chunked hypernetwork and the reference's L1 weight term.

The planners use the network generated for a task (:meth:`HyperDynamics.target`, a deterministic
:class:`~dynlearn.models.AbstractTransitionModel` whose reward and termination are the task's functions).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._types import Array, Float, Int, Key
from ..errors import ConfigError
from .base import AbstractTransitionModel, MemberOutputs, ModelState, Prediction

ACTIVATIONS: dict[str, Callable] = {"relu": jax.nn.relu, "elu": jax.nn.elu, "swish": jax.nn.swish, "tanh": jnp.tanh}
NO_NOISE_LOGVAR = -30.0
"""The log-variance a deterministic target network reports (a std of 3e-7: no aleatoric noise)."""


@dataclasses.dataclass(frozen=True)
class HyperNetConfig:
    """The hypernetwork, its target network and how one task trains (defaults: the reference's, see the module doc)."""

    target_hidden: tuple[int, ...] = (32, 32)
    """hidden widths of the generated dynamics network (reference, Pendulum: 32, 32)"""
    hyper_hidden: tuple[int, ...] = (16, 16)
    """hidden widths of the hypernetwork (reference for a 32, 32 target: 16, 16)"""
    embedding_dim: int = 10
    """size of each task embedding"""
    activation: str = "relu"
    """activation of both networks: relu, elu, swish or tanh"""
    embedding_std: float = 1.0
    """std of a new task's embedding"""
    lr: float = 1e-4
    """Adam learning rate of the hypernetwork and of the task embedding"""
    grad_clip: float = 5.0
    """global norm the gradients are clipped to (the hypernetwork's and the embedding's apart)"""
    beta: float = 0.05
    """weight of the output regulariser (0: plain fine-tuning)"""
    lookahead: bool = True
    """regularise at theta + the task loss's optimiser step (the reference's two-step optimisation)"""
    batch_size: int = 32
    """transitions per gradient step (and per earlier task where earlier data is replayed)"""

    def __post_init__(self):
        if not self.target_hidden or min(self.target_hidden) < 1 or not self.hyper_hidden or min(self.hyper_hidden) < 1:
            raise ConfigError("HyperNetConfig: target_hidden and hyper_hidden need positive widths.")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"HyperNetConfig.activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}.")
        if self.embedding_dim < 1 or self.batch_size < 1 or self.lr <= 0 or self.grad_clip <= 0 or self.beta < 0:
            raise ConfigError("HyperNetConfig: embedding_dim and batch_size must be >= 1, lr and grad_clip > 0, beta >= 0.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def target_shapes(in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The target MLP's tensors in order: ``W [in, out], b [out]`` per layer."""
    sizes = (in_dim, *hidden, out_dim)
    return [shape for a, b in zip(sizes[:-1], sizes[1:]) for shape in ((a, b), (b,))]


def unflatten(flat: Float[Array, " p"], shapes) -> list[Float[Array, "..."]]:
    out, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(flat[start:start + n].reshape(shape))
        start += n
    return out


def mlp(params: list, x: Float[Array, "... i"], activation: str) -> Float[Array, "... o"]:
    """The target network at ``x`` (any leading axes) with the flat-list ``params`` of :func:`unflatten`."""
    act, h, layers = ACTIVATIONS[activation], x, len(params) // 2
    for i in range(layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        h = act(h) if i < layers - 1 else h
    return h


class HyperNet(eqx.Module):
    """The trainable part: the hypernetwork's layers ``theta`` and one embedding row per task."""

    theta: tuple[tuple[Float[Array, "i o"], Float[Array, " o"]], ...]
    embeddings: Float[Array, "tasks emb"]
    activation: str = eqx.field(static=True)

    def generate(self, embedding: Float[Array, " emb"]) -> Float[Array, " p"]:
        """The flat parameter vector of the target network for one embedding."""
        h, last = embedding, len(self.theta) - 1
        for i, (w, b) in enumerate(self.theta):
            h = h @ w + b
            h = ACTIVATIONS[self.activation](h) if i < last else h
        return h

    def all_weights(self) -> Float[Array, "tasks p"]:
        """Every task's generated weights."""
        return jax.vmap(self.generate)(self.embeddings)


class HyperDynamics(eqx.Module):
    """A :class:`HyperNet` with each task's input ``(obs, act)`` and output (delta obs) standardisation."""

    net: HyperNet
    x_mean: Float[Array, "tasks i"]
    x_std: Float[Array, "tasks i"]
    y_mean: Float[Array, "tasks o"]
    y_std: Float[Array, "tasks o"]
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    target_hidden: tuple[int, ...] = eqx.field(static=True)

    @classmethod
    def init(cls, cfg: HyperNetConfig, obs_dim: int, act_dim: int, tasks: int, *, key: Key) -> "HyperDynamics":
        shapes = target_shapes(obs_dim + act_dim, obs_dim, cfg.target_hidden)
        sizes = (cfg.embedding_dim, *cfg.hyper_hidden)
        emb_key, *keys = jax.random.split(key, len(sizes) + 1)
        theta = []
        for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:])):
            bound = math.sqrt(6.0 / (a + b))
            theta.append((jax.random.uniform(k, (a, b), jnp.float32, -bound, bound), jnp.zeros(b, jnp.float32)))
        h = sizes[-1]  # one Xavier bound per target tensor, as one output head per tensor in the reference
        bound = jnp.concatenate([jnp.full(math.prod(s), math.sqrt(6.0 / (h + math.prod(s))), jnp.float32) for s in shapes])
        out = jax.random.uniform(keys[-1], (h, bound.size), jnp.float32, -1.0, 1.0) * bound
        theta.append((out, jnp.zeros(bound.size, jnp.float32)))
        emb = cfg.embedding_std * jax.random.normal(emb_key, (tasks, cfg.embedding_dim), jnp.float32)
        i, o = obs_dim + act_dim, obs_dim
        ones = lambda d: jnp.ones((tasks, d), jnp.float32)  # noqa: E731
        return cls(net=HyperNet(theta=tuple(theta), embeddings=emb, activation=cfg.activation), x_mean=0 * ones(i), x_std=ones(i),
                   y_mean=0 * ones(o), y_std=ones(o), obs_dim=obs_dim, act_dim=act_dim, target_hidden=tuple(cfg.target_hidden))

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return target_shapes(self.obs_dim + self.act_dim, self.obs_dim, self.target_hidden)

    @property
    def tasks(self) -> int:
        return int(self.net.embeddings.shape[0])

    def with_normalizer(self, task: int, x, y, min_std: float = 1e-6) -> "HyperDynamics":
        """Task ``task``'s standardisation fitted to its inputs ``x [N, i]`` and targets ``y [N, o]``."""
        x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
        sx, sy = jnp.maximum(x.std(axis=0), min_std), jnp.maximum(y.std(axis=0), min_std)
        return dataclasses.replace(self, x_mean=self.x_mean.at[task].set(x.mean(axis=0)), x_std=self.x_std.at[task].set(sx),
                                   y_mean=self.y_mean.at[task].set(y.mean(axis=0)), y_std=self.y_std.at[task].set(sy))

    def task_loss(self, net: HyperNet, task, x: Float[Array, "b i"], y: Float[Array, "b o"]) -> Float[Array, ""]:
        """Mean squared error of task ``task``'s generated network, in its standardised units."""
        params = unflatten(net.generate(net.embeddings[task]), self.shapes)
        pred = mlp(params, (x - self.x_mean[task]) / self.x_std[task], net.activation)
        return jnp.mean(jnp.square(pred - (y - self.y_mean[task]) / self.y_std[task]))

    def predict(self, task, obs: Float[Array, "... obs"], act: Float[Array, "... act"]) -> Float[Array, "... obs"]:
        """Task ``task``'s predicted change of the observation."""
        return self.target(task).delta(obs, act)

    def target(self, task, *, reward_fn: Callable | None = None, termination_fn: Callable | None = None) -> "TargetMLP":
        """The dynamics network generated for task ``task``, as a model planners use."""
        params = unflatten(self.net.generate(self.net.embeddings[task]), self.shapes)
        return TargetMLP(params=tuple(params), x_mean=self.x_mean[task], x_std=self.x_std[task], y_mean=self.y_mean[task],
                         y_std=self.y_std[task], obs_dim=self.obs_dim, act_dim=self.act_dim, activation=self.net.activation,
                         reward_fn=reward_fn, termination_fn=termination_fn)


class TargetMLP(AbstractTransitionModel):
    """One task's generated network: deterministic ``next_obs = obs + delta``; reward and termination from the task's
    functions (reward 0 and no termination where none is given). One member, elite."""

    params: tuple[Float[Array, "..."], ...]
    x_mean: Float[Array, " i"]
    x_std: Float[Array, " i"]
    y_mean: Float[Array, " o"]
    y_std: Float[Array, " o"]
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    reward_fn: Any = eqx.field(static=True, default=None)
    termination_fn: Any = eqx.field(static=True, default=None)

    def delta(self, obs, act):
        x = jnp.concatenate([obs.astype(jnp.float32), act.astype(jnp.float32)], axis=-1)
        return mlp(list(self.params), (x - self.x_mean) / self.x_std, self.activation) * self.y_std + self.y_mean

    def _step(self, obs, act):
        next_obs = obs.astype(jnp.float32) + self.delta(obs, act)
        zeros = jnp.zeros(obs.shape[:-1], jnp.float32)
        reward = zeros if self.reward_fn is None else self.reward_fn(obs, act, next_obs).astype(jnp.float32)
        terminal = zeros > 0 if self.termination_fn is None else jnp.asarray(self.termination_fn(obs, act, next_obs), bool)
        return next_obs, reward, terminal

    def init_state(self, obs, *, key: Key) -> ModelState:
        return ModelState()

    def members(self, obs, act) -> MemberOutputs:
        next_obs, reward, _ = self._step(obs, act)
        mean = jnp.concatenate([next_obs - obs.astype(jnp.float32), reward[..., None]], axis=-1)[None]
        return MemberOutputs(mean, jnp.full_like(mean, NO_NOISE_LOGVAR), None, jnp.zeros(1, jnp.int32), self.obs_dim)

    def step(self, state, obs, act, *, key: Key, member=None, deterministic: bool = False) -> tuple[ModelState, Prediction]:
        next_obs, reward, terminal = self._step(obs, act)
        return state, Prediction(next_obs, reward, terminal, jnp.zeros(obs.shape[:-1], jnp.int32), self.members(obs, act))


def output_regularizer(net: HyperNet, targets: Float[Array, "tasks p"], earlier: Int[Array, ""]) -> Float[Array, ""]:
    """``1/t sum_{j<t} ||h(e_j) - targets_j||^2`` for ``t = earlier`` (0 when no task came before)."""
    sq = jnp.sum(jnp.square(net.all_weights() - targets), axis=1)
    mask = jnp.arange(sq.shape[0]) < earlier
    return jnp.sum(jnp.where(mask, sq, 0.0)) / jnp.maximum(earlier, 1).astype(jnp.float32)


class HyperOptState(NamedTuple):
    theta: Any
    embedding: Any


def _optimizer(cfg: HyperNetConfig):
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr))


def init_optimizer(model: HyperDynamics, cfg: HyperNetConfig) -> HyperOptState:
    """Fresh Adam states (the reference makes new optimisers at the start of every task)."""
    opt = _optimizer(cfg)
    return HyperOptState(opt.init(model.net.theta), opt.init(model.net.embeddings))


class Replay(NamedTuple):
    """Earlier tasks' stored transitions, replayed beside the current task's (multitask, coreset): inputs ``x [T, R, i]``,
    targets ``y [T, R, o]``, valid rows per task ``n [T]``; task ``j`` is replayed while ``j`` is below the current."""

    x: Float[Array, "tasks r i"]
    y: Float[Array, "tasks r o"]
    n: Int[Array, " tasks"]


def _update(opt, params, grads, state):
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with its int32 step count
        updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state


def _lookahead(opt, params, grads, state):
    with jax.numpy_dtype_promotion("standard"):
        return opt.update(grads, state, params)[0]


@eqx.filter_jit
def _train(model: HyperDynamics, opt_state: HyperOptState, x, y, n, task, targets, replay: Replay | None, key, cfg: HyperNetConfig,
           steps: int):
    opt, b = _optimizer(cfg), cfg.batch_size
    tasks = model.tasks
    emb_mask = (jnp.arange(tasks) <= task) if replay is not None else (jnp.arange(tasks) == task)

    def loss(theta, emb, bx, by, rx, ry):
        net = dataclasses.replace(model.net, theta=theta, embeddings=emb)
        value = model.task_loss(net, task, bx, by)
        if replay is not None:
            per_task = jax.vmap(lambda j, xj, yj: model.task_loss(net, j, xj, yj))(jnp.arange(tasks), rx, ry)
            value = value + jnp.sum(jnp.where(jnp.arange(tasks) < task, per_task, 0.0))
        return value

    def reg(theta, emb):
        return output_regularizer(dataclasses.replace(model.net, theta=theta, embeddings=emb), targets, task)

    def body(carry, k):
        net, (s_theta, s_emb) = carry
        k_now, k_old = jax.random.split(k)
        rows = jax.random.randint(k_now, (b,), 0, n)
        rx = ry = None
        if replay is not None:
            old = jax.random.randint(k_old, (tasks, b), 0, jnp.maximum(replay.n, 1)[:, None])
            rx, ry = replay.x[jnp.arange(tasks)[:, None], old], replay.y[jnp.arange(tasks)[:, None], old]
        value, (g_theta, g_emb) = jax.value_and_grad(loss, argnums=(0, 1))(net.theta, net.embeddings, x[rows], y[rows], rx, ry)
        g_emb = jnp.where(emb_mask[:, None], g_emb, 0.0)
        emb, s_emb = _update(opt, net.embeddings, g_emb, s_emb)
        penalty = jnp.zeros((), jnp.float32)
        if cfg.beta > 0:  # the earlier tasks' embeddings are frozen here: net.embeddings == emb on their rows
            step = _lookahead(opt, net.theta, g_theta, s_theta) if cfg.lookahead else None
            moved = lambda th: th if step is None else jax.tree_util.tree_map(  # noqa: E731
                lambda p, d: p + jax.lax.stop_gradient(d), th, step)
            penalty, g_reg = jax.value_and_grad(lambda th: reg(moved(th), net.embeddings))(net.theta)
            g_theta = jax.tree_util.tree_map(lambda a, r: a + cfg.beta * r, g_theta, g_reg)
        theta, s_theta = _update(opt, net.theta, g_theta, s_theta)
        return (dataclasses.replace(net, theta=theta, embeddings=emb), HyperOptState(s_theta, s_emb)), (value, penalty)

    (net, opt_state), (losses, penalties) = jax.lax.scan(body, (model.net, opt_state), jax.random.split(key, steps))
    return dataclasses.replace(model, net=net), opt_state, losses, penalties


def train_task(model: HyperDynamics, opt_state: HyperOptState, task: int, x: Float[Array, "n i"], y: Float[Array, "n o"], *,
               cfg: HyperNetConfig, steps: int, key: Key, rows: int | None = None, targets: Float[Array, "tasks p"] | None = None,
               replay: Replay | None = None) -> tuple[HyperDynamics, HyperOptState, dict]:
    """``steps`` Adam steps on task ``task`` (one compiled ``lax.scan``): minibatches of ``cfg.batch_size`` drawn from the
    first ``rows`` (default all) of ``x`` (raw ``(obs, act)``) and ``y`` (raw delta obs), standardised with the task's
    normaliser (set it with :meth:`HyperDynamics.with_normalizer` first), plus, when ``cfg.beta > 0``, the output
    regulariser towards ``targets`` (``model.net.all_weights()`` saved when the task started) for tasks ``0..task-1``,
    and ``replay``'s minibatches of the earlier tasks. Returns the model, the optimiser state and
    ``{"loss": last step's task loss, "regularizer": its output regulariser}``."""
    if not 0 <= task < model.tasks:
        raise ConfigError(f"train_task: task {task} outside the model's {model.tasks} task embeddings.")
    if cfg.beta > 0 and targets is None:
        raise ConfigError("train_task: beta > 0 needs the targets saved when the task started (model.net.all_weights()).")
    targets = jnp.zeros((model.tasks, 1), jnp.float32) if targets is None else jnp.asarray(targets, jnp.float32)
    n = jnp.asarray(x.shape[0] if rows is None else rows, jnp.int32)
    model, opt_state, losses, penalties = _train(model, opt_state, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), n,
                                                 jnp.asarray(task, jnp.int32), targets, replay, key, cfg, steps)
    return model, opt_state, {"loss": float(losses[-1]), "regularizer": float(penalties[-1])}
