import jax
import numpy as np
import pytest

import dynlearn as dl
from dynlearn.errors import DataError
from tests.helpers import episodes_arrays


def _dataset(n_episodes=30, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, n_episodes)
    a = episodes_arrays(lengths=tuple(lengths), ends=("terminal",) * n_episodes, seed=seed)
    return dl.data.from_arrays(obs=a["observations"], act=a["actions"], rew=a["rewards"], terminal=a["terminals"],
                               timeout=a["timeouts"], next_obs=a["next_observations"])


def test_split_by_whole_episodes():
    ds = _dataset(30)
    train, hold = ds.split(0.1, seed=1)
    assert hold.n_episodes == 10 and train.n_episodes == 20  # at least 10 holdout episodes
    assert len(train) + len(hold) == len(ds)
    # every holdout episode is a whole episode of the original: its first obs starts at 100*e
    assert set(np.asarray(hold.transitions.obs[hold.episode_starts, 0] // 100)).isdisjoint(
        np.asarray(train.transitions.obs[train.episode_starts, 0] // 100))
    again, _ = ds.split(0.1, seed=1)
    assert again.content_hash() == train.content_hash()
    big_train, big_hold = _dataset(300).split(0.2)
    assert big_hold.n_episodes == 60


def test_split_needs_two_episodes():
    a = episodes_arrays(lengths=(5,), ends=("cut",))
    ds = dl.data.from_arrays(obs=a["observations"], act=a["actions"], rew=a["rewards"], terminal=a["terminals"])
    with pytest.raises(DataError, match="cannot be split"):
        ds.split()


def test_sample_is_jittable_and_deterministic(key):
    t = _dataset().transitions.to_device()
    batch = jax.jit(dl.data.sample, static_argnums=1)(t, 64, key=key)
    again = dl.data.sample(t, 64, key=key)
    assert batch.obs.shape == (64, 3) and batch.terminal.dtype == bool
    np.testing.assert_array_equal(batch.obs, again.obs)
    # every sampled row is a row of the data
    rows = {tuple(r) for r in np.asarray(t.obs)}
    assert all(tuple(r) in rows for r in np.asarray(batch.obs))


def test_normalizer():
    x = np.random.default_rng(0).normal(3.0, 2.0, (1000, 4)).astype(np.float32)
    x[:, 3] = 7.0
    norm = dl.data.Normalizer.fit(x)
    z = np.asarray(norm(x))
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z[:, :3].std(0), 1, atol=1e-3)
    np.testing.assert_allclose(z[:, 3], 0)  # constant feature passes through finite
    np.testing.assert_allclose(np.asarray(norm.inverse(z)), x, atol=1e-5)


def test_summary_finds_problems():
    a = episodes_arrays(lengths=(5, 7, 4), ends=("terminal", "terminal", "cut"))
    # a second episode glued to the first without a flag: next_obs no longer matches the next row
    a["terminals"][4] = False
    ds = dl.data.from_arrays(obs=a["observations"], act=a["actions"], rew=a["rewards"], terminal=a["terminals"],
                             next_obs=a["next_observations"])
    s = dl.data.summarize(ds)
    assert s.episodes == 2 and s.complete_episodes == 1 and s.terminals == 1
    text = " ".join(s.problems)
    assert "last episode" in text and "not the next row" in text and "row 4" in text
    clean = dl.data.summarize(_dataset(5))
    assert clean.problems == [] and clean.without_successor == 0


# ----- issue 21, item 8: a dataset with no usable transition -----------------------------------------------------------
@pytest.mark.parametrize("n, timeouts, cause", [(1, False, "one row"), (6, True, "flagged terminal or timeout")])
def test_no_usable_transition_is_reported_and_refused(n, timeouts, cause):
    from dynlearn.data.dataset import check_trainable

    rng = np.random.default_rng(0)
    ds = dl.data.from_arrays(obs=rng.normal(size=(n, 2)), act=rng.normal(size=(n, 1)), rew=np.ones(n), terminal=np.zeros(n, bool),
                             timeout=np.full(n, timeouts), source="few.hdf5")
    problems = dl.data.summarize(ds).problems
    assert any(p.startswith("no usable transition, so nothing can be trained on it") and cause in p for p in problems), problems
    with pytest.raises(DataError, match=f"few.hdf5: has no usable transition: .*{cause}.*Fix:"):
        check_trainable(ds)


def test_terminal_rows_are_usable_but_fit_no_model():
    from dynlearn.data.dataset import check_trainable

    ds = dl.data.from_arrays(obs=np.arange(6.0).reshape(3, 2), act=np.zeros((3, 1)), rew=np.ones(3), terminal=np.ones(3, bool))
    check_trainable(ds)  # a terminal row needs no successor: model-free agents can learn from it
    with pytest.raises(DataError, match="has no usable transition: none of its 3 step"):
        check_trainable(ds, successors=True)
    assert any(p.startswith("no dynamics model can be fitted to it") for p in dl.data.summarize(ds).problems)
    assert not any("usable" in p for p in dl.data.summarize(_dataset()).problems)
