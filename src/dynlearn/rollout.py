"""Vectorised model rollouts: ``H`` steps of a batch of ``B`` branches in one compiled ``lax.scan``.

>>> hooks = RolloutHooks(penalty=Penalty(penalties.max_aleatoric, coef=1.0))
>>> ro = rollout(model, AgentPolicy(sac.act, agent_state), start_obs, 5, key=key, hooks=hooks)
>>> rows = ro.to_transitions()                       # host: the valid rows, reward ``rew - coef * penalty``
>>> buffer = add_valid(buffer, *ro.masked())          # device, jittable: fixed shapes, only valid rows written

Each step: ``act = policy(obs, key=...)``; ``model.step`` (the model's own sampling: a random elite's Gaussian
sample per branch, MOPO's rule) or, with a ``select`` hook, the hook's choice among candidates built from the
same step's member outputs; then the ``penalty`` hook and the ``stop`` hook. Everything is traced: the model,
the policy and the hooks are ``eqx.Module`` arguments whose arrays change between calls without recompiling
(only shapes, static fields and the horizon are part of the compiled program).

**Elites only.** A :class:`~dynlearn.models.ProbabilisticEnsemble` is sliced to its elite members before the
scan, so the non-elite members are never evaluated (transitions are sampled from elites); the hooks see elite
outputs (``outputs.elites`` is then ``0..n_elites-1``). A penalty with ``members="all"`` (MOPO's own code) keeps
every member: its hooks then see all members, with ``outputs.elites`` naming the elites.

**Masks** (all ``[H, B]``):

- ``terminal``: the model ended the episode at this step (a valid row).
- ``truncated``: the ``stop`` hook stopped the branch at this step. That row is *dropped* (not valid, as in
  MOREC, where a transition scoring below the threshold is discarded) and it is not a terminal.
- ``valid``: the row exists: no terminal at an earlier step and no stop at this or an earlier step.
Dead branches keep their last observation (no NaNs from stepping far off the data).
"""

from __future__ import annotations

from typing import Callable, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._types import Array, Bool, Float, Int, Key
from .data.buffer import ReplayBuffer
from .data.transitions import Transitions
from .errors import ConfigError
from .models.base import AbstractTransitionModel, MemberOutputs, ModelState
from .models.ensemble import ProbabilisticEnsemble
from .penalties import Part, PenaltyFn

__all__ = ["AgentPolicy", "Penalty", "Rollout", "RolloutHooks", "Selection", "add_valid", "elite_view", "rollout"]


def _f32(x) -> Float[Array, ""]:
    return jnp.asarray(x, jnp.float32)


# ----------------------------------------------------------------------------------------------
# Policy and hooks


class AgentPolicy(eqx.Module):
    """An agent's ``act(state, obs, *, key, deterministic)`` as a rollout policy ``policy(obs, *, key)``.

    ``state`` is a traced field: a new agent state of the same structure does not recompile.
    """

    act_fn: Callable = eqx.field(static=True)
    state: eqx.Module
    deterministic: bool = eqx.field(static=True, default=False)

    def __call__(self, obs: Float[Array, "b obs"], *, key: Key) -> Float[Array, "b act"]:
        return self.act_fn(self.state, obs, key=key, deterministic=self.deterministic)


