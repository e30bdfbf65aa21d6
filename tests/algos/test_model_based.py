"""The offline model-based loop (MOPO, MOBILE, RAVL, MBPO): every method runs and writes its run folder, a killed and
resumed run equals an uninterrupted one, its config reloads equal to the one trained, presets give the papers' values,
and a rollout penalty lowers the value of actions the data never took."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import agents
from dynlearn.algos import MBPOConfig, MOBILEConfig, MOPOConfig, RAVLConfig, load_config, mobile
from dynlearn.algos.model_based import train_model_based
from dynlearn.algos.model_source import ensemble_configs
from dynlearn.algos.registry import method, names
from dynlearn.errors import ConfigError
from dynlearn.models import EnsembleConfig, FitConfig, fit
from dynlearn.models.base import MemberOutputs
from dynlearn.algos.morec import DynamicsReward, DynamicsRewardConfig, save_reward
from dynlearn.results import check_results


def _quiet(_):
    pass


def _same_leaves(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


class SmallTorques:
    """Uniform actions in [-0.5, 0.5] (a quarter of Pendulum's torque range): the data never sees |a| > 0.5."""

    def __call__(self, obs, rng):
        return rng.uniform(-0.5, 0.5, (obs.shape[0], 1)).astype(np.float32)


@pytest.fixture(scope="module")
def pendulum():
    task = dl.tasks.get("Pendulum-v1")
    data = dl.tasks.collect(task, SmallTorques(), steps=3000, seed=0, name="pendulum-small-torques")
    cfg = EnsembleConfig(members=4, elites=3, hidden=(32, 32), weight_decay=(2.5e-5, 5e-5, 1e-4))
    model, _ = fit(cfg, data, key=jax.random.key(0), cfg=FitConfig(max_epochs=15, progress=False), task=task)
    return task, data, model


def _small(name, **kw):
    cls = method(name)
    base = dict(steps=200, seeds=1, rollout_batch=200, rollout_every=100, retain_epochs=2, eval_every=200, checkpoint_every=100,
                eval_episodes=1)
    if issubclass(cls, MOBILEConfig):
        base["q_floor"] = float("-inf")  # Pendulum's rewards are negative
    return cls(**(base | kw))


def _agent_cfg(method):
    name = "edac" if method == "ravl" else "sac"
    return agents.get(name).Config(hidden=(32, 32), batch_size=64, n_critics=3 if method == "ravl" else 2)


def _method_options(method, tmp_path) -> dict:
    """MOREC needs a dynamics reward (an untrained tiny one: this test checks the plumbing) and a short horizon."""
    if not method.startswith("morec"):
        return {}
    cfg = DynamicsRewardConfig(steps=4, snapshot_every=1, snapshots=4, state_hidden=(16,), delta_hidden=(16,), hidden=(16,),
                               state_embedding=8, delta_embedding=4)
    folder = save_reward(tmp_path / "reward", DynamicsReward.init(cfg, 3, 1, key=jax.random.key(0)))
    return {"reward_model": str(folder), "horizon": 10, "reward_discriminators": 4, "reward_threshold": 0.0}


@pytest.mark.parametrize("method", names())
def test_every_method_trains_and_writes_its_run_folder(tmp_path, pendulum, method):
    task, data, model = pendulum
    cfg = _small(method, **_method_options(method, tmp_path))
    out = train_model_based(data, task, cfg, tmp_path / method, model=model, agent_config=_agent_cfg(method), log=_quiet)
    results = json.loads((out / "results.json").read_text())
    check_results(results)
    assert results["method"] == method and results["budget"]["steps"] == 200
    config = json.loads((out / "config.json").read_text())["model_based"]
    assert config["method"] == method and load_config(out) == cfg  # the run's config reloads as the one trained
    history = json.loads((out / "seed_0" / "checkpoint" / "progress.json").read_text())["history"]
    assert [h["step"] for h in history] == [100, 200]
    assert all(np.isfinite(h["q/mean"]) and 0 < h["rollout/valid_fraction"] <= 1 for h in history)
    if method in ("mopo", "morec-mopo"):
        assert all(h["rollout/penalty"] > 0 for h in history)
        scale = results["extra"]["penalty_on_data"]  # the reward penalty measured on the real rows before training
        assert scale == json.loads((out / "penalty_on_data.json").read_text()) and scale["coef"] == config["penalty_coef"]
        assert scale["u_median"] > 0 and 0 <= scale["flipped_share"] <= 1
    else:
        assert all(h["rollout/penalty"] == 0 for h in history)
        assert results["extra"]["penalty_on_data"] is None and not (out / "penalty_on_data.json").exists()


def test_resumed_run_equals_uninterrupted(tmp_path, pendulum):
    task, data, model = pendulum
    cfg = _small("mopo", steps=300, seeds=2)
    acfg = _agent_cfg("mopo")
    train_model_based(data, task, cfg, tmp_path / "full", model=model, agent_config=acfg, log=_quiet)
    train_model_based(data, task, cfg, tmp_path / "killed", model=model, agent_config=acfg, until=200, log=_quiet)
    assert not (tmp_path / "killed" / "results.json").exists()
    train_model_based(data, task, cfg, tmp_path / "killed", model=model, agent_config=acfg, resume=True, log=_quiet)
    sac = agents.get("sac")
    for seed in (0, 1):
        assert _same_leaves(sac.load(tmp_path / "full" / f"seed_{seed}" / "agent"),
                            sac.load(tmp_path / "killed" / f"seed_{seed}" / "agent"))
    a, b = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("full", "killed"))
    assert a["scores"]["per_seed"] == b["scores"]["per_seed"]


