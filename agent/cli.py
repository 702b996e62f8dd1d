"""The `autoglm` command line: parse arguments, call the library, print.

Each subcommand lives in `agent/commands/<name>.py` and exposes `SUMMARY` (its line in
`autoglm --help`) and `add_parser(subparsers)`, which registers its parser and sets
`func(args) -> int`. Errors that derive from `AutoGLMError` are printed as one paragraph (no
traceback) and mapped to their exit code.

Fast: only the command being run builds its parser (which may import what its options
need: the catalogue, the planner); the others are listed by their summary. A command
module imports nothing heavy at the top, so `autoglm --help` imports neither torch nor
transformers nor the planner.

Every command treats SIGTERM (a scheduler's `kill`, `timeout`) as Ctrl-C: a running run is
marked interrupted, an Optuna trial failed, and the exit code is 130. Output into a pipe
that closes early (`autoglm experiments list | head -1`) ends quietly with 141, as any Unix
tool killed by SIGPIPE does.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from core.errors import AutoGLMError, Terminated

# Order is the order `autoglm --help` lists them.
COMMAND_MODULES = (
    "run",
    "chat",
    "plan",
    "train",
    "tune",
    "models",
    "datasets",
    "inspect",
    "experiments",
    "report",
    "serve",
    "ui",
)

EXIT_INTERRUPTED = 130  # 128 + SIGINT, for Ctrl-C and SIGTERM alike (documented: "130")
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141: what a shell reports for a tool killed by it


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the command it names gets its full parser.

    Without `argv` every command's parser is built (tests and docs see all options).
    """
    parser = argparse.ArgumentParser(
        prog="autoglm",
        description="open-autoglm: plain-language graph learning with a local planner model.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _command_name(argv) if argv is not None else None
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"agent.commands.{name}")
        if argv is None or name == chosen:
            module.add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=module.SUMMARY, add_help=False)
    return parser


def _command_name(argv: list[str]) -> str | None:
    """The subcommand `argv` names: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except AutoGLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise `Terminated` (a KeyboardInterrupt) on SIGTERM while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a caller there owns the signals
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (captured in tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `autoglm`."""
    with sigterm_as_interrupt():
        try:
            words = sys.argv[1:] if argv is None else argv
            try:
                parser = build_parser(words)  # train's imports the catalogue: plug-ins load
            except AutoGLMError as error:
                print(f"error: {error}", file=sys.stderr)
                return error.exit_code
            code = _dispatch(parser.parse_args(words))
            sys.stdout.flush()  # a closed pipe shows here rather than at interpreter exit
        except KeyboardInterrupt as stop:
            why = " (SIGTERM)" if isinstance(stop, Terminated) else ""
            print(f"interrupted{why}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            _discard_stdout()
            return EXIT_BROKEN_PIPE
    return code


def train_main(argv: list[str] | None = None) -> int:
    """`autoglm train`, under another name."""
    argv = sys.argv[1:] if argv is None else argv
    return main(["train", *argv])


def console_main() -> None:
    """The `autoglm` executable: `main`, then a quick exit (`exit_now`)."""
    exit_now(main())


def console_train_main() -> None:
    """The `autoglm-train` executable: `train_main`, then a quick exit."""
    exit_now(train_main())


def exit_now(code: int) -> None:
    """End the process once the command is done, without the interpreter's teardown.

    A process that imported torch and PyG spends ~1 s of CPU here tearing their modules
    down at exit (measured: 0.97 s after `import graph_ml.train`, against 8 ms for every
    atexit handler together), a fifth of a karate run, and nothing a finished command
    needs happens in it. Everything that does still runs first: other threads are waited
    for, atexit handlers run (readline history, logging, temporary directories), stdout and
    stderr are flushed; then `os._exit`.
    """
    import atexit

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to tell it
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
