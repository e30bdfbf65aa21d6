"""Planners on systems with known optima: CEM and MPPI approach the finite-horizon LQR action, random shooting executes
its best sample, trajectory sampling keeps (TS-inf) or redraws (TS-1) a member per particle, terminated particles earn
nothing, colored noise has unit variance and the requested correlation, and a planner is a batch policy."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn.errors import ConfigError
from dynlearn.models import AbstractTransitionModel, EnsembleConfig, MemberOutputs, ModelState, Prediction, ProbabilisticEnsemble
from dynlearn.planning import CEMConfig, MPC, MPPIConfig, ObjectiveConfig, PlannerPolicy, RandomShootingConfig, sequence_returns
from dynlearn.planning.base import initial_state
from dynlearn.planning.cem import cem_plan
from dynlearn.planning.mppi import mppi_plan
from dynlearn.planning.shooting import shooting_plan

A = np.array([[1.0, 0.1], [0.0, 1.0]], np.float32)   # a double integrator
B = np.array([[0.005], [0.1]], np.float32)
Q, R = np.diag([1.0, 0.1]).astype(np.float32), np.array([[0.01]], np.float32)


class MemberState(ModelState):
    member: jax.Array


class Members(AbstractTransitionModel):
    """Deterministic members ``x' = A x + B u + offset[m]``, reward ``-(x'Qx + u'Ru)`` at the current ``(x, u)``, and a
    terminal when ``x'[0]`` passes ``stop_above``."""

    offsets: jax.Array
    stop_above: float = eqx.field(static=True, default=np.inf)
    obs_dim: int = eqx.field(static=True, default=2, init=False)
    act_dim: int = eqx.field(static=True, default=1, init=False)

    def init_state(self, obs, *, key):
        return MemberState(member=jax.random.randint(key, obs.shape[:-1], 0, self.offsets.shape[0]))

    def members(self, obs, act):
        nxt = obs @ A.T + act @ B.T
        rew = -(jnp.einsum("...i,ij,...j->...", obs, Q, obs) + jnp.einsum("...i,ij,...j->...", act, R, act))
        delta = nxt - obs + self.offsets.reshape((-1,) + (1,) * (obs.ndim - 1) + (2,))
        mean = jnp.concatenate([delta, jnp.broadcast_to(rew[None, ..., None], (*delta.shape[:-1], 1))], axis=-1)
        return MemberOutputs(mean=mean, logvar=jnp.full_like(mean, -60.0), terminal_logit=None,
                             elites=jnp.arange(self.offsets.shape[0]), obs_dim=2)

    def step(self, state, obs, act, *, key, member=None, deterministic=False):
        out = self.members(obs, act)
        if member is None:
            member = jax.random.randint(key, obs.shape[:-1], 0, self.offsets.shape[0])
        y = jnp.take_along_axis(out.mean, jnp.broadcast_to(member, obs.shape[:-1])[None, ..., None], axis=0)[0]
        nxt = obs + y[..., :2]
        return state, Prediction(next_obs=nxt, reward=y[..., 2], terminal=nxt[..., 0] > self.stop_above, member=member, outputs=out)


LINEAR = Members(offsets=jnp.zeros((1, 2)))
X0 = jnp.asarray([0.5, -0.25])  # the optimum (u0 about -2.6) lies inside the bounds
LOW, HIGH = jnp.asarray([-5.0]), jnp.asarray([5.0])


def lqr_first_action(x0, horizon: int) -> float:
    """Finite-horizon LQR (no terminal cost) for the reward above: u0 = -K0 x0."""
    p = np.zeros((2, 2))
    for _ in range(horizon):
        k = np.linalg.solve(R + B.T @ p @ B, B.T @ p @ A)
        p = Q + A.T @ p @ (A - B @ k)
    return float(-(k @ np.asarray(x0))[0])


def _returns_fn(horizon):
    return lambda actions, key: sequence_returns(LINEAR, X0, actions, key, propagation="expectation")


