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
        self.headers: list[dict[str, str]] = []
        self.delay = 0.0  # seconds before each answer
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append((self.command, self.path, body))
                server.headers.append(dict(self.headers))
                time.sleep(server.delay)
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


# ------------------------------------------------ issue 10, case 6: deadlines, caps, settings


class SlowServer:
    """A raw loopback server that answers each connection with `script(conn)`: it can send
    nothing (hung), trickle bytes, or pour out far more than any answer should hold."""

    def __init__(self, script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.script, self.sent, self.stopping = script, 0, threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request (small enough for one read on loopback)
            try:
                self.script(self, conn)
            except OSError:  # the client hung up: what a deadline does
                pass

    def pause(self, seconds: float) -> bool:
        """Sleep unless the server stops; False once it does."""
        return not self.stopping.wait(seconds)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.listener.close()


def trickle_body(server: SlowServer, conn: socket.socket) -> None:
    """Headers at once, then one byte of a never-finished body every 2 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n")  # fmt: skip
    while server.pause(2.0):
        conn.sendall(b" ")
        server.sent += 1


def trickle_headers(server: SlowServer, conn: socket.socket) -> None:
    """Even the status line comes one byte every 2 s."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
        if not server.pause(2.0):
            return
        conn.sendall(bytes([byte]))
        server.sent += 1


def hang(server: SlowServer, conn: socket.socket) -> None:
    server.pause(600)


def pour(server: SlowServer, conn: socket.socket) -> None:
    """A 50 MB answer, as fast as the client reads it."""
    size = 50 * 2**20
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % size)  # fmt: skip
    chunk = b'{"choices":' + b" " * (2**16 - 11)
    while server.sent < size and not server.stopping.is_set():
        conn.sendall(chunk)
        server.sent += len(chunk)


def timed(call) -> tuple[BaseException | None, float]:
    """`call()` in a thread, given at most 30 s (a missing deadline must fail, not hang)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test to check
            outcome.append(error)

    started = time.perf_counter()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(30)
    assert outcome, "the backend was still waiting after 30 s: no total deadline"
    return outcome[0], time.perf_counter() - started


@pytest.mark.parametrize("script", [trickle_body, trickle_headers, hang])
def test_a_slow_or_hung_server_hits_the_total_deadline(script, monkeypatch):
    slow = SlowServer(script)
    try:
        monkeypatch.setenv("AUTOGLM_LLM_TIMEOUT", "3")
        backend = get_backend(slow.url, model="m")
        error, seconds = timed(lambda: backend.complete(MESSAGES))
    finally:
        slow.stop()
    assert isinstance(error, SetupError), error
    assert 2.9 <= seconds < 5.0  # the deadline, not a read timeout restarted by each byte
    message = str(error)
    assert "within 3 s" in message and slow.url in message
    assert "--llm-timeout" in message and "AUTOGLM_LLM_TIMEOUT" in message


def test_a_plan_shares_one_deadline_over_its_requests(server):
    """Each answer takes 1.2 s, under the limit; the plan's re-asks together do not."""
    from agent.errors import PlanningError
    from agent.planner import Planner

    server.delay = 1.2
    server.answers.extend([(200, chat_answer("not a plan"))] * 3)
    backend = fast_backend(server.url, model="m")
    started = time.perf_counter()
    with backend.time_budget(2.0), pytest.raises(SetupError) as caught:
        Planner(backend, max_attempts=3).plan("train a gcn on cora")
    seconds = time.perf_counter() - started
    assert seconds < 2.8 and len(server.posts()) == 2  # the third ask never went out
    message = str(caught.value)
    assert "2 s for this plan" in message and "--llm-timeout" in message
    assert not isinstance(caught.value, PlanningError)


def test_an_oversized_answer_is_cut_off_and_refused():
    flood = SlowServer(pour)
    try:
        backend = fast_backend(flood.url, model="m")
        error, seconds = timed(lambda: backend.complete(MESSAGES))
    finally:
        flood.stop()
    assert isinstance(error, ModelOutputError) and "more than 1 MiB" in str(error)
    assert flood.sent < 8 * 2**20  # it stopped reading long before 50 MB
    assert seconds < 5.0


def test_a_long_answer_is_bounded_by_max_tokens_and_so_is_its_echo(server):
    """A server that ignores max_tokens: the backend keeps what max_tokens could hold and
    says it was cut off; the planner's re-asks then echo that much, not 300 KB."""
    from agent.errors import PlanningError
    from agent.planner import Planner

    junk = "x" * 300_000
    server.answers.extend([(200, chat_answer(junk))] * 4)
    backend = fast_backend(server.url, model="m")
    completion = backend.complete(MESSAGES, max_tokens=64)
    assert completion.finish_reason == "length" and len(completion.text) <= 64 * 32
    assert junk.startswith(completion.text)
    with pytest.raises(PlanningError):
        Planner(backend).plan("train a gcn on cora")
    assert len(server.posts()) == 4  # one direct call, then the plan's ask and two re-asks
    for body in server.posts()[2:]:  # the re-ask says why, quoting a bounded snippet
        assert "cut off after" in body["messages"][-1]["content"]
        assert len(json.dumps(body)) < 100_000


def test_model_and_api_key_come_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("AUTOGLM_LLM_MODEL", "served-glm")
    monkeypatch.setenv("AUTOGLM_LLM_API_KEY", "s3cret")
    server.answers.append((200, chat_answer("{}")))
    get_backend(server.url).complete(MESSAGES)
    assert [(method, path) for method, path, _ in server.requests] == [
        ("POST", "/v1/chat/completions")  # no /models lookup: the name was given
    ]
    assert server.posts()[0]["model"] == "served-glm"
    assert server.headers[0]["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf"])
def test_a_bad_timeout_setting_is_refused_with_its_name(value, monkeypatch):
    from core.errors import UserInputError

    monkeypatch.setenv("AUTOGLM_LLM_TIMEOUT", value)
    with pytest.raises(UserInputError, match="AUTOGLM_LLM_TIMEOUT"):
        get_backend("http://127.0.0.1:9/v1")


def test_plan_command_takes_llm_timeout(tmp_path):
    """`autoglm plan --llm-timeout 2` against a hung server: one paragraph in ~2 s, exit 3."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    slow = SlowServer(hang)
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "plan", "train a gcn on cora",
             "--backend", slow.url, "--llm-timeout", "2"],
            env={**os.environ, "PYTHONPATH": str(root), "AUTOGLM_LLM_MODEL": "m"},
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        slow.stop()
    assert done.returncode == 3, done.stderr
    assert "2 s for this plan" in done.stderr and "Traceback" not in done.stderr
    assert seconds < 60  # imports included, slow on a busy machine; precision: tests above
