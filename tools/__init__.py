"""Typed tool wrappers the router calls; they call graph_ml and hold no LLM code.

`TOOLS` is the one registry of them, keyed by name: each entry is a `Tool` with its
function, its pydantic arguments model (`extra="forbid"`), its result model, and its
docstring as its description.

The report tool renders from plain data passed in its arguments; reading those records from
the experiment store (which sits above tools) is the agent's job (`agent.report`).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from tools.base import Tool, ToolArgs, ToolContext, ToolResult, tool

if TYPE_CHECKING:
    from core.registry import Registry

# The tools import torch and PyG (seconds): the registry is built on first use, so importing
# `tools.data` (the router's path rules) or `tools.base` costs nothing, and a CLI process can
# plan while another thread imports them (agent.commands.run).


@cache
def _registry() -> Registry[Tool]:
    from core.registry import Registry
    from tools.compare import compare_runs
    from tools.explain import explain_predictions
    from tools.inspect import inspect_dataset
    from tools.preprocess import preprocess_dataset
    from tools.report import write_report
    from tools.train import train_model
    from tools.tune import tune_model

    registry: Registry[Tool] = Registry("tool")
    for item in (
        inspect_dataset,
        preprocess_dataset,
        train_model,
        tune_model,
        compare_runs,
        explain_predictions,
        write_report,
    ):
        registry.register(item.name, item)
    return registry


def __getattr__(name: str) -> Any:
    if name == "TOOLS":
        return _registry()
    raise AttributeError(f"module 'tools' has no attribute {name!r}")


__all__ = ["TOOLS", "Tool", "ToolArgs", "ToolContext", "ToolResult", "tool"]
