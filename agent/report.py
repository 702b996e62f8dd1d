"""Reports of stored runs: the agent's side of the `report` tool.

`write_report(store, run_id)` reads one run from the experiment store (with, for a comparison,
the runs it refers to, and for an unfinished training run, the curves it logged), turns it
into the plain data the `report` tool takes (`tools.report.RunData`: config, result, curves,
step costs, comparison facts, and the summary explained in the chosen language), and calls
the tool, which writes `<workspace>/reports/<id>/report.md`, `report.html` (images embedded)
and the PNG plots. Rendering and plotting live in `tools.report` / `tools.report_plots`.
"""

from __future__ import annotations

from pathlib import Path

from agent.explain import explain_run, run_facts, train_result
from agent.store import ExperimentStore, RunRecord
from tools.report import (
    COST_HEADERS,
    ComparisonData,
    ReportArgs,
    ReportResult,
    RunData,
    StepCost,
    cost_rows,
    decision_lines,
)

ReportFiles = ReportResult  # the paths one report wrote: markdown, html, images

__all__ = [
    "COST_HEADERS",
    "ReportFiles",
    "cost_rows",
    "decision_lines",
    "report_args",
    "run_data",
    "write_report",
    "write_reports",
]


def run_data(store: ExperimentStore, record: RunRecord, language: str = "en") -> RunData:
    """Everything the report shows of `record`, read from the store, as plain data."""
    result, comparison, partial, facts = record.result, None, [], None
    if record.status == "succeeded" and record.result:
        if record.kind in ("train", "tune", "compare", "inspect"):
            from agent.facts.common import timing

            # The stored facts' timing was taken as the run ended; the explanation and any
            # earlier report came after, so the report reads the steps again.
            facts = {**run_facts(record, store), "timing": timing(record, store).model_dump()}
        if record.kind == "train":
            result = train_result(record)
        elif record.kind == "compare":
            comparison = ComparisonData(
                metric=facts["metric"],
                entries=[{**e, "std": e["std"] or 0.0} for e in facts["entries"]],
                t=facts["t"],
                p_value=facts["p_value"],
            )
    elif record.kind == "train":
        partial = store.curve_runs(record.id)
    steps = [StepCost.model_validate(s.model_dump()) for s in store.steps(record.id)]
    return RunData(
        id=record.id,
        kind=record.kind,
        status=record.status,
        title=record.title,
        summary=explain_run(record, language, store),
        config=record.config,
        seeds=record.seeds,
        dataset_fingerprint=record.dataset_fingerprint,
        parent_id=record.parent_id,
        session_id=record.session_id,
        seconds=record.seconds,
        versions=record.versions,
        result=result,
        comparison=comparison,
        partial_curves=partial,
        steps=steps,
        facts=facts,
    )


def report_args(
    store: ExperimentStore, run_id: int, language: str = "en", out_dir: Path | None = None
) -> ReportArgs:
    """The report tool's arguments for a stored run: its data and where to write (default
    `<workspace>/reports/<id>/`)."""
    record = store.get_run(run_id)
    out = Path(out_dir) if out_dir else store.reports_dir(record.id)
    return ReportArgs(run=run_data(store, record, language), out_dir=out, language=language)


def write_reports(
    store: ExperimentStore,
    run_ids: list[int],
    first: str | None = None,
    language: str = "en",
) -> list[Path]:
    """Write the report of each run through the executor; the files written, pages first.

    Args:
        store: the experiment store.
        run_ids: the runs to report, each in its own `<workspace>/reports/<id>/`.
        first: `html` lists each HTML page before its Markdown (both are always written).
        language: `en` or `zh` for the summary text.

    Raises:
        UserInputError: no such run.
    """
    from agent.executor import Executor, ExecutorOptions, ToolCall

    call = ToolCall(tool="report", kind=None, args={"format": first}, refs=list(run_ids))
    done = Executor(store, ExecutorOptions(language=language)).execute(call)
    return [Path(p) for p in done.files]


def write_report(
    store: ExperimentStore, run_id: int, out_dir: Path | None = None, language: str = "en"
) -> ReportResult:
    """Write the Markdown and HTML report of one run and its plots; the paths written."""
    from agent.executor import Executor, ExecutorOptions, ToolCall

    args = {"out_dir": str(out_dir)} if out_dir else {}
    call = ToolCall(tool="report", kind=None, args=args, refs=[run_id])
    return Executor(store, ExecutorOptions(language=language)).execute(call).output[0]