class Penalty(eqx.Module):
    """``coef * fn(outputs, y, part=part)`` per branch, ``fn`` one of :mod:`dynlearn.penalties`.

    ``coef`` (lambda) is a traced array: changing it does not recompile. The rollout stores the unweighted
    uncertainty ``fn(...)`` as ``Rollout.penalty`` and ``coef`` as ``Rollout.penalty_coef``.
    ``members``: which members the heuristic reads, ``"elites"`` (the default, Lu et al.) or ``"all"`` (MOPO's code,
    tianheyu927/mopo and OfflineRL-Kit, takes the max over all members, non-elites included; the rollout then
    evaluates every member, ``members / elites`` times the model FLOPs).
    """

    fn: PenaltyFn = eqx.field(static=True)
    coef: Float[Array, ""] = eqx.field(converter=_f32, default=1.0)
    part: Part = eqx.field(static=True, default="obs")
    members: Literal["elites", "all"] = eqx.field(static=True, default="elites")

    def __check_init__(self):
        if self.members not in ("elites", "all"):
            raise ConfigError(f"Penalty.members must be 'elites' or 'all', got {self.members!r}.")

    def uncertainty(self, outputs: MemberOutputs, y: Float[Array, "b target"]) -> Float[Array, " b"]:
        """The unweighted heuristic (``members`` of the ensemble, ``part`` of the target)."""
        if self.members == "all":  # the heuristics read outputs.elite(): make every member an elite for them
            outputs = eqx.tree_at(lambda o: o.elites, outputs, jnp.arange(outputs.mean.shape[0], dtype=jnp.int32))
        return self.fn(outputs, y, part=self.part).astype(jnp.float32)

    def __call__(self, outputs: MemberOutputs, y: Float[Array, "b target"]) -> Float[Array, " b"]:
        return self.coef * self.uncertainty(outputs, y)


class Selection(eqx.Module):
    """What a ``select`` hook returns for a batch: the chosen transition and (optionally) its scores."""

    next_obs: Float[Array, "b obs"]
    reward: Float[Array, " b"]
    member: Int[Array, " b"]
    """The member (index into the outputs' member axis, which holds every member when the penalty reads all of them,
    else the elites) whose termination head decides ``terminal`` when the model has no termination function."""
    scores: Float[Array, "b ..."] | None = None


class RolloutHooks(eqx.Module):
    """Pluggable parts of a rollout; every hook is an ``eqx.Module`` (its arrays are traced) or None.

    - ``penalty(outputs, y) -> [B]``: the reward penalty (``coef * u``); see :class:`Penalty`.
    - ``select(obs, act, outputs, *, key) -> Selection``: choose the transition among candidates (e.g.
      MOREC's Gaussian resamples of the elites, scored by a discriminator). None: the model's own
      ``step`` (a random elite's Gaussian sample, MOPO).
    - ``stop(t, *, obs, act, next_obs, reward, scores, penalty, terminal) -> bool[B]``: stop (truncate) a branch
      at step ``t`` (an int32 scalar); the row is dropped and not terminal. ``penalty`` is the unweighted
      uncertainty (zeros without a penalty hook), ``scores`` the select hook's (or None), ``terminal`` whether the
      model ends the episode at this row (a hook may spare those). None: never.
    """

    penalty: Penalty | None = None
    select: eqx.Module | None = None
    stop: eqx.Module | None = None


# ----------------------------------------------------------------------------------------------
# Result


class Rollout(eqx.Module):
    """Time-major rollout arrays ``[H, B, ...]``; see the module docstring for the masks."""

    obs: Float[Array, "h b obs"]
    act: Float[Array, "h b act"]
    rew: Float[Array, "h b"]
    """The model's reward (not penalised)."""
    next_obs: Float[Array, "h b obs"]
    terminal: Bool[Array, "h b"]
    valid: Bool[Array, "h b"]
    truncated: Bool[Array, "h b"]
    penalty: Float[Array, "h b"]
    """Unweighted uncertainty of the penalty hook (zeros without one)."""
    penalty_coef: Float[Array, ""]
    """The penalty hook's weight lambda (0 without one)."""
    scores: Float[Array, "h b ..."] | None = None
    """The select hook's candidate scores, when it returns any."""

    @property
    def horizon(self) -> int:
        return int(self.obs.shape[0])

    @property
    def batch(self) -> int:
        return int(self.obs.shape[1])

    def reward(self, penalize: bool = True) -> Float[Array, "h b"]:
        """``rew - penalty_coef * penalty`` (or ``rew``)."""
        return self.rew - self.penalty_coef * self.penalty if penalize else self.rew

    def returns(self, penalize: bool = True, discount: float = 1.0) -> Float[Array, " b"]:
        """Each branch's (discounted) model return over its valid rows."""
        weights = jnp.asarray(discount, jnp.float32) ** jnp.arange(self.horizon, dtype=jnp.float32)
        return jnp.sum(jnp.where(self.valid, self.reward(penalize), 0.0) * weights[:, None], axis=0)

    def masked(self, penalize: bool = True) -> tuple[Transitions, Bool[Array, " n"]]:
        """Fixed-size form (jittable): every row flattened time-major to ``H * B`` rows, and the valid mask.

        ``timeout`` marks a valid, non-terminal row whose branch has no further valid row (the horizon or a
        stop ended it: a truncation, bootstrapping stays right). Feed both to :func:`add_valid`.
        """
        nxt_valid = jnp.concatenate([self.valid[1:], jnp.zeros_like(self.valid[:1])], axis=0)
        timeout = self.valid & ~self.terminal & ~nxt_valid
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        rows = Transitions(obs=flat(self.obs), act=flat(self.act), rew=flat(self.reward(penalize)), next_obs=flat(self.next_obs),
                           terminal=flat(self.terminal), timeout=flat(timeout), next_obs_valid=flat(jnp.ones_like(self.valid)))
        return rows, flat(self.valid)

    def to_transitions(self, penalize: bool = True) -> Transitions:
        """Host copy (NumPy) of exactly the valid rows, in time-major order; reward ``rew - coef * penalty``
        when ``penalize`` (a no-op without a penalty hook). The row count depends on the data: use
        :meth:`masked` + :func:`add_valid` inside compiled code."""
        rows, valid = self.masked(penalize)
        keep = np.flatnonzero(np.asarray(valid))
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[keep], rows)


