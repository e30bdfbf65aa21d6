"""Termination and reward functions agree with Gymnasium v5 on real transitions, terminal ones included."""

import numpy as np
import pytest

import dynlearn as dl


def _transitions(task_id, steps, seed=0):
    task = dl.tasks.get(task_id)
    return task, dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=steps, seed=seed).transitions


@pytest.mark.parametrize("task_id", ["Hopper-v5", "Walker2d-v5", "Ant-v5", "InvertedPendulum-v5", "HalfCheetah-v5", "Pendulum-v1",
                                     "Reacher-v5"])
def test_termination_matches_environment(task_id):
    task, t = _transitions(task_id, 1500)
    predicted = np.asarray(task.termination_fn(t.obs, t.act, t.next_obs))
    assert predicted.shape == t.terminal.shape
    np.testing.assert_array_equal(predicted, t.terminal)
    if task_id in ("Hopper-v5", "Walker2d-v5", "InvertedPendulum-v5"):
        assert t.terminal.sum() >= 10  # the check covers terminal transitions, not only healthy ones


@pytest.mark.parametrize("task_id", ["InvertedPendulum-v5", "Pendulum-v1", "Reacher-v5"])
def test_reward_function_matches_environment(task_id):
    task, t = _transitions(task_id, 1500)
    np.testing.assert_allclose(np.asarray(task.reward_fn(t.obs, t.act, t.next_obs)), t.rew, rtol=1e-4, atol=1e-4)


def test_functions_are_vectorised_over_leading_axes():
    task = dl.tasks.get("Hopper-v5")
    obs = np.zeros((4, 5, 11), np.float32)
    obs[..., 0] = 1.25
    out = task.termination_fn(obs, np.zeros((4, 5, 3), np.float32), obs)
    assert out.shape == (4, 5) and not np.asarray(out).any()
