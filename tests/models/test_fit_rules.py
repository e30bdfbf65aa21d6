"""Fitting rules the reference comparison rests on: the selection metric, fitting on given rows, the reference's preset,
and a fitted model's rollouts ending episodes as often as the data does."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import models
from dynlearn.errors import ConfigError
from dynlearn.models import EnsembleConfig, FitConfig
from tests.models.systems import A, B, FakeTask, linear_dataset

SMALL = EnsembleConfig(members=4, elites=2, hidden=(64, 64), weight_decay=(2.5e-5, 5e-5, 1e-4))


def small_and_noisy(episodes: int, seed: int, *, scale: float = 0.05, noise: float = 5.0) -> dl.data.Dataset:
    """A linear system observed at a small scale (``scale * x``, like Hopper's position deltas) beside one wide
    dimension of pure noise (std ``noise``, like its velocities); the reward reads ``x``."""
    rng = np.random.default_rng(seed)
    obs, act, nxt, rew, tout = [], [], [], [], []
    for _ in range(episodes):
        x = rng.normal(size=3).astype(np.float32)
        for t in range(40):
            u = rng.uniform(-1, 1, 1).astype(np.float32)
            x2 = (A @ x + B @ u).astype(np.float32)
            obs.append(np.concatenate([scale * x, [0.0]]))
            nxt.append(np.concatenate([scale * x2, noise * rng.normal(size=1)]))
            act.append(u), rew.append(float(x @ np.array([1.0, -0.5, 0.25]))), tout.append(t == 39)
            x = x2
    return dl.data.from_arrays(obs=np.array(obs, np.float32), act=np.array(act), next_obs=np.array(nxt, np.float32),
                               rew=np.array(rew, np.float32), terminal=np.zeros(len(obs), bool), timeout=np.array(tout))


def test_normalized_selection_keeps_fitting_the_small_dims_that_raw_mse_ignores():
    data, test = small_and_noisy(60, 0), small_and_noisy(20, 1)
    informative = [0, 1, 2, 4]  # the three small deltas and the reward; dim 3 is noise no model can predict
    relative = {}
    for rule in ("mse", "normalized"):
        model, report = models.fit(SMALL, data, key=jax.random.key(0), cfg=FitConfig(progress=False, max_epochs=300, select_by=rule))
        err = models.one_step_error(model, test)
        relative[rule] = (err.elite_mean_mse / err.baseline_mse)[informative]
        assert report.select_by == rule
        # the reported metric is the one selected on: mean over dims of the per-dim MSE (divided by the target's
        # training variance when normalised), for the final snapshot of every member
        dim = np.asarray(report.holdout_dim_mse)
        weights = 1.0 / np.asarray(report.target_var) if rule == "normalized" else np.ones(dim.shape[1])
        np.testing.assert_allclose(report.holdout_mse, (dim * weights).mean(axis=1), rtol=1e-4)
    # raw MSE is all noise-dimension: it stops while the small dims are still poorly fitted
    assert relative["normalized"].mean() < 0.5 * relative["mse"].mean(), relative


def test_fits_on_given_holdout_rows():
    data = linear_dataset(episodes=30, length=40, seed=0)
    rows = np.arange(0, len(data), 7)
    _, hold, mode, episodes = models.split_holdout(data, FitConfig(), holdout_rows=rows)
    assert mode == "given" and episodes == 0 and len(hold) == len(rows)
    np.testing.assert_array_equal(np.asarray(hold.obs), np.asarray(data.transitions.obs)[rows])
    _, report = models.fit(SMALL, data, key=jax.random.key(0), cfg=FitConfig(progress=False, max_epochs=2), holdout_rows=rows)
    assert (report.holdout_mode, report.holdout_size, report.train_size) == ("given", len(rows), len(data) - len(rows))
    for bad in (np.array([0.5, 1.5]), np.array([len(data)]), np.arange(len(data)), np.array([], np.int64)):
        with pytest.raises(ConfigError, match="holdout_rows"):
            models.split_holdout(data, FitConfig(), holdout_rows=bad)


def test_offlinerl_kit_preset_is_the_reference_rule():
    kit = FitConfig.preset("offlinerl-kit")
    assert (kit.holdout, kit.select_by, kit.max_epochs, kit.min_epochs) == ("transitions", "mse", None, 0)
    assert (kit.patience, kit.min_improvement, kit.holdout_fraction, kit.holdout_max_transitions) == (5, 0.01, 0.2, 1000)
    assert FitConfig.preset("dynlearn") == FitConfig()
    assert FitConfig.preset("offlinerl-kit", select_by="normalized").select_by == "normalized"
    with pytest.raises(ConfigError, match="unknown preset"):
        FitConfig.preset("mbpo")
    with pytest.raises(ConfigError, match="select_by"):
        FitConfig(select_by="mae")


def test_rollouts_of_the_behaviour_policy_terminate_as_often_as_its_data():
    """Model rollouts of the data's own policy end episodes at the data's rate: what Hopper's torso dims decide."""
    threshold, horizon = 0.3, 10
    data = linear_dataset(episodes=300, length=40, seed=0, terminate_above=threshold)
    task = FakeTask("linear", 3, 1, termination_fn=lambda o, a, n: n[..., 0] > threshold)
    model, _ = models.fit(SMALL, data, key=jax.random.key(0), cfg=FitConfig(progress=False, max_epochs=100), task=task)
    test = linear_dataset(episodes=300, length=40, seed=1, terminate_above=threshold)
    t = test.transitions
    term = np.asarray(t.terminal, bool)
    bounds = np.append(np.asarray(test.episode_starts), len(test))
    end = np.repeat(bounds[1:], np.diff(bounds))
    ends_terminal = np.repeat(term[bounds[1:] - 1], np.diff(bounds))
    rows = np.flatnonzero((end - np.arange(len(test)) >= horizon) | ends_terminal)
    data_rate = np.mean([term[i:min(i + horizon, end[i])].any() for i in rows])
    uniform = lambda obs, *, key: jax.random.uniform(key, (obs.shape[0], 1), minval=-1.0, maxval=1.0)  # noqa: E731
    r = dl.rollout.rollout(model, uniform, jnp.asarray(np.asarray(t.obs)[rows]), horizon, key=jax.random.key(1))
    model_rate = float(np.asarray(r.terminal & r.valid).any(axis=0).mean())
    assert 0.1 < data_rate < 0.9, data_rate  # the check has something to find
    assert abs(model_rate - data_rate) < 0.05, (model_rate, data_rate)
