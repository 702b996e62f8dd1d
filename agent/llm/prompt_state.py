"""The system prompt's KV state, saved once in the cache and restored by every new process.

Prefilling the planner's ~1000-token system prompt costs seconds on these CPUs; restoring its
saved state costs milliseconds. A state file is raw bytes behind a small JSON header, never a
pickle, so reading one can only ever fail, not run anything:

    b"AGKV" | version (1 byte) | header length (4 bytes, little-endian) | header JSON | payload

The header says what the payload is the state of (model hash, the prompt's token ids and
their hash, context size, llama-cpp-python version, KV types) and records the payload's
length and sha256 at write time. `read_state` checks every one of them before a byte reaches
llama.cpp; a file that fails is reported (`StateError`) and the caller rebuilds it.
Files are written under a temporary name and renamed, so a killed writer leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"AGKV"
VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # a header holds ~1-4k token ids; anything larger is not ours
SUFFIX = ".kvstate"
KEEP_PER_MODEL = 8  # older states of the same model (earlier prompts) are pruned


class StateError(Exception):
    """A saved state that must not be loaded; the message says why."""


@dataclass(frozen=True)
class StateKey:
    """What a saved state is the state of; every field must match to restore it."""

    model_sha256: str
    token_ids: tuple[int, ...]
    n_ctx: int
    library: str  # llama-cpp-python version: its state layout is not promised to be stable
    kv_types: str

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(json.dumps(list(self.token_ids)).encode()).hexdigest()

    @property
    def digest(self) -> str:
        fields = [self.model_sha256, self.prompt_sha256, self.n_ctx, self.library, self.kv_types]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    def path(self, directory: Path) -> Path:
        return directory / f"{self.model_sha256[:12]}-{self.digest[:16]}{SUFFIX}"

    def header(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256,
            "prompt_sha256": self.prompt_sha256,
            "n_ctx": self.n_ctx,
            "library": self.library,
            "kv_types": self.kv_types,
            "token_ids": list(self.token_ids),
        }


def write_state(path: Path, key: StateKey, payload: bytes, seconds: float) -> Path:
    """Write `payload` (llama.cpp's sequence state) with its header, atomically."""
    header = {
        **key.header(),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "build_seconds": round(seconds, 2),
    }
    encoded = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        handle.write(MAGIC + bytes([VERSION]) + struct.pack("<I", len(encoded)))
        handle.write(encoded)
        handle.write(payload)
    partial.replace(path)
    _prune(path.parent, key.model_sha256[:12], keep=path)
    return path


def read_state(path: Path, key: StateKey) -> tuple[bytes, dict[str, Any]]:
    """The payload of the state file at `path`, after checking it is `key`'s and intact.

    Raises:
        FileNotFoundError: there is no saved state.
        StateError: the file is not a state file, is another prompt's or model's, or its
            payload is truncated or does not hash to what was recorded.
    """
    data = path.read_bytes()
    head = len(MAGIC) + 1 + 4
    if len(data) < head or data[: len(MAGIC)] != MAGIC:
        raise StateError("it is not a saved-state file (wrong magic bytes)")
    if data[len(MAGIC)] != VERSION:
        raise StateError(f"it has format version {data[len(MAGIC)]}, this code reads {VERSION}")
    (size,) = struct.unpack("<I", data[len(MAGIC) + 1 : head])
    if size > MAX_HEADER_BYTES or head + size > len(data):
        raise StateError("its header is truncated or oversized")
    try:
        header = json.loads(data[head : head + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise StateError("its header is not JSON") from None
    if not isinstance(header, dict):
        raise StateError("its header is not a JSON object")
    for name, expected in key.header().items():
        if header.get(name) != expected:
            raise StateError(f"it was saved for another {name.replace('_', ' ')}")
    payload = data[head + size :]
    if len(payload) != header.get("payload_bytes"):
        raise StateError(
            f"its payload is {len(payload)} bytes, {header.get('payload_bytes')} were written"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise StateError("its payload does not match the sha256 recorded when it was written")
    return payload, header


def _prune(directory: Path, model_prefix: str, keep: Path) -> None:
    """Delete all but the newest `KEEP_PER_MODEL` states of one model (old prompts)."""
    states = sorted(
        directory.glob(f"{model_prefix}-*{SUFFIX}"),
        key=lambda p: p.stat().st_mtime if p.exists() else 0.0,
        reverse=True,
    )
    for old in states[KEEP_PER_MODEL:]:
        if old != keep:
            old.unlink(missing_ok=True)
