"""GGUF checkpoints: dequantise once with transformers, keep the result as safetensors.

Loading a Q4_K_M GGUF through transformers dequantises every tensor (~45 s for the 0.5B
model on these CPUs, plus ~10 s to convert its tokenizer). Doing that on every start would
dominate the planner's latency, so the first load saves the dequantised model and its
tokenizer with `save_pretrained` into `<cache>/models/<name>`, and every later load reads
that directory in seconds. vLLM serves the same directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

from core.cache import cache_dir
from core.errors import SetupError

log = logging.getLogger(__name__)

# Written last into a converted directory: its presence means the conversion finished.
MARKER = "autoglm-converted.json"
HASH_CHUNK = 1 << 20  # 1 MiB: streaming reads, never the whole file in memory


def models_dir() -> Path:
    return cache_dir() / "models"


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
    return (directory / MARKER).is_file()


def convert_gguf(gguf_path: Path, out_dir: Path, *, source_sha256: str | None = None) -> Path:
    """Dequantise `gguf_path` into a safetensors checkpoint directory `out_dir`.

    The directory is written under a temporary name and renamed when complete, so an
    interrupted conversion never looks finished.

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
    if is_converted(out_dir):
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    log.info("dequantising %s once into %s (about a minute)", gguf_path, out_dir)
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportError as error:
        raise SetupError(
            f"Reading a GGUF file needs extra packages ({error}); "
            "run `pip install gguf accelerate`."
        ) from error
    except (ValueError, KeyError, OSError) as error:
        raise SetupError(f"transformers cannot load the GGUF file {gguf_path}: {error}") from error
    _clear_gguf_quantizer(model)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    marker = {
        "source": str(gguf_path),
        "sha256": source_sha256,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (partial / MARKER).write_text(json.dumps(marker, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    del model
    return out_dir


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
