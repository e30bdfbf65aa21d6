import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dynlearn.data.systems import Lorenz63, Lorenz96, Rossler
from dynlearn.errors import ConfigError, DataError
from dynlearn.metrics.dsr import (
    RK4FlowMap,
    TrajectoryDivergedError,
    flow_lyapunov_spectrum,
    flow_max_lyapunov,
    is_diverged,
    lyapunov_spectrum,
    max_lyapunov,
    occupancy_gap,
    power_spectrum_distance,
    prediction_error,
    state_space_divergence,
)

LORENZ_LAMBDA = 0.9056  # Sprott 2003, sigma=10, rho=28, beta=8/3
ROSSLER_LAMBDA = 0.0714  # Sprott 2003, a=b=0.2, c=5.7


def _orbit(step, x0, T, skip=500):
    """``T`` states of the map ``step`` after ``skip`` transient steps (no diffrax: fast to compile)."""
    x = lax.fori_loop(0, skip, lambda i, x: step(x), jnp.asarray(x0, jnp.float32))
    return np.asarray(lax.scan(lambda x, _: (step(x), x), x, None, length=T)[1])


@pytest.fixture(scope="module")
def lorenz_pair():
    """Two standardised Lorenz-63 orbits from different initial states, and a Rössler orbit (dt 0.01 / 0.1)."""
    step = RK4FlowMap(Lorenz63().vector_field, 0.01)
    a = _orbit(step, [1.0, 1.0, 20.0], 60_000)
    b = _orbit(step, [-5.0, 3.0, 30.0], 60_000)
    r = _orbit(RK4FlowMap(Rossler().vector_field, 0.1), [1.0, 1.0, 0.0], 60_000)
    z = lambda x: (x - a.mean(0)) / a.std(0)
    return z(a), z(b), (r - r.mean(0)) / r.std(0)


# ----- D_stsp ------------------------------------------------------------------------------------------
def test_identical_data_gives_zero(lorenz_pair):
    a = lorenz_pair[0]
    assert state_space_divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    assert power_spectrum_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    wide = np.tile(a[:2000], (1, 2))  # 6-d: Gaussian-mixture path, same samples for p and q
    assert state_space_divergence(wide, wide) == pytest.approx(0.0, abs=1e-9)


def test_binned_kl_of_gaussians_matches_the_analytic_value():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(100_000, 1)), rng.normal(size=(100_000, 1)) + 0.5
    assert state_space_divergence(a, b) == pytest.approx(0.125, rel=0.05)  # KL = shift^2 / 2
    a2, b2 = rng.normal(size=(200_000, 2)), rng.normal(size=(200_000, 2)) * np.array([1.0, 1.5])
    analytic = 0.5 * (1 / 2.25 - 1 + np.log(2.25))
    assert state_space_divergence(a2, b2, n_bins=20) == pytest.approx(analytic, rel=0.08)


