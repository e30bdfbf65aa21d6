import gymnasium as gym
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn.errors import ConfigError

BUILTIN = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "InvertedPendulum-v5", "Pendulum-v1", "Reacher-v5"]


def test_builtin_tasks_match_their_environments():
    assert set(BUILTIN) <= set(dl.tasks.ids())
    for task_id in BUILTIN:
        task = dl.tasks.get(task_id)
        env = gym.make(task_id)
        assert task.obs_dim == env.observation_space.shape[0] and task.act_dim == env.action_space.shape[0]
        np.testing.assert_allclose(task.act_low, env.action_space.low)
        assert task.max_episode_steps == env.spec.max_episode_steps
        env.close()


def test_lookup_is_case_insensitive_with_aliases():
    assert dl.tasks.get("hopper").id == "Hopper-v5"
    assert dl.tasks.get("HOPPER-V5") is dl.tasks.get("Hopper-v5")
    with pytest.raises(ConfigError, match="Known: .*Hopper-v5"):
        dl.tasks.get("Hoppper-v5")


def test_register_a_users_task():
    def done(obs, act, next_obs):
        return jnp.abs(next_obs[..., 2]) > 7.5

    custom = dl.tasks.register(id="MyPendulum-v0", make=lambda **kw: gym.make("Pendulum-v1", g=9.81, **kw),
                               termination_fn=done, ref_random=-1200.0, ref_expert=-150.0, aliases=("my-pendulum",))
    assert dl.tasks.get("my-pendulum") is custom and custom.obs_dim == 3
    assert custom.normalized_score(-675.0) == pytest.approx(50.0)
    with pytest.raises(ConfigError, match="already registered"):
        dl.tasks.register(custom)
    dl.tasks.register(custom, overwrite=True)


def test_tasks_without_reference_say_so():
    with pytest.raises(ConfigError, match="no reference returns"):
        dl.tasks.get("Ant-v5").normalized_score(100.0)
    assert dl.tasks.get("Hopper-v5").normalized_score(3234.3) == pytest.approx(100.0)
