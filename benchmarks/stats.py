"""Two-sample statistics for the benchmark tables: is method A's per-seed score different from B's?

    python benchmarks/stats.py 22.2 19.6 21.0 -- 1.8 9.0 5.0

prints the difference of means (A - B), Welch's t-test (t, degrees of freedom, two-sided p) and a 95% percentile
bootstrap interval of the difference (each side resampled with replacement, 10,000 times, seed 0).

The functions are the library's (``dynlearn.stats``): ``welch(a, b)`` (unequal-variance t-test, two-sided) and
``bootstrap_diff(a, b, n=10000, seed=0) -> (diff, lo, hi)`` (2.5th and 97.5th percentiles of the resampled difference
of means).

With 3 seeds a side both are coarse: Welch's test has 2-4 degrees of freedom, and each side of the bootstrap has
only 10 distinct resamples, so its interval is narrower than the data justify. The documents quote the two together
and call a difference shown only when both agree (p < 0.05 and an interval that excludes 0). Against a fixed number
c (a dataset's mean, a published score) pass ``-- c c``: with no spread on that side Welch's test is the one-sample
t-test (n - 1 degrees of freedom).
"""

from __future__ import annotations

import sys

import numpy as np

from dynlearn.stats import bootstrap_diff, welch


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: python benchmarks/stats.py A1 A2 ... -- B1 B2 ...")
    i = argv.index("--")
    a, b = [float(v) for v in argv[:i]], [float(v) for v in argv[i + 1:]]
    w = welch(a, b)
    _, lo, hi = bootstrap_diff(a, b)
    print(f"A: n={len(a)} mean {np.mean(a):.2f} sd(ddof=1) {np.std(a, ddof=1):.2f}   B: n={len(b)} mean {np.mean(b):.2f} "
          f"sd(ddof=1) {np.std(b, ddof=1):.2f}")
    print(f"diff A-B {w.diff:+.2f}   Welch t {w.t:.2f}, dof {w.dof:.1f}, p {w.p:.3f}   bootstrap 95% [{lo:+.2f}, {hi:+.2f}]")


if __name__ == "__main__":
    main(sys.argv[1:])
