"""The in-process transformers backend on a tiny random GLM-4 built in the test.

A random model produces arbitrary tokens; only the xgrammar constraint stands between it
and garbage, so "every completion is schema-valid" is a real test of the constraint. The
character-level tokenizer makes grammar-forced tokens unique, so jump-forward and prefix
caching must not change a single output token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

import jsonschema
import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from agent.llm import get_backend
from agent.llm.transformers_backend import TransformersBackend
from core.errors import SetupError, UserInputError

SPECIALS = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>"]
CHARS = [chr(code) for code in range(32, 127)] + ["\n"]
CHAT_TEMPLATE = (
    "[gMASK]<sop>{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
MODEL_VOCAB = 128  # more rows than tokens, like real checkpoints padded for speed


class Train(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["train"]
    dataset: Literal["cora", "citeseer", "mutag"] | None = None
    model: Literal["gcn", "gat", "sage", "gin"] | None = None
    epochs: int | None = Field(default=None, ge=1, le=1000)


class Compare(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["compare"]
    dataset: Literal["cora", "citeseer", "mutag"] | None = None
    models: list[Literal["gcn", "gat", "sage", "gin"]] | None = Field(
        default=None, min_length=1, max_length=3
    )


class Clarify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["clarify"]
    question: str = Field(min_length=1, max_length=40)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actions: list[Annotated[Train | Compare | Clarify, Field(discriminator="action")]] = Field(
        min_length=1, max_length=2
    )


SCHEMA = TypeAdapter(Plan).json_schema()
SYSTEM = "Turn the request into JSON actions: " + ", ".join(["train", "compare", "clarify"]) * 20
TASKS = [
    "train a gcn on cora for 100 epochs",
    "compare gat and sage on citeseer",
    "what should I do?",
    "train gin on mutag",
    "ÉÑ 训练 unknown characters too",
]


def build_tiny_glm(directory: Path) -> Path:
    """A random 2-layer Glm4ForCausalLM (head_dim 64) and a character-level tokenizer."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import Glm4Config, Glm4ForCausalLM, PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIALS + ["<unk>"] + CHARS)}
    characters = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    characters.decoder = decoders.Fuse()  # tokens are characters: join them as they are
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=characters,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=SPECIALS[1:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    stops = [vocab["<|endoftext|>"], vocab["<|user|>"]]
    config = Glm4Config(
        vocab_size=MODEL_VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,  # vLLM's CPU attention rejects 16; keep the test model servable
        max_position_embeddings=4096,
        pad_token_id=vocab["<|endoftext|>"],
        eos_token_id=stops,
    )
    torch.manual_seed(0)
    model = Glm4ForCausalLM(config)
    with torch.no_grad():  # default init gives near-uniform logits: the same answer every time
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.5)
    model.generation_config.eos_token_id = stops
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_glm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_glm(tmp_path_factory.mktemp("tiny-glm"))


@pytest.fixture(scope="module")
def backend(tiny_glm_dir: Path) -> TransformersBackend:
    return TransformersBackend(tiny_glm_dir)


def messages(task: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def run_tasks(backend: TransformersBackend) -> list[str]:
    texts = []
    for task in TASKS:
        completion = backend.complete(messages(task), json_schema=SCHEMA, max_tokens=400)
        assert completion.finish_reason == "stop", completion.text
        texts.append(completion.text)
    return texts


def test_random_glm4_always_yields_schema_valid_actions(backend: TransformersBackend):
    assert type(backend._model).__name__ == "Glm4ForCausalLM"
    for text in run_tasks(backend):
        document = json.loads(text)
        jsonschema.validate(document, SCHEMA)
        Plan.model_validate(document)
        assert text == json.dumps(document)  # any_whitespace=False: one canonical layout


def test_completion_reports_tokens_and_time(backend: TransformersBackend):
    completion = backend.complete(messages(TASKS[0]), json_schema=SCHEMA, max_tokens=400)
    expected_prompt = len(backend.encode_chat(messages(TASKS[0])))
    assert completion.prompt_tokens == expected_prompt > len(SYSTEM)  # char-level tokens
    assert 0 < completion.completion_tokens <= len(completion.text)  # tokens are >= 1 char
    assert completion.seconds > 0 and completion.backend == "transformers"


def test_prefix_cache_and_jump_forward_change_no_output(tiny_glm_dir: Path, backend):
    plain = TransformersBackend(tiny_glm_dir, prefix_cache=False, jump_forward=False)
    assert run_tasks(plain) == run_tasks(backend)


def test_prefix_cache_skips_the_shared_system_prompt(backend: TransformersBackend):
    backend.complete(messages("train gat"), json_schema=SCHEMA, max_tokens=400)
    prompt = backend.encode_chat(messages("compare gin and gcn"))
    backend.complete(messages("compare gin and gcn"), json_schema=SCHEMA, max_tokens=400)
    system_tokens = len(backend.encode_chat([{"role": "system", "content": SYSTEM}]))
    assert system_tokens <= backend.last_reused_tokens < len(prompt)


def test_warm_up_prefills_the_system_prompt_once(tiny_glm_dir: Path, backend):
    fresh = TransformersBackend(tiny_glm_dir)
    system = [{"role": "system", "content": SYSTEM}]
    fresh.warm_up(system)
    completion = fresh.complete(messages(TASKS[3]), json_schema=SCHEMA, max_tokens=400)
    assert fresh.last_reused_tokens >= len(fresh.encode_chat(system, add_generation_prompt=False))
    expected = backend.complete(messages(TASKS[3]), json_schema=SCHEMA, max_tokens=400)
    assert completion.text == expected.text  # the prefilled cache is the same cache


def test_token_budget_cuts_off_and_says_so(backend: TransformersBackend):
    completion = backend.complete(messages(TASKS[1]), json_schema=SCHEMA, max_tokens=5)
    assert completion.finish_reason == "length"
    assert completion.completion_tokens == 5 and len(completion.text) == 5


def test_int8_quantised_decoder_still_follows_the_schema(tiny_glm_dir: Path):
    quantised = TransformersBackend(tiny_glm_dir, quantize="int8")
    decoder = quantised._model.get_decoder()
    assert any("quantized" in type(module).__module__ for module in decoder.modules())
    for text in run_tasks(quantised):
        jsonschema.validate(json.loads(text), SCHEMA)


def test_get_backend_builds_transformers_from_name(tiny_glm_dir: Path, monkeypatch):
    monkeypatch.setenv("AUTOGLM_LLM", f"transformers:{tiny_glm_dir}")
    chosen = get_backend(threads=1)
    assert isinstance(chosen, TransformersBackend) and chosen.model_dir == tiny_glm_dir


def test_bad_checkpoints_are_clear_errors(tmp_path: Path):
    with pytest.raises(UserInputError, match="no config.json"):
        TransformersBackend(tmp_path)
    with pytest.raises(UserInputError, match="neither a checkpoint"):
        TransformersBackend(tmp_path / "missing-model")
    with pytest.raises(UserInputError, match="Unknown LLM backend"):
        get_backend("telepathy")


def test_offline_hub_id_is_a_setup_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    with pytest.raises(SetupError, match="huggingface-cli download"):
        TransformersBackend("THUDM/glm-edge-1.5b-chat-nonexistent")


def test_damaged_weights_are_a_setup_error_not_a_traceback(tiny_glm_dir: Path, tmp_path: Path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_glm_dir, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(SetupError, match="damaged"):
        TransformersBackend(damaged)
    weights.write_bytes(os.urandom(5000))  # random bytes
    with pytest.raises(SetupError, match="damaged"):
        TransformersBackend(damaged)