def test_seeds_trained_one_per_call_equal_a_run_in_turn(tmp_path, pendulum):
    """``only_seed`` (one process per core, each its own seed): the seeds' agents are those of a run in turn, and the
    call that finds every seed finished writes the results."""
    task, data, model = pendulum
    cfg = _small("mopo", steps=200, seeds=2)
    acfg = _agent_cfg("mopo")
    train_model_based(data, task, cfg, tmp_path / "turns", model=model, agent_config=acfg, log=_quiet)
    split = tmp_path / "split"
    train_model_based(data, task, cfg, split, model=model, agent_config=acfg, only_seed=1, log=_quiet)
    assert (split / "seed_1" / "final.json").is_file() and not (split / "seed_0").exists()
    assert not (split / "results.json").exists()  # seed 0 has not trained yet
    train_model_based(data, task, cfg, split, model=model, agent_config=acfg, only_seed=0, resume=True, log=_quiet)
    sac = agents.get("sac")
    for seed in (0, 1):
        assert _same_leaves(sac.load(tmp_path / "turns" / f"seed_{seed}" / "agent"), sac.load(split / f"seed_{seed}" / "agent"))
    a, b = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("turns", "split"))
    assert a["scores"]["per_seed"] == b["scores"]["per_seed"]
    with pytest.raises(ConfigError, match="not one of this run's seeds"):
        train_model_based(data, task, cfg, tmp_path / "bad", model=model, agent_config=acfg, only_seed=2, log=_quiet)
    with pytest.raises(ConfigError, match="choose one"):
        train_model_based(data, task, cfg, tmp_path / "bad", model=model, agent_config=acfg, only_seed=0, parallel_seeds=True,
                          log=_quiet)


