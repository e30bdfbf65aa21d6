"""shPLRNN, clipped shPLRNN and AL-RNN: parameter counts, hand-computed steps, Jacobians, bounds, save/load."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import ConfigError, DataError, dsr
from dynlearn.dsr import ALRNN, ShallowPLRNN


def _f32(x):
    return jnp.asarray(np.asarray(x, np.float32))


def test_parameter_counts_and_shapes_match_the_papers(key):
    # GTF paper, Lorenz-63: M = 3, H = 100 -> 2MH + 2M + H = 706 ("about 700 parameters").
    for clipped in (False, True):
        m = ShallowPLRNN.init(3, 3, 100, clipped=clipped, key=key)
        assert m.n_params == 706 == sum(x.size for x in jax.tree_util.tree_leaves(m))
        assert (m.A.shape, m.W1.shape, m.W2.shape, m.h1.shape, m.h2.shape, m.L) == ((3,), (3, 100), (100, 3), (3,), (100,), None)
    m = ShallowPLRNN.init(2, 5, 7, key=key)
    assert m.n_params == 2 * 5 * 7 + 2 * 5 + 7 and m.L.shape == (3, 2) and m.n_observation_params == 6
    # AL-RNN: M^2 + 2M (A, W, h); Lorenz-63 setting M = 20 -> 440; L is (M - N) x N.
    a = ALRNN.init(3, 20, 2, key=key)
    assert a.n_params == 440 and a.n_observation_params == 17 * 3
    assert sum(x.size for x in jax.tree_util.tree_leaves(a)) == 440 + 51


def test_initialisation_follows_the_reference_code(key):
    m = ShallowPLRNN.init(3, 3, 100, clipped=False, key=key)
    a = np.asarray(m.A)
    assert np.all(a > 0) and np.all(a <= 1 + 1e-6)  # diagonal of a PD matrix scaled to largest eigenvalue 1
    assert np.abs(np.asarray(m.W1)).max() <= 1 / np.sqrt(100) and np.abs(np.asarray(m.W2)).max() <= 1 / np.sqrt(3)
    assert np.all(np.asarray(m.h1) == 0) and np.all(np.asarray(m.h2) == 0)
    c = ShallowPLRNN.init(3, 3, 100, clipped=True, key=key)
    assert np.abs(np.asarray(c.h2)).max() <= 0.1 and np.asarray(c.h2).std() > 0.03
    al = ALRNN.init(3, 30, 4, key=key)
    assert 0.005 < float(np.asarray(al.W).std()) < 0.015 and np.all(np.asarray(al.h) == 0)


def test_shplrnn_steps_as_hand_computed():
    a, w1, w2 = [0.5, -0.2], [[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]], [[1.0, 1.0], [2.0, -1.0], [-1.0, 0.5]]
    h1, h2 = [0.1, -0.1], [0.0, -1.0, 0.5]
    common = {"A": _f32(a), "W1": _f32(w1), "W2": _f32(w2), "h1": _f32(h1), "h2": _f32(h2), "L": None, "obs_dim": 2,
              "latent_dim": 2, "hidden_dim": 3}
    z = _f32([1.0, 2.0])
    # W2 z = (3, 0, 0); + h2 = (3, -1, 0.5); relu = (3, 0, 0.5); W1 @ = (3 + 1, 0.5) = (4, 0.5)
    # A z = (0.5, -0.4); + h1 -> (4.6, 0.0)
    plain = ShallowPLRNN(**common, clipped=False)
    np.testing.assert_allclose(np.asarray(plain.step(z)), [4.6, 0.0], atol=1e-6)
    # clipped: relu(W2 z + h2) - relu(W2 z) = (3, 0, 0.5) - (3, 0, 0) = (0, 0, 0.5); W1 @ = (1, 0.5)
    clipped = ShallowPLRNN(**common, clipped=True)
    np.testing.assert_allclose(np.asarray(clipped.step(z)), [1.6, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(plain.step(z, forcing=_f32([1.0, -1.0]))), [5.6, -1.0], atol=1e-6)


def test_alrnn_steps_as_hand_computed():
    # M = 3, P = 1: phi(z) = (z1, z2, relu(z3)).
    model = ALRNN(A=_f32([0.5, 0.5, 0.5]), W=_f32([[0, 1, 1], [1, 0, 0], [0, 0, 2]]), h=_f32([0.0, 1.0, 0.0]), L=None,
                  obs_dim=3, latent_dim=3, pwl_units=1)
    # z = (1, -2, -3): phi = (1, -2, 0); W phi = (-2, 1, 0); A z = (0.5, -1, -1.5); + h -> (-1.5, 1.0, -1.5)
    np.testing.assert_allclose(np.asarray(model.step(_f32([1, -2, -3]))), [-1.5, 1.0, -1.5], atol=1e-6)
    # z = (1, -2, 3): phi = (1, -2, 3); W phi = (1, 1, 6); A z = (0.5, -1, 1.5) -> (1.5, 1.0, 7.5)
    np.testing.assert_allclose(np.asarray(model.step(_f32([1, -2, 3]))), [1.5, 1.0, 7.5], atol=1e-6)
    linear = dataclasses.replace(model, pwl_units=0)  # P = 0: a linear map; the negative unit passes through
    np.testing.assert_allclose(np.asarray(linear.step(_f32([1, -2, -3]))), [-4.5, 1.0, -7.5], atol=1e-6)


@pytest.mark.parametrize("kind", ["shplrnn", "clipped_shplrnn", "alrnn"])
def test_closed_form_jacobian_matches_autodiff(kind, key):
    model = dsr.build_model(kind, 2, 6, hidden_dim=20, pwl_units=3, key=key)
    z = jax.random.normal(jax.random.key(3), (5, 6))
    np.testing.assert_allclose(np.asarray(jax.vmap(model.jacobian)(z)), np.asarray(jax.vmap(jax.jacfwd(model.step))(z)), atol=1e-5)


def test_generate_free_runs_the_map_and_encodes_unobserved_units(key):
    model = ShallowPLRNN.init(2, 4, 10, key=key)
    x0 = _f32([0.3, -0.7])
    z0 = model.encode(x0)
    np.testing.assert_allclose(np.asarray(z0), np.concatenate([[0.3, -0.7], np.asarray(model.L) @ [0.3, -0.7]]), atol=1e-6)
    zs = np.asarray(model.generate(6, x0=x0, latent=True))
    assert zs.shape == (6, 4)
    z = z0
    for t in range(6):
        np.testing.assert_allclose(zs[t], np.asarray(z), rtol=1e-5, atol=1e-6)
        z = model.step(z)
    xs = np.asarray(model.generate(6, z0=z0))
    np.testing.assert_allclose(xs, zs[:, :2], rtol=1e-6)
    # encode / step / observe also take leading batch axes
    batch = jnp.asarray(zs)
    np.testing.assert_allclose(np.asarray(model.step(batch)), np.asarray(jax.vmap(model.step)(batch)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(model.encode(batch[:, :2])), np.asarray(jax.vmap(model.encode)(batch[:, :2])), rtol=1e-6)
    assert model.observe(batch).shape == (6, 2)
    with pytest.raises(ConfigError, match="exactly one start"):
        model.generate(3)
    with pytest.raises(ConfigError, match="x0 has shape"):
        model.generate(3, x0=_f32([1.0, 2.0, 3.0]))


def test_clipped_shplrnn_orbits_stay_bounded_when_A_contracts(key):
    # |relu(a + h2) - relu(a)| <= |h2| elementwise, so |z'| <= a_max |z| + |W1|_2 |h2| + |h1|: orbits stay inside
    # max(|z0|, c / (1 - a_max)) whatever the weights (the clipped shPLRNN's boundedness, Hess et al. 2023).
    k1, k2, k3, k4 = jax.random.split(key, 4)
    m = ShallowPLRNN(A=jnp.full((3,), 0.9, jnp.float32), W1=3.0 * jax.random.normal(k1, (3, 50)), W2=3.0 * jax.random.normal(k2, (50, 3)),
                     h1=jax.random.normal(k3, (3,)), h2=jax.random.normal(k4, (50,)), L=None, obs_dim=3, latent_dim=3,
                     hidden_dim=50, clipped=True)
    c = float(np.linalg.norm(np.asarray(m.W1), 2) * np.linalg.norm(np.asarray(m.h2)) + np.linalg.norm(np.asarray(m.h1)))
    z0 = _f32([50.0, -80.0, 30.0])
    bound = max(float(jnp.linalg.norm(z0)), c / (1 - 0.9))
    norms = np.linalg.norm(np.asarray(m.generate(5000, z0=z0, latent=True)), axis=1)
    assert np.isfinite(norms).all() and norms.max() <= bound * (1 + 1e-5)
    jacobians = np.asarray(jax.vmap(m.jacobian)(jax.random.normal(key, (20, 3))))
    assert float(m.norm_upper_bound()) >= np.linalg.norm(jacobians, 2, axis=(1, 2)).max()


def test_bad_sizes_are_rejected(key):
    with pytest.raises(ConfigError, match="latent_dim 2 is below the data dimension 3"):
        ShallowPLRNN.init(3, 2, 10, key=key)
    with pytest.raises(ConfigError, match="pwl_units"):
        ALRNN.init(3, 4, 5, key=key)
    with pytest.raises(ConfigError, match="unknown DSR model"):
        dsr.build_model("lstm", 3, 3, key=key)


@pytest.mark.parametrize("kind", ["clipped_shplrnn", "alrnn"])
def test_save_load_round_trips_exactly(kind, key, tmp_path):
    model = dsr.build_model(kind, 3, 5, hidden_dim=12, pwl_units=2, key=key)
    cfg = dsr.FitDSRConfig(model=kind, latent_dim=5, hidden_dim=12, iterations=10)
    dsr.save(tmp_path / "m", model, config=cfg)
    loaded = dsr.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.header() == model.header()
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x0 = _f32([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(np.asarray(model.generate(50, x0=x0)), np.asarray(loaded.generate(50, x0=x0)))
    assert dsr.read_config(tmp_path / "m") == cfg


def test_load_rejects_edited_checkpoints(key, tmp_path):
    dsr.save(tmp_path / "m", ShallowPLRNN.init(3, 3, 8, key=key))
    assert dsr.read_config(tmp_path / "m") is None
    path = tmp_path / "m" / "config.json"
    header = json.loads(path.read_text())
    header["config"]["hidden_dim"] = 9
    path.write_text(json.dumps(header))
    with pytest.raises(DataError, match="leaf shapes"):
        dsr.load(tmp_path / "m")
    header["config"]["model"] = "lstm"
    path.write_text(json.dumps(header))
    with pytest.raises(DataError, match="not a DSR model checkpoint"):
        dsr.load(tmp_path / "m")
