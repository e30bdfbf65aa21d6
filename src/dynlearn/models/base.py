"""The interface every control model keeps: ``(obs, act) -> next_obs, reward, terminal``.

**Batching convention.** Every method takes ``obs [..., obs_dim]`` and ``act [..., act_dim]`` with any
number of leading batch axes (none included) and returns arrays with the same leading axes; per-member
outputs put the member axis *first* (``[members, ..., dim]``). A batch is therefore one call (one
batched matmul per layer), and ``jax.vmap`` over a method works too, since an unbatched call is a
special case.

**Targets.** Models predict the change of the observation and the reward, ``y = (next_obs - obs, rew)``,
a vector of ``target_dim = obs_dim + 1``; :class:`MemberOutputs` holds each member's Gaussian over ``y``
in data units (whatever normalisation a model uses inside).

**Members.** A model of ``E`` members has ``elites`` (the members chosen on holdout data). ``step`` with
``member=None`` draws a random elite per sample at every call (MBPO/MOPO rollouts); planners that keep
one member per particle (PETS' TS-inf) draw them once with :meth:`AbstractTransitionModel.init_state`
and pass ``member=state.member`` at every step.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Array, Bool, Float, Int, Key


class MemberOutputs(eqx.Module):
    """Every member's Gaussian over the target ``(delta obs, reward)``, in data units.

    Penalties (MOPO's max aleatoric std, MOReL's disagreement, ensemble std, ...) are pure functions of this.
    """

    mean: Float[Array, "members ... target"]
    """Mean of ``(next_obs - obs, reward)`` per member."""
    logvar: Float[Array, "members ... target"]
    """Log-variance per member and target dimension (aleatoric)."""
    terminal_logit: Float[Array, "members ..."] | None
    """Logit of the learned termination head per member (None when the model has no head)."""
    elites: Int[Array, " elites"]
    """Indices of the elite members."""
    obs_dim: int = eqx.field(static=True)

    @property
    def std(self) -> Float[Array, "members ... target"]:
        return jnp.exp(0.5 * self.logvar)

    @property
    def delta_mean(self) -> Float[Array, "members ... obs"]:
        return self.mean[..., : self.obs_dim]

    @property
    def reward_mean(self) -> Float[Array, "members ..."]:
        return self.mean[..., self.obs_dim]

    def next_obs_mean(self, obs: Float[Array, "... obs"]) -> Float[Array, "members ... obs"]:
        """Each member's mean next observation, ``obs + mean delta``."""
        return obs.astype(self.mean.dtype) + self.delta_mean

    def elite(self) -> "MemberOutputs":
        """The elite members only (member axis of size ``len(elites)``)."""
        take = lambda x: None if x is None else jnp.take(x, self.elites, axis=0)  # noqa: E731
        return MemberOutputs(take(self.mean), take(self.logvar), take(self.terminal_logit),
                             jnp.arange(self.elites.shape[0], dtype=jnp.int32), self.obs_dim)


class ModelState(eqx.Module):
    """What a model carries from one step to the next (a member index per particle, a simulator state,
    an RNN state). Concrete models subclass it."""


class Prediction(eqx.Module):
    """One model step for a batch ``[...]``."""

    next_obs: Float[Array, "... obs"]
    reward: Float[Array, "..."]
    terminal: Bool[Array, "..."]
    """A true episode end (the task's termination function, else the learned head's probability > 0.5)."""
    member: Int[Array, "..."]
    """The member that produced each sample."""
    outputs: MemberOutputs
    """All members' distributions at ``(obs, act)`` (computed anyway; penalties read them)."""


class AbstractTransitionModel(eqx.Module):
    """A learned (or exact) transition function for control. See the module docstring for conventions."""

    obs_dim: eqx.AbstractVar[int]
    act_dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init_state(self, obs: Float[Array, "... obs"], *, key: Key) -> ModelState:
        """A fresh state for a batch of start observations (e.g. one fixed member per particle)."""

    @abc.abstractmethod
    def members(self, obs: Float[Array, "... obs"], act: Float[Array, "... act"]) -> MemberOutputs:
        """Every member's Gaussian over ``(next_obs - obs, reward)`` in data units."""

    @abc.abstractmethod
    def step(self, state: ModelState, obs: Float[Array, "... obs"], act: Float[Array, "... act"], *, key: Key,
             member: Int[Array, "..."] | int | None = None, deterministic: bool = False) -> tuple[ModelState, Prediction]:
        """Sample one transition per row. ``member=None``: a random elite per sample; else that member
        (an int, or one per row: ``member=state.member``). ``deterministic``: the member's mean, no noise."""


def select_member(x: Float[Array, "members ... d"], member: Int[Array, "..."]) -> Float[Array, "... d"]:
    """``x[member[i], i]`` for every batch position ``i`` (member axis first, feature axis last)."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    rows = jnp.arange(flat.shape[1])
    return flat[member.reshape(-1), rows].reshape(x.shape[1:])


def random_elites(elites: Int[Array, " elites"], shape: tuple[int, ...], *, key: Key) -> Int[Array, "..."]:
    """One elite index per position of ``shape``, uniformly."""
    return jnp.take(elites, jax.random.randint(key, shape, 0, elites.shape[0]))
