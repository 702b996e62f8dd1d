"""Bring your own graph: files on disk -> a `LoadedDataset`.

What a path may be (`find_graph_files` decides, `load_graph` loads):

- a folder with `nodes.csv` and `edges.csv` (or `.tsv`): one node and one edge type;
- a folder of typed files, `nodes_<type>.csv` and `edges_<src>__<relation>__<dst>.csv`: a
  `HeteroData` (e.g. `nodes_user.csv`, `nodes_item.csv`, `edges_user__buys__item.csv`);
- one of those node or edge files: its folder's graph;
- a single edge list (`.csv`, `.tsv`, `.txt`, `.edgelist`): 2 or 3 columns (source,
  destination, and a weight or a type), delimiter sniffed, header optional;
- a GraphML or GML file, read with networkx (numeric attributes become features).

Node file: an id column, numeric feature columns, and optionally a label column (integers
0..C-1 or class names; an empty cell means unlabelled). Edge file: source and destination ids,
and optionally a numeric weight and a categorical type.

Files are read with pyarrow (`graph_ml.tables`); every problem in the input is a
`UserInputError` naming the file, the line and the fix. When `roots` is given, every file
that is opened is first checked against it (symlinks resolved).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch_geometric.data import Data, HeteroData

from core.errors import UserInputError
from core.paths import AllowedRoots
from graph_ml import tables
from graph_ml.datasets import DatasetSpec, LoadedDataset, Task

PathLike = str | os.PathLike
EdgeType = tuple[str, str, str]
MissingFeatures = Literal["error", "keep"]
EDGE_LIST_SUFFIXES = (".csv", ".tsv", ".txt", ".edgelist", ".el")
GRAPH_FILE_SUFFIXES = (".graphml", ".gml")
# Integer labels are class indices 0..C-1. More classes than this many per labelled node
# (or than MIN_CLASS_LIMIT on tiny files) means the column holds ids or measurements, not
# classes; 99999999999 on a 2-node file would otherwise allocate 10^11 class names.
CLASSES_PER_LABELLED_NODE = 2
MIN_CLASS_LIMIT = 64
MAX_LABEL_DIGITS = 18  # int64 holds 18 digits safely
# Edge ids are looked up in groups of this many rows: each lookup hashes every node id
# again (~10 ms for 100k ids), so per 64 KiB batch it took 3.4 s for 1M edges; a group of
# 256k rows holds ~3 MiB of id text.
MAP_GROUP_ROWS = 1 << 18
DEDUPE_SLICE = 1 << 18  # temporaries of the reverse keys stay at a few MiB


@dataclass
class Columns:
    """Column names the importer looks for (case-insensitive)."""

    node_id: str = "id"
    label: str = "label"
    src: str = "src"
    dst: str = "dst"
    weight: str = "weight"
    edge_type: str = "type"

    def known(self) -> frozenset[str]:
        """Names that mark a header line in an edge list."""
        names = (self.src, self.dst, self.weight, self.edge_type, self.node_id)
        extra = ("source", "target", "from", "to", "u", "v")
        return frozenset(n.lower() for n in (*names, *extra))


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


# --- Reading node and edge tables ----------------------------------------------------------


@dataclass
class _Nodes:
    ids: pa.Array  # string, unique
    x: torch.Tensor | None  # [num_nodes, num_features]
    y: torch.Tensor | None  # [num_nodes], -1 where unlabelled
    class_names: list[str] | None
    source: str  # the file, for messages
    notes: list[str] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return len(self.ids)


@dataclass
class _Edges:
    src: np.ndarray  # int64 [num_edges]
    dst: np.ndarray  # int64 [num_edges]
    weight: np.ndarray | None  # float32 [num_edges]
    edge_type: np.ndarray | None  # int64 [num_edges]
    type_names: list[str] | None


Where = Callable[[int], str]  # data row -> "file, line N" (or "file, node 'x'")


def _open(path: PathLike, roots: AllowedRoots | None, kind: str) -> tuple[Path, Path]:
    """(the path as named, the resolved file to open), checked against `roots`."""
    named = Path(path)
    opened = roots.check(named) if roots is not None else named.resolve()
    if not opened.is_file():
        raise UserInputError(f"{kind} file {named} does not exist; check the path.")
    return named, opened


def _open_text(
    path: PathLike,
    roots: AllowedRoots | None,
    kind: str,
    example: str,
    header: bool | None,
    known: frozenset[str] = frozenset(),
) -> tables.TextTable:
    """Check, scan and sniff one file (nothing parsed yet: `table` is empty)."""
    named, opened = _open(path, roots, kind)
    digest, lines = tables.scan(named, opened, kind)
    prefer = "\t" if named.suffix.lower() == ".tsv" else ","
    single = kind == "nodes"  # a node type may have ids only
    layout = tables.sniff(named, opened, kind, example, header, prefer, known, single)
    text = tables.TextTable(named, opened, layout, pa.table({}), digest, lines=lines)
    lowered = [n.lower() for n in text.names]
    duplicate = next((n for i, n in enumerate(lowered) if n in lowered[:i]), None)
    if duplicate is not None:
        raise UserInputError(
            f"{named}, line {layout.skip_lines}: column {duplicate!r} appears twice in the "
            "header. Fix: give every column its own name."
        )
    return text


def _batches(text: tables.TextTable, types: dict[str, pa.DataType]):
    """(first row, batch) over the file's data rows; an empty file is an error."""
    offset = 0
    for batch in tables.batches(text.path, text.opened, text.layout, text.names, types):
        yield offset, batch
        offset += batch.num_rows
    text.rows = offset
    if offset == 0:
        raise UserInputError(
            f"{text.path}: the file has a header but no data rows. Fix: add at least one row."
        )


