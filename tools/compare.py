"""Comparison as a tool: which of several runs is better, and is the gap more than noise."""

from __future__ import annotations

import math
import warnings

from pydantic import Field

from core.errors import UserInputError
from tools.base import ToolArgs, ToolContext, ToolResult, tool

SIGNIFICANCE_LEVEL = 0.05  # the usual two-sided threshold; the p-value is reported either way


class CompareEntry(ToolArgs):
    label: str  # "gcn", "run 3"
    run_id: int | None = None
    values: list[float] = Field(min_length=1)  # one test metric per seed


class CompareArgs(ToolArgs):
    entries: list[CompareEntry] = Field(min_length=2)
    metric: str = "accuracy"
    higher_is_better: bool = True


class EntryStats(ToolResult):
    label: str
    run_id: int | None
    n: int
    values: list[float]
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for a single seed


class CompareResult(ToolResult):
    metric: str
    entries: list[EntryStats]
    best: str
    best_run_id: int | None
    runner_up: str
    difference: float  # best mean - runner-up mean (in the metric's units)
    t_statistic: float | None  # Welch's t; None when either side has fewer than 2 seeds
    p_value: float | None
    significant: bool | None
    alpha: float = SIGNIFICANCE_LEVEL


def _stats(entry: CompareEntry) -> EntryStats:
    n = len(entry.values)
    mean = sum(entry.values) / n
    var = sum((v - mean) ** 2 for v in entry.values) / (n - 1) if n > 1 else 0.0
    return EntryStats(
        label=entry.label,
        run_id=entry.run_id,
        n=n,
        values=entry.values,
        mean=mean,
        std=math.sqrt(var),
    )


def welch(a: list[float], b: list[float]) -> tuple[float | None, float | None]:
    """Welch's t-test (unequal variances), two-sided; (None, None) with fewer than 2 seeds."""
    if len(a) < 2 or len(b) < 2:
        return None, None
    from scipy import stats

    if max(a) == min(a) and max(b) == min(b):
        # No spread on either side: the test is undefined; identical means are no difference.
        return (0.0, 1.0) if a[0] == b[0] else (math.inf, 0.0)
    with warnings.catch_warnings():
        # Near-identical seeds make scipy warn about precision; the p-value is still right
        # to the digits we report, and the user's console is no place for the warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    return float(result.statistic), float(result.pvalue)


@tool("compare")
def compare_runs(args: CompareArgs, ctx: ToolContext) -> CompareResult:
    """Rank runs by their mean test metric and test the top two with Welch's t-test.

    Args:
        args: two or more entries, each with one test metric per seed.
        ctx: unused (comparison reads only the numbers it is given).

    Returns:
        Means, standard deviations, the best entry, and Welch's t and p-value.
    """
    labels = [e.label for e in args.entries]
    if len(set(labels)) != len(labels):
        raise UserInputError(f"Comparison entries need distinct labels, got {labels}.")
    sign = 1.0 if args.higher_is_better else -1.0
    ranked = sorted(args.entries, key=lambda e: -sign * _stats(e).mean)
    best, second = ranked[0], ranked[1]
    t, p = welch(best.values, second.values)
    return CompareResult(
        metric=args.metric,
        entries=[_stats(e) for e in args.entries],
        best=best.label,
        best_run_id=best.run_id,
        runner_up=second.label,
        difference=_stats(best).mean - _stats(second).mean,
        t_statistic=t,
        p_value=p,
        significant=None if p is None else p < SIGNIFICANCE_LEVEL,
    )
