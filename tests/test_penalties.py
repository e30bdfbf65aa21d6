"""Penalties: every uncertainty heuristic is larger far from the training data than on it, and matches its formula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import models, penalties
from dynlearn.models import EnsembleConfig, FitConfig, MemberOutputs
from tests.models.systems import A, B, C

TINY = EnsembleConfig(members=4, elites=3, hidden=(32, 32), weight_decay=(2.5e-5, 5e-5, 1e-4))
QUIET = FitConfig(progress=False, max_epochs=100)
SLOPE = 0.3


def noisy_linear_dataset(episodes: int = 100, length: int = 40, seed: int = 0) -> dl.data.Dataset:
    """``x' = A x + B u + (0.01 + 0.3 |x|) noise`` (heteroscedastic, so the aleatoric head has something to learn)."""
    rng = np.random.default_rng(seed)
    obs, act, nxt, rew = [], [], [], []
    for _ in range(episodes):
        x = rng.normal(size=3).astype(np.float32)
        for _ in range(length):
            u = rng.uniform(-1, 1, 1).astype(np.float32)
            x2 = (A @ x + B @ u + (0.01 + SLOPE * np.abs(x)) * rng.normal(size=3)).astype(np.float32)
            obs.append(x), act.append(u), nxt.append(x2), rew.append(float(C @ x + 0.5 * u[0] + 0.05 * rng.normal()))
            x = x2
    n = len(obs)
    timeout = np.zeros(n, bool)
    timeout[length - 1::length] = True
    return dl.data.from_arrays(obs=np.array(obs), act=np.array(act), next_obs=np.array(nxt), rew=np.array(rew, np.float32),
                               terminal=np.zeros(n, bool), timeout=timeout, name="noisy-linear")


@pytest.fixture(scope="module")
def fitted():
    data = noisy_linear_dataset()
    model, _ = models.fit(TINY, data, key=jax.random.key(0), cfg=QUIET)
    return data, model


EPISTEMIC = sorted(set(penalties.PENALTIES) - {"max_aleatoric"})


@pytest.mark.parametrize("name", EPISTEMIC)
@pytest.mark.parametrize("part", ["obs", "all"])
def test_larger_far_from_the_data(fitted, name, part):
    data, model = fitted
    obs = jnp.asarray(data.transitions.obs[:400])
    act = jnp.asarray(data.transitions.act[:400])
    fn = penalties.PENALTIES[name]
    near = fn(model.members(obs, act), part=part)
    far = fn(model.members(8.0 * obs + 6.0, 3.0 * act), part=part)
    assert near.shape == far.shape == (400,)
    assert np.all(np.isfinite(near)) and np.all(near >= 0)
    assert float(jnp.median(far)) > 1.2 * float(jnp.median(near)), (name, float(jnp.median(near)), float(jnp.median(far)))


@pytest.mark.parametrize("part", ["obs", "all"])
def test_max_aleatoric_tracks_the_noise(fitted, part):
    """MOPO's penalty reads the variance head: it is larger where the data's noise is larger (here, large |x|).

    Far off the data it is *not* reliably larger: the variance head extrapolates freely (on this system it falls
    at ``8 x + 6``), which is why it is tested on the data only. The epistemic heuristics above do grow.
    """
    data, model = fitted
    obs = jnp.asarray(data.transitions.obs)
    act = jnp.asarray(data.transitions.act)
    u = np.asarray(penalties.max_aleatoric(model.members(obs, act), part=part))
    size = np.linalg.norm(np.asarray(obs), axis=1)
    quiet, loud = size < np.quantile(size, 0.25), size > np.quantile(size, 0.75)
    assert np.all(np.isfinite(u)) and np.all(u > 0)
    assert np.median(u[loud]) > 1.1 * np.median(u[quiet]), (np.median(u[quiet]), np.median(u[loud]))


def _outputs(mean, logvar, elites, obs_dim):
    mean, logvar = jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32)
    return MemberOutputs(mean=mean, logvar=logvar, terminal_logit=None, elites=jnp.asarray(elites, jnp.int32), obs_dim=obs_dim)


def test_formulas_on_known_outputs():
    # 3 members, 1 batch row, target (2 obs deltas, reward); member 2 is not an elite and is wild
    mean = np.array([[[0.0, 0.0, 1.0]], [[3.0, 4.0, -1.0]], [[100.0, 100.0, 100.0]]])
    logvar = np.log(np.array([[[1.0, 4.0, 9.0]], [[1.0, 1.0, 1.0]], [[1e4, 1e4, 1e4]]]))
    out = _outputs(mean, logvar, [0, 1], obs_dim=2)
    np.testing.assert_allclose(penalties.max_aleatoric(out), [np.sqrt(5.0)], rtol=1e-6)
    np.testing.assert_allclose(penalties.max_aleatoric(out, part="all"), [np.sqrt(14.0)], rtol=1e-6)
    np.testing.assert_allclose(penalties.max_aleatoric(out, part="reward"), [3.0], rtol=1e-6)
    np.testing.assert_allclose(penalties.max_pairwise_diff(out), [5.0], rtol=1e-6)
    np.testing.assert_allclose(penalties.max_pairwise_diff(out, part="all"), [np.sqrt(29.0)], rtol=1e-6)
    np.testing.assert_allclose(penalties.ensemble_std(out), [2.5], rtol=1e-6)  # std per dim 1.5, 2
    np.testing.assert_allclose(penalties.ensemble_var(out), [(1 + 1) / 2 + (4 + 1) / 2 + 2.25 + 4.0], rtol=1e-6)
    # LLV at y = 0: log-likelihoods of the two elites
    y = jnp.zeros((1, 3), jnp.float32)
    ll0 = -0.5 * (0 + 0 + np.log(1) + np.log(4) + 2 * np.log(2 * np.pi))
    ll1 = -0.5 * (9 + 16 + 0 + 0 + 2 * np.log(2 * np.pi))
    np.testing.assert_allclose(penalties.llv(out, y), [np.var([ll0, ll1])], rtol=1e-5)
    # LOO-KL with 2 elites: the "rest" of each is the other one
    def kl(m0, v0, m1, v1):
        return 0.5 * np.sum(np.log(v1 / v0) + (v0 + (m0 - m1) ** 2) / v1 - 1)
    m0, v0, m1, v1 = np.array([0.0, 0.0]), np.array([1.0, 4.0]), np.array([3.0, 4.0]), np.array([1.0, 1.0])
    np.testing.assert_allclose(penalties.loo_kl(out), [max(kl(m0, v0, m1, v1), kl(m1, v1, m0, v0))], rtol=1e-5)


def test_identical_members_have_no_epistemic_penalty():
    mean = np.tile(np.array([[[0.5, -0.2, 1.0]]]), (3, 4, 1))
    out = _outputs(mean, np.zeros_like(mean), [0, 1, 2], obs_dim=2)
    for name in ("max_pairwise_diff", "ensemble_std", "llv", "loo_kl"):
        np.testing.assert_allclose(penalties.PENALTIES[name](out), np.zeros(4), atol=1e-6, err_msg=name)


def test_jittable_and_batched():
    mean = jax.random.normal(jax.random.key(1), (5, 2, 7, 4))
    out = _outputs(mean, 0.1 * mean, [0, 2, 4], obs_dim=3)
    for name, fn in penalties.PENALTIES.items():
        assert jax.jit(lambda o, fn=fn: fn(o, part="all"))(out).shape == (2, 7), name
