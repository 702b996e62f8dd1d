"""The `autoglm` command line: parse arguments, call the library, print.

Each subcommand lives in `agent/commands/<name>.py` and exposes `SUMMARY` (its line in
`autoglm --help`) and `add_parser(subparsers)`, which registers its parser and sets
`func(args) -> int`. Errors that derive from `AutoGLMError` are printed as one paragraph (no
traceback) and mapped to their exit code.

Fast: only the command being run builds its parser (which may import what its options
need: the catalogue, the planner); the others are listed by their summary. A command
module imports nothing heavy at the top, so `autoglm --help` imports neither torch nor
transformers nor the planner.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import AutoGLMError

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
)

EXIT_INTERRUPTED = 130


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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Entry point of `autoglm`."""
    try:
        words = sys.argv[1:] if argv is None else argv
        parser = build_parser(words)  # train's imports the catalogue, which loads plug-ins
    except AutoGLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return _dispatch(parser.parse_args(words))


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of `autoglm-train`: the same as `autoglm train`."""
    argv = sys.argv[1:] if argv is None else argv
    return main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
