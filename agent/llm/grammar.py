"""Constrained decoding with xgrammar: compile a JSON schema once, then mask each step.

The grammar is compiled with `any_whitespace=False` so the model cannot pad its JSON with
newlines and indentation until the token budget runs out (measured: the 1.5B model did
exactly that under xgrammar's default whitespace). `JsonConstraint` wraps one
`GrammarMatcher` for one completion and answers the only questions the decoding loop asks:
which tokens may come next, which ones are forced, and is the JSON finished.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from core.errors import SetupError

# Compiled grammars kept per backend; a planner uses one or two schemas for its whole life.
MAX_CACHED_GRAMMARS = 16


def _xgrammar():
    try:
        import xgrammar
    except ImportError as error:  # a core dependency, but say what fixes it
        raise SetupError(
            "Constrained decoding needs xgrammar: `pip install 'xgrammar>=0.1.25'`."
        ) from error
    return xgrammar


class GrammarCompiler:
    """Compiles JSON schemas for one tokenizer and remembers the results."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> None:
        xgr = _xgrammar()
        self.vocab_size = vocab_size
        self.stop_token_ids = list(stop_token_ids)
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=self.stop_token_ids
        )
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self._compiled: dict[str, Any] = {}

    def constraint(self, json_schema: dict[str, Any]) -> JsonConstraint:
        """A fresh matcher for one completion constrained to `json_schema`."""
        key = json.dumps(json_schema, sort_keys=True)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiler.compile_json_schema(
                key, any_whitespace=False, strict_mode=True
            )
            if len(self._compiled) >= MAX_CACHED_GRAMMARS:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[key] = compiled
        return JsonConstraint(compiled, self.vocab_size)


class JsonConstraint:
    """The grammar state of one completion."""

    def __init__(self, compiled: Any, vocab_size: int) -> None:
        xgr = _xgrammar()
        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)  # [1, ceil(vocab / 32)]
        self._bits = torch.tensor([1 << i for i in range(32)], dtype=torch.int64)
        self.vocab_size = vocab_size

    def allowed_tokens(self) -> torch.Tensor:
        """Ids of the tokens the grammar allows next, ascending. # [n_allowed]"""
        self._matcher.fill_next_token_bitmask(self._bitmask)
        words = self._bitmask[0].to(torch.int64) & 0xFFFFFFFF  # [n_words]
        flags = (words.unsqueeze(1) & self._bits) != 0  # [n_words, 32]
        return flags.reshape(-1)[: self.vocab_size].nonzero().squeeze(1)

    def forced_tokens(self) -> list[int]:
        """Tokens the grammar forces from here (jump-forward); empty when there is a choice."""
        return list(self._matcher.find_jump_forward_tokens())

    def accept(self, token: int) -> None:
        if not self._matcher.accept_token(token):
            raise RuntimeError(f"grammar rejected token {token} it had allowed")

    @property
    def finished(self) -> bool:
        """The JSON is complete and the matcher accepted a stop token."""
        return self._matcher.is_terminated()

    @property
    def can_stop(self) -> bool:
        """The JSON text so far is a complete value."""
        return self._matcher.is_completed()
