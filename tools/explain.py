"""Attributions as a tool: which features and edges drove a trained node classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from core.errors import UserInputError
from graph_ml.attributions import explain_node
from tools.base import ToolArgs, ToolContext, ToolResult, tool
from tools.data import inside_allowed, load

EXPLAINER_EPOCHS = 100  # GNNExplainer's own default; its masks settle well before that


class ExplainArgs(ToolArgs):
    config: dict[str, Any]  # the stored run's resolved TrainConfig
    checkpoint: str  # its best weights, inside the workspace
    nodes: list[int] = Field(min_length=1, max_length=16)
    top_k: int = Field(5, ge=1, le=50)


class ExplainResult(ToolResult):
    model: str
    dataset: str
    nodes: list[dict[str, Any]]  # node, predicted, label, top_features, top_edges


def _restore(config: dict[str, Any], checkpoint: Path, ds: Any):
    """The trained model, rebuilt from its config and loaded with its best weights."""
    import torch

    from graph_ml.models import build_model
    from graph_ml.train import TrainConfig, model_hparams

    hparams = model_hparams(TrainConfig.model_validate({**config, "progress": False}))
    model = build_model(
        config["model"], "node_classification", ds.num_features, ds.num_classes, **hparams
    )
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model.eval()


@tool("explain")
def explain_predictions(args: ExplainArgs, ctx: ToolContext) -> ExplainResult:
    """Explain a trained node classifier's predictions for chosen nodes with GNNExplainer.

    Args:
        args: the run's config, checkpoint, and the node ids.
        ctx: directories (the checkpoint must be inside the workspace).

    Returns:
        For each node: the prediction, the true label, the top features and edges.

    Raises:
        UserInputError: not a node classifier, no checkpoint, or node ids out of range.
    """
    config = args.config
    if config.get("task") != "node_classification":
        raise UserInputError(
            f"Attributions are available for node classifiers; this run is {config.get('task')}."
        )
    checkpoint = inside_allowed(args.checkpoint, ctx.workspace, None)
    if checkpoint is None:
        raise UserInputError(
            f"Checkpoint {args.checkpoint!r} is not a file in the workspace {ctx.workspace}; "
            "train the model again to get one."
        )
    ds = load(str(config["dataset"]), ctx.workspace, ctx.data_dir)
    if config.get("normalize_features"):
        from graph_ml.preprocess import normalize_features

        ds = normalize_features(ds, "row")  # the model was trained on row-normalised features
    model = _restore(config, checkpoint, ds)
    nodes = explain_node(model, ds.data, args.nodes, top_k=args.top_k, epochs=EXPLAINER_EPOCHS)
    return ExplainResult(model=config["model"], dataset=ds.spec.name, nodes=nodes)
