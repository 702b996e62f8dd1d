"""The HTTP backend against a real OpenAI-style server on loopback (stdlib http.server).

The server is scripted: each request pops the next (status, body) answer and is recorded,
so the tests see exactly what the backend sent and how often it retried.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.errors import ModelOutputError
from agent.llm import get_backend
from agent.llm.http import HTTPBackend
from core.errors import SetupError

SCHEMA = {
    "type": "object",
    "properties": {"action": {"type": "string", "enum": ["train", "tune"]}},
    "required": ["action"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "train a gcn on cora"}]


def chat_answer(text: str, finish: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "tiny-glm",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


MODELS = {"object": "list", "data": [{"id": "tiny-glm", "object": "model", "owned_by": "vllm"}]}


class ScriptedServer:
    """An OpenAI-compatible server that replays scripted answers."""

    def __init__(self, port: int = 0) -> None:
        self.answers: deque[tuple[int, dict | str]] = deque()
        self.requests: list[tuple[str, str, dict | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append((self.command, self.path, body))
                if self.command == "GET" and self.path == "/v1/models":
                    status, payload = 200, MODELS
                else:
                    status, payload = server.answers.popleft()
                data = (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> ScriptedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def posts(self) -> list[dict]:
        return [body for method, _, body in self.requests if method == "POST"]


@pytest.fixture
def server():
    scripted = ScriptedServer().start()
    yield scripted
    scripted.stop()


def fast_backend(url: str, **options) -> HTTPBackend:
    options.setdefault("retry_backoff_s", 0.05)
    return HTTPBackend(url, **options)


def test_sends_schema_both_ways_and_reports_usage(server):
    server.answers.append((200, chat_answer('{"action":"train"}')))
    backend = fast_backend(server.url)
    completion = backend.complete(MESSAGES, json_schema=SCHEMA, max_tokens=64)
    assert json.loads(completion.text) == {"action": "train"}
    assert (completion.prompt_tokens, completion.completion_tokens) == (12, 5)
    assert completion.model == "tiny-glm" and completion.backend == "http"
    body = server.posts()[0]
    assert body["model"] == "tiny-glm"  # discovered from /v1/models
    assert body["temperature"] == 0 and body["max_tokens"] == 64
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["structured_outputs"]["json"] == SCHEMA  # the server said owned_by vllm


def test_retries_503_then_succeeds(server):
    server.answers.extend(
        [(503, {"error": "loading"}), (503, {"error": "loading"}), (200, chat_answer("{}"))]
    )
    completion = fast_backend(server.url, model="m").complete(MESSAGES)
    assert completion.text == "{}"
    assert len(server.posts()) == 3
    assert "response_format" not in server.posts()[0]  # no schema, no constraint


def test_retries_429_and_gives_up_with_setup_error(server):
    server.answers.extend([(429, {"error": "busy"})] * 3)
    backend = fast_backend(server.url, model="m", retry_attempts=3)
    with pytest.raises(SetupError, match="after 3 tries"):
        backend.complete(MESSAGES)
    assert len(server.posts()) == 3


def test_client_errors_are_not_retried(server):
    server.answers.append((400, {"error": {"message": "unsupported schema"}}))
    with pytest.raises(SetupError, match="HTTP 400.*unsupported schema"):
        fast_backend(server.url, model="m").complete(MESSAGES, json_schema=SCHEMA)
    assert len(server.posts()) == 1


def test_malformed_answers_are_model_output_errors(server):
    server.answers.extend([(200, "not json"), (200, {"choices": []})])
    backend = fast_backend(server.url, model="m")
    with pytest.raises(ModelOutputError, match="non-JSON"):
        backend.complete(MESSAGES)
    with pytest.raises(ModelOutputError, match="no message content"):
        backend.complete(MESSAGES)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_waits_for_a_server_that_is_still_starting():
    port = _free_port()
    late: list[ScriptedServer] = []

    def start_later() -> None:
        time.sleep(1.0)  # connection refused until then
        scripted = ScriptedServer(port)
        scripted.answers.append((200, chat_answer('{"action":"tune"}')))
        late.append(scripted.start())

    starter = threading.Thread(target=start_later)
    starter.start()
    try:
        backend = get_backend(f"http://127.0.0.1:{port}/v1", retry_backoff_s=0.1)
        started = time.perf_counter()
        completion = backend.complete(MESSAGES, json_schema=SCHEMA)
        assert json.loads(completion.text) == {"action": "tune"}
        assert time.perf_counter() - started >= 0.9  # it really waited for the server
    finally:
        starter.join()
        for scripted in late:
            scripted.stop()


def test_nothing_listening_is_a_setup_error_naming_serve():
    backend = fast_backend(
        f"http://127.0.0.1:{_free_port()}/v1", model="m", retry_attempts=2, retry_max_seconds=2
    )
    with pytest.raises(SetupError, match="autoglm serve"):
        backend.complete(MESSAGES)
