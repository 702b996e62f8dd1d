"""Training as a tool: one model on one dataset, over one or more seeds."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from graph_ml.train import TrainConfig, TrainResult, train
from tools.base import ToolArgs, ToolContext, ToolResult, tool
from tools.data import fingerprint, load


class TrainArgs(ToolArgs):
    """What a plan may set; `None` means the model's usual value (the router fills them).

    `config` instead carries a full `TrainConfig` (a rerun repeats every field: split,
    scheduler, ...); the other hyper-parameter fields must then be left out.
    """

    dataset: str
    task: str | None = None
    model: str | None = None
    epochs: int | None = None
    lr: float | None = None
    hidden_channels: int | None = None
    num_layers: int | None = None
    dropout: float | None = None
    weight_decay: float | None = None
    heads: int | None = None
    aggr: str | None = None
    K: int | None = None
    alpha: float | None = None
    seeds: int | None = None
    seed: int | None = None
    patience: int | None = None
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrainArgs:
        if self.config is not None:
            extra = [k for k, v in self if v is not None and k not in ("dataset", "config")]
            if extra:
                raise ValueError(f"give a full config or fields, not both ({', '.join(extra)})")
        elif self.model is None:
            raise ValueError("model is required (or a full config)")
        return self


class TrainOutput(ToolResult):
    result: TrainResult
    fingerprint: str


def train_config(args: TrainArgs, dataset_name: str, progress: bool = False) -> TrainConfig:
    """The `TrainConfig` for `args`, unset fields left to the config's own defaults."""
    if args.config is not None:
        return TrainConfig.model_validate(
            {**args.config, "dataset": dataset_name, "progress": progress}
        )
    fields = args.model_dump(exclude_none=True, exclude={"config"})
    fields["dataset"] = dataset_name
    fields["progress"] = progress
    return TrainConfig(**fields)


@tool("train")
def train_model(args: TrainArgs, ctx: ToolContext) -> TrainOutput:
    """Train a GNN from the model zoo on a dataset and test it.

    Args:
        args: dataset, task, model and hyper-parameters, or a stored run's full config.
        ctx: directories, the per-epoch callback (progress bar, stored curves), checkpoints.

    Returns:
        The `TrainResult` (per-seed metrics and curves) and the dataset's fingerprint.
    """
    config = train_config(args, args.dataset, ctx.progress)
    # Empty feature cells load as NaN only when feature propagation is to fill them.
    missing = "keep" if "feature_propagation" in config.enhance else "error"
    ds = load(args.dataset, ctx.workspace, ctx.data_dir, missing_features=missing)
    result = train(config, dataset=ds, on_epoch=ctx.on_epoch, checkpoint_dir=ctx.checkpoint_dir)
    return TrainOutput(result=result, fingerprint=fingerprint(ds))
