"""An OpenAI-compatible chat server over HTTP: vLLM, SGLang, llama.cpp's server, Ollama.

The JSON schema goes out as `response_format: {"type": "json_schema", ...}`, which all four
honour; vLLM also gets its own `structured_outputs` field (detected from `/models`, whose
entries vLLM marks `owned_by: "vllm"`), which it applies even where its OpenAI layer would
not. Decoding is greedy (`temperature: 0`).

Only what can heal is retried, with tenacity: connection refused (a server still
starting), 429 and 5xx answers. Everything else fails at once with a message that says
what to fix.
"""

from __future__ import annotations

import time
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
from core.errors import SetupError

RETRY_MAX_ATTEMPTS = 10  # per request; a starting vLLM answers within ~35 s on CPU
RETRY_MAX_SECONDS = 90.0  # give up on a server that has not healed by then
RETRY_BACKOFF_FIRST_S = 0.5  # then doubling...
RETRY_BACKOFF_MAX_S = 8.0  # ...up to this
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
REQUEST_TIMEOUT_S = 300.0  # one completion on a CPU server can take a while
CONNECT_TIMEOUT_S = 5.0
SCHEMA_NAME = "actions"


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
        api_key: sent as a bearer token (local servers ignore it).
        timeout: seconds for one request.
        retry_attempts: tries per request for errors that can heal.
        retry_max_seconds: total time spent retrying one request.
        retry_backoff_s: the first wait between tries (doubling up to `RETRY_BACKOFF_MAX_S`).
    """

    name = "http"

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
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
        )
        self._retry = dict(
            stop=stop_after_attempt(retry_attempts) | stop_after_delay(retry_max_seconds),
            wait=wait_exponential(multiplier=retry_backoff_s, max=RETRY_BACKOFF_MAX_S),
            retry=retry_if_exception(_can_heal),
        )
        self.model = model or ""
        self._owned_by: str | None = None

    def complete(
        self,
        messages: list[Message],
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion:
        started = time.perf_counter()
        if not self.model:
            self.model = self._discover_model()
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
        answer = self._request("POST", "/chat/completions", json=body)
        return self._completion(answer, time.perf_counter() - started)

    def close(self) -> None:
        self._client.close()

    def _discover_model(self) -> str:
        listing = self._request("GET", "/models")
        models = listing.get("data") or []
        if not models or "id" not in models[0]:
            raise SetupError(
                f"The server at {self.base_url} lists no models; pass the model name "
                "(AUTOGLM_LLM_MODEL or model=...)."
            )
        self._owned_by = models[0].get("owned_by")
        return models[0]["id"]

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request, retried while the failure can heal; the decoded JSON answer."""
        try:
            for attempt in Retrying(reraise=False, **self._retry):
                with attempt:
                    return self._send(method, path, **kwargs)
        except RetryError as error:
            last = error.last_attempt.exception()
            raise SetupError(
                f"The LLM server at {self.base_url} did not answer {method} {path} after "
                f"{error.last_attempt.attempt_number} tries ({last}). Is it running? "
                "Start one with `autoglm serve`."
            ) from last
        raise AssertionError("unreachable: Retrying always runs or raises")

    def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise  # retried: the server may still be starting
        except httpx.TimeoutException as error:
            raise SetupError(
                f"The LLM server at {self.base_url} timed out on {method} {path} ({error}); "
                "raise the timeout or use a smaller model."
            ) from error
        except httpx.HTTPError as error:
            raise SetupError(
                f"Cannot talk to the LLM server at {self.base_url}: {error}"
            ) from error
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(response.status_code, response.text)
        if response.status_code >= 400:
            raise SetupError(
                f"The LLM server at {self.base_url} refused {method} {path} with HTTP "
                f"{response.status_code}: {response.text[:500]}"
            )
        try:
            return response.json()
        except ValueError as error:
            raise ModelOutputError(
                f"The LLM server at {self.base_url} answered {path} with non-JSON: "
                f"{response.text[:200]!r}"
            ) from error

    def _completion(self, answer: dict[str, Any], seconds: float) -> Completion:
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as error:
            raise ModelOutputError(
                f"The LLM server's answer has no message content: {str(answer)[:300]}"
            ) from error
        if text is None:
            raise ModelOutputError("The LLM server returned an empty message (content null).")
        usage = answer.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=seconds,
            backend=self.name,
            model=answer.get("model") or self.model,
            finish_reason=choice.get("finish_reason") or "stop",
        )
