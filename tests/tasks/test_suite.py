"""The suite: behaviour policies chosen from an online run, exported small, datasets regenerated deterministically."""

import json

import numpy as np
import pytest

from dynlearn import agents
from dynlearn.algos.online import OnlineConfig, train_online
from dynlearn.errors import ConfigError
from dynlearn.tasks import suite


@pytest.fixture
def pendulum_suite(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "POLICY_DIR", tmp_path / "policies")
    monkeypatch.setitem(suite.TASKS, "pendulum", "Pendulum-v1")
    cfg = OnlineConfig(task="Pendulum-v1", steps=1000, start_steps=200, update_every=50, eval_every=200, eval_episodes=2,
                       snapshot_every=200, checkpoint_every=1000)
    run = train_online(cfg, tmp_path / "run", agent_config=agents.get("sac").Config(hidden=(16, 16), batch_size=32), log=lambda _: None)
    info = suite.build_policies(run, "pendulum", eval_episodes=2, log=lambda _: None)
    return info


def test_policies_are_chosen_and_exported(pendulum_suite, tmp_path):
    info = pendulum_suite
    candidates = info["expert"]["candidates"]
    assert candidates[0]["step"] == 1000 and len(candidates) == 4  # the final policy and the 3 best snapshots
    assert info["expert"]["return_mean"] == max(c["return_mean"] for c in candidates)
    assert 200 <= info["medium"]["step"] < 1000 and info["medium"]["step"] != info["expert"]["step"]
    # replay snapshots cover [start_steps, medium step) in snapshot_every pieces
    steps = [r["step"] for r in info["replay"]]
    assert steps == list(range(200, info["medium"]["step"], 200))
    assert json.loads((tmp_path / "policies" / "pendulum" / "manifest.json").read_text()) == json.loads(json.dumps(info))
    assert "pendulum-medium-replay-v5" in suite.names()


def test_datasets_regenerate_deterministically(pendulum_suite):
    info = pendulum_suite
    medium = suite.generate("pendulum-medium-v5", steps=400)
    again = suite.generate("pendulum-medium-v5", steps=400)
    assert len(medium) == 400 and medium.content_hash() == again.content_hash()
    assert medium.task == "Pendulum-v1" and medium.metadata["suite_tier"] == "medium"
    replay = suite.generate("pendulum-medium-replay-v5")
    assert len(replay) == info["medium"]["step"]  # warm-up plus every snapshot's share, as in training
    both = suite.generate("pendulum-medium-expert-v5", steps=400)
    expert = suite.generate("pendulum-expert-v5", steps=400, seed=1)  # medium-expert's second part uses seed + 1
    assert len(both) == 800 and both.n_episodes == medium.n_episodes + expert.n_episodes
    inside = np.setdiff1d(np.arange(len(both)), both.episode_ends - 1)
    np.testing.assert_array_equal(both.transitions.next_obs[inside], both.transitions.obs[inside + 1])


def test_unknown_or_missing_suite_datasets():
    with pytest.raises(ConfigError, match="no behaviour policies"):
        suite.generate("walker2d-medium-v5") if suite.manifest("walker2d") is None else pytest.skip("walker2d policies kept")
    assert suite.parse("hopper-medium-replay-v5") == ("hopper", "medium-replay")
    assert suite.parse("hopper-medium-v4") is None and suite.parse("cartpole-medium-v5") is None
