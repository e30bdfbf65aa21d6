"""The small networks agents share: an MLP, a critic ensemble with stacked parameters, three policies.

Every layer is a plain ``x @ w + b`` so one call handles one example ``[in]`` or a batch ``[..., in]``
with the same code (the batch case is one matmul, which is what XLA wants). Initialisation is
PyTorch's / equinox's default for ``Linear`` (uniform in ``+-1/sqrt(fan_in)``), as in OfflineRL-Kit;
:func:`edac_init` changes an MLP's biases and last layer to EDAC's scheme.
Policies work in the unit box ``[-1, 1]``; the agent maps actions to environment units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array, Float, Key

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class MLP(eqx.Module):
    """ReLU hidden layers, linear output. ``sizes = (in, hidden..., out)``."""

    weights: tuple[Float[Array, "i o"], ...]
    biases: tuple[Float[Array, " o"], ...]

    def __init__(self, sizes: Sequence[int], *, key: Key):
        # One uniform draw for every parameter, sliced per layer: each separate draw is a threefry
        # program that XLA compiles on its own (about 0.2 s each on 2 cores).
        layers = list(zip(sizes[:-1], sizes[1:]))
        u = jax.random.uniform(key, (sum((a + 1) * b for a, b in layers),), jnp.float32, -1.0, 1.0)
        weights, biases, start = [], [], 0
        for a, b in layers:
            bound = 1.0 / math.sqrt(a)
            weights.append(bound * u[start:start + a * b].reshape(a, b))
            biases.append(bound * u[start + a * b:start + (a + 1) * b])
            start += (a + 1) * b
        self.weights, self.biases = tuple(weights), tuple(biases)

    def __call__(self, x: Float[Array, "... i"]) -> Float[Array, "... o"]:
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            x = jax.nn.relu(x @ w + b)
        return x @ self.weights[-1] + self.biases[-1]


def edac_init(mlp: MLP, *, last_bound: float, key: Key, hidden_bias: float = 0.1) -> MLP:
    """``mlp`` with EDAC's initialisation (An et al. 2021's code, from rlkit; CORL's EDAC and the RAVL reference
    follow it): every hidden layer's bias ``hidden_bias``, the last layer's weights and bias uniform in
    ``+-last_bound`` (3e-3 for critics, 1e-3 for the policy's mean and log-std), hidden weights unchanged.
    Stacked MLPs (an :class:`Ensemble`'s members) get an independent draw per member."""
    w_last, b_last = mlp.weights[-1], mlp.biases[-1]
    u = jax.random.uniform(key, (w_last.size + b_last.size,), jnp.float32, -last_bound, last_bound)
    weights = (*mlp.weights[:-1], u[:w_last.size].reshape(w_last.shape))
    biases = (*(jnp.full_like(b, hidden_bias) for b in mlp.biases[:-1]), u[w_last.size:].reshape(b_last.shape))
    return eqx.tree_at(lambda m: (m.weights, m.biases), mlp, (weights, biases))


class Ensemble(eqx.Module):
    """``n`` MLPs with parameters stacked on a leading axis; a call returns ``[n, ..., out]``.

    The shared input makes the first layer one wide matmul and the rest batched matmuls (``vmap``
    over the stacked parameters), so 2 critics and 50 critics are the same code.
    """

    members: MLP

    def __init__(self, n: int, sizes: Sequence[int], *, key: Key):
        self.members = eqx.filter_vmap(lambda k: MLP(sizes, key=k))(jax.random.split(key, n))

    @property
    def n(self) -> int:
        return int(self.members.weights[0].shape[0])

    def __call__(self, x: Float[Array, "... i"]) -> Float[Array, "n ... o"]:
        return jax.vmap(MLP.__call__, in_axes=(0, None))(self.members, x)


class QEnsemble(eqx.Module):
    """``n`` critics ``Q_i(obs, act)``; a call returns ``[n, ...]`` (act in environment units)."""

    net: Ensemble

    def __init__(self, n: int, obs_dim: int, act_dim: int, hidden: Sequence[int], *, key: Key):
        self.net = Ensemble(n, (obs_dim + act_dim, *hidden, 1), key=key)

    def __call__(self, obs: Float[Array, "... obs"], act: Float[Array, "... act"]) -> Float[Array, "n ..."]:
        return self.net(jnp.concatenate([obs, act], axis=-1))[..., 0]

    def member(self, i: int, obs: Float[Array, "... obs"], act: Float[Array, "... act"]) -> Float[Array, "..."]:
        """Critic ``i`` alone (no work spent on the others)."""
        mlp = jax.tree_util.tree_map(lambda x: x[i], self.net.members)
        return mlp(jnp.concatenate([obs, act], axis=-1))[..., 0]

    def per_member(self, obs: Float[Array, "... obs"], act: Float[Array, "n ... act"]) -> Float[Array, "n ..."]:
        """Critic ``i`` on ``act[i]`` (its own copy of the actions, for per-critic action gradients)."""
        x = jnp.concatenate([jnp.broadcast_to(obs, (*act.shape[:-1], obs.shape[-1])), act], axis=-1)
        return jax.vmap(MLP.__call__)(self.net.members, x)[..., 0]


class ValueNet(eqx.Module):
    """A state-value function ``V(obs)``; a call returns ``[...]``."""

    net: MLP

    def __init__(self, obs_dim: int, hidden: Sequence[int], *, key: Key):
        self.net = MLP((obs_dim, *hidden, 1), key=key)

    def __call__(self, obs: Float[Array, "... obs"]) -> Float[Array, "..."]:
        return self.net(obs)[..., 0]


def normal_log_prob(x, mean, log_std) -> Float[Array, "..."]:
    """Log-density of a diagonal Gaussian, summed over the last axis."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z * z - log_std - _HALF_LOG_2PI, axis=-1)


def tanh_log_det(u: Float[Array, "... act"]) -> Float[Array, "..."]:
    """``sum log(1 - tanh(u)^2)`` computed stably as ``2 (log 2 - u - softplus(-2u))``."""
    return jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


class TanhGaussianPolicy(eqx.Module):
    """SAC's policy: ``tanh(u)``, ``u ~ N(mean(obs), std(obs))``; ``log_std`` clipped to its bounds."""

    net: MLP
    log_std_min: float = eqx.field(static=True)
    log_std_max: float = eqx.field(static=True)

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], *, log_std_min: float,
                 log_std_max: float, key: Key):
        self.net = MLP((obs_dim, *hidden, 2 * act_dim), key=key)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def dist(self, obs: Float[Array, "... obs"]) -> tuple[Float[Array, "... act"], Float[Array, "... act"]]:
        mean, log_std = jnp.split(self.net(obs), 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)

    def sample(self, obs: Float[Array, "... obs"], *, key: Key) -> tuple[Float[Array, "... act"], Float[Array, "..."]]:
        """A unit-box action and its log-density (of the squashed action, in the unit box)."""
        shape = (*obs.shape[:-1], self.net.weights[-1].shape[-1] // 2)
        return self.sample_with(obs, jax.random.normal(key, shape, jnp.float32))

    def sample_with(self, obs: Float[Array, "... obs"],
                    eps: Float[Array, "... act"]) -> tuple[Float[Array, "... act"], Float[Array, "..."]]:
        """:meth:`sample` with given standard-normal noise ``eps`` (reparameterised: differentiable)."""
        mean, log_std = self.dist(obs)
        u = mean + jnp.exp(log_std) * eps
        log_prob = jnp.sum(-0.5 * eps * eps - log_std - _HALF_LOG_2PI, axis=-1) - tanh_log_det(u)
        return jnp.tanh(u), log_prob

    def mode(self, obs: Float[Array, "... obs"]) -> Float[Array, "... act"]:
        return jnp.tanh(self.dist(obs)[0])


class DeterministicPolicy(eqx.Module):
    """``tanh(net(obs))`` in the unit box (TD3, TD3+BC, deterministic BC and IQL)."""

    net: MLP

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], *, key: Key):
        self.net = MLP((obs_dim, *hidden, act_dim), key=key)

    def __call__(self, obs: Float[Array, "... obs"]) -> Float[Array, "... act"]:
        return jnp.tanh(self.net(obs))


