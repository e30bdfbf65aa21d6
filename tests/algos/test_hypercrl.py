"""HyperCRL: the output regulariser keeps an earlier task's generated weights (and its fit of a known linear system)
while a later task trains, and without it (beta 0) they drift; the continual loop stopped between tasks and resumed
ends where an uninterrupted run does."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn.algos.hypercrl import HyperCRLConfig, forgetting, make_env, train_hypercrl
from dynlearn.errors import ConfigError
from dynlearn.models.hypernet import HyperDynamics, HyperNetConfig, Replay, init_optimizer, train_task
from dynlearn.planning import CEMConfig
from dynlearn.tasks import get as get_task

NET = HyperNetConfig(target_hidden=(16,), hyper_hidden=(16,), embedding_dim=4, lr=3e-3, batch_size=64, beta=0.05)
STEPS = 600


def _linear_tasks(n: int = 512):
    """Two linear systems ``delta = A x + B a`` (2 states, 1 action) with opposite matrices."""
    rng = np.random.default_rng(0)
    a, b = np.array([[0.5, -0.8], [0.9, 0.3]], np.float32), np.array([[1.0], [-0.6]], np.float32)
    data = []
    for sign in (1.0, -1.0):
        s, u = rng.normal(size=(n, 2)).astype(np.float32), rng.normal(size=(n, 1)).astype(np.float32)
        data.append((np.concatenate([s, u], 1), sign * (s @ a.T + u @ b.T)))
    return data


def _error(model: HyperDynamics, task: int, x, y) -> float:
    """Mean squared error of the task's generated network, relative to the targets' variance (1 = the mean predictor)."""
    pred = model.predict(task, jnp.asarray(x[:, :2]), jnp.asarray(x[:, 2:]))
    return float(jnp.mean(jnp.square(pred - y)) / np.mean(np.var(y, axis=0)))


def _second_task(model, data, cfg, replay=None):
    """Train task 1 from the model fitted to task 0; ``(model, drift of task 0's weights relative to their norm)``."""
    before = model.net.all_weights()
    x, y = data[1]
    model = model.with_normalizer(1, x, y)
    model, _, info = train_task(model, init_optimizer(model, cfg), 1, x, y, cfg=cfg, steps=STEPS, key=jax.random.key(2),
                                targets=before, replay=replay)
    drift = float(jnp.linalg.norm(model.net.all_weights()[0] - before[0]) / jnp.linalg.norm(before[0]))
    return model, drift, info


def test_the_regulariser_keeps_an_earlier_task_and_fine_tuning_forgets_it():
    data = _linear_tasks()
    model = HyperDynamics.init(NET, 2, 1, 2, key=jax.random.key(0))
    x0, y0 = data[0]
    model = model.with_normalizer(0, x0, y0)
    model, _, _ = train_task(model, init_optimizer(model, NET), 0, x0, y0, cfg=NET, steps=STEPS, key=jax.random.key(1),
                             targets=model.net.all_weights())
    first = _error(model, 0, x0, y0)
    assert first < 1e-3  # task 0's system fitted (measured: 1e-5)

    kept, kept_drift, info = _second_task(model, data, NET)
    assert info["regularizer"] > 0
    tuned, tuned_drift, _ = _second_task(model, data, dataclasses.replace(NET, beta=0.0))
    replayed, _, _ = _second_task(model, data, dataclasses.replace(NET, beta=0.0),
                                  replay=Replay(jnp.stack([x0, x0]), jnp.stack([y0, y0]), jnp.array([len(x0), 0], jnp.int32)))
    for m in (kept, tuned, replayed):
        assert _error(m, 1, *data[1]) < 0.01  # task 1's system fitted by every method
    assert kept_drift < 0.01 and tuned_drift > 0.1  # measured: 3e-4 and 0.4 (relative to the norm of task 0's weights)
    assert _error(kept, 0, x0, y0) < 1e-3 and _error(replayed, 0, x0, y0) < 1e-3  # measured: 1e-5 and 1e-6
    assert _error(tuned, 0, x0, y0) > 0.05  # fine-tuning forgot task 0 (measured: 0.18)


TINY = HyperCRLConfig(sequence="pendulum-mass", tasks=2, steps_per_task=60, initial_steps=20, train_every=20, train_iters=5,
                      coreset_size=5, eval_episodes=1, model=HyperNetConfig(target_hidden=(8,), hyper_hidden=(8,), batch_size=8),
                      planner=CEMConfig(horizon=3, population=8, elites=2, iterations=1))


def test_a_run_stopped_between_tasks_and_resumed_matches_an_uninterrupted_one(tmp_path):
    full = train_hypercrl(TINY, tmp_path / "full", log=lambda *_: None)
    assert train_hypercrl(TINY, tmp_path / "killed", until=60, log=lambda *_: None) == {}
    assert json.loads((tmp_path / "killed" / "checkpoint" / "progress.json").read_text())["step"] == 60
    resumed = train_hypercrl(TINY, tmp_path / "killed", resume=True, log=lambda *_: None)
    for k in ("returns_after_task", "fits", "episodes", "forgetting"):
        assert resumed["extra"][k] == full["extra"][k], k
    returns = full["extra"]["returns_after_task"]
    assert [len(r) for r in returns] == [1, 2] and full["extra"]["forgetting"] == [returns[0][0] - returns[1][0]]
    assert [f["task"] for f in full["extra"]["fits"]] == [0, 0, 0, 1, 1, 1]
    assert (tmp_path / "full" / "model.eqx").is_file() and not (tmp_path / "full" / "checkpoint").exists()


def test_the_task_sequences_change_the_physics_and_bad_configs_are_refused():
    pendulum = get_task("Pendulum-v1")
    assert make_env(pendulum, {"m": 0.3}).unwrapped.m == pytest.approx(0.3)
    env = make_env(get_task("InvertedPendulum-v5"), {"mass.pole": 4.0, "gear": -1.0})
    base = get_task("InvertedPendulum-v5").make()
    m, m0 = env.unwrapped.model, base.unwrapped.model
    assert m.body_mass[m.body("pole").id] == pytest.approx(4 * m0.body_mass[m0.body("pole").id])
    assert m.actuator_gear[0, 0] == -m0.actuator_gear[0, 0]
    env.close(), base.close()
    assert forgetting([[10.0], [4.0, 8.0], [3.0, 6.0, 9.0]]) == [7.0, 2.0]
    for bad in ({"method": "ewc"}, {"sequence": "cheetah"}, {"tasks": 9}, {"initial_steps": 2_000}):
        with pytest.raises(ConfigError):
            HyperCRLConfig(**bad)
    with pytest.raises(ConfigError, match="no physics parameter"):
        make_env(pendulum, {"mass": 2.0})
