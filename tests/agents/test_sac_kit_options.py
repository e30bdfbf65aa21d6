"""The SAC options OfflineRL-Kit's MOPO and MOBILE use: the policy's learning rate cosine-annealed over the run (stepped
once per epoch), and the temperature clamped at 1."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import numpy as np
import pytest

from dynlearn import agents
from dynlearn.agents.sac import SACConfig, actor_lr_schedule
from dynlearn.errors import ConfigError
from tests.agents.test_agents_contract import DATA, SPEC


def test_cosine_schedule_steps_once_per_epoch_and_reaches_zero():
    cfg = SACConfig(actor_lr=1e-4, actor_lr_decay_steps=100_000, actor_lr_decay_every=1_000)
    lr = actor_lr_schedule(cfg)
    expect = lambda epoch: 1e-4 * 0.5 * (1 + math.cos(math.pi * epoch / 100))  # noqa: E731
    for count, epoch in ((0, 0), (999, 0), (1_000, 1), (50_500, 50), (99_999, 99), (100_000, 100), (250_000, 100)):
        np.testing.assert_allclose(float(lr(count)), expect(epoch), rtol=1e-5, atol=1e-10)
    assert actor_lr_schedule(SACConfig(actor_lr=3e-4)) == 3e-4  # constant by default
    with pytest.raises(ConfigError, match="actor_lr_decay"):
        SACConfig(actor_lr_decay_steps=0)


def test_a_decayed_rate_freezes_the_policy_but_not_the_critics():
    sac = agents.get("sac")
    # anneal over one update: the first update moves the actor, every later one uses rate 0
    state = sac.init(jax.random.key(0), SPEC, sac.Config(hidden=(32, 32), batch_size=32, actor_lr_decay_steps=1))
    batch = DATA.take(np.arange(32))
    leaves = lambda m: [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array))]  # noqa: E731
    first, _ = sac.update(state, batch, key=jax.random.key(1))
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(state.actor), leaves(first.actor)))
    second, _ = sac.update(first, batch, key=jax.random.key(2))
    assert all(np.array_equal(a, b) for a, b in zip(leaves(first.actor), leaves(second.actor)))
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(first.critic), leaves(second.critic)))


def test_the_clamped_temperature_is_what_the_losses_use():
    sac = agents.get("sac")
    batch = DATA.take(np.arange(32))
    free = sac.init(jax.random.key(0), SPEC, sac.Config(hidden=(32, 32), batch_size=32, init_alpha=2.0))
    clamped = sac.init(jax.random.key(0), SPEC, sac.Config(hidden=(32, 32), batch_size=32, init_alpha=2.0, alpha_max=1.0))
    _, info_free = sac.update(free, batch, key=jax.random.key(1))
    new, info = sac.update(clamped, batch, key=jax.random.key(1))
    np.testing.assert_allclose(float(info_free["policy/alpha"]), 2.0, rtol=1e-6)
    np.testing.assert_allclose(float(info["policy/alpha"]), 1.0, rtol=1e-6)
    assert float(info["loss/actor"]) != float(info_free["loss/actor"])
    # the clamp is on the temperature the losses read, not on log_alpha, which the entropy gap keeps moving
    assert float(new.log_alpha) != float(clamped.log_alpha)
