"""`autoglm report ID`: Markdown and self-contained HTML report of a stored run, with plots."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.explain import LANGUAGES
from agent.report import write_report
from agent.store import ExperimentStore
from core.storage import StorageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a Markdown + HTML report (plots, costs) of a stored run",
        description="Write <workspace>/reports/ID/report.md and report.html (images embedded).",
    )
    parser.add_argument("run_id", type=int, metavar="ID", help="run id (see `experiments list`)")
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="summary language")
    parser.add_argument("--out", type=Path, default=None, help="directory to write into")
    parser.add_argument("--workspace", type=Path, default=None, help="default $AUTOGLM_WORKSPACE")
    parser.add_argument("--json", action="store_true", help="print the paths as JSON")
    parser.set_defaults(func=_run)


def _open(args: argparse.Namespace) -> ExperimentStore:
    """The store, writable to record the report's cost; read-only when the workspace is
    and the report goes elsewhere (`--out`)."""
    try:
        return ExperimentStore(args.workspace)
    except StorageError as error:
        if error.kind != "read-only" or args.out is None:
            raise
    print(
        f"note: the workspace is read-only; the report goes to {args.out}, its cost is not "
        "recorded in the store",
        file=sys.stderr,
    )
    return ExperimentStore(args.workspace, read_only=True)


def _run(args: argparse.Namespace) -> int:
    with _open(args) as store:
        files = write_report(store, args.run_id, args.out, args.lang)
    if args.json:
        paths = {"markdown": str(files.markdown), "html": str(files.html),
                 "images": [str(p) for p in files.images]}  # fmt: skip
        print(json.dumps(paths))
    else:
        print(f"wrote {files.markdown}")
        print(f"wrote {files.html} ({len(files.images)} plots embedded)")
    return 0
