"""Rollouts: shapes and masks, hooks, determinism, no recompilation, flattening to transitions and buffers."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import models, penalties
from dynlearn.errors import ConfigError
from dynlearn.agents import bc
from dynlearn.agents.base import AgentSpec
from dynlearn.data.buffer import ReplayBuffer
from dynlearn.models import EnsembleConfig, FitConfig
from dynlearn.rollout import AgentPolicy, Penalty, RolloutHooks, Selection, add_valid, elite_view, rollout
from tests.models.systems import FakeTask, linear_dataset

TINY = EnsembleConfig(members=4, elites=3, hidden=(16, 16), weight_decay=(2.5e-5, 5e-5, 1e-4))
B, H = 32, 6


def x0_above_half(obs, act, next_obs):
    return next_obs[..., 0] > 0.5


def never(obs, act, next_obs):
    return jnp.zeros(next_obs.shape[:-1], bool)


class LinearPolicy(eqx.Module):
    """``tanh(obs @ w)`` plus a little noise; counts how often it is traced."""

    w: jax.Array
    traces: list = eqx.field(static=True)

    def __call__(self, obs, *, key):
        self.traces.append(1)  # runs only while tracing
        return jnp.tanh(obs @ self.w) + 0.1 * jax.random.normal(key, (obs.shape[0], self.w.shape[1]), jnp.float32)


class StopFrom(eqx.Module):
    """Stop the even branches from step ``t0`` (a traced array)."""

    t0: jax.Array

    def __call__(self, t, *, obs, act, next_obs, reward, scores, penalty, terminal):
        return (t >= self.t0) & (jnp.arange(obs.shape[0]) % 2 == 0)


class EliteZeroMean(eqx.Module):
    """A select hook: elite 0's mean, scored by the negative penalty-free disagreement."""

    def __call__(self, obs, act, outputs, *, key):
        delta = outputs.mean[0]
        scores = -penalties.ensemble_std(outputs, part="all")
        return Selection(next_obs=obs + delta[:, : outputs.obs_dim], reward=delta[:, outputs.obs_dim],
                         member=jnp.zeros(obs.shape[0], jnp.int32), scores=scores[:, None])


def _model(termination_fn=x0_above_half):
    model = models.ProbabilisticEnsemble.init(TINY, 3, 1, key=jax.random.key(3))
    return model.with_task(FakeTask("fake", 3, 1, termination_fn=termination_fn))


def _policy(seed=0, traces=None):
    return LinearPolicy(jax.random.normal(jax.random.key(seed), (3, 1)), traces if traces is not None else [])


def _start(seed=1):
    return jax.random.normal(jax.random.key(seed), (B, 3))


def test_shapes_and_terminal_masks():
    ro = rollout(_model(), _policy(), _start(), H, key=jax.random.key(0))
    assert ro.obs.shape == ro.next_obs.shape == (H, B, 3) and ro.act.shape == (H, B, 1)
    for name in ("rew", "terminal", "valid", "truncated", "penalty"):
        assert getattr(ro, name).shape == (H, B), name
    valid, terminal = np.asarray(ro.valid), np.asarray(ro.terminal)
    assert valid[0].all() and not np.asarray(ro.truncated).any()
    assert terminal.any() and valid.sum() < H * B  # the test exercises terminals
    assert np.all(valid[terminal])  # terminal rows are valid
    for b in range(B):
        ends = np.flatnonzero(terminal[:, b])
        end = ends[0] if len(ends) else H - 1
        assert len(ends) <= 1
        np.testing.assert_array_equal(valid[:, b], np.arange(H) <= end)
    # terminal agrees with the termination function on valid rows; a live branch continues from next_obs
    np.testing.assert_array_equal(terminal[valid], (np.asarray(ro.next_obs)[..., 0] > 0.5)[valid])
    live = valid[1:]
    np.testing.assert_allclose(np.asarray(ro.obs)[1:][live], np.asarray(ro.next_obs)[:-1][live])
    assert np.all(np.asarray(ro.penalty) == 0) and float(ro.penalty_coef) == 0


def test_stop_truncates_without_terminal():
    ro = rollout(_model(never), _policy(), _start(), H, key=jax.random.key(0), hooks=RolloutHooks(stop=StopFrom(jnp.int32(2))))
    valid, trunc = np.asarray(ro.valid), np.asarray(ro.truncated)
    even = np.arange(B) % 2 == 0
    assert not np.asarray(ro.terminal).any()
    np.testing.assert_array_equal(trunc[:, even], np.broadcast_to((np.arange(H) == 2)[:, None], (H, even.sum())))
    assert not trunc[:, ~even].any() and valid[:, ~even].all()
    np.testing.assert_array_equal(valid[:, even], np.broadcast_to((np.arange(H) < 2)[:, None], (H, even.sum())))
    # the last kept row of a stopped branch is a timeout (a truncation), never a terminal
    rows, mask = ro.masked()
    timeout = np.asarray(rows.timeout).reshape(H, B)
    assert timeout[1, even].all() and timeout[H - 1, ~even].all() and timeout.sum() == B


