"""Language-model backends behind one interface (`agent.llm.base.LLMBackend`)."""

from agent.llm.base import Completion, LLMBackend, Message

__all__ = ["Completion", "LLMBackend", "Message"]
