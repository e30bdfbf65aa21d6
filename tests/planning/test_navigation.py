"""The navigation task, the forward model with a failure head, and MPPI over it: the step and the collision check are
exact on hand-made maps, the robot-centric grid is in the robot's frame, the failure head learns to predict collisions,
a stopped and resumed fit ends where an uninterrupted one does, the objective accumulates P(no failure so far), and
MPPI with the true model reaches the goal and goes around an obstacle it drives into when failure is ignored."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn.errors import ConfigError, DataError
from dynlearn.models.failure import FailureFitConfig, FailureModel, FailureModelConfig, auc, fit_failure_model
from dynlearn.planning import MPPIConfig
from dynlearn.planning.failure_cost import (AbstractNavigationRollout, FailureCostConfig, LearnedRollout, TrueRollout,
                                            navigation_returns)
from dynlearn.planning.navigation_mpc import NavigationPolicy, run_navigation
from dynlearn.tasks import navigation as nav
from dynlearn.tasks.navigation_data import CollectConfig, collect

CFG = nav.NavigationConfig()


def _scene(cells=(), start=(2.0, 8.0, 0.0), goal=(14.0, 8.0)) -> nav.Scene:
    occ = np.zeros((CFG.cells, CFG.cells), np.float32)
    for i, j in cells:
        occ[i, j] = 1.0
    return nav.Scene(occ=jnp.asarray(occ), start=jnp.asarray(start, jnp.float32), goal=jnp.asarray(goal, jnp.float32))


def _state(pose, vel=(0.0, 0.0)) -> nav.NavState:
    return nav.NavState(pose=jnp.asarray(pose, jnp.float32), vel=jnp.asarray(vel, jnp.float32))


def _stack(*scenes):
    return jax.tree_util.tree_map(lambda *x: jnp.stack(x), *scenes)


# ----------------------------------------------------------------------------------------------------------- the task


def test_the_step_moves_by_the_lagged_command_in_the_robots_frame():
    empty = _scene()
    state, failed, reached = nav.step(CFG, empty, _state((2.0, 8.0, 0.0)), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(state.pose, [2.0 + 0.5 * 1.5 * 0.2, 8.0, 0.0], atol=1e-6)  # half the gap to 1.5 units/s
    assert not failed and not reached
    north, _, _ = nav.step(CFG, empty, _state((2.0, 8.0, np.pi / 2)), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(north.pose[:2], [2.0, 8.15], atol=1e-6)
    spin, _, _ = nav.step(CFG, empty, _state((2.0, 8.0, 0.0)), jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(spin.pose, [2.0, 8.0, 0.5 * 2.0 * 0.2], atol=1e-6)  # turning in place from rest
    s = _state((2.0, 8.0, 0.0))
    for _ in range(30):
        s, _, _ = nav.step(CFG, empty, s, jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(s.vel, [1.5, 0.0], atol=1e-5)
    _, _, reached = nav.step(CFG, _scene(goal=(13.9, 8.0)), _state((13.5, 8.0, 0.0), (1.5, 0.0)), jnp.array([1.0, 0.0]))
    assert reached


def test_the_collision_check_is_exact_disc_against_cells():
    wall = _scene([(12, j) for j in range(CFG.cells)])  # the cells of x in [3.0, 3.25]
    hits = lambda occ, x, y: bool(nav._disc_hits(CFG, occ, jnp.array([x, y])))  # noqa: E731
    assert not hits(wall.occ, 2.69, 8.0) and hits(wall.occ, 2.71, 8.0)
    corner = _scene([(12, 32)])  # one cell, [3.0, 3.25] x [8.0, 8.25]: its nearest corner (3.0, 8.0)
    assert hits(corner.occ, 2.80, 7.80) and not hits(corner.occ, 2.78, 7.78)  # 0.283 and 0.311 from it
    assert hits(corner.occ, 0.2, 5.0) and not hits(corner.occ, 0.31, 5.0)  # the arena's edge is wall
    _, failed, _ = nav.step(CFG, wall, _state((2.5, 8.0, 0.0), (1.5, 0.0)), jnp.array([1.0, 0.0]))  # ends at 2.8
    _, safe, _ = nav.step(CFG, wall, _state((2.3, 8.0, 0.0), (1.5, 0.0)), jnp.array([1.0, 0.0]))   # ends at 2.6
    assert failed and not safe
    # a jump over the wall: both ends free, the midpoint not
    assert bool(nav.collides(CFG, wall.occ, jnp.array([2.6, 8.0, 0.0]), jnp.array([3.65, 8.0, 0.0])))


def test_the_observation_is_in_the_robots_frame():
    scene = _scene([(32, 36)], goal=(14.0, 8.0))  # an obstacle cell at (8.0-8.25, 9.0-9.25)
    obs = nav.observe(CFG, scene, _state((8.1, 7.9, np.pi / 2), (0.5, 0.1)))  # facing north, the obstacle 1.1-1.35 ahead
    goal, vel, grid = nav.split_obs(CFG, obs)
    np.testing.assert_allclose(goal, [0.1, -5.9], atol=1e-5)  # the goal is to the right
    np.testing.assert_allclose(vel, [0.5, 0.1])
    c = CFG.view // 2
    i, j = np.nonzero(np.asarray(grid))
    assert (i - c).tolist() == [5] and (j - c).tolist() == [0]  # x along the heading: 1.25 ahead, centred
    edge = nav.split_obs(CFG, nav.observe(CFG, scene, _state((1.0, 8.0, 0.0))))[2]
    assert np.all(np.asarray(edge)[: c - 5]) and not np.any(np.asarray(edge)[c:, c])  # behind: outside the arena


def test_maps_keep_start_and_goal_free_and_reachability_is_a_flood_fill():
    scenes = jax.vmap(lambda k: nav.generate(CFG, k))(jax.random.split(jax.random.key(0), 32))
    hit = jax.vmap(lambda s: nav._disc_hits(CFG, s.occ, jnp.stack([s.start[:2], s.goal])))(scenes)
    assert not np.any(np.asarray(hit)) and float(scenes.occ.mean()) > 0.03
    assert bool(nav.reachable(CFG, _scene()))
    assert not bool(nav.reachable(CFG, _scene([(32, j) for j in range(CFG.cells)])))
    assert bool(nav.reachable(CFG, _scene([(32, j) for j in range(CFG.cells) if not 20 <= j < 26])))  # a 1.5-unit door


def test_bad_configurations_are_refused_with_a_fix():
    with pytest.raises(ConfigError, match="odd"):
        nav.NavigationConfig(view=40)
    with pytest.raises(ConfigError, match="4 \\+ view"):
        nav.split_obs(CFG, jnp.zeros(10))
    with pytest.raises(ConfigError):
        FailureCostConfig(failure_cost=-1.0)


# ----------------------------------------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def data():
    small = CollectConfig(envs=64, steps=100)
    return collect(CFG, small, key=jax.random.key(0)), collect(CFG, CollectConfig(envs=32, steps=100), key=jax.random.key(1))


def test_auc_is_the_rank_statistic():
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auc([1.0, 1.0], [0, 1]) == 0.5
    assert np.isnan(auc([0.3, 0.2], [1, 1]))


def test_the_failure_head_learns_to_predict_collisions(data):
    train, holdout = data
    assert 0.02 < float(np.mean(np.asarray(train.failed))) < 0.3
    _, report = fit_failure_model(train, CFG, fit=FailureFitConfig(steps=1500, block=500), key=jax.random.key(0), holdout=holdout)
    h = report["holdout"]
    assert h["failure/auc"] > 0.95, h
    assert h["failure/accuracy"] > 1 - h["failure/base_rate"] + 0.01, h  # better than always "no failure"
    assert h["rmse/dx"] < 0.2 * float(np.std(np.asarray(holdout.delta[:, 0]))), h


def test_a_stopped_and_resumed_fit_ends_as_an_uninterrupted_one(data, tmp_path):
    train, _ = data
    fit = FailureFitConfig(steps=400, block=100)
    full, _ = fit_failure_model(train, CFG, fit=fit, key=jax.random.key(2))
    _, first = fit_failure_model(train, CFG, fit=fit, key=jax.random.key(2), checkpoint=tmp_path / "ckpt", until=200)
    assert not first["done"] and first["steps"] == 200
    resumed, second = fit_failure_model(train, CFG, fit=fit, key=jax.random.key(2), checkpoint=tmp_path / "ckpt")
    assert second["done"] and second["steps"] == 400
    leaves = lambda m: jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array))  # noqa: E731
    for a, b in zip(leaves(full), leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="another fit"):
        fit_failure_model(train, CFG, fit=fit, key=jax.random.key(3), checkpoint=tmp_path / "ckpt")
    with pytest.raises(DataError, match="patches"):
        fit_failure_model(train, CFG, FailureModelConfig(patch=7), fit=fit, key=jax.random.key(2))


# ----------------------------------------------------------------------------------------------------------- planning


class _Straight(AbstractNavigationRollout):
    """Moves 0.2 along x per step whatever the action, failing with probability 0.1 each step."""

    nav: nav.NavigationConfig = eqx.field(static=True)

    def start(self, obs, scene=None, state=None):
        return None, jnp.zeros(3), jnp.zeros(2), jnp.zeros(2)

    def step(self, context, pose, vel, act):
        return pose + jnp.array([0.2, 0.0, 0.0]), vel, jnp.float32(0.1)


def test_the_objective_weights_progress_by_the_probability_of_no_failure_so_far():
    r, h, c = _Straight(nav=CFG), 8, 10.0
    acts = jnp.zeros((2, h, 2))
    far = navigation_returns(r, None, jnp.zeros(3), jnp.zeros(2), jnp.array([100.0, 0.0]), acts, FailureCostConfig(c))
    survive = 0.9 ** np.arange(1, h + 1)
    np.testing.assert_allclose(far, np.sum(survive * 0.2) - c * (1 - 0.9**h), rtol=1e-5)
    near = navigation_returns(r, None, jnp.zeros(3), jnp.zeros(2), jnp.array([1.0, 0.0]), acts, FailureCostConfig(c))
    np.testing.assert_allclose(near, np.sum(survive[:3] * 0.2) - c * (1 - 0.9**3), rtol=1e-5)  # within 0.5 after 3 steps
    blind = navigation_returns(r, None, jnp.zeros(3), jnp.zeros(2), jnp.array([100.0, 0.0]), acts, FailureCostConfig(c, use_failure=False))
    np.testing.assert_allclose(blind, 0.2 * h, rtol=1e-5)


def test_mppi_with_the_true_model_reaches_the_goal_and_avoids_what_it_would_hit():
    d = (jnp.arange(CFG.cells, dtype=jnp.float32) + 0.5) * CFG.cell
    disc = (jnp.linalg.norm(jnp.stack(jnp.meshgrid(d, d, indexing="ij"), -1) - jnp.array([8.0, 8.0]), axis=-1) < 1.2)
    blocked = nav.Scene(occ=disc.astype(jnp.float32), start=jnp.array([3.0, 8.0, 0.0]), goal=jnp.array([13.0, 8.0]))
    scenes = _stack(_scene(start=(3.0, 8.0, 0.0), goal=(13.0, 8.0)), blocked)
    mppi = MPPIConfig(horizon=15, samples=64, temperature=0.1, noise_beta=2.0)
    careful = run_navigation(TrueRollout(nav=CFG), scenes, mppi, FailureCostConfig(), key=jax.random.key(0))
    assert np.all(np.asarray(careful.success)) and np.all(np.asarray(careful.steps) < CFG.time_limit)
    assert np.asarray(careful.steps)[0] <= 40  # 10 units at up to 0.3 a step, from rest
    blind = run_navigation(TrueRollout(nav=CFG), scenes, mppi, FailureCostConfig(use_failure=False), key=jax.random.key(0))
    assert np.asarray(blind.success).tolist() == [True, False] and bool(blind.failure[1])
    summary = careful.summary()
    assert summary["success"] == 1.0 and summary["collision"] == 0.0 and summary["episodes"] == 2


def test_the_learned_planner_is_a_batch_policy():
    model = FailureModel.init(FailureModelConfig(hidden=(16,)), CFG, key=jax.random.key(0))
    policy = NavigationPolicy(LearnedRollout(model=model, nav=CFG), MPPIConfig(horizon=5, samples=16))
    obs = np.stack([np.asarray(nav.observe(CFG, _scene(), _state((2.0, 8.0 + i, 0.0)))) for i in range(3)])
    act = policy(obs, np.random.default_rng(0))
    assert act.shape == (3, 2) and act.dtype == np.float32 and np.all(np.abs(act) <= 1)
    policy.reset()
    np.testing.assert_array_equal(policy(obs, np.random.default_rng(0)), act)
    with pytest.raises(ConfigError, match="LearnedRollout"):
        NavigationPolicy(TrueRollout(nav=CFG))