def test_deterministic_for_a_key():
    model, policy, start = _model(), _policy(), _start()
    hooks = RolloutHooks(penalty=Penalty(penalties.ensemble_std, coef=0.5))
    a = rollout(model, policy, start, H, key=jax.random.key(7), hooks=hooks)
    b = rollout(model, policy, start, H, key=jax.random.key(7), hooks=hooks)
    c = rollout(model, policy, start, H, key=jax.random.key(8), hooks=hooks)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.allclose(np.asarray(a.act), np.asarray(c.act))
    assert not np.allclose(np.asarray(a.next_obs)[0], np.asarray(c.next_obs)[0])


def test_new_parameters_do_not_recompile():
    traces = []
    model, start = _model(), _start()
    for i in range(3):
        hooks = RolloutHooks(penalty=Penalty(penalties.max_aleatoric, coef=0.1 * (i + 1)), stop=StopFrom(jnp.int32(i + 1)))
        ro = rollout(model, _policy(seed=i, traces=traces), start, H, key=jax.random.key(i), hooks=hooks)
        assert float(ro.penalty_coef) == pytest.approx(0.1 * (i + 1))
        model = eqx.tree_at(lambda m: m.net.biases, model, tuple(b + 0.01 for b in model.net.biases))  # new model weights too
    assert len(traces) == 1


def test_agent_policy():
    spec = AgentSpec(3, 1, (-1.0,), (1.0,))
    state = bc.init(jax.random.key(0), spec, bc.BCConfig(hidden=(8,)))
    ro = rollout(_model(never), AgentPolicy(bc.act, state, deterministic=True), _start(), 3, key=jax.random.key(0))
    np.testing.assert_allclose(np.asarray(ro.act[0]), np.asarray(bc.act(state, _start(), deterministic=True)), rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(np.asarray(ro.act)) <= 1.0)


def test_to_transitions_and_buffer():
    hooks = RolloutHooks(penalty=Penalty(penalties.max_pairwise_diff, coef=2.0, part="all"))
    ro = rollout(_model(), _policy(), _start(), H, key=jax.random.key(0), hooks=hooks)
    valid = np.asarray(ro.valid)
    rows = ro.to_transitions()
    assert len(rows) == valid.sum()
    np.testing.assert_array_equal(rows.obs, np.asarray(ro.obs)[valid])  # time-major order
    np.testing.assert_array_equal(rows.next_obs, np.asarray(ro.next_obs)[valid])
    np.testing.assert_array_equal(rows.terminal, np.asarray(ro.terminal)[valid])
    expected = np.asarray(ro.rew)[valid] - 2.0 * np.asarray(ro.penalty)[valid]
    np.testing.assert_allclose(rows.rew, expected, rtol=1e-6)
    assert np.all(np.asarray(ro.penalty) > 0)
    np.testing.assert_allclose(ro.to_transitions(penalize=False).rew, np.asarray(ro.rew)[valid])
    # the fixed-size form writes exactly the valid rows into a device buffer (twice: the cursor advances)
    buffer = ReplayBuffer.empty(3 * H * B, 3, 1)
    buffer = add_valid(buffer, *ro.masked())
    buffer = add_valid(buffer, *ro.masked())
    assert int(buffer.size) == 2 * len(rows)
    filled = buffer.filled()
    for name in ("obs", "act", "rew", "next_obs", "terminal", "timeout"):
        np.testing.assert_allclose(getattr(filled, name), np.concatenate([getattr(rows, name)] * 2), err_msg=name)


def test_select_hook():
    model = _model(never)
    ro = rollout(model, _policy(), _start(), 2, key=jax.random.key(0), hooks=RolloutHooks(select=EliteZeroMean()))
    out = elite_view(model).members(ro.obs[0], ro.act[0])
    np.testing.assert_allclose(np.asarray(ro.next_obs[0]), np.asarray(ro.obs[0] + out.mean[0, :, :3]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ro.rew[0]), np.asarray(out.mean[0, :, 3]), rtol=1e-5, atol=1e-6)
    assert ro.scores.shape == (2, B, 1)


def test_elite_view_matches_full_model():
    model = _model()
    model = eqx.tree_at(lambda m: m.elites, model, jnp.array([3, 1, 0], jnp.int32))
    obs, act = _start(), jnp.zeros((B, 1), jnp.float32)
    full, view = model.members(obs, act).elite(), elite_view(model).members(obs, act)
    np.testing.assert_allclose(np.asarray(view.mean), np.asarray(full.mean), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(view.logvar), np.asarray(full.logvar), rtol=1e-6)