def test_presets_give_the_papers_values_and_explicit_values_win():
    cfg = MOPOConfig.for_dataset("hopper-medium-replay-v5")
    assert (cfg.preset, cfg.horizon, cfg.penalty_coef, cfg.penalty) == ("hopper-medium-replay", 5, 1.0, "max_aleatoric")
    cfg = MOPOConfig.preset("hopper-medium-v5")  # a dataset's name: its longest preset
    assert (cfg.preset, cfg.horizon, cfg.penalty_coef) == ("hopper-medium", 5, 5.0)
    cfg = MOPOConfig.preset("hopper-medium", penalty_coef=2.0, penalty="llv")
    assert (cfg.preset, cfg.penalty_coef, cfg.penalty, cfg.horizon) == ("hopper-medium", 2.0, "llv", 5)  # explicit values win
    assert MOPOConfig.for_dataset("my-data") == MOPOConfig()  # no preset for it: the defaults
    cfg = MOBILEConfig.preset("hopper-medium-v5")
    assert (cfg.horizon, cfg.penalty_coef, cfg.auto_alpha, cfg.alpha, cfg.q_floor) == (5, 1.5, False, 0.2, 0.0)
    assert RAVLConfig.for_dataset("hopper-medium-v5").critics == 10 and MOBILEConfig().horizon == 1
    assert MBPOConfig().hooks().penalty is None
    with pytest.raises(ConfigError, match="mopo has no preset 'nowhere-medium'; known: halfcheetah-medium, hopper-medium"):
        MOPOConfig.preset("nowhere-medium")
    with pytest.raises(ConfigError, match="no preset"):
        MOPOConfig(preset="nowhere-medium")
    with pytest.raises(ConfigError, match="ravl has no presets"):
        RAVLConfig.preset("hopper-medium")
    with pytest.raises(ConfigError, match="multiples"):
        MOPOConfig(steps=1500)
    with pytest.raises(ConfigError, match="unknown model-based method 'morel'"):
        method("morel")
    with pytest.raises(ConfigError, match="unknown penalty"):
        MOPOConfig(penalty="entropy")
    with pytest.raises(ConfigError, match="MOPOConfig.model_holdout"):
        MOPOConfig(model_holdout="rows")
    with pytest.raises(ConfigError, match="not fitted here"):  # the oracle and saved models have no fit to choose
        MOPOConfig(model="oracle", model_holdout="transitions")
    with pytest.raises(ConfigError, match="model_min_epochs.*not fitted here"):
        MOPOConfig(model="oracle", model_min_epochs=10)
    with pytest.raises(TypeError, match="abstract"):
        dl.algos.ModelBasedConfig()
    # the fit's options reach the ensemble's FitConfig; without them the fit (and its cache key) is the default one
    hopper = dl.tasks.get("Hopper-v5")
    _, fit = ensemble_configs(RAVLConfig(model_min_epochs=350, model_max_epochs=None, model_holdout="transitions"), hopper)
    assert (fit.min_epochs, fit.holdout, fit.max_epochs) == (350, "transitions", None)
    assert RAVLConfig(model_max_epochs=0).model_max_epochs is None  # 0 and None: no cap
    with pytest.raises(ConfigError, match="model_min_epochs 350 is above model_max_epochs 60"):  # the cap would end it first
        RAVLConfig(model_min_epochs=350)
    assert ensemble_configs(RAVLConfig(), hopper)[1].identity() == FitConfig(max_epochs=60).identity()
    # the termination head is fitted only where the task has no termination function (rollouts read the function)
    assert not ensemble_configs(MOPOConfig(), hopper)[0].termination_head
    assert ensemble_configs(MOPOConfig(), dl.tasks.get("Pendulum-v1"))[0].termination_head is False
    assert ensemble_configs(MOPOConfig(), None)[0].termination_head


def test_mobile_penalty_is_zero_on_real_rows_and_grows_with_model_disagreement(pendulum):
    task, data, model = pendulum
    sac = agents.get("sac")
    state = sac.init(jax.random.key(1), dl.agents.AgentSpec(3, 1, (-2.0,), (2.0,)), sac.Config(hidden=(32, 32)))
    adjust = MOBILEConfig(q_floor=float("-inf")).target_adjust(model, sac, n_real=4)
    obs = jnp.asarray(data.transitions.obs[:8])
    act = jnp.asarray(data.transitions.act[:8])
    u_in = adjust.uncertainty(state, obs, act, key=jax.random.key(2))
    u_out = adjust.uncertainty(state, obs * 4.0, jnp.full_like(act, 2.0), key=jax.random.key(2))
    assert float(jnp.mean(u_out)) > float(jnp.mean(u_in)) > 0
    batch = data.transitions.take(np.arange(8)).to_device()
    target = jnp.zeros((8,), jnp.float32)
    adjusted = adjust(state, batch, target, key=jax.random.key(3))
    assert np.all(np.asarray(adjusted[:4]) == 0.0) and np.all(np.asarray(adjusted[4:]) < 0.0)


