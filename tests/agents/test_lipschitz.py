"""The Lipschitz-regularised critic (Zheng et al. 2023, :mod:`dynlearn.agents.lipschitz`): spectral normalisation reaches
the largest singular value numpy's SVD finds, the estimator recovers a known constant, both regularisers make a critic
fitted to a steep target flatter, SAC's defaults are what they were, and MBPO's single-lipschitz preset runs."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn.agents import lipschitz, sac
from dynlearn.agents.base import AgentSpec
from dynlearn.agents.networks import QEnsemble, TanhGaussianPolicy
from dynlearn.data.transitions import Transitions
from dynlearn.errors import ConfigError

SPEC = AgentSpec(3, 1, (-1.0,), (1.0,))


class _Agent(eqx.Module):
    """What value_lipschitz reads of a SAC state."""

    actor: TanhGaussianPolicy
    critic: QEnsemble
    spec: AgentSpec = eqx.field(static=True)


def _svd_norms(critic: QEnsemble) -> list[np.ndarray]:
    return [np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)[:, 0] for w in critic.net.members.weights]


def _steep_regression(n: int = 256) -> Transitions:
    """Terminal rows whose reward is a steep function of the state: the critic's target is the reward itself."""
    r = np.random.default_rng(0)
    obs = r.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    return Transitions(obs=obs, act=r.uniform(-1, 1, size=(n, 1)).astype(np.float32),
                       rew=(2 * np.sin(3 * obs[:, 0]) + obs[:, 1]).astype(np.float32), next_obs=obs, terminal=np.ones(n, bool),
                       timeout=np.zeros(n, bool), next_obs_valid=np.ones(n, bool))


def test_spectral_normalisation_brings_each_normalised_layers_largest_singular_value_to_one(key):
    critic = QEnsemble(2, 5, 2, (32, 16), key=key)
    raw = _svd_norms(critic)
    for layers, normalised in (("hidden", 2), ("all", 3)):
        vectors = lipschitz.power_vectors(critic, layers, key=jax.random.fold_in(key, 1), iterations=0)
        assert len(vectors) == normalised
        step = jax.jit(lipschitz.power_step)
        for _ in range(100):  # one power iteration per update, on weights that stay put here
            vectors = step(critic, vectors)
        for i, estimate in enumerate(lipschitz.estimated_sigmas(critic, vectors)):
            np.testing.assert_allclose(np.asarray(estimate), raw[i], rtol=1e-3)
        norms = _svd_norms(lipschitz.normalise(critic, vectors))
        for i in range(3):
            np.testing.assert_allclose(norms[i], 1.0 if i < normalised else raw[i], rtol=1e-3)


def test_spectral_normalisation_holds_while_sac_trains_and_the_targets_stay_below_one(key):
    cfg = sac.SACConfig(hidden=(32, 32), batch_size=64, critic_spectral_norm="hidden")
    state = sac.init(key, SPEC, cfg)
    state, info = sac.update_block(state, _steep_regression(), key=jax.random.fold_in(key, 1), steps=100)
    effective = _svd_norms(lipschitz.effective_critic(state))
    for norms in effective[:-1]:
        np.testing.assert_allclose(norms, 1.0, atol=0.05)
    assert np.all(np.concatenate(_svd_norms(state.target_critic)[:-1]) <= 1.0 + 1e-3)  # averages of matrices of norm <= 1
    assert float(info["critic/sigma_raw"]) > 1.0  # the raw weights are larger: the normalisation does something
    q = sac.q_values(state, jnp.zeros((4, 3)), jnp.zeros((4, 1)))
    np.testing.assert_array_equal(np.asarray(q), np.asarray(lipschitz.effective_critic(state)(jnp.zeros((4, 3)), jnp.zeros((4, 1)))))


def test_the_estimator_recovers_the_lipschitz_constant_of_a_linear_critic(key):
    critic = QEnsemble(1, 3, 1, (), key=key)  # Q(s, a) = w_s . s + w_a a + b
    w = np.asarray(critic.net.members.weights[0][0, :, 0], np.float64)
    policy = TanhGaussianPolicy(3, 1, (4,), log_std_min=-5.0, log_std_max=2.0, key=key)
    policy = eqx.tree_at(lambda p: p.net.weights[1], policy, jnp.zeros_like(policy.net.weights[1]))
    state = _Agent(policy, critic, SPEC)  # pi(s) is constant, so dV/ds = w_s
    obs = jax.random.normal(jax.random.fold_in(key, 1), (64, 3))
    est = lipschitz.value_lipschitz(state, obs)
    for name in ("value/max", "value/quantile", "value/mean", "critic/max", "critic/mean"):
        np.testing.assert_allclose(float(est[name]), np.linalg.norm(w[:3]), rtol=1e-5)
    np.testing.assert_allclose(float(est["bound"]), np.linalg.norm(w), rtol=1e-5)  # the bound counts the action's weight too
    norms = lipschitz.gradient_norms(lambda s: jnp.sum(jnp.asarray([3.0, -4.0, 0.0]) * s) + jnp.sin(s[2]), obs)
    np.testing.assert_allclose(np.asarray(norms), np.sqrt(25.0 + np.cos(np.asarray(obs[:, 2])) ** 2), rtol=1e-5)


