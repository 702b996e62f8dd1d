"""Typed tool wrappers the router calls; they call graph_ml and hold no LLM code.

`TOOLS` is the one registry of them, keyed by name: each entry is a `Tool` with its
function, its pydantic arguments model (`extra="forbid"`), its result model, and its
docstring as its description.

The report tool renders from plain data passed in its arguments; reading those records from
the experiment store (which sits above tools) is the agent's job (`agent.report`).
"""

from core.registry import Registry
from tools.base import Tool, ToolArgs, ToolContext, ToolResult, tool
from tools.compare import compare_runs
from tools.explain import explain_predictions
from tools.inspect import inspect_dataset
from tools.preprocess import preprocess_dataset
from tools.report import write_report
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
    write_report,
):
    TOOLS.register(_tool.name, _tool)

__all__ = ["TOOLS", "Tool", "ToolArgs", "ToolContext", "ToolResult", "tool"]
