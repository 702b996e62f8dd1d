"""`autoglm plan "TEXT"`: plan a request and print the actions, without running them.

autoglm plan "Train a GCN on Cora for 200 epochs" --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from agent.commands.run import add_llm_timeout, planning_budget

if TYPE_CHECKING:
    from agent.planner import Plan


SUMMARY = "turn a plain-language request into validated actions (nothing is run)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from agent.planner import MAX_ATTEMPTS  # only when `plan` is the command

    parser = subparsers.add_parser(
        "plan",
        help=SUMMARY,
        description="Plan a request with the local planner model and print the actions. "
        'With --json, stdout holds only {"actions": [...]}.',
    )
    parser.add_argument("text", nargs="+", help="the request, in English or Chinese")
    parser.add_argument("--json", action="store_true", help='print only {"actions": [...]}')
    parser.add_argument(
        "--backend",
        help="planner model backend (default: AUTOGLM_LLM, else the embedded model)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=MAX_ATTEMPTS,
        help=f"model calls before giving up (default: {MAX_ATTEMPTS})",
    )
    add_llm_timeout(parser)
    parser.set_defaults(func=_run)


def load_backend(name: str | None = None):
    """The planner's language model: `agent.llm.get_backend`, else the embedded one."""
    try:
        from agent.llm import get_backend
    except ImportError:  # the backend registry is not there: only the embedded model is
        from agent.llm.embedded import load_embedded_backend

        return load_embedded_backend()
    return get_backend(name)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (C libraries too) to stderr while planning."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _run(args: argparse.Namespace) -> int:
    from agent.planner import Planner, check_request

    text = check_request(" ".join(args.text))  # before the model loads: a bad request is cheap
    with _stdout_to_stderr():
        backend = load_backend(args.backend)
        try:
            with planning_budget(backend, args.llm_timeout):
                plan = Planner(backend, max_attempts=args.max_attempts).plan(text)
        finally:
            backend.close()
    if args.json:
        print(json.dumps(plan.to_json()))  # ASCII-escaped: valid JSON under any locale
    else:
        print(format_plan(plan))
    return 0


def format_plan(plan: Plan) -> str:
    """A readable plan: one line per action, then the verification notes and the cost."""
    lines = []
    for index, action in enumerate(plan.to_json()["actions"], 1):
        kind = action.pop("action")
        fields = ", ".join(f"{k}={v}" for k, v in action.items())
        lines.append(f"{index}. {kind}" + (f": {fields}" if fields else ""))
    if plan.fixes:
        lines.append("verified:")
        lines += [f"  - {fix}" for fix in plan.fixes]
    lines.append(
        f"({plan.attempts} model call{'s' if plan.attempts != 1 else ''}, "
        f"{plan.seconds:.1f} s, {plan.prompt_tokens} prompt + {plan.completion_tokens} "
        "completion tokens)"
    )
    return "\n".join(lines)
