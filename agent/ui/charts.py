"""Plotly figures as plain dicts (`{"data": [...], "layout": {...}}`), drawn by plotly.js.

Built here without importing the `plotly` Python package: a run page with its curves costs
a few JSON objects, not plotly's import. Study plots come from `optuna.visualization`.
"""

from __future__ import annotations

from typing import Any

SCHEDULE = ("lr",)  # logged per epoch but on another scale than the metrics: own figure


def _layout(title: str, y: str) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": "epoch"}},
        "yaxis": {"title": {"text": y}},
        "height": 340,
        "margin": {"l": 55, "r": 20, "t": 40, "b": 40},
        "legend": {"orientation": "h"},
    }


def _is_loss(name: str) -> bool:
    return "loss" in name


def metric_names(curve_runs: list[dict[str, Any]]) -> list[str]:
    """Every metric logged per epoch, in first-seen order (epoch itself excluded)."""
    names: dict[str, None] = {}
    for run in curve_runs:
        for row in run["curves"]:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float):
                    names.setdefault(key)
    return list(names)


def _label(run: dict[str, Any]) -> str:
    return f"seed {run['seed']}" + (f" fold {run['fold']}" if run.get("fold") is not None else "")


def curve_figures(curve_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two figures of one run: its losses and its other metrics, one line per seed."""
    names = metric_names(curve_runs)
    figures = []
    groups = (
        ("Loss per epoch", [n for n in names if _is_loss(n)]),
        ("Metrics per epoch", [n for n in names if not _is_loss(n) and n not in SCHEDULE]),
        ("Learning rate per epoch", [n for n in names if n in SCHEDULE]),
    )
    for title, group in groups:
        data = [_line(f"{name} · {_label(run)}", run, name) for name in group for run in curve_runs]
        if data:
            figures.append({"data": data, "layout": _layout(title, ", ".join(group))})
    return figures


def _line(name: str, run: dict[str, Any], key: str) -> dict[str, Any]:
    """One seed's `key` per epoch as a Plotly line."""
    rows = [row for row in run["curves"] if key in row]
    return {"type": "scatter", "mode": "lines", "name": name,
            "x": [row["epoch"] for row in rows], "y": [row[key] for row in rows]}  # fmt: skip


def overlay_figure(runs: list[tuple[str, list[dict[str, Any]]]], metric: str) -> dict[str, Any]:
    """One metric of several runs overlaid, one line per run and seed."""
    data = [
        _line(f"{label} · {_label(run)}", run, metric)
        for label, curve_runs in runs
        for run in curve_runs
    ]
    return {"data": data, "layout": _layout(f"{metric} per epoch", metric)}


def confusion_figure(matrix: list[list[float]], seeds: int) -> dict[str, Any]:
    """A heat map of the test confusion matrix (rows: true class, columns: predicted),
    each cell labelled with its count."""
    classes = [f"class {i}" for i in range(len(matrix))]
    axis = {"type": "category", "categoryorder": "array", "categoryarray": classes}
    heatmap = {"type": "heatmap", "z": matrix, "x": classes, "y": classes,
               "colorscale": "Blues", "reversescale": True, "texttemplate": "%{z}",
               "hovertemplate": "true %{y}, predicted %{x}: %{z}<extra></extra>"}  # fmt: skip
    return {
        "data": [heatmap],
        "layout": {"title": {"text": f"Test confusion matrix, summed over {seeds} seed(s)"},
                   "xaxis": {**axis, "title": {"text": "predicted"}},
                   "yaxis": {**axis, "title": {"text": "true"}, "autorange": "reversed"},
                   "height": 360, "margin": {"l": 70, "r": 20, "t": 40, "b": 50}},
    }  # fmt: skip


def summed_confusion(result: dict[str, Any]) -> tuple[list[list[float]], int] | None:
    """The confusion matrices of a train result's seeds, summed; None when none were kept."""
    matrices = [r["confusion"] for r in result.get("runs", []) if r.get("confusion")]
    if not matrices:
        return None
    size = len(matrices[0])
    total = [[sum(m[i][j] for m in matrices) for j in range(size)] for i in range(size)]
    return total, len(matrices)
