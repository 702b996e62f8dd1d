"""`autoglm chat`: a conversation with the agent, with history, that can be resumed.

Each line is one request; follow-ups ("same but with GAT", "compare that with the previous
run", "why did it overfit?") resolve against this chat's runs. Lines starting with `/` are
commands: /help, /runs, /session, /exit. Works on a terminal (readline history in the
workspace) and with piped stdin (one request per line, for scripts and tests).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from agent.commands.run import (
    EXIT_CODES,
    add_common_options,
    error_json,
    format_plan,
    make_backend,
    open_store,
    planning_budget,
    session_options,
    turn_json,
)
from core.errors import AutoGLMError, Terminated

HISTORY_FILE = "chat_history"
HISTORY_LENGTH = 1000
HELP = """Type a request in plain language, e.g.
  train a GCN on Cora for 100 epochs
  same but with GAT
  increase the hidden size to 64
  compare that with the previous run
  why did it overfit?
Commands: /runs (this chat's runs), /session (its id, for --resume), /help, /exit"""


SUMMARY = "talk to the agent; follow-ups refer to earlier runs"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help=SUMMARY,
        description="A conversation with the agent. " + HELP.splitlines()[0],
        epilog=EXIT_CODES,
    )
    add_common_options(parser)
    parser.add_argument("--resume", metavar="SESSION", help="continue a stored chat (id or prefix)")
    parser.add_argument("--list", action="store_true", help="list stored chats and exit")
    parser.add_argument(
        "--yes", action="store_true", help="run expensive plans without asking first"
    )
    parser.set_defaults(func=_run)


def _lines(stream: TextIO, prompt: str, interactive: bool) -> Iterator[str]:
    """The user's lines: `input()` with readline on a terminal, else the piped lines."""
    while True:
        if interactive:
            try:
                yield input(prompt)
            except EOFError:  # Ctrl-D leaves
                print()
                return
            except Terminated:
                raise  # SIGTERM ends the chat (agent.cli exits 130)
            except KeyboardInterrupt:  # Ctrl-C clears the line, as in a shell
                print()
        else:
            line = stream.readline()
            if not line:
                return
            yield line.rstrip("\n")


def _setup_history(workspace: Path) -> None:
    try:
        import readline
    except ImportError:  # Windows without pyreadline: no history, still a working REPL
        return
    path = workspace / HISTORY_FILE
    if path.is_file():
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LENGTH)
    import atexit

    atexit.register(readline.write_history_file, path)


class _Chat:
    """The REPL around one `Session`."""

    def __init__(self, args: argparse.Namespace, store: Any, interactive: bool) -> None:
        from agent.session import Session

        self.args, self.store, self.interactive = args, store, interactive
        self.lines = _lines(sys.stdin, "you> ", interactive)
        options = session_options(
            args,
            confirm=None if args.yes else self._confirm,
            on_plan=None if args.json else self._show_plan,
        )
        self.backend = make_backend(args.backend)
        self.session = Session(self.backend, store, args.resume, options)
        self.budget = lambda: planning_budget(self.backend, args.llm_timeout)

    def _show_plan(self, routed: list) -> None:
        print(format_plan(routed), flush=True)

    def _confirm(self, reason: str) -> bool:
        question = f"{reason[:1].upper()}{reason[1:]}. Go ahead? [y/N] "
        if self.interactive:  # its own prompt: the next line answers it, not a "you>" request
            try:
                answer = input(question)
            except Terminated:
                raise
            except (EOFError, KeyboardInterrupt):
                print()
                answer = ""
        else:
            print(question, end="", flush=True)
            answer = next(self.lines, "")
            print(answer)
        return answer.strip().lower() in ("y", "yes", "是", "好")

    def _command(self, line: str) -> bool:
        """Handle a /command; False means leave the chat."""
        name = line.split()[0].lower()
        if name in ("/exit", "/quit", "/q"):
            return False
        if name == "/session":
            print(self.session.id)
        elif name == "/runs":
            for run_id in self.session.state.runs:
                record = self.store.get_run(run_id)
                metric = record.metrics.get("test_mean")
                shown = "" if metric is None else f" test {metric:.4f}"
                print(f"run {record.id}: {record.title} [{record.status}]{shown}")
        else:
            print(HELP)
        return True

    def loop(self) -> int:
        if not self.args.json:
            resumed = "resumed" if self.args.resume else "new"
            print(f"open-autoglm chat ({resumed} session {self.session.id}); /help, /exit")
        for line in self.lines:
            text = line.strip()
            if not text:
                continue
            if not self.interactive and not self.args.json:
                print(f"you> {text}")
            if text.startswith("/"):
                if not self._command(text):
                    break
                continue
            self._turn(text)
        return 0  # a turn's failure is shown in the chat; the chat itself ended normally

    def _turn(self, text: str) -> int:
        try:
            with self.budget():
                turn = self.session.handle(text)
        except Terminated:
            raise  # SIGTERM ends the chat too; its run is marked interrupted already
        except KeyboardInterrupt:  # Ctrl-C stops this request (its run is marked), not the chat
            print("\ninterrupted (a run in progress is marked interrupted)", flush=True)
            return 130
        except AutoGLMError as error:  # the chat goes on; the message says what to change
            if self.args.json:  # the same keys as a turn, so a script reads every line alike
                failed = {"text": text, "plan": [], "run_ids": [], "outcomes": [],
                          "reply": f"error: {error}", **error_json(error)}  # fmt: skip
                print(json.dumps(failed, ensure_ascii=False), flush=True)
            else:
                print(f"error: {error}", flush=True)
            return error.exit_code
        if self.args.json:
            print(json.dumps(turn_json(turn), ensure_ascii=False), flush=True)
        else:
            print(f"\n{turn.reply}\n", flush=True)
        return turn.exit_code


def _run(args: argparse.Namespace) -> int:
    store = open_store(args.workspace, read_only=args.list)  # --list only reads
    try:
        if args.list:
            for record in store.list_sessions():
                runs = len(record.state.get("runs", []))
                print(f"{record.id}  {record.title[:50]:<50}  {runs} runs")
            return 0
        interactive = sys.stdin.isatty()
        if interactive:
            _setup_history(store.workspace)
        return _Chat(args, store, interactive).loop()
    finally:
        store.close()