@pytest.mark.parametrize("planner, cfg", [
    (cem_plan, CEMConfig(horizon=12, population=400, elites=40, iterations=12, init_std=0.5)),
    (cem_plan, CEMConfig(horizon=12, population=400, elites=40, iterations=12, init_std=0.5, noise_beta=2.0, keep_elites=0.3,
                         population_decay=1.1, execute="best")),
    (mppi_plan, MPPIConfig(horizon=12, samples=400, iterations=12, temperature=0.05, noise_std=0.3)),
])
def test_first_action_approaches_the_lqr_action(planner, cfg):
    """On a double integrator with quadratic cost the optimum is LQR's: the plan's return is within 2% of it and (white
    noise) its first action within 10%; doing nothing scores lower."""
    state = initial_state(cfg.horizon, LOW, HIGH, cfg.init_std, getattr(cfg, "kept", 0))
    seq, _ = jax.jit(lambda s, k: planner(cfg, _returns_fn(cfg.horizon), s, LOW, HIGH, k))(state, jax.random.key(0))
    u_star = lqr_first_action(X0, cfg.horizon)
    optimum = _returns_fn(cfg.horizon)(jnp.asarray(lqr_sequence(X0, cfg.horizon))[None], jax.random.key(0))[0]
    found = _returns_fn(cfg.horizon)(seq[None], jax.random.key(0))[0]
    if cfg.noise_beta == 0.0:  # colored noise reaches the optimal return more slowly in the first action, which here is sharp
        assert abs(float(seq[0, 0]) - u_star) < 0.1 * abs(u_star) + 0.05
    assert float(found) >= float(optimum) - 0.02 * abs(float(optimum))
    zero = _returns_fn(cfg.horizon)(jnp.zeros((1, cfg.horizon, 1)), jax.random.key(0))[0]
    assert float(found) > float(zero)


def lqr_sequence(x0, horizon):
    """The whole optimal open-loop sequence (deterministic system: closed loop = open loop)."""
    ps = [np.zeros((2, 2))]
    ks = []
    for _ in range(horizon):
        k = np.linalg.solve(R + B.T @ ps[-1] @ B, B.T @ ps[-1] @ A)
        ks.append(k)
        ps.append(Q + A.T @ ps[-1] @ (A - B @ k))
    x, seq = np.asarray(x0, np.float64), []
    for k in reversed(ks):
        u = -(k @ x)
        seq.append(u)
        x = A @ x + B @ u
    return np.asarray(seq, np.float32)


def test_random_shooting_executes_its_best_sample():
    cfg = RandomShootingConfig(horizon=8, samples=64)
    state = initial_state(8, LOW, HIGH, 1.0)
    key = jax.random.key(3)
    seq, _ = shooting_plan(cfg, _returns_fn(8), state, LOW, HIGH, key)
    samples = jax.random.uniform(jax.random.split(key)[0], (64, 8, 1), jnp.float32, LOW, HIGH)
    scores = _returns_fn(8)(samples, key)
    np.testing.assert_allclose(np.asarray(seq), np.asarray(samples[jnp.argmax(scores)]))


def test_ts_inf_keeps_a_member_per_particle_and_ts1_redraws_it():
    """Members drift by +1 or -1 in x[0] per step and the reward punishes x[0]^2: a particle that keeps its member drifts
    linearly (sum of t^2), one that redraws it every step random-walks (sum of t), so TS-inf scores far lower."""
    drift = Members(offsets=jnp.asarray([[1.0, 0.0], [-1.0, 0.0]]))
    no_q = lambda m: m  # noqa: E731
    zero_obs, actions = jnp.zeros(2), jnp.zeros((1, 10, 1))
    tsinf = sequence_returns(no_q(drift), zero_obs, actions, jax.random.key(0), propagation="tsinf", particles=400)[0]
    ts1 = sequence_returns(no_q(drift), zero_obs, actions, jax.random.key(0), propagation="ts1", particles=400)[0]
    # reward at step t is -x_t[0]^2 (velocity stays 0): TS-inf -sum_{t<10} t^2 = -285; TS-1 about -sum t = -45
    assert float(tsinf) == pytest.approx(-285.0, rel=1e-4)
    assert float(ts1) == pytest.approx(-45.0, rel=0.15)
    mean = sequence_returns(drift, zero_obs, actions, jax.random.key(0), propagation="expectation")[0]
    assert float(mean) == pytest.approx(0.0, abs=1e-6)  # the members' mean does not drift


