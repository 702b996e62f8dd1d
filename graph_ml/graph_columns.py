"""Parsed node and edge tables -> the arrays of a graph, with file/line errors.

`read_nodes` and `read_edges` stream a file (`graph_ml.tables`) batch by batch into numpy
arrays: float32 features, label indices (checked against the number of rows first, so an
absurd label fails fast), node indices for edge endpoints (an unknown id names its line),
weights and edge types. `dedupe` adds reverse edges and keeps the first copy of each edge,
in about the memory of its result. `Columns` names the columns looked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from core.errors import UserInputError
from core.paths import AllowedRoots
from graph_ml import tables

PathLike = str | os.PathLike
MissingFeatures = Literal["error", "keep"]
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


# --- Reading node and edge tables ----------------------------------------------------------


@dataclass
class NodeTable:
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
class EdgeTable:
    src: np.ndarray  # int64 [num_edges]
    dst: np.ndarray  # int64 [num_edges]
    weight: np.ndarray | None  # float32 [num_edges]
    edge_type: np.ndarray | None  # int64 [num_edges]
    type_names: list[str] | None


Where = Callable[[int], str]  # data row -> "file, line N" (or "file, node 'x'")


def open_checked(path: PathLike, roots: AllowedRoots | None, kind: str) -> tuple[Path, Path]:
    """(the path as named, the resolved file to open), checked against `roots`."""
    named = Path(path)
    opened = roots.check(named) if roots is not None else named.resolve()
    if not opened.is_file():
        raise UserInputError(f"{kind} file {named} does not exist; check the path.")
    return named, opened


def open_text(
    path: PathLike,
    roots: AllowedRoots | None,
    kind: str,
    example: str,
    header: bool | None,
    known: frozenset[str] = frozenset(),
) -> tables.TextTable:
    """Check, scan and sniff one file (nothing parsed yet: `table` is empty)."""
    named, opened = open_checked(path, roots, kind)
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


def find_column(names: list[str], wanted: str) -> str | None:
    return next((n for n in names if n.lower() == wanted.lower()), None)


def require_column(table: tables.TextTable, wanted: str, role: str, example: str) -> str:
    name = find_column(table.names, wanted)
    if name is None:
        header = ", ".join(repr(h) for h in table.names)
        raise UserInputError(
            f"{table.path}, line {table.layout.skip_lines}: no {wanted!r} column ({role}); the "
            f"header has {header}. Fix: name the column {wanted!r}, e.g. a header line like "
            f"'{example}'."
        )
    return name


# The usual other spellings of an edge list's two endpoint columns, taken as a pair (never one
# of them beside a 'dst': a file that says 'source' and 'dst' is asked about).
ENDPOINT_PAIRS = (("source", "target"), ("from", "to"), ("u", "v"), ("head", "tail"))


def endpoint_columns(table: tables.TextTable, cols: Columns, example: str) -> tuple[str, str]:
    """The source and destination columns: `cols.src`/`cols.dst`, else, for the default
    names, one of the usual pairs (source/target, from/to, u/v, head/tail)."""
    src, dst = find_column(table.names, cols.src), find_column(table.names, cols.dst)
    if src is None and dst is None and (cols.src, cols.dst) == ("src", "dst"):
        for a, b in ENDPOINT_PAIRS:
            pair = find_column(table.names, a), find_column(table.names, b)
            if pair[0] is not None and pair[1] is not None:
                return pair  # type: ignore[return-value]
    pairs = ", ".join("/".join(p) for p in ENDPOINT_PAIRS)
    return (
        src or require_column(table, cols.src, f"source node ids; or a pair {pairs}", example),
        dst or require_column(table, cols.dst, "destination node ids", example),
    )


def first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    """Index of the first true value of a boolean array (nulls count as false)."""
    values = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
    return first_index(values)


def first_index(values: np.ndarray) -> int | None:
    hits = np.flatnonzero(values)
    return int(hits[0]) if hits.size else None


def stripped(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trimmed text with the missing-value spellings as nulls."""
    column = pc.utf8_trim_whitespace(column)
    missing = pc.is_in(pc.utf8_lower(column), value_set=pa.array(tables.MISSING))
    return pc.if_else(missing, pa.scalar(None, pa.string()), column)


