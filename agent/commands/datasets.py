"""`autoglm datasets`: the dataset catalogue and what of it loads offline."""

from __future__ import annotations

import argparse
import json

from graph_ml.catalogue import DATASETS
from graph_ml.data_dir import available_offline, resolve_data_dir

SUMMARY = "list the dataset catalogue and which datasets are available offline"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help=SUMMARY,
        description="List the built-in datasets, their tasks and sources, and whether each "
        "loads without a network from the data directory.",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="directory with <Name>/raw/ dataset files (default: $AUTOGLM_DATA_DIR, else the "
        "user cache)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_run)


def catalogue_rows(data_dir: str | None = None) -> list[dict]:
    """One dict per catalogue entry: name, level, tasks, source, offline, description."""
    rows = []
    for name, spec in DATASETS.items():
        if not spec.needs_download:
            offline = "built-in"
        else:
            offline = "yes" if available_offline(spec, data_dir) else "no"
        rows.append(
            {
                "name": name,
                "level": spec.level,
                "tasks": list(spec.tasks),
                "source": spec.source,
                "offline": offline,
                "description": spec.description,
            }
        )
    return rows


def _run(args: argparse.Namespace) -> int:
    rows = catalogue_rows(args.data_dir)
    data_dir = resolve_data_dir(args.data_dir)
    if args.json:
        print(json.dumps({"data_dir": str(data_dir), "datasets": rows}, indent=2))
        return 0
    header = ("name", "level", "tasks", "source", "offline", "description")
    table = [
        (r["name"], r["level"], ",".join(r["tasks"]), r["source"], r["offline"], r["description"])
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in (header, *table)) for i in range(len(header) - 1)]
    for row in (header, *table):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    print(f"\ndata dir: {data_dir}")
    missing = [r["name"] for r in rows if r["offline"] == "no"]
    if missing:
        print(
            f"not available offline: {', '.join(missing)} (downloaded on first use when online; "
            "offline, the error names the files to place under the data dir)"
        )
    return 0