def test_a_terminated_particle_earns_nothing_afterwards():
    stopper = Members(offsets=jnp.asarray([[0.5, 0.0]]), stop_above=1.2)
    r = sequence_returns(stopper, jnp.zeros(2), jnp.zeros((1, 6, 1)), jax.random.key(0), propagation="tsinf", particles=2)[0]
    # x[0] = 0, 0.5, 1.0, then 1.5 ends it at step 2: rewards -0, -0.25, -1.0 and nothing after
    assert float(r) == pytest.approx(-1.25, rel=1e-5)


@pytest.mark.parametrize("beta, min_corr, max_corr", [(0.0, -0.1, 0.1), (2.0, 0.6, 1.0)])
def test_colored_noise_has_unit_variance_and_the_requested_correlation(beta, min_corr, max_corr):
    x = np.asarray(dl.planning.colored_noise(jax.random.key(0), beta, (4000, 32)))
    assert x.var() == pytest.approx(1.0, abs=0.06)
    lag1 = np.mean(x[:, 1:] * x[:, :-1]) / x.var()
    assert min_corr < lag1 < max_corr


def test_a_planner_is_a_batch_policy():
    mpc = MPC(LINEAR, CEMConfig(horizon=6, population=64, elites=8, iterations=3),
              low=LOW, high=HIGH, objective=ObjectiveConfig(propagation="expectation"))
    policy = PlannerPolicy(mpc)
    obs = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]], np.float32)
    act = policy(obs, np.random.default_rng(0))
    assert act.shape == (3, 1) and act.dtype == np.float32 and np.all((act >= -5) & (act <= 5))
    assert act[0, 0] < 0 < act[1, 0]  # pushes each state back towards the origin
    policy.reset()
    np.testing.assert_array_equal(policy(obs, np.random.default_rng(0)), act)  # same seed, same plan
    assert policy(obs[:2], np.random.default_rng(1)).shape == (2, 1)  # a new batch size starts afresh


def test_mpc_plans_with_an_ensemble_and_its_termination_function():
    task = dl.tasks.get("Hopper-v5")
    model = ProbabilisticEnsemble.init(EnsembleConfig(members=3, elites=2, hidden=(16,), weight_decay=(0.0, 0.0)),
                                       task.obs_dim, task.act_dim, key=jax.random.key(0)).with_task(task)
    mpc = MPC(model, MPPIConfig(horizon=4, samples=16), low=task.act_low, high=task.act_high,
              objective=ObjectiveConfig(particles=4))
    act, state = mpc.act(mpc.init(2), jnp.zeros((2, task.obs_dim)).at[:, 0].set(1.25), jax.random.key(1))
    assert act.shape == (2, task.act_dim) and bool(jnp.all(jnp.isfinite(act)))
    assert state.mean.shape == (2, 4, task.act_dim)


def test_bad_planner_settings_are_refused():
    with pytest.raises(ConfigError, match="elites"):
        CEMConfig(population=10, elites=20)
    with pytest.raises(ConfigError, match="temperature"):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ConfigError, match="propagation"):
        ObjectiveConfig(propagation="ts2")
    with pytest.raises(ConfigError, match="bounds"):
        MPC(LINEAR, low=[1.0], high=[-1.0])