@eqx.filter_jit
def add_valid(buffer: ReplayBuffer, rows: Transitions, valid: Bool[Array, " n"]) -> ReplayBuffer:
    """Write only the ``valid`` rows of a fixed-size block into ``buffer`` (jittable; shapes never change).

    Valid rows are compacted in their order and written at the cursor; the cursor and size advance by their
    count. Needs ``len(rows) <= buffer.capacity`` (else rows of the same block would overwrite each other).
    """
    n = rows.obs.shape[0]
    if n > buffer.capacity:
        raise ValueError(f"add_valid: a block of {n} rows does not fit a buffer of {buffer.capacity}")
    order = jnp.argsort(~valid, stable=True)  # valid rows first, in order
    count = jnp.sum(valid, dtype=jnp.int32)
    i = jnp.arange(n, dtype=jnp.int32)
    index = jnp.where(i < count, (buffer.cursor + i) % buffer.capacity, buffer.capacity)  # out of range: dropped
    data = jax.tree_util.tree_map(lambda buf, new: buf.at[index].set(jnp.take(new, order, axis=0).astype(buf.dtype), mode="drop"),
                                  buffer.data, rows)
    size = jnp.minimum(buffer.size + count, buffer.capacity).astype(jnp.int32)
    return ReplayBuffer(data=data, size=size, cursor=((buffer.cursor + count) % buffer.capacity).astype(jnp.int32))


# ----------------------------------------------------------------------------------------------
# The rollout


def elite_view(model: AbstractTransitionModel) -> AbstractTransitionModel:
    """A :class:`ProbabilisticEnsemble` restricted to its elites (same predictions from ``step`` with
    ``member=None``, ``n_elites / members`` of the FLOPs); other models unchanged. Jittable."""
    if not isinstance(model, ProbabilisticEnsemble):
        return model
    take = lambda x: jnp.take(x, model.elites, axis=0)  # noqa: E731
    net = eqx.tree_at(lambda n: (n.weights, n.biases), model.net, (tuple(map(take, model.net.weights)), tuple(map(take, model.net.biases))))
    return eqx.tree_at(lambda m: (m.net, m.elites), model, (net, jnp.arange(model.elites.shape[0], dtype=jnp.int32)))


def _selected_terminal(model, obs, act, next_obs, outputs: MemberOutputs, member) -> Bool[Array, " b"]:
    """The model's termination rule for a transition chosen by a select hook (mirrors ProbabilisticEnsemble.step)."""
    fn = getattr(model, "termination_fn", None)
    if fn is not None:
        return jnp.asarray(fn(obs, act, next_obs), bool)
    if outputs.terminal_logit is None:
        raise ValueError("rollout: a select hook needs the model's termination_fn or a termination head")
    return jnp.take_along_axis(outputs.terminal_logit, member[None], axis=0)[0] > 0.0


