"""Fitting: the ensemble learns a known system, knows where it has not seen data, and fits the way it says it does."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import models
from dynlearn.metrics import model_error
from dynlearn.models import EnsembleConfig, FitConfig
from dynlearn.models.cache import cache_entry
from tests.models.systems import linear_dataset, marked_dataset

SMALL = EnsembleConfig(members=4, elites=2, hidden=(64, 64), weight_decay=(2.5e-5, 5e-5, 1e-4))
QUIET = FitConfig(progress=False, max_epochs=200)


@pytest.fixture(scope="module")
def fitted():
    data = linear_dataset(episodes=60, length=40, seed=0)
    model, report = models.fit(SMALL, data, key=jax.random.key(0), cfg=QUIET)
    return data, model, report


def test_beats_the_mean_predictor_on_held_out_episodes(fitted):
    _, model, _ = fitted
    test = linear_dataset(episodes=20, length=40, seed=1)  # new episodes of the same system
    err = models.one_step_error(model, test)
    assert err.member_mse.shape == (4, 4)
    # every target dimension (3 deltas and the reward), by a wide margin
    assert np.all(err.elite_mean_mse < 0.2 * err.baseline_mse), (err.elite_mean_mse, err.baseline_mse)
    assert np.all(err.skill > 0.8)
    # the elites' mean is at least as good as the average member
    assert np.all(err.elite_mean_mse <= err.member_mse.mean(axis=0) * 1.05)


def test_more_uncertain_far_from_the_data(fitted):
    data, model, _ = fitted
    obs = jnp.asarray(data.transitions.obs[:500])
    act = jnp.asarray(data.transitions.act[:500])
    near = model.members(obs, act)
    far = model.members(8.0 * obs + 6.0, 3.0 * act)
    # epistemic: spread of the members' means (the noise here is homoscedastic, so the aleatoric
    # part need not grow); total: the mixture's variance, aleatoric + epistemic
    epistemic_near, epistemic_far = (float(jnp.mean(jnp.var(o.mean, axis=0))) for o in (near, far))
    assert epistemic_far > 20 * epistemic_near, (epistemic_near, epistemic_far)
    total = lambda o: jnp.mean(jnp.exp(o.logvar), axis=0) + jnp.var(o.mean, axis=0)  # noqa: E731
    assert np.all(np.median(np.asarray(total(far)), axis=0) > 5 * np.median(np.asarray(total(near)), axis=0))


def test_early_stopping_and_elites(fitted):
    data, model, report = fitted
    assert report.stopped_early and report.epochs < QUIET.max_epochs
    history = np.array(report.history)  # [epochs, members]
    assert history.shape == (report.epochs, SMALL.members)
    # replay the rule: the last `patience` epochs improved no member's best by more than 1%
    best = np.full(SMALL.members, 1e10)
    since = 0
    for row in history:
        better = (best - row) / best > QUIET.min_improvement
        best = np.where(better, row, best)
        since = 0 if better.any() else since + 1
    assert since == QUIET.patience
    np.testing.assert_allclose(report.holdout_mse, best, rtol=1e-6)
    # elites: the members with the lowest best holdout error, and the model holds those snapshots
    assert report.elites == tuple(np.argsort(best)[:SMALL.elites])
    np.testing.assert_array_equal(model.elites, report.elites)
    _, hold, mode, _ = models.split_holdout(data, QUIET, seed=report.holdout_seed)
    assert mode == "episodes" and len(hold) == report.holdout_size
    err = models.one_step_error(model, hold)
    np.testing.assert_allclose(err.member_mse.mean(axis=1), report.holdout_mse, rtol=2e-3)
    assert report.train_size + report.holdout_size == len(data)
    assert report.steps_per_s > 0 and report.wall_s > 0


def test_holdout_is_whole_episodes():
    data = marked_dataset(np.random.default_rng(0).integers(20, 60, size=100))
    train, hold, mode, k = models.split_holdout(data, FitConfig(), seed=3)
    assert mode == "episodes" and k >= 10
    hold_eps, train_eps = set(np.asarray(hold.obs[:, 0]).tolist()), set(np.asarray(train.obs[:, 0]).tolist())
    assert not hold_eps & train_eps and len(hold_eps) == k
    lengths = data.episode_lengths
    assert len(hold) == sum(lengths[int(e)] for e in hold_eps)  # every row of each held-out episode
    # short episodes: more than 10 episodes, so the holdout holds about min(20%, 1000) rows
    _, hold, mode, k = models.split_holdout(marked_dataset([5] * 1000), FitConfig(), seed=0)
    assert mode == "episodes" and k == 200 and len(hold) == 1000
    # few, long episodes: 10 would be most of the data -> random transitions, min(20%, 1000)
    _, hold, mode, k = models.split_holdout(marked_dataset([1000] * 15), FitConfig(), seed=0)
    assert mode == "transitions" and k == 0 and len(hold) == 1000
    _, hold, mode, _ = models.split_holdout(marked_dataset([300] * 3), FitConfig(), seed=0)
    assert mode == "transitions" and len(hold) == 180


def test_kit_holdout_takes_random_rows_and_keys_only_the_fits_that_ask_for_it():
    """holdout="transitions" (OfflineRL-Kit's rule) holds out min(20%, 1000) random rows even where whole episodes
    would do; the default's cache key is the one models fitted before the option had, so they stay cached."""
    data = marked_dataset(np.random.default_rng(0).integers(20, 60, size=100))
    kit = FitConfig(holdout="transitions")
    train, hold, mode, k = models.split_holdout(data, kit, seed=3)
    assert mode == "transitions" and k == 0 and len(hold) == min(int(0.2 * len(data)), 1000)
    held_episodes = set(np.asarray(hold.obs[:, 0]).tolist())
    assert len(held_episodes) > 10  # rows from many episodes...
    assert held_episodes & set(np.asarray(train.obs[:, 0]).tolist())  # ...whose other rows train the model
    assert len(train) + len(hold) == len(data)
    assert "holdout" not in FitConfig().identity() and kit.identity()["holdout"] == "transitions"
    assert cache_entry(data, fit_cfg=FitConfig()) != cache_entry(data, fit_cfg=kit)
    with pytest.raises(dl.ConfigError, match="holdout"):
        FitConfig(holdout="random")


def test_rows_without_successor_do_not_enter_the_loss():
    base = linear_dataset(episodes=15, length=20, seed=2)
    t = base.transitions
    valid = np.ones(len(base), bool)
    valid[base.episode_ends - 1] = False  # the last step of every episode has no successor
    tiny = EnsembleConfig(members=2, elites=1, hidden=(16,), weight_decay=(0.0, 0.0))
    cfg = FitConfig(progress=False, max_epochs=3, holdout_episodes=3)

    def fit_with(next_obs_at_invalid):
        nxt = np.array(t.next_obs)
        nxt[~valid] = next_obs_at_invalid
        data = dl.data.from_arrays(obs=t.obs, act=t.act, rew=t.rew, next_obs=nxt, next_obs_valid=valid, terminal=t.terminal,
                                   timeout=t.timeout, episode_starts=base.episode_starts)
        return models.fit(tiny, data, key=jax.random.key(1), cfg=cfg)

    (m1, r1), (m2, r2) = fit_with(1e6), fit_with(-3.0)
    assert r1.rows_without_successor == 15
    for a, b in zip(jax.tree_util.tree_leaves(m1), jax.tree_util.tree_leaves(m2)):
        np.testing.assert_array_equal(a, b)
    assert r1.history == r2.history
    assert np.all(np.isfinite(r1.history)) and max(max(h) for h in r1.history) < 10.0


def test_termination_head_learns_where_episodes_end():
    """No termination fn: the head learns ``x'[0] > 0.3`` from terminal flags (targets normalised too).

    About 6% of rows are terminal; on new episodes the head must rank terminal rows above the others
    (AUC) and raise no false alarms at p > 0.5. With 1.5k rows it stays conservative (recall below 1).
    """
    data = linear_dataset(episodes=150, length=20, seed=3, terminate_above=0.3)
    assert 60 < np.asarray(data.transitions.terminal).sum() < 200
    cfg = EnsembleConfig(members=2, elites=2, hidden=(32, 32), weight_decay=(0.0, 0.0, 0.0), normalize_targets=True)
    model, _ = models.fit(cfg, data, key=jax.random.key(2), cfg=FitConfig(progress=False, max_epochs=300, patience=300))
    test = linear_dataset(episodes=150, length=20, seed=4, terminate_above=0.3)
    t = test.transitions
    terminal = np.asarray(t.terminal)
    logit = np.asarray(model.members(jnp.asarray(t.obs), jnp.asarray(t.act)).terminal_logit)  # [members, n]
    auc = np.mean(logit[:, terminal][:, :, None] > logit[:, ~terminal][:, None, :], axis=(1, 2))
    assert np.all(auc > 0.95), auc
    _, pred = model.step(model.init_state(jnp.asarray(t.obs), key=jax.random.key(0)), jnp.asarray(t.obs), jnp.asarray(t.act),
                         key=jax.random.key(1), deterministic=True)
    p = np.asarray(pred.terminal)
    assert p[~terminal].mean() < 0.01 and p[terminal].mean() > 0.2, (p[terminal].mean(), p[~terminal].mean())
    # outputs in data units even though the model trained on normalised targets
    err = models.one_step_error(model, test)
    assert np.all(err.skill > 0.5), err.skill


def test_refit_continues_from_a_model(fitted):
    data, model, report = fitted
    again, r = models.fit(model, data, key=jax.random.key(9), cfg=dataclasses.replace(QUIET, max_epochs=1))
    assert r.epochs == 1
    np.testing.assert_array_equal(again.input_norm.mean, model.input_norm.mean)  # statistics kept


def test_model_error_functions():
    target = jnp.asarray([[0.0, 1.0], [2.0, 3.0], [4.0, 100.0]])
    mask = jnp.asarray([True, True, False])
    mean = jnp.stack([target, target + 1.0])
    np.testing.assert_allclose(model_error.member_mse(mean, target, mask), [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(model_error.mean_predictor_mse(target, mask), [1.0, 1.0])  # variance of [0, 2] and [1, 3]
    np.testing.assert_allclose(model_error.mean_predictor_mse(target, mask, reference=jnp.zeros(2)), [2.0, 5.0])
    np.testing.assert_allclose(model_error.skill(jnp.asarray([0.5, 1.0]), jnp.asarray([1.0, 1.0])), [0.5, 0.0])
    entry_mask = jnp.asarray([[True, False], [True, True], [False, True]])
    np.testing.assert_allclose(model_error.prediction_mse(target + 2.0, target, entry_mask), [4.0, 4.0])
    nan_target = target.at[2].set(jnp.nan)
    assert np.all(np.isfinite(model_error.member_mse(mean, nan_target, mask)))


def test_min_epochs_lowers_the_learning_rate_at_the_first_plateau_and_trains_on(fitted):
    """The edge-of-reach reference's rule: early stopping cannot end the fit before min_epochs; the first plateau
    lowers the learning rate (x 0.3) instead, and the members still end at their best snapshots."""
    data, _, plain = fitted
    cfg = dataclasses.replace(QUIET, min_epochs=plain.epochs + 15)
    model, report = models.fit(SMALL, data, key=jax.random.key(0), cfg=cfg)
    # the same fit as the plain one up to its plateau, which now lowers the learning rate instead of stopping
    assert report.lr_lowered_at == plain.epochs and plain.lr_lowered_at is None
    np.testing.assert_array_equal(np.array(report.history[:plain.epochs]), np.array(plain.history))
    assert cfg.min_epochs <= report.epochs < cfg.max_epochs and report.stopped_early
    # training on keeps every member's best snapshot or a better one
    assert np.all(np.array(report.holdout_mse) <= np.array(plain.holdout_mse) * (1 + 1e-6))
    np.testing.assert_allclose(report.holdout_mse, np.array(report.history).min(axis=0), rtol=0.02)
    # the lowered rate is the one trained with: without the drop the epochs after the plateau differ
    _, same_rate_report = models.fit(SMALL, data, key=jax.random.key(0), cfg=dataclasses.replace(cfg, plateau_lr_factor=1.0))
    assert same_rate_report.lr_lowered_at is None
    assert same_rate_report.history[plain.epochs - 1] == report.history[plain.epochs - 1]
    assert same_rate_report.history[plain.epochs] != report.history[plain.epochs]
    # cache keys of fits without the rule are unchanged; with it they differ
    assert "min_epochs" not in FitConfig().identity() and FitConfig(min_epochs=350).identity() != FitConfig().identity()
    with pytest.raises(dl.ConfigError, match="plateau_lr_factor"):
        FitConfig(min_epochs=10, plateau_lr_factor=0.0)
    with pytest.raises(dl.ConfigError, match="min_epochs 20 is above max_epochs 10"):
        FitConfig(min_epochs=20, max_epochs=10)


def test_a_fit_resumed_after_its_learning_rate_drop_continues_with_the_lowered_rate(fitted, tmp_path):
    """The checkpoint keeps the drop: a fit continued from a state saved after it ends as the uninterrupted one."""
    data, _, plain = fitted
    fit_cfg = dataclasses.replace(QUIET, min_epochs=plain.epochs + 3)
    full, full_report = models.fit(SMALL, data, key=jax.random.key(0), cfg=fit_cfg)
    folder = tmp_path / "state"  # saved after every epoch; the last save is one epoch before the end
    models.fit(SMALL, data, key=jax.random.key(0), cfg=fit_cfg, checkpoint=folder, checkpoint_every_s=0.0)
    assert json_epoch(folder) == full_report.epochs - 1 > full_report.lr_lowered_at == plain.epochs
    resumed, report = models.fit(SMALL, data, key=jax.random.key(0), cfg=fit_cfg, checkpoint=folder)
    assert report.history == full_report.history and report.lr_lowered_at == full_report.lr_lowered_at
    for a, b in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_stopped_fit_continues_from_its_checkpoint_exactly(tmp_path):
    """SIGTERM / Ctrl-C (interrupt.request) checkpoints the fit after its epoch; the same call with the same folder ends
    with the uninterrupted fit's model and report; another fit's checkpoint is refused."""
    from dynlearn import interrupt

    data = linear_dataset(episodes=30, length=20, seed=5)
    cfg = EnsembleConfig(members=3, elites=2, hidden=(16, 16), weight_decay=(2.5e-5, 5e-5, 1e-4))
    fit_cfg = FitConfig(progress=False, max_epochs=6, patience=6)
    full, full_report = models.fit(cfg, data, key=jax.random.key(0), cfg=fit_cfg)
    folder = tmp_path / "state"
    with interrupt.graceful_stop():
        interrupt.request()
        with pytest.raises(interrupt.Stopped):
            models.fit(cfg, data, key=jax.random.key(0), cfg=fit_cfg, checkpoint=folder)
    assert json_epoch(folder) == 1
    resumed, report = models.fit(cfg, data, key=jax.random.key(0), cfg=fit_cfg, checkpoint=folder)
    assert report.history == full_report.history and report.elites == full_report.elites and report.epochs == 6
    for a, b in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(dl.ConfigError, match="another fit"):
        models.fit(cfg, data, key=jax.random.key(1), cfg=fit_cfg, checkpoint=folder)


def json_epoch(folder) -> int:
    import json

    return json.loads((folder / "progress.json").read_text())["epoch"]


def test_the_model_cache_continues_a_stopped_fit(tmp_path):
    from dynlearn import interrupt

    data = linear_dataset(episodes=30, length=20, seed=6)
    cfg = EnsembleConfig(members=3, elites=2, hidden=(16,), weight_decay=(2.5e-5, 1e-4))
    fit_cfg = FitConfig(progress=False, max_epochs=4, patience=4)
    with interrupt.graceful_stop():
        interrupt.request()
        with pytest.raises(interrupt.Stopped):
            models.fitted(data, cfg, fit_cfg, root=tmp_path)
    assert [p.name.endswith(".fitting") for p in tmp_path.iterdir()] == [True]
    lines = []
    model, report = models.fitted(data, cfg, fit_cfg, root=tmp_path, log=lines.append)
    assert "continuing a stopped fit" in lines[0] and report.epochs == 4
    assert [p.name.endswith(".fitting") for p in tmp_path.iterdir()] == [False]  # the entry only