class GaussianPolicy(eqx.Module):
    """IQL's policy: ``N(tanh(mean(obs)), std)`` in the unit box, not squashed (data actions at the
    bounds keep a finite density). ``std`` is a free parameter per action dimension, or a function
    of ``obs`` if ``state_dependent_std``; ``log_std`` is clipped to its bounds.
    """

    net: MLP
    log_std: Float[Array, " act"] | None
    log_std_min: float = eqx.field(static=True)
    log_std_max: float = eqx.field(static=True)

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], *, state_dependent_std: bool,
                 log_std_min: float, log_std_max: float, key: Key):
        out = 2 * act_dim if state_dependent_std else act_dim
        self.net = MLP((obs_dim, *hidden, out), key=key)
        self.log_std = None if state_dependent_std else jnp.zeros((act_dim,), jnp.float32)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def dist(self, obs: Float[Array, "... obs"]) -> tuple[Float[Array, "... act"], Float[Array, "... act"]]:
        out = self.net(obs)
        if self.log_std is None:
            mean, log_std = jnp.split(out, 2, axis=-1)
        else:
            mean, log_std = out, jnp.broadcast_to(self.log_std, out.shape)
        return jnp.tanh(mean), jnp.clip(log_std, self.log_std_min, self.log_std_max)

    def log_prob(self, obs: Float[Array, "... obs"], u: Float[Array, "... act"]) -> Float[Array, "..."]:
        mean, log_std = self.dist(obs)
        return normal_log_prob(u, mean, log_std)

    def sample(self, obs: Float[Array, "... obs"], *, key: Key) -> tuple[Float[Array, "... act"], Float[Array, "..."]]:
        """An (unclipped) unit-box sample and its log-density."""
        mean, log_std = self.dist(obs)
        eps = jax.random.normal(key, mean.shape, jnp.float32)
        return mean + jnp.exp(log_std) * eps, jnp.sum(-0.5 * eps * eps - log_std - _HALF_LOG_2PI, axis=-1)

    def mode(self, obs: Float[Array, "... obs"]) -> Float[Array, "... act"]:
        return self.dist(obs)[0]
