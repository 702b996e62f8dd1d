"""Reports of stored runs: Markdown plus a self-contained HTML page, with plots.

`write_report(store, run_id)` reads one run (and, for a comparison or a tuning run, the runs
it refers to) from the experiment store and writes `<workspace>/reports/<id>/report.md`,
`report.html` (every image embedded as base64, so the page travels alone) and the PNG files.
Plots are drawn with matplotlib's object API on the Agg canvas (no display, thread-safe):
learning curves, tuning history, parameter importance, comparison with error bars,
confusion matrix. The cost table lists every step the store recorded: planning latency and
tokens, tool wall time, peak memory, re-asks, and the rule decisions.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from agent.explain import comparison_facts, explain_run, fmt_value, train_result
from agent.store import ExperimentStore, RunRecord, StepRecord

DPI = 110  # sharp enough to read on a laptop, ~40 KB per plot


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


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    images: list[Path]


def _new_figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    return fig


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


# -- plots ------------------------------------------------------------------------------


def plot_learning_curves(runs: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """Training loss, validation loss and validation metric per epoch, one line per seed."""
    if not any(r.get("curves") for r in runs):
        return None
    fig = _new_figure(9.0, 3.6)
    loss_ax, metric_ax = fig.subplots(1, 2)
    for run in runs:
        curves = run.get("curves") or []
        epochs = [c.get("epoch", i + 1) for i, c in enumerate(curves)]
        label = f"seed {run.get('seed')}"
        if run.get("fold") is not None:
            label += f", fold {run['fold']}"
        (line,) = loss_ax.plot(
            epochs, [c.get("train_loss") for c in curves], label=f"train, {label}"
        )
        if any("val_loss" in c for c in curves):
            loss_ax.plot(
                epochs,
                [c.get("val_loss") for c in curves],
                "--",
                color=line.get_color(),
                label=f"val, {label}",
            )
        metric_ax.plot(
            epochs, [c.get("val_metric") for c in curves], color=line.get_color(), label=label
        )
        if run.get("best_epoch"):
            metric_ax.axvline(run["best_epoch"], color=line.get_color(), alpha=0.3, lw=1)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss (solid train, dashed validation)")
    metric_ax.set(
        xlabel="epoch",
        ylabel=f"validation {metric}",
        title="Validation metric (vertical: best epoch)",
    )
    if len(runs) <= 5:
        loss_ax.legend(fontsize="small")
        metric_ax.legend(fontsize="small")
    return _save(fig, path)


def plot_confusion(confusion: list[list[int]], path: Path, title: str) -> Path:
    """Test-set confusion matrix, counts annotated when it is small enough to read."""
    fig = _new_figure(4.8, 4.2)
    ax = fig.subplots()
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    n = len(confusion)
    if n <= 12:
        peak = max(max(row) for row in confusion) or 1
        for i, row in enumerate(confusion):
            for j, value in enumerate(row):
                color = "white" if value > peak / 2 else "black"
                ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=8)
    ax.set(
        xlabel="predicted class", ylabel="true class", title=title, xticks=range(n), yticks=range(n)
    )
    return _save(fig, path)


def plot_tuning_history(history: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """Each trial's validation value (pruned ones hollow) and the best value so far."""
    done = [t for t in history if t.get("value") is not None]
    if not done:
        return None
    fig = _new_figure()
    ax = fig.subplots()
    complete = [t for t in done if str(t.get("state")).upper() != "PRUNED"]
    pruned = [t for t in done if str(t.get("state")).upper() == "PRUNED"]
    ax.scatter([t["number"] for t in complete], [t["value"] for t in complete], label="complete")
    if pruned:
        ax.scatter(
            [t["number"] for t in pruned],
            [t["value"] for t in pruned],
            facecolors="none",
            edgecolors="gray",
            label="pruned",
        )
    best, running = [], None
    for t in sorted(complete, key=lambda t: t["number"]):
        running = t["value"] if running is None else max(running, t["value"])
        best.append((t["number"], running))
    if best:
        ax.step(*zip(*best, strict=True), where="post", color="C3", label="best so far")
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="Tuning history")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_importances(importances: dict[str, float], path: Path) -> Path | None:
    """Horizontal bars of parameter importance, the most important on top."""
    if not importances:
        return None
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = _new_figure(6.0, 0.5 + 0.45 * len(items))
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items], color="C2")
    ax.set(xlabel="importance (fANOVA, sums to 1)", title="Which parameters mattered")
    return _save(fig, path)


