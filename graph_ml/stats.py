"""The statistics every layer uses: sample spread and Welch's t-test, in one place.

The compare tool tests runs with it and stores the result; explanations and reports read
that stored result instead of testing again.
"""

from __future__ import annotations

import math
import warnings


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def sample_std(values: list[float]) -> float:
    """Sample standard deviation (ddof=1); 0 for fewer than two values (no spread known)."""
    if len(values) < 2:
        return 0.0
    centre = sum(values) / len(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / (len(values) - 1))


def welch(a: list[float], b: list[float]) -> tuple[float | None, float | None]:
    """Welch's t-test (unequal variances), two-sided: (t, p) of `a` against `b`.

    Returns (None, None) when either side has fewer than 2 values. With no spread on either
    side the test is undefined: identical means are no difference (t=0, p=1), different
    ones an infinitely clear one (t=+-inf with the sign of mean(a) - mean(b), p=0).
    """
    if len(a) < 2 or len(b) < 2:
        return None, None
    if max(a) == min(a) and max(b) == min(b):
        if a[0] == b[0]:
            return 0.0, 1.0
        return math.copysign(math.inf, a[0] - b[0]), 0.0
    from scipy import stats

    with warnings.catch_warnings():
        # Near-identical seeds make scipy warn about precision; the p-value is still right
        # to the digits we report, and the user's console is no place for the warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def welch_from_stats(
    mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int
) -> tuple[float | None, float | None]:
    """Welch's test from summary statistics (when per-seed values were not kept)."""
    if n_a < 2 or n_b < 2:
        return None, None
    if std_a == 0 and std_b == 0:
        if mean_a == mean_b:
            return 0.0, 1.0
        return math.copysign(math.inf, mean_a - mean_b), 0.0
    from scipy import stats

    out = stats.ttest_ind_from_stats(mean_a, std_a, n_a, mean_b, std_b, n_b, equal_var=False)
    return float(out.statistic), float(out.pvalue)
