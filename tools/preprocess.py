"""Splitting as a tool: the train/val/test split a task would use, checked for leakage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tools.base import ToolArgs, ToolContext, ToolResult, tool
from tools.data import load


class PreprocessArgs(ToolArgs):
    dataset: str
    task: str
    split: Literal["auto", "public", "random", "kfold", "link"] = "auto"
    seed: int = Field(0, ge=0)


class PreprocessResult(ToolResult):
    dataset: str
    task: str
    split: str  # the split class: NodeSplit, LinkSplit, GraphSplit
    sizes: dict[str, int]  # train / val / test counts (nodes, edges or graphs)
    leakage_checked: bool


def _sizes(split: object) -> dict[str, int]:
    from graph_ml.preprocess import GraphSplit, LinkSplit, NodeSplit

    if isinstance(split, NodeSplit):
        return {k: int(getattr(split, f"{k}_mask").sum()) for k in ("train", "val", "test")}
    if isinstance(split, GraphSplit):
        return {k: int(getattr(split, f"{k}_idx").numel()) for k in ("train", "val", "test")}
    assert isinstance(split, LinkSplit)
    return {
        k: int(getattr(split, f"{k}_data").edge_label_index.size(1))
        for k in ("train", "val", "test")
    }


@tool("preprocess")
def preprocess_dataset(args: PreprocessArgs, ctx: ToolContext) -> PreprocessResult:
    """Make the split a task trains on and check that no test item leaks into training.

    Args:
        args: dataset, task, split kind and seed.
        ctx: directories.

    Returns:
        The split's kind and sizes.

    Raises:
        UserInputError: the split does not fit the task, or it leaks.
    """
    from graph_ml.preprocess import check_no_leakage, make_split

    ds = load(args.dataset, ctx.workspace, ctx.data_dir)
    split = make_split(ds, args.task, kind=args.split, seed=args.seed)
    check_no_leakage(split)
    return PreprocessResult(
        dataset=ds.spec.name,
        task=args.task,
        split=type(split).__name__,
        sizes=_sizes(split),
        leakage_checked=True,
    )
