"""The dynamics reward (MOREC's reconstruction): the historical discriminator ensemble ranks real held-out transitions
above corrupted ones, combines its snapshots as the released code does, thins, saves and loads, and rejects bad input."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn.errors import ConfigError, DataError
from dynlearn.models import EnsembleConfig, FitConfig, fit, split_holdout
from dynlearn.algos.morec import (
    DynamicsReward,
    DynamicsRewardConfig,
    auc,
    learn_reward,
    load_report,
    load_reward,
    reward_diagnostics,
    save_reward,
)
from tests.models.systems import linear_dataset

SMALL = DynamicsRewardConfig(steps=800, batch_size=128, snapshot_every=50, snapshots=8, state_hidden=(64,), delta_hidden=(64,),
                             hidden=(64,), generator_hidden=(64,), calibration_rows=512, progress=False)


@eqx.filter_jit
def _score(reward, obs, act, nxt, what: str = "reward"):
    """One compiled call (op-by-op execution compiles every small op separately)."""
    return {"reward": reward, "logits": reward.logits, "probabilities": reward.probabilities}[what](obs, act, nxt)


@pytest.fixture(scope="module")
def learned():
    data = linear_dataset(episodes=60, length=40)
    cfg = EnsembleConfig(members=4, elites=3, hidden=(32, 32), weight_decay=(2.5e-5, 5e-5, 1e-4))
    model, _ = fit(cfg, data, key=jax.random.key(0), cfg=FitConfig(max_epochs=15, progress=False))
    reward, report = learn_reward(data, model, SMALL, key=jax.random.key(1))
    return data, model, reward, report


def test_the_ensemble_ranks_real_transitions_above_corrupted_ones_on_held_out_data(learned):
    data, _, reward, report = learned
    _, hold, _, _ = split_holdout(data, FitConfig(), seed=0)  # the rows neither the model nor the reward trained on
    obs, act, nxt = (jnp.asarray(x, jnp.float32) for x in (hold.obs, hold.act, hold.next_obs))
    delta_std = jnp.asarray(np.std(np.asarray(hold.next_obs - hold.obs), axis=0), jnp.float32)
    real = np.asarray(_score(reward, obs, act, nxt))
    noisy = nxt + 2.0 * delta_std * jax.random.normal(jax.random.key(2), nxt.shape, jnp.float32)  # a wrong change of state
    shuffled = obs + jnp.roll(nxt - obs, 7, axis=0)  # another transition's change of state
    assert auc(real, np.asarray(_score(reward, obs, act, noisy))) > 0.9
    assert auc(real, np.asarray(_score(reward, obs, act, shuffled))) > 0.85
    assert report.discriminators == SMALL.snapshots and report.steps == SMALL.steps and report.holdout_size == len(hold)
    assert [h["step"] for h in report.history] == list(range(50, 801, 50))


def test_the_reward_holds_out_the_rows_its_model_held_out(learned):
    """A model fitted with OfflineRL-Kit's random-row holdout: the reward trains and reports on that split, not on
    the default's held-out episodes (rows the model trained on)."""
    data, model, _, default_report = learned
    kit = FitConfig(holdout="transitions", holdout_max_transitions=300)  # 300 rows: no whole number of 40-step episodes
    _, kit_hold, mode, _ = split_holdout(data, kit, seed=0)
    assert mode == "transitions" and len(kit_hold) == 300 != default_report.holdout_size
    short = dataclasses.replace(SMALL, steps=100, snapshot_every=50, snapshots=2)
    _, report = learn_reward(data, model, short, key=jax.random.key(1), fit_cfg=kit)
    assert report.holdout_size == len(kit_hold) and report.train_size == len(data) - len(kit_hold)


def test_a_stopped_reward_training_continues_from_its_checkpoint_exactly(learned, tmp_path):
    """SIGTERM / Ctrl-C (interrupt.request) checkpoints after the current block; the same call with the same folder
    returns the uninterrupted call's reward and history; another call's checkpoint is refused. The stop comes after
    10 of 16 snapshots, so the 8 kept ones have already replaced the 2 oldest, as the continued run must too."""
    from dynlearn import interrupt

    data, model, full, full_report = learned
    folder = tmp_path / "state"
    stop_at_500 = lambda line: interrupt.request() if "step 500 " in line else None  # noqa: E731 (the log sees every block)
    with interrupt.graceful_stop():
        with pytest.raises(interrupt.Stopped, match="step 500"):
            learn_reward(data, model, SMALL, key=jax.random.key(1), checkpoint=folder, log=stop_at_500)
    assert json.loads((folder / "progress.json").read_text())["kept"] == SMALL.snapshots
    lines = []
    resumed, report = learn_reward(data, model, SMALL, key=jax.random.key(1), checkpoint=folder, checkpoint_every_s=0.0,
                                   log=lines.append)
    assert "continuing" in lines[0] and "step 500" in lines[0]
    assert report.history == full_report.history and report.holdout_auc == full_report.holdout_auc
    for a, b in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ConfigError, match="another reward"):
        learn_reward(data, model, SMALL, key=jax.random.key(2), checkpoint=folder)


