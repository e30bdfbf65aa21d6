"""``dl.algos.train(cfg, data, task, out=...)`` runs the trainer the config's type names, and refuses what does not fit."""

import json

import jax
import pytest

import dynlearn as dl
from dynlearn.errors import ConfigError


@pytest.fixture(scope="module")
def pendulum():
    task = dl.tasks.get("Pendulum-v1")
    data = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=1000, seed=0, name="pendulum-random")
    cfg = dl.models.EnsembleConfig(members=3, elites=2, hidden=(16, 16), weight_decay=(2.5e-5, 5e-5, 1e-4))
    model, _ = dl.models.fit(cfg, data, key=jax.random.key(0), cfg=dl.models.FitConfig(max_epochs=3, progress=False), task=task)
    return data, model


def test_train_dispatches_on_the_config_type(tmp_path, pendulum):
    data, model = pendulum
    sac = dl.agents.get("sac").Config(hidden=(16, 16), batch_size=32)
    cfg = dl.algos.MBPOConfig(steps=100, seeds=1, rollout_batch=50, rollout_every=100, eval_every=100, checkpoint_every=100,
                              eval_episodes=1)
    out = dl.algos.train(cfg, data, "Pendulum-v1", out=tmp_path / "mbpo", model=model, agent_config=sac, log=lambda _: None)
    assert json.loads((out / "results.json").read_text())["method"] == "mbpo" and dl.algos.load_config(out) == cfg
    offline = dl.algos.OfflineConfig(agent="bc", steps=100, seeds=1, block=100, eval_every=100, checkpoint_every=100, eval_episodes=1)
    out = dl.algos.train(offline, data, out=tmp_path / "bc", log=lambda _: None)  # the task the dataset records
    assert json.loads((out / "results.json").read_text())["method"] == "bc"


def test_train_refuses_what_the_config_does_not_take(tmp_path, pendulum):
    data, _ = pendulum
    with pytest.raises(ConfigError, match="takes no data and no task"):
        dl.algos.train(dl.algos.OnlineConfig(task="Pendulum-v1"), data, out=tmp_path / "sac")
    with pytest.raises(ConfigError, match="trains on a dataset"):
        dl.algos.train(dl.algos.MOPOConfig(), out=tmp_path / "mopo")
    with pytest.raises(ConfigError, match="no trainer's config"):
        dl.algos.train(dl.models.FitConfig(), data, out=tmp_path / "fit")
    assert not any(tmp_path.iterdir())
