import json

import gymnasium as gym
import numpy as np
import pytest

import dynlearn as dl
from dynlearn.errors import DataError

minari = pytest.importorskip("minari")

# minari 0.5.4's DataCollector.close() removes its TemporaryDirectory with shutil.rmtree, so the
# directory object's finaliser later warns that it was "implicitly cleaned up". Not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore:Implicitly cleaning up:ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture
def minari_dataset(tmp_path):
    """A real Minari dataset written by minari's own DataCollector (Pendulum: episodes truncate at 200)."""
    env = minari.DataCollector(gym.make("InvertedPendulum-v5"))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(rng.uniform(-3, 3, 1).astype(np.float32))
            done = terminated or truncated
        env.reset()
    dataset = env.create_dataset(dataset_id="test/invpend/random-v0", eval_env="InvertedPendulum-v5", algorithm_name="random",
                                 author="tests", author_email="tests@example.com", code_permalink="https://example.com",
                                 description="random InvertedPendulum episodes for tests")
    env.close()
    return dataset


def test_loads_by_id_and_path_and_matches_minari(minari_dataset, tmp_path):
    ds = dl.data.load("test/invpend/random-v0")
    folder = tmp_path / "minari" / "test" / "invpend" / "random-v0"
    assert dl.data.load(folder).content_hash() == ds.content_hash()
    assert len(ds) == minari_dataset.total_steps and ds.n_episodes == minari_dataset.total_episodes
    assert ds.task == "InvertedPendulum-v5" and ds.transitions.next_obs_valid.all()
    for i, episode in enumerate(minari_dataset.iterate_episodes()):
        s, e = ds.episode_starts[i], ds.episode_ends[i]
        np.testing.assert_allclose(ds.transitions.obs[s:e], episode.observations[:-1], rtol=1e-6)
        np.testing.assert_allclose(ds.transitions.next_obs[s:e], episode.observations[1:], rtol=1e-6)
        np.testing.assert_array_equal(ds.transitions.terminal[s:e], episode.terminations)
        np.testing.assert_array_equal(ds.transitions.timeout[s:e], episode.truncations)
        np.testing.assert_allclose(ds.transitions.rew[s:e], episode.rewards)


def test_step_count_mismatch_is_reported(minari_dataset, tmp_path):
    meta_path = tmp_path / "minari" / "test" / "invpend" / "random-v0" / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["total_steps"] += 5
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="total_steps"):
        dl.data.load("test/invpend/random-v0")


def test_unknown_id_is_a_clear_error():
    with pytest.raises(DataError, match="MINARI_DATASETS_PATH"):
        dl.data.load("nobody/nothing-v0")
