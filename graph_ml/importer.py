"""Bring your own graph: node and edge CSV files -> a `LoadedDataset`.

Node file: an id column, numeric feature columns, and optionally a label column (integers or
class names; an empty cell means unlabelled). Edge file: source and destination ids, and
optionally a numeric weight and a categorical type. Several node files and edge files keyed
by type names build a `HeteroData`.

Every problem in the input is a `UserInputError` naming the file, the line and the fix.
Only the csv module is used (no pandas).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_geometric.data import Data, HeteroData

from core.errors import UserInputError
from graph_ml.datasets import DatasetSpec, LoadedDataset, Task

PathLike = str | os.PathLike
EdgeType = tuple[str, str, str]
MISSING = {"", "nan", "na", "n/a", "null", "none"}  # read as a missing value, never as a number


@dataclass
class Columns:
    """Column names the importer looks for (case-insensitive)."""

    node_id: str = "id"
    label: str = "label"
    src: str = "src"
    dst: str = "dst"
    weight: str = "weight"
    edge_type: str = "type"


@dataclass
class _Table:
    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line number in the file, cells)

    def column(self, name: str) -> int | None:
        lowered = [h.strip().lower() for h in self.header]
        return lowered.index(name.lower()) if name.lower() in lowered else None

    def require(self, name: str, role: str, example: str) -> int:
        index = self.column(name)
        if index is None:
            raise UserInputError(
                f"{self.path}, line 1: no {name!r} column ({role}); the header has "
                f"{', '.join(repr(h) for h in self.header)}. Fix: name the column {name!r}, "
                f"e.g. a header line like '{example}'."
            )
        return index


def _read_table(path: PathLike, kind: str, example: str) -> _Table:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{kind} file {path} does not exist; check the path.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise UserInputError(
                f"{path}, line 1: the {kind} file is empty. Fix: start it with a header line "
                f"like '{example}', then one row per {kind[:-1] if kind.endswith('s') else kind}."
            )
        rows = []
        for cells in reader:
            if not cells or not any(cell.strip() for cell in cells):
                continue  # blank lines are harmless
            if len(cells) != len(header):
                raise UserInputError(
                    f"{path}, line {reader.line_num}: {len(cells)} fields where the header has "
                    f"{len(header)}. Fix: give every row the header's columns (quote values "
                    "that contain commas)."
                )
            rows.append((reader.line_num, cells))
    if not rows:
        raise UserInputError(
            f"{path}: the {kind} file has a header but no data rows. Fix: add at least one row."
        )
    return _Table(path, [h.strip() for h in header], rows)


def _number(table: _Table, line: int, column: str, cell: str) -> float:
    text = cell.strip()
    if text.lower() in MISSING:
        raise UserInputError(
            f"{table.path}, line {line}, column {column!r}: missing value (NaN). Fix: fill it "
            "(e.g. 0 or the column mean) or drop the row; features must all be present."
        )
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(
            f"{table.path}, line {line}, column {column!r}: {cell!r} is not a number. Fix: "
            "features must be numeric; one-hot encode categories into 0/1 columns, or drop "
            "the column."
        ) from None
    if not math.isfinite(value):
        raise UserInputError(
            f"{table.path}, line {line}, column {column!r}: {cell!r} is not a finite number. "
            "Fix: replace it with a finite value."
        )
    return value


@dataclass
class _Nodes:
    ids: list[str]
    index: dict[str, int]
    x: torch.Tensor | None  # [num_nodes, num_features]
    y: torch.Tensor | None  # [num_nodes], -1 where unlabelled
    class_names: list[str] | None


def _read_nodes(path: PathLike, cols: Columns, features: list[str] | None) -> _Nodes:
    example = f"{cols.node_id},f1,f2,{cols.label}"
    table = _read_table(path, "nodes", example)
    id_col = table.require(cols.node_id, "node ids", example)
    label_col = table.column(cols.label)
    if features is None:
        feature_cols = [i for i in range(len(table.header)) if i not in (id_col, label_col)]
    else:
        feature_cols = [table.require(name, "a feature", example) for name in features]
    ids, index = [], {}
    for line, cells in table.rows:
        node_id = cells[id_col].strip()
        if not node_id:
            raise UserInputError(f"{table.path}, line {line}: empty node id. Fix: give it an id.")
        if node_id in index:
            first = table.rows[index[node_id]][0]
            raise UserInputError(
                f"{table.path}, line {line}: duplicate node id {node_id!r} (first on line "
                f"{first}). Fix: ids must be unique; merge or rename the rows."
            )
        index[node_id] = len(ids)
        ids.append(node_id)
    x = None
    if feature_cols:
        values = [
            [_number(table, line, table.header[c], cells[c]) for c in feature_cols]
            for line, cells in table.rows
        ]
        x = torch.tensor(values, dtype=torch.float)
    y, class_names = (None, None)
    if label_col is not None:
        y, class_names = _labels(table, label_col)
    return _Nodes(ids, index, x, y, class_names)


def _labels(table: _Table, col: int) -> tuple[torch.Tensor, list[str]]:
    """Integer labels are kept as they are; other labels are numbered in sorted order."""
    raw = [cells[col].strip() for _, cells in table.rows]
    present = [v for v in raw if v.lower() not in MISSING]
    if not present:
        raise UserInputError(
            f"{table.path}: the label column {table.header[col]!r} is empty on every row. "
            "Fix: fill in labels, or remove the column for an unlabelled graph."
        )
    if all(v.lstrip("-").isdigit() for v in present):
        for (line, _), value in zip(table.rows, raw, strict=True):
            if value.startswith("-"):
                raise UserInputError(
                    f"{table.path}, line {line}: negative label {value}. Fix: labels are "
                    "0, 1, 2, ...; leave the cell empty for an unlabelled node."
                )
        number = {v: int(v) for v in present}
        names = [str(i) for i in range(max(number.values()) + 1)]
    else:
        names = sorted(set(present))
        number = {name: i for i, name in enumerate(names)}
    y = torch.tensor([number.get(v, -1) for v in raw], dtype=torch.long)
    return y, names


@dataclass
class _Edges:
    edge_index: torch.Tensor  # [2, num_edges]
    weight: torch.Tensor | None  # [num_edges]
    edge_type: torch.Tensor | None  # [num_edges]
    type_names: list[str] | None


def _read_edges(
    path: PathLike,
    cols: Columns,
    src: tuple[_Nodes, PathLike],
    dst: tuple[_Nodes, PathLike],
) -> _Edges:
    """Parse an edge file whose endpoints must be ids of `src` and `dst` (nodes, their file)."""
    example = f"{cols.src},{cols.dst},{cols.weight}"
    table = _read_table(path, "edges", example)
    src_col = table.require(cols.src, "source node ids", example)
    dst_col = table.require(cols.dst, "destination node ids", example)
    weight_col, type_col = table.column(cols.weight), table.column(cols.edge_type)
    pairs, weights, types = [], [], []
    for line, cells in table.rows:
        pair = []
        for col, (nodes, nodes_path) in ((src_col, src), (dst_col, dst)):
            node_id = cells[col].strip()
            if node_id not in nodes.index:
                raise UserInputError(
                    f"{table.path}, line {line}: {table.header[col]!r} is {node_id!r}, which is "
                    f"not an id in {nodes_path}. Fix: add a row for it there, or remove this "
                    "edge."
                )
            pair.append(nodes.index[node_id])
        pairs.append(pair)
        if weight_col is not None:
            weights.append(_number(table, line, table.header[weight_col], cells[weight_col]))
        if type_col is not None:
            types.append(cells[type_col].strip())
    edge_index = torch.tensor(pairs, dtype=torch.long).t().contiguous()
    weight = torch.tensor(weights, dtype=torch.float) if weight_col is not None else None
    edge_type, type_names = None, None
    if type_col is not None:
        type_names = sorted(set(types))
        lookup = {name: i for i, name in enumerate(type_names)}
        edge_type = torch.tensor([lookup[t] for t in types], dtype=torch.long)
    return _Edges(edge_index, weight, edge_type, type_names)


def _dedupe(edges: _Edges, num_nodes: int, undirected: bool) -> _Edges:
    """Add reverse edges if undirected, then keep the first copy of each (src, dst, type)."""
    edge_index, weight, edge_type = edges.edge_index, edges.weight, edges.edge_type
    if undirected:
        edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
        weight = None if weight is None else torch.cat([weight, weight])
        edge_type = None if edge_type is None else torch.cat([edge_type, edge_type])
    key = edge_index[0] * num_nodes + edge_index[1]
    if edge_type is not None:
        key = key * (int(edge_type.max()) + 1) + edge_type
    unique, inverse = torch.unique(key, sorted=True, return_inverse=True)
    # Index of each key's first occurrence, in key order: sorted by (src, dst, type) as
    # PyG's coalesce would leave them.
    keep = torch.full((unique.numel(),), key.numel(), dtype=torch.long)
    keep = keep.scatter_reduce(0, inverse, torch.arange(key.numel()), reduce="amin")
    return _Edges(
        edge_index[:, keep],
        None if weight is None else weight[keep],
        None if edge_type is None else edge_type[keep],
        edges.type_names,
    )


def _spec(name: str, files: list[str], labelled: bool, hetero: bool) -> DatasetSpec:
    tasks: tuple[Task, ...]
    if hetero:  # link splits (and the trainer) handle homogeneous graphs only
        tasks = ("node_classification",)
    else:
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
        description=f"Imported from {', '.join(files)}.",
    )


def load_csv_graph(
    nodes: PathLike | Mapping[str, PathLike],
    edges: PathLike | Mapping[str | EdgeType, PathLike],
    name: str | None = None,
    directed: bool = False,
    features: list[str] | None = None,
    columns: Columns | None = None,
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

    Returns:
        A `LoadedDataset` whose `class_names` and `node_ids` map indices back to the files.

    Raises:
        UserInputError: malformed input, with file, line and fix.
    """
    cols = columns or Columns()
    if isinstance(nodes, Mapping) or isinstance(edges, Mapping):
        return _load_hetero(nodes, edges, name, directed, features, cols)
    node_table = _read_nodes(nodes, cols, features)
    parsed = _read_edges(edges, cols, (node_table, nodes), (node_table, nodes))
    parsed = _dedupe(parsed, len(node_table.ids), undirected=not directed)
    data = Data(edge_index=parsed.edge_index, num_nodes=len(node_table.ids))
    if node_table.x is not None:
        data.x = node_table.x
    if node_table.y is not None:
        data.y = node_table.y
    if parsed.weight is not None:
        data.edge_weight = parsed.weight
    if parsed.edge_type is not None:
        data.edge_type = parsed.edge_type
    spec = _spec(
        name or Path(nodes).stem, [str(nodes), str(edges)], node_table.y is not None, False
    )
    return LoadedDataset(
        spec=spec,
        graphs=[data],
        class_names=node_table.class_names,
        node_ids={"node": node_table.ids},
        edge_type_names=parsed.type_names,
    )


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
) -> LoadedDataset:
    if not isinstance(nodes, Mapping) or not isinstance(edges, Mapping):
        raise UserInputError(
            "A heterogeneous graph needs node files keyed by node type and edge files keyed by "
            "edge type, e.g. nodes={'paper': 'papers.csv'}, "
            "edges={'author__writes__paper': 'writes.csv'}."
        )
    data, tables = HeteroData(), {}
    for node_type, path in nodes.items():
        table = _read_nodes(path, cols, features)
        tables[node_type] = table
        data[node_type].num_nodes = len(table.ids)
        if table.x is not None:
            data[node_type].x = table.x
        if table.y is not None:
            data[node_type].y = table.y
    for key, path in edges.items():
        src, rel, dst = _edge_type(key, tables)
        parsed = _read_edges(path, cols, (tables[src], nodes[src]), (tables[dst], nodes[dst]))
        parsed = _dedupe(parsed, max(len(tables[src].ids), len(tables[dst].ids)), False)
        data[src, rel, dst].edge_index = parsed.edge_index
        if parsed.weight is not None:
            data[src, rel, dst].edge_weight = parsed.weight
    if not directed:
        from torch_geometric.transforms import ToUndirected

        data = ToUndirected()(data)  # adds rev_<relation> edge types
    labelled = [t for t, table in tables.items() if table.y is not None]
    files = [str(p) for p in (*nodes.values(), *edges.values())]
    spec = _spec(
        name or "hetero-" + Path(next(iter(nodes.values()))).stem, files, bool(labelled), True
    )
    target = labelled[0] if labelled else next(iter(tables))
    return LoadedDataset(
        spec=spec,
        graphs=[data],
        target_node_type=target,
        class_names=tables[target].class_names,
        node_ids={t: table.ids for t, table in tables.items()},
    )
