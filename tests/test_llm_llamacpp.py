"""The llama.cpp runtime: grammar from the planner's own schemas, the build checks, and
(slow, the real model) decoding that follows every schema the planner produces."""

from __future__ import annotations

import json

import jsonschema
import pytest

from agent.llm.gbnf import schema_grammar
from agent.llm.llamacpp import check_build, library_features, use_extra_buffers
from core.errors import SetupError

NATIVE_SPR = (
    "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | "
    "AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 | "
)
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | REPACK = 1 | "


class FakeLibrary:
    def __init__(self, info: str) -> None:
        self.info = info

    def llama_print_system_info(self) -> bytes:
        return self.info.encode()


def test_an_amx_build_loads_without_extra_buffers():
    assert not use_extra_buffers(library_features(FakeLibrary(NATIVE_SPR)))
    assert use_extra_buffers(library_features(FakeLibrary(PORTABLE)))


def test_a_build_for_instructions_this_cpu_lacks_is_refused(monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    features = library_features(FakeLibrary(NATIVE_SPR))
    with pytest.raises(SetupError, match="AVX512.*CMAKE_ARGS"):
        check_build(features, {"avx2", "fma", "f16c"})
    check_build(library_features(FakeLibrary(PORTABLE)), {"avx2", "fma", "f16c", "sse3"})
    check_build(features, None)  # flags unreadable: nothing to say


def test_the_grammar_is_compact_and_keeps_control_characters_out_of_strings():
    grammar = schema_grammar(
        {
            "type": "object",
            "properties": {"q": {"type": "string", "maxLength": 5}},
            "required": ["q"],
            "additionalProperties": False,
        }  # fmt: skip
    )
    assert 'space ::= ""' in grammar and '" "?' not in grammar
    assert "\\x00-\\x1F" in grammar


def planner_schemas() -> list[tuple[str, dict]]:
    """The schemas agent.planner passes for real requests, narrowed by its own code."""
    from agent.plan.candidates import read
    from agent.plan.schema import request_schema

    texts = [
        "Train a GCN on Cora for 100 epochs",
        "compare GAT and GraphSAGE on CiteSeer with 5 seeds",
        "which model did best?",
        "在 MUTAG 上训练 GIN",
        "train something",
        "train GIN on proteins for 60 epochs, no, 90",
    ]
    out = []
    for text in texts:
        candidates = read(text, {"runs": [1, 2, 3]})
        out.append((text, request_schema(candidates, text, max_actions=2)))
    out.append(("the number", {
        "type": "object",
        "properties": {"field": {"type": "string", "enum": ["epochs", "hidden_channels", "none"]}},
        "required": ["field"], "additionalProperties": False,
    }))  # fmt: skip
    return out


@pytest.mark.parametrize("text, schema", planner_schemas())
def test_every_planner_schema_becomes_a_grammar(text, schema):
    assert "root ::=" in schema_grammar(schema)


@pytest.mark.slow
@pytest.mark.parametrize("text, schema", planner_schemas())
def test_the_real_model_answers_every_planner_schema_validly(embedded_backend, text, schema):
    from agent.plan.prompt import system_prompt

    messages = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": text}]
    completion = embedded_backend.complete(messages, json_schema=schema, max_tokens=200)
    assert completion.finish_reason == "stop", completion.text
    jsonschema.validate(json.loads(completion.text), schema)


@pytest.mark.slow
def test_jump_forward_changes_no_forced_text(embedded_backend):
    from agent.llm.llamacpp import LlamaCppBackend

    plain = LlamaCppBackend(
        embedded_backend.model_path, jump_forward=False, save_state=False, n_ctx=1024
    )
    schema = {
        "type": "object",
        "properties": {"dataset": {"type": "string", "enum": ["cora", "citeseer"]},
                       "note": {"type": "string", "enum": ["节点分类"]}},
        "required": ["dataset", "note"], "additionalProperties": False,
    }  # fmt: skip
    messages = [{"role": "user", "content": "Which dataset: I said CiteSeer."}]
    fast = embedded_backend.complete(messages, json_schema=schema, max_tokens=40)
    slow = plain.complete(messages, json_schema=schema, max_tokens=40)
    assert json.loads(fast.text) == json.loads(slow.text) == {"dataset": "citeseer",
                                                              "note": "节点分类"}  # fmt: skip
    plain.close()