def plot_comparison(entries: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Mean test metric per entry with a standard-deviation error bar, seeds as dots."""
    fig = _new_figure(max(4.0, 1.4 * len(entries) + 1.5), 4.0)
    ax = fig.subplots()
    x = range(len(entries))
    ax.bar(
        x,
        [e["mean"] for e in entries],
        yerr=[e["std"] for e in entries],
        capsize=6,
        color="C0",
        alpha=0.7,
    )
    for i, e in enumerate(entries):
        ax.scatter([i] * len(e["values"]), e["values"], color="black", s=12, zorder=3)
    low = min(min(e["values"] or [e["mean"]]) - e["std"] for e in entries)
    ax.set_ylim(max(0.0, low - 0.05), None)
    ax.set_xticks(list(x), [e["label"] for e in entries], rotation=15)
    ax.set(ylabel=f"test {metric}", title="Comparison (mean ± std over seeds)")
    return _save(fig, path)


def plot_class_counts(counts: list[int], path: Path) -> Path:
    fig = _new_figure(5.0, 3.2)
    ax = fig.subplots()
    ax.bar(range(len(counts)), counts, color="C4")
    ax.set(xlabel="class", ylabel="count", title="Class sizes")
    return _save(fig, path)


# -- sections ---------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return fmt_value(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def _config_section(record: RunRecord) -> Section:
    rows = [[k, _fmt(v)] for k, v in sorted(record.config.items())]
    return Section("Configuration", headers=["field", "value"], rows=rows)


def _provenance_section(record: RunRecord) -> Section:
    fingerprint = (record.result or {}).get("fingerprint") if record.kind == "train" else None
    rows = [
        ["run", str(record.id)],
        ["kind", record.kind],
        ["status", record.status],
        ["seeds", ", ".join(map(str, record.seeds))],
        ["dataset fingerprint", record.dataset_fingerprint or fingerprint or "n/a"],
        ["parent run", str(record.parent_id) if record.parent_id else "-"],
        ["session", record.session_id or "-"],
        ["wall time (s)", _fmt(record.seconds)],
    ]
    rows += [
        [f"{name} version", version or "not installed"] for name, version in record.versions.items()
    ]
    return Section("Provenance", headers=["field", "value"], rows=rows)


def cost_rows(steps: list[StepRecord], detail: bool = True) -> list[list[str]]:
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


def decision_lines(steps: list[StepRecord]) -> list[str]:
    """Every rule decision (and other step detail) recorded, one `step: text` line each."""
    return [
        f"{step.name}: {line}"
        for step in steps
        for line in _decisions(step.detail).splitlines()
        if line
    ]


def _decisions(detail: Any) -> str:
    """Rule decisions as `rule: reason` lines; other detail as compact JSON."""
    if detail is None:
        return ""
    if isinstance(detail, dict) and "decisions" in detail:
        detail = detail["decisions"]
    if isinstance(detail, list) and all(isinstance(d, dict) for d in detail):
        parts = []
        for d in detail:
            reason = d.get("reason") or d.get("message") or d.get("decision") or ""
            parts.append(f"{d.get('rule', d.get('name', ''))}: {reason}".strip(": "))
        return "\n".join(parts)
    return _fmt(detail)


def _cost_section(store: ExperimentStore, record: RunRecord) -> Section:
    steps = store.steps(record.id)
    if not steps:
        return Section("Costs", text="No step costs were recorded for this run.")
    total = sum(s.seconds for s in steps)
    tokens = sum((s.prompt_tokens or 0) + (s.completion_tokens or 0) for s in steps)
    peaks = [s.peak_mb for s in steps if s.peak_mb is not None]
    text = f"{len(steps)} steps, {total:.2f} s in all, {tokens} LLM tokens"
    text += f", peak memory {max(peaks):.1f} MB." if peaks else "."
    return Section("Costs", text=text, headers=COST_HEADERS, rows=cost_rows(steps))


def _train_sections(result: dict[str, Any], out: Path, prefix: str = "") -> list[Section]:
    metric = result.get("metric", "accuracy")
    runs = result.get("runs") or []
    rows = [
        [
            str(r.get("seed")),
            str(r.get("best_epoch")),
            str(r.get("stopped_epoch")),
            _fmt(r.get("val_metric")),
            _fmt(r.get("test_metric")),
            _fmt((r.get("metrics") or {}).get("macro_f1")),
            _fmt(r.get("seconds")),
        ]
        for r in runs
    ]
    summary = Section(
        f"{prefix}Results per seed",
        text=f"Test {metric}: mean {_fmt(result['test_mean'])}, std {_fmt(result.get('test_std'))}"
        f" over {len(runs)} seed(s); validation mean {_fmt(result.get('val_mean'))}.",
        headers=[
            "seed",
            "best epoch",
            "stopped epoch",
            f"val {metric}",
            f"test {metric}",
            "macro-F1",
            "seconds",
        ],
        rows=rows,
    )
    sections = [summary]
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


def _tune_sections(result: dict[str, Any], out: Path) -> list[Section]:
    metric = result.get("metric", "accuracy")
    history = result.get("history") or []
    rows = [
        [
            str(t.get("number")),
            str(t.get("state")),
            _fmt(t.get("value")),
            str(t.get("model", "")),
            _fmt(t.get("params")),
        ]
        for t in history
    ]
    sections = [
        Section("Trials", headers=["trial", "state", f"val {metric}", "model", "params"], rows=rows)
    ]
    path = plot_tuning_history(history, metric, out / "tuning_history.png")
    if path:
        sections.append(
            Section("Tuning history", figures=[Figure("tuning_history", "Tuning history", path)])
        )
    path = plot_importances(result.get("importances") or {}, out / "importances.png")
    if path:
        sections.append(
            Section(
                "Parameter importance",
                figures=[Figure("importances", "Parameter importance", path)],
            )
        )
    elif result.get("importance_note"):
        sections.append(Section("Parameter importance", text=result["importance_note"]))
    if result.get("retrained"):
        sections += _train_sections(result["retrained"], out, prefix="Retrained ")
    return sections


def _compare_sections(store: ExperimentStore, record: RunRecord, out: Path) -> list[Section]:
    facts = comparison_facts(record, store)
    rows = [
        [e["label"], str(e["run_id"] or "-"), str(e["n"]), _fmt(e["mean"]), _fmt(e["std"])]
        for e in facts["entries"]
    ]
    path = plot_comparison(facts["entries"], facts["metric"], out / "comparison.png")
    return [
        Section(
            "Comparison",
            text=f"Welch's t-test between the top two: t = {_fmt(facts['t'])}, "
            f"p = {_fmt(facts['p_value'])}.",
            headers=["entry", "run", "seeds", f"mean test {facts['metric']}", "std"],
            rows=rows,
            figures=[Figure("comparison", "Comparison with error bars", path)],
        )
    ]


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


def build_sections(
    store: ExperimentStore, record: RunRecord, out: Path, language: str
) -> list[Section]:
    """Every section of the report of `record`, with its plots written under `out`."""
    sections = [Section("Summary", text=explain_run(record, language, store))]
    if record.status == "succeeded" and record.result:
        if record.kind == "train":
            sections += _train_sections(train_result(record), out)
        elif record.kind == "tune":
            sections += _tune_sections(record.result, out)
        elif record.kind == "compare":
            sections += _compare_sections(store, record, out)
        elif record.kind == "inspect":
            sections += _inspect_sections(record.result, out)
    elif record.kind == "train":
        partial = store.curve_runs(record.id)
        path = plot_learning_curves(partial, "metric", out / "learning_curves.png")
        if path:
            sections.append(
                Section(
                    "Learning curves (epochs logged before it stopped)",
                    figures=[Figure("learning_curves", "Learning curves", path)],
                )
            )
    sections += [_config_section(record), _cost_section(store, record), _provenance_section(record)]
    return sections


# -- rendering --------------------------------------------------------------------------


def _template(name: str, autoescape: bool) -> jinja2.Template:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = lambda v: str(v).replace("|", "\\|").replace("\n", "<br>")
    return env.from_string((resources.files("prompts") / name).read_text(encoding="utf-8"))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(
    store: ExperimentStore, run_id: int, out_dir: Path | None = None, language: str = "en"
) -> ReportFiles:
    """Write the Markdown and HTML report of a run and its plots.

    Args:
        store: the experiment store.
        run_id: the run to report.
        out_dir: where to write; default `<workspace>/reports/<id>/`.
        language: `en` or `zh` for the summary text.

    Returns:
        The paths written.

    Raises:
        UserInputError: no such run.
    """
    record = store.get_run(run_id)
    out = Path(out_dir) if out_dir else store.reports_dir(record.id)
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(store, record, out, language)
    images = [f.path for s in sections for f in s.figures if f.path]
    title = f"open-autoglm report: run {record.id} ({record.title}, {record.status})"
    markdown = _template("report.md.j2", autoescape=False).render(
        title=title, sections=sections, image_src=lambda p: p.name
    )
    html = _template("report.html.j2", autoescape=True).render(
        title=title, sections=sections, image_src=_data_uri
    )
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(html, encoding="utf-8")
    return ReportFiles(markdown=md_path, html=html_path, images=images)


def write_reports(
    store: ExperimentStore,
    run_ids: list[int],
    first: str | None = None,
    language: str = "en",
) -> list[Path]:
    """Write the report of each run; the files written, pages first.

    Args:
        store: the experiment store.
        run_ids: the runs to report, each in its own `<workspace>/reports/<id>/`.
        first: `html` lists each HTML page before its Markdown (both are always written).
        language: `en` or `zh` for the summary text.
    """
    files: list[Path] = []
    for run_id in run_ids:
        written = write_report(store, run_id, language=language)
        pages = [written.markdown, written.html]
        if first == "html":
            pages.reverse()
        files.extend([*pages, *written.images])
    return files
