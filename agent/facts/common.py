"""Thresholds, split sizes and timings shared by every kind of facts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord

# A split with fewer examples than this gives a metric that moves in steps of 2 points or
# more (one example of 50 is 2%), so its value is stated with counts and a warning.
SMALL_SPLIT = 50
# Train-minus-validation gap (percentage points, at the kept epoch) above which we call it
# over-fitting: the model fits the examples it learnt from clearly better than unseen ones.
# 10 points is well past seed noise on the Planetoid validation sets (500 nodes: one node is
# 0.2 points) yet below the 20-24 points a GCN reaches on Cora's 140 training nodes, which
# is over-fitting (and is said so, with the gap) even though it is the usual outcome there.
OVERFIT_GAP_POINTS = 10.0
# A model below this accuracy on its own training data lacks capacity (under-fitting).
UNDERFIT_TRAIN_METRIC = 0.6
# Validation loss this far (relative) above its minimum by the last epoch means it rose
# after an early peak (over-fitting in the loss, even where the accuracy holds).
VAL_LOSS_RISE = 0.2
# Completed trials each searched model needs before "the best model is X" is said without
# a caveat: with fewer, TPE has barely left its random start-up trials for that model.
MIN_TRIALS_PER_MODEL = 5
# Completed trials below which parameter importances are called rough: PED-ANOVA compares
# the top 10% of trials with the rest, so with fewer than 20 the top group is one or two.
FEW_TRIALS_FOR_IMPORTANCE = 20
SIGNIFICANCE_LEVEL = 0.05  # the usual two-sided threshold; the p-value is shown either way

UNITS = {
    "node_classification": "nodes",
    "graph_classification": "graphs",
    "link_prediction": "edges",
}


UNITS_ZH = {"node_classification": "节点", "graph_classification": "图",
            "link_prediction": "边"}  # fmt: skip


def span(values: list[Any]) -> list[Any]:
    """`[120, 120, 120]` -> `[120]`; `[23, 187, 186]` -> `[23, 187]` (min, max): one value
    when every seed agrees, else the range - never an average no run had."""
    values = [v for v in values if v is not None]
    if not values:
        return []
    low, high = min(values), max(values)
    return [low] if low == high else [low, high]


class SplitFacts(BaseModel):
    """How many examples each split holds, and which are too small to trust alone."""

    unit: str  # nodes, graphs, edges
    unit_zh: str = "样本"  # 节点, 图, 边
    train: int | None = None
    val: int | None = None
    test: int | None = None
    small_val: bool = False  # fewer than SMALL_SPLIT
    small_test: bool = False
    threshold: int = SMALL_SPLIT


def split_facts(sizes: dict[str, Any] | None, task: str) -> SplitFacts:
    sizes = sizes or {}
    val, test = sizes.get("val"), sizes.get("test")
    return SplitFacts(
        unit=UNITS.get(task, "examples"),
        unit_zh=UNITS_ZH.get(task, "样本"),
        train=sizes.get("train"),
        val=val,
        test=test,
        small_val=val is not None and val < SMALL_SPLIT,
        small_test=test is not None and test < SMALL_SPLIT,
    )


def correct_of(metric: str, value: float | None, total: int | None) -> int | None:
    """The count an accuracy stands for (0.857 of 7 -> 6); None for other metrics."""
    if metric != "accuracy" or value is None or not total:
        return None
    return round(value * total)


class StepCost(BaseModel):
    name: str
    seconds: float
    peak_mb: float | None = None


class Timing(BaseModel):
    """Where the run's time went, from its stored steps.

    `run_seconds` is the wall time from start to finish; `steps` are this run's own measured
    steps (a compare's tool step includes its trainings, which are child runs with their own
    steps, so they are not added again); `accounted_seconds` sums the steps taken while the
    run was open (its tool call), which should equal `run_seconds` within a few percent;
    `before_seconds` is what was spent before the run existed (planning, rule checks) and
    `after_seconds` what came after it (its explanation, a report on it).
    """

    run_seconds: float | None = None
    steps: list[StepCost] = Field(default_factory=list)
    accounted_seconds: float = 0.0
    before_seconds: float = 0.0
    after_seconds: float = 0.0
    accounted_percent: float | None = None  # accounted_seconds / run_seconds, in percent
    peak_mb: float | None = None  # the tool step's peak resident memory
    llm_tokens: int = 0  # prompt + completion tokens of the planning steps


def timing(record: RunRecord, store: ExperimentStore | None) -> Timing:
    steps = store.steps(record.id) if store is not None else []
    own = [s for s in steps if s.name == f"tool:{record.kind}"]
    rest = [s for s in steps if s not in own]
    before = [s for s in rest if s.created_at <= record.started_at]
    peaks = [s.peak_mb for s in own if s.peak_mb is not None]
    accounted = sum(s.seconds for s in own)
    return Timing(
        run_seconds=record.seconds,
        steps=[StepCost(name=s.name, seconds=s.seconds, peak_mb=s.peak_mb) for s in steps],
        accounted_seconds=accounted,
        before_seconds=sum(s.seconds for s in before),
        after_seconds=sum(s.seconds for s in rest if s not in before),
        accounted_percent=100 * accounted / record.seconds if record.seconds else None,
        peak_mb=max(peaks) if peaks else None,
        llm_tokens=sum((s.prompt_tokens or 0) + (s.completion_tokens or 0) for s in steps),
    )
