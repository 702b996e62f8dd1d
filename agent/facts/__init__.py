"""Typed facts per run kind, computed from a stored run: what the words may say.

Every explanation and report renders from one of these objects (`agent.explain`,
`tools.report`), and each is stored with its run (`ExperimentStore.set_facts`) and shown by
`autoglm experiments show ID --json` under `facts`, so a number in the text can be traced to
the store. A statement is made only when its fact holds; the thresholds below are named, each
with the reason it has that value.

- `train_facts`: per-seed best and stop epochs (given per seed or as a range, never an
  average no run had), whether early stopping actually stopped a seed, train/val/test gaps at
  the kept epoch, split sizes with counts for small splits, timings.
- `compare_facts`: each entry's per-seed values, the test run on the top two and its
  verdict, and every way the compared configs differ besides the compared factor.
- `tune_facts`: trials per model (complete, pruned, failed), the models never sampled,
  whether that is enough to call a winner, sampler, pruner, study, search space.
- `inspect_facts`: the dataset statistics and the bands they fall in.

`facts_for(record, store)` picks the right one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.facts.common import (
    FEW_TRIALS_FOR_IMPORTANCE,
    MIN_TRIALS_PER_MODEL,
    OVERFIT_GAP_POINTS,
    SMALL_SPLIT,
    UNDERFIT_TRAIN_METRIC,
    SplitFacts,
    Timing,
    span,
)
from agent.facts.compare import CompareFacts, compare_facts
from agent.facts.inspect import InspectFacts, inspect_facts
from agent.facts.train import SeedFacts, TrainFacts, train_facts
from agent.facts.tune import TuneFacts, tune_facts

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord

__all__ = [
    "FEW_TRIALS_FOR_IMPORTANCE",
    "MIN_TRIALS_PER_MODEL",
    "OVERFIT_GAP_POINTS",
    "SMALL_SPLIT",
    "UNDERFIT_TRAIN_METRIC",
    "CompareFacts",
    "InspectFacts",
    "SeedFacts",
    "SplitFacts",
    "Timing",
    "TrainFacts",
    "TuneFacts",
    "compare_facts",
    "facts_for",
    "inspect_facts",
    "span",
    "train_facts",
    "tune_facts",
]

BUILDERS = {
    "train": train_facts,
    "compare": compare_facts,
    "tune": tune_facts,
    "inspect": inspect_facts,
}


def facts_for(record: RunRecord, store: ExperimentStore | None = None) -> Any | None:
    """The facts object of a succeeded run of a kind that has one, else None."""
    builder = BUILDERS.get(record.kind)
    if builder is None or record.status != "succeeded" or not record.result:
        return None
    return builder(record, store)


def stored_or_computed(
    record: RunRecord, store: ExperimentStore | None = None, *, strict: bool = False
) -> dict | None:
    """The facts stored with the run, or computed now: for a run stored before facts existed,
    or one whose facts failed when it finished (stored as `{"error": ...}`).

    When `strict` (an explanation must not be written without its facts) they are computed
    whatever the run's state, and a failure raises; else a run without facts gives None and a
    failure is given as `{"error": ...}` (`experiments show --json`).
    """
    stored = getattr(record, "facts", None)
    if stored and "error" not in stored:
        return stored
    if strict:
        return BUILDERS[record.kind](record, store).model_dump(mode="json")
    try:
        facts = facts_for(record, store)
    except Exception as error:  # noqa: BLE001 - the run is stored; say why it has no facts
        return {"error": f"{type(error).__name__}: {error}"}
    return None if facts is None else facts.model_dump(mode="json")
