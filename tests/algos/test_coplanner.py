"""COPlanner: UP-MPC's conservative choice avoids the actions where the ensemble disagrees and its optimistic choice seeks
them; a planned action is one of the policy's candidates and within the action bounds; a COPlanner run stopped and resumed
ends bit-equal to an uninterrupted one (tiny networks, InvertedPendulum-v5, whose episodes end by termination)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import agents, models
from dynlearn.agents.base import AgentSpec
from dynlearn.agents.sac import SACConfig
from dynlearn.algos.coplanner import COPlannerConfig, UPMPCPolicy, disagreement, train_coplanner, up_mpc
from dynlearn.algos.mbpo_online import MBPOOnlineConfig, read_checkpoint
from dynlearn.errors import ConfigError
from dynlearn.models import EnsembleConfig, FitConfig, ProbabilisticEnsemble
from dynlearn.models.base import AbstractTransitionModel, MemberOutputs, ModelState, Prediction
from dynlearn.results import check_results
from dynlearn.tasks import get as get_task


class SplitModel(AbstractTransitionModel):
    """Three members that agree where the action is <= 0 and disagree where it is > 0 (their next states move by 0, 1
    and 2 times the action); the reward is 0 everywhere, so only the uncertainty term tells the candidates apart."""

    obs_dim: int = eqx.field(static=True, default=1)
    act_dim: int = eqx.field(static=True, default=1)

    def init_state(self, obs, *, key):
        return ModelState()

    def members(self, obs, act):
        delta = jnp.arange(3.0)[:, None, None] * jax.nn.relu(act)[None]
        mean = jnp.concatenate([delta, jnp.zeros_like(delta)], axis=-1)
        return MemberOutputs(mean=mean, logvar=jnp.full_like(mean, -30.0), terminal_logit=None, elites=jnp.arange(3), obs_dim=1)

    def step(self, state, obs, act, *, key, member=None, deterministic=False):
        out = self.members(obs, act)
        batch = obs.shape[:-1]
        return state, Prediction(next_obs=obs + out.mean[1, ..., :1], reward=jnp.zeros(batch), terminal=jnp.zeros(batch, bool),
                                 member=jnp.ones(batch, jnp.int32), outputs=out)


def uniform_policy(state, obs, *, key, deterministic=False):
    return jax.random.uniform(key, (*obs.shape[:-1], 1), minval=-1.0, maxval=1.0)


@pytest.mark.parametrize("horizon", [1, 3])
def test_the_conservative_choice_avoids_the_uncertain_actions_and_the_optimistic_one_seeks_them(horizon):
    model, obs, key = SplitModel(), jnp.zeros((6, 1)), jax.random.key(3)
    plan = lambda bonus: up_mpc(model, uniform_policy, None, obs, key=key, candidates=8, horizon=horizon, bonus=bonus)  # noqa: E731
    careful, bold = plan(-2.0), plan(1.0)
    np.testing.assert_array_equal(careful.candidates, bold.candidates)  # one key: the same candidates, scored two ways
    first = np.asarray(careful.candidates[..., 0])
    assert (first <= 0).any(axis=0).all() and (first > 0).any(axis=0).all()  # every row has both kinds of candidate
    rows = np.arange(6)
    u_careful, u_bold = np.asarray(careful.uncertainty)[careful.choice, rows], np.asarray(bold.uncertainty)[bold.choice, rows]
    assert (u_careful < u_bold).all()
    np.testing.assert_allclose(u_careful, np.asarray(careful.uncertainty).min(axis=0))
    np.testing.assert_allclose(u_bold, np.asarray(bold.uncertainty).max(axis=0))
    if horizon == 1:  # one step: the uncertainty is the first action's alone
        assert (np.asarray(careful.action) <= 0).all() and (np.asarray(bold.action) > 0).all()
        np.testing.assert_allclose(np.asarray(bold.uncertainty), np.sqrt(2 / 3) * np.maximum(first, 0.0), rtol=1e-5, atol=1e-6)


def test_disagreement_is_the_members_spread_of_the_next_state():
    out = SplitModel().members(jnp.zeros((2, 1)), jnp.asarray([[-0.5], [0.6]]))
    np.testing.assert_allclose(disagreement(out), [0.0, 0.6 * np.sqrt(2 / 3)], rtol=1e-6)
    np.testing.assert_allclose(disagreement(out, key=jax.random.key(0)), [0.0, 0.6 * np.sqrt(2 / 3)], rtol=1e-4, atol=1e-6)


def test_a_planned_action_is_a_candidate_within_the_bounds():
    task, sac = get_task("Pendulum-v1"), agents.get("sac")
    spec = AgentSpec(task.obs_dim, task.act_dim, task.act_low, task.act_high)
    agent_state = sac.init(jax.random.key(0), spec, SACConfig(hidden=(8, 8)))
    model = ProbabilisticEnsemble.init(EnsembleConfig(members=3, elites=2, hidden=(8,), weight_decay=(0.0, 0.0)), 3, 1,
                                       key=jax.random.key(1)).with_task(task)
    obs = jax.random.normal(jax.random.key(2), (5, 3))
    result = up_mpc(model, sac.act, agent_state, obs, key=jax.random.key(4), candidates=4, horizon=3, bonus=-2.0)
    action = np.asarray(result.action)
    assert action.shape == (5, 1) and np.isfinite(action).all() and (np.abs(action) <= 2.0).all()
    np.testing.assert_array_equal(action, np.asarray(result.candidates)[np.asarray(result.choice), np.arange(5)])
    policy = COPlannerConfig(task="Pendulum-v1", candidates=4, plan_horizon=3).explore_policy(sac, agent_state, model)
    assert isinstance(policy, UPMPCPolicy) and policy.bonus == 1.0
    assert np.all(np.abs(np.asarray(policy(obs, key=jax.random.key(5)))) <= 2.0)


def test_the_config_keeps_the_references_planner_and_mbpos_presets():
    cfg = COPlannerConfig.preset("hopper")
    assert (cfg.candidates, cfg.plan_horizon, cfg.conservative_rate, cfg.optimistic_rate, cfg.plan_discount) == (5, 5, 2.0, 1.0, 0.97)
    assert cfg.rollout_schedule == MBPOOnlineConfig.preset("hopper").rollout_schedule and cfg.method == "coplanner"
    with pytest.raises(ConfigError, match="candidates"):
        COPlannerConfig(candidates=0)


TINY = COPlannerConfig(task="InvertedPendulum-v5", steps=400, start_steps=100, update_every=50, model_train_every=100,
                       epoch_length=100, rollout_schedule=(0, 2, 1, 3), rollout_batch=16, utd=1, eval_every=400, eval_episodes=1,
                       checkpoint_every=100, fit_epochs=2, candidates=3, plan_horizon=2,
                       fitting=FitConfig(holdout="transitions", batch_size=32, progress=False),
                       model=EnsembleConfig(members=3, elites=2, hidden=(8,), weight_decay=(0.0, 0.0)),
                       sac=SACConfig(hidden=(8, 8), batch_size=16))


def test_a_resumed_coplanner_run_ends_bit_equal_to_an_uninterrupted_one(tmp_path):
    quiet = lambda *_: None  # noqa: E731
    full = train_coplanner(TINY, tmp_path / "full", log=quiet)
    assert train_coplanner(TINY, tmp_path / "killed", until=250, log=quiet) == {}
    stopped = read_checkpoint(TINY, tmp_path / "killed")[1]
    assert TINY.start_steps <= stopped["step"] <= 250 and stopped["fits"] >= 1
    resumed = train_coplanner(TINY, tmp_path / "killed", resume=True, log=quiet)
    check_results(resumed)
    assert resumed["method"] == "coplanner" and resumed["scores"]["per_seed"] == full["scores"]["per_seed"]
    sac, task = agents.get("sac"), get_task("InvertedPendulum-v5")
    for a, b in ((sac.load(tmp_path / "full" / "final"), sac.load(tmp_path / "killed" / "final")),
                 (models.load(tmp_path / "full" / "model", task=task), models.load(tmp_path / "killed" / "model", task=task))):
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
