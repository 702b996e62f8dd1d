"""A scripted backend for tests of the control flow (never for planning quality)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from agent.llm.base import Completion, LLMBackend, Message


class FakeBackend(LLMBackend):
    """Replies with queued strings, or with `fn(messages)` when given a function.

    Every call is recorded in `calls` so tests can assert what the model was shown.
    """

    name = "fake"
    model = "scripted"

    def __init__(
        self,
        replies: Iterable[str] = (),
        fn: Callable[[list[Message]], str] | None = None,
    ) -> None:
        self._replies: deque[str] = deque(replies)
        self._fn = fn
        self.calls: list[list[Message]] = []

    def enqueue(self, *replies: str) -> None:
        self._replies.extend(replies)

    def complete(
        self,
        messages: list[Message],
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion:
        self.calls.append(list(messages))
        if self._fn is not None:
            text = self._fn(messages)
        elif self._replies:
            text = self._replies.popleft()
        else:
            raise AssertionError("FakeBackend ran out of scripted replies")
        return Completion(text=text, backend=self.name, model=self.model)
