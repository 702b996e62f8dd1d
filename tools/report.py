"""Reports as a tool: Markdown and a self-contained HTML page with plots, for stored runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tools.base import ToolArgs, ToolContext, ToolResult, tool


class ReportArgs(ToolArgs):
    run_ids: list[int] = Field(min_length=1, max_length=8)
    format: Literal["markdown", "html"] | None = None  # both are written; this one is listed first
    language: Literal["en", "zh"] = "en"


class ReportResult(ToolResult):
    run_ids: list[int]
    files: list[str]  # the report files and plots written, under the workspace


@tool("report")
def write_report(args: ReportArgs, ctx: ToolContext) -> ReportResult:
    """Write the report of stored runs: learning curves, tuning history, parameter
    importance, comparison with error bars, confusion matrix, and each step's cost.

    Args:
        args: the run ids and the format.
        ctx: the workspace whose experiment store holds the runs.

    Returns:
        The files written (Markdown, HTML, PNG plots), all inside `<workspace>/reports/`.
    """
    # The report reads runs from the experiment store and renders them; both live in the
    # agent layer, so this is the one tool that reaches up to it (lazily, at call time).
    from agent.report import write_report as render_report
    from agent.store import ExperimentStore

    files: list[str] = []
    with ExperimentStore(ctx.workspace) as store:
        for run_id in args.run_ids:
            written = render_report(store, run_id, language=args.language)
            pages = [written.markdown, written.html]
            if args.format == "html":
                pages.reverse()
            files.extend(str(path) for path in [*pages, *written.images])
    return ReportResult(run_ids=args.run_ids, files=files)
