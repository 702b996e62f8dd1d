"""Tuning as a tool: an Optuna search over models and hyper-parameters, then a retrain."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from graph_ml.tune import RangeOverride, TuneResult, make_config, tune
from tools.base import ToolArgs, ToolContext, ToolResult, tool
from tools.data import fingerprint, load


class TuneArgs(ToolArgs):
    dataset: str
    task: str | None = None
    model: str | None = None  # one model; `models` for several; neither: the whole zoo
    models: list[str] | None = None
    n_trials: int = Field(20, ge=1)
    epochs: int | None = Field(None, ge=1)  # per trial
    seeds: int | None = Field(None, ge=1)  # retraining seeds of the best configuration
    timeout: float | None = Field(None, gt=0)
    study: str | None = None  # the caller names it so each request is a fresh study
    # Narrowed ranges: "lr", "gat.heads", ... -> {low, high} / {choices} / {value}.
    space: dict[str, RangeOverride] | None = None
    sampler: str | None = None  # tpe (default), random, grid, cmaes
    pruner: str | None = None  # median (default), hyperband, none
    sampler_seed: int | None = Field(None, ge=0)  # None: graph_ml.tune draws one and keeps it
    # A stored tune run's full TuneConfig (a rerun); `study` and `timeout` still apply.
    config: dict[str, Any] | None = None


class TuneOutput(ToolResult):
    result: TuneResult
    fingerprint: str


@tool("tune")
def tune_model(args: TuneArgs, ctx: ToolContext) -> TuneOutput:
    """Search hyper-parameters (and the model, when several or none are named) with Optuna.

    Args:
        args: dataset, task, models, trial budget, epochs per trial, retraining seeds, and
            optionally a narrowed search space, the sampler and the pruner.
        ctx: directories, the study storage, the per-trial callback, progress.

    Returns:
        The `TuneResult`: best parameters, history, importances, pruned trials, and the
        best configuration retrained over `seeds` seeds.
    """
    ds = load(args.dataset, ctx.workspace, ctx.data_dir)
    if args.config is not None:
        fields = {**args.config, "storage": args.config.get("storage") or ctx.study_storage}
        fields.update({k: v for k, v in (("study", args.study), ("timeout", args.timeout)) if v})
        config = make_config(**fields)
        result = tune(config, on_trial=ctx.on_trial, progress=ctx.progress, dataset=ds)
        return TuneOutput(result=result, fingerprint=fingerprint(ds))
    models = args.models or ([args.model] if args.model else None)
    fields = {
        "dataset": ds.spec.name,
        "task": args.task,
        "models": models,
        "n_trials": args.n_trials,
        "timeout": args.timeout,
        "storage": ctx.study_storage,
        "study": args.study,
        "space": args.space,
        "sampler": args.sampler,
        "pruner": args.pruner,
        "seed": args.sampler_seed,
    }
    if args.epochs is not None:
        fields["epochs"] = args.epochs
    if args.seeds is not None:
        fields["retrain_seeds"] = args.seeds
    config = make_config(**{k: v for k, v in fields.items() if v is not None})
    result = tune(config, on_trial=ctx.on_trial, progress=ctx.progress, dataset=ds)
    return TuneOutput(result=result, fingerprint=fingerprint(ds))
