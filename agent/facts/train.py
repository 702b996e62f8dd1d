"""Facts of a train run: per seed, never averaged into an epoch no run had."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent.facts.common import (
    OVERFIT_GAP_POINTS,
    UNDERFIT_TRAIN_METRIC,
    VAL_LOSS_RISE,
    SplitFacts,
    Timing,
    correct_of,
    span,
    split_facts,
    timing,
)
from graph_ml.stats import mean, sample_std

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord


class SeedFacts(BaseModel):
    """One training run (a seed, and a fold for k-fold)."""

    seed: int
    fold: int | None = None
    best_epoch: int  # the kept checkpoint's epoch
    stopped_epoch: int  # the last epoch that ran
    stopped_early: bool  # early stopping ended it before the epoch budget
    still_improving: bool  # ran the whole budget and its best epoch was (next to) the last
    train_metric: float | None = None  # at the best epoch
    val_metric: float | None = None  # at the best epoch
    test_metric: float
    train_val_gap: float | None = None  # percentage points, train - val at the best epoch
    val_test_gap: float | None = None  # percentage points, val - test
    val_loss_min: float | None = None
    val_loss_last: float | None = None
    loss_rose: bool = False  # val loss ended VAL_LOSS_RISE above its min after an early peak
    test_correct: int | None = None  # accuracy x test size, where the metric is accuracy
    val_correct: int | None = None
    seconds: float | None = None


class TrainFacts(BaseModel):
    kind: str = "train"
    run_id: int
    model: str
    dataset: str
    task: str
    metric: str
    epochs: int | None  # the budget
    patience: int | None
    n_seeds: int  # training runs: seeds, or seed x fold runs for k-fold
    per: str = "seed"  # what one run is: "seed", or "fold" (k-fold: one run per seed and fold)
    per_zh: str = "种子"
    seeds: list[SeedFacts]
    test_mean: float
    test_std: float | None  # None for one seed: there is no spread to show
    val_mean: float | None
    best_epochs: list[int]  # one value or [min, max]
    stopped_epochs: list[int]
    n_stopped_early: int
    n_still_improving: int
    n_overfit: int  # seeds with a train/val gap above OVERFIT_GAP_POINTS
    n_loss_rose: int
    n_underfit: int  # seeds below UNDERFIT_TRAIN_METRIC on their own training data
    train_val_gaps: list[float]  # one value or [min, max], in points
    # Each fit problem seen in at least one seed (overfit_gap, underfit, overfit_loss,
    # still_improving), each told with how many seeds show it; `fit` is the first of them,
    # or good (none in any seed), or no_curves.
    findings: list[str]
    fit: str
    overfit_gap_points: float = OVERFIT_GAP_POINTS
    splits: SplitFacts
    device: str | None = None
    seconds: float | None = None  # the trainer's own wall time, all seeds
    timing: Timing = Field(default_factory=Timing)
    notes: list[str] = Field(default_factory=list)
    published: Reference | None = None  # the catalogue's figure for this model and data
    baseline: Baseline | None = None  # a no-graph model (MLP) on the same data, from the store


class Reference(BaseModel):
    value: float  # percent, as published
    source: str
    delta_points: float  # this run's mean - published


class Baseline(BaseModel):
    run_id: int
    model: str
    test_mean: float
    test_std: float | None
    n_seeds: int
    delta_points: float = 0.0  # the run's mean - this baseline's mean, percentage points


def published_reference(
    model: str, dataset: str, task: str, split: Any, test_mean: float
) -> Reference | None:
    """The catalogue's published figure comparable to this run (same model, data, task and
    protocol), or None."""
    from graph_ml.catalogue import DATASETS, MODELS

    if model not in MODELS or dataset not in DATASETS:
        return None
    found = MODELS.get(model).published_figure(DATASETS.resolve(dataset), task, split)
    if found is None:
        return None
    return Reference(
        value=found.value, source=found.source, delta_points=100 * test_mean - found.value
    )


def no_graph_baseline(
    record: RunRecord, store: ExperimentStore | None, model: str, dataset: str, task: str
) -> Baseline | None:
    """The newest succeeded train run of a model that ignores the edges (`uses_graph=False`)
    on the same dataset and task, if the store has one."""
    from graph_ml.catalogue import MODELS

    baselines = {name for name, spec in MODELS.items() if not spec.uses_graph}
    if store is None or model in baselines:
        return None
    for other in store.list_runs(limit=200, kind="train", status="succeeded"):
        cfg = other.config
        same = (
            str(cfg.get("model", "")).lower() in baselines
            and str(cfg.get("dataset", "")).lower() == dataset.lower()
            and cfg.get("task") == task
        )
        if same and other.id != record.id and other.result:
            base = other.train_result()
            n = len(base.get("runs") or [])
            return Baseline(
                run_id=other.id,
                model=str(cfg.get("model")).lower(),
                test_mean=base["test_mean"],
                test_std=base.get("test_std") if n > 1 else None,
                n_seeds=n,
            )
    return None


def _with_delta(baseline: Baseline | None, test_mean: float) -> Baseline | None:
    if baseline is not None:
        baseline.delta_points = 100 * (test_mean - baseline.test_mean)
    return baseline


def seed_facts(
    run: dict[str, Any], epochs: int | None, metric: str, sizes: dict[str, Any]
) -> SeedFacts:
    curves = run.get("curves") or []
    by_epoch = {int(c.get("epoch", i + 1)): c for i, c in enumerate(curves)}
    best = int(run["best_epoch"])
    stopped = int(run.get("stopped_epoch") or (max(by_epoch) if by_epoch else best))
    row = by_epoch.get(best, {})
    train_m, val_m = row.get("train_metric"), row.get("val_metric", run.get("val_metric"))
    losses = [float(c["val_loss"]) for c in curves if c.get("val_loss") is not None]
    rose = bool(losses) and losses[-1] > min(losses) * (1 + VAL_LOSS_RISE) and best <= stopped / 2
    split = run.get("split_sizes") or sizes
    test = float(run["test_metric"])
    return SeedFacts(
        seed=int(run.get("seed", 0)),
        fold=run.get("fold"),
        best_epoch=best,
        stopped_epoch=stopped,
        stopped_early=bool(epochs) and stopped < int(epochs),
        still_improving=bool(epochs) and stopped >= int(epochs) and best >= stopped - 1,
        train_metric=train_m,
        val_metric=val_m,
        test_metric=test,
        train_val_gap=None if train_m is None or val_m is None else 100 * (train_m - val_m),
        val_test_gap=None if val_m is None else 100 * (val_m - test),
        val_loss_min=min(losses) if losses else None,
        val_loss_last=losses[-1] if losses else None,
        loss_rose=rose,
        test_correct=correct_of(metric, test, split.get("test")),
        val_correct=correct_of(metric, val_m, split.get("val")),
        seconds=run.get("seconds"),
    )


def _findings(seeds: list[SeedFacts]) -> list[str]:
    """Every fit problem that holds for at least one seed, in the order they are told."""
    holds = {
        "overfit_gap": any(
            s.train_val_gap is not None and s.train_val_gap > OVERFIT_GAP_POINTS for s in seeds
        ),
        "underfit": any(
            s.train_metric is not None and s.train_metric < UNDERFIT_TRAIN_METRIC for s in seeds
        ),
        "overfit_loss": any(s.loss_rose for s in seeds),
        "still_improving": any(s.still_improving for s in seeds),
    }
    return [kind for kind, held in holds.items() if held]


def train_facts(record: RunRecord, store: ExperimentStore | None = None) -> TrainFacts:
    result = record.train_result()
    config = {**record.config, **(result.get("config") or {})}
    metric = str(result.get("metric", "accuracy"))
    epochs = config.get("epochs")
    task = str(config.get("task") or "node_classification")
    sizes = result.get("split_sizes") or {}
    runs = result.get("runs") or []
    seeds = [seed_facts(r, epochs, metric, sizes) for r in runs]
    tests = [s.test_metric for s in seeds]
    model = str(config.get("model", "")).lower()
    dataset = str(config.get("dataset", ""))
    test_mean = float(result.get("test_mean", mean(tests) or 0.0))
    has_curves = any(r.get("curves") for r in runs)
    findings = _findings(seeds) if has_curves else []
    gaps = [round(s.train_val_gap, 6) for s in seeds if s.train_val_gap is not None]
    by_fold = any(x.fold is not None for x in seeds)
    return TrainFacts(
        run_id=record.id,
        model=model,
        dataset=dataset,
        task=task,
        metric=metric,
        epochs=epochs,
        patience=config.get("patience"),
        n_seeds=len(seeds),
        per="fold" if by_fold else "seed",
        per_zh="折" if by_fold else "种子",
        seeds=seeds,
        test_mean=test_mean,
        test_std=sample_std(tests) if len(seeds) > 1 else None,
        val_mean=result.get("val_mean"),
        best_epochs=span([s.best_epoch for s in seeds]),
        stopped_epochs=span([s.stopped_epoch for s in seeds]),
        n_stopped_early=sum(s.stopped_early for s in seeds),
        n_still_improving=sum(s.still_improving for s in seeds),
        n_overfit=sum(
            s.train_val_gap is not None and s.train_val_gap > OVERFIT_GAP_POINTS for s in seeds
        ),
        n_loss_rose=sum(s.loss_rose for s in seeds),
        n_underfit=sum(
            s.train_metric is not None and s.train_metric < UNDERFIT_TRAIN_METRIC for s in seeds
        ),
        train_val_gaps=span(gaps),
        findings=findings,
        fit=(findings[0] if findings else "good") if has_curves else "no_curves",
        splits=split_facts(sizes, task),
        device=result.get("device"),
        seconds=result.get("seconds"),
        timing=timing(record, store),
        notes=list(result.get("notes") or []),
        published=published_reference(model, dataset, task, config.get("split"), test_mean),
        baseline=_with_delta(no_graph_baseline(record, store, model, dataset, task), test_mean),
    )


TrainFacts.model_rebuild()
