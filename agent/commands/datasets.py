"""`autoglm datasets`: placeholder until its owner lands it."""

from __future__ import annotations

import argparse

from graph_ml.errors import SetupError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("datasets", help="(not built yet)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SetupError("'autoglm datasets' is not built yet.")
