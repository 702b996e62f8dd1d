"""`autoglm models`: the model catalogue (built-in and plug-in models) and what each takes."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the model catalogue: tasks, parameters, paper",
        description="List every model the planner, trainer and tuner know (plug-ins included, "
        "see docs/plugins.md): the tasks it supports, the model-specific parameters it takes, "
        "and the paper its defaults come from.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_run)


def catalogue_rows() -> list[dict]:
    """One dict per model: name, aliases, tasks, takes, searched, exportable, paper, description."""
    from graph_ml.catalogue import MODELS

    return [
        {
            "name": name,
            "aliases": list(spec.aliases),
            "tasks": list(spec.tasks),
            "takes": list(spec.takes),
            "searched": sorted(spec.search),
            "exportable": spec.export is not None,
            "paper": spec.paper,
            "description": spec.description,
        }
        for name, spec in MODELS.items()
    ]


def _run(args: argparse.Namespace) -> int:
    rows = catalogue_rows()
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
        return 0
    short = {"node_classification": "node", "link_prediction": "link",
             "graph_classification": "graph"}  # fmt: skip
    header = ("name", "tasks", "takes", "paper")
    table = [
        (r["name"], ",".join(short[t] for t in r["tasks"]), ",".join(r["takes"]) or "-", r["paper"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *table)) for i in range(len(header) - 1)]
    for row, row_data in zip((header, *table), (None, *rows), strict=True):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
        if row_data is not None:
            print(f"    {row_data['description']}")
    return 0
