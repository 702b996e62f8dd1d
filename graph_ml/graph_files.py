"""Which files a path names: a folder of node and edge files, typed files, one edge list,
or a GraphML/GML file (`find_graph_files`); nothing is read here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import UserInputError

PathLike = str | os.PathLike
EdgeType = tuple[str, str, str]
EDGE_LIST_SUFFIXES = (".csv", ".tsv", ".txt", ".edgelist", ".el")
GRAPH_FILE_SUFFIXES = (".graphml", ".gml")


@dataclass
class GraphFiles:
    """What a path names: the files `load_graph` will read, and how.

    Attributes:
        kind: "pair" (nodes + edges), "hetero" (typed files), "edge_list", "graph_file".
        nodes: the node file, or {node type: file}; None for edge lists and graph files.
        edges: the edge file, or {edge type: file}; the file itself for edge lists and
            graph files.
    """

    kind: Literal["pair", "hetero", "edge_list", "graph_file"]
    nodes: Path | dict[str, Path] | None
    edges: Path | dict[EdgeType, Path]

    def all_files(self) -> list[Path]:
        found: list[Path] = []
        for part in (self.nodes, self.edges):
            if isinstance(part, dict):
                found += list(part.values())
            elif part is not None:
                found.append(part)
        return found


# --- Which files a path names ------------------------------------------------------------


def _sibling(path: Path, old: str, new: str) -> Path:
    return path.with_name(path.name.replace(old, new))


def _typed_files(folder: Path) -> GraphFiles | None:
    nodes = {p.stem[len("nodes_") :]: p for p in sorted(folder.glob("nodes_*.[ct]sv"))}
    edges: dict[EdgeType, Path] = {}
    for p in sorted(folder.glob("edges_*.[ct]sv")):
        parts = tuple(p.stem[len("edges_") :].split("__"))
        if len(parts) != 3:
            raise UserInputError(
                f"{p}: a typed edge file is named edges_<source type>__<relation>__<destination "
                f"type>.csv, e.g. edges_user__buys__item.csv. Fix: rename it."
            )
        edges[parts] = p  # type: ignore[index]
    if not nodes and not edges:
        return None
    if not nodes or not edges:
        raise UserInputError(
            f"{folder}: typed files need both nodes_<type>.csv and edges_<src>__<rel>__<dst>.csv; "
            f"found {'only node' if nodes else 'only edge'} files. Fix: add the missing ones."
        )
    return GraphFiles("hetero", nodes, edges)


def _folder_files(folder: Path) -> GraphFiles:
    for suffix in (".csv", ".tsv"):
        nodes, edges = folder / f"nodes{suffix}", folder / f"edges{suffix}"
        if nodes.is_file() and edges.is_file():
            return GraphFiles("pair", nodes, edges)
        if edges.is_file():
            return GraphFiles("edge_list", None, edges)
        if nodes.is_file():
            raise UserInputError(
                f"{folder} has {nodes.name} but no edges{suffix}. Fix: add edges{suffix} "
                "(a header line 'src,dst', then one edge per line)."
            )
    typed = _typed_files(folder)
    if typed is not None:
        return typed
    singles = sorted(p for p in folder.iterdir() if p.suffix.lower() in GRAPH_FILE_SUFFIXES)
    if len(singles) == 1:
        return GraphFiles("graph_file", None, singles[0])
    found = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
    raise UserInputError(
        f"{folder} holds no graph autoglm can read (found: {found}). Fix: put nodes.csv and "
        "edges.csv there, or typed nodes_<type>.csv and edges_<src>__<rel>__<dst>.csv files, "
        "or name a single edge list (.csv, .tsv, .txt, .edgelist) or .graphml/.gml file."
    )


def find_graph_files(path: PathLike) -> GraphFiles:
    """The files a path names (see the module docstring); nothing is read yet.

    Raises:
        UserInputError: the path does not exist, or names no layout the importer reads.
    """
    path = Path(path)
    if path.is_dir():
        return _folder_files(path)
    if not path.is_file():
        raise UserInputError(f"{path} does not exist; check the path.")
    name, suffix = path.name.lower(), path.suffix.lower()
    if suffix in GRAPH_FILE_SUFFIXES:
        return GraphFiles("graph_file", None, path)
    if suffix not in EDGE_LIST_SUFFIXES:
        raise UserInputError(
            f"{path}: {suffix or 'no extension'} is not a graph file autoglm reads; use "
            f"{', '.join(EDGE_LIST_SUFFIXES + GRAPH_FILE_SUFFIXES)}, or a folder."
        )
    if name.startswith(("nodes_", "edges_")):
        typed = _typed_files(path.parent)
        if typed is not None:
            return typed
    if "nodes" in name:
        edges = _sibling(path, "nodes", "edges")
        if not edges.is_file():
            raise UserInputError(
                f"{path} is a node file, but {edges.name} is not beside it. Fix: put the "
                f"edges in {edges} (header 'src,dst'), or name an edge list instead."
            )
        return GraphFiles("pair", path, edges)
    if "edges" in name and _sibling(path, "edges", "nodes").is_file():
        return GraphFiles("pair", _sibling(path, "edges", "nodes"), path)
    return GraphFiles("edge_list", None, path)
