"""Training as a tool: one model on one dataset, over one or more seeds."""

from __future__ import annotations

from graph_ml.train import TrainConfig, TrainResult, train
from tools.base import ToolArgs, ToolContext, ToolResult, tool
from tools.data import load


class TrainArgs(ToolArgs):
    """What a plan may set; `None` means the model's usual value (the router fills them)."""

    dataset: str
    task: str
    model: str
    epochs: int | None = None
    lr: float | None = None
    hidden_channels: int | None = None
    num_layers: int | None = None
    dropout: float | None = None
    weight_decay: float | None = None
    heads: int | None = None
    seeds: int | None = None
    seed: int | None = None
    patience: int | None = None


class TrainOutput(ToolResult):
    result: TrainResult
    fingerprint: str


def train_config(args: TrainArgs, dataset_name: str, progress: bool = False) -> TrainConfig:
    """The `TrainConfig` for `args`, unset fields left to the config's own defaults."""
    fields = args.model_dump(exclude_none=True)
    fields["dataset"] = dataset_name
    fields["progress"] = progress
    return TrainConfig(**fields)


@tool("train")
def train_model(args: TrainArgs, ctx: ToolContext) -> TrainOutput:
    """Train a GNN (gcn, gat, gatv2, sage, gin, mlp, sgc, appnp) on a dataset and test it.

    Args:
        args: dataset, task, model and hyper-parameters.
        ctx: directories, the per-epoch callback (progress bar, stored curves), checkpoints.

    Returns:
        The `TrainResult` (per-seed metrics and curves) and the dataset's fingerprint.
    """
    ds = load(args.dataset, ctx.workspace, ctx.data_dir)
    config = train_config(args, args.dataset, ctx.progress)
    result = train(config, dataset=ds, on_epoch=ctx.on_epoch, checkpoint_dir=ctx.checkpoint_dir)
    return TrainOutput(result=result, fingerprint=ds.fingerprint)
