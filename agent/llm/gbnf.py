"""JSON schemas as llama.cpp grammars (GBNF), and one completion's grammar state.

The schema is converted by llama-cpp-python's own converter (`llama_cpp.llama_grammar`), then
tightened in two places where JSON allows less than that converter does:

- no optional space between tokens (`space ::= ""`): one canonical layout, as xgrammar's
  `any_whitespace=False` gives the transformers backend; the model cannot pad its answer;
- no raw control characters inside strings (`json.loads` rejects them).

`GrammarState` wraps one `llama_sampler` grammar and answers what the decoding loop asks:
which of these tokens may come next, and which bytes are forced from here (jump-forward).
Forced bytes are found by offering the grammar every single-byte token: when exactly one is
allowed and the end is not, that byte is the only way on. A schema that admits one document
(the planner's, once the words settled every field) is therefore written without the model.
Limits of the converter, measured on the planner's schemas in `bench/grammar_choice.py`:
`minimum`/`maximum` are not enforced (the planner narrows numbers with `enum`, and validates
every answer), `pattern` and `format` follow llama.cpp's rules.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np

from core.errors import SetupError

# The converter's rules that JSON itself is stricter about, and what they become.
_TIGHTEN = (
    ('space ::= " "?', 'space ::= ""'),
    ('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'),
)
# A llama_token_data row: (id int32, logit float32, p float32), as in llama.h.
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def schema_grammar(json_schema: dict[str, Any]) -> str:
    """The GBNF grammar of `json_schema`, compact (no whitespace between tokens).

    Raises:
        SetupError: the converter does not understand the schema.
    """
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        schema = converter.resolve_refs(json.loads(json.dumps(json_schema)), "")
        converter.visit(schema, "")
    except (AssertionError, KeyError, TypeError, ValueError) as error:
        raise SetupError(f"llama.cpp cannot turn the JSON schema into a grammar: {error}") from None
    grammar = converter.format_grammar()
    for loose, strict in _TIGHTEN:
        if loose in grammar:
            grammar = grammar.replace(loose, strict)
    return grammar


class GrammarState:
    """The grammar of one completion, over llama.cpp's sampler API.

    Args:
        vocab: the model's `llama_vocab *`.
        grammar: GBNF text (see `schema_grammar`).
        byte_tokens: `{byte: token id}` for the 256 single-byte tokens (empty: no
            jump-forward, every byte is the model's choice).
        eog_tokens: end-of-generation token ids.
    """

    def __init__(
        self, vocab: Any, grammar: str, byte_tokens: dict[int, int], eog_tokens: list[int]
    ) -> None:
        import llama_cpp

        self._llama = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not self._sampler:
            raise SetupError("llama.cpp rejected the grammar built from the JSON schema.")
        self.eog_tokens = list(eog_tokens)
        self._eog = set(self.eog_tokens)
        self._byte_of = {token: byte for byte, token in byte_tokens.items()}
        self._probe = np.array(
            [*byte_tokens.values(), *self.eog_tokens], dtype=np.int32
        )  # [256 + n_eog]

    def clone(self) -> GrammarState:
        """An independent copy at the same position."""
        copy = object.__new__(GrammarState)
        copy.__dict__.update(self.__dict__)
        copy._sampler = self._llama.llama_sampler_clone(self._sampler)
        return copy

    def close(self) -> None:
        if self._sampler:
            self._llama.llama_sampler_free(self._sampler)
            self._sampler = None

    def __del__(self) -> None:
        self.close()

    def allowed(self, tokens: np.ndarray) -> np.ndarray:
        """The subset of `tokens` the grammar allows next, in the same order. # [n_allowed]"""
        rows = np.zeros(len(tokens), dtype=TOKEN_DATA)  # [n_tokens]
        rows["id"] = tokens
        array = self._llama.llama_token_data_array(
            data=rows.ctypes.data_as(self._llama.llama_token_data_p),
            size=len(rows),
            selected=-1,
            sorted=False,
        )
        self._llama.llama_sampler_apply(self._sampler, ctypes.byref(array))
        return rows["id"][np.isfinite(rows["logit"])]

    def accept(self, token: int) -> None:
        self._llama.llama_sampler_accept(self._sampler, int(token))

    def forced_bytes(self, limit: int, leave_quotes: bool = False) -> tuple[bytes, bool]:
        """Accept the bytes the grammar forces from here, at most `limit` of them.

        With `leave_quotes`, forced punctuation (quotes, colons, brackets) is left to the
        model and only the letters of names are forced: the model then writes punctuation
        merged as it tokenizes it (`":"`, `":[{"`), instead of continuing after a split it
        never saw (after a forced `":`, a small model prefers `null` to a string it would
        have begun with `":"`, and after a forced `"action":"`, `train` to `tune`).

        Returns:
            (the forced bytes, whether the document is complete: nothing but the end allowed).
        """
        forced = bytearray()
        if not self._byte_of:
            return bytes(forced), False
        while len(forced) < limit:
            allowed = self.allowed(self._probe)
            if len(allowed) == 0:
                raise SetupError("The grammar allows no token at all; the schema is unsatisfiable.")
            if all(int(token) in self._eog for token in allowed):
                return bytes(forced), True
            if len(allowed) > 1:
                return bytes(forced), False
            token = int(allowed[0])
            if (
                leave_quotes
                and not chr(self._byte_of[token]).isalnum()
                and self._byte_of[token] != ord("_")
            ):
                return bytes(
                    forced
                ), False  # punctuation: the model writes it, merged as it tokenizes
            self.accept(token)
            forced.append(self._byte_of[token])
        return bytes(forced), False
