"""Facts of a tune run: trials per model, never-sampled models, whether a winner is called."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent.facts.common import (
    FEW_TRIALS_FOR_IMPORTANCE,
    MIN_TRIALS_PER_MODEL,
    SplitFacts,
    Timing,
    split_facts,
    timing,
)
from agent.facts.train import SeedFacts, seed_facts

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord


class ModelTrials(BaseModel):
    model: str
    trials: int  # every finished trial of this model
    complete: int
    pruned: int
    failed: int
    best_value: float | None = None  # its best completed validation value


class TuneFacts(BaseModel):
    kind: str = "tune"
    run_id: int
    dataset: str
    task: str | None = None
    metric: str
    study: str | None = None
    sampler: str | None = None
    seed: int | None = None  # the sampler's seed (None: a run stored before seeds were kept)
    pruner: str | None = None
    models: list[str]  # searched
    per_model: list[ModelTrials]  # in the searched order
    never_sampled: list[str]
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    best_model: str | None
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    winner_supported: bool  # several models and each got MIN_TRIALS_PER_MODEL completed trials
    min_trials_per_model: int = MIN_TRIALS_PER_MODEL
    importances: list[tuple[str, float]]  # the best model's parameters, largest first
    importances_include_model: bool  # whether the model choice is among them
    importances_rough: bool  # fewer than FEW_TRIALS_FOR_IMPORTANCE completed trials
    few_trials_for_importance: int = FEW_TRIALS_FOR_IMPORTANCE
    importance_note: str | None = None
    space: dict[str, Any] = Field(default_factory=dict)
    retrained_n_seeds: int = 0  # retraining runs: seeds, or seed x fold runs
    retrained_per: str = "seed"
    test_mean: float | None = None
    test_std: float | None = None  # None for one retraining seed
    retrained_test_values: list[float] = Field(default_factory=list)
    retrained_seeds: list[SeedFacts] = Field(default_factory=list)  # per retraining run
    splits: SplitFacts | None = None
    seconds: float | None = None
    timing: Timing = Field(default_factory=Timing)


def searched_space(models: list[str], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """model -> parameter -> range as searched (the catalogue's, narrowed by the run's
    overrides): `{"kind": "float", "low", "high", "log"}`, `{"kind": "choice", "choices"}`."""
    from graph_ml.search_space import RangeOverride, build_space

    parsed = {k: RangeOverride.model_validate(v) for k, v in (overrides or {}).items()}
    space = build_space(models, parsed)
    return {
        m: {p: r.model_dump(mode="json") for p, r in params.items()} for m, params in space.items()
    }


def tune_facts(record: RunRecord, store: ExperimentStore | None = None) -> TuneFacts:
    result: dict[str, Any] = record.result or {}
    history = result.get("history") or []
    models = list(result.get("models") or record.config.get("models") or [])
    seen = [str(t.get("model")) for t in history]
    for m in seen:
        if m not in models:
            models.append(m)
    per_model = []
    for m in models:
        mine = [t for t in history if str(t.get("model")) == m]
        states = [str(t.get("state", "COMPLETE")).upper() for t in mine]
        done = [
            t["value"]
            for t in mine
            if str(t.get("state")).upper() == "COMPLETE" and t.get("value") is not None
        ]
        per_model.append(
            ModelTrials(
                model=m,
                trials=len(mine),
                complete=states.count("COMPLETE"),
                pruned=states.count("PRUNED"),
                failed=states.count("FAIL"),
                best_value=max(done) if done else None,
            )
        )
    importances = sorted((result.get("importances") or {}).items(), key=lambda kv: -kv[1])
    retrained = result.get("retrained") or {}
    runs = retrained.get("runs") or []
    tests = [float(r["test_metric"]) for r in runs]
    retrained_config = retrained.get("config") or {}
    retrained_seeds = [
        seed_facts(r, retrained_config.get("epochs"), str(result.get("metric", "accuracy")),
                   retrained.get("split_sizes") or {})
        for r in runs
    ]  # fmt: skip
    n_complete = int(result.get("n_complete", sum(p.complete for p in per_model)))
    overrides = (record.config.get("config") or {}).get("space") or record.config.get("space")
    space = searched_space(models, overrides)
    return TuneFacts(
        run_id=record.id,
        dataset=str(result.get("dataset") or record.config.get("dataset", "")),
        task=result.get("task"),
        metric=str(result.get("metric", "accuracy")),
        study=result.get("study"),
        sampler=result.get("sampler"),
        seed=result.get("seed"),
        pruner=result.get("pruner"),
        models=models,
        per_model=per_model,
        never_sampled=[p.model for p in per_model if p.trials == 0],
        n_trials=int(result.get("n_trials", len(history))),
        n_complete=n_complete,
        n_pruned=int(result.get("n_pruned", sum(p.pruned for p in per_model))),
        n_failed=int(result.get("n_failed", sum(p.failed for p in per_model))),
        best_model=result.get("best_model"),
        best_value=result.get("best_value"),
        best_trial=result.get("best_trial"),
        best_params=dict(result.get("best_params") or {}),
        winner_supported=len(models) > 1
        and all(p.complete >= MIN_TRIALS_PER_MODEL for p in per_model),
        importances=importances,
        importances_include_model=any(k == "model" for k, _ in importances),
        importances_rough=n_complete < FEW_TRIALS_FOR_IMPORTANCE,
        importance_note=result.get("importance_note"),
        space=space,
        retrained_n_seeds=len(runs),
        retrained_per="fold" if any(r.get("fold") is not None for r in runs) else "seed",
        test_mean=result.get("test_mean"),
        test_std=result.get("test_std") if len(runs) > 1 else None,
        retrained_test_values=tests,
        retrained_seeds=retrained_seeds,
        splits=split_facts(retrained.get("split_sizes"), str(result.get("task") or ""))
        if retrained
        else None,
        seconds=result.get("seconds"),
        timing=timing(record, store),
    )
