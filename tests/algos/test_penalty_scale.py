"""The penalty's scale on the data: u and the share of real transitions that r - lambda u makes losses."""

import jax
import numpy as np

import dynlearn as dl
from dynlearn import penalties
from dynlearn.algos.penalty_scale import describe, penalty_on_data
from dynlearn.models import EnsembleConfig, FitConfig, fit
from dynlearn.rollout import Penalty
from tests.models.systems import linear_dataset


def test_the_share_of_losses_follows_lambda_and_the_log_warns_when_it_is_large():
    data = linear_dataset(episodes=30, length=30, seed=2)
    model, _ = fit(EnsembleConfig(members=3, elites=2, hidden=(16, 16), weight_decay=(2.5e-5, 5e-5, 1e-4)), data,
                   key=jax.random.key(0), cfg=FitConfig(max_epochs=5, progress=False))
    t = data.transitions
    rows = len(t)  # every row (each has a successor here)
    make = lambda coef: Penalty(penalties.max_aleatoric, coef=coef, part="all", members="all")
    none = penalty_on_data(model, make(0.0), t, max_rows=rows)
    assert none["rows"] == rows and none["u_median"] > 0 and none["u_p90"] >= none["u_median"]
    assert none["flipped_share"] == 0.0  # lambda = 0 turns nothing into a loss
    small, huge = penalty_on_data(model, make(0.1), t, max_rows=rows), penalty_on_data(model, make(1e6), t, max_rows=rows)
    assert 0.0 < small["flipped_share"] < huge["flipped_share"]
    # a huge lambda flips every row with r >= 0 (r = C.x + 0.5 u takes both signs here; negative rewards never count)
    assert 0.2 < huge["flipped_share"] == float(np.mean(np.asarray(t.rew) >= 0)) < 0.8
    assert small["u_median"] == none["u_median"]  # u is the unweighted heuristic
    assert "warning" in describe(huge) and "warning" not in describe(none)
    assert penalty_on_data(model, None, t) is None


def test_the_breakdown_names_the_target_dim_whose_noise_dominates_the_predicted_variance():
    rng = np.random.default_rng(0)
    n = 2_000
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    noise = np.array([0.01, 0.5, 0.01], np.float32)  # delta obs[1] is the hard one
    next_obs = (0.9 * obs + 0.1 * act + noise * rng.normal(size=(n, 3))).astype(np.float32)
    timeout = np.zeros(n, bool)
    timeout[19::20] = True
    data = dl.data.from_arrays(obs=obs, act=act, next_obs=next_obs, rew=obs[:, 0].copy(), terminal=np.zeros(n, bool),
                               timeout=timeout)
    model, _ = fit(EnsembleConfig(members=3, elites=2, hidden=(32, 32), weight_decay=(2.5e-5, 5e-5, 1e-4)), data, key=jax.random.key(0),
                   cfg=FitConfig(max_epochs=30, progress=False))
    scale = penalty_on_data(model, Penalty(penalties.max_aleatoric, coef=1.0), data.transitions)
    share = np.asarray(scale["variance_share"])
    assert share.shape == (4,) and np.isclose(share.sum(), 1.0)
    assert scale["top_dim"] == 1 and scale["top_dim_name"] == "delta obs[1]" and scale["top_dim_share"] > 0.9
    # fitted to the data, the model is roughly calibrated where the noise is: error and predicted variance ~ 0.25
    assert 0.5 < scale["top_dim_sq_error"] / scale["top_dim_variance"] < 2.0
    assert 0.1 < scale["top_dim_variance"] < 0.5
    assert "is in delta obs[1]" in describe(scale)
