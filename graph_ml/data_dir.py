"""Where raw dataset files live and whether a catalogue dataset loads offline (torch-free,
so `autoglm datasets` answers without importing PyG; `graph_ml.datasets` loads them)."""

from __future__ import annotations

import os
from pathlib import Path

from core.cache import cache_dir
from graph_ml.catalogue import DATASETS, DatasetSpec


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir` if given, else `AUTOGLM_DATA_DIR`, else `<user cache>/datasets`."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("AUTOGLM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "datasets"


def missing_files(spec: DatasetSpec, root: Path) -> list[str]:
    return [f for f in spec.raw_files if not (root / spec.folder / f).is_file()]


def available_offline(spec: DatasetSpec | str, data_dir: str | os.PathLike | None = None) -> bool:
    """True if `spec` loads without a network: built in, or its raw files are in the data dir
    (or were downloaded into the processing cache before)."""
    spec = DATASETS.get(spec) if isinstance(spec, str) else spec
    if not spec.needs_download:
        return True
    roots = (resolve_data_dir(data_dir), cache_dir() / "datasets")
    return any(not missing_files(spec, root) for root in roots)
