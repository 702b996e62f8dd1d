"""`autoglm run "TEXT"`: plan, show the plan, execute, explain.

Exit codes (also for `autoglm chat` per turn and `autoglm inspect`):
  0 done; 2 bad input (unknown dataset, empty request); 3 setup (data files or model
  missing); 4 the planner model gave no usable plan; 5 refused by a rule; 6 a tool failed
  (its run is marked failed, the store is intact); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.errors import RuleViolation
from core.errors import AutoGLMError, UserInputError

EXIT_CODES = (
    "exit codes: 0 done; 2 bad input; 3 setup (files, model) missing; 4 no usable plan "
    "from the model; 5 refused by a rule; 6 a tool failed (run marked failed); 130 interrupted"
)


def add_common_options(parser: argparse.ArgumentParser, backend: bool = True) -> None:
    """--workspace, --data-dir, --json (and --backend, --llm-timeout): shared by run, chat
    and inspect."""
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="experiment store (default $AUTOGLM_WORKSPACE or ./.autoglm)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="raw datasets (default $AUTOGLM_DATA_DIR)"
    )
    if backend:
        parser.add_argument(
            "--backend",
            default=None,
            help="planner model backend: embedded, transformers, http, ... (default $AUTOGLM_LLM)",
        )
        add_llm_timeout(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")


SUMMARY = "plan, check and run a plain-language task, then explain the result"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help=SUMMARY,
        description='Example: autoglm run "train a GCN on Cora for 100 epochs"',
        epilog=EXIT_CODES,
    )
    parser.add_argument("text", help="the task, in English or Chinese")
    add_common_options(parser)
    parser.add_argument(
        "--report", action="store_true", help="also write the report (Markdown, HTML, plots)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(func=_run)


def add_llm_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llm-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="the most an HTTP model server may take for one plan, re-asks included "
        "(default $AUTOGLM_LLM_TIMEOUT, else 300)",
    )


def _seconds(text: str) -> float:
    from agent.llm.http import parse_timeout

    try:
        return parse_timeout(text)
    except UserInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def make_backend(name: str | None) -> Any:
    """The planner's language model (`agent.llm.get_backend`). The tools (torch and PyG,
    ~3 s of imports) start loading on another thread first, so they load while the model
    plans instead of after it (`tools.TOOLS` is built on first use)."""
    prefetch_tools()
    from agent.llm import get_backend

    return get_backend(name)


def prefetch_tools() -> None:
    """Import the tools on a background thread. Not a daemon: the process waits for the
    import at exit rather than stopping a thread halfway through loading torch; a failure is
    left for the main thread's own import to report."""
    import threading

    def load() -> None:
        try:
            import tools

            tools.TOOLS  # noqa: B018 - building the registry imports every tool
        except BaseException:  # noqa: BLE001 - the main thread imports again and says why
            pass

    threading.Thread(target=load, name="autoglm-import-tools").start()


def planning_budget(backend: Any, seconds: float | None):
    """The block one request is planned in: its model calls share `seconds`
    (`--llm-timeout`, else the backend's own limit)."""
    if seconds is not None and not backend.deadlines:
        print(
            f"note: --llm-timeout limits an HTTP model server; the {backend.name} backend runs "
            "in this process, bounded by its token budget instead.",
            file=sys.stderr,
        )
    return backend.time_budget(seconds)


def open_store(workspace: Path | None, read_only: bool = False):
    from agent.store import ExperimentStore

    return ExperimentStore(workspace, read_only=read_only)


def session_options(args: argparse.Namespace, **extra: Any):
    from agent.session import SessionOptions

    progress = not args.json and not getattr(args, "no_progress", False) and sys.stderr.isatty()
    return SessionOptions(data_dir=args.data_dir, progress=progress, **extra)


