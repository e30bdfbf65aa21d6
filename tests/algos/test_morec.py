"""MOREC's transition filter and truncation as rollout hooks: candidates are resamples of the elites' outputs, the kept
candidate is never scored below a rejected one, truncation waits for the minimum length and never marks a terminal,
and the MOREC-MOPO / MOREC-MOBILE configs build their hooks."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn.algos import morec
from dynlearn.algos.morec import MORECMOBILEConfig, MORECMOPOConfig
from dynlearn.algos.registry import method, names
from dynlearn.errors import ConfigError
from dynlearn.models import EnsembleConfig, MemberOutputs, ProbabilisticEnsemble
from dynlearn.algos.morec import (
    DynamicsReward,
    DynamicsRewardConfig,
    save_reward,
)
from dynlearn.rollout import RolloutHooks, rollout
from tests.models.systems import FakeTask

TINY_REWARD = DynamicsRewardConfig(steps=4, snapshot_every=1, snapshots=4, state_hidden=(16,), delta_hidden=(16,), hidden=(16,),
                                   state_embedding=8, delta_embedding=4)
TINY_MODEL = EnsembleConfig(members=4, elites=3, hidden=(16, 16), weight_decay=(2.5e-5, 5e-5, 1e-4))
OBS, ACT, B = 3, 1, 64


@pytest.fixture(scope="module")
def reward():
    return DynamicsReward.init(TINY_REWARD, OBS, ACT, key=jax.random.key(0))


@pytest.fixture(scope="module")
def model():
    task = FakeTask("fake", OBS, ACT, termination_fn=lambda o, a, n: n[..., 0] > 0.5)
    return ProbabilisticEnsemble.init(TINY_MODEL, OBS, ACT, key=jax.random.key(1)).with_task(task)


@eqx.filter_jit
def _propose(filt, obs, act, outputs, key):
    return filt.propose(obs, act, outputs, key=key)


@eqx.filter_jit
def _select(filt, obs, act, outputs, key):
    return filt(obs, act, outputs, key=key)


def _batch(key):
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (B, OBS), jnp.float32), jax.random.uniform(k2, (B, ACT), jnp.float32, -1.0, 1.0)


class Policy:
    def __call__(self, obs, *, key):
        return jax.random.uniform(key, (obs.shape[0], ACT), jnp.float32, -1.0, 1.0)


def test_candidates_are_resamples_of_the_elites_own_outputs(reward):
    # Near-zero variance: candidate k must be obs + elite (k mod E)'s mean; members index the full outputs.
    e, k = 3, 7
    mean = jax.random.normal(jax.random.key(2), (5, B, OBS + 1), jnp.float32)
    outputs = MemberOutputs(mean=mean, logvar=jnp.full_like(mean, -40.0), terminal_logit=None, elites=jnp.asarray([4, 0, 2]), obs_dim=OBS)
    obs, act = _batch(jax.random.key(3))
    c = _propose(morec.TransitionFilter(reward, candidates=k), obs, act, outputs, jax.random.key(4))
    assert c.next_obs.shape == (k, B, OBS) and c.scores.shape == (k, B)
    for i in range(k):
        member = int(outputs.elites[i % e])
        np.testing.assert_allclose(c.next_obs[i], obs + mean[member, :, :OBS], atol=1e-5)
        np.testing.assert_allclose(c.reward[i], mean[member, :, OBS], atol=1e-5)
        assert np.all(np.asarray(c.member[i]) == member)
    np.testing.assert_allclose(c.scores, eqx.filter_jit(reward)(obs[None], act[None], c.next_obs), rtol=1e-6)


@pytest.mark.parametrize("selection", ["greedy", "softmax"])
def test_the_filter_never_keeps_a_candidate_scored_below_one_it_rejects(reward, model, selection):
    obs, act = _batch(jax.random.key(5))
    outputs = model.members(obs, act)
    filt = morec.TransitionFilter(reward, candidates=10, selection=selection)
    key = jax.random.key(6)
    sel = _select(filt, obs, act, outputs, key)
    c = _propose(filt, obs, act, outputs, jax.random.split(key)[0])  # the same candidates __call__ drew
    kept = np.asarray(sel.scores)
    matches = np.all(np.isclose(np.asarray(c.next_obs), np.asarray(sel.next_obs)[None]), axis=-1)  # [K, b]
    assert np.all(matches.any(axis=0))  # the kept transition is one of the candidates, with its own score
    assert np.allclose(kept, np.asarray(c.scores)[matches.argmax(0), np.arange(B)])
    if selection == "greedy":
        assert np.all(kept[None] >= np.asarray(c.scores))  # no rejected candidate scores higher
    else:
        assert np.all(kept <= np.asarray(c.scores).max(0))


def test_softmax_selection_follows_the_scores():
    scores = jnp.asarray([[0.0], [0.1], [0.2]], jnp.float32)  # three candidates, one row; temperature 0.1
    filt = morec.TransitionFilter(None, selection="softmax")
    picks = np.asarray(jax.vmap(lambda k: filt.choose(scores, key=k))(jax.random.split(jax.random.key(7), 4000)))[:, 0]
    expected = np.exp(np.array([0.0, 1.0, 2.0])) / np.exp(np.array([0.0, 1.0, 2.0])).sum()
    np.testing.assert_allclose(np.bincount(picks, minlength=3) / 4000, expected, atol=0.03)
    assert int(morec.TransitionFilter(None, selection="greedy").choose(scores, key=jax.random.key(0))[0]) == 2


def test_truncation_waits_for_the_minimum_length_and_spares_terminals():
    stop = morec.ScoreTruncation(0.6, min_length=3)
    scores = jnp.asarray([0.1, 0.59, 0.6, 0.9], jnp.float32)
    for t in range(3):
        assert not np.any(np.asarray(stop(jnp.int32(t), scores=scores)))
    np.testing.assert_array_equal(stop(jnp.int32(3), scores=scores), [True, True, False, False])
    np.testing.assert_array_equal(stop(jnp.int32(7), scores=scores, terminal=jnp.asarray([True, False, False, False])),
                                  [False, True, False, False])
    with pytest.raises(ConfigError, match="scores"):
        stop(jnp.int32(3), scores=None)


def test_rollout_with_the_filter_truncates_after_min_length_and_never_marks_a_terminal(reward, model):
    obs, _ = _batch(jax.random.key(8))
    filt = morec.TransitionFilter(reward, candidates=6, selection="greedy")
    never = RolloutHooks(select=filt, stop=morec.ScoreTruncation(-np.inf, min_length=3))  # same program: values are traced
    probe = rollout(model, Policy(), obs, 8, key=jax.random.key(9), hooks=never)
    assert not np.asarray(probe.truncated).any()
    threshold = float(np.median(np.asarray(probe.scores)))  # so that about half the transitions score below it
    hooks = RolloutHooks(select=filt, stop=morec.ScoreTruncation(threshold, min_length=3))
    ro = rollout(model, Policy(), obs, 8, key=jax.random.key(9), hooks=hooks)
    truncated, valid, terminal = (np.asarray(x) for x in (ro.truncated, ro.valid, ro.terminal))
    scores = np.asarray(ro.scores)
    assert truncated.any() and terminal.any()  # both happen in this rollout
    assert not truncated[:3].any()  # never before the minimum length
    assert not (truncated & terminal).any() and not (truncated & valid).any()  # a cut row is dropped, not terminal
    assert np.all(scores[truncated] < threshold)
    kept = valid[3:] & ~terminal[3:]  # terminal rows are spared (the released code's rule: the rollout passes terminal)
    assert np.all(scores[3:][kept] >= threshold)  # every other kept row from min_length on passed the threshold
    after = np.cumsum(truncated, axis=0) - truncated > 0
    assert not (valid & after).any()  # the branch ends where it is cut
    # The rows stored for the agent: no cut row, and the kept row before a cut bootstraps (a timeout, not a terminal).
    rows, keep = ro.masked()
    assert int(np.asarray(keep).sum()) == int(valid.sum())
    timeout = np.asarray(rows.timeout).reshape(valid.shape)
    before_cut = np.zeros_like(truncated)
    before_cut[:-1] = truncated[1:] & valid[:-1]
    assert before_cut.any() and np.all(timeout[before_cut]) and not np.asarray(rows.terminal).reshape(valid.shape)[before_cut].any()


def test_method_configs_build_their_hooks(tmp_path, reward):
    folder = save_reward(tmp_path / "reward", reward)
    base = {"reward_model": str(folder), "candidates": 6, "reward_threshold": 0.5, "min_length": 2, "selection": "greedy",
            "reward_discriminators": 2}
    hooks = MORECMOPOConfig(**base, penalty="max_aleatoric", penalty_members="all").hooks()
    assert (hooks.penalty is not None and hooks.penalty.members == "all" and hooks.select.candidates == 6
            and hooks.select.selection == "greedy")
    assert hooks.select.reward.n_discriminators == 2 and float(hooks.stop.threshold) == 0.5 and int(hooks.stop.min_length) == 2
    mobile_hooks = MORECMOBILEConfig(**base).hooks()
    assert mobile_hooks.penalty is None and mobile_hooks.select is not None
    # MOREC's defaults; a missing reward is a clear error
    defaults = MORECMOPOConfig(reward_model=str(folder)).hooks()
    assert (defaults.select.candidates == 10 and defaults.select.selection == "softmax"
            and float(defaults.stop.threshold) == pytest.approx(0.6))
    with pytest.raises(ConfigError, match="dynamics reward"):
        MORECMOPOConfig().hooks()
    with pytest.raises(ConfigError, match="not a dynamics reward folder"):
        MORECMOPOConfig(reward_model=str(tmp_path)).hooks()
    with pytest.raises(ConfigError, match="MORECMOPOConfig.selection must be greedy or softmax, got 'best'"):
        MORECMOPOConfig(**(base | {"selection": "best"}))
    with pytest.raises(ConfigError, match="MORECMOBILEConfig.candidates must be >= 1"):
        MORECMOBILEConfig(candidates=0)


def test_presets_set_only_fields_of_their_method():
    for name in names():
        cls = method(name)
        fields = {f.name for f in dataclasses.fields(cls)}
        for preset, values in cls.PRESETS.items():
            assert set(values) <= fields, (name, preset)
            assert cls.preset(preset).preset == preset
    for cls in (MORECMOPOConfig, MORECMOBILEConfig):
        assert (cls().horizon, cls().rollout_batch) == (100, 2_000)
    assert MORECMOPOConfig.preset("hopper-medium").penalty_coef == 15.0
    assert MORECMOBILEConfig.preset("hopper-medium-replay-v5").penalty_coef == 0.5
    assert (MORECMOPOConfig().reward_discriminators, MORECMOBILEConfig().reward_discriminators) == (40, 10)
