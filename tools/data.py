"""Loading the dataset a tool was asked for: a catalogue name, or a graph on disk.

A path is resolved from the current directory and read only under the allowed roots
(`core.paths.AllowedRoots`: the current directory, the workspace, the data directory and
`AUTOGLM_ALLOWED_PATHS`); the importer checks every file it opens against the same roots,
so a symlinked sibling file cannot lead outside them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.paths import AllowedRoots
from graph_ml.catalogue import DATASETS
from graph_ml.data_dir import resolve_data_dir

if TYPE_CHECKING:  # torch and PyG load where a graph is loaded, not when the router imports this
    from graph_ml.datasets import LoadedDataset

IMPORT_CACHE_SIZE = 4  # imported graphs kept in memory, keyed by their files' content
_IMPORTED: OrderedDict[tuple, LoadedDataset] = OrderedDict()

PATH_MARKERS = ("/", "\\", "~")
GRAPH_SUFFIXES = (".csv", ".tsv", ".txt", ".edgelist", ".el", ".graphml", ".gml")


def looks_like_path(name: str) -> bool:
    """True when `name` is meant as a file or directory rather than a catalogue name."""
    return (
        any(marker in name for marker in PATH_MARKERS)
        or name.startswith(".")
        or name.lower().endswith(GRAPH_SUFFIXES)
    )


def roots_for(workspace: Path | None, data_dir: Path | None) -> AllowedRoots:
    """The directories a tool may read a user-named dataset from."""
    return AllowedRoots.default(workspace=workspace, data_dir=resolve_data_dir(data_dir))


def allowed_roots(workspace: Path, data_dir: Path | None) -> list[Path]:
    """The workspace and the data directory (what `inside_allowed` accepts)."""
    return [Path(workspace).resolve(), resolve_data_dir(data_dir).resolve()]


def inside_allowed(path: str, workspace: Path, data_dir: Path | None) -> Path | None:
    """`path` resolved (symlinks included) if it exists under the workspace or the data
    directory, else None; a relative path is tried against each (stored checkpoints)."""
    roots = allowed_roots(workspace, data_dir)
    candidate = Path(path).expanduser()
    tries = [candidate] if candidate.is_absolute() else [root / candidate for root in roots]
    for resolved in (p.resolve() for p in tries):
        if any(resolved == root or root in resolved.parents for root in roots):
            if resolved.exists():
                return resolved
    return None


def is_path(name: str) -> bool:
    """A dataset argument that names a path: not a catalogue name, and path-like or present
    on disk (`g` for a folder `./g`)."""
    if name in DATASETS:
        return False
    return looks_like_path(name) or Path(name).expanduser().exists()


def load(
    name: str,
    workspace: Path | None,
    data_dir: Path | None,
    missing_features: str = "error",
) -> LoadedDataset:
    """Load a catalogue dataset by name or alias, or a graph from an allowed path.

    Args:
        name: a catalogue name, or a folder/file path (relative to the current directory).
        workspace, data_dir: the session's directories (both are allowed roots).
        missing_features: "keep" loads empty feature cells as NaN (feature propagation).

    Raises:
        UserInputError: unknown name (with the choices); a path that does not exist, is
            outside the allowed roots, or holds no readable graph.
    """
    if not is_path(name):
        spec = DATASETS.get(name)  # unknown names raise with the list of choices
        return _load_named(spec.name, str(resolve_data_dir(data_dir)))
    from graph_ml.importer import load_graph

    roots = roots_for(workspace, data_dir)
    path = roots.resolve(name)
    key = (str(path), content_hash(path, roots), missing_features)
    if key in _IMPORTED:  # the same files, unchanged: a chat trains on them many times
        _IMPORTED.move_to_end(key)
        return _IMPORTED[key]
    ds = load_graph(path, roots=roots, missing_features=missing_features)  # type: ignore[arg-type]
    _IMPORTED[key] = ds
    while len(_IMPORTED) > IMPORT_CACHE_SIZE:
        _IMPORTED.popitem(last=False)
    return ds


def dataset_path(name: str, workspace: Path | None, data_dir: Path | None) -> Path:
    """The resolved, allowed path a dataset argument names (relative: from the current
    directory), with every file of the graph it names checked against the roots.

    Raises:
        UserInputError: it does not exist, names no readable layout, or a file it leads to
            (a symlinked sibling included) is outside the allowed roots.
    """
    roots = roots_for(workspace, data_dir)
    path = roots.resolve(name)
    content_hash(path, roots)
    return path


def dataset_argument(name: str, workspace: Path | None, data_dir: str | Path | None) -> str:
    """A command's dataset argument as it is stored: a catalogue name as given, a path
    resolved from the current directory and checked against the allowed roots (so the run
    names the file wherever it is rerun from)."""
    if not is_path(name):
        return name
    return str(dataset_path(name, workspace, Path(data_dir) if data_dir else None))


def content_hash(path: Path, roots: AllowedRoots) -> str:
    """sha256 over the names and bytes of every file the graph at `path` is read from
    (each checked against `roots` before it is opened): what decides whether a stored run
    and a rerun read the same graph."""
    from graph_ml.importer import find_graph_files

    digest = hashlib.sha256()
    for file in sorted(find_graph_files(path).all_files()):
        opened = roots.check(file)
        digest.update(f"{file.name}\0".encode())
        with opened.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint(ds: LoadedDataset) -> str:
    """What a run stores as its dataset's fingerprint: the files' content hash for an
    imported graph (a changed file is a different dataset), the tensors' for the catalogue."""
    if ds.sources:
        joined = "\n".join(f"{Path(p).name}:{h}" for p, h in sorted(ds.sources.items()))
        return "files:" + hashlib.sha256(joined.encode()).hexdigest()
    return ds.fingerprint


@lru_cache(maxsize=8)
def _load_named(name: str, data_dir: str) -> LoadedDataset:
    # Loading Cora from raw files takes seconds; a chat trains on the same data many times.
    from graph_ml.datasets import load_dataset

    return load_dataset(name, data_dir=data_dir)
