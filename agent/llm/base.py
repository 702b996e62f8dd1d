"""The interface every language-model backend implements."""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Any, TypedDict


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass
class Completion:
    """One model answer and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    backend: str = ""
    model: str = ""
    finish_reason: str = "stop"  # "stop": the model ended it; "length": max_tokens cut it off


class LLMBackend(abc.ABC):
    """Turns a chat into text, optionally constrained to a JSON schema.

    Backends that can constrain decoding (xgrammar, a server's `response_format`) must do
    so when `json_schema` is given; the planner validates the text either way.
    """

    name: str = "base"
    model: str = ""
    deadlines: bool = False  # does `time_budget` limit it? (in-process generation: no)

    @abc.abstractmethod
    def complete(
        self,
        messages: list[Message],
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion:
        """Return the model's answer to `messages`."""

    def warm_up(self, messages: list[Message]) -> None:  # noqa: B027 - optional hook
        """Prepare for prompts that start with `messages` (e.g. the planner's system prompt).

        In-process backends prefill their KV cache here, so the first real call costs what
        every later one does; others have nothing to do.
        """

    def time_budget(self, seconds: float | None = None) -> contextlib.AbstractContextManager:
        """A block whose model calls share `seconds` (one plan); default: not limited.

        Backends that wait on something outside the process (a server) override this and
        set `deadlines`; in-process generation is bounded by `max_tokens` instead.
        """
        return contextlib.nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Release the model or connection (default: nothing to release)."""