def test_elite_blocks_give_the_same_expected_return_as_a_member_per_particle():
    """TS-inf on an ensemble with (almost) no aleatoric noise: the expected return is the elites' average of their
    deterministic returns. Particles in equal blocks per elite (the fast path) give it exactly; the generic path (a
    random elite per particle, every member evaluated) within its binomial sampling error."""
    import dataclasses

    task = dl.tasks.get("Hopper-v5")
    model = ProbabilisticEnsemble.init(EnsembleConfig(members=4, elites=2, hidden=(32,), weight_decay=(0.0, 0.0)),
                                       task.obs_dim, task.act_dim, key=jax.random.key(0)).with_task(task)
    quiet = dataclasses.replace(model.net, max_logvar=jnp.full_like(model.net.max_logvar, -24.0),
                                min_logvar=jnp.full_like(model.net.min_logvar, -30.0))
    model = dataclasses.replace(model, net=quiet)
    obs = jnp.zeros(task.obs_dim).at[0].set(1.25)
    actions = jax.random.uniform(jax.random.key(1), (3, 5, task.act_dim), jnp.float32, -1.0, 1.0)

    def member_return(member, seq):
        o, alive, ret = obs, True, 0.0
        for a in seq:
            _, pred = model.step(None, o, a, key=jax.random.key(0), member=member, deterministic=True)
            ret, alive, o = ret + float(pred.reward) * alive, alive and not bool(pred.terminal), pred.next_obs
        return ret

    per_elite = np.array([[member_return(int(m), seq) for m in np.asarray(model.elites)] for seq in actions])
    fast = sequence_returns(model, obs, actions, jax.random.key(2), particles=8)            # 2 elites divide 8
    np.testing.assert_allclose(np.asarray(fast), per_elite.mean(axis=1), rtol=1e-4, atol=1e-5)
    generic = sequence_returns(model, obs, actions, jax.random.key(2), particles=4001)      # they do not divide 4001
    binomial = np.abs(per_elite[:, 0] - per_elite[:, 1]) * 0.5 / np.sqrt(4001)
    np.testing.assert_allclose(np.asarray(generic), per_elite.mean(axis=1), atol=float(5 * binomial.max() + 1e-5))


def test_warm_start_shifts_the_mean_and_resets_the_spread():
    from dynlearn.planning.base import PlanState, shift

    state = PlanState(mean=jnp.arange(4.0).reshape(4, 1), std=jnp.full((4, 1), 1e-3), elites=jnp.zeros((2, 4, 1)))
    warm = shift(state, LOW, HIGH, 0.5)
    np.testing.assert_array_equal(np.asarray(warm.mean[:, 0]), [1.0, 2.0, 3.0, 0.0])
    np.testing.assert_array_equal(np.asarray(warm.std), np.full((4, 1), 2.5))  # 0.5 x the half-range 5


class PendulumDynamics(AbstractTransitionModel):
    """Gymnasium's Pendulum-v1 equations (g 10, m = l = 1, dt 0.05, torque +-2, speed +-8) and its reward."""

    obs_dim: int = eqx.field(static=True, default=3, init=False)
    act_dim: int = eqx.field(static=True, default=1, init=False)

    def init_state(self, obs, *, key):
        return MemberState(member=jnp.zeros(obs.shape[:-1], jnp.int32))

    def members(self, obs, act):
        raise NotImplementedError

    def step(self, state, obs, act, *, key, member=None, deterministic=False):
        from dynlearn.tasks.termination import pendulum_reward

        theta, speed = jnp.arctan2(obs[..., 1], obs[..., 0]), obs[..., 2]
        speed = jnp.clip(speed + (15.0 * jnp.sin(theta) + 3.0 * jnp.clip(act[..., 0], -2, 2)) * 0.05, -8, 8)
        theta = theta + speed * 0.05
        nxt = jnp.stack([jnp.cos(theta), jnp.sin(theta), speed], -1)
        return state, Prediction(next_obs=nxt, reward=pendulum_reward(obs, act, nxt), terminal=jnp.zeros(obs.shape[:-1], bool),
                                 member=state.member, outputs=None)


@pytest.mark.parametrize("planner", [CEMConfig(horizon=15, population=64, elites=8, iterations=3),
                                     MPPIConfig(horizon=30, samples=200, temperature=1.0, noise_std=0.5)])
def test_mpc_with_the_true_dynamics_swings_the_pendulum_up(planner):
    """Two episodes in the real Pendulum-v1 back to back (the second starts from the first's warm start): both end
    balanced, with returns near the task's best (about -150) and far above a random policy's (about -1200)."""
    task = dl.tasks.get("Pendulum-v1")
    mpc = MPC(PendulumDynamics(), planner, low=task.act_low, high=task.act_high, objective=ObjectiveConfig(propagation="ts1", particles=1))
    result = dl.tasks.evaluate(PlannerPolicy(mpc), task, 2, key=0, num_envs=1)
    assert np.all(result.returns > -400), result.returns
