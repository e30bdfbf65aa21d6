"""Generalized / adaptive / sparse teacher forcing and fit_dsr on a Lorenz-63 series."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynlearn import ConfigError, DataError, dsr
from dynlearn.dsr import ALRNN, FitDSRConfig, ShallowPLRNN
from dynlearn.dsr.fit_block import lr_schedule


def lorenz63(steps: int, dt: float = 0.01, burn_in: int = 1000) -> np.ndarray:
    """Lorenz-63 (sigma 10, rho 28, beta 8/3) by fixed-step RK4, standardised per dimension, float32 [steps, 3]."""

    def f(s):
        x, y, z = s
        return np.array([10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z])

    s, out = np.array([1.0, 1.0, 1.0]), np.empty((steps + burn_in, 3))
    for t in range(steps + burn_in):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        out[t] = s
    x = out[burn_in:]
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


@pytest.fixture(scope="module")
def lorenz():
    return lorenz63(4000)


def _linear(gains, obs_dim=None):
    """A linear AL-RNN z' = diag(gains) z (P = 0, W = 0): every Jacobian is diag(gains)."""
    m = len(gains)
    return ALRNN(A=jnp.asarray(gains, jnp.float32), W=jnp.zeros((m, m), jnp.float32), h=jnp.zeros((m,), jnp.float32),
                 L=None if obs_dim in (None, m) else jnp.zeros((m - obs_dim, obs_dim), jnp.float32),
                 obs_dim=obs_dim or m, latent_dim=m, pwl_units=0)


def test_forcing_extremes_are_one_step_prediction_and_free_running(key, lorenz):
    model = ShallowPLRNN.init(3, 3, 20, key=key)
    x = jnp.asarray(lorenz[:31])
    # alpha = 1: every prediction starts from the data point before it (one-step-ahead prediction).
    full = dsr.forced_predictions(model, x, jnp.ones(30))
    np.testing.assert_allclose(np.asarray(full), np.asarray(jax.vmap(model.step)(x[:-1])), rtol=1e-5, atol=1e-6)
    # alpha = 0: the free-running trajectory from encode(x_0).
    free = dsr.forced_predictions(model, x, jnp.zeros(30))
    np.testing.assert_allclose(np.asarray(free), np.asarray(model.generate(31, x0=x[0], latent=True))[1:], rtol=1e-5, atol=1e-6)


def test_gtf_mixes_the_readout_units_only(key, lorenz):
    model = ShallowPLRNN.init(3, 5, 20, key=key)  # M = 5 > N = 3: units 4-5 are never forced
    x, alpha = jnp.asarray(lorenz[:6]), 0.3
    z = model.encode(x[0])
    expected = []
    for t in range(1, 6):
        z = model.step(z)
        expected.append(np.asarray(z))
        z = jnp.concatenate([(1 - alpha) * z[:3] + alpha * x[t], z[3:]])
    got = dsr.forced_predictions(model, x, dsr.forcing_schedule("gtf", 5, alpha=alpha))
    np.testing.assert_allclose(np.asarray(got), np.stack(expected), rtol=1e-5, atol=1e-6)


def test_sparse_forcing_replaces_the_readouts_every_tau_steps(key, lorenz):
    assert np.asarray(dsr.forcing_schedule("sparse", 10, tau=4)).tolist() == [0, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    model = ShallowPLRNN.init(3, 3, 20, key=key)
    x = jnp.asarray(lorenz[:11])
    got = np.asarray(dsr.forced_predictions(model, x, dsr.forcing_schedule("sparse", 10, tau=4)))
    # Steps 1-4 run free from x_0; step 5 starts from the data x_4; step 9 from x_8.
    np.testing.assert_allclose(got[:4], np.asarray(model.generate(5, x0=x[0], latent=True))[1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[4], np.asarray(model.step(x[4])), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[8], np.asarray(model.step(x[8])), rtol=1e-5, atol=1e-6)


def test_alpha_estimate_is_one_minus_inverse_growth():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 21, 3)).astype(np.float32))
    # Linear map diag(g): |J|_2 = max |g| everywhere, so G = max |g| and alpha = 1 - 1/G (0 when not expanding).
    alpha, growth = dsr.estimate_alpha(_linear([1.25, 0.5, -0.3]), x)
    assert float(growth) == pytest.approx(1.25, rel=1e-5) and float(alpha) == pytest.approx(0.2, rel=1e-5)
    alpha, growth = dsr.estimate_alpha(_linear([0.9, 0.5, -0.3]), x)
    assert float(growth) == pytest.approx(0.9, rel=1e-5) and float(alpha) == 0.0
    # A more expanding map needs more forcing: the estimate grows with the gain and stays below 1.
    alphas = [float(dsr.estimate_alpha(_linear([g, 0.1, 0.1]), x)[0]) for g in (1.0, 1.5, 3.0, 100.0)]
    assert alphas == sorted(alphas) and alphas[0] == 0.0 and 0.98 < alphas[-1] < 1.0
    # M > N: the Jacobians are taken at encode(x_t); G is the largest geometric mean over the sequences.
    assert float(dsr.estimate_alpha(_linear([2.0, 0.5, 0.5, 0.1], obs_dim=3), x)[1]) == pytest.approx(2.0, rel=1e-5)


