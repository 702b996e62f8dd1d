"""Errors caused by the language model's output, and by the plan it produced.

These go back into the conversation so the model can fix them; when attempts run out they
reach the user as one clear paragraph. User and setup errors are in `core.errors`.
"""

from __future__ import annotations

from core.errors import AutoGLMError, SetupError, UserInputError

__all__ = [
    "AutoGLMError",
    "UserInputError",
    "SetupError",
    "ModelOutputError",
    "PlanningError",
    "RuleViolation",
]


class ModelOutputError(AutoGLMError):
    """One completion could not be used (bad JSON, schema violation, ungrounded value)."""

    exit_code = 4


class PlanningError(AutoGLMError):
    """The planner ran out of attempts; carries the attempt count and the last completion."""

    exit_code = 4

    def __init__(self, message: str, attempts: int, last_completion: str | None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_completion = last_completion


class RuleViolation(AutoGLMError):
    """The rule engine refused an action; `reason` says why and `alternatives` what would do."""

    exit_code = 5

    def __init__(self, reason: str, alternatives: list[str] | None = None) -> None:
        text = reason
        if alternatives:
            text += " Alternatives: " + "; ".join(alternatives) + "."
        super().__init__(text)
        self.reason = reason
        self.alternatives = alternatives or []
