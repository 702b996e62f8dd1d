"""Comparison as a tool: which of several runs is better, and is the gap more than noise."""

from __future__ import annotations

from pydantic import Field

from core.errors import UserInputError
from graph_ml.stats import sample_std, welch
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
    return EntryStats(
        label=entry.label,
        run_id=entry.run_id,
        n=len(entry.values),
        values=entry.values,
        mean=sum(entry.values) / len(entry.values),
        std=sample_std(entry.values),
    )


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