def test_estimated_alpha_keeps_the_gradients_bounded():
    # GTF's point: with alpha >= 1 - 1/G the forced Jacobian products stop growing. Linear map diag(2, 0.5, -1.5):
    # alpha_est = 0.5, and d z_T / d x_0 = diag(g^T (1 - alpha)^(T - 1)) stays at 2 instead of 2^T when free running.
    model, steps = _linear([2.0, 0.5, -1.5]), 40
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, steps + 1, 3)).astype(np.float32))
    alpha = dsr.estimate_alpha(model, x)[0]
    assert float(alpha) == pytest.approx(0.5)

    def last_prediction(x0, a):
        return dsr.forced_predictions(model, x[0].at[0].set(x0), jnp.full((steps,), a))[-1]

    forced = np.asarray(jax.jacfwd(last_prediction)(x[0, 0], alpha))
    np.testing.assert_allclose(np.diag(forced), [2.0, 0.5**79, 2 * 0.75**40], rtol=1e-4)  # g^T 0.5^(T-1)
    free = np.asarray(jax.jacfwd(last_prediction)(x[0, 0], jnp.float32(0.0)))
    assert free[0, 0] == pytest.approx(2.0**steps, rel=1e-4)


def test_alpha_annealing_jumps_up_and_decays_geometrically():
    a = jnp.asarray(0.5, jnp.float32)
    assert float(dsr.anneal_alpha(a, jnp.asarray(0.8), 0.999)) == pytest.approx(0.8)
    decayed = [0.5]
    for _ in range(3):
        decayed.append(float(dsr.anneal_alpha(jnp.asarray(decayed[-1], jnp.float32), jnp.asarray(0.1), 0.9)))
    np.testing.assert_allclose(np.array(decayed) - 0.1, 0.4 * 0.9 ** np.arange(4), rtol=1e-5)


def _fast(**kw):
    """A small, fast configuration (M = 3, H = 50, batch 16 x 100 steps)."""
    return FitDSRConfig(**({"latent_dim": 3, "hidden_dim": 50, "seq_len": 100, "block": 200} | kw))


def test_gtf_training_fits_lorenz63_and_free_runs_bounded(key, lorenz):
    cfg = _fast(forcing="gtf", alpha=0.2, iterations=600, lr=3e-3, lr_end=1e-4)
    model, report = dsr.fit_dsr(lorenz, cfg, key=key, progress=False)
    assert report.losses.shape == (600,) and np.isfinite(report.losses).all()
    assert report.losses[-50:].mean() < report.losses[:20].mean() / 3  # measured: 0.48 -> 0.10
    assert np.all(report.alphas == np.float32(0.2)) and report.n_params == 2 * 3 * 50 + 2 * 3 + 50
    gen = np.asarray(model.generate(5000, x0=jnp.asarray(lorenz[0])))
    assert np.isfinite(gen).all() and np.abs(gen).max() < 5.0  # the data (standardised) span about +-2.5


def test_adaptive_alpha_stays_in_unit_interval_and_follows_the_estimator(key, lorenz):
    cfg = _fast(forcing="adaptive", iterations=200, alpha_decay=0.9, lr=3e-3)
    _, report = dsr.fit_dsr(lorenz, cfg, key=key, progress=False)
    alphas = report.alphas.astype(np.float64)
    assert alphas.shape == (200,) and np.all((0 <= alphas) & (alphas <= 1))
    assert np.all(alphas[:4] == 1.0)  # starts at 1; first re-estimate at the 5th batch
    changes = np.flatnonzero(np.diff(alphas) != 0) + 1
    assert set((changes + 1) % 5) <= {0}  # alpha moves only on re-estimation batches
    prev, new = alphas[changes - 1], alphas[changes]
    assert np.all((new > prev) | (new >= 0.9 * prev - 1e-6))  # a jump up, or gamma alpha + (1 - gamma) alpha_est
    assert report.final_alpha < 0.5  # this model's Jacobian products grow little along the data: little forcing needed


