"""The data doctor as a tool: statistics of a dataset and what they mean for the model."""

from __future__ import annotations

from typing import Any

from tools.base import ToolArgs, ToolContext, ToolResult, tool
from tools.data import fingerprint, load


class InspectArgs(ToolArgs):
    dataset: str


class InspectResult(ToolResult):
    dataset: str
    level: str
    tasks: list[str]
    default_task: str
    description: str
    fingerprint: str
    stats: dict[str, Any]  # graph_ml.preprocess.DatasetStats, dumped
    sources: dict[str, str] | None = None  # an imported graph's files and their sha256


@tool("inspect")
def inspect_dataset(args: InspectArgs, ctx: ToolContext) -> InspectResult:
    """Describe a dataset: sizes, degrees, features, class balance, homophily, problems found.

    Args:
        args: the dataset name (or a CSV path inside the workspace or data directory).
        ctx: directories.

    Returns:
        The catalogue entry and `graph_ml.preprocess.describe`'s statistics.
    """
    from graph_ml.preprocess import describe

    # The doctor reports missing feature cells (and suggests feature propagation).
    ds = load(args.dataset, ctx.workspace, ctx.data_dir, missing_features="keep")
    return InspectResult(
        dataset=ds.spec.name,
        level=ds.spec.level,
        tasks=list(ds.spec.tasks),
        default_task=ds.spec.default_task,
        description=ds.spec.description,
        fingerprint=fingerprint(ds),
        stats=describe(ds).model_dump(mode="json"),
        sources=ds.sources,
    )