def format_plan(routed: list) -> str:
    """The plan as the user sees it: each action, its resolved fields, and why.

    Defaults that share a reason ("gcn's usual value for node_classification (Kipf &
    Welling, ICLR 2017)") are shown on one line; the store keeps each decision apart.
    """
    from agent.router import duration

    lines = []
    for index, item in enumerate(routed, 1):
        fields = ", ".join(f"{k}={v}" for k, v in item.fields.items())
        target = f" -> tool {item.tool}" if item.tool else ""
        guess = item.estimate
        cost = (
            f" [estimated {duration(guess.seconds)}, {guess.memory_mb:.0f} MB]"
            if guess.seconds is not None
            else ""
        )
        lines.append(f"plan {index}{cost}: {item.action}({fields}){target}")
        grouped: dict[str, list[str]] = {}
        for decision in item.decisions:
            shown = decision.kind in ("default", "inherit", "compatibility")
            if not shown and decision.rule != "routing.stored":  # (settings it does not use)
                continue
            head = f"{decision.field} set to {decision.value}, "
            if decision.kind == "default" and decision.reason.startswith(head):
                why = decision.reason[len(head) :]
                grouped.setdefault(why, []).append(f"{decision.field}={decision.value}")
            else:
                grouped.setdefault(decision.reason, [])
        for why, names in grouped.items():
            if len(names) > 1:
                why = why.replace("usual value ", "usual values ")
            lines.append(f"  - {', '.join(names)}: {why}" if names else f"  - {why}")
    return "\n".join(lines)


def turn_json(turn: Any) -> dict[str, Any]:
    """What `--json` prints for a turn."""
    return {
        "session_id": turn.session_id,
        "text": turn.text,
        "plan": turn.plan,
        "replanned": turn.replanned,
        "run_ids": turn.run_ids,
        "outcomes": [o.model_dump(mode="json") for o in turn.outcomes],
        "reply": turn.reply,
        "exit_code": turn.exit_code,
    }


def error_json(error: AutoGLMError) -> dict[str, Any]:
    out: dict[str, Any] = {
        "error": str(error),
        "kind": type(error).__name__,
        "exit_code": error.exit_code,
    }
    if isinstance(error, RuleViolation):
        out.update(reason=error.reason, alternatives=error.alternatives)
    return out


def _run(args: argparse.Namespace) -> int:
    from agent.session import EXAMPLE_REQUEST

    if not args.text.strip():  # before loading a model for nothing
        raise UserInputError(f"The request is empty: say what to do, {EXAMPLE_REQUEST}.")
    from agent.planner import check_request

    check_request(args.text)  # a pasted document is refused before any model loads
    return _run_text(args)  # SIGTERM arrives as Ctrl-C (agent.cli): the run is marked at once


def _run_text(args: argparse.Namespace) -> int:
    store = open_store(args.workspace)
    try:
        on_plan = None if args.json else lambda routed: print(format_plan(routed), flush=True)
        try:
            backend = make_backend(args.backend)
            from agent.session import Session

            options = session_options(args, on_plan=on_plan)
            session = Session(backend, store, options=options, title=args.text[:60])
            with planning_budget(backend, args.llm_timeout):
                turn = session.handle(args.text)
        except AutoGLMError as error:
            if not args.json:
                raise  # the CLI prints "error: ..." and exits with its code
            print(json.dumps(error_json(error), ensure_ascii=False))
            return error.exit_code
        files = _reports(store, turn) if args.report else []
        if args.json:
            print(json.dumps({**turn_json(turn), "reports": files}, ensure_ascii=False))
        else:
            print()
            print(turn.reply)
            for path in files:
                print(f"wrote {path}")
        return turn.exit_code
    finally:
        store.close()


def _reports(store: Any, turn: Any) -> list[str]:
    """Write the report of each run the turn finished (the last outcome's run)."""
    from agent.explain import detect_language
    from agent.report import write_reports

    ids = [o.run_id for o in turn.outcomes if o.run_id is not None and o.status == "succeeded"]
    return [str(p) for p in write_reports(store, ids, language=detect_language(turn.text))]
