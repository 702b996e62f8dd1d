"""An OpenAI-compatible chat server over HTTP: vLLM, SGLang, llama.cpp's server, Ollama.

The JSON schema goes out as `response_format: {"type": "json_schema", ...}`, which all four
honour; vLLM also gets its own `structured_outputs` field (detected from `/models`, whose
entries vLLM marks `owned_by: "vllm"`), which it applies even where its OpenAI layer would
not. Decoding is greedy (`temperature: 0`).

Only what can heal is retried, with tenacity: connection refused (a server still
starting), 429 and 5xx answers. Everything else fails at once with a message that says
what to fix.

Nothing here waits without end. Each request has a total deadline (`timeout`, from
`--llm-timeout` or `AUTOGLM_LLM_TIMEOUT`), retries included, kept by a watchdog that shuts
the socket: a server that trickles one byte every few seconds is cut off on time, which
httpx's per-read timeouts alone would never do. Inside `time_budget()` (the CLI opens one
per request it plans) every request of the plan shares that budget. An answer over
`MAX_ANSWER_BYTES` is refused unread, and a text longer than `max_tokens` could hold is
cut to that length and marked `finish_reason="length"`, as a server that honours
`max_tokens` would have done, so a re-ask never echoes megabytes back.

Settings read from the environment by `agent.llm.get_backend` (`http_settings`):
`AUTOGLM_LLM_MODEL` (the served model; default: the first one `/models` lists),
`AUTOGLM_LLM_API_KEY` (sent as a bearer token, e.g. to `autoglm serve --api-key`),
`AUTOGLM_LLM_TIMEOUT` (seconds).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from agent.errors import ModelOutputError
from agent.llm.base import Completion, LLMBackend, Message
from core.errors import SetupError, UserInputError

RETRY_MAX_ATTEMPTS = 10  # per request; a starting vLLM answers within ~35 s on CPU
RETRY_MAX_SECONDS = 90.0  # give up on a server that has not healed by then
RETRY_BACKOFF_FIRST_S = 0.5  # then doubling...
RETRY_BACKOFF_MAX_S = 8.0  # ...up to this
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
REQUEST_TIMEOUT_S = 300.0  # a request, and a plan, on a slow CPU server can take minutes
CONNECT_TIMEOUT_S = 5.0
# A plan of a few hundred tokens is a few KB, a `/models` list a few more: 1 MiB is far
# beyond any honest answer and small enough to hold.
MAX_ANSWER_BYTES = 2**20
# Bound on the text of `max_tokens` tokens: tokens of compact JSON average ~3 characters;
# the longest in these vocabularies (runs of spaces or dashes) stay well under 32.
MAX_CHARS_PER_TOKEN = 32
SCHEMA_NAME = "actions"
ENV_MODEL = "AUTOGLM_LLM_MODEL"
ENV_API_KEY = "AUTOGLM_LLM_API_KEY"
ENV_TIMEOUT = "AUTOGLM_LLM_TIMEOUT"
HOW_TO_WAIT_LONGER = (
    "Allow longer with --llm-timeout SECONDS (or AUTOGLM_LLM_TIMEOUT), or use a faster "
    "server or a smaller model."
)


def parse_timeout(text: str, source: str = "--llm-timeout") -> float:
    """Seconds from a flag or environment value.

    Raises:
        UserInputError: not a positive, finite number.
    """
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UserInputError(
            f"{source} must be a positive number of seconds, e.g. 120, not {text!r}."
        )
    return seconds


def http_settings() -> dict[str, Any]:
    """`model`, `api_key` and `timeout` from `AUTOGLM_LLM_MODEL`, `AUTOGLM_LLM_API_KEY` and
    `AUTOGLM_LLM_TIMEOUT` (only those that are set).

    Raises:
        UserInputError: `AUTOGLM_LLM_TIMEOUT` is not a positive number.
    """
    settings: dict[str, Any] = {}
    if os.environ.get(ENV_MODEL):
        settings["model"] = os.environ[ENV_MODEL]
    if os.environ.get(ENV_API_KEY):
        settings["api_key"] = os.environ[ENV_API_KEY]
    if os.environ.get(ENV_TIMEOUT):
        settings["timeout"] = parse_timeout(os.environ[ENV_TIMEOUT], ENV_TIMEOUT)
    return settings


@dataclass
class _Budget:
    """The seconds every request of one plan shares."""

    seconds: float
    spent: float = 0.0
    requests: int = 0

    @property
    def left(self) -> float:
        return self.seconds - self.spent


@dataclass
class _Deadline:
    """When one request (its retries included) must be done, and which limit set it."""

    end: float  # time.monotonic()
    seconds: float  # the limit in force: the request's own, or what the plan had left
    budget: _Budget | None  # set when the plan's budget was the tighter limit

    def left(self) -> float:
        return self.end - time.monotonic()


class _Expired(Exception):
    """The deadline passed (the watchdog shut the socket, or nothing was left to start)."""


class _Retryable(Exception):
    """A server answer that may heal (429, 5xx)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


