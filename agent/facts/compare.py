"""Facts of a compare run: entries, the test on the top two, and what else differs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent.facts.common import SIGNIFICANCE_LEVEL, SplitFacts, Timing, timing
from graph_ml.stats import mean, sample_std, welch

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord

# Config keys that say how a run was executed, not what was trained: never a difference.
NOT_A_DIFFERENCE = {"progress", "checkpoint_dir", "num_workers", "device", "dataset_path"}


class EntryFacts(BaseModel):
    label: str
    run_id: int | None = None
    model: str | None = None
    n: int  # training runs: seeds, or seed x fold runs
    per: str = "seed"  # what one run is: seed or fold
    values: list[float]
    mean: float
    std: float | None  # None for one seed
    splits: SplitFacts | None = None
    best_epochs: list[int] = Field(default_factory=list)  # one value or [min, max]
    stopped_epochs: list[int] = Field(default_factory=list)
    epochs: int | None = None


class Difference(BaseModel):
    """A config key on which the compared runs disagree, with each run's value."""

    key: str
    values: dict[str, Any]  # entry label -> value (None: the key does not apply)
    model_specific: bool  # some runs have no value: it comes with the model (GAT's heads)


class CompareFacts(BaseModel):
    kind: str = "compare"
    run_id: int | None
    metric: str
    entries: list[EntryFacts]
    best: str
    runner_up: str
    difference_points: float  # best - runner-up mean, percentage points
    test: str  # the test run on the top two
    t: float | None
    p_value: float | None
    alpha: float = SIGNIFICANCE_LEVEL
    significant: bool | None  # None: too few seeds to test
    min_seeds: int
    factor: list[str]  # what the comparison is about: model, or the keys that differ
    confounders: list[Difference]  # other keys that differ where every run has a value
    model_specific: list[Difference]  # keys that apply to some runs' models only
    small_test: bool  # some entry's test split is under SMALL_SPLIT
    # The catalogue's published figures for the compared models on this data (percent).
    references: list[dict[str, Any]] = Field(default_factory=list)  # {label, value, source}
    fingerprints: dict[str, str] = Field(default_factory=dict)  # member run id -> dataset's
    timing: Timing = Field(default_factory=Timing)


def _member(store: ExperimentStore | None, run_id: int | None) -> RunRecord | None:
    if store is None or run_id is None:
        return None
    try:
        record = store.get_run(run_id)
    except Exception:  # noqa: BLE001 - a deleted member: its numbers are still in the entry
        return None
    return record.as_training() or record  # a tuning: its retrained best configuration


def _entry(raw: dict[str, Any], member: RunRecord | None) -> EntryFacts:
    values = [float(v) for v in raw.get("values") or []]
    extra: dict[str, Any] = {}
    if member is not None and member.kind == "train" and member.result:
        from agent.facts.train import train_facts

        tf = train_facts(member)
        if not values:
            values = [s.test_metric for s in tf.seeds]
        extra = {
            "model": tf.model,
            "splits": tf.splits,
            "best_epochs": tf.best_epochs,
            "stopped_epochs": tf.stopped_epochs,
            "epochs": tf.epochs,
            "per": tf.per,
        }
    n = len(values) or int(raw.get("n", 0))
    return EntryFacts(
        label=str(raw.get("label") or f"run {raw.get('run_id')}"),
        run_id=raw.get("run_id"),
        n=n,
        values=values,
        mean=float(raw.get("mean", mean(values) or 0.0)),
        std=(sample_std(values) if values else raw.get("std")) if n > 1 else None,
        **extra,
    )


def config_differences(configs: dict[str, dict[str, Any]]) -> list[Difference]:
    """Every key on which the configs (label -> config) disagree."""
    keys = sorted({k for c in configs.values() for k in c} - NOT_A_DIFFERENCE)
    found = []
    for key in keys:
        values = {label: c.get(key) for label, c in configs.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            found.append(
                Difference(
                    key=key, values=values, model_specific=any(v is None for v in values.values())
                )
            )
    return found


def _references(members: list[RunRecord | None]) -> list[dict[str, Any]]:
    from agent.facts.train import published_reference

    found, seen = [], set()
    for m in members:
        if m is None or not m.result:
            continue
        cfg = m.config
        model, dataset = str(cfg.get("model", "")).lower(), str(cfg.get("dataset", ""))
        ref = published_reference(model, dataset, str(cfg.get("task")), cfg.get("split"), 0.0)
        if ref is not None and model not in seen:
            seen.add(model)
            found.append(
                {"label": f"{model} on {dataset}", "value": ref.value, "source": ref.source}
            )
    return found


def compare_facts(record: RunRecord, store: ExperimentStore | None = None) -> CompareFacts:
    stored = record.result or {}
    raws = stored.get("entries") or []
    members = [_member(store, e.get("run_id")) for e in raws]
    entries = [_entry(e, m) for e, m in zip(raws, members, strict=True)]
    ranked = sorted(entries, key=lambda e: -e.mean)
    best, second = ranked[0], ranked[1]
    if "p_value" in stored and stored.get("best") == best.label:
        t, p = stored.get("t_statistic"), stored.get("p_value")  # the compare tool's own test
    else:
        t, p = welch(best.values, second.values)
    configs = {
        e.label: {k: v for k, v in (m.config if m else {}).items()}
        for e, m in zip(entries, members, strict=True)
    }
    diffs = config_differences(configs) if all(members) else []
    factor = ["model"] if any(d.key == "model" for d in diffs) else [d.key for d in diffs]
    rest = [d for d in diffs if d.key not in factor]
    return CompareFacts(
        run_id=record.id,
        metric=str(stored.get("metric", "accuracy")),
        entries=entries,
        best=best.label,
        runner_up=second.label,
        difference_points=100 * (best.mean - second.mean),
        test="Welch's t-test on the per-seed test values of the top two",
        t=t,
        p_value=p,
        alpha=float(stored.get("alpha", SIGNIFICANCE_LEVEL)),
        significant=None if p is None else p < SIGNIFICANCE_LEVEL,
        min_seeds=min(best.n, second.n),
        factor=factor,
        confounders=[d for d in rest if not d.model_specific],
        model_specific=[d for d in rest if d.model_specific],
        references=_references(members),
        fingerprints={
            str(m.id): m.dataset_fingerprint
            for m in members
            if m is not None and m.dataset_fingerprint
        },
        small_test=any(e.splits is not None and e.splits.small_test for e in entries),
        timing=timing(record, store),
    )
