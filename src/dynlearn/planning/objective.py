"""The planners' objective: the expected return of action sequences from one start observation, in a model.

``sequence_returns(model, obs, actions, key, propagation=..., particles=P)`` scores ``N`` candidate sequences
``actions [N, H, act]`` by stepping ``P`` particles per candidate through any
:class:`~dynlearn.models.AbstractTransitionModel` (all ``N * P`` in one batched call per step, one ``lax.scan`` over
the horizon) and averaging their returns. Propagation is PETS' (Chua et al. 2018, arXiv 1805.12114, section 5):

- ``"tsinf"``: trajectory sampling with a member fixed per particle for the whole horizon (TS-inf), Gaussian
  noise per step; ``model.init_state`` draws the members.
- ``"ts1"``: a random elite per particle at every step (TS-1, MBPO's rollouts), noise per step.
- ``"expectation"``: the elites' mean prediction, no noise (``particles`` is then 1): a deterministic
  objective, cheapest, blind to uncertainty.

Under ``"tsinf"`` a :class:`~dynlearn.models.ProbabilisticEnsemble` whose elite count divides ``particles`` gets the
particles in equal blocks per elite (PETS draws each particle's member at random; equal blocks have the same expected
return and less variance) and evaluates each elite on its own block only
(:meth:`~dynlearn.models.ProbabilisticEnsemble.step_elite_blocks`): ``elites / members`` of the FLOPs, 5/7 by default.

Rewards are the model's (its attached ``reward_fn`` where the task has one). A particle that terminates earns
nothing afterwards, so sequences that end an episode lose the rewards they would have collected. ``discount``
weights step ``t`` by ``discount ** t``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array, Float, Key
from ..errors import ConfigError

PROPAGATIONS = ("tsinf", "ts1", "expectation")


def check_propagation(propagation: str, particles: int) -> None:
    if propagation not in PROPAGATIONS:
        raise ConfigError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}.")
    if particles < 1:
        raise ConfigError(f"particles must be >= 1, got {particles}.")


def _expected_step(model, obs, act):
    """The elites' mean next observation and reward; terminal by the attached function, else the mean head."""
    out = model.members(obs, act).elite()
    mean = out.mean.mean(axis=0)
    obs32 = obs.astype(jnp.float32)
    next_obs = obs32 + mean[..., : model.obs_dim]
    reward_fn, termination_fn = getattr(model, "reward_fn", None), getattr(model, "termination_fn", None)
    reward = mean[..., model.obs_dim] if reward_fn is None else reward_fn(obs32, act, next_obs).astype(jnp.float32)
    if termination_fn is not None:
        terminal = jnp.asarray(termination_fn(obs32, act, next_obs), bool)
    elif out.terminal_logit is not None:
        terminal = jax.nn.sigmoid(out.terminal_logit).mean(axis=0) > 0.5
    else:
        terminal = jnp.zeros(obs.shape[:-1], bool)
    return next_obs, reward, terminal


def sequence_returns(model, obs: Float[Array, " obs"], actions: Float[Array, "n h act"], key: Key, *,
                     propagation: str = "tsinf", particles: int = 20, discount: float = 1.0) -> Float[Array, " n"]:
    """Mean return over ``particles`` of each of the ``N`` sequences from ``obs`` (jittable; see the module doc)."""
    n, horizon, _ = actions.shape
    elites = getattr(model, "elites", None)
    if propagation == "tsinf" and hasattr(model, "step_elite_blocks") and particles % elites.shape[0] == 0:
        return _blocked_returns(model, obs, actions, key, particles // elites.shape[0], discount)
    p = 1 if propagation == "expectation" else particles
    start = jnp.broadcast_to(obs.astype(jnp.float32), (n * p, obs.shape[-1]))
    acts = jnp.repeat(actions, p, axis=0).swapaxes(0, 1)                   # [H, N*P, act], particle-major per candidate
    init_key, scan_key = jax.random.split(key)
    state = None if propagation == "expectation" else model.init_state(start, key=init_key)

    def body(carry, inputs):
        o, alive, ret, st = carry
        t, a, k = inputs
        if propagation == "expectation":
            nxt, rew, term = _expected_step(model, o, a)
        else:
            member = getattr(st, "member", None) if propagation == "tsinf" else None  # models without members: None
            st, pred = model.step(st, o, a, key=k, member=member)
            nxt, rew, term = pred.next_obs, pred.reward, pred.terminal
        ret = ret + jnp.where(alive, rew, 0.0) * jnp.asarray(discount, jnp.float32) ** t
        alive = alive & ~term
        return (jnp.where(alive[:, None], nxt, o), alive, ret, st), None

    carry = (start, jnp.ones((n * p,), bool), jnp.zeros((n * p,), jnp.float32), state)
    steps = (jnp.arange(horizon, dtype=jnp.float32), acts.astype(jnp.float32), jax.random.split(scan_key, horizon))
    (_, _, ret, _), _ = jax.lax.scan(body, carry, steps)
    return ret.reshape(n, p).mean(axis=1)


def _blocked_returns(model, obs, actions, key, per_elite: int, discount: float):
    """TS-inf with ``per_elite`` particles per candidate in each elite's block (see the module docstring)."""
    n, horizon, _ = actions.shape
    e = model.elites.shape[0]
    rows = n * per_elite
    start = jnp.broadcast_to(obs.astype(jnp.float32), (e, rows, obs.shape[-1]))
    acts = jnp.broadcast_to(jnp.repeat(actions, per_elite, axis=0).swapaxes(0, 1)[:, None], (horizon, e, rows, actions.shape[-1]))

    def body(carry, inputs):
        o, alive, ret = carry
        t, a, k = inputs
        nxt, rew, term = model.step_elite_blocks(o, a, key=k)
        ret = ret + jnp.where(alive, rew, 0.0) * jnp.asarray(discount, jnp.float32) ** t
        alive = alive & ~term
        return (jnp.where(alive[..., None], nxt, o), alive, ret), None

    carry = (start, jnp.ones((e, rows), bool), jnp.zeros((e, rows), jnp.float32))
    steps = (jnp.arange(horizon, dtype=jnp.float32), acts.astype(jnp.float32), jax.random.split(key, horizon))
    (_, _, ret), _ = jax.lax.scan(body, carry, steps)
    return ret.reshape(e, n, per_elite).mean(axis=(0, 2))
