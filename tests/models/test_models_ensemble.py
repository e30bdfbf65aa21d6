"""ProbabilisticEnsemble without fitting: shapes, batching, step semantics, save/load, config checks."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import models
from dynlearn.errors import ConfigError, DataError
from dynlearn.models import EnsembleConfig, MemberOutputs, ProbabilisticEnsemble
from tests.models.systems import FakeTask, act_reward, first_obs_positive

OBS, ACT = 3, 2
CFG = EnsembleConfig(members=4, elites=2, hidden=(16, 16), weight_decay=(0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def model():
    m = ProbabilisticEnsemble.init(CFG, OBS, ACT, key=jax.random.key(1))
    return dataclasses.replace(m, elites=jnp.asarray([3, 1], jnp.int32))


def _batch(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(*shape, OBS)), jnp.float32), jnp.asarray(rng.uniform(-1, 1, (*shape, ACT)), jnp.float32))


@pytest.mark.parametrize("shape", [(), (5,), (2, 3)])
def test_members_shapes_and_vmap_agree(model, shape):
    obs, act = _batch(shape)
    out = model.members(obs, act)
    assert out.mean.shape == (4, *shape, OBS + 1) and out.logvar.shape == out.mean.shape
    assert out.terminal_logit.shape == (4, *shape)
    flat_obs, flat_act = obs.reshape(-1, OBS), act.reshape(-1, ACT)
    axes = MemberOutputs(mean=1, logvar=1, terminal_logit=1, elites=None, obs_dim=OBS)
    v = jax.vmap(model.members, out_axes=axes)(flat_obs, flat_act)
    np.testing.assert_allclose(v.mean, out.mean.reshape(4, -1, OBS + 1), rtol=1e-5, atol=1e-6)
    # log-variance stays within the soft bounds
    assert jnp.all(out.logvar <= CFG.max_logvar_init + 1e-5) and jnp.all(out.logvar >= CFG.min_logvar_init - 1e-5)


def test_one_batched_matmul_per_layer(model):
    obs, act = _batch((7,))
    jaxpr = jax.make_jaxpr(model.members)(obs, act)
    dots = [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
    assert len(dots) == len(CFG.hidden) + 1  # every member in one matmul per layer, no loop over members
    assert all(e.outvars[0].aval.shape[0] == CFG.members for e in dots)


def _eqns(jaxpr):
    """Every equation, including those inside nested (jitted) sub-programs."""
    for e in jaxpr.eqns:
        yield e
        for p in e.params.values():
            inner = getattr(p, "jaxpr", None)
            if inner is not None:
                yield from _eqns(getattr(inner, "jaxpr", inner))


def test_step_fixed_member_is_deterministic_for_a_key(model):
    obs, act = _batch((6,))
    state = model.init_state(obs, key=jax.random.key(0))
    assert state.member.shape == (6,) and set(np.asarray(state.member).tolist()) <= {1, 3}
    _, a = model.step(state, obs, act, key=jax.random.key(5), member=state.member)
    _, b = model.step(state, obs, act, key=jax.random.key(5), member=state.member)
    _, c = model.step(state, obs, act, key=jax.random.key(6), member=state.member)
    np.testing.assert_array_equal(a.next_obs, b.next_obs)
    np.testing.assert_array_equal(a.reward, b.reward)
    np.testing.assert_array_equal(a.member, state.member)
    assert not np.allclose(a.next_obs, c.next_obs)  # the noise depends on the key
    # deterministic: the chosen member's mean
    _, d = model.step(state, obs, act, key=jax.random.key(7), member=2, deterministic=True)
    out = model.members(obs, act)
    np.testing.assert_allclose(d.next_obs, obs + out.mean[2, :, :OBS], rtol=1e-6)
    np.testing.assert_allclose(d.reward, out.mean[2, :, OBS], rtol=1e-6)
    np.testing.assert_array_equal(d.terminal, out.terminal_logit[2] > 0)  # the learned head without a task


def test_random_elite_per_sample(model):
    obs, act = _batch((400,))
    _, pred = model.step(model.init_state(obs, key=jax.random.key(0)), obs, act, key=jax.random.key(1))
    members = set(np.asarray(pred.member).tolist())
    assert members == {1, 3}  # elites only, both used
    # the sample follows the selected member's Gaussian: standardised residuals ~ N(0, 1)
    out = pred.outputs
    mean = jnp.take_along_axis(out.mean, pred.member[None, :, None], axis=0)[0]
    std = jnp.take_along_axis(out.std, pred.member[None, :, None], axis=0)[0]
    z = (pred.next_obs - obs - mean[:, :OBS]) / std[:, :OBS]
    assert abs(float(z.mean())) < 0.15 and 0.85 < float(z.std()) < 1.15


def test_task_functions_replace_learned_outputs(model):
    task = FakeTask("fake-v0", OBS, ACT, termination_fn=first_obs_positive, reward_fn=act_reward)
    m = model.with_task(task)
    obs, act = _batch((50,))
    _, pred = jax.jit(lambda m, o, a, k: m.step(m.init_state(o, key=k), o, a, key=k))(m, obs, act, jax.random.key(3))
    np.testing.assert_array_equal(pred.terminal, first_obs_positive(obs, act, pred.next_obs))
    np.testing.assert_allclose(pred.reward, act_reward(obs, act, pred.next_obs))
    assert 0 < int(pred.terminal.sum()) < 50
    with pytest.raises(ConfigError):
        model.with_task(FakeTask("other", OBS + 1, ACT))


def test_no_head_and_no_task_is_an_error():
    m = ProbabilisticEnsemble.init(EnsembleConfig(members=2, elites=1, hidden=(8,), weight_decay=(0.0, 0.0), termination_head=False),
                                   OBS, ACT, key=jax.random.key(0))
    obs, act = _batch((2,))
    assert m.members(obs, act).terminal_logit is None
    with pytest.raises(ConfigError, match="termination"):
        m.step(m.init_state(obs, key=jax.random.key(0)), obs, act, key=jax.random.key(0))


def test_save_load_roundtrip(model, tmp_path):
    task = FakeTask("fake-v0", OBS, ACT, termination_fn=first_obs_positive)
    m = model.with_task(task)
    models.save(tmp_path / "m", m)
    with pytest.raises(ConfigError, match="fake-v0"):
        models.load(tmp_path / "m")
    with pytest.raises(ConfigError):
        models.load(tmp_path / "m", task=FakeTask("other-v0", OBS, ACT))
    loaded = models.load(tmp_path / "m", task=task)
    assert loaded.termination_fn is first_obs_positive and loaded.reward_fn is None
    obs, act = _batch((9,))
    a, b = m.members(obs, act), loaded.members(obs, act)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    s = m.init_state(obs, key=jax.random.key(2))
    _, pa = m.step(s, obs, act, key=jax.random.key(4))
    _, pb = loaded.step(s, obs, act, key=jax.random.key(4))
    np.testing.assert_array_equal(pa.next_obs, pb.next_obs)
    np.testing.assert_array_equal(pa.terminal, pb.terminal)
    np.testing.assert_array_equal(loaded.elites, [3, 1])
    # a model without a task loads without one
    models.save(tmp_path / "plain", model)
    assert models.load(tmp_path / "plain").task_id is None


def _edit(folder, fn):
    path = folder / "config.json"
    header = json.loads(path.read_text())
    fn(header)
    path.write_text(json.dumps(header))


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.__setitem__("dynlearn_version", "9.3.0"), "dynlearn 9.3.0"),
    (lambda h: h.__setitem__("format", 99), "format"),
    (lambda h: h["config"].__setitem__("model_format", 99), "format"),
    (lambda h: h["config"].__setitem__("obs_dim", OBS + 1), "leaf shapes"),
    (lambda h: h["config"]["config"].__setitem__("hidden", [16, 17]), "leaf shapes"),
    (lambda h: h["config"]["config"].__setitem__("bogus", 1), "unknown EnsembleConfig keys"),
    (lambda h: h["config"].__setitem__("leaf_shapes", [[1]]), "leaf shapes"),
])
def test_bad_checkpoints_raise_data_error(model, tmp_path, edit, match):
    models.save(tmp_path / "m", model)
    _edit(tmp_path / "m", edit)
    with pytest.raises(DataError, match=match):
        models.load(tmp_path / "m")


def test_leaves_that_do_not_match_raise_data_error(model, tmp_path):
    other = ProbabilisticEnsemble.init(EnsembleConfig(members=4, elites=2, hidden=(16, 8), weight_decay=(0.0, 0.0, 0.0)),
                                       OBS, ACT, key=jax.random.key(0))
    models.save(tmp_path / "a", model)
    models.save(tmp_path / "b", other)
    (tmp_path / "a" / "leaves.eqx").write_bytes((tmp_path / "b" / "leaves.eqx").read_bytes())
    with pytest.raises(DataError, match="leaves.eqx"):
        models.load(tmp_path / "a")


@pytest.mark.parametrize("bad", [dict(elites=8), dict(hidden=()), dict(weight_decay=(1e-4,)), dict(activation="sigmoidish"),
                                 dict(min_logvar_init=1.0)])
def test_config_checks(bad):
    with pytest.raises(ConfigError):
        EnsembleConfig(**bad)


def test_config_roundtrip_rejects_unknown_keys():
    assert EnsembleConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(DataError, match="real_ratio"):
        EnsembleConfig.from_dict(CFG.to_dict() | {"real_ratio": 0.05})


@pytest.mark.parametrize("weight_init, spread, tails", [("normal", 1.0, True), ("truncated", 0.88, False)])
def test_initial_weights_follow_the_configured_draw(weight_init, spread, tails):
    """'normal' (the default, OfflineRL-Kit's in effect) has the nominal std 1/(2 sqrt(fan_in)) and tails past 2 std;
    'truncated' (MBPO's) is cut at 2 std, which narrows it to 0.88 of nominal. The cut cost the fit on hopper-medium."""
    cfg = EnsembleConfig(members=7, hidden=(200, 200), weight_decay=(0.0, 0.0, 0.0), weight_init=weight_init)
    net = ProbabilisticEnsemble.init(cfg, 14, 3, key=jax.random.key(0)).net
    z = np.asarray(net.weights[1]) * 2.0 * np.sqrt(200)  # in units of the nominal std
    assert z.std() == pytest.approx(spread, abs=0.01)
    assert (np.abs(z) > 2.0).any() == tails


def test_unknown_weight_init_is_refused():
    with pytest.raises(ConfigError, match="weight_init"):
        EnsembleConfig(weight_init="xavier")


def test_step_elite_blocks_matches_stepping_each_block_with_its_elite(model):
    """Block k stepped by elite k alone gives what step(member=elites[k]) gives (means; noise with the same scale)."""
    obs, act = _batch((2, 6))
    nxt, rew, term = model.with_task(FakeTask("fake", OBS, ACT, termination_fn=first_obs_positive)).step_elite_blocks(
        obs, act, key=jax.random.key(0), deterministic=True)
    for k, member in enumerate(np.asarray(model.elites)):
        _, pred = model.with_task(FakeTask("fake", OBS, ACT, termination_fn=first_obs_positive)).step(
            model.init_state(obs[k], key=jax.random.key(1)), obs[k], act[k], key=jax.random.key(2), member=int(member),
            deterministic=True)
        np.testing.assert_allclose(np.asarray(nxt[k]), np.asarray(pred.next_obs), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(rew[k]), np.asarray(pred.reward), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(term[k]), np.asarray(pred.terminal))
    noisy, _, _ = model.with_task(FakeTask("fake", OBS, ACT, termination_fn=first_obs_positive)).step_elite_blocks(
        jnp.broadcast_to(obs[:, :1], (2, 4000, OBS)), jnp.broadcast_to(act[:, :1], (2, 4000, ACT)), key=jax.random.key(3))
    std = np.exp(0.5 * np.asarray(model.members(obs[0, 0], act[0, 0]).logvar))[np.asarray(model.elites), :OBS]
    np.testing.assert_allclose(np.asarray(noisy).std(axis=1), std, rtol=0.08)
