"""Bring your own graph: files on disk -> a `LoadedDataset`.

What a path may be (`graph_ml.graph_files.find_graph_files` decides, `load_graph` loads):

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

Files are read with pyarrow (`graph_ml.tables`) into arrays (`graph_ml.graph_columns`);
every problem in the input is a `UserInputError` naming the file, the line and the fix. When
`roots` is given, every file that is opened is first checked against it (symlinks resolved).
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch_geometric.data import Data, HeteroData

from core.errors import UserInputError
from core.paths import AllowedRoots
from graph_ml import tables
from graph_ml.datasets import DatasetSpec, LoadedDataset, Task
from graph_ml.graph_columns import (
    Columns,
    EdgeTable,
    MissingFeatures,
    NodeTable,
    PathLike,
    dedupe,
    edge_types,
    fill_features,
    find_column,
    first_true,
    map_ids,
    node_table,
    open_checked,
    open_text,
    read_edges,
    read_nodes,
    stripped,
    weights,
)
from graph_ml.graph_files import EdgeType, GraphFiles, find_graph_files

__all__ = ["Columns", "GraphFiles", "find_graph_files", "load_csv_graph", "load_edge_list",
           "load_graph", "load_graph_file"]  # fmt: skip


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
    nodes: NodeTable, edges: EdgeTable, directed: bool, name: str, files: dict[str, str], how: str
) -> LoadedDataset:
    node_ids = {"node": nodes.ids.to_pylist()}  # before the edges' peak, not on top of it
    edge_index = dedupe(edges, nodes.num_nodes, undirected=not directed)
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
    node_table, node_text = read_nodes(nodes, roots, cols, features, missing_features)
    parsed, edge_text = read_edges(edges, roots, cols, node_table, node_table)
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
        table, text = read_nodes(path, roots, cols, features, missing)
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
        parsed, text = read_edges(path, roots, cols, node_tables[src], node_tables[dst])
        files[str(text.path)] = text.sha256
        how.append(f"{src}-{rel}-{dst} edges from {_how(text)}")
        size = max(node_tables[src].num_nodes, node_tables[dst].num_nodes)
        data[src, rel, dst].edge_index = dedupe(parsed, size, False)
        if parsed.weight is not None:
            data[src, rel, dst].edge_weight = torch.from_numpy(parsed.weight)
    if not directed:
        from torch_geometric.transforms import ToUndirected

        data = ToUndirected()(data)  # adds rev_<relation> edge types
    labelled = [t for t, table in node_tables.items() if table.y is not None]
    first = Path(next(iter(nodes.values())))
    description = "Imported: " + "; ".join(how) + "."
    spec = _spec(name or "hetero-" + first.stem, list(files), bool(labelled), description)
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
    src, dst = find_column(names, cols.src), find_column(names, cols.dst)
    notes = []
    if src is None or dst is None:
        src, dst = names[0], names[1]
        if text.layout.header:
            notes.append(f"Columns {src!r} and {dst!r} read as source and destination.")
    third = next((n for n in names if n not in (src, dst)), None)
    if third is None:
        return src, dst, None, None, notes
    if find_column([third], cols.weight) is not None:
        return src, dst, third, None, notes
    cells = stripped(text.table.column(third))
    numeric = (
        pc.all(pc.match_substring_regex(cells, tables.NUMBER_PATTERN, ignore_case=True)).as_py()
        is not False
    )
    if find_column([third], cols.edge_type) is not None or not numeric:
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

    text = open_text(path, roots, "edges", example, None, cols.known())
    types = {name: pa.string() for name in text.names}  # typed once the roles are known
    text.table = tables.read(text.path, text.opened, text.layout, text.names, types, "").table
    src_col, dst_col, weight_col, type_col, notes = _edge_list_columns(text, cols)
    ids, id_note = _edge_list_ids(text.table.column(src_col), text.table.column(dst_col))
    nodes = NodeTable(ids, None, None, None, str(text.path), [*notes, id_note])
    src = map_ids(text.table.column(src_col), nodes, text.where, src_col, "source")
    dst = map_ids(text.table.column(dst_col), nodes, text.where, dst_col, "destination")
    weight = None
    if weight_col is not None:
        column = stripped(text.table.column(weight_col))
        bad = pc.invert(pc.match_substring_regex(column, tables.NUMBER_PATTERN, ignore_case=True))
        if (row := first_true(bad)) is not None:
            raise tables.not_a_number(text.where(row), weight_col, column[row].as_py())
        weight = weights(pc.cast(column, pa.float64()), text.where, weight_col)
    edge_type, type_names = None, None
    if type_col is not None:
        edge_type, type_names = edge_types(text.table.column(type_col), text.where, type_col)
    edges = EdgeTable(src, dst, weight, edge_type, type_names)
    text.release()
    files = {str(text.path): text.sha256}
    return _homogeneous(nodes, edges, directed, name or Path(path).stem, files, _how(text))


def _graph_file_nodes(graph, path: Path, cols: Columns, missing: MissingFeatures) -> NodeTable:
    """Node table of a networkx graph: numeric attributes are features, `label` the label."""
    ids = [str(n) for n in graph.nodes]
    attrs: dict[str, list] = {}
    for row, (_, data) in enumerate(graph.nodes(data=True)):
        for key, value in data.items():
            attrs.setdefault(key, [None] * len(ids))[row] = value
    label_key = find_column(list(attrs), cols.label)
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
        fill_features(x, pa.table(feature_cols), list(feature_cols), where, 0, missing)
    ids_array = pa.chunked_array([pa.array(ids, pa.string())])
    nodes = node_table(ids_array, x, label, where, str(path))
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
    named, opened = open_checked(path, roots, "graph")
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
        weight = weights(pa.chunked_array([pa.array(values, pa.float64())]), where, cols.weight)
    if pairs and any(cols.edge_type in d for _, _, d in pairs):
        values = [
            None if d.get(cols.edge_type) is None else str(d[cols.edge_type]) for _, _, d in pairs
        ]
        column = pa.chunked_array([pa.array(values)])
        edge_type, type_names = edge_types(column, where, cols.edge_type)
    edges = EdgeTable(
        map_ids(src, nodes, where, "source", "source"),
        map_ids(dst, nodes, where, "target", "destination"),
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
