"""Two-sample statistics for "does A score higher than B": Welch's t-test and a bootstrap interval.

- :func:`welch` and :func:`welch_from_moments`: the unequal-variance t-test of ``mean(a) - mean(b)``, two-sided.
  The p-value is scipy's Student-t when scipy is installed, else the same distribution through the regularised
  incomplete beta function (no dependency needed).
- :func:`bootstrap_diff`: the difference of means and its 95% percentile bootstrap interval.

With few samples a side both are coarse (3 seeds: Welch has 2-4 degrees of freedom, each side of the bootstrap only
10 distinct resamples). Against a fixed number ``c`` pass ``b = [c, c]``: with no spread on that side Welch's test is the
one-sample t-test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class WelchResult:
    diff: float
    """mean(a) - mean(b)."""
    t: float
    dof: float
    p: float
    """Two-sided p-value."""


def welch(a, b) -> WelchResult:
    """Welch's two-sided t-test of ``mean(a) - mean(b)`` from the samples (at least 2 a side)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"welch: each side needs at least 2 values, got {a.size} and {b.size}")
    return welch_from_moments(a.mean(), a.std(ddof=1), a.size, b.mean(), b.std(ddof=1), b.size)


def welch_from_moments(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> WelchResult:
    """Welch's test from each side's mean, sample standard deviation (ddof=1) and size."""
    if n_a < 2 or n_b < 2:
        raise ValueError(f"welch: each side needs at least 2 values, got {n_a} and {n_b}")
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    diff = float(mean_a - mean_b)
    se2 = va + vb
    if se2 == 0.0:
        return WelchResult(diff, math.copysign(math.inf, diff) if diff else 0.0, float(n_a + n_b - 2), 0.0 if diff else 1.0)
    t = diff / math.sqrt(se2)
    dof = se2**2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return WelchResult(diff, float(t), float(dof), _t_sf_two_sided(t, dof))


def bootstrap_diff(a, b, n: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Difference of means and its 95% percentile bootstrap interval (each side resampled): ``(diff, lo, hi)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, a.size, (n, a.size))].mean(axis=1)
    db = b[rng.integers(0, b.size, (n, b.size))].mean(axis=1)
    lo, hi = np.percentile(da - db, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def _t_sf_two_sided(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` degrees of freedom: I_x(dof/2, 1/2) with x = dof / (dof + t^2)."""
    try:
        from scipy import stats  # optional: the fallback below computes the same

        return float(2.0 * stats.t.sf(abs(t), dof))
    except ImportError:
        return _betainc(dof / 2.0, 0.5, dof / (dof + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by Lentz's continued fraction (Numerical Recipes, 6.4)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return front * f
