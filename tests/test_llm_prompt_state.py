"""Saved KV states: raw bytes behind a JSON header, checked field by field and by sha256.

Real files and real hashes; llama.cpp is not needed to show that a damaged file never gets
past `read_state`.
"""

from __future__ import annotations

import json
import struct

import pytest

from agent.llm.prompt_state import MAGIC, StateError, StateKey, read_state, write_state

PAYLOAD = bytes(range(256)) * 64  # stands in for llama.cpp's sequence state


def key(**changes) -> StateKey:
    fields = dict(model_sha256="ab" * 32, token_ids=(1, 2, 3), n_ctx=4096, library="0.3.36",
                  kv_types="f16/f16")  # fmt: skip
    return StateKey(**{**fields, **changes})


def saved(tmp_path) -> tuple[StateKey, object]:
    k = key()
    return k, write_state(k.path(tmp_path), k, PAYLOAD, seconds=1.0)


def test_a_state_reads_back_exactly_and_is_no_pickle(tmp_path):
    k, path = saved(tmp_path)
    payload, header = read_state(path, k)
    assert payload == PAYLOAD and header["token_ids"] == [1, 2, 3]
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and b"\x80\x04" not in raw[:8]  # no pickle protocol header
    (size,) = struct.unpack("<I", raw[5:9])
    assert json.loads(raw[9 : 9 + size])["payload_bytes"] == len(PAYLOAD)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda raw: raw[:-1000], "payload is"),  # truncated
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "sha256"),  # one bit flipped
        (lambda raw: b"PK\x03\x04" + raw[4:], "magic"),  # another format
        (lambda raw: raw[:5] + struct.pack("<I", 1 << 30) + raw[9:], "header"),  # oversized
        (lambda raw: raw[:12], "header"),  # cut inside the header
    ],
)
def test_a_damaged_state_is_refused_with_the_reason(tmp_path, damage, reason):
    k, path = saved(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(StateError, match=reason):
        read_state(path, k)


@pytest.mark.parametrize(
    "other",
    [
        dict(token_ids=(1, 2, 4)),
        dict(model_sha256="cd" * 32),
        dict(n_ctx=2048),
        dict(library="0.4.0"),
    ],  # fmt: skip
)
def test_a_state_of_another_prompt_model_or_library_is_refused(tmp_path, other):
    k, path = saved(tmp_path)
    with pytest.raises(StateError, match="saved for another"):
        read_state(path, key(**other))  # even when a file is put under the wrong name
    assert key(**other).path(tmp_path) != path  # and the names differ in the first place


def test_old_states_of_a_model_are_pruned(tmp_path):
    paths = [
        write_state(key(token_ids=(i,)).path(tmp_path), key(token_ids=(i,)), b"x", 0.0)
        for i in range(12)
    ]
    kept = sorted(tmp_path.glob("*.kvstate"))
    assert len(kept) == 8 and paths[-1] in kept