@eqx.filter_jit
def _rollout(model, policy, start_obs, horizon: int, key, model_state, hooks: RolloutHooks) -> Rollout:
    if hooks.penalty is None or hooks.penalty.members == "elites":
        model = elite_view(model)
    batch = start_obs.shape[0]
    init_key, scan_key = jax.random.split(key)
    if model_state is None:
        model_state = model.init_state(start_obs, key=init_key)

    def body(carry, inputs):
        obs, alive, state = carry
        t, k = inputs
        act_key, model_key, select_key = jax.random.split(k, 3)
        act = policy(obs, key=act_key).astype(jnp.float32)
        state, pred = model.step(state, obs, act, key=model_key)
        outputs = pred.outputs
        if hooks.select is None:
            next_obs, reward, terminal, scores = pred.next_obs, pred.reward, pred.terminal, None
        else:
            sel = hooks.select(obs, act, outputs, key=select_key)
            next_obs, reward, scores = sel.next_obs.astype(jnp.float32), sel.reward.astype(jnp.float32), sel.scores
            reward_fn = getattr(model, "reward_fn", None)
            if reward_fn is not None:
                reward = reward_fn(obs, act, next_obs).astype(jnp.float32)
            terminal = _selected_terminal(model, obs, act, next_obs, outputs, sel.member)
        y = jnp.concatenate([next_obs - obs, reward[:, None]], axis=-1)
        penalty = jnp.zeros((batch,), jnp.float32) if hooks.penalty is None else hooks.penalty.uncertainty(outputs, y)
        if hooks.stop is None:
            stop = jnp.zeros((batch,), bool)
        else:
            stop = jnp.asarray(hooks.stop(t, obs=obs, act=act, next_obs=next_obs, reward=reward, scores=scores, penalty=penalty,
                                          terminal=terminal), bool)
        valid = alive & ~stop
        truncated = alive & stop
        terminal = terminal & valid
        still = valid & ~terminal
        carry_obs = jnp.where(still[:, None], next_obs, obs)
        row = dict(obs=obs, act=act, rew=reward, next_obs=next_obs, terminal=terminal, valid=valid, truncated=truncated,
                   penalty=penalty, scores=scores)
        return (carry_obs, still, state), row

    steps = (jnp.arange(horizon, dtype=jnp.int32), jax.random.split(scan_key, horizon))
    carry = (start_obs.astype(jnp.float32), jnp.ones((batch,), bool), model_state)
    _, rows = jax.lax.scan(body, carry, steps)
    coef = jnp.zeros((), jnp.float32) if hooks.penalty is None else hooks.penalty.coef
    return Rollout(**rows, penalty_coef=coef)


def rollout(model: AbstractTransitionModel, policy: Callable, start_obs: Float[Array, "b obs"], horizon: int, *,
            key: Key, model_state: ModelState | None = None, hooks: RolloutHooks = RolloutHooks()) -> Rollout:
    """``horizon`` model steps from each of ``B`` start observations, one compiled call (``lax.scan``).

    ``policy(obs [B, obs], *, key) -> act [B, act]``: any callable; pass an ``eqx.Module`` (e.g.
    :class:`AgentPolicy`) so new parameters do not recompile (a plain function is a static argument: a new
    function recompiles). Every step calls ``model.step(state, obs, act, key=...)`` with ``member=None``: a random
    elite per row and step (MOPO). ``model_state``: the model's state for the batch (default
    ``model.init_state(start_obs)``), threaded through ``model.step`` (simulator/RNN state of other models). Deterministic for a
    ``key``. Returns a :class:`Rollout` of time-major ``[horizon, B, ...]`` arrays.
    """
    if start_obs.ndim != 2:
        raise ValueError(f"rollout: start_obs must be [B, obs_dim], got shape {start_obs.shape}")
    if int(horizon) < 1:
        raise ValueError(f"rollout: horizon must be >= 1, got {horizon}")
    return _rollout(model, policy, jnp.asarray(start_obs), int(horizon), key, model_state, hooks)
