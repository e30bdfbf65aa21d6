"""The contract every agent keeps: init, update, update_block, act, save/load, determinism, hooks."""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import agents
from dynlearn.agents import AgentSpec, MixedSampler, UniformSampler
from dynlearn.data.transitions import Transitions, sample
from dynlearn.errors import ConfigError, DataError

SPEC = AgentSpec(obs_dim=5, act_dim=2, act_low=(-1.0, -2.0), act_high=(1.0, 3.0))
BATCH = 32
# (registry name, config overrides): small networks so compiling dominates less.
MAIN = [("sac", {}), ("td3bc", {}), ("iql", {}), ("bc", {})]
CASES = [*MAIN, ("iql", {"policy": "deterministic"}), ("bc", {"policy": "gaussian"}),  # + policy variants
         ("edac", {"n_critics": 3}), ("cql", {"num_repeat_actions": 2})]


def ids(cases):
    return [name + "".join(f"-{v}" for v in over.values()) for name, over in cases]


IDS = ids(CASES)
HAS_CRITIC = {"sac", "td3bc", "iql", "edac", "cql"}
CRITIC_CASES = [c for c in CASES if c[0] in HAS_CRITIC and "policy" not in c[1]]


def make_data(n=200, seed=0, spec=SPEC) -> Transitions:
    rng = np.random.default_rng(seed)
    low, high = np.array(spec.act_low, np.float32), np.array(spec.act_high, np.float32)
    terminal = rng.random(n) < 0.1
    timeout = ~terminal & (rng.random(n) < 0.1)
    return Transitions(
        obs=rng.normal(size=(n, spec.obs_dim)).astype(np.float32),
        act=rng.uniform(low, high, (n, spec.act_dim)).astype(np.float32),
        rew=rng.normal(size=n).astype(np.float32),
        next_obs=rng.normal(size=(n, spec.obs_dim)).astype(np.float32),
        terminal=terminal, timeout=timeout, next_obs_valid=np.ones(n, bool),
    ).to_device()


DATA = make_data()


def make_agent(case, key):
    name, over = case
    agent = agents.get(name)
    cfg = agent.Config(hidden=(32, 32), batch_size=BATCH, **over)
    return agent, agent.init(key, SPEC, cfg)


