"""Two-sample statistics for the benchmark tables: is method A's per-seed score different from B's?

    python benchmarks/stats.py 22.2 19.6 21.0 -- 1.8 9.0 5.0

prints the difference of means (A - B), Welch's t-test (t, degrees of freedom, two-sided p) and a 95% percentile
bootstrap interval of the difference (each side resampled with replacement, 10,000 times, seed 0).

- ``welch(a, b) -> (diff, t, dof, p)``: unequal-variance t-test, two-sided; scipy's Student-t when scipy is
  installed, else the same distribution through the regularised incomplete beta function.
- ``bootstrap_diff(a, b, n=10000, seed=0) -> (diff, lo, hi)``: 2.5th and 97.5th percentiles of the resampled
  difference of means.

With 3 seeds a side both are coarse: Welch's test has 2-4 degrees of freedom, and each side of the bootstrap has
only 10 distinct resamples, so its interval is narrower than the data justify. The documents quote the two together
and call a difference shown only when both agree (p < 0.05 and an interval that excludes 0). Against a fixed number
c (a dataset's mean, a published score) pass ``-- c c``: with no spread on that side Welch's test is the one-sample
t-test (n - 1 degrees of freedom).
"""

from __future__ import annotations

import math
import sys

import numpy as np


def _t_sf_two_sided(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` degrees of freedom: I_x(dof/2, 1/2) with x = dof / (dof + t^2)."""
    try:
        from scipy import stats

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


def welch(a, b) -> tuple[float, float, float, float]:
    """Welch's two-sided t-test of mean(a) - mean(b): returns (diff, t, dof, p)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or b.size < 2:
        raise ValueError("welch: each side needs at least 2 values")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(a.mean() - b.mean())
    se2 = va + vb
    if se2 == 0.0:
        return diff, math.copysign(math.inf, diff) if diff else 0.0, float(a.size + b.size - 2), 0.0 if diff else 1.0
    t = diff / math.sqrt(se2)
    dof = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return diff, float(t), float(dof), _t_sf_two_sided(t, dof)


def bootstrap_diff(a, b, n: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """Difference of means and its 95% percentile bootstrap interval: returns (diff, lo, hi)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, a.size, (n, a.size))].mean(axis=1)
    db = b[rng.integers(0, b.size, (n, b.size))].mean(axis=1)
    lo, hi = np.percentile(da - db, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: python benchmarks/stats.py A1 A2 ... -- B1 B2 ...")
    i = argv.index("--")
    a, b = [float(v) for v in argv[:i]], [float(v) for v in argv[i + 1:]]
    diff, t, dof, p = welch(a, b)
    _, lo, hi = bootstrap_diff(a, b)
    print(f"A: n={len(a)} mean {np.mean(a):.2f} sd(ddof=1) {np.std(a, ddof=1):.2f}   B: n={len(b)} mean {np.mean(b):.2f} "
          f"sd(ddof=1) {np.std(b, ddof=1):.2f}")
    print(f"diff A-B {diff:+.2f}   Welch t {t:.2f}, dof {dof:.1f}, p {p:.3f}   bootstrap 95% [{lo:+.2f}, {hi:+.2f}]")


if __name__ == "__main__":
    main(sys.argv[1:])
