"""Online MBPO: the rollout-length schedule, the model buffer's branched rollouts, the recent-rows sampler, and a run stopped
and resumed that ends bit-equal to an uninterrupted one (tiny networks, 600 real steps of Pendulum-v1)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import agents, models
from dynlearn.agents.sac import SACConfig
from dynlearn.algos.mbpo_online import (MBPOOnlineConfig, MBPOOnlineJob, RecentRows, model_buffer_capacity, read_checkpoint,
                                        rollout_length, train_mbpo_online)
from dynlearn.data.buffer import ReplayBuffer
from dynlearn.data.transitions import Transitions
from dynlearn.errors import ConfigError
from dynlearn.models import EnsembleConfig
from dynlearn.results import check_results
from dynlearn.tasks import get as get_task

TINY = MBPOOnlineConfig(task="Pendulum-v1", steps=600, start_steps=200, update_every=50, model_train_every=200, epoch_length=200,
                        rollout_schedule=(0, 2, 1, 3), rollout_batch=16, utd=1, eval_every=600, eval_episodes=1, checkpoint_every=300,
                        fit_epochs=2, model=EnsembleConfig(members=3, elites=2, hidden=(8,), weight_decay=(0.0, 0.0)),
                        sac=SACConfig(hidden=(8, 8), batch_size=16))


def _quiet(*_):
    pass


def _same_leaves(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and one stopped at step 550 (its checkpoint: the episode end at 400) then resumed."""
    root = tmp_path_factory.mktemp("mbpo")
    full = train_mbpo_online(TINY, root / "full", log=_quiet)
    assert train_mbpo_online(TINY, root / "killed", until=550, log=_quiet) == {}
    stopped = read_checkpoint(TINY, root / "killed")
    resumed = train_mbpo_online(TINY, root / "killed", resume=True, log=_quiet)
    return root, full, stopped, resumed


def test_a_resumed_run_ends_bit_equal_to_an_uninterrupted_one(runs):
    root, full, stopped, resumed = runs
    assert stopped[1]["step"] == 400
    sac, task = agents.get("sac"), get_task("Pendulum-v1")
    assert _same_leaves(sac.load(root / "full" / "final"), sac.load(root / "killed" / "final"))
    assert _same_leaves(models.load(root / "full" / "model", task=task), models.load(root / "killed" / "model", task=task))
    check_results(resumed)
    assert resumed["scores"]["per_seed"] == full["scores"]["per_seed"] and resumed["method"] == "mbpo-online"
    assert full["extra"]["rollout_lengths"] == [[200, 1], [400, 2], [600, 3]]
    assert not (root / "full" / "checkpoint").exists()


def test_the_model_buffer_holds_branched_rollouts_of_the_scheduled_length(runs):
    _, _, (state, progress), _ = runs
    b = TINY.rollout_batch
    assert progress["rollout_lengths"] == [[200, 1], [400, 2]]  # epochs 0 and 1 of the schedule (0, 2, 1, 3)
    buffer, real = state["model_buffer"], state["real"]
    assert buffer.capacity == model_buffer_capacity(TINY) and int(buffer.size) == b * 1 + b * 2  # Pendulum never terminates
    rows = jax.tree_util.tree_map(np.asarray, buffer.data)
    first, second = slice(b, 2 * b), slice(2 * b, 3 * b)  # the length-2 rollout, time-major after the length-1 one
    np.testing.assert_array_equal(rows.obs[second], rows.next_obs[first])  # each branch continues where it was
    real_obs = np.asarray(real.data.obs)[: int(real.size)]
    for start in np.concatenate([rows.obs[:b], rows.obs[first]]):  # every branch starts at a real state
        assert np.any(np.all(real_obs == start, axis=1))
    assert not rows.terminal[: 3 * b].any() and rows.timeout[first].sum() == 0 and rows.timeout[second].all()


def test_the_rollout_length_follows_the_papers_linear_schedule():
    assert [rollout_length((20, 100, 1, 15), e) for e in (0, 20, 25, 60, 99, 100, 500)] == [1, 1, 1, 8, 14, 15, 15]
    assert {rollout_length((20, 100, 1, 1), e) for e in range(0, 300, 7)} == {1}
    hopper, cheetah = MBPOOnlineConfig.preset("hopper"), MBPOOnlineConfig.preset("halfcheetah")
    assert (hopper.rollout_schedule, hopper.utd, hopper.rollout_batch, hopper.real_ratio, hopper.model_train_every) == \
        ((20, 100, 1, 15), 20, 100_000, 0.05, 250)
    assert (cheetah.rollout_schedule, cheetah.utd, cheetah.sac.target_entropy, cheetah.steps) == ((20, 100, 1, 1), 40, -3.0, 400_000)
    with pytest.raises(ConfigError, match="rollout_schedule"):
        MBPOOnlineConfig(rollout_schedule=(100, 20, 1, 15))
    with pytest.raises(ConfigError, match="multiple of update_every"):
        MBPOOnlineConfig(start_steps=520)
    with pytest.raises(ConfigError, match="fitting.batch_size"):  # a first fit on fewer rows than half a batch
        MBPOOnlineConfig(start_steps=100)


def test_sac_batches_draw_model_rows_from_the_recent_window_only():
    buffer = ReplayBuffer.empty(10, 1, 1)
    for i in range(13):  # 13 rows into 10: the cursor is at 3, the newest rows hold 12, 11, 10, 9
        buffer = buffer.add(Transitions(obs=jnp.full((1, 1), float(i)), act=jnp.zeros((1, 1)), rew=jnp.zeros(1),
                                        next_obs=jnp.zeros((1, 1)), terminal=jnp.zeros(1, bool), timeout=jnp.zeros(1, bool),
                                        next_obs_valid=jnp.ones(1, bool)))
    rows = RecentRows(buffer.data, 512, buffer.size, buffer.cursor, jnp.asarray(4, jnp.int32))(key=jax.random.key(0))
    assert set(np.asarray(rows.obs[:, 0]).tolist()) == {9.0, 10.0, 11.0, 12.0}


def test_the_job_is_a_command_line(tmp_path):
    from dynlearn.cli.parsing import parse

    job = parse(MBPOOnlineJob, ["--task", "Hopper-v5", "--utd", "3", "--rollout-schedule", "20", "100", "1", "15", "--sac.hidden",
                                "64", "64", "--out", str(tmp_path / "run")], prog="dynlearn train mbpo-online")
    assert (job.config.utd, job.config.rollout_schedule, job.config.sac.hidden) == (3, (20, 100, 1, 15), (64, 64))
    with pytest.raises(ConfigError, match="update_every"):
        parse(MBPOOnlineJob, ["--start-steps", "30"], prog="dynlearn train mbpo-online")
    assert json.loads(json.dumps(job.config.to_dict()))["rollout_schedule"] == [20, 100, 1, 15]  # config.json's record