def _find(names: list[str], wanted: str) -> str | None:
    return next((n for n in names if n.lower() == wanted.lower()), None)


def _require(table: tables.TextTable, wanted: str, role: str, example: str) -> str:
    name = _find(table.names, wanted)
    if name is None:
        header = ", ".join(repr(h) for h in table.names)
        raise UserInputError(
            f"{table.path}, line {table.layout.skip_lines}: no {wanted!r} column ({role}); the "
            f"header has {header}. Fix: name the column {wanted!r}, e.g. a header line like "
            f"'{example}'."
        )
    return name


def _first(mask: pa.Array | pa.ChunkedArray) -> int | None:
    """Index of the first true value of a boolean array (nulls count as false)."""
    values = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
    return _first_true(values)


def _first_true(values: np.ndarray) -> int | None:
    hits = np.flatnonzero(values)
    return int(hits[0]) if hits.size else None


def _strip(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trimmed text with the missing-value spellings as nulls."""
    column = pc.utf8_trim_whitespace(column)
    missing = pc.is_in(pc.utf8_lower(column), value_set=pa.array(tables.MISSING))
    return pc.if_else(missing, pa.scalar(None, pa.string()), column)


def _fill_features(
    block: np.ndarray,
    batch: pa.RecordBatch | pa.Table,
    names: list[str],
    where: Where,
    offset: int,
    missing: MissingFeatures,
) -> None:
    """Write `batch`'s feature columns into `block` `[rows, F]`, checking every value.

    NaN marks a missing value when `missing="keep"` (for the feature_propagation
    enhancement); otherwise a missing or infinite value is an error naming its line."""
    for j, name in enumerate(names):
        block[:, j] = batch.column(name).to_numpy(zero_copy_only=False)  # null -> NaN
        column = block[:, j]
        if missing == "error" and (row := _first_true(np.isnan(column))) is not None:
            raise UserInputError(
                f"{where(offset + row)}, column {name!r}: missing value (NaN). Fix: fill it (e.g. "
                "0 or the column mean) or drop the row; or train with "
                "enhance=['feature_propagation'] to fill missing features from the neighbours."
            )
        if (row := _first_true(np.isinf(column))) is not None:
            raise UserInputError(
                f"{where(offset + row)}, column {name!r}: not a finite number. Fix: replace it "
                "with a finite value."
            )


def _labels(
    column: pa.ChunkedArray, where: Where, name: str, source: str
) -> tuple[torch.Tensor, list[str]]:
    """Integer labels are class indices, kept as they are; other labels are numbered in
    sorted order. The class count is checked against the rows before anything is built."""
    column = _strip(column)
    valid = pc.is_valid(column)
    labelled = int(pc.sum(valid).as_py() or 0)
    if labelled == 0:
        raise UserInputError(
            f"{source}: the label column {name!r} is empty on every row. Fix: fill in labels, "
            "or remove the column for an unlabelled graph."
        )
    integer = pc.match_substring_regex(column, r"^[-+]?\d+$")
    if pc.all(pc.or_kleene(integer, pc.invert(valid))).as_py():
        return _integer_labels(column, where, name, labelled)
    names = sorted(pc.unique(column.drop_null()).to_pylist())
    y = pc.fill_null(pc.index_in(column, value_set=pa.array(names)), -1)
    return torch.from_numpy(y.to_numpy().astype(np.int64)), names


def _integer_labels(
    column: pa.ChunkedArray, where: Where, name: str, labelled: int
) -> tuple[torch.Tensor, list[str]]:
    lengths = pc.utf8_length(pc.utf8_ltrim(column, characters="+-0"))
    if (row := _first(pc.greater(lengths, MAX_LABEL_DIGITS))) is not None:
        raise UserInputError(_too_many_classes(where(row), name, None, labelled))
    values = pc.cast(column, pa.int64())
    if (row := _first(pc.less(values, 0))) is not None:
        raise UserInputError(
            f"{where(row)}: negative label {values[row].as_py()}. Fix: labels are 0, 1, 2, ...; "
            "leave the cell empty for an unlabelled node."
        )
    largest = int(pc.max(values).as_py())
    limit = max(CLASSES_PER_LABELLED_NODE * labelled, MIN_CLASS_LIMIT)
    if largest + 1 > limit:
        row = _first(pc.equal(values, largest))
        raise UserInputError(_too_many_classes(where(row or 0), name, largest, labelled))
    y = pc.fill_null(values, -1).to_numpy()
    return torch.from_numpy(y.astype(np.int64)), [str(i) for i in range(largest + 1)]


def _too_many_classes(where: str, name: str, largest: int | None, labelled: int) -> str:
    value = "a label of more than 18 digits" if largest is None else f"label {largest}"
    classes = "more than 10^18" if largest is None else f"{largest + 1}"
    return (
        f"{where}, column {name!r}: {value} would make {classes} classes for {labelled} "
        "labelled nodes; integer labels are class indices 0..C-1. Fix: number the classes "
        "0..C-1, or write them as names (e.g. 'c7') to have them numbered in sorted order; "
        "if the column is an id or a measurement, rename it."
    )


def _node_table(
    ids: pa.ChunkedArray,
    x: np.ndarray | None,
    label: tuple[str, pa.ChunkedArray] | None,
    where: Where,
    source: str,
) -> _Nodes:
    """Check the ids (present, unique) and build the labels; `x` is already checked."""
    ids = pc.utf8_trim_whitespace(ids)
    if (row := _first(pc.or_kleene(pc.is_null(ids), pc.equal(ids, "")))) is not None:
        raise UserInputError(f"{where(row)}: empty node id. Fix: give it an id.")
    unique = pc.unique(ids)
    if len(unique) != len(ids):
        order = pc.index_in(ids, value_set=unique).to_numpy()  # slot in `unique` of each row
        seen = np.zeros(len(unique), dtype=bool)
        for row, slot in enumerate(order):  # error path only
            if seen[slot]:
                first = int(np.flatnonzero(order == slot)[0])
                raise UserInputError(
                    f"{where(row)}: duplicate node id {ids[row].as_py()!r} (first at "
                    f"{where(first).rpartition(', ')[2]}). Fix: ids must be unique; merge or "
                    "rename the rows."
                )
            seen[slot] = True
    y, class_names = (None, None)
    if label is not None:
        y, class_names = _labels(label[1], where, label[0], source)
    features = None if x is None else torch.from_numpy(x)
    return _Nodes(ids.combine_chunks(), features, y, class_names, source)


def _read_nodes(
    path: PathLike,
    roots: AllowedRoots | None,
    cols: Columns,
    features: list[str] | None,
    missing: MissingFeatures,
) -> tuple[_Nodes, tables.TextTable]:
    """Stream a node file: features go batch by batch into one float32 matrix."""
    example = f"{cols.node_id},f1,f2,{cols.label}"
    text = _open_text(path, roots, "nodes", example, True)
    id_col = _require(text, cols.node_id, "node ids", example)
    label_col = _find(text.names, cols.label)
    if features is None:
        chosen = [n for n in text.names if n not in (id_col, label_col)]
    else:
        chosen = [_require(text, name, "a feature", example) for name in features]
    types = {name: pa.float32() for name in chosen}
    types.update({n: pa.string() for n in (id_col, label_col) if n})
    x = np.empty((text.lines, len(chosen)), dtype=np.float32) if chosen else None
    id_chunks, label_chunks = [], []
    for offset, batch in _batches(text, types):
        id_chunks.append(batch.column(id_col))
        if label_col:
            label_chunks.append(batch.column(label_col))
        if x is not None:
            block = x[offset : offset + batch.num_rows]
            _fill_features(block, batch, chosen, text.where, offset, missing)
    label = None
    if label_col:
        label = (label_col, pa.chunked_array(label_chunks, type=pa.string()))
    ids = pa.chunked_array(id_chunks, type=pa.string())
    x = None if x is None else x[: text.rows]
    nodes = _node_table(ids, x, label, text.where, str(text.path))
    text.release()
    return nodes, text


def _map_ids(
    column: pa.ChunkedArray | pa.Array, nodes: _Nodes, where: Where, name: str, role: str
) -> np.ndarray:
    """Node index of every id in `column`; an unknown id is an error naming its line."""
    index = pc.index_in(_trimmed(column), value_set=nodes.ids, memory_pool=tables.POOL)
    if index.null_count:
        row = _first(pc.is_null(index))
        value = column[row].as_py()
        if value is None or not value.strip():
            raise UserInputError(f"{where(row)}: empty {role} id in {name!r}. Fix: fill it in.")
        raise UserInputError(
            f"{where(row)}: {name!r} is {value.strip()!r}, which is not an id in "
            f"{nodes.source}. Fix: add a row for it there, or remove this edge."
        )
    return index.to_numpy(zero_copy_only=False).astype(np.int64)  # a writable copy


def _trimmed(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """`column` without surrounding spaces ("a, b" ids); copied only where a chunk has any."""
    chunks = []
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        padded = pc.match_substring_regex(chunk, r"^\s|\s$", memory_pool=tables.POOL)
        if pc.any(padded).as_py():
            chunk = pc.utf8_trim_whitespace(chunk, memory_pool=tables.POOL)
        chunks.append(chunk)
    return pa.chunked_array(chunks, type=pa.string())


def _weights(column: pa.ChunkedArray | pa.Array, where: Where, name: str) -> np.ndarray:
    values = column.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if (row := _first_true(~np.isfinite(values))) is not None:
        raise UserInputError(
            f"{where(row)}, column {name!r}: missing or infinite weight. Fix: give every edge "
            "a finite weight, or drop the weight column."
        )
    return values


def _types(column: pa.ChunkedArray, where: Where, name: str) -> tuple[np.ndarray, list[str]]:
    column = _strip(column)
    if (row := _first(pc.is_null(column))) is not None:
        raise UserInputError(
            f"{where(row)}, column {name!r}: empty edge type. Fix: give every edge a type, or "
            "drop the column."
        )
    names = sorted(pc.unique(column).to_pylist())
    index = pc.index_in(column, value_set=pa.array(names)).to_numpy()
    return index.astype(np.int64), names


class _TypeCodes:
    """Edge types numbered group by group (the text of a 1M-edge type column is never held
    whole), then renumbered in sorted name order."""

    def __init__(self, size: int) -> None:
        self.codes = np.empty(size, dtype=np.int64)
        self.names: list[str] = []

    def add(self, column: pa.ChunkedArray, offset: int, where: Where, name: str) -> None:
        column = _strip(column)
        if (row := _first(pc.is_null(column))) is not None:
            raise UserInputError(
                f"{where(row)}, column {name!r}: empty edge type. Fix: give every edge a type, "
                "or drop the column."
            )
        known = set(self.names)
        self.names += [n for n in pc.unique(column).to_pylist() if n not in known]
        index = pc.index_in(column, value_set=pa.array(self.names, pa.string()))
        self.codes[offset : offset + len(column)] = index.to_numpy(zero_copy_only=False)

    def sorted(self, rows: int) -> tuple[np.ndarray, list[str]]:
        order = sorted(range(len(self.names)), key=self.names.__getitem__)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank[self.codes[:rows]], [self.names[i] for i in order]


def _groups(batches, rows: int = MAP_GROUP_ROWS):
    """(first row, table) of consecutive batches holding at least `rows` rows together."""
    pending, start, count = [], 0, 0
    for offset, batch in batches:
        if not pending:
            start = offset
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield start, pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield start, pa.Table.from_batches(pending)


def _read_edges(
    path: PathLike,
    roots: AllowedRoots | None,
    cols: Columns,
    src_nodes: _Nodes,
    dst_nodes: _Nodes,
) -> tuple[_Edges, tables.TextTable]:
    """Stream an edge file whose endpoints must be ids of `src_nodes` and `dst_nodes`:
    each batch of ids becomes node indices at once, so the text is never held whole."""
    example = f"{cols.src},{cols.dst},{cols.weight}"
    text = _open_text(path, roots, "edges", example, True)
    src_col = _require(text, cols.src, "source node ids", example)
    dst_col = _require(text, cols.dst, "destination node ids", example)
    weight_col = _find(text.names, cols.weight)
    type_col = _find(text.names, cols.edge_type)
    types = {n: pa.string() for n in (src_col, dst_col, type_col) if n}
    if weight_col:
        types[weight_col] = pa.float32()
    src, dst = (np.empty(text.lines, dtype=np.int64) for _ in range(2))
    weight = np.empty(text.lines, dtype=np.float32) if weight_col else None
    codes = _TypeCodes(text.lines) if type_col else None
    for offset, group in _groups(_batches(text, types)):

        def where(row: int, offset: int = offset) -> str:
            return text.where(offset + row)

        end = offset + group.num_rows
        src[offset:end] = _map_ids(group.column(src_col), src_nodes, where, src_col, "source")
        dst[offset:end] = _map_ids(group.column(dst_col), dst_nodes, where, dst_col, "destination")
        if weight is not None:
            weight[offset:end] = _weights(group.column(weight_col), where, weight_col)
        if codes is not None:
            codes.add(group.column(type_col), offset, where, type_col)
        del group
        tables.give_back()
    rows = text.rows
    edge_type, type_names = (None, None) if codes is None else codes.sorted(rows)
    text.release()
    edges = _Edges(src[:rows], dst[:rows], None if weight is None else weight[:rows], edge_type,
                   type_names)  # fmt: skip
    return edges, text


def _sorted_unique(key: np.ndarray) -> np.ndarray:
    """`key` sorted in place, then its distinct values."""
    key.sort()
    return key[np.concatenate([[True], key[1:] != key[:-1]])]


def _dedupe_plain(edges: _Edges, num_nodes: int, undirected: bool) -> torch.Tensor:
    """`_dedupe` without weights or types, in about the memory of the result.

    Undirected: each edge is keyed once as (low, high); the distinct keys are then written
    both ways straight into the output's buffer and sorted there. Consumes `edges.src/dst`.
    """
    src, dst = edges.src, edges.dst
    edges.src = edges.dst = np.empty(0, dtype=np.int64)
    if undirected:
        key = np.minimum(src, dst)
        np.maximum(src, dst, out=dst)  # dst is now the higher end
        del src
        key *= num_nodes
        key += dst
        del dst
        key = _sorted_unique(key)  # [U] low * N + high
        tables.give_back()
        loops = key % (num_nodes + 1) == 0  # low * N + low == low * (N + 1)
        count = 2 * key.size - int(loops.sum())
        edge_index = np.empty((2, count), dtype=np.int64)
        keys = edge_index[1]  # the second row is the sort buffer
        keys[: key.size] = key
        end = key.size
        for start in range(0, key.size, DEDUPE_SLICE):  # reversed keys, a slice at a time
            part, skip = key[start : start + DEDUPE_SLICE], loops[start : start + DEDUPE_SLICE]
            high, low = np.divmod(part[~skip], num_nodes)[::-1]
            keys[end : end + low.size] = high * num_nodes + low
            end += low.size
        del key, loops
        keys.sort()
    else:
        key = src * num_nodes + dst
        del src, dst
        key = _sorted_unique(key)
        edge_index = np.empty((2, key.size), dtype=np.int64)
        keys = edge_index[1]
        keys[:] = key
        del key
    tables.give_back()
    np.floor_divide(keys, num_nodes, out=edge_index[0])
    np.remainder(keys, num_nodes, out=keys)
    return torch.from_numpy(edge_index)


def _dedupe(edges: _Edges, num_nodes: int, undirected: bool) -> torch.Tensor:
    """Add reverse edges if undirected, keep the first copy of each (src, dst, type), sorted
    by (src, dst, type) as PyG's coalesce leaves them. Returns the `edge_index` and updates
    `edges.weight` / `edges.edge_type` in place to match it."""
    if edges.weight is None and edges.edge_type is None:
        return _dedupe_plain(edges, num_nodes, undirected)
    count = edges.src.size
    src, dst = edges.src, edges.dst
    if undirected:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    key = src * num_nodes + dst  # [E] (or [2E]): one int64 per edge
    del src, dst
    num_types = 1
    if edges.edge_type is not None:
        num_types = int(edges.edge_type.max()) + 1 if count else 1
        types = np.concatenate([edges.edge_type] * 2) if undirected else edges.edge_type
        key = key * num_types + types
    order = np.argsort(key, kind="stable")  # stable: the first copy comes first
    key = key[order]
    first = np.concatenate([[True], key[1:] != key[:-1]])
    keep = order[first] % count  # a reversed copy carries its original's attributes
    key = key[first]
    if edges.weight is not None:
        edges.weight = edges.weight[keep]
    if edges.edge_type is not None:
        edges.edge_type = edges.edge_type[keep]
        key //= num_types
    edge_index = np.empty((2, key.size), dtype=np.int64)
    np.floor_divide(key, num_nodes, out=edge_index[0])
    np.remainder(key, num_nodes, out=edge_index[1])
    return torch.from_numpy(edge_index)


# --- Building datasets ---------------------------------------------------------------------


def _spec(name: str, files: list[str], labelled: bool, description: str) -> DatasetSpec:
    tasks: tuple[Task, ...]
    tasks = ("node_classification", "link_prediction") if labelled else ("link_prediction",)
    return DatasetSpec(
        name=name,
        aliases=(),
        level="node",
        tasks=tasks,
        default_task=tasks[0],
        source="csv",
        needs_download=False,
        raw_files=tuple(files),
        description=description,
    )


def _how(text: tables.TextTable) -> str:
    layout = text.layout
    header = "" if layout.header else ", no header"
    return f"{text.path} ({text.num_rows} rows, {layout.delimiter_name}-separated{header})"


def _homogeneous(
    nodes: _Nodes, edges: _Edges, directed: bool, name: str, files: dict[str, str], how: str
) -> LoadedDataset:
    node_ids = {"node": nodes.ids.to_pylist()}  # before the edges' peak, not on top of it
    edge_index = _dedupe(edges, nodes.num_nodes, undirected=not directed)
    data = Data(edge_index=edge_index, num_nodes=nodes.num_nodes)
    if nodes.x is not None:
        data.x = nodes.x
    if nodes.y is not None:
        data.y = nodes.y
    if edges.weight is not None:
        data.edge_weight = torch.from_numpy(edges.weight)
    if edges.edge_type is not None:
        data.edge_type = torch.from_numpy(edges.edge_type)
    notes = f" {' '.join(nodes.notes)}" if nodes.notes else ""
    return LoadedDataset(
        spec=_spec(name, list(files), nodes.y is not None, f"Imported from {how}.{notes}"),
        graphs=[data],
        class_names=nodes.class_names,
        node_ids=node_ids,
        edge_type_names=edges.type_names,
        sources=files,
    )


@tables.system_memory
def load_csv_graph(
    nodes: PathLike | Mapping[str, PathLike],
    edges: PathLike | Mapping[str | EdgeType, PathLike],
    name: str | None = None,
    directed: bool = False,
    features: list[str] | None = None,
    columns: Columns | None = None,
    roots: AllowedRoots | None = None,
    missing_features: MissingFeatures = "error",
) -> LoadedDataset:
    """Build a dataset from node and edge CSV files.

    Args:
        nodes: one node CSV, or {node_type: CSV} for a heterogeneous graph.
        edges: one edge CSV, or {edge_type: CSV} where an edge type is
            (src_type, relation, dst_type) or "src_type__relation__dst_type".
        name: the dataset's name (default: the node file's stem).
        directed: keep edges one-way; by default every edge is also added reversed.
        features: the feature columns (default: every column but id and label).
        columns: other column names (id, label, src, dst, weight, type).
        roots: when given, every file opened must resolve inside these roots.
        missing_features: "error" (default) names the first empty feature cell; "keep"
            loads it as NaN, for the feature_propagation enhancement to fill.

    Returns:
        A `LoadedDataset` whose `class_names` and `node_ids` map indices back to the files,
        and whose `sources` map each file read to its sha256.

    Raises:
        UserInputError: malformed input, with file, line and fix; a file outside `roots`.
    """
    cols = columns or Columns()
    if isinstance(nodes, Mapping) or isinstance(edges, Mapping):
        return _load_hetero(nodes, edges, name, directed, features, cols, roots, missing_features)
    node_table, node_text = _read_nodes(nodes, roots, cols, features, missing_features)
    parsed, edge_text = _read_edges(edges, roots, cols, node_table, node_table)
    files = {str(node_text.path): node_text.sha256, str(edge_text.path): edge_text.sha256}
    how = f"{_how(node_text)} and {_how(edge_text)}"
    return _homogeneous(node_table, parsed, directed, name or Path(nodes).stem, files, how)


def _edge_type(key: str | EdgeType, node_types: Mapping[str, object]) -> EdgeType:
    parts = tuple(key.split("__")) if isinstance(key, str) else tuple(key)
    if len(parts) != 3:
        raise UserInputError(
            f"Edge type {key!r} must name (source type, relation, destination type), e.g. "
            "'author__writes__paper'."
        )
    for node_type in (parts[0], parts[2]):
        if node_type not in node_types:
            raise UserInputError(
                f"Edge type {key!r} uses node type {node_type!r}, which has no node file; "
                f"node types are: {', '.join(node_types)}."
            )
    return parts  # type: ignore[return-value]


def _load_hetero(
    nodes: PathLike | Mapping[str, PathLike],
    edges: PathLike | Mapping[str | EdgeType, PathLike],
    name: str | None,
    directed: bool,
    features: list[str] | None,
    cols: Columns,
    roots: AllowedRoots | None,
    missing: MissingFeatures,
) -> LoadedDataset:
    if not isinstance(nodes, Mapping) or not isinstance(edges, Mapping):
        raise UserInputError(
            "A heterogeneous graph needs node files keyed by node type and edge files keyed by "
            "edge type, e.g. nodes={'paper': 'papers.csv'}, "
            "edges={'author__writes__paper': 'writes.csv'}."
        )
    data, node_tables, files, how = HeteroData(), {}, {}, []
    for node_type, path in nodes.items():
        table, text = _read_nodes(path, roots, cols, features, missing)
        node_tables[node_type] = table
        files[str(text.path)] = text.sha256
        how.append(f"{node_type} nodes from {_how(text)}")
        data[node_type].num_nodes = table.num_nodes
        if table.x is not None:
            data[node_type].x = table.x
        if table.y is not None:
            data[node_type].y = table.y
    for key, path in edges.items():
        src, rel, dst = _edge_type(key, node_tables)
        parsed, text = _read_edges(path, roots, cols, node_tables[src], node_tables[dst])
        files[str(text.path)] = text.sha256
        how.append(f"{src}-{rel}-{dst} edges from {_how(text)}")
        size = max(node_tables[src].num_nodes, node_tables[dst].num_nodes)
        data[src, rel, dst].edge_index = _dedupe(parsed, size, False)
        if parsed.weight is not None:
            data[src, rel, dst].edge_weight = torch.from_numpy(parsed.weight)
    if not directed:
        from torch_geometric.transforms import ToUndirected

        data = ToUndirected()(data)  # adds rev_<relation> edge types
    labelled = [t for t, table in node_tables.items() if table.y is not None]
    first = Path(next(iter(nodes.values())))
    spec = _spec(name or "hetero-" + first.stem, list(files), bool(labelled), "Imported: ")
    spec = DatasetSpec(**{**spec.__dict__, "description": "Imported: " + "; ".join(how) + "."})
    target = labelled[0] if labelled else next(iter(node_tables))
    return LoadedDataset(
        spec=spec,
        graphs=[data],
        target_node_type=target,
        class_names=node_tables[target].class_names,
        node_ids={t: table.ids.to_pylist() for t, table in node_tables.items()},
        sources=files,
    )


# --- Single edge lists and graph files -----------------------------------------------------


def _edge_list_columns(
    text: tables.TextTable, cols: Columns
) -> tuple[str, str, str | None, str | None, list[str]]:
    """(src, dst, weight, type, notes): the columns of an edge list, by name or position.

    A third column named like the weight must be numeric; named like the type, or holding
    any value that is not a number, it is the edge type; otherwise it is the weight."""
    names = text.table.column_names
    if not 2 <= len(names) <= 3:
        raise UserInputError(
            f"{text.path}: an edge list has 2 or 3 columns (source, destination, and a weight "
            f"or a type); this one has {len(names)}. Fix: keep those columns, or give a "
            "folder with nodes.csv and edges.csv for node features."
        )
    src, dst = _find(names, cols.src), _find(names, cols.dst)
    notes = []
    if src is None or dst is None:
        src, dst = names[0], names[1]
        if text.layout.header:
            notes.append(f"Columns {src!r} and {dst!r} read as source and destination.")
    third = next((n for n in names if n not in (src, dst)), None)
    if third is None:
        return src, dst, None, None, notes
    if _find([third], cols.weight) is not None:
        return src, dst, third, None, notes
    cells = _strip(text.table.column(third))
    numeric = (
        pc.all(pc.match_substring_regex(cells, tables.NUMBER_PATTERN, ignore_case=True)).as_py()
        is not False
    )
    if _find([third], cols.edge_type) is not None or not numeric:
        notes.append(f"Column {third!r} read as the edge type.")
        return src, dst, None, third, notes
    notes.append(f"Column {third!r} read as the edge weight.")
    return src, dst, third, None, notes


def _edge_list_ids(src: pa.ChunkedArray, dst: pa.ChunkedArray) -> tuple[pa.Array, str]:
    """Node ids of an edge list: integers in numeric order, other ids in order of appearance.

    Ids are compacted to 0..N-1 whatever their values, so an id of 10^9 costs one node."""
    both = pa.chunked_array(
        [pc.utf8_trim_whitespace(c) for c in (*src.chunks, *dst.chunks)], type=pa.string()
    )
    unique = pc.unique(both.drop_null())
    if len(unique) and pc.all(pc.match_substring_regex(unique, r"^[-+]?\d{1,18}$")).as_py():
        order = pc.sort_indices(pc.cast(unique, pa.int64()))
        return unique.take(order), "Integer node ids, numbered in increasing order."
    return unique, "Node ids numbered in order of first appearance."


@tables.system_memory
def load_edge_list(
    path: PathLike,
    name: str | None = None,
    directed: bool = False,
    columns: Columns | None = None,
    roots: AllowedRoots | None = None,
) -> LoadedDataset:
    """Build a dataset from one edge list: no features, no labels (link prediction).

    Args:
        path: a .csv, .tsv, .txt or .edgelist file; delimiter sniffed (comma, tab,
            semicolon, pipe, whitespace); a header line is optional; leading '#' or '%'
            comment lines are skipped.
        name, directed, columns, roots: as for `load_csv_graph`.

    Raises:
        UserInputError: malformed input, with file, line and fix.
    """
    cols = columns or Columns()
    example = f"{cols.src},{cols.dst}"

    text = _open_text(path, roots, "edges", example, None, cols.known())
    types = {name: pa.string() for name in text.names}  # typed once the roles are known
    text.table = tables.read(text.path, text.opened, text.layout, text.names, types, "").table
    src_col, dst_col, weight_col, type_col, notes = _edge_list_columns(text, cols)
    ids, id_note = _edge_list_ids(text.table.column(src_col), text.table.column(dst_col))
    nodes = _Nodes(ids, None, None, None, str(text.path), [*notes, id_note])
    src = _map_ids(text.table.column(src_col), nodes, text.where, src_col, "source")
    dst = _map_ids(text.table.column(dst_col), nodes, text.where, dst_col, "destination")
    weight = None
    if weight_col is not None:
        column = _strip(text.table.column(weight_col))
        bad = pc.invert(pc.match_substring_regex(column, tables.NUMBER_PATTERN, ignore_case=True))
        if (row := _first(bad)) is not None:
            raise tables.not_a_number(text.where(row), weight_col, column[row].as_py())
        weight = _weights(pc.cast(column, pa.float64()), text.where, weight_col)
    edge_type, type_names = None, None
    if type_col is not None:
        edge_type, type_names = _types(text.table.column(type_col), text.where, type_col)
    edges = _Edges(src, dst, weight, edge_type, type_names)
    text.release()
    files = {str(text.path): text.sha256}
    return _homogeneous(nodes, edges, directed, name or Path(path).stem, files, _how(text))


def _graph_file_nodes(graph, path: Path, cols: Columns, missing: MissingFeatures) -> _Nodes:
    """Node table of a networkx graph: numeric attributes are features, `label` the label."""
    ids = [str(n) for n in graph.nodes]
    attrs: dict[str, list] = {}
    for row, (_, data) in enumerate(graph.nodes(data=True)):
        for key, value in data.items():
            attrs.setdefault(key, [None] * len(ids))[row] = value
    label_key = _find(list(attrs), cols.label)
    feature_cols, text_attrs = {}, []
    for key, values in attrs.items():
        if key == label_key:
            continue
        present = [v for v in values if v is not None]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            feature_cols[key] = pa.array(values, pa.float32())
        else:
            text_attrs.append(key)

    def where(row: int) -> str:
        return f"{path}, node {ids[row]!r}"

    label = None
    if label_key is not None:
        values = [None if v is None else str(v) for v in attrs[label_key]]
        label = (label_key, pa.chunked_array([pa.array(values, pa.string())]))
    x = None
    if feature_cols:
        x = np.empty((len(ids), len(feature_cols)), dtype=np.float32)
        _fill_features(x, pa.table(feature_cols), list(feature_cols), where, 0, missing)
    ids_array = pa.chunked_array([pa.array(ids, pa.string())])
    nodes = _node_table(ids_array, x, label, where, str(path))
    if text_attrs:
        nodes.notes.append(f"Text attributes not used as features: {', '.join(text_attrs)}.")
    return nodes


@tables.system_memory
def load_graph_file(
    path: PathLike,
    name: str | None = None,
    directed: bool = False,
    columns: Columns | None = None,
    roots: AllowedRoots | None = None,
    missing_features: MissingFeatures = "error",
) -> LoadedDataset:
    """Build a dataset from a GraphML or GML file (read with networkx).

    Numeric node attributes become features, the `label` attribute the label; edge
    attributes `weight` and `type` become the edge weight and type.

    Raises:
        UserInputError: a file networkx cannot parse, or bad attribute values.
    """
    import networkx as nx

    cols = columns or Columns()
    named, opened = _open(path, roots, "graph")
    digest, _ = tables.scan(named, opened, "graph")
    try:
        if named.suffix.lower() == ".graphml":
            graph = nx.read_graphml(opened)
        else:
            graph = nx.read_gml(opened, label=None)
    except (nx.NetworkXError, ValueError, SyntaxError, KeyError) as error:
        kind = "GraphML" if named.suffix.lower() == ".graphml" else "GML"
        raise UserInputError(
            f"{named}: not a readable {kind} file ({type(error).__name__}: "
            f"{str(error)[:120]}). Fix: export it again, or use nodes.csv and edges.csv."
        ) from None
    if graph.number_of_nodes() == 0:
        raise UserInputError(f"{named}: the graph has no nodes. Fix: export it again.")
    nodes = _graph_file_nodes(graph, named, cols, missing_features)
    pairs = list(graph.edges(data=True))
    src = pa.chunked_array([pa.array([str(u) for u, _, _ in pairs], pa.string())])
    dst = pa.chunked_array([pa.array([str(v) for _, v, _ in pairs], pa.string())])

    def where(row: int) -> str:
        return f"{named}, edge {row + 1}"

    weight, edge_type, type_names = None, None, None
    if pairs and any(cols.weight in d for _, _, d in pairs):
        values = [d.get(cols.weight) for _, _, d in pairs]
        weight = _weights(pa.chunked_array([pa.array(values, pa.float64())]), where, cols.weight)
    if pairs and any(cols.edge_type in d for _, _, d in pairs):
        values = [
            None if d.get(cols.edge_type) is None else str(d[cols.edge_type]) for _, _, d in pairs
        ]
        edge_type, type_names = _types(pa.chunked_array([pa.array(values)]), where, cols.edge_type)
    edges = _Edges(
        _map_ids(src, nodes, where, "source", "source"),
        _map_ids(dst, nodes, where, "target", "destination"),
        weight, edge_type, type_names,
    )  # fmt: skip
    how = f"{named} ({graph.number_of_nodes()} nodes, {len(pairs)} edges, via networkx)"
    return _homogeneous(nodes, edges, directed, name or named.stem, {str(named): digest}, how)


@tables.system_memory
def load_graph(
    path: PathLike,
    name: str | None = None,
    directed: bool = False,
    features: list[str] | None = None,
    columns: Columns | None = None,
    roots: AllowedRoots | None = None,
    missing_features: MissingFeatures = "error",
) -> LoadedDataset:
    """Load whatever graph `path` names (a folder, a node or edge file, an edge list, a
    GraphML/GML file); see the module docstring for the layouts.

    Args:
        path: the folder or file.
        name: the dataset's name (default: the folder's or file's name).
        directed, features, columns, roots, missing_features: as for `load_csv_graph`.

    Raises:
        UserInputError: no readable layout, malformed input, or a file outside `roots`.
    """
    named = Path(path)
    if roots is not None:
        roots.check(named)
    files = find_graph_files(named)
    default = named.name if named.is_dir() else named.stem
    name = name or (
        default if default not in ("nodes", "edges", "") else named.resolve().parent.name
    )
    if files.kind == "graph_file":
        return load_graph_file(files.edges, name, directed, columns, roots, missing_features)
    if files.kind == "edge_list":
        return load_edge_list(files.edges, name, directed, columns, roots)
    return load_csv_graph(
        files.nodes, files.edges, name, directed, features, columns, roots, missing_features
    )
