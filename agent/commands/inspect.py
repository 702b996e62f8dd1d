"""`autoglm inspect DATASET`: the data doctor, with what its numbers mean for the model.

No language model is involved: the dataset goes through the same rules as a planned action
(a path must be inside the workspace or the data directory), the statistics are stored as
an `inspect` run, and the explanation is rendered from that record.
"""

from __future__ import annotations

import argparse
import json

from agent.commands.run import EXIT_CODES, add_common_options, open_store, session_options

SUMMARY = "data doctor: statistics of a dataset and what they mean for the model"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help=SUMMARY,
        description="Example: autoglm inspect cora",
        epilog=EXIT_CODES,
    )
    parser.add_argument("dataset", help="a catalogue name (see `autoglm datasets`) or a CSV graph")
    add_common_options(parser, backend=False)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from agent.session import Session

    store = open_store(args.workspace)
    try:
        session = Session(
            None, store, options=session_options(args), title=f"inspect {args.dataset}"
        )
        turn = session.run_action(
            {"action": "inspect", "dataset": args.dataset}, text=f"inspect {args.dataset}"
        )
        outcome = turn.outcomes[0]
        if args.json:
            record = store.get_run(outcome.run_id) if outcome.run_id else None
            stats = (record.result or {}).get("stats") if record else None
            print(
                json.dumps({**outcome.model_dump(mode="json"), "stats": stats}, ensure_ascii=False)
            )
        else:
            print(outcome.text)
        return outcome.exit_code
    finally:
        store.close()
