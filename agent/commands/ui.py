"""`autoglm ui [--workspace W] [--port 8765] [--host 127.0.0.1]`: the web page over the store."""

from __future__ import annotations

import argparse
from pathlib import Path

SUMMARY = "a local web page: experiments, runs, compare, studies, chat, data"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui",
        help=SUMMARY,
        description="Serve the experiment store and the Optuna studies of a workspace as a "
        "web page, offline. On 127.0.0.1 (the default) only this machine can reach it; any "
        "other --host needs a token, printed in the URL.",
    )
    parser.add_argument("--workspace", type=Path, default=None, help="default $AUTOGLM_WORKSPACE")
    parser.add_argument("--data-dir", type=Path, default=None, help="default $AUTOGLM_DATA_DIR")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument(
        "--token",
        default=None,
        help="the token requests must carry (default: made up at start when --host is not "
        "loopback; none on loopback)",
    )
    parser.add_argument(
        "--backend", default=None, help="the chat's planner model (default $AUTOGLM_LLM)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from agent.store import resolve_workspace
    from core.errors import SetupError

    try:
        from agent.ui.app import serve
    except ImportError as error:
        raise SetupError(
            f"autoglm ui needs its extras ({error.name} is missing): "
            "pip install 'open-autoglm[ui]'."
        ) from None
    from agent.llm import get_backend

    serve(
        resolve_workspace(args.workspace),
        host=args.host,
        port=args.port,
        token=args.token,
        data_dir=args.data_dir,
        backend_factory=lambda: get_backend(args.backend),
    )
    return 0