def test_sparse_forcing_training_reduces_the_loss(key, lorenz):
    cfg = _fast(model="alrnn", latent_dim=8, pwl_units=2, forcing="sparse", tau=8, iterations=400, lr=1e-2, lr_end=1e-3,
                regularization=0.0)
    model, report = dsr.fit_dsr(lorenz, cfg, key=key, progress=False)
    assert isinstance(model, ALRNN) and report.alphas.shape == (0,)
    assert report.losses[-50:].mean() < report.losses[:20].mean() / 5  # measured: 0.76 -> 0.04


def test_blocks_carry_the_state_and_padding_changes_nothing(key, lorenz):
    # Constant lr: a 10-iteration run (blocks 0-6, 7-9 + 4 padded skips) equals the first 10 iterations of a
    # 14-iteration run (blocks 0-6, 7-13); both share one compiled block.
    cfg = FitDSRConfig(latent_dim=3, hidden_dim=8, seq_len=20, iterations=14, block=7, lr=1e-3, lr_end=1e-3)
    _, long = dsr.fit_dsr(lorenz, cfg, key=key, progress=False)
    _, short = dsr.fit_dsr(lorenz, dataclasses.replace(cfg, iterations=10), key=key, progress=False)
    assert short.losses.shape == (10,) and short.alphas.shape == (10,)
    np.testing.assert_array_equal(short.losses, long.losses[:10])
    np.testing.assert_array_equal(short.alphas, long.alphas[:10])
    assert not np.array_equal(long.losses[10:], np.zeros(4))


def test_selection_returns_the_model_with_the_lowest_training_dstsp(key, lorenz):
    # Scored at the end of the blocks that reach 200, 400, 600 and at the end (700); the returned model is the
    # best-scoring one, and a run without selection returns the final model.
    cfg = _fast(forcing="gtf", alpha=0.2, iterations=700, lr=3e-3, lr_end=1e-4, select_every=200, select_steps=3000)
    model, report = dsr.fit_dsr(lorenz, cfg, key=key, progress=False)
    iterations, scores = zip(*report.selection)
    assert iterations == (200, 400, 600, 700)
    best = int(np.argmin(scores))
    assert report.selected_iteration == iterations[best] and np.isfinite(scores[best])
    assert dsr.fit.training_dstsp(model, lorenz, 3000) == pytest.approx(scores[best], rel=1e-6)
    final, plain = dsr.fit_dsr(lorenz, dataclasses.replace(cfg, select_every=0), key=key, progress=False)
    assert plain.selection == () and plain.selected_iteration is None
    assert dsr.fit.training_dstsp(final, lorenz, 3000) == pytest.approx(scores[-1], rel=1e-6)


def test_selection_scores_a_diverging_free_run_as_infinite(lorenz):
    exploding = _linear([1.5, 1.5, 1.5])
    assert dsr.fit.training_dstsp(exploding, lorenz, 1000) == np.inf
    assert np.isfinite(dsr.fit.training_dstsp(_linear([0.999, 0.999, 0.999]), lorenz, 1000))


def test_divergence_raises_a_clear_error(key, lorenz):
    with pytest.raises(dsr.TrainingDivergedError, match="diverged at iteration 0.*standardise the data"):
        dsr.fit_dsr(lorenz * np.float32(1e20), FitDSRConfig(latent_dim=3, hidden_dim=8, seq_len=20, iterations=10, block=7),
                    key=key, progress=False)


def test_training_windows_never_cross_trajectory_ends():
    data, starts = dsr.prepare_sequences([np.zeros((30, 2)), np.ones((25, 2))], seq_len=20)
    assert data.shape == (55, 2) and data.dtype == np.float32
    assert starts.tolist() == list(range(10)) + list(range(30, 35))
    with pytest.raises(DataError, match=r"x_train\[1\].*21"):
        dsr.prepare_sequences([np.zeros((30, 2)), np.zeros((12, 2))], seq_len=20)
    with pytest.raises(DataError, match="non-finite"):
        dsr.prepare_sequences(np.full((40, 2), np.nan), seq_len=20)
    with pytest.raises(DataError, match="shape"):
        dsr.prepare_sequences(np.zeros(40), seq_len=20)


