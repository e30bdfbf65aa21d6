"""AL-RNN linear subregions: bits, ids, symbolic sequence, counts and transitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import ConfigError, DataError, dsr
from dynlearn.dsr import ALRNN


def test_hand_made_trajectory_is_counted_exactly():
    # M = 3, P = 2: the last two units decide the subregion; unit 0 is linear and ignored.
    z = np.array([
        [9.0, -1.0, -1.0],   # 00 -> 0
        [9.0, -2.0, 0.0],    # 00 -> 0 (exactly 0 counts as off)
        [-9.0, 1.0, -1.0],   # 10 -> 2
        [0.0, 2.0, 3.0],     # 11 -> 3
        [0.0, 2.0, 3.0],     # 11 -> 3
        [0.0, 0.5, 0.1],     # 11 -> 3
        [0.0, -1.0, 1.0],    # 01 -> 1
        [0.0, 1.0, 1.0],     # 11 -> 3
    ])
    stats = dsr.subregion_stats(z, 2)
    assert stats.ids.tolist() == [0, 0, 2, 3, 3, 3, 1, 3]
    assert dsr.subregion_bits(z, 2)[2].tolist() == [True, False]
    assert stats.symbols.tolist() == [0, 2, 3, 1, 3] and stats.dwell.tolist() == [2, 1, 3, 1, 1]
    assert stats.regions.tolist() == [3, 0, 1, 2] and stats.counts.tolist() == [4, 2, 1, 1]  # ties: smaller id first
    assert stats.n_regions == 4 and stats.n_crossings == 4
    np.testing.assert_allclose(stats.occupancy, [0.5, 0.25, 0.125, 0.125])
    # transitions[i, j]: steps from regions[i] to regions[j] (order 3, 0, 1, 2)
    expected = np.zeros((4, 4), int)
    for a, b in [(0, 0), (0, 2), (2, 3), (3, 3), (3, 3), (3, 1), (1, 3)]:
        expected[stats.regions.tolist().index(a), stats.regions.tolist().index(b)] += 1
    np.testing.assert_array_equal(stats.transitions, expected)
    assert stats.transitions.sum() == len(z) - 1
    assert stats.bits(2) == (1, 0) and dsr.id_to_bits(1, 2) == (0, 1)


def test_model_visits_at_most_two_to_the_p_subregions(key):
    model = ALRNN.init(3, 6, 3, key=key)
    states = jax.random.normal(key, (4000, 6)) * 2.0  # all sign patterns of the 3 PWL units occur
    stats = dsr.subregion_stats(np.asarray(states), model)
    assert stats.n_regions == 2**3 and set(stats.regions.tolist()) == set(range(8))


def test_a_rotating_alrnn_cycles_through_its_four_subregions():
    # Units 1-2 rotate by 30 degrees per step (a neutrally stable circle); the two PWL units copy them with a lag of
    # one step, so their sign pattern walks through the quadrants: 11 (id 3) -> 01 (1) -> 00 (0) -> 10 (2), three
    # steps each (four for the first, which also holds the start). Nothing feeds back from the PWL units.
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    w = np.array([[c, -s, 0, 0], [s, c, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], np.float32)
    model = ALRNN(A=jnp.zeros(4, jnp.float32), W=jnp.asarray(w), h=jnp.zeros(4, jnp.float32), L=jnp.eye(2, dtype=jnp.float32),
                  obs_dim=2, latent_dim=4, pwl_units=2)
    phi0 = np.pi / 12
    traj = np.asarray(model.generate(1201, x0=jnp.asarray([np.cos(phi0), np.sin(phi0)], jnp.float32), latent=True))
    np.testing.assert_allclose(np.linalg.norm(traj[:, :2], axis=1), 1.0, rtol=1e-4)  # bounded: stays on the circle
    stats = dsr.subregion_stats(traj, model)
    assert stats.n_regions == 4 == 2**model.pwl_units
    assert stats.symbols[:8].tolist() == [3, 1, 0, 2, 3, 1, 0, 2]
    assert stats.dwell[0] == 4 and np.all(stats.dwell[1:-1] == 3)
    assert stats.counts.tolist() == [301, 300, 300, 300]
    # transitions: 3 -> 1 -> 0 -> 2 -> 3, each crossing 100 times; the rest of the steps stay in place.
    order = stats.regions.tolist()
    for a, b in [(3, 1), (1, 0), (0, 2), (2, 3)]:
        assert stats.transitions[order.index(a), order.index(b)] in (99, 100)
    assert np.count_nonzero(stats.transitions - np.diag(np.diag(stats.transitions))) == 4


def test_the_map_is_linear_inside_each_subregion(key):
    # Within one subregion the AL-RNN is z' = J_r z + h with the region's constant Jacobian J_r.
    model = ALRNN(A=jnp.asarray([0.9, 0.8, 0.7, 0.6], jnp.float32), W=0.3 * jax.random.normal(key, (4, 4)),
                  h=jnp.asarray([0.1, -0.2, 0.3, 0.0], jnp.float32), L=None, obs_dim=4, latent_dim=4, pwl_units=2)
    z = jax.random.normal(jax.random.key(5), (200, 4))
    nxt, jac = jax.vmap(model.step)(z), jax.vmap(model.jacobian)(z)
    np.testing.assert_allclose(np.asarray(nxt), np.asarray(jnp.einsum("bij,bj->bi", jac, z) + model.h), atol=1e-5)
    ids = dsr.subregion_ids(np.asarray(z), model)
    for r in np.unique(ids):
        same = np.asarray(jac)[ids == r]
        np.testing.assert_allclose(same, np.broadcast_to(same[0], same.shape), atol=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(DataError, match="M >= P"):
        dsr.subregion_ids(np.zeros((5, 2)), 3)
    with pytest.raises(ConfigError, match="P <= 62"):
        dsr.subregion_ids(np.zeros((5, 70)), 63)
    with pytest.raises(DataError, match="1-D"):
        dsr.symbolic_sequence(np.zeros((2, 2)))


def test_many_subregions_keep_no_dense_transition_matrix():
    """An AL-RNN with many PWL units can visit a new subregion at almost every step (P = 50 on Lorenz-96 visited ~10^5):
    the statistics stay small (no [R, R] matrix) and still count crossings and occupancy."""
    from dynlearn.dsr.analysis import MAX_DENSE_REGIONS

    rng = np.random.default_rng(0)
    z = rng.normal(size=(3 * MAX_DENSE_REGIONS, 40))
    stats = dsr.subregion_stats(z, 30)
    assert stats.n_regions > MAX_DENSE_REGIONS and stats.transitions is None
    assert stats.n_crossings == len(z) - 1 and np.isclose(stats.occupancy.sum(), 1.0)