def fill_features(
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
        if missing == "error" and (row := first_index(np.isnan(column))) is not None:
            raise UserInputError(
                f"{where(offset + row)}, column {name!r}: missing value (NaN). Fix: fill it (e.g. "
                "0 or the column mean) or drop the row; or train with "
                "enhance=['feature_propagation'] to fill missing features from the neighbours."
            )
        if (row := first_index(np.isinf(column))) is not None:
            raise UserInputError(
                f"{where(offset + row)}, column {name!r}: not a finite number. Fix: replace it "
                "with a finite value."
            )


def _labels(
    column: pa.ChunkedArray, where: Where, name: str, source: str
) -> tuple[torch.Tensor, list[str]]:
    """Integer labels are class indices, kept as they are; other labels are numbered in
    sorted order. The class count is checked against the rows before anything is built."""
    column = stripped(column)
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
    if (row := first_true(pc.greater(lengths, MAX_LABEL_DIGITS))) is not None:
        raise UserInputError(_too_many_classes(where(row), name, None, labelled))
    values = pc.cast(column, pa.int64())
    if (row := first_true(pc.less(values, 0))) is not None:
        raise UserInputError(
            f"{where(row)}: negative label {values[row].as_py()}. Fix: labels are 0, 1, 2, ...; "
            "leave the cell empty for an unlabelled node."
        )
    largest = int(pc.max(values).as_py())
    limit = max(CLASSES_PER_LABELLED_NODE * labelled, MIN_CLASS_LIMIT)
    if largest + 1 > limit:
        row = first_true(pc.equal(values, largest))
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


def node_table(
    ids: pa.ChunkedArray,
    x: np.ndarray | None,
    label: tuple[str, pa.ChunkedArray] | None,
    where: Where,
    source: str,
) -> NodeTable:
    """Check the ids (present, unique) and build the labels; `x` is already checked."""
    ids = pc.utf8_trim_whitespace(ids)
    if (row := first_true(pc.or_kleene(pc.is_null(ids), pc.equal(ids, "")))) is not None:
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
    return NodeTable(ids.combine_chunks(), features, y, class_names, source)


def read_nodes(
    path: PathLike,
    roots: AllowedRoots | None,
    cols: Columns,
    features: list[str] | None,
    missing: MissingFeatures,
) -> tuple[NodeTable, tables.TextTable]:
    """Stream a node file: features go batch by batch into one float32 matrix."""
    example = f"{cols.node_id},f1,f2,{cols.label}"
    text = open_text(path, roots, "nodes", example, True)
    id_col = require_column(text, cols.node_id, "node ids", example)
    label_col = find_column(text.names, cols.label)
    if features is None:
        chosen = [n for n in text.names if n not in (id_col, label_col)]
    else:
        chosen = [require_column(text, name, "a feature", example) for name in features]
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
            fill_features(block, batch, chosen, text.where, offset, missing)
    label = None
    if label_col:
        label = (label_col, pa.chunked_array(label_chunks, type=pa.string()))
    ids = pa.chunked_array(id_chunks, type=pa.string())
    x = None if x is None else x[: text.rows]
    nodes = node_table(ids, x, label, text.where, str(text.path))
    text.release()
    return nodes, text


def map_ids(
    column: pa.ChunkedArray | pa.Array, nodes: NodeTable, where: Where, name: str, role: str
) -> np.ndarray:
    """Node index of every id in `column`; an unknown id is an error naming its line."""
    index = pc.index_in(_trimmed(column), value_set=nodes.ids, memory_pool=tables.POOL)
    if index.null_count:
        row = first_true(pc.is_null(index))
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


def weights(column: pa.ChunkedArray | pa.Array, where: Where, name: str) -> np.ndarray:
    values = column.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if (row := first_index(~np.isfinite(values))) is not None:
        raise UserInputError(
            f"{where(row)}, column {name!r}: missing or infinite weight. Fix: give every edge "
            "a finite weight, or drop the weight column."
        )
    return values


def edge_types(column: pa.ChunkedArray, where: Where, name: str) -> tuple[np.ndarray, list[str]]:
    column = stripped(column)
    if (row := first_true(pc.is_null(column))) is not None:
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
        column = stripped(column)
        if (row := first_true(pc.is_null(column))) is not None:
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


def read_edges(
    path: PathLike,
    roots: AllowedRoots | None,
    cols: Columns,
    src_nodes: NodeTable,
    dst_nodes: NodeTable,
) -> tuple[EdgeTable, tables.TextTable]:
    """Stream an edge file whose endpoints must be ids of `src_nodes` and `dst_nodes`:
    each batch of ids becomes node indices at once, so the text is never held whole."""
    example = f"{cols.src},{cols.dst},{cols.weight}"
    text = open_text(path, roots, "edges", example, True)
    src_col, dst_col = endpoint_columns(text, cols, example)
    weight_col = find_column(text.names, cols.weight)
    type_col = find_column(text.names, cols.edge_type)
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
        src[offset:end] = map_ids(group.column(src_col), src_nodes, where, src_col, "source")
        dst[offset:end] = map_ids(group.column(dst_col), dst_nodes, where, dst_col, "destination")
        if weight is not None:
            weight[offset:end] = weights(group.column(weight_col), where, weight_col)
        if codes is not None:
            codes.add(group.column(type_col), offset, where, type_col)
        del group
        tables.give_back()
    rows = text.rows
    edge_type, type_names = (None, None) if codes is None else codes.sorted(rows)
    text.release()
    edges = EdgeTable(src[:rows], dst[:rows], None if weight is None else weight[:rows], edge_type,
                   type_names)  # fmt: skip
    return edges, text


def _sorted_unique(key: np.ndarray) -> np.ndarray:
    """`key` sorted in place, then its distinct values."""
    key.sort()
    return key[np.concatenate([[True], key[1:] != key[:-1]])]


def _dedupe_plain(edges: EdgeTable, num_nodes: int, undirected: bool) -> torch.Tensor:
    """`dedupe` without weights or types, in about the memory of the result.

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


def dedupe(edges: EdgeTable, num_nodes: int, undirected: bool) -> torch.Tensor:
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
