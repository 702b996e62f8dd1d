"""A constant OpenAI-compatible model server on loopback: the planner's "is the model the
reader?" check.

    python bench/stub_llm.py --port 8765 &
    python bench/plan_accuracy.py --backend http://127.0.0.1:8765/v1 --tasks ...

Every chat completion is answered with the same text (default: a plausible train plan),
whatever was asked. A planner whose rules decide the plan scores nearly as well with this
server as with a real model; one whose model reads the request falls far below.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_ANSWER = '{"actions": [{"action": "train", "dataset": "cora", "model": "gcn"}]}'


def make_handler(answer: str | Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    """The request handler; `answer` is the reply, or a function giving the current one (a
    bench that changes it between commands)."""
    reply = answer if callable(answer) else (lambda: answer)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            return

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._send(
                {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "stub"}]}
            )

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self._send({
                "id": "stub", "object": "chat.completion", "model": "stub",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply()}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            })  # fmt: skip

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--answer", default=DEFAULT_ANSWER, help="the constant reply")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.answer))
    print(f"stub model on http://127.0.0.1:{args.port}/v1", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
