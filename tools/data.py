"""Loading the dataset a tool was asked for: a catalogue name, or a CSV graph on disk.

Paths are accepted only inside the workspace or the data directory (the router refuses
others first; this is the second lock on the same door).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from core.errors import UserInputError
from graph_ml.datasets import DATASETS, LoadedDataset, load_dataset, resolve_data_dir

PATH_MARKERS = ("/", "\\", ".csv", "~")


def looks_like_path(name: str) -> bool:
    """True when `name` is meant as a file or directory rather than a catalogue name."""
    return any(marker in name for marker in PATH_MARKERS) or name.startswith(".")


def allowed_roots(workspace: Path, data_dir: Path | None) -> list[Path]:
    """The only directories a tool may read a user-named file from."""
    return [Path(workspace).resolve(), resolve_data_dir(data_dir).resolve()]


def inside_allowed(path: str, workspace: Path, data_dir: Path | None) -> Path | None:
    """`path` resolved (symlinks included) if it lies under an allowed root, else None."""
    roots = allowed_roots(workspace, data_dir)
    candidate = Path(path).expanduser()
    tries = [candidate] if candidate.is_absolute() else [root / candidate for root in roots]
    for resolved in (p.resolve() for p in tries):
        if any(resolved == root or root in resolved.parents for root in roots):
            if resolved.exists():
                return resolved
    return None


def load(name: str, workspace: Path, data_dir: Path | None) -> LoadedDataset:
    """Load a catalogue dataset by name or alias, or a CSV graph from an allowed path.

    Raises:
        UserInputError: unknown name (with the choices), or a path outside the workspace and
            data directory.
    """
    if name in DATASETS or not looks_like_path(name):
        spec = DATASETS.get(name)  # unknown names raise with the list of choices
        return _load_named(spec.name, str(resolve_data_dir(data_dir)))
    path = inside_allowed(name, workspace, data_dir)
    if path is None:
        raise UserInputError(
            f"Dataset path {name!r} is not an existing file inside the workspace "
            f"({Path(workspace).resolve()}) or the data directory "
            f"({resolve_data_dir(data_dir).resolve()}); put the CSV files there or use a "
            f"catalogue name: {', '.join(DATASETS)}."
        )
    return _load_csv(path)


@lru_cache(maxsize=8)
def _load_named(name: str, data_dir: str) -> LoadedDataset:
    # Loading Cora from raw files takes seconds; a chat trains on the same data many times.
    return load_dataset(name, data_dir=data_dir)


def _load_csv(path: Path) -> LoadedDataset:
    from graph_ml.importer import load_csv_graph

    if path.is_dir():
        nodes, edges = path / "nodes.csv", path / "edges.csv"
    elif "edge" in path.name:
        nodes, edges = path.with_name(path.name.replace("edges", "nodes")), path
    else:
        nodes, edges = path, path.with_name(path.name.replace("nodes", "edges"))
    for required in (nodes, edges):
        if not required.is_file():
            raise UserInputError(
                f"CSV graph import needs a nodes file and an edges file; {required} is missing "
                "(a directory with nodes.csv and edges.csv works)."
            )
    return load_csv_graph(nodes, edges)
