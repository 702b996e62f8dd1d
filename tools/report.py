"""Reports as a tool: Markdown and a self-contained HTML page with plots, from plain data.

`write_report(ReportArgs(run=..., out_dir=...))` renders one run's record (config, result,
curves, step costs, tuning history, importances, comparison facts, the summary text) and
writes `report.md`, `report.html` (every image embedded as base64, so the page travels alone)
and the PNG plots into `out_dir`. It reads no store: the agent (`agent.report`) reads the
records from the experiment store and passes them here as data. The cost table lists every
step recorded: planning latency and tokens, tool wall time, peak memory, re-asks, and the
rule decisions.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

import prompts
from tools.base import ToolArgs, ToolContext, ToolResult, tool
from tools.report_plots import (
    plot_class_counts,
    plot_comparison,
    plot_confusion,
    plot_importances,
    plot_learning_curves,
    plot_tuning_history,
)


class StepCost(BaseModel):
    """The cost of one recorded step: planning, a rule check, a tool call..."""

    name: str
    seconds: float
    peak_mb: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasks: int | None = None
    detail: Any = None  # rule decisions (`[{"rule", "reason"}, ...]`) or other detail


class ComparisonEntry(BaseModel):
    label: str
    run_id: int | None = None
    n: int
    mean: float
    std: float = 0.0
    values: list[float] = Field(default_factory=list)  # per-seed test metric, as dots


class ComparisonData(BaseModel):
    """Entries ranked by mean test metric, and Welch's t-test between the top two."""

    metric: str = "accuracy"
    entries: list[ComparisonEntry]
    t: float | None = None
    p_value: float | None = None


class RunData(BaseModel):
    """One run's record, as plain data: what the report shows of it."""

    id: int
    kind: str
    status: str
    title: str  # a short label, e.g. `train gcn on cora`
    summary: str = ""  # the explanation, already in the report's language
    config: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=list)
    dataset_fingerprint: str | None = None
    parent_id: int | None = None
    session_id: str | None = None
    seconds: float | None = None
    versions: dict[str, str | None] = Field(default_factory=dict)
    # The stored result: a TrainResult dict for train runs (metric, runs with curves and
    # confusion, test_mean...), a TuneResult dict for tune runs (history, importances,
    # retrained), the statistics for inspect runs. None when the run did not succeed.
    result: dict[str, Any] | None = None
    comparison: ComparisonData | None = None  # compare runs
    # Per-epoch curves logged before an unfinished train run stopped:
    # `[{"seed": s, "fold": f, "curves": [{"epoch": e, ...}, ...]}, ...]`.
    partial_curves: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[StepCost] = Field(default_factory=list)
    # `agent.facts` of the run (what the summary was rendered from): per-seed epochs and
    # gaps, split sizes, the timing, a comparison's config differences, a search's trials
    # per model. None for a run that did not succeed.
    facts: dict[str, Any] | None = None


class ReportArgs(ToolArgs):
    run: RunData
    out_dir: Path  # created if missing; report.md, report.html and the plots go here
    language: Literal["en", "zh"] = "en"  # the language of `run.summary`


class ReportResult(ToolResult):
    markdown: Path
    html: Path
    images: list[Path]  # the PNG plots, also embedded in the HTML


@dataclass
class Figure:
    name: str  # file name without .png
    title: str
    path: Path | None = None


@dataclass
class Section:
    title: str
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


class _Step(Protocol):
    name: str
    seconds: float
    peak_mb: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasks: int | None
    detail: Any


# -- sections ---------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"  # as the explanations print stored numbers
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def _compare_entries(run: RunData) -> list[dict[str, Any]]:
    """A comparison's entries from its facts (label, run id, seeds); [] for other runs."""
    return ((run.facts or {}).get("entries") or []) if run.kind == "compare" else []


def _config_section(run: RunData) -> Section:
    rows = [[k, _fmt(v)] for k, v in sorted(run.config.items())]
    entries = _compare_entries(run)
    if not rows and entries:  # a comparison of stored runs: theirs are the configs
        runs = ", ".join(str(e.get("run_id")) for e in entries)
        rows = [["compared runs", runs]]
    return Section("Configuration", headers=["field", "value"], rows=rows)


