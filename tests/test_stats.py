"""dynlearn.stats: Welch's test against scipy's, the fallback p-value without scipy, and the bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest

from dynlearn import stats

scipy_stats = pytest.importorskip("scipy.stats")
A, B = [22.2, 19.6, 21.0, 24.5], [1.8, 9.0, 5.0]


def test_welch_matches_scipy():
    ours = stats.welch(A, B)
    ref = scipy_stats.ttest_ind(A, B, equal_var=False)
    assert ours.diff == pytest.approx(np.mean(A) - np.mean(B))
    assert ours.t == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-10)


@pytest.mark.parametrize("t, dof", [(0.3, 2.0), (2.1, 3.7), (-4.0, 11.5), (9.0, 40.0)])
def test_p_value_without_scipy_is_the_student_t_tail(t, dof):
    from scipy.special import betainc

    x = dof / (dof + t * t)
    assert stats._betainc(dof / 2, 0.5, x) == pytest.approx(betainc(dof / 2, 0.5, x), rel=1e-9, abs=1e-14)
    assert stats._betainc(dof / 2, 0.5, x) == pytest.approx(2 * scipy_stats.t.sf(abs(t), dof), rel=1e-9, abs=1e-14)


def test_moments_give_the_same_test_as_samples():
    a, b = np.asarray(A), np.asarray(B)
    m = stats.welch_from_moments(a.mean(), a.std(ddof=1), a.size, b.mean(), b.std(ddof=1), b.size)
    assert m == stats.welch(A, B)


def test_identical_constant_samples_show_no_difference_and_too_few_values_are_refused():
    assert stats.welch([3.0, 3.0], [3.0, 3.0]).p == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        stats.welch([1.0], [1.0, 2.0])


def test_bootstrap_interval_brackets_the_difference_and_separates_distinct_samples():
    diff, lo, hi = stats.bootstrap_diff(A, B)
    assert lo < diff < hi and lo > 0
    rng = np.random.default_rng(0)
    same = rng.normal(size=50), rng.normal(size=50)
    _, lo, hi = stats.bootstrap_diff(*same)
    assert lo < 0 < hi


def test_default_job_verdict_needs_a_significant_difference():
    from dynlearn.default_job import versus_behaviour
    from dynlearn.results import SeedScore
    from dynlearn.tasks.evaluate import EvalResult

    rng = np.random.default_rng(1)
    behaviour = EvalResult(task="Pendulum-v1", returns=rng.normal(-400.0, 200.0, 20), lengths=np.full(20, 200), normalized=None)

    def learned(mean, std):
        return SeedScore(seed=0, return_mean=mean, return_std=std, normalized=None, episodes=20)

    assert versus_behaviour(learned(-150.0, 80.0), behaviour)["versus_behaviour"]["verdict"] == "higher"
    close = versus_behaviour(learned(behaviour.mean + 20.0, 200.0), behaviour)
    assert close["versus_behaviour"]["verdict"] == "none" and not close["beats_behaviour"]
    assert versus_behaviour(learned(-900.0, 80.0), behaviour)["versus_behaviour"]["verdict"] == "lower"
