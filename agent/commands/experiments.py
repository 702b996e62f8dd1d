"""`autoglm experiments list | show ID | rerun ID | export ID`: the experiment store."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import SetupError, UserInputError

if TYPE_CHECKING:  # imported where used: `autoglm --help` loads none of them
    from agent.store import ExperimentStore, RunRecord


SUMMARY = "list, show, rerun or export stored runs"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from agent.explain import LANGUAGES
    from agent.store import RUN_KINDS, RUN_STATUSES

    parser = subparsers.add_parser(
        "experiments",
        help=SUMMARY,
        description="The experiment store in $AUTOGLM_WORKSPACE (default ./.autoglm).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", type=Path, default=None, help="default $AUTOGLM_WORKSPACE")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="runs, newest first", parents=[common])
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--session", default=None, help="only this chat session's runs")
    listing.add_argument("--kind", choices=RUN_KINDS, default=None)
    listing.add_argument("--status", choices=RUN_STATUSES, default=None)
    listing.set_defaults(func=_list)

    show = actions.add_parser(
        "show", help="config, metrics, costs and explanation of a run", parents=[common]
    )
    show.add_argument("run_id", type=int, metavar="ID")
    show.add_argument("--lang", choices=LANGUAGES, default="en")
    show.set_defaults(func=_show)

    again = actions.add_parser(
        "rerun", help="run a stored train/tune config again", parents=[common]
    )
    again.add_argument("run_id", type=int, metavar="ID")
    again.add_argument("--data-dir", type=Path, default=None, help="default $AUTOGLM_DATA_DIR")
    again.set_defaults(func=_rerun)

    export = actions.add_parser(
        "export", help="write a standalone PyG script for a train run", parents=[common]
    )
    export.add_argument("run_id", type=int, metavar="ID")
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="file to write (default reproduce_run_ID.py; '-': stdout)",
    )
    export.set_defaults(func=_export)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _n_runs(record: RunRecord) -> int | None:
    """How many seeds (or folds) a train run, or a tune run's retraining, has in its result."""
    result = record.result or {}
    if record.kind == "tune":
        result = result.get("retrained") or {}
    elif "runs" not in result:
        result = result.get("result") or {}
    runs = result.get("runs")
    return None if runs is None else len(runs)


def _headline(record: RunRecord) -> str:
    from agent.experiments import summary_metrics

    m = record.metrics or summary_metrics(record.kind, record.result)
    if "test_mean" in m:
        n = _n_runs(record)
        if n is not None and n < 2:  # one seed has no spread: no "± 0.0000"
            return f"test {m['test_mean']:.4f} (1 seed)"
        seeds = f" ({n} seeds)" if n else ""
        return f"test {m['test_mean']:.4f} ± {m.get('test_std') or 0.0:.4f}{seeds}"
    if "best_value" in m:
        return f"best val {m['best_value']:.4f}"
    if "p_value" in m and m["p_value"] is not None:
        return f"best {m.get('best')}, p={m['p_value']:.3g}"
    return ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]  # fmt: skip

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _list(args: argparse.Namespace) -> int:
    from agent.store import ExperimentStore

    with ExperimentStore(args.workspace, read_only=True) as store:
        runs = store.list_runs(args.limit, args.session, args.kind, args.status)
    if args.json:
        rows = [{**r.model_dump(exclude={"result"}), "title": r.title} for r in runs]
        print(json.dumps(rows, default=str))
        return 0
    if not runs:
        print(f'No runs yet in {store.path}. Try: autoglm run "train GCN on Cora"')
        return 0
    rows = [[str(r.id), r.kind, r.status, r.title, _headline(r), _when(r.started_at),
             r.session_id or "-"] for r in runs]  # fmt: skip
    print(_table(["id", "kind", "status", "what", "result", "started", "session"], rows))
    return 0