def test_both_regularisers_make_a_critic_fitted_to_a_steep_target_flatter(key):
    data, obs = _steep_regression(), jnp.asarray(_steep_regression().obs)
    estimates = {}
    for name, options in {"plain": {}, "adversarial": dict(adversarial_eps=0.1, adversarial_coef=10.0),
                          "spectral": dict(critic_spectral_norm="hidden")}.items():
        cfg = sac.SACConfig(hidden=(32, 32), batch_size=64, critic_lr=1e-3, **options)
        state, info = sac.update_block(sac.init(key, SPEC, cfg), data, key=jax.random.fold_in(key, 1), steps=300)
        estimates[name] = {k: float(v) for k, v in lipschitz.value_lipschitz(state, obs).items()}
        assert estimates[name]["critic/max"] <= estimates[name]["bound"] + 1e-4
        if name == "adversarial":
            assert float(info["loss/adversarial"]) > 0
    plain, adversarial, spectral = estimates["plain"], estimates["adversarial"], estimates["spectral"]
    assert adversarial["value/max"] < 0.85 * plain["value/max"] and adversarial["value/mean"] < 0.8 * plain["value/mean"]
    assert spectral["bound"] < 0.5 * plain["bound"] and spectral["value/max"] < 0.6 * plain["value/max"]


def _golden_data() -> Transitions:
    r = np.random.default_rng(0)
    obs = r.normal(size=(64, 5)).astype(np.float32)
    act = r.uniform(-1, 1, size=(64, 2)).astype(np.float32)
    return Transitions(obs=obs, act=act, rew=r.normal(size=64).astype(np.float32), next_obs=(obs + 0.1).astype(np.float32),
                       terminal=np.zeros(64, bool), timeout=np.zeros(64, bool), next_obs_valid=np.ones(64, bool))


def test_sacs_defaults_are_unchanged():
    spec, data = AgentSpec(5, 2, (-1.0, -1.0), (1.0, 1.0)), _golden_data()
    default = sac.SACConfig(hidden=(16, 16), batch_size=32)
    off = dataclasses.replace(default, critic_spectral_norm=None, adversarial_eps=None, adversarial_coef=None, adversarial_steps=None)
    results = []
    for cfg in (default, off):
        state = sac.init(jax.random.key(1), spec, cfg)
        assert state.critic_sn is None and len(jax.tree_util.tree_leaves(state)) == 49  # as many leaves as before the options
        results.append(sac.update_block(state, data, key=jax.random.key(2), steps=5))
    (a, info_a), (b, info_b) = results
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert info_a.keys() == info_b.keys() == {"loss/actor", "loss/alpha", "loss/critic", "policy/alpha", "policy/entropy", "q/mean",
                                              "q/policy", "q/std_members", "q/target"}
    # The same numbers as the code before these options (recorded from it on this data, keys and config).
    np.testing.assert_allclose(sum(float(np.abs(np.asarray(x, np.float64)).sum()) for x in jax.tree_util.tree_leaves(a.critic)),
                               123.02790039328102, rtol=1e-4)
    np.testing.assert_allclose([float(info_a["loss/critic"]), float(info_a["q/target"]), float(info_a["loss/actor"])],
                               [2.219528913497925, 1.1724557876586914, -1.3138164281845093], rtol=1e-4)


@pytest.mark.parametrize("options, message", [(dict(critic_spectral_norm="last"), "critic_spectral_norm"),
                                              (dict(adversarial_coef=1.0), "need adversarial_eps"),
                                              (dict(adversarial_eps=0.0), "must be > 0"),
                                              (dict(adversarial_eps=0.1, adversarial_coef=-1.0), "must be > 0"),
                                              (dict(adversarial_eps=0.1, adversarial_steps=0), "adversarial_steps")])
def test_bad_options_are_refused_with_a_message(options, message):
    with pytest.raises(ConfigError, match=message):
        sac.SACConfig(**options)


def test_the_single_lipschitz_preset_runs_mbpo_with_one_model(tmp_path):
    from dynlearn import agents
    from dynlearn.algos.mbpo_online import MBPOOnlineConfig, train_mbpo_online
    from dynlearn.results import check_results

    preset = MBPOOnlineConfig.preset("single-lipschitz")
    assert (preset.model.members, preset.model.elites) == (1, 1) and preset.sac.critic_spectral_norm == "hidden"
    assert preset.sac.adversarial_eps is not None and preset.steps == MBPOOnlineConfig().steps
    tiny = MBPOOnlineConfig.preset(
        "single-lipschitz", task="Pendulum-v1", steps=400, start_steps=200, update_every=50, model_train_every=200, epoch_length=200,
        rollout_schedule=(0, 2, 1, 2), rollout_batch=16, utd=1, eval_every=400, eval_episodes=1, checkpoint_every=400, fit_epochs=2,
        model=dataclasses.replace(preset.model, hidden=(8,), weight_decay=(0.0, 0.0)),
        sac=dataclasses.replace(preset.sac, hidden=(8, 8), batch_size=16))
    results = train_mbpo_online(tiny, tmp_path / "run", log=lambda *_: None)
    check_results(results)
    assert results["extra"]["fits"] == 2
    state = agents.get("sac").load(tmp_path / "run" / "final")
    assert state.cfg == tiny.sac and len(state.critic_sn) == 2
    est = lipschitz.value_lipschitz(state, jnp.zeros((8, 3)))
    assert all(np.isfinite(float(v)) for v in est.values())