def test_gmm_kl_of_gaussians_matches_the_analytic_value():
    """At >= 6 dims each point carries a unit-variance Gaussian, so N(0, I) samples give N(0, 2I): the KL
    between N(0, 2I) and N(m, 2I) is |m|^2 / 4 = 1 for |m| = 2."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(10_000, 6))
    b = rng.normal(size=(10_000, 6)) + np.array([2.0, 0, 0, 0, 0, 0])
    d = state_space_divergence(a, b, mc_samples=4000, key=jax.random.key(0))
    assert d == pytest.approx(1.0, rel=0.1)
    assert state_space_divergence(a, b, method="gmm", mc_samples=4000, key=jax.random.key(0)) == d
    same = state_space_divergence(a, rng.normal(size=(10_000, 6)), mc_samples=4000)
    assert abs(same) < 0.05


def test_sparse_binned_kl_equals_the_dense_histogram_formula():
    """The reference's dense recipe: n_bins per dim over [min - 0.1 std, max + 0.1 std] of the true data,
    Laplace smoothing alpha on both histograms, KL(p || q); generated points outside are not counted."""
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(3000, 2)), rng.normal(size=(2000, 2)) * 1.3 + 0.4
    n_bins, alpha = 7, 1e-5
    sd = a.std(0, ddof=1)
    edges = [np.linspace(lo, hi, n_bins + 1) for lo, hi in zip(a.min(0) - 0.1 * sd, a.max(0) + 0.1 * sd)]
    hp, hq = np.histogramdd(a, bins=edges)[0], np.histogramdd(b, bins=edges)[0]
    p = (hp + alpha) / (hp.sum() + alpha * hp.size)
    q = (hq + alpha) / (hq.sum() + alpha * hq.size)
    assert hq.sum() < len(b)  # some generated points fall outside
    dense = float(np.sum(p * np.log(p / q)))
    assert state_space_divergence(a, b, n_bins=n_bins, smoothing=alpha) == pytest.approx(dense, rel=1e-10)


def test_dstsp_separates_attractors(lorenz_pair):
    a, b, r = lorenz_pair
    same, other = state_space_divergence(a, b), state_space_divergence(a, r)
    assert same < 0.3 and other > 5.0


def test_dstsp_binned_counts_only_generated_points_inside_the_box():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(5000, 2))
    far = a + 100.0
    with pytest.raises(TrajectoryDivergedError, match="within the true data's range"):
        state_space_divergence(a, far)
    assert math.isnan(state_space_divergence(a, far, on_diverged="nan"))
    partly = np.concatenate([a, far])  # the outside half is ignored: same occupation as a
    assert state_space_divergence(a, partly) == pytest.approx(0.0, abs=1e-12)


def test_occupancy_gap_counts_the_parts_a_trajectory_misses():
    # Uniform points on [0, 1]^2; a "model" that covers only x < 0.5 misses about half the true mass, and one with
    # a quarter of its points in a far corner outside the box reports them as outside, not spurious.
    rng = np.random.default_rng(3)
    true = rng.uniform(size=(40_000, 2))
    half = true[true[:, 0] < 0.5]
    gap = occupancy_gap(true, half, n_bins=20)
    assert gap["missed"] == pytest.approx(0.5, abs=0.03) and gap["spurious"] == 0.0 and gap["outside"] == 0.0
    corner = np.concatenate([true[:30_000], np.full((10_000, 2), 5.0)])
    gap = occupancy_gap(true, corner, n_bins=20)
    assert gap["missed"] == 0.0 and gap["outside"] == pytest.approx(0.25)
    assert occupancy_gap(true, true)["missed"] == 0.0


# ----- D_H ---------------------------------------------------------------------------------------------
def test_power_spectrum_distance_known_answers():
    t = np.arange(20_000) * 0.01
    one_hz = np.sin(2 * np.pi * t)[:, None]
    assert power_spectrum_distance(one_hz, np.sin(2 * np.pi * t + 1.0)[:, None]) < 1e-6  # a phase shift changes nothing
    assert power_spectrum_distance(one_hz, np.sin(2 * np.pi * 5 * t)[:, None]) == pytest.approx(1.0, abs=1e-6)  # disjoint spectra
    assert power_spectrum_distance(one_hz, np.full_like(one_hz, 3.0)) == 1.0  # a fixed point: maximal distance
    per_dim = power_spectrum_distance(np.c_[one_hz, one_hz], np.c_[one_hz, np.sin(2 * np.pi * 5 * t)], per_dimension=True)
    np.testing.assert_allclose(per_dim, [0.0, 1.0], atol=1e-6)


def test_power_spectrum_distance_separates_attractors(lorenz_pair):
    a, b, r = lorenz_pair
    assert power_spectrum_distance(a, b) < 0.1 and power_spectrum_distance(a, r) > 0.3


def test_smoothing_matches_scipy_gaussian_filter1d():
    ndimage = pytest.importorskip("scipy.ndimage")
    from dynlearn.metrics.dsr import _gaussian_smooth

    x = np.random.default_rng(3).random((500, 3))
    for sigma in (20.0, 3.3):
        np.testing.assert_allclose(_gaussian_smooth(x, sigma), ndimage.gaussian_filter1d(x, sigma, axis=0, mode="reflect"), atol=1e-12)


def test_power_spectrum_distance_needs_equal_shapes():
    with pytest.raises(DataError, match="same shape"):
        power_spectrum_distance(np.zeros((100, 2)), np.zeros((90, 2)))


# ----- divergence handling -----------------------------------------------------------------------------
def test_non_finite_generated_data_raises_or_gives_nan(lorenz_pair):
    a = lorenz_pair[0][:3000]
    bad = a.copy()
    bad[1500:] = np.nan
    for metric in (state_space_divergence, power_spectrum_distance):
        with pytest.raises(TrajectoryDivergedError, match="step 1500"):
            metric(a, bad)
        assert math.isnan(metric(a, bad, on_diverged="nan"))
        with pytest.raises(DataError, match="x_true"):
            metric(bad, a)
    with pytest.raises(ConfigError):
        state_space_divergence(a, a, on_diverged="ignore")


def test_is_diverged():
    x = np.random.default_rng(4).normal(size=(1000, 3))
    assert not is_diverged(x) and not is_diverged(x * 3, x)
    assert is_diverged(np.where(np.arange(1000)[:, None] == 999, np.inf, x))
    assert is_diverged(x * 1e7)
    assert is_diverged(np.vstack([x, [[100.0, 0.0, 0.0]]]), x)


# ----- PE(n) -------------------------------------------------------------------------------------------
def test_prediction_error_known_answers(lorenz_pair):
    lorenz = RK4FlowMap(Lorenz63().vector_field, 0.01)
    x = _orbit(lorenz, [1.0, 1.0, 20.0], 3000)
    n = 20
    # the identity map predicts x_t for x_{t+n}: PE is the mean squared n-step increment
    ident = prediction_error(lambda z: z, x, n)
    assert ident == pytest.approx(float(np.mean((x[n:] - x[:-n]) ** 2)), rel=1e-5)
    # the map that generated the data predicts it up to float32 round-off; a wrong rho does far worse
    assert prediction_error(lorenz, x, n) < 1e-6 * ident
    assert prediction_error(RK4FlowMap(Lorenz63(rho=30.0).vector_field, 0.01), x, n) > 1e-3 * ident
    # a latent model: encoded once, stepped n times in latent space, then observed (never re-encoded)
    lifted = prediction_error(jax.vmap(lambda z: jnp.concatenate([lorenz(z[:3]), z[3:] + 1.0])), x, n,
                              encode=lambda b: jnp.concatenate([b, jnp.zeros((b.shape[0], 1))], axis=1),
                              observe=lambda z: z[:, :3] + 0.1 * z[:, 3:])
    assert lifted == pytest.approx(0.1**2 * n**2, rel=1e-3)  # the hidden unit counts up to n; re-encoding would reset it
    # several trajectories [K, T, N] pool their windows
    both = prediction_error(lambda z: z, np.stack([x, x]), n)
    assert both == pytest.approx(ident, rel=1e-5)


def test_prediction_error_flags_divergence_and_bad_n():
    x = np.random.default_rng(5).normal(size=(200, 2))
    with pytest.raises(TrajectoryDivergedError):
        prediction_error(lambda z: z * 1e3, x, 20)
    assert math.isnan(prediction_error(lambda z: z * 1e3, x, 20, on_diverged="nan"))
    for n in (0, 200):
        with pytest.raises(ConfigError):
            prediction_error(lambda z: z, x, n)


# ----- Lyapunov exponents ------------------------------------------------------------------------------
def test_linear_map_exponents_are_the_log_eigenvalues():
    a = jnp.array([[2.0, 1.0], [0.0, 0.5]])
    spec = lyapunov_spectrum(lambda x: a @ x, jnp.array([1.0, 1.0]), steps=50, transient=0)
    np.testing.assert_allclose(spec, [np.log(2.0), np.log(0.5)], atol=1e-5)
    per_time = lyapunov_spectrum(lambda x: a @ x, jnp.array([1.0, 1.0]), steps=50, transient=0, dt=0.1)
    np.testing.assert_allclose(per_time, spec / 0.1, rtol=1e-6)
    assert max_lyapunov(lambda x: a @ x, jnp.array([0.0, 1.0]), steps=50, transient=5) == pytest.approx(np.log(2.0), abs=1e-5)


def test_lorenz_flow_exponents():
    system = Lorenz63()
    starts = [system.initial_state(key=k, scale=2.0) for k in jax.random.split(jax.random.key(0), 4)]
    lam = [flow_max_lyapunov(system.vector_field, x0, dt=0.01, steps=10_000, transient=1000) for x0 in starts]
    assert np.mean(lam) == pytest.approx(LORENZ_LAMBDA, rel=0.05)
    spec = flow_lyapunov_spectrum(system.vector_field, starts[0], dt=0.01, steps=10_000)
    assert abs(spec[1]) < 0.05  # the flow direction
    assert spec.sum() == pytest.approx(-(10.0 + 1.0 + 8.0 / 3.0), rel=0.01)  # sum = divergence of the field


def test_time_discretised_lorenz_map_divided_by_dt():
    dt = 0.002
    system = Lorenz63()
    euler = lambda x: x + dt * system.vector_field(x)
    lam = max_lyapunov(euler, system.base_state(), steps=50_000, transient=2000, dt=dt)
    assert lam == pytest.approx(LORENZ_LAMBDA, rel=0.05)


def test_rossler_and_lorenz96_exponents():
    rossler = Rossler()
    lam = flow_max_lyapunov(rossler.vector_field, rossler.base_state(), dt=0.05, steps=100_000, transient=2000)
    assert lam == pytest.approx(ROSSLER_LAMBDA, rel=0.1)
    l96 = Lorenz96()
    spec = flow_lyapunov_spectrum(l96.vector_field, l96.base_state(), dt=0.01, steps=3000, transient=1000, n_exponents=3)
    assert spec[0] > 2.0 and spec[0] >= spec[1] >= spec[2]  # strongly chaotic (3.6 over long runs)


def test_lyapunov_reports_a_diverging_map():
    with pytest.raises(TrajectoryDivergedError):
        max_lyapunov(lambda x: x * x + 10.0, jnp.array([1.0]), steps=100, transient=0)
    assert math.isnan(max_lyapunov(lambda x: x * x + 10.0, jnp.array([1.0]), steps=100, transient=0, on_diverged="nan"))
    with pytest.raises(ConfigError):
        lyapunov_spectrum(lambda x: x, jnp.zeros((2, 2)), steps=10)
