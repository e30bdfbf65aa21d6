import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn.data.systems import (
    SYSTEMS,
    Chua,
    Lorenz63,
    Lorenz96,
    Rossler,
    Thomas,
    VanDerPol,
    make_system,
    simulate,
)
from dynlearn.errors import ConfigError


def test_vector_fields_at_known_points():
    np.testing.assert_allclose(Lorenz63().vector_field(jnp.array([1.0, 2.0, 3.0])), [10.0, 1.0 * 25.0 - 2.0, 2.0 - 8.0], rtol=1e-6)
    np.testing.assert_allclose(Rossler().vector_field(jnp.array([1.0, 2.0, 3.0])), [-5.0, 1.4, 0.2 + 3.0 * (1.0 - 5.7)], rtol=1e-6)
    # equilibria: Lorenz C+ = (sqrt(beta (rho-1)), same, rho-1); Lorenz-96 x_i = F; origin of Chua, Thomas, Van der Pol
    c = float(np.sqrt(8.0 / 3.0 * 27.0))
    np.testing.assert_allclose(Lorenz63().vector_field(jnp.array([c, c, 27.0])), 0.0, atol=1e-5)
    np.testing.assert_allclose(Lorenz96(n=7, forcing=3.0).vector_field(jnp.full(7, 3.0)), 0.0, atol=1e-6)
    for system in (Chua(), Thomas(), VanDerPol()):
        np.testing.assert_allclose(system.vector_field(jnp.zeros(system.dim)), 0.0, atol=1e-7)


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_vector_fields_broadcast_over_leading_axes(name):
    system = make_system(name)
    x = jax.random.normal(jax.random.key(0), (4, 5, system.dim))
    batched = system.vector_field(x)
    one = jax.vmap(jax.vmap(system.vector_field))(x)
    assert batched.shape == x.shape
    np.testing.assert_allclose(batched, one, rtol=1e-6)


def test_make_system_rejects_unknown_names_and_parameters():
    assert make_system("Lorenz-96", n=8).dim == 8
    with pytest.raises(ConfigError, match="unknown system"):
        make_system("duffing")
    with pytest.raises(ConfigError, match="parameters"):
        make_system("lorenz63", r=28.0)
    with pytest.raises(ConfigError):
        Lorenz96(n=3)


def test_simulated_lorenz_obeys_its_equations_and_is_reproducible(key):
    ts = simulate("lorenz63", 2000, key=key, n_trajectories=2)
    assert ts.values.shape == (2, 2000, 3) and ts.dt == 0.01 and ts.names == ("x", "y", "z")
    assert ts.provenance["system"] == "lorenz63" and ts.provenance["params"]["rho"] == 28.0
    x = ts.values.astype(np.float64)
    # central differences match the vector field (O(dt^2) ~ 1e-3 relative)
    deriv = (x[:, 2:] - x[:, :-2]) / (2 * ts.dt)
    field = np.asarray(Lorenz63().vector_field(jnp.asarray(x[:, 1:-1], jnp.float32)))
    assert np.sqrt(np.mean((deriv - field) ** 2) / np.mean(field**2)) < 5e-3
    assert not np.allclose(x[0], x[1])  # two initial conditions
    again = simulate("lorenz63", 2000, key=key, n_trajectories=2)
    np.testing.assert_array_equal(again.values, ts.values)
    # on the attractor after the transient: z oscillates around rho - 1, x changes sign
    assert 15 < x[..., 2].mean() < 30 and (x[..., 0] > 0).any() and (x[..., 0] < 0).any()


def test_noise_is_a_fraction_of_each_std_and_standardize(key):
    clean = simulate("lorenz63", 2000, key=key, n_trajectories=2)
    noisy = simulate("lorenz63", 2000, key=key, n_trajectories=2, noise=0.05)
    resid = (noisy.values - clean.values).reshape(-1, 3)
    ratio = resid.std(0) / clean.values.reshape(-1, 3).std(0)
    np.testing.assert_allclose(ratio, 0.05, rtol=0.1)
    z = simulate("lorenz63", 2000, key=key, n_trajectories=2, standardize=True)
    np.testing.assert_allclose(z.values.reshape(-1, 3).mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.values.reshape(-1, 3).std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(z.values * np.array(z.provenance["std"]) + np.array(z.provenance["mean"]), clean.values,
                               rtol=1e-4, atol=1e-3)


def test_simulate_from_given_states_and_other_systems(key):
    x0 = jnp.array([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    ts = simulate(Rossler(), 300, 0.1, key=key, x0=x0, n_trajectories=2, transient=0.0)
    np.testing.assert_allclose(ts.values[:, 0], x0, atol=1e-6)  # no transient: the first sample is x0
    assert ts.dt == 0.1 and np.isfinite(ts.values).all()


@pytest.mark.parametrize("kwargs", [{"T": 1}, {"T": 10, "dt": 0.0}, {"T": 10, "noise": -0.1}, {"T": 10, "transient": -1.0},
                                    {"T": 10, "n_trajectories": 0}, {"T": 10, "x0": jnp.zeros(2)}])
def test_simulate_rejects_bad_arguments(key, kwargs):
    with pytest.raises(ConfigError):
        simulate("lorenz63", key=key, **kwargs)