def _can_heal(error: BaseException) -> bool:
    return isinstance(error, (_Retryable, httpx.ConnectError))


class HTTPBackend(LLMBackend):
    """Chat completions from an OpenAI-compatible server.

    Args:
        base_url: the API root, e.g. `http://127.0.0.1:8000/v1`.
        model: the served model's name; None asks the server's `/models` and takes the first.
        api_key: sent as a bearer token (local servers ignore it; `autoglm serve --api-key`
            and hosted servers check it).
        timeout: the most seconds one request may take, retries included, however slowly
            the server answers; also a plan's budget inside `time_budget()`.
        retry_attempts: tries per request for errors that can heal.
        retry_max_seconds: total time spent retrying one request.
        retry_backoff_s: the first wait between tries (doubling up to `RETRY_BACKOFF_MAX_S`).
    """

    name = "http"
    deadlines = True

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
        retry_attempts: int = RETRY_MAX_ATTEMPTS,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        retry_backoff_s: float = RETRY_BACKOFF_FIRST_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = parse_timeout(str(timeout), "timeout")
        # identity: no compressed answer can expand past the size cap while being read.
        headers = {"Accept-Encoding": "identity"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            # A fresh connection per request: the watchdog needs the socket it opens.
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._retry_stop = stop_after_attempt(retry_attempts) | stop_after_delay(retry_max_seconds)
        self._retry_wait = wait_exponential(multiplier=retry_backoff_s, max=RETRY_BACKOFF_MAX_S)
        self.model = model or ""
        self._owned_by: str | None = None
        self._budget: _Budget | None = None

    @contextlib.contextmanager
    def time_budget(self, seconds: float | None = None) -> Iterator[None]:
        """Every request inside the block shares `seconds` (default: `timeout`), retries
        and re-asks included; only time spent waiting for the server counts."""
        outer, self._budget = self._budget, _Budget(seconds or self.timeout)
        try:
            yield
        finally:
            self._budget = outer

    def complete(
        self,
        messages: list[Message],
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion:
        started = time.perf_counter()
        deadline = self._deadline()
        try:
            answer = self._chat(messages, json_schema, max_tokens, deadline)
        finally:
            if self._budget is not None:
                self._budget.spent += time.perf_counter() - started
        return self._completion(answer, time.perf_counter() - started, max_tokens)

    def _chat(
        self,
        messages: list[Message],
        json_schema: dict[str, Any] | None,
        max_tokens: int,
        deadline: _Deadline,
    ) -> dict[str, Any]:
        if not self.model:
            self.model = self._discover_model(deadline)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": json_schema, "strict": True},
            }
            if self._owned_by == "vllm":
                body["structured_outputs"] = {"json": json_schema, "disable_any_whitespace": True}
        return self._request("POST", "/chat/completions", deadline, json=body)

    def close(self) -> None:
        self._client.close()

    def _deadline(self) -> _Deadline:
        """This request's deadline: its own limit, or what the plan has left if less."""
        budget = self._budget
        if budget is not None:
            budget.requests += 1
        if budget is not None and budget.left < self.timeout:
            if budget.left <= 0:
                raise self._expired("POST", "/chat/completions", _Deadline(0, 0, budget))
            return _Deadline(time.monotonic() + budget.left, budget.left, budget)
        return _Deadline(time.monotonic() + self.timeout, self.timeout, None)

    def _expired(self, method: str, path: str, deadline: _Deadline) -> SetupError:
        budget = deadline.budget
        if budget is not None:
            asked = f"{budget.requests} request{'s' if budget.requests != 1 else ''}"
            return SetupError(
                f"The planner model used up its {budget.seconds:g} s for this plan "
                f"({asked} to {self.base_url}; the last, {method} {path}, was cut off). "
                f"{HOW_TO_WAIT_LONGER}"
            )
        return SetupError(
            f"The LLM server at {self.base_url} did not finish {method} {path} within "
            f"{deadline.seconds:g} s, the limit for one request however slowly it "
            f"answers. {HOW_TO_WAIT_LONGER}"
        )

    def _discover_model(self, deadline: _Deadline) -> str:
        listing = self._request("GET", "/models", deadline)
        models = listing.get("data") or []
        if not models or "id" not in models[0]:
            raise SetupError(
                f"The server at {self.base_url} lists no models; name the one to use with "
                f"{ENV_MODEL}."
            )
        self._owned_by = models[0].get("owned_by")
        return models[0]["id"]

    def _request(
        self, method: str, path: str, deadline: _Deadline, **kwargs: Any
    ) -> dict[str, Any]:
        """One request, retried while the failure can heal and the deadline allows; the
        decoded JSON answer."""
        retrying = Retrying(
            reraise=False,
            stop=self._retry_stop | (lambda state: deadline.left() <= 0),
            wait=lambda state: max(0.0, min(self._retry_wait(state), deadline.left())),
            retry=retry_if_exception(_can_heal),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, path, deadline, **kwargs)
        except _Expired:
            raise self._expired(method, path, deadline) from None
        except RetryError as error:
            last = error.last_attempt.exception()
            if deadline.left() <= 0:
                raise self._expired(method, path, deadline) from None
            raise SetupError(
                f"The LLM server at {self.base_url} did not answer {method} {path} after "
                f"{error.last_attempt.attempt_number} tries ({last}). Is it running? "
                "Start one with `autoglm serve`."
            ) from None
        raise AssertionError("unreachable: Retrying always runs or raises")

    def _send(self, method: str, path: str, deadline: _Deadline, **kwargs: Any) -> dict[str, Any]:
        left = deadline.left()
        if left <= 0:
            raise _Expired
        with _Watchdog(left) as watchdog:
            try:
                with self._client.stream(
                    method,
                    path,
                    timeout=httpx.Timeout(left, connect=min(CONNECT_TIMEOUT_S, left)),
                    extensions={"trace": watchdog.trace},
                    **kwargs,
                ) as response:
                    data = self._read(response, method, path)
            except httpx.ConnectError:
                if watchdog.fired or deadline.left() <= 0:
                    raise _Expired from None
                raise  # retried: the server may still be starting
            except httpx.HTTPError as error:
                if watchdog.fired or deadline.left() <= 0:
                    raise _Expired from None
                raise SetupError(
                    f"Cannot talk to the LLM server at {self.base_url}: {error}"
                ) from None
        text = data.decode("utf-8", errors="replace")
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(response.status_code, text)
        if response.status_code >= 400:
            raise SetupError(
                f"The LLM server at {self.base_url} refused {method} {path} with HTTP "
                f"{response.status_code}: {text[:500]}"
            )
        try:
            return json.loads(data)
        except ValueError:
            raise ModelOutputError(
                f"The LLM server at {self.base_url} answered {path} with non-JSON: {text[:200]!r}"
            ) from None

    def _read(self, response: httpx.Response, method: str, path: str) -> bytes:
        """The body, refused as soon as it passes `MAX_ANSWER_BYTES`."""
        declared = response.headers.get("content-length", "")
        chunks, size = [], int(declared) if declared.isdigit() else 0
        if size <= MAX_ANSWER_BYTES:
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    break
                chunks.append(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ModelOutputError(
                f"The LLM server at {self.base_url} sent more than 1 MiB for {method} {path} "
                "(a plan is a few KB), so it was not read. The server is not honouring "
                "max_tokens; check its settings or use another server."
            )
        return b"".join(chunks)

    def _completion(self, answer: dict[str, Any], seconds: float, max_tokens: int) -> Completion:
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as error:
            raise ModelOutputError(
                f"The LLM server's answer has no message content: {str(answer)[:300]}"
            ) from error
        if text is None:
            raise ModelOutputError("The LLM server returned an empty message (content null).")
        if not isinstance(text, str):
            raise ModelOutputError(f"The LLM server's message is not text: {str(text)[:200]}")
        finish = choice.get("finish_reason") or "stop"
        longest = max_tokens * MAX_CHARS_PER_TOKEN
        if len(text) > longest:  # the server ignored max_tokens; do what it should have
            text, finish = text[:longest], "length"
        usage = answer.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=seconds,
            backend=self.name,
            model=answer.get("model") or self.model,
            finish_reason=finish,
        )


class _Watchdog:
    """Shuts the request's socket when its deadline passes, waking a blocked read.

    httpx times each read, so a server sending one byte every few seconds never trips it;
    the watchdog keeps the total. The socket comes from httpcore's connection trace (every
    request opens its own connection).
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            sock = info["return_value"].get_extra_info("socket")
            with self._lock:
                if sock is not None:
                    self._sockets.append(sock)
                if self.fired:
                    self._shut()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut()

    def _shut(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
