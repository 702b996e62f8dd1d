"""The safetensors conversion of a GGUF (transformers and vLLM): hashes recorded when it is
written, checked at every start; a damaged directory is converted again with a message; two
first starts take turns on a lock.

The dequantisation itself is transformers' (a minute and 2.9 GB for the real model), so
`_convert` is replaced here by one that writes real files of the same kinds; everything
around it (records, stat checks, hashing, the lock, the rebuild) is the real code.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

from agent.llm import gguf

FILES = {"model.safetensors": os.urandom(4096), "config.json": b'{"model_type": "qwen2"}'}


@pytest.fixture
def converter(monkeypatch):
    """`gguf._convert` writing FILES into a partial directory and recording them, as it does."""
    calls = []

    def convert(source, out_dir, source_sha256):
        calls.append(out_dir)
        partial = out_dir.with_name(out_dir.name + ".partial")
        partial.mkdir(parents=True)
        for name, content in FILES.items():
            (partial / name).write_bytes(content)
        time.sleep(0.3)  # a conversion takes time: a second start must find the lock held
        files = {p.name: {"sha256": gguf.sha256_file(p), "stat": gguf._stat(p)}
                 for p in partial.iterdir()}  # fmt: skip
        marker = {"source": str(source), "sha256": source_sha256, "files": files}
        (partial / gguf.MARKER).write_text(json.dumps(marker))
        shutil.rmtree(out_dir, ignore_errors=True)
        partial.rename(out_dir)

    monkeypatch.setattr(gguf, "_convert", convert)
    return calls


def test_an_intact_conversion_is_used_as_it_is(tmp_path, converter):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    out = gguf.convert_gguf(source, tmp_path / "m", source_sha256="s" * 64)
    assert gguf.convert_gguf(source, out, source_sha256="s" * 64) == out
    assert len(converter) == 1 and gguf.damage(out, "s" * 64) is None


@pytest.mark.parametrize(
    "harm, reason",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "bytes"),  # truncated
        (lambda p: p.write_bytes(os.urandom(len(FILES["model.safetensors"]))), "sha256"),
        (lambda p: p.unlink(), "missing"),
    ],
)
def test_a_damaged_conversion_is_detected_and_redone(tmp_path, converter, capsys, harm, reason):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    out = gguf.convert_gguf(source, tmp_path / "m")
    harm(out / "model.safetensors")
    assert reason in gguf.damage(out)
    gguf.convert_gguf(source, out)
    assert len(converter) == 2 and gguf.damage(out) is None
    assert (out / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    err = capsys.readouterr().err
    assert "is damaged" in err and reason in err and "Traceback" not in err


def test_a_conversion_from_another_source_is_redone(tmp_path, converter):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    out = gguf.convert_gguf(source, tmp_path / "m", source_sha256="a" * 64)
    assert gguf.damage(out, "b" * 64) == "it was converted from another file"
    gguf.convert_gguf(source, out, source_sha256="b" * 64)
    assert len(converter) == 2


def test_an_old_conversion_without_hashes_is_redone(tmp_path, converter):
    out = tmp_path / "m"
    out.mkdir()
    (out / gguf.MARKER).write_text(json.dumps({"source": "x", "sha256": None}))
    assert "unreadable" in gguf.damage(out)


def test_two_first_starts_convert_once(tmp_path, converter, capsys):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"GGUF")
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(gguf.convert_gguf(source, tmp_path / "m")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert len(results) == 2 and len(converter) == 1  # the second found it done
    assert "waiting for another autoglm process" in capsys.readouterr().err
