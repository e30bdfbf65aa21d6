import numpy as np

import dynlearn as dl
from dynlearn.tasks.controllers import PendulumSwingUp, ReacherReach


def test_collection_is_exact_contiguous_and_reproducible():
    task = dl.tasks.get("Hopper-v5")
    a = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=1234, seed=3, num_envs=4)
    b = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=1234, seed=3, num_envs=4)
    c = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=1234, seed=4, num_envs=4)
    assert len(a) == 1234 and a.content_hash() == b.content_hash() != c.content_hash()
    t = a.transitions
    assert a.episode_complete.all()  # every episode ends terminal, truncated or cut by the budget (as timeout)
    inside = np.setdiff1d(np.arange(len(a)), a.episode_ends - 1)
    np.testing.assert_array_equal(t.next_obs[inside], t.obs[inside + 1])
    # simulator state before each step reproduces the observation (Hopper drops x and clips velocities)
    qpos, qvel = a.metadata["qpos"], a.metadata["qvel"]
    assert qpos.shape == (1234, 6) and qvel.shape == (1234, 6)
    np.testing.assert_allclose(t.obs, np.concatenate([qpos[:, 1:], np.clip(qvel, -10, 10)], axis=1), atol=1e-5)


def test_timeouts_are_not_terminals():
    task = dl.tasks.get("Pendulum-v1")
    ds = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=450, seed=0, num_envs=1)
    np.testing.assert_array_equal(np.flatnonzero(ds.transitions.timeout), [199, 399, 449])
    assert not ds.transitions.terminal.any()


def test_evaluate_scores_controller_above_random():
    task = dl.tasks.get("Pendulum-v1")
    controller = dl.tasks.evaluate(PendulumSwingUp(), task, episodes=6, key=0)
    random = dl.tasks.evaluate(dl.tasks.RandomPolicy(task), task, episodes=6, key=0)
    assert controller.returns.shape == (6,) and (controller.lengths == 200).all()
    assert controller.normalized_mean > 80 and random.normalized_mean < 20
    again = dl.tasks.evaluate(dl.tasks.RandomPolicy(task), task, episodes=6, key=0)
    np.testing.assert_array_equal(again.returns, random.returns)



def test_the_reacher_controller_brings_the_fingertip_toward_the_target():
    """Reacher-v5's controller ends its episodes with the fingertip at under half its starting distance from the target
    (measured: 0.05 against 0.17 on these 10 episodes; its return: benchmarks/README.md, -5.6 against the zero action's
    -11.3 and random's -42.5)."""
    task = dl.tasks.get("Reacher-v5")
    data = dl.tasks.collect(task, ReacherReach(), steps=500, seed=0, num_envs=1)  # 10 whole episodes
    distance = np.linalg.norm(np.asarray(data.transitions.next_obs)[:, 8:10], axis=1).reshape(10, 50)
    assert distance[:, -1].mean() < 0.5 * distance[:, 0].mean()
    assert (distance[:, -1] < distance[:, 0]).sum() >= 9


def test_evaluate_accepts_jax_keys(key):
    task = dl.tasks.get("InvertedPendulum-v5")
    r = dl.tasks.evaluate(dl.tasks.RandomPolicy(task), task, episodes=3, key=key)
    assert r.returns.shape == (3,) and r.normalized is not None
