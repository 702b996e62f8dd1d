"""Typed tool wrappers the router calls; they call graph_ml and hold no LLM code.

`TOOLS` is the one registry of them, keyed by name: each entry is a `Tool` with its
function, its pydantic arguments model (`extra="forbid"`), its result model, and its
docstring as its description.

Reports are not a tool: they read the experiment store, which lives in the agent layer
above, so the agent writes them itself (`agent.report`).
"""

from graph_ml.registry import Registry
from tools.base import Tool, ToolArgs, ToolContext, ToolResult, tool
from tools.compare import compare_runs
from tools.explain import explain_predictions
from tools.inspect import inspect_dataset
from tools.preprocess import preprocess_dataset
from tools.train import train_model
from tools.tune import tune_model

TOOLS: Registry[Tool] = Registry("tool")
for _tool in (
    inspect_dataset,
    preprocess_dataset,
    train_model,
    tune_model,
    compare_runs,
    explain_predictions,
):
    TOOLS.register(_tool.name, _tool)

__all__ = ["TOOLS", "Tool", "ToolArgs", "ToolContext", "ToolResult", "tool"]