def test_snapshots_are_combined_as_the_released_code_does(learned):
    _, _, reward, _ = learned
    obs, act = jnp.zeros((5, 3), jnp.float32), jnp.linspace(-1, 1, 5, dtype=jnp.float32)[:, None]
    nxt = obs + 0.3 * jnp.arange(5, dtype=jnp.float32)[:, None]
    logit = np.asarray(_score(reward, obs, act, nxt, "logits"))  # [S, 5]
    low, high = np.asarray(reward.learner_logit)[:, None], np.asarray(reward.expert_logit)[:, None]
    scaled = 2.0 * (np.minimum(np.maximum(logit, low), high) - low) / (high - low + 1e-7) - 1.0  # clamp, map onto [-1, 1]
    scaled[(high <= low)[:, 0]] = 1.0  # a snapshot that cannot tell data from model ranks nothing
    p = 1.0 / (1.0 + np.exp(-scaled))
    np.testing.assert_allclose(_score(reward, obs, act, nxt, "probabilities"), p, rtol=1e-5)
    r = np.asarray(_score(reward, obs, act, nxt))
    np.testing.assert_allclose(r, -np.log(1.0 - p.mean(0) + 1e-9), rtol=1e-5)
    assert np.all((r >= -np.log(1 - 1 / (1 + np.e)) - 1e-6) & (r <= -np.log(1 - 1 / (1 + np.exp(-1))) + 1e-6))  # [0.31, 1.31]
    thin = reward.thinned(3)
    assert thin.n_discriminators == 3
    np.testing.assert_array_equal(thin.expert_logit[-1], reward.expert_logit[-1])  # the latest snapshot is kept
    with pytest.raises(ConfigError, match="count"):
        reward.thinned(reward.n_discriminators + 1)


def test_diagnostics_compare_data_with_model_transitions(learned):
    data, model, reward, _ = learned
    d = reward_diagnostics(reward, model, data, key=jax.random.key(3))
    assert d["rows"] == len(data.transitions.with_successor()) and 0.0 <= d["auc"] <= 1.0 and 0.0 <= d["low_fraction_model"] <= 1.0
    assert auc(np.array([2.0, 3.0]), np.array([1.0, 1.0])) == 1.0 and auc(np.array([1.0]), np.array([1.0])) == 0.5


def test_save_load_round_trip(tmp_path, learned):
    _, _, reward, report = learned
    folder = save_reward(tmp_path / "reward", reward, report)
    back = load_reward(folder)
    for a, b in zip(jax.tree_util.tree_leaves(reward), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert back.cfg == reward.cfg and (back.obs_dim, back.act_dim) == (3, 1)
    obs = jnp.ones((4, 3), jnp.float32)
    np.testing.assert_array_equal(_score(back, obs, obs[:, :1], obs * 1.1), _score(reward, obs, obs[:, :1], obs * 1.1))
    assert load_report(folder) == report
    header = json.loads((folder / "config.json").read_text())
    header["config"]["leaf_shapes"][0] = [1, 2, 3]
    (folder / "config.json").write_text(json.dumps(header))
    with pytest.raises(DataError, match="leaf shapes"):
        load_reward(folder)
    with pytest.raises(DataError, match="no config.json"):
        load_reward(tmp_path / "nowhere")


def test_bad_config_and_input_are_clear_errors(learned):
    data, _model, _, _ = learned
    with pytest.raises(ConfigError, match="fewer than the 40"):
        DynamicsRewardConfig(steps=1000, snapshot_every=100)
    for bad in ({"generator": "gan"}, {"prob_clip": 0.0}, {"entropy_coef": -1.0}, {"activation": "sine"}, {"hidden": (0,)}):
        with pytest.raises(ConfigError):
            dataclasses.replace(SMALL, **bad)
    with pytest.raises(ConfigError, match="ProbabilisticEnsemble"):
        learn_reward(data, object(), SMALL, key=jax.random.key(0))
    other = EnsembleConfig(members=2, elites=1, hidden=(8,), weight_decay=(1e-5, 1e-5))
    from dynlearn.models import ProbabilisticEnsemble

    with pytest.raises(DataError, match="obs/act dims"):
        learn_reward(data, ProbabilisticEnsemble.init(other, 4, 1, key=jax.random.key(0)), SMALL, key=jax.random.key(0))
    reward = DynamicsReward.init(SMALL, 3, 1, key=jax.random.key(0), discriminators=2)
    with pytest.raises(ConfigError, match="obs/act dims"):
        reward(jnp.zeros((2, 4)), jnp.zeros((2, 1)), jnp.zeros((2, 4)))


def test_candidates_share_the_state_embedding_of_their_row():
    """K candidate next states of one (s, a) (MOREC's filter) score as if each row were given in full: the state
    embedding is computed once per row and shared, which changes the cost, not the numbers."""
    reward = DynamicsReward.init(DynamicsRewardConfig(), 5, 2, key=jax.random.key(0), discriminators=3)
    k = jax.random.split(jax.random.key(1), 3)
    obs, act = jax.random.normal(k[0], (7, 5)), jax.random.normal(k[1], (7, 2))
    nxt = jax.random.normal(k[2], (4, 7, 5))
    full = reward.logits(jnp.broadcast_to(obs, nxt.shape), jnp.broadcast_to(act, (4, 7, 2)), nxt)
    np.testing.assert_allclose(np.asarray(reward.logits(obs[None], act[None], nxt)), np.asarray(full), atol=1e-6)
    np.testing.assert_allclose(np.asarray(reward.logits(obs, act, nxt[0])), np.asarray(full[:, 0]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(reward.logits(obs[2], act[2], nxt[:, 2])), np.asarray(full[:, :, 2]), atol=1e-6)