def leaves(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(eqx.filter(a, eqx.is_array)) == jax.tree_util.tree_structure(eqx.filter(b, eqx.is_array))
    for x, y in zip(leaves(a), leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def batch_of(data, key):
    return sample(data, BATCH, key=key)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_update_changes_params_and_reports_finite_namespaced_info(case, key):
    agent, state = make_agent(case, key)
    new = state
    for step_key in jax.random.split(key, 2):  # two steps: TD3+BC updates its actor every second step
        batch_key, update_key = jax.random.split(step_key)
        new, info = agent.update(new, batch_of(DATA, batch_key), key=update_key)
        assert info and all("/" in k for k in info), sorted(info)
        for k, v in info.items():
            assert jnp.shape(v) == () and v.dtype == jnp.float32 and bool(jnp.isfinite(v)), (k, v)
    assert int(new.step) == 2
    assert any(not np.array_equal(x, y) for x, y in zip(leaves(state.actor), leaves(new.actor)))
    if case[0] in HAS_CRITIC:
        assert any(not np.array_equal(x, y) for x, y in zip(leaves(state.critic), leaves(new.critic)))
    for leaf in leaves(new):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_act_is_within_bounds_for_any_observation(case, key):
    agent, state = make_agent(case, key)
    obs = 100.0 * jax.random.normal(key, (64, SPEC.obs_dim))  # far outside the data: the policy saturates
    low, high = np.array(SPEC.act_low), np.array(SPEC.act_high)
    for deterministic in (True, False):
        a = np.asarray(agent.act(state, obs, key=key, deterministic=deterministic))
        assert a.shape == (64, SPEC.act_dim) and a.dtype == np.float32
        assert np.all(a >= low) and np.all(a <= high)
    one = agent.act(state, obs[0], deterministic=True)  # a single observation works too
    np.testing.assert_allclose(one, agent.act(state, obs, deterministic=True)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", MAIN, ids=ids(MAIN))
def test_same_key_same_result(case, key):
    agent, state = make_agent(case, key)
    batch = batch_of(DATA, key)
    a, info_a = agent.update(state, batch, key=jax.random.key(7))
    b, info_b = agent.update(make_agent(case, key)[1], batch, key=jax.random.key(7))
    assert_trees_equal(a, b)
    assert {k: float(v) for k, v in info_a.items()} == {k: float(v) for k, v in info_b.items()}


@pytest.mark.parametrize("case", MAIN, ids=ids(MAIN))
def test_update_block_equals_single_updates(case, key):
    agent, state = make_agent(case, key)
    steps = 4
    block_state, block_info = agent.update_block(state, DATA, key=key, steps=steps)
    infos = []
    for step_key in jax.random.split(key, steps):
        sample_key, update_key = jax.random.split(step_key)
        state, info = agent.update(state, batch_of(DATA, sample_key), key=update_key)
        infos.append(info)
    assert int(block_state.step) == steps
    for x, y in zip(leaves(block_state), leaves(state)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    for k, v in block_info.items():
        np.testing.assert_allclose(float(v), np.mean([float(i[k]) for i in infos]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_save_load_acts_the_same_and_resumes_exactly(case, key, tmp_path):
    agent, state = make_agent(case, key)
    for step_key in jax.random.split(key, 2):
        state, _ = agent.update(state, batch_of(DATA, step_key), key=step_key)
    agent.save(tmp_path / "agent", state)
    header = json.loads((tmp_path / "agent" / "config.json").read_text())
    assert header["kind"] == f"agent/{agent.NAME}" and header["config"]["spec"]["act_high"] == [1.0, 3.0]
    for loaded in (agent.load(tmp_path / "agent"), agents.load(tmp_path / "agent")):
        assert loaded.cfg == state.cfg and loaded.spec == state.spec
        assert_trees_equal(loaded, state)
        obs = DATA.obs[:8]
        np.testing.assert_array_equal(agent.act(loaded, obs, deterministic=True), agent.act(state, obs, deterministic=True))
        np.testing.assert_array_equal(agent.act(loaded, obs, key=key), agent.act(state, obs, key=key))
    # Resuming: optimiser states and step came back, so the next update is identical.
    batch = batch_of(DATA, key)
    assert_trees_equal(agent.update(loaded, batch, key=key)[0], agent.update(state, batch, key=key)[0])


def test_load_rejects_unknown_config_keys_and_non_agents(key, tmp_path):
    agent, state = make_agent(("sac", {}), key)
    agent.save(tmp_path / "a", state)
    path = tmp_path / "a" / "config.json"
    header = json.loads(path.read_text())
    header["config"]["config"]["not_a_field"] = 1
    path.write_text(json.dumps(header))
    with pytest.raises(DataError, match="not_a_field"):
        agents.load(tmp_path / "a")
    with pytest.raises(DataError):
        agents.get("td3bc").load(tmp_path / "a")  # a SAC checkpoint is not a TD3+BC one


HOOK_CASES = [c for c in CRITIC_CASES if c[0] != "edac"]  # EDAC runs SAC's update


@pytest.mark.parametrize("case", HOOK_CASES, ids=ids(HOOK_CASES))
def test_target_adjust_shifts_the_critic_target(case, key):
    agent, state = make_agent(case, key)
    batch = batch_of(DATA, key)
    _, plain = agent.update(state, batch, key=key)

    class Penalty(eqx.Module):  # an eqx.Module hook: its array is traced, so changing it does not recompile
        c: jax.Array

        def __call__(self, state, batch, target, *, key):
            assert target.shape == (BATCH,)
            q = agent.q_values(state, batch.obs, batch.act, target=True)  # hooks may query the critics
            return target - self.c + 0.0 * q[0]

    for c in (1.5, -0.5):
        _, info = agent.update(state, batch, key=key, target_adjust=Penalty(jnp.float32(c)))
        np.testing.assert_allclose(float(info["q/target"]), float(plain["q/target"]) - c, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CRITIC_CASES, ids=ids(CRITIC_CASES))
def test_terminals_stop_bootstrapping_and_timeouts_do_not(case, key):
    agent, state = make_agent(case, key)
    batch = batch_of(DATA, key)
    ones, zeros = jnp.ones(BATCH, bool), jnp.zeros(BATCH, bool)
    _, terminal = agent.update(state, eqx.tree_at(lambda b: (b.terminal, b.timeout), batch, (ones, zeros)), key=key)
    np.testing.assert_allclose(float(terminal["q/target"]), float(jnp.mean(batch.rew)), rtol=1e-6, atol=1e-6)
    _, timeout = agent.update(state, eqx.tree_at(lambda b: (b.terminal, b.timeout), batch, (zeros, ones)), key=key)
    _, neither = agent.update(state, eqx.tree_at(lambda b: (b.terminal, b.timeout), batch, (zeros, zeros)), key=key)
    assert float(timeout["q/target"]) == float(neither["q/target"]) != float(terminal["q/target"])


@pytest.mark.parametrize("case", CRITIC_CASES, ids=ids(CRITIC_CASES))
def test_rows_without_a_successor_do_not_train_the_critics(case, key):
    agent, state = make_agent(case, key)
    batch = batch_of(DATA, key)
    no_successor = (jnp.arange(BATCH) % 4 == 0) & ~batch.terminal
    updated = []
    for junk, reward in ((jnp.nan, 0.0), (1e6, 100.0)):  # neither next_obs nor reward there may matter
        rows = eqx.tree_at(lambda b: (b.next_obs, b.rew, b.next_obs_valid), batch,
                           (jnp.where(no_successor[:, None], junk, batch.next_obs),
                            jnp.where(no_successor, reward, batch.rew), ~no_successor))
        new, info = agent.update(state, rows, key=key)
        assert all(bool(jnp.isfinite(v)) for v in info.values()), info
        updated.append(new.critic)
    assert_trees_equal(*updated)


def test_batch_sources(key):
    agent, state = make_agent(("sac", {}), key)
    real, model = make_data(50, seed=1), make_data(100, seed=2)
    source = MixedSampler.from_ratio(real, model, batch_size=BATCH, real_ratio=0.25, model_size=jnp.int32(10))
    batch = source(key=key)
    assert len(batch) == BATCH
    real_rows, model_rows = np.asarray(batch.obs[:8]), np.asarray(batch.obs[8:])
    assert all((np.asarray(real.obs) == r).all(1).any() for r in real_rows)  # real rows first
    assert all((np.asarray(model.obs[:10]) == r).all(1).any() for r in model_rows)  # only the filled part
    # A callable source and a plain-function hook, through update_block.
    new, info = agent.update_block(state, source, key=key, steps=4, target_adjust=lambda s, b, t, *, key: t + 100.0)
    assert int(new.step) == 4 and all(np.isfinite(float(v)) for v in info.values())
    assert float(info["q/target"]) > 50.0
    with pytest.raises(TypeError):
        agent.update_block(state, np.zeros(3), key=key, steps=2)
    assert len(UniformSampler(real, 7)(key=key)) == 7


def test_registry_and_config_errors():
    assert set(agents.names()) >= {"sac", "td3bc", "iql", "bc"}
    assert agents.get("TD3+BC") is agents.get("td3bc")
    with pytest.raises(ConfigError, match="unknown agent"):
        agents.get("ppo")
    for name in agents.names():
        agent = agents.get(name)
        cfg = agent.Config()
        assert agent.NAME == name and cfg.batch_size == 256 and cfg.hidden == ((256,) * 3 if name in ("edac", "cql") else (256, 256))
        for fn in ("init", "update", "update_block", "act", "sample_action", "q_values", "save", "load"):
            assert callable(getattr(agent, fn))
    with pytest.raises(ConfigError):
        agents.get("sac").Config(tau=0.0)
    with pytest.raises(ConfigError):
        agents.get("iql").Config(expectile=1.0)
    with pytest.raises(ConfigError):
        AgentSpec(3, 2, (1.0, -1.0), (-1.0, 1.0))


def test_sample_action_where_defined(key):
    obs = DATA.obs[:16]
    for case in [("sac", {}), ("iql", {}), ("bc", {"policy": "gaussian"}), ("cql", {"num_repeat_actions": 2})]:
        agent, state = make_agent(case, key)
        a, log_prob = agent.sample_action(state, obs, key=key)
        assert a.shape == (16, 2) and log_prob.shape == (16,) and bool(jnp.all(jnp.isfinite(log_prob)))
    for case in [("td3bc", {}), ("bc", {})]:
        agent, state = make_agent(case, key)
        with pytest.raises(ConfigError):
            agent.sample_action(state, obs, key=key)
    agent, state = make_agent(("bc", {}), key)
    with pytest.raises(ConfigError):
        agent.q_values(state, obs, DATA.act[:16])


def test_edac_init_changes_only_biases_and_last_layers_and_saves(key, tmp_path):
    edac = agents.get("edac")
    plain = edac.init(key, SPEC, edac.Config(hidden=(32, 32), n_critics=3))
    state = edac.init(key, SPEC, edac.Config(hidden=(32, 32), n_critics=3, init="edac"))
    for a, b in ((plain.actor.net, state.actor.net), (plain.critic.net.members, state.critic.net.members)):
        for w_plain, w in zip(a.weights[:-1], b.weights[:-1]):  # hidden weights: the default draw, untouched
            np.testing.assert_array_equal(w_plain, w)
        assert all(np.all(np.asarray(bias) == np.float32(0.1)) for bias in b.biases[:-1])
    critic_last = np.asarray(state.critic.net.members.weights[-1])  # [n, 32, 1]
    assert np.abs(critic_last).max() <= 3e-3 and np.abs(critic_last).max() > 1e-3
    assert not np.allclose(critic_last[0], critic_last[1])  # each critic its own draw
    assert np.abs(np.asarray(state.actor.net.weights[-1])).max() <= 1e-3
    # So every critic starts near 0 and the policy near mean 0, std 1 (the default init starts far from both).
    q, q_plain = np.asarray(edac.q_values(state, DATA.obs, DATA.act)), np.asarray(edac.q_values(plain, DATA.obs, DATA.act))
    assert np.abs(q).max() < 0.05 < np.abs(q_plain).max()
    mean, log_std = state.actor.dist(DATA.obs)
    assert np.abs(np.asarray(mean)).max() < 0.05 and np.abs(np.asarray(log_std)).max() < 0.05
    edac.save(tmp_path / "a", state)
    assert edac.load(tmp_path / "a").cfg.init == "edac"
    # A checkpoint written before the option existed loads with the default init.
    edac.save(tmp_path / "old", plain)
    path = tmp_path / "old" / "config.json"
    header = json.loads(path.read_text())
    del header["config"]["config"]["init"]
    path.write_text(json.dumps(header))
    assert edac.load(tmp_path / "old").cfg.init is None
    with pytest.raises(ConfigError, match="init"):
        edac.Config(init="xavier")