def test_penalised_return_lower_for_out_of_distribution_actions():
    data = linear_dataset(episodes=30, length=40, seed=0)  # actions in [-1, 1]
    model, _ = models.fit(TINY, data, key=jax.random.key(0), cfg=FitConfig(progress=False, max_epochs=60))
    model = model.with_task(FakeTask("linear", 3, 1, termination_fn=never))
    start = jnp.asarray(data.transitions.obs[:64])
    hooks = RolloutHooks(penalty=Penalty(penalties.ensemble_std, coef=5.0, part="all"))

    def ret(u, penalize):
        policy = lambda obs, *, key: jnp.full((obs.shape[0], 1), u, jnp.float32)  # noqa: E731
        ro = rollout(model, policy, start, 5, key=jax.random.key(1), hooks=hooks)
        return float(jnp.mean(ro.returns(penalize))), float(jnp.mean(ro.penalty))

    (in_raw, in_pen), (out_raw, out_pen) = ret(0.5, False), ret(6.0, False)
    assert out_pen > 5 * in_pen
    assert out_raw > in_raw  # the model rewards the unseen action (r = C.x + 0.5 u extrapolated)...
    assert ret(6.0, True)[0] < ret(0.5, True)[0], (ret(6.0, True), ret(0.5, True), in_raw, out_raw)  # ...the penalty undoes it


def test_penalty_over_all_members_reads_the_non_elites():
    """MOPO's code takes its max over every member: a non-elite with a larger std raises the penalty; the transitions
    still come from the elites (same keys, same samples)."""
    model = _model()
    # make member 0 a non-elite whose log-variance is far larger than the others'
    elites = jnp.arange(1, model.cfg.members, dtype=jnp.int32)
    model = eqx.tree_at(lambda m: m.elites, model, elites)
    bias = model.net.biases[-1].at[0, model.target_dim:2 * model.target_dim].add(5.0)
    model = eqx.tree_at(lambda m: m.net.biases, model, (*model.net.biases[:-1], bias))
    obs = jax.random.normal(jax.random.key(0), (64, model.obs_dim))
    runs = {}
    for members in ("elites", "all"):
        hooks = RolloutHooks(penalty=Penalty(penalties.max_aleatoric, coef=1.0, part="all", members=members))
        runs[members] = rollout(model, _policy(), obs, 3, key=jax.random.key(1), hooks=hooks)
    assert float(jnp.min(runs["all"].penalty - runs["elites"].penalty)) > 0.0
    np.testing.assert_array_equal(np.asarray(runs["all"].next_obs), np.asarray(runs["elites"].next_obs))
    with pytest.raises(ConfigError, match="members"):
        Penalty(penalties.max_aleatoric, members="some")


class FirstElite(eqx.Module):
    """A select hook: every row takes the first elite's mean (its index in the outputs' member axis)."""

    def __call__(self, obs, act, outputs, *, key):
        m = outputs.elites[0]
        delta = outputs.mean[m]
        return Selection(next_obs=obs + delta[:, : outputs.obs_dim], reward=delta[:, outputs.obs_dim],
                         member=jnp.full(obs.shape[0], m, jnp.int32))


def test_select_hook_member_indexes_the_outputs_it_was_given():
    """With a penalty that reads every member the hooks see all members; a select hook's member index then points into
    that axis, and the termination head it picks is the same as on the elites-only path (unsorted elites, no task
    termination function: the head decides)."""
    model = models.ProbabilisticEnsemble.init(TINY, 3, 1, key=jax.random.key(3))  # no task: the termination head decides
    model = eqx.tree_at(lambda m: m.elites, model, jnp.asarray([3, 0, 2], jnp.int32))
    runs = {}
    for members in ("elites", "all"):
        hooks = RolloutHooks(penalty=Penalty(penalties.ensemble_std, coef=0.1, members=members), select=FirstElite())
        runs[members] = rollout(model, _policy(), _start(), H, key=jax.random.key(2), hooks=hooks)
    for name in ("next_obs", "terminal", "valid"):
        np.testing.assert_array_equal(np.asarray(getattr(runs["all"], name)), np.asarray(getattr(runs["elites"], name)), err_msg=name)
    ro = runs["all"]
    expected = np.asarray(model.members(ro.obs[0], ro.act[0]).terminal_logit[3] > 0)
    np.testing.assert_array_equal(np.asarray(ro.terminal[0]), expected)
    assert 0 < expected.sum() < len(expected)  # both outcomes occur, so the right head is really checked
