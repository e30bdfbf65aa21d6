"""The training loops: a killed-and-resumed run equals an uninterrupted one; offline BC learns from data."""

import json
import time

import jax
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import agents
from dynlearn.algos.offline import OfflineConfig, train_offline
from dynlearn.algos.online import OnlineConfig, train_online
from dynlearn.errors import ConfigError, OutputExistsError
from dynlearn.results import check_results
from dynlearn.tasks.controllers import PendulumSwingUp


def _same_leaves(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _quiet(_):
    pass


def test_online_resume_matches_uninterrupted(tmp_path):
    sac = agents.get("sac")
    agent_cfg = sac.Config(hidden=(16, 16), batch_size=32)
    cfg = OnlineConfig(task="Pendulum-v1", steps=700, start_steps=150, update_every=50, eval_every=350, eval_episodes=1,
                       snapshot_every=350, checkpoint_every=300)
    train_online(cfg, tmp_path / "full", agent_config=agent_cfg, log=_quiet)
    train_online(cfg, tmp_path / "killed", agent_config=agent_cfg, until=550, log=_quiet)
    assert not (tmp_path / "killed" / "results.json").exists()
    assert json.loads((tmp_path / "killed" / "checkpoint" / "progress.json").read_text())["step"] == 400
    train_online(cfg, tmp_path / "killed", agent_config=agent_cfg, resume=True, log=_quiet)
    assert _same_leaves(sac.load(tmp_path / "full" / "final"), sac.load(tmp_path / "killed" / "final"))
    results = json.loads((tmp_path / "killed" / "results.json").read_text())
    check_results(results)
    assert [s["step"] for s in json.loads((tmp_path / "full" / "evals.json").read_text())["snapshots"]] == [350, 700]
    with pytest.raises(OutputExistsError):
        train_online(cfg, tmp_path / "full", agent_config=agent_cfg, log=_quiet)
    with pytest.raises(ConfigError, match="differs"):
        train_online(OnlineConfig(**{**cfg.__dict__, "steps": 800}), tmp_path / "full", agent_config=agent_cfg, resume=True, log=_quiet)


def _newer_library(monkeypatch, module) -> None:
    """``module`` as a later library version sees it: every config it records has one more option, left inactive (None)."""
    import dataclasses
    import types

    newer = types.ModuleType("dataclasses")
    newer.__dict__.update(vars(dataclasses))
    newer.asdict = lambda obj: dataclasses.asdict(obj) | {"added_later": None}
    monkeypatch.setattr(module, "dataclasses", newer)


def test_a_run_started_before_an_option_existed_resumes_to_the_same_end(tmp_path, monkeypatch):
    from dynlearn.algos import online

    sac = agents.get("sac")
    agent_cfg = sac.Config(hidden=(16, 16), batch_size=32)
    cfg = OnlineConfig(task="Pendulum-v1", steps=500, start_steps=150, update_every=50, eval_every=250, eval_episodes=1,
                       snapshot_every=0, checkpoint_every=200)
    train_online(cfg, tmp_path / "full", agent_config=agent_cfg, log=_quiet)
    train_online(cfg, tmp_path / "old", agent_config=agent_cfg, until=300, log=_quiet)
    _newer_library(monkeypatch, online)
    train_online(cfg, tmp_path / "old", agent_config=agent_cfg, resume=True, log=_quiet)  # its checkpoint is its own
    assert _same_leaves(sac.load(tmp_path / "full" / "final"), sac.load(tmp_path / "old" / "final"))
    assert "added_later" not in json.loads((tmp_path / "old" / "config.json").read_text())["online"]


def test_an_offline_run_started_before_an_option_existed_resumes_to_the_same_end(tmp_path, monkeypatch, pendulum_expert_data):
    from dynlearn.algos import offline

    task, data = pendulum_expert_data
    bc = agents.get("bc")
    cfg = OfflineConfig(agent="bc", steps=400, seeds=1, block=100, eval_every=200, eval_episodes=1, checkpoint_every=200)
    agent_cfg = bc.Config(hidden=(16, 16))
    train_offline(data, task, cfg, tmp_path / "full", agent_config=agent_cfg, log=_quiet)
    train_offline(data, task, cfg, tmp_path / "old", agent_config=agent_cfg, until=200, log=_quiet)
    _newer_library(monkeypatch, offline)
    train_offline(data, task, cfg, tmp_path / "old", agent_config=agent_cfg, resume=True, log=_quiet)
    assert _same_leaves(bc.load(tmp_path / "full" / "seed_0" / "agent"), bc.load(tmp_path / "old" / "seed_0" / "agent"))


@pytest.fixture(scope="module")
def pendulum_expert_data():
    task = dl.tasks.get("Pendulum-v1")
    return task, dl.tasks.collect(task, PendulumSwingUp(), steps=4000, seed=0, name="pendulum-controller")


def test_offline_resume_matches_uninterrupted(tmp_path, pendulum_expert_data):
    task, data = pendulum_expert_data
    bc = agents.get("bc")
    cfg = OfflineConfig(agent="bc", steps=600, seeds=2, block=100, eval_every=300, eval_episodes=1, checkpoint_every=200)
    agent_cfg = bc.Config(hidden=(32, 32))
    train_offline(data, task, cfg, tmp_path / "full", agent_config=agent_cfg, log=_quiet)
    train_offline(data, task, cfg, tmp_path / "killed", agent_config=agent_cfg, until=300, log=_quiet)
    first_s = json.loads((tmp_path / "killed" / "seed_0" / "checkpoint" / "progress.json").read_text())["wall_s"]
    started = time.perf_counter()
    train_offline(data, task, cfg, tmp_path / "killed", agent_config=agent_cfg, resume=True, log=_quiet)
    resumed_s = time.perf_counter() - started
    for seed in (0, 1):
        assert _same_leaves(bc.load(tmp_path / "full" / f"seed_{seed}" / "agent"),
                            bc.load(tmp_path / "killed" / f"seed_{seed}" / "agent"))
    a = json.loads((tmp_path / "full" / "results.json").read_text())
    b = json.loads((tmp_path / "killed" / "results.json").read_text())
    check_results(a)
    assert a["scores"]["per_seed"] == b["scores"]["per_seed"]
    # the seeds' wall times, each from its checkpoint's (so both invocations' for seed 0), are the run's
    walls = [json.loads((tmp_path / "killed" / f"seed_{seed}" / "checkpoint" / "progress.json").read_text())["wall_s"]
             for seed in (0, 1)]
    assert b["wall_time_s"] == pytest.approx(sum(walls)) and walls[0] > first_s and sum(walls) < resumed_s + first_s + 1.0


def test_a_finished_run_given_more_seeds_keeps_its_seeds_and_trains_the_new_ones(tmp_path, pendulum_expert_data):
    task, data = pendulum_expert_data
    bc = agents.get("bc")
    agent_cfg = bc.Config(hidden=(16, 16))
    two = OfflineConfig(agent="bc", steps=200, seeds=2, block=100, eval_every=200, eval_episodes=1, checkpoint_every=200)
    one = OfflineConfig(**{**two.__dict__, "seeds": 1})
    train_offline(data, task, two, tmp_path / "two", agent_config=agent_cfg, log=_quiet)
    train_offline(data, task, one, tmp_path / "grown", agent_config=agent_cfg, log=_quiet)
    seed_0 = tmp_path / "grown" / "seed_0" / "agent"
    written = {p: p.stat().st_mtime_ns for p in seed_0.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="differs"):  # fewer seeds than the run has: refused, not a silent shrink
        train_offline(data, task, one, tmp_path / "two", agent_config=agent_cfg, resume=True, log=_quiet)
    train_offline(data, task, two, tmp_path / "grown", agent_config=agent_cfg, resume=True, log=_quiet)
    assert {p: p.stat().st_mtime_ns for p in seed_0.rglob("*") if p.is_file()} == written  # seed 0 was not trained again
    for seed in (0, 1):
        assert _same_leaves(bc.load(tmp_path / "two" / f"seed_{seed}" / "agent"),
                            bc.load(tmp_path / "grown" / f"seed_{seed}" / "agent"))
    grown = json.loads((tmp_path / "grown" / "results.json").read_text())
    assert grown["scores"]["per_seed"] == json.loads((tmp_path / "two" / "results.json").read_text())["scores"]["per_seed"]
    assert json.loads((tmp_path / "grown" / "config.json").read_text())["offline"]["seeds"] == 2
    kept = json.loads((tmp_path / "grown" / "results-1-seeds.json").read_text())
    assert kept["scores"]["per_seed"] == grown["scores"]["per_seed"][:1]


def test_offline_bc_imitates_a_good_controller(tmp_path, pendulum_expert_data):
    task, data = pendulum_expert_data
    cfg = OfflineConfig(agent="bc", steps=3000, seeds=1, block=500, eval_every=3000, eval_episodes=5, checkpoint_every=3000)
    out = train_offline(data, task, cfg, tmp_path / "bc", log=_quiet)
    results = json.loads((out / "results.json").read_text())
    assert results["scores"]["mean"] > 70  # the controller scores ~100, random ~0


def test_offline_stop_request_keeps_the_finished_blocks(tmp_path, pendulum_expert_data):
    from dynlearn import interrupt

    task, data = pendulum_expert_data
    bc = agents.get("bc")
    cfg = OfflineConfig(agent="bc", steps=400, seeds=1, block=100, eval_every=100, eval_episodes=1, checkpoint_every=400)
    agent_cfg = bc.Config(hidden=(32, 32))
    train_offline(data, task, cfg, tmp_path / "full", agent_config=agent_cfg, log=_quiet)
    with pytest.raises(interrupt.Stopped, match="step 300"):
        train_offline(data, task, cfg, tmp_path / "stopped", agent_config=agent_cfg,
                      log=lambda line: "step      300" in line and interrupt.request())
    assert json.loads((tmp_path / "stopped" / "seed_0" / "checkpoint" / "progress.json").read_text())["step"] == 300
    train_offline(data, task, cfg, tmp_path / "stopped", agent_config=agent_cfg, resume=True, log=_quiet)
    assert _same_leaves(bc.load(tmp_path / "full" / "seed_0" / "agent"),
                        bc.load(tmp_path / "stopped" / "seed_0" / "agent"))


def test_online_stop_request_checkpoints_at_the_episode_end(tmp_path):
    from dynlearn import interrupt

    sac = agents.get("sac")
    agent_cfg = sac.Config(hidden=(16, 16), batch_size=32)
    cfg = OnlineConfig(task="Pendulum-v1", steps=600, start_steps=150, update_every=50, eval_every=300, eval_episodes=1,
                       checkpoint_every=1000)
    train_online(cfg, tmp_path / "full", agent_config=agent_cfg, log=_quiet)
    with pytest.raises(interrupt.Stopped, match="step 400"):  # requested at the evaluation of step 300: Pendulum's episodes are 200 steps
        train_online(cfg, tmp_path / "stopped", agent_config=agent_cfg, log=lambda line: interrupt.request())
    train_online(cfg, tmp_path / "stopped", agent_config=agent_cfg, resume=True, log=_quiet)
    assert _same_leaves(sac.load(tmp_path / "full" / "final"), sac.load(tmp_path / "stopped" / "final"))


def test_parallel_seeds_train_the_same_seeds_and_write_the_same_folders(tmp_path, pendulum_expert_data):
    """Seeds stacked and vmapped (what pays on a GPU) follow the seeds run in turn, and a run started one way resumes the
    other way."""
    task, data = pendulum_expert_data
    td3bc = agents.get("td3bc")
    cfg = OfflineConfig(agent="td3bc", steps=400, seeds=2, block=100, eval_every=200, eval_episodes=1, checkpoint_every=200)
    agent_cfg = td3bc.Config(hidden=(32, 32), batch_size=64)
    train_offline(data, task, cfg, tmp_path / "turns", agent_config=agent_cfg, log=_quiet)
    train_offline(data, task, cfg, tmp_path / "together", agent_config=agent_cfg, until=200, parallel_seeds=True, log=_quiet)
    train_offline(data, task, cfg, tmp_path / "together", agent_config=agent_cfg, resume=True, parallel_seeds=True, log=_quiet)
    train_offline(data, task, cfg, tmp_path / "mixed", agent_config=agent_cfg, until=200, parallel_seeds=True, log=_quiet)
    train_offline(data, task, cfg, tmp_path / "mixed", agent_config=agent_cfg, resume=True, log=_quiet)  # then in turn
    for run in ("together", "mixed"):
        for seed in (0, 1):
            a = td3bc.load(tmp_path / "turns" / f"seed_{seed}" / "agent")
            b = td3bc.load(tmp_path / run / f"seed_{seed}" / "agent")
            for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
        results = json.loads((tmp_path / run / "results.json").read_text())
        check_results(results)
        assert len(results["scores"]["per_seed"]) == 2
    # the two seeds differ (their own keys), as in turn
    s0, s1 = (td3bc.load(tmp_path / "together" / f"seed_{k}" / "agent") for k in (0, 1))
    assert not np.allclose(np.asarray(jax.tree_util.tree_leaves(s0)[0]), np.asarray(jax.tree_util.tree_leaves(s1)[0]))


def test_seeds_continue_together_only_from_one_step(tmp_path):
    from dynlearn.training import require_same_step

    require_same_step([200, 200, 200], tmp_path)
    with pytest.raises(ConfigError, match="different steps"):
        require_same_step([200, None], tmp_path)  # a seed without a checkpoint beside one at 200
