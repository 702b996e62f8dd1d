"""The report's plots, drawn with matplotlib's object API on the Agg canvas (no display,
thread-safe): learning curves, tuning history, parameter importance, comparison with error
bars, confusion matrix, class sizes. Each takes plain data and writes one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DPI = 110  # sharp enough to read on a laptop, ~40 KB per plot


def _new_figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    return fig


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


TICK_WIDTH = 24  # characters a tick label's line holds before it wraps
TICK_LINES = 4  # lines a tick label keeps; a longer one loses its middle


def _wrapped(label: str) -> str:
    """A long label ("gcn (hidden_channels=75, lr=0.0053, run 2)") on lines of TICK_WIDTH:
    rotated, it collapsed the plot. Past TICK_LINES the middle is cut, never its end (the
    run id that tells two labels apart)."""
    import textwrap

    lines = textwrap.wrap(label, TICK_WIDTH)
    if len(lines) > TICK_LINES:
        lines = [*lines[: TICK_LINES - 1], "… " + lines[-1]]
    return "\n".join(lines)


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
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers: no "trial 1.5"
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
    ax.set(xlabel="importance (PED-ANOVA, sums to 1)", title="Which parameters mattered")
    return _save(fig, path)


def plot_comparison(
    entries: list[dict[str, Any]],
    metric: str,
    path: Path,
    references: list[dict[str, Any]] | None = None,
) -> Path:
    """Mean test metric per entry with a sample-std error bar (none for one seed), seeds as
    dots, on a zero-based axis (bars that start elsewhere make small gaps look large), and
    the catalogue's published figures as dashed reference lines (`{"label", "value"}`,
    value in [0, 1])."""
    fig = _new_figure(max(4.8, 1.6 * len(entries) + 2.0), 4.2)
    ax = fig.subplots()
    x = range(len(entries))
    ax.bar(
        x,
        [e["mean"] for e in entries],
        yerr=[e.get("std") or 0.0 for e in entries],
        capsize=6,
        color="C0",
        alpha=0.7,
    )
    for i, e in enumerate(entries):
        ax.scatter([i] * len(e["values"]), e["values"], color="black", s=12, zorder=3)
        ax.annotate(
            f"{100 * e['mean']:.2f}%",
            (i, e["mean"]),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
        )
    for k, ref in enumerate(references or []):
        ax.axhline(ref["value"], color=f"C{k + 1}", ls="--", lw=1, label=ref["label"])
    if references:
        ax.legend(fontsize="small", loc="lower right")
    ax.set_ylim(0.0, 1.0 if metric in ("accuracy", "roc_auc", "macro_f1") else None)
    ax.set_xticks(list(x), [_wrapped(e["label"]) for e in entries])
    ax.set(
        ylabel=f"test {metric} (axis from 0)",
        title="Mean test metric (error bar: ± sample std; dots: seeds)",
    )
    return _save(fig, path)


def plot_class_counts(counts: list[int], path: Path) -> Path:
    fig = _new_figure(5.0, 3.2)
    ax = fig.subplots()
    ax.bar(range(len(counts)), counts, color="C4")
    ax.set(xlabel="class", ylabel="count", title="Class sizes")
    return _save(fig, path)