def test_config_rejects_bad_values_and_unknown_keys():
    for bad in ({"model": "lstm"}, {"forcing": "full"}, {"alpha": 1.5}, {"tau": 0}, {"lr_end": 1e-2}, {"noise": -1.0},
                {"model": "alrnn", "latent_dim": 3, "pwl_units": 4}, {"latent_dim": 0}, {"grad_clip": float("nan")},
                {"select_every": -1}, {"select_steps": 0}):
        with pytest.raises(ConfigError):
            FitDSRConfig(**bad)
    with pytest.raises(DataError, match="unknown FitDSRConfig keys"):
        FitDSRConfig.from_dict({"iterations": 10, "learning_rate": 1e-3})
    assert FitDSRConfig.from_dict(FitDSRConfig(iterations=7).to_dict()) == FitDSRConfig(iterations=7)
    gtf = FitDSRConfig.preset("lorenz63-shplrnn")
    assert (gtf.model, gtf.latent_dim, gtf.hidden_dim, gtf.batch_size,
            gtf.seq_len, gtf.forcing) == ("clipped_shplrnn", 3, 100, 16, 200, "adaptive")
    assert FitDSRConfig.preset("lorenz63-alrnn", iterations=5).iterations == 5
    with pytest.raises(ConfigError, match="latent_dim 2 is below"):
        dsr.fit_dsr(np.zeros((300, 3), np.float32), FitDSRConfig(latent_dim=2, iterations=1), progress=False)


def test_decay_iterations_trains_on_the_start_of_a_longer_schedule():
    """iterations=1000 with decay_iterations=10000 follows, step for step, the first 1000 steps of iterations=10000."""
    steps = jnp.arange(1000, dtype=jnp.int32)
    short = np.asarray(lr_schedule(FitDSRConfig(iterations=1000, decay_iterations=10_000, lr=1e-3, lr_end=1e-5))(steps))
    full = np.asarray(lr_schedule(FitDSRConfig(iterations=10_000, lr=1e-3, lr_end=1e-5))(steps))
    np.testing.assert_array_equal(short, full)
    # the known values: lr (lr_end / lr)^(k / 10000), so 1e-3 at 0 and 1e-3 * 10^(-2 * 999 / 10000) at the last step
    np.testing.assert_allclose(short[[0, 500, 999]], 1e-3 * 10.0 ** (-2 * np.array([0, 500, 999]) / 10_000), rtol=1e-5)
    # None is the old behaviour: the whole decay within the run, lr_end reached at the last iteration and held
    default = lr_schedule(FitDSRConfig(iterations=1000, lr=1e-3, lr_end=1e-5))
    explicit = lr_schedule(FitDSRConfig(iterations=1000, decay_iterations=1000, lr=1e-3, lr_end=1e-5))
    np.testing.assert_array_equal(np.asarray(default(steps)), np.asarray(explicit(steps)))
    np.testing.assert_allclose(np.asarray(default(jnp.asarray([1000, 1500], jnp.int32))), 1e-5, rtol=1e-5)
    # a horizon shorter than the run: the rate reaches lr_end at decay_iterations and stays there
    early = np.asarray(lr_schedule(FitDSRConfig(iterations=1000, decay_iterations=100, lr=1e-3, lr_end=1e-5))(steps))
    assert early[0] == np.float32(1e-3) and np.allclose(early[100:], 1e-5, rtol=1e-5)


def test_decay_iterations_is_validated_and_defaults_for_old_configs():
    for bad in (0, -5, 2**24 + 1, 1.5):
        with pytest.raises(ConfigError, match="decay_iterations"):
            FitDSRConfig(decay_iterations=bad)
    old = FitDSRConfig(iterations=7).to_dict()
    del old["decay_iterations"]  # a config saved before the field existed
    assert FitDSRConfig.from_dict(old).decay_iterations is None
    assert FitDSRConfig(decay_iterations=100_000).to_dict()["decay_iterations"] == 100_000


def test_a_stopped_fit_resumes_from_its_checkpoint_exactly(key, lorenz, tmp_path):
    """SIGTERM / Ctrl-C (interrupt.request) checkpoints the fit after the running block; fitting again with the same
    folder continues from it and ends with the uninterrupted fit's model, losses and selection (best model included)."""
    from dynlearn import interrupt

    cfg = FitDSRConfig(latent_dim=3, hidden_dim=8, seq_len=20, iterations=40, block=10, lr=3e-3, lr_end=1e-4,
                       select_every=10, select_steps=500)
    full_model, full = dsr.fit_dsr(lorenz, cfg, key=key, progress=False)
    folder = tmp_path / "state"
    with interrupt.graceful_stop():  # the request stands when fit_dsr enters its own (nested) stop context
        interrupt.request()
        with pytest.raises(interrupt.Stopped) as stopped:
            dsr.fit_dsr(lorenz, cfg, key=key, progress=False, checkpoint=folder)
    assert stopped.value.step == 10 and (folder / "state.eqx").is_file()
    model, resumed = dsr.fit_dsr(lorenz, cfg, key=key, progress=False, checkpoint=folder)
    np.testing.assert_array_equal(resumed.losses, full.losses)
    assert resumed.selection == full.selection and resumed.selected_iteration == full.selected_iteration
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(full_model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ConfigError, match="another configuration"):
        dsr.fit_dsr(lorenz, dataclasses.replace(cfg, lr=1e-3), key=key, progress=False, checkpoint=folder)