def _provenance_section(run: RunData) -> Section:
    fingerprint = (run.result or {}).get("fingerprint") if run.kind == "train" else None
    members = (run.facts or {}).get("fingerprints") or {}
    if not (run.dataset_fingerprint or fingerprint) and members:  # a compare: its trainings'
        fingerprint = "; ".join(f"{fp} (run {rid})" for rid, fp in members.items())
    rows = [
        ["run", str(run.id)],
        ["kind", run.kind],
        ["status", run.status],
        _seeds_row(run),
        ["dataset fingerprint", run.dataset_fingerprint or fingerprint or "n/a"],
        ["parent run", str(run.parent_id) if run.parent_id else "-"],
        ["session", run.session_id or "-"],
        ["wall time (s)", _fmt(run.seconds)],
    ]
    rows += [
        [f"{name} version", version or "not installed"] for name, version in run.versions.items()
    ]
    return Section("Provenance", headers=["field", "value"], rows=rows)


def _seeds_row(run: RunData) -> list[str]:
    entries = _compare_entries(run)
    if entries:  # a comparison ran no seeds of its own: its entries did
        return ["seeds per entry", "; ".join(f"{e.get('label')}: {e.get('n')}" for e in entries)]
    return ["seeds", ", ".join(map(str, run.seeds))]


def cost_rows(steps: list[_Step], detail: bool = True) -> list[list[str]]:
    """One row per recorded step: name, seconds, peak MB, tokens, re-asks (, decisions)."""
    rows = []
    for step in steps:
        rows.append(
            [
                step.name,
                f"{step.seconds:.3f}",
                _fmt(step.peak_mb) or "-",
                _fmt(step.prompt_tokens) or "-",
                _fmt(step.completion_tokens) or "-",
                _fmt(step.reasks) or "-",
                *([_decisions(step.detail)] if detail else []),
            ]
        )
    return rows


COST_HEADERS = [
    "step",
    "seconds",
    "peak MB",
    "prompt tokens",
    "completion tokens",
    "re-asks",
    "decisions / detail",
]


def decision_lines(steps: list[_Step]) -> list[str]:
    """Every rule decision (and other step detail) recorded, one `step: text` line each."""
    return [
        f"{step.name}: {line}"
        for step in steps
        for line in _decisions(step.detail).splitlines()
        if line
    ]


def _plan_lines(detail: dict[str, Any]) -> str:
    """A planning step's actions as `action: key=value, ...` lines."""
    lines = []
    for action in detail.get("actions") or []:
        fields = ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else _fmt(v)}"
            for k, v in action.items()
            if k != "action" and v not in (None, [], {})
        )
        lines.append(f"planned {action.get('action')}: {fields}")
    return "\n".join(lines)


def _decisions(detail: Any) -> str:
    """Rule decisions as `rule: reason` lines; a plan as its actions; other detail as
    compact JSON."""
    if detail is None:
        return ""
    if isinstance(detail, dict) and isinstance(detail.get("actions"), list):
        return _plan_lines(detail)
    if isinstance(detail, dict) and "decisions" in detail:
        detail = detail["decisions"]
    if isinstance(detail, list) and all(isinstance(d, dict) for d in detail):
        parts = []
        for d in detail:
            reason = d.get("reason") or d.get("message") or d.get("decision") or ""
            parts.append(f"{d.get('rule', d.get('name', ''))}: {reason}".strip(": "))
        return "\n".join(parts)
    return _fmt(detail)


def _cost_section(run: RunData) -> Section:
    steps = run.steps
    if not steps:
        return Section("Costs", text="No step costs were recorded for this run.")
    timing = (run.facts or {}).get("timing") or {}
    lines = []
    if run.seconds is not None and timing:
        own = timing.get("accounted_seconds") or 0.0
        members = ", including the trainings it ran" if run.kind == "compare" else ""
        share = timing.get("accounted_percent")
        lines.append(
            f"Run wall time {run.seconds:.2f} s; its measured tool step took {own:.2f} s"
            + (f" ({share:.0f}% of it)" if share is not None else "")
            + f"{members}."
        )
        if timing.get("before_seconds"):
            lines.append(f"Before the run: {timing['before_seconds']:.2f} s (planning, rules).")
        if timing.get("after_seconds"):
            lines.append(f"After it: {timing['after_seconds']:.2f} s (explanation, reports).")
        if timing.get("peak_mb") is not None:
            lines.append(f"Peak memory of the tool step: {timing['peak_mb']:.1f} MB.")
        lines.append(f"LLM tokens: {timing.get('llm_tokens', 0)}.")
    else:
        lines.append(f"{len(steps)} steps, {sum(s.seconds for s in steps):.2f} s in all.")
    return Section(
        "Costs",
        text="\n".join(lines),
        headers=COST_HEADERS[:-1],
        rows=cost_rows(steps, detail=False),
    )