def test_rollout_penalty_lowers_the_value_of_unseen_actions(tmp_path, pendulum):
    task, data, model = pendulum
    sac = agents.get("sac")
    acfg = sac.Config(hidden=(32, 32), batch_size=64)
    runs = {}
    for name, coef in (("none", 0.0), ("penalised", 5.0)):
        cfg = _small("mopo", steps=600, penalty="ensemble_std", penalty_coef=coef, eval_every=600, checkpoint_every=600)
        runs[name] = sac.load(train_model_based(data, task, cfg, tmp_path / name, model=model, agent_config=acfg, log=_quiet)
                              / "seed_0" / "agent")
    obs = jnp.asarray(data.transitions.obs[::10])
    seen = jnp.asarray(data.transitions.act[::10])
    unseen = jnp.full_like(seen, 2.0)

    def gap(state):  # value of the unseen torque relative to the data's own actions
        q = lambda a: jnp.min(sac.q_values(state, obs, a), axis=0)  # noqa: E731
        return float(jnp.mean(q(unseen) - q(seen)))

    assert gap(runs["penalised"]) < gap(runs["none"]) - 0.5


def test_a_stop_request_checkpoints_the_finished_block_and_resumes_exactly(tmp_path, pendulum):
    """SIGTERM / Ctrl-C (what `interrupt.request` stands for) stops after the block that is running, with a checkpoint
    of it although no periodic checkpoint is due, and the resumed run equals an uninterrupted one."""
    from dynlearn import interrupt

    task, data, model = pendulum
    cfg = _small("mopo", steps=300, seeds=2, eval_every=100, checkpoint_every=300)
    acfg = _agent_cfg("mopo")
    train_model_based(data, task, cfg, tmp_path / "full", model=model, agent_config=acfg, log=_quiet)

    def stop_in_seed_1(line):
        if line.startswith("seed 1 step      200"):
            interrupt.request()

    with pytest.raises(interrupt.Stopped) as stopped:
        train_model_based(data, task, cfg, tmp_path / "stopped", model=model, agent_config=acfg, log=stop_in_seed_1)
    assert (stopped.value.step, stopped.value.folder) == (200, tmp_path / "stopped" / "seed_1")
    assert json.loads((tmp_path / "stopped" / "seed_1" / "checkpoint" / "progress.json").read_text())["step"] == 200
    assert not interrupt.requested()  # leaving the loop clears the request
    train_model_based(data, task, cfg, tmp_path / "stopped", model=model, agent_config=acfg, resume=True, log=_quiet)
    sac = agents.get("sac")
    assert _same_leaves(sac.load(tmp_path / "full" / "seed_1" / "agent"), sac.load(tmp_path / "stopped" / "seed_1" / "agent"))
    a, b = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("full", "stopped"))
    assert a["scores"]["per_seed"] == b["scores"]["per_seed"]


