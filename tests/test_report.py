"""Run reports: the learning-curve figure and its behaviour-data line."""

import numpy as np
from PIL import Image

import dynlearn as dl
from dynlearn.report import data_mean_return, learning_curve

from helpers import episodes_arrays


def test_data_mean_return_counts_complete_episodes_only():
    # episodes of 5, 7 and 4 steps with rewards 1, 2, 3 per step; the last one is cut (neither terminal nor timeout)
    a = episodes_arrays(lengths=(5, 7, 4), ends=("terminal", "timeout", "cut"))
    data = dl.data.from_arrays(obs=a["observations"], act=a["actions"], rew=a["rewards"], terminal=a["terminals"],
                               timeout=a["timeouts"], next_obs=a["next_observations"], episode_starts=np.array([0, 5, 12]))
    assert data_mean_return(data) == np.mean([5 * 1.0, 7 * 2.0])
    only_cut = data.select_episodes([2])
    assert np.isnan(data_mean_return(only_cut))


def test_learning_curve_draws_reference_lines(tmp_path):
    curves = {"seed 0": [(1, 1.0, 0.1), (2, 2.0, 0.2)], "seed 1": [(1, 1.5, 0.0), (2, 2.5, 0.0)]}
    plain = learning_curve(tmp_path / "plain.png", curves, title="t")
    with_line = learning_curve(tmp_path / "line.png", curves, title="t", references={"data": 1.75})
    nan_only = learning_curve(tmp_path / "nan.png", curves, title="t", references={"unknown": float("nan")})
    a, b, c = (np.asarray(Image.open(p).convert("L"), float) for p in (plain, with_line, nan_only))
    assert a.shape == b.shape
    assert np.abs(a - b).sum() > 0  # the dashed line (and its legend entry) is drawn
    np.testing.assert_array_equal(a, c)  # a reference without a value (no complete episode) draws nothing