def _decision_section(run: RunData) -> Section | None:
    lines = decision_lines(run.steps)
    if not lines:
        return None
    return Section("Plan and rule decisions", text="\n".join(f"- {line}" for line in lines))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _pts(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _train_sections(
    result: dict[str, Any], out: Path, prefix: str = "", facts: dict[str, Any] | None = None
) -> list[Section]:
    metric = result.get("metric", "accuracy")
    runs = result.get("runs") or []
    seeds = (facts or {}).get("seeds") or []
    splits = (facts or {}).get("splits") or {}
    if seeds:
        test_n = splits.get("test")
        rows = [
            [
                str(r["seed"]) + ("" if r.get("fold") is None else f" (fold {r['fold']})"),
                str(r["best_epoch"]),
                f"{r['stopped_epoch']}" + (" (early stop)" if r["stopped_early"] else " (all)"),
                _pct(r.get("train_metric")),
                _pct(r.get("val_metric")),
                _pct(r["test_metric"]),
                _pts(r.get("train_val_gap")),
                "-" if r.get("test_correct") is None else f"{r['test_correct']} of {test_n}",
                _fmt(r.get("seconds")),
            ]
            for r in seeds
        ]
        headers = [
            "seed",
            "best epoch",
            "last epoch",
            f"train {metric}",
            f"val {metric}",
            f"test {metric}",
            "train-val gap (points)",
            "test correct",
            "seconds",
        ]
    else:
        rows = [
            [
                str(r.get("seed")),
                str(r.get("best_epoch")),
                str(r.get("stopped_epoch")),
                _fmt(r.get("val_metric")),
                _fmt(r.get("test_metric")),
                _fmt(r.get("seconds")),
            ]
            for r in runs
        ]
        headers = [
            "seed",
            "best epoch",
            "stopped epoch",
            f"val {metric}",
            f"test {metric}",
            "seconds",
        ]
    n = len(runs)
    spread = f" ± {100 * result['test_std']:.2f} points (sample std)" if n > 1 else " (one seed)"
    text = f"Test {metric}: {_pct(result['test_mean'])}{spread} over {n} seed(s)."
    if splits:
        unit = splits.get("unit", "examples")
        text += (
            f"\nSplit sizes: {splits.get('train')} train, {splits.get('val')} validation, "
            f"{splits.get('test')} test {unit}."
        )
        small = [name for name in ("val", "test") if splits.get(f"small_{name}")]
        if small:
            text += (
                f" Warning: fewer than {splits.get('threshold')} {unit} in the "
                f"{' and '.join(small)} split: each figure moves in large steps."
            )
    published = (facts or {}).get("published")
    if published:
        text += (
            f"\nPublished figure: {published['value']}% ({published['source']}); "
            f"this run is {published['delta_points']:+.2f} points from it."
        )
    sections = [Section(f"{prefix}Results per seed", text=text, headers=headers, rows=rows)]
    slug = "_".join(prefix.lower().split() + [""])  # "Retrained " -> "retrained_"
    name = f"{slug}learning_curves"
    path = plot_learning_curves(runs, metric, out / f"{name}.png")
    if path:
        sections.append(
            Section(f"{prefix}Learning curves", figures=[Figure(name, "Learning curves", path)])
        )
    confusions = [r["confusion"] for r in runs if r.get("confusion")]
    if confusions:
        total = [
            [sum(m[i][j] for m in confusions) for j in range(len(confusions[0]))]
            for i in range(len(confusions[0]))
        ]
        name = f"{slug}confusion"
        title = f"Test confusion matrix, summed over {len(confusions)} seed(s)"
        path = plot_confusion(total, out / f"{name}.png", title)
        sections.append(Section(f"{prefix}Confusion matrix", figures=[Figure(name, title, path)]))
    return sections


def _range_text(param: dict[str, Any]) -> str:
    if param.get("kind") == "choice":
        return "one of " + ", ".join(_fmt(c) for c in param.get("choices") or [])
    scale = ", log scale" if param.get("log") else ""
    return f"{_fmt(param.get('low'))} to {_fmt(param.get('high'))}{scale}"


def _tune_sections(
    result: dict[str, Any], out: Path, facts: dict[str, Any] | None = None
) -> list[Section]:
    facts = facts or {}
    metric = result.get("metric", "accuracy")
    history = result.get("history") or []
    search = [
        ["study", str(result.get("study", "-"))],
        ["sampler", str(result.get("sampler", "-"))],
        ["sampler seed", "-" if result.get("seed") is None else str(result["seed"])],
        ["pruner", str(result.get("pruner", "-"))],
        ["models searched", ", ".join(result.get("models") or [])],
        [
            "trials",
            f"{result.get('n_trials')} ({result.get('n_complete')} completed, "
            f"{result.get('n_pruned')} pruned, {result.get('n_failed')} failed)",
        ],
        ["epochs per trial (max)", str(max((t.get("epochs") or 0 for t in history), default=0))],
    ]
    if facts.get("never_sampled"):
        search.append(["never sampled", ", ".join(facts["never_sampled"])])
    sections = [Section("Search", headers=["field", "value"], rows=search)]
    if facts.get("per_model"):
        rows = [
            [
                m["model"],
                str(m["trials"]),
                str(m["complete"]),
                str(m["pruned"]),
                str(m["failed"]),
                _pct(m.get("best_value")),
            ]
            for m in facts["per_model"]
        ]
        note = ""
        if len(facts["per_model"]) > 1:
            note = (
                f"Each model needs at least {facts.get('min_trials_per_model')} completed "
                "trials before the search can call a winner: "
                + (
                    "met."
                    if facts.get("winner_supported")
                    else "not met, so the best model found is not established as the best model."
                )
            )
        sections.append(
            Section(
                "Trials per model",
                text=note,
                rows=rows,
                headers=["model", "trials", "completed", "pruned", "failed", f"best val {metric}"],
            )
        )
    space = facts.get("space") or {}
    if space:
        rows = [[m, p, _range_text(r)] for m, params in space.items() for p, r in params.items()]
        sections.append(Section("Search space", headers=["model", "parameter", "range"], rows=rows))
    if result.get("best_params"):
        rows = [[k, _fmt(v)] for k, v in result["best_params"].items()]
        sections.append(
            Section(
                "Best configuration",
                text=f"Trial {result.get('best_trial')} ({result.get('best_model')}): validation "
                f"{metric} {_pct(result.get('best_value'))}.",
                headers=["parameter", "value"],
                rows=rows,
            )
        )
    keys = sorted({k for t in history for k in (t.get("params") or {})})
    rows = [
        [
            str(t.get("number")),
            str(t.get("state")),
            _pct(t.get("value")),
            str(t.get("model", "")),
            *[_fmt((t.get("params") or {}).get(k)) or "-" for k in keys],
            _fmt(t.get("seconds")),
        ]
        for t in history
    ]
    sections.append(
        Section(
            "Trials",
            rows=rows,
            headers=["trial", "state", f"val {metric}", "model", *keys, "seconds"],
        )
    )
    path = plot_tuning_history(history, metric, out / "tuning_history.png")
    if path:
        sections.append(
            Section("Tuning history", figures=[Figure("tuning_history", "Tuning history", path)])
        )
    path = plot_importances(result.get("importances") or {}, out / "importances.png")
    if path:
        rough = ""
        if facts.get("importances_rough"):
            rough = (
                f"From {facts.get('n_complete')} completed trials (fewer than "
                f"{facts.get('few_trials_for_importance')}): rough. "
            )
        sections.append(
            Section(
                "Parameter importance",
                text=rough + f"Parameters of {result.get('best_model')} only; the choice of "
                "model is not among them.",
                figures=[Figure("importances", "Parameter importance", path)],
            )
        )
    elif result.get("importance_note"):
        sections.append(Section("Parameter importance", text=result["importance_note"]))
    if result.get("retrained"):
        retrained = {"seeds": facts.get("retrained_seeds"), "splits": facts.get("splits")}
        sections += _train_sections(result["retrained"], out, prefix="Retrained ",
                                    facts=retrained)  # fmt: skip
    return sections


def _compare_sections(
    facts: ComparisonData, out: Path, full: dict[str, Any] | None = None
) -> list[Section]:
    full = full or {}
    entries = [e.model_dump() for e in facts.entries]
    by_label = {e["label"]: e for e in full.get("entries") or []}
    rows = []
    for e in entries:
        fe = by_label.get(e["label"], {})
        splits = fe.get("splits") or {}
        rows.append(
            [
                e["label"],
                str(e["run_id"] or "-"),
                str(e["n"]),
                _pct(e["mean"]),
                _pct(e["std"]) if e["n"] > 1 else "- (one seed)",
                ", ".join(_pct(v) for v in e["values"]),
                str(fe.get("epochs") or "-"),
                str(splits.get("test") or "-"),
            ]
        )
    if facts.p_value is None:
        test = "Too few seeds for Welch's t-test (each side needs at least 2)."
    else:
        verdict = (
            "significant" if facts.p_value < (full.get("alpha") or 0.05) else "not significant"
        )
        test = (
            f"Welch's t-test on the per-seed test values of the top two: t = {_fmt(facts.t)}, "
            f"p = {_fmt(facts.p_value)} ({verdict} at {full.get('alpha', 0.05)})."
        )
    refs = [
        {"label": f"published {r['label']}: {r['value']}%", "value": r["value"] / 100}
        for r in full.get("references") or []
    ]
    path = plot_comparison(entries, facts.metric, out / "comparison.png", refs)
    sections = [
        Section(
            "Comparison",
            text=test,
            headers=[
                "entry",
                "run",
                "seeds",
                f"mean test {facts.metric}",
                "std",
                "per seed",
                "epochs",
                "test size",
            ],
            rows=rows,
            figures=[
                Figure(
                    "comparison",
                    "Comparison: mean with ± sample-std error bars, "
                    "axis from 0" + ("; dashed: published figures" if refs else ""),
                    path,
                )
            ],
        )
    ]
    diffs = (full.get("confounders") or []) + (full.get("model_specific") or [])
    factor = ", ".join(full.get("factor") or [])
    if full:
        labels = [e["label"] for e in entries]
        rows = [
            [
                d["key"],
                *[_fmt(d["values"].get(label)) or "-" for label in labels],
                "only some models have it" if d["model_specific"] else "differs",
            ]
            for d in diffs
        ]
        text = f"Compared factor: {factor or 'none found'}. " + (
            "The configs also differ in the keys below."
            if full.get("confounders")
            else "No other setting differs, apart from those below that apply to one model only."
            if diffs
            else "No other setting differs."
        )
        sections.append(
            Section(
                "Config differences",
                text=text,
                rows=rows,
                headers=["key", *labels, "note"] if rows else [],
            )
        )
    return sections


def _inspect_sections(result: dict[str, Any], out: Path) -> list[Section]:
    stats = result.get("stats", result)
    scalars = {k: v for k, v in stats.items() if not isinstance(v, (list, dict)) or k == "degree"}
    rows = [[k, _fmt(v)] for k, v in scalars.items()]
    sections = [Section("Statistics", headers=["statistic", "value"], rows=rows)]
    if stats.get("class_counts"):
        path = plot_class_counts(stats["class_counts"], out / "class_counts.png")
        sections.append(
            Section("Class sizes", figures=[Figure("class_counts", "Class sizes", path)])
        )
    return sections


def build_sections(run: RunData, out: Path) -> list[Section]:
    """Every section of the report of `run`, with its plots written under `out`."""
    sections = [Section("Summary", text=run.summary)]
    if run.status == "succeeded" and (run.result or run.comparison):
        if run.kind == "train" and run.result:
            sections += _train_sections(run.result, out, facts=run.facts)
        elif run.kind == "tune" and run.result:
            sections += _tune_sections(run.result, out, facts=run.facts)
        elif run.kind == "compare" and run.comparison:
            sections += _compare_sections(run.comparison, out, run.facts)
        elif run.kind == "inspect" and run.result:
            sections += _inspect_sections(run.result, out)
    elif run.kind == "train":
        path = plot_learning_curves(run.partial_curves, "metric", out / "learning_curves.png")
        if path:
            sections.append(
                Section(
                    "Learning curves (epochs logged before it stopped)",
                    figures=[Figure("learning_curves", "Learning curves", path)],
                )
            )
    decisions = _decision_section(run)
    sections += [
        _config_section(run),
        *([decisions] if decisions else []),
        _cost_section(run),
        _provenance_section(run),
    ]
    return sections


# -- rendering --------------------------------------------------------------------------


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@tool("report")
def write_report(args: ReportArgs, ctx: ToolContext | None = None) -> ReportResult:
    """Write the report of a run: Markdown and a self-contained HTML page with its plots
    (learning curves, tuning history, parameter importance, comparison with error bars,
    confusion matrix) and each step's cost.

    Args:
        args: the run's record as plain data, the output directory and the language.
        ctx: unused; reports read nothing but `args`.

    Returns:
        The paths written: `out_dir/report.md`, `out_dir/report.html` and the PNG plots.
    """
    run, out = args.run, Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(run, out)
    images = [f.path for s in sections for f in s.figures if f.path]
    title = f"open-autoglm report: run {run.id} ({run.title}, {run.status})"
    markdown = prompts.render(
        "report.md.j2", title=title, sections=sections, image_src=lambda p: p.name
    )
    html = prompts.render(
        "report.html.j2",
        title=title,
        sections=sections,
        image_src=_data_uri,
        language=args.language,
    )
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(html, encoding="utf-8")
    return ReportResult(markdown=md_path, html=html_path, images=images)
