"""Small problems with known answers: each test fails if its agent's learning rule is broken.

All datasets share one shape (512 rows, obs 3, act 2) and each agent one config, so each agent's
``update_block`` compiles once for the whole file.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import agents
from dynlearn.agents import AgentSpec
from dynlearn.data.transitions import Transitions

SPEC = AgentSpec(obs_dim=3, act_dim=2, act_low=(-1.0, -2.0), act_high=(1.0, 2.0))
N = 512
RNG = np.random.default_rng(0)
OBS = RNG.uniform(-1, 1, (N, 3))
TEST_OBS = jnp.asarray(RNG.uniform(-1, 1, (200, 3)), jnp.float32)
GOOD, BAD = np.array([0.5, 1.0]), np.array([-0.5, -1.0])


def transitions(obs, act, rew, next_obs, terminal) -> Transitions:
    n = len(obs)
    return Transitions(np.asarray(obs, np.float32), np.asarray(act, np.float32), np.asarray(rew, np.float32),
                       np.asarray(next_obs, np.float32), np.asarray(terminal, bool), np.zeros(n, bool),
                       np.ones(n, bool)).to_device()


def train(name, data, *, blocks=8, key=None, **over):
    agent = agents.get(name)
    cfg = agent.Config(hidden=(64, 64), batch_size=64, **over)
    key = jax.random.key(0) if key is None else key
    init_key, train_key = jax.random.split(key)
    state = agent.init(init_key, SPEC, cfg)
    infos = []
    for block_key in jax.random.split(train_key, blocks):
        state, info = agent.update_block(state, data, key=block_key, steps=250)
        infos.append({k: float(v) for k, v in info.items()})
    return agent, state, infos


def two_actions() -> Transitions:
    """One-step episodes: half the rows take GOOD (reward 1), half BAD (reward 0), in every state."""
    pick = RNG.random(N) < 0.5
    act = np.where(pick[:, None], GOOD, BAD)
    return transitions(OBS, act, pick.astype(np.float32), OBS, np.ones(N, bool))


TWO_ACTIONS = two_actions()


def test_bc_recovers_a_linear_policy():
    w = np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -0.6]])
    data = transitions(OBS, OBS @ w.T, np.zeros(N), OBS, np.ones(N, bool))
    agent, state, _ = train("bc", data, lr=1e-3)
    mse = float(jnp.mean((agent.act(state, TEST_OBS, deterministic=True) - TEST_OBS @ jnp.asarray(w.T, jnp.float32)) ** 2))
    assert mse < 5e-4  # 4e-5 when written; the action variance is ~0.2


def test_gaussian_bc_recovers_mean_and_noise_level():
    w = np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -0.6]])
    noise = np.array([0.1, 0.4])  # environment units; the unit box halves the second (bounds +-2)
    data = transitions(OBS, OBS @ w.T + noise * RNG.normal(size=(N, 2)), np.zeros(N), OBS, np.ones(N, bool))
    agent, state, _ = train("bc", data, lr=1e-3, policy="gaussian")
    mse = float(jnp.mean((agent.act(state, TEST_OBS, deterministic=True) - TEST_OBS @ jnp.asarray(w.T, jnp.float32)) ** 2))
    std = np.exp(np.asarray(state.actor.dist(TEST_OBS)[1])).mean(0)
    assert mse < 0.03  # the noise variance is 0.085
    np.testing.assert_allclose(std, [0.1, 0.2], rtol=0.3)


def test_sac_learns_bandit_rewards_and_its_argmax_and_tunes_the_temperature():
    a_star = np.array([0.5, -1.0])
    act = RNG.uniform(SPEC.act_low, SPEC.act_high, (N, 2))
    reward = lambda a: -np.sum(((a - a_star) / np.array([1.0, 2.0])) ** 2, axis=-1)  # noqa: E731
    data = transitions(OBS, act, reward(act), OBS, np.ones(N, bool))  # terminal: Q(s, a) = r(a)
    lrs = dict(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    agent, state, infos = train("sac", data, **lrs)
    test_act = jnp.asarray(RNG.uniform(SPEC.act_low, SPEC.act_high, (200, 2)), jnp.float32)
    q = np.asarray(agent.q_values(state, TEST_OBS, test_act))
    assert q.shape == (2, 200)
    assert np.mean(np.abs(q - reward(np.asarray(test_act)))) < 0.08  # rewards spread over ~1 (std)
    mode = np.asarray(agent.act(state, TEST_OBS, deterministic=True))
    assert np.all(np.abs(mode - a_star).max(0) < [0.1, 0.2])
    # Entropy above its target (-2) drives alpha down, and the entropy toward the target.
    alphas, entropies = [i["policy/alpha"] for i in infos], [i["policy/entropy"] for i in infos]
    assert alphas[-1] < 0.2 and all(b < a for a, b in zip(alphas, alphas[1:]))
    assert entropies[0] > 0.5 and entropies[-1] < entropies[0] - 0.7  # 1.1 -> 0.1 when written
    # A target above the policy's entropy drives alpha up instead.
    _, _, infos = train("sac", data, blocks=2, target_entropy=1.3, **lrs)
    assert infos[-1]["policy/alpha"] > 1.0


def side(a):
    """Position of actions along BAD -> GOOD: -0.5 at BAD, 0 halfway, +0.5 at GOOD."""
    d = GOOD - BAD
    return (np.asarray(a) - (GOOD + BAD) / 2) @ d / (d @ d)


@pytest.mark.parametrize("name, over", [("td3bc", {}), ("iql", {}), ("iql", {"policy": "deterministic"})])
def test_offline_agents_pick_the_better_of_two_data_actions(name, over):
    agent, state, _ = train(name, TWO_ACTIONS, **over)
    pos = side(agent.act(state, TEST_OBS, deterministic=True))
    # Over 3 seeds when written: mean 0.42-0.56 (TD3+BC's Q term may push past GOOD), 10% quantile
    # 0.28-0.35; the weakest points (min 0.03-0.18) are at the corners of the observation box.
    assert pos.mean() > 0.35 and np.quantile(pos, 0.1) > 0.2 and pos.min() > 0.0


def test_plain_bc_does_not_pick_the_better_action():
    """The control for the test above: without rewards the policy sits between the two actions."""
    agent, state, _ = train("bc", TWO_ACTIONS, lr=1e-3)
    assert abs(side(agent.act(state, TEST_OBS, deterministic=True)).mean()) < 0.15


@pytest.mark.parametrize("name", ["td3bc", "iql"])
def test_critics_learn_discounted_returns_of_a_chain(name):
    """A -> B with reward 0.5, then B ends (terminal) with reward 1: Q(A) = 0.5 + 0.99, Q(B) = 1."""
    a, b, c = np.eye(3)
    at_a = RNG.random(N) < 0.5
    obs, next_obs = np.where(at_a[:, None], a, b), np.where(at_a[:, None], b, c)
    act = RNG.uniform(SPEC.act_low, SPEC.act_high, (N, 2))
    data = transitions(obs, act, np.where(at_a, 0.5, 1.0), next_obs, ~at_a)
    agent, state, _ = train(name, data)
    probe = jnp.asarray(act[:100], jnp.float32)
    q_a = np.asarray(agent.q_values(state, jnp.tile(jnp.asarray(a, jnp.float32), (100, 1)), probe))
    q_b = np.asarray(agent.q_values(state, jnp.tile(jnp.asarray(b, jnp.float32), (100, 1)), probe))
    np.testing.assert_allclose(q_a.mean(), 1.49, atol=0.05)
    np.testing.assert_allclose(q_b.mean(), 1.0, atol=0.03)


def test_edac_diversity_term_matches_per_critic_gradients_and_diversifies():
    from dynlearn.agents import sac
    from dynlearn.agents.networks import QEnsemble

    diversity = jax.jit(sac._diversity)
    critic = QEnsemble(3, 3, 2, (16, 16), key=jax.random.key(0))
    obs, act = jnp.asarray(OBS[:20], jnp.float32), jnp.asarray(RNG.uniform(-1, 1, (20, 2)), jnp.float32)

    @jax.jit
    def unit_grads(critic, obs, act):  # each critic's action gradient on its own, row by row
        grads = [jax.vmap(jax.grad(lambda a, o, i=i: critic.member(i, o, a)))(act, obs) for i in range(3)]
        return [g / (jnp.linalg.norm(g, axis=-1, keepdims=True) + 1e-10) for g in grads]

    unit = [np.asarray(g) for g in unit_grads(critic, obs, act)]
    naive = np.mean(sum((unit[i] * unit[j]).sum(-1) for i in range(3) for j in range(3) if i != j)) / 2
    np.testing.assert_allclose(float(diversity(critic, obs, act)), naive, rtol=1e-5, atol=1e-6)

    # On the same bandit data, critics trained with eta > 0 have less aligned action gradients
    # (when written: 2.95 of a possible 3 without the term, -1.07 with it).
    act = RNG.uniform(SPEC.act_low, SPEC.act_high, (N, 2))
    data = transitions(OBS, act, -np.sum(act**2, axis=-1), OBS, np.ones(N, bool))
    div = {}
    for eta in (0.0, 1.0):
        _, state, _ = train("edac", data, blocks=2, n_critics=3, eta=eta)
        div[eta] = float(diversity(state.critic, jnp.asarray(OBS, jnp.float32), data.act))
    assert div[0.0] > 2.0 and div[1.0] < div[0.0] - 1.0, div


def test_cql_pushes_q_down_off_the_data_and_picks_the_better_action():
    agent, state, infos = train("cql", TWO_ACTIONS, cql_weight=1.0, num_repeat_actions=4)
    q = lambda a: float(agent.q_values(state, TEST_OBS, jnp.broadcast_to(jnp.asarray(a, jnp.float32), (200, 2))).mean())  # noqa: E731
    q_random = float(agent.q_values(state, TEST_OBS, jnp.asarray(RNG.uniform(SPEC.act_low, SPEC.act_high, (200, 2)), jnp.float32)).mean())
    # When written: Q(GOOD) 0.59, Q(BAD) 0.37, Q(uniform actions) -33; without the term the last is ~0.5.
    assert q_random < min(q(GOOD), q(BAD)) - 5.0
    assert q(GOOD) > q(BAD)
    assert abs(infos[-1]["q/mean"] - 0.5) < 0.1  # the TD term still fits the data's rewards (mean 0.5)
    pos = side(agent.act(state, TEST_OBS, deterministic=True))
    assert pos.mean() > 0.35 and np.quantile(pos, 0.1) > 0.2