def _record_json(store: ExperimentStore, record: RunRecord) -> dict[str, Any]:
    from agent.facts import stored_or_computed

    return {
        **record.model_dump(),
        "facts": stored_or_computed(record, store),
        "title": record.title,
        "seconds": record.seconds,
        "steps": [s.model_dump() for s in store.steps(record.id)],
        "children": [c.id for c in store.children(record.id)],
    }


def _show(args: argparse.Namespace) -> int:
    from agent.explain import explain_run
    from agent.store import ExperimentStore

    with ExperimentStore(args.workspace, read_only=True) as store:
        record = store.get_run(args.run_id)
        if args.json:
            print(json.dumps(_record_json(store, record), default=str, ensure_ascii=False))
            return 0
        steps = store.steps(record.id)
        text = explain_run(record, args.lang, store)
    print(f"run {record.id}: {record.title} [{record.status}]")
    print(f"started {_when(record.started_at)}, finished {_when(record.finished_at)}"
          + (f", {record.seconds:.1f} s" if record.seconds is not None else ""))  # fmt: skip
    if record.parent_id:
        print(f"parent run {record.parent_id}")
    print(f"seeds {record.seeds}; dataset fingerprint {record.dataset_fingerprint or 'n/a'}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in record.versions.items()))
    print("\nconfig:")
    for key, value in sorted(record.config.items()):
        print(f"  {key} = {json.dumps(value, default=str)}")
    if record.metrics:
        print("\nmetrics:")
        for key, value in record.metrics.items():
            print(f"  {key} = {value}")
    if record.error:
        print(f"\nerror: {record.error}")
    print("\ncosts:")
    if steps:
        from agent.report import COST_HEADERS, cost_rows, decision_lines  # torch: not for list

        print(_indent(_table(COST_HEADERS[:-1], cost_rows(steps, detail=False))))
        decisions = decision_lines(steps)
        if decisions:
            print("\ndecisions:")
            print("\n".join(f"  - {line}" for line in decisions))
    else:
        print("  none recorded")
    print("\n" + text)
    return 0


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _rerun(args: argparse.Namespace) -> int:
    from agent.experiments import rerun, same_data
    from agent.store import ExperimentStore

    with ExperimentStore(args.workspace) as store:
        old = store.get_run(args.run_id)
        if not args.json:
            print(f"rerunning run {old.id} ({old.title})...", file=sys.stderr)
        new = rerun(store, args.run_id, data_dir=args.data_dir)
    if args.json:
        print(json.dumps({"run_id": new.id, "parent_id": old.id, "status": new.status,
                          "metrics": new.metrics, "original_metrics": old.metrics,
                          "same_data": same_data(old, new)}))  # fmt: skip
        return 0
    print(f"run {new.id} (rerun of {old.id}): {_headline(new)}; the original: {_headline(old)}")
    same = same_data(old, new)
    if same is False:
        print(
            f"note: the data differs from what run {old.id} read (dataset fingerprint "
            f"{(old.dataset_fingerprint or '')[:12]} then, {(new.dataset_fingerprint or '')[:12]} "
            "now), so the two results are not a like-for-like repeat."
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    from agent.export import export_script
    from agent.store import ExperimentStore

    with ExperimentStore(args.workspace, read_only=True) as store:
        record = store.get_run(args.run_id)
    output = args.output or Path(f"reproduce_run_{record.id}.py")
    if str(output) != "-" and not output.parent.is_dir():
        raise UserInputError(
            f"Cannot write {output}: the directory {output.parent} does not exist. Create it "
            f"(mkdir -p {output.parent}) or pass another -o."
        )
    text = export_script(record)
    if str(output) == "-":
        sys.stdout.write(text)
        return 0
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise SetupError(
            f"Cannot write {output}: {error.strerror or error}. Choose another -o, or "
            "print the script with -o - and redirect it."
        ) from None
    if args.json:
        print(json.dumps({"run_id": record.id, "script": str(output.resolve())}))
    else:
        print(f"wrote {output}: python {output} --data-dir DIR reproduces run {record.id}")
    return 0