@pytest.mark.parametrize("method", ["mopo", "mobile", "ravl", "morec-mopo"])
def test_parallel_seeds_follow_the_seeds_in_turn(tmp_path, pendulum, method):
    """Seeds stacked and vmapped (rollouts, buffers, updates; what pays on a GPU) train the same seeds as in turn, up to
    float rounding, into the same run folder layout."""
    task, data, model = pendulum
    cfg = _small(method, seeds=2, **_method_options(method, tmp_path))
    acfg = _agent_cfg(method)
    train_model_based(data, task, cfg, tmp_path / "turns", model=model, agent_config=acfg, log=_quiet)
    train_model_based(data, task, cfg, tmp_path / "together", model=model, agent_config=acfg, parallel_seeds=True, log=_quiet)
    agent = agents.get("edac" if method == "ravl" else "sac")
    for seed in (0, 1):
        a, b = (agent.load(tmp_path / run / f"seed_{seed}" / "agent") for run in ("turns", "together"))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-3, atol=1e-4)
        h_a, h_b = (json.loads((tmp_path / run / f"seed_{seed}" / "checkpoint" / "progress.json").read_text())["history"]
                    for run in ("turns", "together"))
        assert [h["step"] for h in h_a] == [h["step"] for h in h_b]
        assert h_a[-1]["rollout/length"] == pytest.approx(h_b[-1]["rollout/length"], rel=1e-3)
    check_results(json.loads((tmp_path / "together" / "results.json").read_text()))


def test_parallel_seeds_resume_a_run_started_in_turn(tmp_path, pendulum):
    task, data, model = pendulum
    cfg = _small("mopo", steps=300, seeds=2)
    acfg = _agent_cfg("mopo")
    train_model_based(data, task, cfg, tmp_path / "full", model=model, agent_config=acfg, log=_quiet)
    train_model_based(data, task, cfg, tmp_path / "mixed", model=model, agent_config=acfg, until=200, log=_quiet)
    train_model_based(data, task, cfg, tmp_path / "mixed", model=model, agent_config=acfg, resume=True, parallel_seeds=True,
                      log=_quiet)
    sac = agents.get("sac")
    for seed in (0, 1):
        a, b = (sac.load(tmp_path / run / f"seed_{seed}" / "agent") for run in ("full", "mixed"))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-3, atol=1e-4)
    with pytest.raises(ConfigError, match="oracle"):
        oracle_data = dl.tasks.collect(dl.tasks.get("InvertedPendulum-v5"), dl.tasks.RandomPolicy(dl.tasks.get("InvertedPendulum-v5")),
                                       steps=200, seed=0)
        train_model_based(oracle_data, dl.tasks.get("InvertedPendulum-v5"), _small("mbpo", model="oracle"), tmp_path / "oracle",
                          agent_config=acfg, parallel_seeds=True, log=_quiet)


class _TwoElites(eqx.Module):
    """Two noiseless elites whose next observations differ by 1 in the first dim (a stub for MOBILE's penalty)."""

    def members(self, obs, act):
        shift = jnp.array([0.0, 1.0], jnp.float32)[:, None, None] * jnp.eye(obs.shape[-1] + 1, dtype=jnp.float32)[0]
        mean = jnp.broadcast_to(shift, (2, obs.shape[0], obs.shape[-1] + 1))
        return MemberOutputs(mean=mean, logvar=jnp.full_like(mean, -60.0), terminal_logit=None,
                             elites=jnp.arange(2, dtype=jnp.int32), obs_dim=obs.shape[-1])


def test_mobile_penalty_is_the_sample_std_over_elites():
    """Q'(s') = s'_0, so the elites' Q are s_0 and s_0 + 1: the reference's torch.std (n - 1) gives 1/sqrt(2), not 1/2."""
    adjust = mobile.BellmanInconsistency(_TwoElites(), jnp.float32(1.0), jnp.float32(-jnp.inf), 0, 3,
                                  lambda state, obs, *, key: (jnp.zeros((*obs.shape[:-1], 1), jnp.float32), None),
                                  lambda state, obs, act, *, target: jnp.stack([obs[..., 0], obs[..., 0] + 5.0]))
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)), jnp.float32)
    u = adjust.uncertainty(None, obs, jnp.zeros((8, 1), jnp.float32), key=jax.random.key(0))
    np.testing.assert_allclose(np.asarray(u), 1.0 / np.sqrt(2.0), rtol=1e-5)
