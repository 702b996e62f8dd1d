"""The `autoglm` command line: parse arguments, call the library, print.

Each subcommand lives in `agent/commands/<name>.py` and exposes `add_parser(subparsers)`,
which registers its parser and sets `func(args) -> int`. Errors that derive from
`AutoGLMError` are printed as one paragraph (no traceback) and mapped to their exit code.
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoglm",
        description="open-autoglm: plain-language graph learning with a local planner model.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"agent.commands.{name}")
        module.add_parser(subparsers)
    return parser


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
        parser = build_parser()  # imports the catalogue, which loads model plug-ins
    except AutoGLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return _dispatch(parser.parse_args(argv))


def train_main(argv: list[str] | None = None) -> int:
    """Entry point of `autoglm-train`: the same as `autoglm train`."""
    argv = sys.argv[1:] if argv is None else argv
    return main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
