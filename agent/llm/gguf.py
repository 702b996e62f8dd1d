"""GGUF checkpoints for transformers and vLLM: dequantised once, kept as safetensors.

The embedded planner runs its GGUF directly on llama.cpp (`agent.llm.llamacpp`); this module
is for `transformers:<file.gguf>` and for `autoglm serve` (vLLM), which need plain tensors.
Loading a Q4_K_M GGUF through transformers dequantises every tensor (~45 s for the 0.5B
model on these CPUs, plus ~10 s to convert its tokenizer), so the first load saves the
dequantised model and its tokenizer with `save_pretrained` into `<cache>/models/<name>`.

The conversion records the sha256 of every file it wrote, with each file's size, mtime,
ctime and inode, in `MARKER`. A later start compares the stat (cheap); a file that was
written to since (truncated, overwritten: both change its ctime) is hashed again, and a
directory whose files do not hash to the record is converted again, with a message: never a
safetensors traceback, never a damaged layer loaded silently. Two first starts at once take
turns on a file lock instead of sharing one `.partial` directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from agent.llm.prepare import Progress, exclusive
from core.cache import cache_dir
from core.errors import SetupError

# Written last into a converted directory: its presence means the conversion finished.
MARKER = "autoglm-converted.json"
HASH_CHUNK = 1 << 20  # 1 MiB: streaming reads, never the whole file in memory
CONVERT_ESTIMATE_S = 60.0  # the 0.5B model measured here: ~45 s tensors + ~10 s tokenizer


def models_dir() -> Path:
    """Where prepared models live: `AUTOGLM_MODELS_DIR`, else `<cache>/models`.

    Separate from the cache so that a test session (its own temporary cache) can reuse the
    user's prepared model instead of writing a second 490 MB copy.
    """
    env = os.environ.get("AUTOGLM_MODELS_DIR")
    return Path(env).expanduser() if env else cache_dir() / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def converted_dir_for(gguf_path: Path) -> Path:
    """Where the safetensors copy of `gguf_path` lives (keyed by name, size and mtime)."""
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return models_dir() / f"{gguf_path.stem}-{key.hexdigest()[:12]}"


def is_converted(directory: Path) -> bool:
    """A finished conversion is there (its marker); see `damage` for whether it is intact."""
    return (directory / MARKER).is_file()


def _stat(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
            "inode": stat.st_ino}  # fmt: skip


def damage(directory: Path, source_sha256: str | None = None) -> str | None:
    """What is wrong with the converted `directory`, or None when it is intact.

    Files whose stat matches the record are taken as written; any other is hashed.
    """
    try:
        marker = json.loads((directory / MARKER).read_text())
        files = marker["files"]
    except FileNotFoundError:
        return "no finished conversion"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its record {MARKER} is unreadable"
    if source_sha256 is not None and marker.get("sha256") != source_sha256:
        return "it was converted from another file"
    for name, record in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if _stat(path) == record.get("stat"):
            continue
        if path.stat().st_size != record.get("stat", {}).get("size"):
            return f"{name} has {path.stat().st_size} bytes, {record['stat']['size']} were written"
        if sha256_file(path) != record.get("sha256"):
            return f"{name} does not match the sha256 recorded when it was written"
    return None


def convert_gguf(gguf_path: Path, out_dir: Path, *, source_sha256: str | None = None) -> Path:
    """`out_dir` as an intact safetensors conversion of `gguf_path`, converting when needed.

    An intact conversion is returned as it is; a damaged one is converted again, with a
    message on stderr saying why. The conversion is written under a temporary name and
    renamed when complete, under a lock.

    Args:
        gguf_path: the .gguf file.
        out_dir: the checkpoint directory to create.
        source_sha256: the verified hash of the GGUF, recorded in the marker file.

    Returns:
        `out_dir`.

    Raises:
        SetupError: transformers cannot read the file (unsupported architecture, or the
            `gguf`/`accelerate` packages are missing).
    """
    if damage(out_dir, source_sha256) is None:
        return out_dir
    with exclusive(out_dir.with_name(out_dir.name + ".lock"), f"converting {gguf_path.name}"):
        problem = damage(out_dir, source_sha256)
        if problem is None:  # another process converted it while we waited
            return out_dir
        if out_dir.exists():
            print(
                f"the converted model in {out_dir} is damaged ({problem}); converting "
                f"{gguf_path.name} again",
                file=sys.stderr,
                flush=True,
            )
        _convert(gguf_path, out_dir, source_sha256)
    return out_dir


def _convert(gguf_path: Path, out_dir: Path, source_sha256: str | None) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own line says what happens and for how long
    started = time.perf_counter()
    folder, name = str(gguf_path.parent), gguf_path.name
    partial = out_dir.with_name(f"{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    what = f"dequantising {name} to safetensors for transformers/vLLM"
    with Progress(what, 3, CONVERT_ESTIMATE_S) as bar:
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            bar.update(1)
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=torch.float32
            )
            bar.update(1)
        except ImportError as error:
            raise SetupError(
                f"Reading a GGUF file needs extra packages ({error}); "
                "run `pip install gguf accelerate`."
            ) from error
        except (ValueError, KeyError, OSError) as error:
            raise SetupError(
                f"transformers cannot load the GGUF file {gguf_path}: {error}"
            ) from error
        _clear_gguf_quantizer(model)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        del model
        bar.update(1)
    files = {
        path.name: {"sha256": sha256_file(path), "stat": _stat(path)}
        for path in sorted(partial.iterdir())
        if path.is_file()
    }
    marker = {
        "source": str(gguf_path),
        "sha256": source_sha256,
        "seconds": round(time.perf_counter() - started, 1),
        "files": files,
    }
    (partial / MARKER).write_text(json.dumps(marker, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)  # a rename keeps each file's inode and ctime: the record holds


def _clear_gguf_quantizer(model) -> None:
    """Forget that the weights came from GGUF blocks, so `save_pretrained` writes plain tensors.

    After dequantisation the tensors are ordinary float tensors, but transformers still
    tags the model as GGUF-quantised and refuses to serialise it (or writes a
    `quantization_config` that vLLM then tries to honour).
    """
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attribute in ("is_quantized", "quantization_method"):
        if attribute in vars(model):
            delattr(model, attribute)
