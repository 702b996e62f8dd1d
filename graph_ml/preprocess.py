"""The data doctor: statistics, cleaning transforms, and leak-free train/val/test splits.

The splits (`NodeSplit`, `LinkSplit`, `GraphSplit`, `make_split`, `check_no_leakage`,
`DataLeakageError`) live in `graph_ml.splits`, with their contract, and are re-exported here.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

import dataclasses
from collections.abc import Callable

import torch
from pydantic import BaseModel, Field
from torch_geometric.data import Data, HeteroData

from core.errors import UserInputError
from core.registry import Registry
from graph_ml.datasets import LoadedDataset
from graph_ml.splits import (  # noqa: F401 - re-exported: the split contract lives here too
    SPLIT_KINDS,
    TASKS,
    DataLeakageError,
    GraphSplit,
    LinkSplit,
    NodeSplit,
    Split,
    check_no_leakage,
    has_public_split,
    make_split,
)

# --- Statistics ----------------------------------------------------------------------------


class DegreeSummary(BaseModel):
    """Node degree distribution (out-degree over `edge_index`, self-loops included)."""

    min: int
    max: int
    mean: float
    median: float
    std: float


class NodeTypeStats(BaseModel):
    """One node type of a heterogeneous graph."""

    name: str
    num_nodes: int
    num_features: int  # 0: no features (models learn an embedding per node)
    labelled: int  # nodes with a label
    num_classes: int


class RelationStats(BaseModel):
    """One relation (edge type): `source -relation-> target`."""

    source: str
    relation: str
    target: str
    num_edges: int
    reverse: bool  # added by the import (rev_<relation>) so messages flow both ways


class Suggestion(BaseModel):
    """A structure enhancement (graph_ml.transforms) the statistics give a reason for."""

    enhancement: str
    reason: str


class DatasetStats(BaseModel):
    """What a user wants to know before choosing a model; JSON-able.

    For graph-level datasets node and edge counts are totals over all graphs, `avg_nodes` /
    `avg_edges` are per graph, and the class counts are over graph labels.
    """

    name: str
    level: str
    num_graphs: int
    num_nodes: int
    num_edges: int  # stored directed edges (an undirected edge counts twice)
    avg_nodes: float
    avg_edges: float
    num_features: int
    num_classes: int
    class_counts: list[int]
    class_balance: float | None  # smallest class / largest class; 1.0 is perfectly balanced
    isolated_nodes: int
    self_loops: int
    duplicate_edges: int
    is_directed: bool
    connected_components: int  # weakly connected; summed over graphs for graph-level data
    largest_component_fraction: float  # of the nodes (mean over graphs for graph-level data)
    degree: DegreeSummary
    edge_homophily: float | None  # share of labelled non-loop edges joining same-class nodes
    has_nan_features: bool
    node_types: dict[str, int] | None = None  # HeteroData only
    edge_types: dict[str, int] | None = None
    target_node_type: str | None = None  # HeteroData: the type classified by default
    types: list[NodeTypeStats] | None = None  # HeteroData: per node type
    relations: list[RelationStats] | None = None  # per edge type (also a CSV 'type' column)
    missing_features: int = 0  # feature values that are NaN (imported as missing)
    advice: list[str] = Field(default_factory=list)
    suggestions: list[Suggestion] = Field(default_factory=list)


def _components(edge_index: torch.Tensor, num_nodes: int) -> tuple[int, int]:
    """(number of weakly connected components, size of the largest)."""
    import numpy as np
    from scipy.sparse.csgraph import connected_components
    from torch_geometric.utils import to_scipy_sparse_matrix

    if num_nodes == 0:
        return 0, 0
    adj = to_scipy_sparse_matrix(edge_index, num_nodes=num_nodes)
    count, label = connected_components(adj, directed=True, connection="weak")
    return int(count), int(np.bincount(label).max())


def _edge_stats(edge_index: torch.Tensor, num_nodes: int) -> dict:
    from torch_geometric.utils import is_undirected

    src, dst = edge_index
    loops = src == dst
    keys = src * num_nodes + dst
    touched = torch.zeros(num_nodes, dtype=torch.bool)
    touched[src[~loops]] = True
    touched[dst[~loops]] = True
    return {
        "self_loops": int(loops.sum()),
        "duplicate_edges": int(keys.numel() - torch.unique(keys).numel()),
        "isolated_nodes": int((~touched).sum()),
        "is_directed": not is_undirected(edge_index, num_nodes=num_nodes),
    }


def _homophily(edge_index: torch.Tensor, y: torch.Tensor | None) -> float | None:
    if y is None or y.numel() == 0 or y.dim() != 1:
        return None
    src, dst = edge_index
    keep = (src != dst) & (y[src] >= 0) & (y[dst] >= 0)
    if not keep.any():
        return None
    return float((y[src[keep]] == y[dst[keep]]).float().mean())


def _degree_summary(degrees: torch.Tensor) -> DegreeSummary:
    deg = degrees.float()
    if deg.numel() == 0:
        return DegreeSummary(min=0, max=0, mean=0.0, median=0.0, std=0.0)
    return DegreeSummary(
        min=int(deg.min()),
        max=int(deg.max()),
        mean=round(float(deg.mean()), 4),
        median=float(deg.median()),
        std=round(float(deg.std(unbiased=False)), 4),
    )


def describe(ds: LoadedDataset) -> DatasetStats:
    """Statistics of `ds`, with advice on the cleaning transforms that fix what they show."""
    from torch_geometric.utils import degree

    graphs = [g.to_homogeneous() if isinstance(g, HeteroData) else g for g in ds.graphs]
    totals = {"self_loops": 0, "duplicate_edges": 0, "isolated_nodes": 0}
    directed, components, lcc_fractions, degrees = False, 0, [], []
    for graph in graphs:
        n = int(graph.num_nodes)
        stats = _edge_stats(graph.edge_index, n)
        for key in totals:
            totals[key] += stats[key]
        directed |= stats["is_directed"]
        count, largest = _components(graph.edge_index, n)
        components += count
        lcc_fractions.append(largest / n if n else 0.0)
        degrees.append(degree(graph.edge_index[0], n, dtype=torch.long))
    labels = _stats_labels(ds)
    counts = torch.bincount(labels[labels >= 0]).tolist() if labels is not None else []
    present = [c for c in counts if c > 0]
    homophily = None
    if ds.spec.level == "node" and not ds.is_hetero:
        homophily = _homophily(graphs[0].edge_index, ds.data.get("y"))
    xs = [_node_store(ds, g).get("x") for g in ds.graphs]
    num_nodes = sum(int(g.num_nodes) for g in graphs)
    num_edges = sum(int(g.edge_index.size(1)) for g in graphs)
    stats = DatasetStats(
        name=ds.spec.name,
        level=ds.spec.level,
        num_graphs=len(graphs),
        num_nodes=num_nodes,
        num_edges=num_edges,
        avg_nodes=round(num_nodes / len(graphs), 4),
        avg_edges=round(num_edges / len(graphs), 4),
        num_features=ds.num_features,
        num_classes=ds.num_classes,
        class_counts=counts,
        class_balance=round(min(present) / max(present), 4) if present else None,
        is_directed=directed,
        connected_components=components,
        largest_component_fraction=round(sum(lcc_fractions) / len(lcc_fractions), 4),
        degree=_degree_summary(torch.cat(degrees)),
        edge_homophily=None if homophily is None else round(homophily, 4),
        has_nan_features=any(x is not None and bool(torch.isnan(x).any()) for x in xs),
        **totals,
    )
    stats.missing_features = sum(int(torch.isnan(x).sum()) for x in xs if x is not None)
    if ds.is_hetero:
        _typed_stats(ds, stats)
    elif ds.edge_type_names and ds.data.get("edge_type") is not None:
        counts = torch.bincount(ds.data.edge_type, minlength=len(ds.edge_type_names)).tolist()
        stats.relations = [
            RelationStats(
                source="node", relation=name, target="node", num_edges=int(count), reverse=False
            )  # fmt: skip
            for name, count in zip(ds.edge_type_names, counts, strict=True)
        ]
    stats.advice = _advice(stats)
    stats.suggestions = _suggestions(stats)
    return stats


def _typed_stats(ds: LoadedDataset, stats: DatasetStats) -> None:
    """Node types and relations of a `HeteroData`: counts, features, labels."""
    data = ds.data
    stats.node_types = {t: int(data[t].num_nodes) for t in data.node_types}
    stats.edge_types = {"__".join(t): int(data[t].edge_index.size(1)) for t in data.edge_types}
    stats.target_node_type = ds.target_node_type
    # Duplicates within a relation: a user who both buys and views an item is no duplicate.
    stats.duplicate_edges = 0
    for (src, _, dst), store in zip(data.edge_types, data.edge_stores, strict=True):
        size = max(int(data[src].num_nodes), int(data[dst].num_nodes))
        keys = store.edge_index[0] * size + store.edge_index[1]
        stats.duplicate_edges += int(keys.numel() - torch.unique(keys).numel())
    stats.types = []
    for t in data.node_types:
        x, y = data[t].get("x"), data[t].get("y")
        labelled = y[y >= 0] if y is not None else torch.empty(0, dtype=torch.long)
        stats.types.append(
            NodeTypeStats(
                name=t,
                num_nodes=int(data[t].num_nodes),
                num_features=0 if x is None else int(x.size(-1)),
                labelled=int(labelled.numel()),
                num_classes=int(labelled.max()) + 1 if labelled.numel() else 0,
            )
        )
    forward = {t for t in data.edge_types if not t[1].startswith("rev_")}
    stats.relations = [
        RelationStats(
            source=s,
            relation=r,
            target=d,
            num_edges=int(data[s, r, d].edge_index.size(1)),
            reverse=r.startswith("rev_") and (d, r[4:], s) in forward,
        )  # fmt: skip
        for s, r, d in data.edge_types
    ]


def _node_store(ds: LoadedDataset, graph):
    if isinstance(graph, HeteroData):
        return graph[ds.target_node_type or graph.node_types[0]]
    return graph


def _stats_labels(ds: LoadedDataset) -> torch.Tensor | None:
    if ds.spec.level == "graph":
        if any(g.get("y") is None for g in ds.graphs):
            return None
        return torch.cat([g.y.view(-1)[:1] for g in ds.graphs]).long()
    y = _node_store(ds, ds.data).get("y")
    return None if y is None or y.dim() != 1 else y.long()


# Thresholds of the enhancement suggestions, with the reason for each.
LOW_HOMOPHILY = 0.5  # below it most edges join different classes: smoothing (GDC) mixes them
HIGH_HOMOPHILY = 0.7  # GDC's gains were on citation graphs of ~0.74-0.81 homophily
SPARSE_MEAN_DEGREE = 5.0  # Cora's mean degree is 3.9: diffusion adds the missing hops
FRAGMENTED = 0.9  # under 90% of the nodes in the largest component: many cut-off nodes


def _suggestions(stats: DatasetStats) -> list[Suggestion]:
    """Structure enhancements the statistics give a reason for (the first reason wins)."""
    found: dict[str, str] = {}

    def add(enhancement: str, reason: str) -> None:
        found.setdefault(enhancement, reason)

    if stats.missing_features:
        add("feature_propagation", f"{stats.missing_features} feature values are missing; "
            "feature propagation fills them from the neighbours (Rossi et al. 2022).")  # fmt: skip
    if stats.level != "node" or stats.node_types:
        return [Suggestion(enhancement=k, reason=v) for k, v in found.items()]
    if stats.num_features == 0:
        add("rw_pe", "No node features: random-walk encodings give each node structural ones.")
    homophily, degree = stats.edge_homophily, stats.degree.mean
    if homophily is not None and homophily < LOW_HOMOPHILY:
        add("rw_pe", f"Low homophily ({homophily:.2f}): neighbours' classes differ, so "
            "averaging them (and gdc's diffusion) blurs classes; structural encodings add a "
            "node's role instead. Compare with the MLP baseline.")  # fmt: skip
    elif homophily is not None and homophily >= HIGH_HOMOPHILY and degree < SPARSE_MEAN_DEGREE:
        add("gdc", f"Sparse (mean degree {degree:.1f}) and homophilous ({homophily:.2f}): "
            "diffusion reaches the nodes a few hops away, which share the class "
            "(Klicpera et al. 2019).")  # fmt: skip
    if stats.isolated_nodes or stats.largest_component_fraction < FRAGMENTED:
        add("virtual_node", f"{stats.isolated_nodes} isolated nodes, "
            f"{stats.connected_components} components ({stats.largest_component_fraction:.0%} "
            "of the nodes in the largest): a virtual node joined to all gives every node a "
            "two-hop path to the rest.")  # fmt: skip
    return [Suggestion(enhancement=k, reason=v) for k, v in found.items()]


def _advice(stats: DatasetStats) -> list[str]:
    advice = []
    if stats.types:
        labelled = [t.name for t in stats.types if t.labelled]
        plain = [t.name for t in stats.types if not t.num_features]
        relations = sum(not r.reverse for r in stats.relations or [])
        advice.append(
            f"Heterogeneous: {len(stats.types)} node types, {relations} "
            f"relation{'' if relations == 1 else 's'}. Node "
            f"classification of {', '.join(labelled) or 'no type (none is labelled)'}; link "
            "prediction of a relation. Typed models: rgcn, hgt, sage, gat (to_hetero), mlp."
        )
        if plain:
            advice.append(
                f"{', '.join(plain)} nodes have no features: the models learn an embedding per "
                "node, which does not carry over to new nodes."
            )
    if stats.is_directed:
        advice.append("The graph is directed; most GNNs expect both directions: to_undirected.")
    if stats.self_loops:
        advice.append(f"{stats.self_loops} self-loops; GCN adds its own: remove_self_loops.")
    if stats.duplicate_edges:
        advice.append(f"{stats.duplicate_edges} duplicate edges; to_undirected coalesces them.")
    if stats.isolated_nodes and stats.level == "node":
        advice.append(
            f"{stats.isolated_nodes} isolated nodes get no messages; largest_component "
            "keeps the connected core, or an MLP baseline shows how much the graph helps."
        )
    if stats.num_features == 0:
        advice.append("No node features: degree_features or one_hot_features adds some.")
    if stats.has_nan_features:
        advice.append("Features contain NaN; fix the input before training.")
    if stats.class_balance is not None and stats.class_balance < 0.2:
        advice.append("Classes are imbalanced (smallest/largest < 0.2); watch macro-F1.")
    if stats.edge_homophily is not None and stats.edge_homophily < 0.5:
        advice.append(
            f"Low edge homophily ({stats.edge_homophily:.2f}): neighbours often differ in "
            "class; try GraphSAGE/GAT and compare against the MLP baseline."
        )
    return advice


# --- Cleaning transforms -------------------------------------------------------------------


def _map_graphs(ds: LoadedDataset, fn: Callable[[Data], Data], what: str) -> LoadedDataset:
    if ds.is_hetero:
        raise UserInputError(
            f"{what} works on homogeneous graphs; {ds.spec.name!r} is heterogeneous."
        )
    graphs = [fn(graph.clone()) for graph in ds.graphs]
    return dataclasses.replace(ds, graphs=graphs)  # keeps class names, ids and sources


def to_undirected(ds: LoadedDataset) -> LoadedDataset:
    """Add every missing reverse edge and drop duplicates (edge attributes are merged)."""
    from torch_geometric.transforms import ToUndirected

    return _map_graphs(ds, ToUndirected(), "to_undirected")


def remove_self_loops(ds: LoadedDataset) -> LoadedDataset:
    """Drop edges from a node to itself."""
    from torch_geometric.transforms import RemoveSelfLoops

    return _map_graphs(ds, RemoveSelfLoops(), "remove_self_loops")


def add_self_loops(ds: LoadedDataset) -> LoadedDataset:
    """Give every node exactly one self-loop (existing ones are replaced, not doubled)."""
    from torch_geometric.utils import add_self_loops as add_loops
    from torch_geometric.utils import remove_self_loops as drop_loops

    def fn(graph: Data) -> Data:
        edge_index, _ = drop_loops(graph.edge_index)
        graph.edge_index, _ = add_loops(edge_index, num_nodes=graph.num_nodes)
        for key in ("edge_attr", "edge_weight", "edge_type"):  # no longer aligned with edges
            if key in graph:
                del graph[key]
        return graph

    return _map_graphs(ds, fn, "add_self_loops")


def normalize_features(ds: LoadedDataset, method: str = "row") -> LoadedDataset:
    """Scale node features.

    Args:
        method: "row" (each row sums to 1, as in the GCN paper) or "standard" (each column
            to zero mean and unit variance, statistics over all nodes of all graphs).
    """
    if method not in ("row", "standard"):
        raise UserInputError(f"Unknown normalisation {method!r}; choose from: row, standard.")
    if ds.num_features == 0:
        raise UserInputError(f"{ds.spec.name!r} has no node features to normalise.")
    if method == "row":
        from torch_geometric.transforms import NormalizeFeatures

        return _map_graphs(ds, NormalizeFeatures(), "normalize_features")
    stacked = torch.cat([g.x.float() for g in ds.graphs])  # [total_nodes, features]
    mean, std = stacked.mean(0), stacked.std(0, unbiased=False).clamp_min(1e-12)

    def fn(graph: Data) -> Data:
        graph.x = (graph.x.float() - mean) / std
        return graph

    return _map_graphs(ds, fn, "normalize_features")


def degree_features(ds: LoadedDataset, max_degree: int | None = None) -> LoadedDataset:
    """Replace node features by one-hot degrees, capped at `max_degree` (default: observed max)."""
    from torch_geometric.utils import degree

    degrees = [degree(g.edge_index[0], g.num_nodes, dtype=torch.long) for g in ds.graphs]
    if max_degree is None:
        max_degree = max((int(d.max()) for d in degrees if d.numel()), default=0)
    found = iter(degrees)

    def fn(graph: Data) -> Data:
        deg = next(found).clamp(max=max_degree)
        graph.x = torch.nn.functional.one_hot(deg, max_degree + 1).float()
        return graph

    return _map_graphs(ds, fn, "degree_features")


def one_hot_features(ds: LoadedDataset) -> LoadedDataset:
    """Replace node features by one-hot node ids (transductive, single-graph datasets only)."""
    if ds.spec.level != "node":
        raise UserInputError(
            "one_hot_features gives each node its own id, which does not carry across graphs; "
            "use degree_features for graph-level datasets."
        )

    def fn(graph: Data) -> Data:
        graph.x = torch.eye(graph.num_nodes)
        return graph

    return _map_graphs(ds, fn, "one_hot_features")


def largest_component(ds: LoadedDataset) -> LoadedDataset:
    """Keep the largest weakly connected component (node-level datasets); masks follow."""
    from torch_geometric.transforms import LargestConnectedComponents

    if ds.spec.level != "node":
        raise UserInputError("largest_component applies to node-level datasets only.")
    return _map_graphs(ds, LargestConnectedComponents(), "largest_component")


TRANSFORMS: Registry[Callable[[LoadedDataset], LoadedDataset]] = Registry("transform")
for _fn in (
    to_undirected,
    remove_self_loops,
    add_self_loops,
    normalize_features,
    degree_features,
    one_hot_features,
    largest_component,
):
    TRANSFORMS.register(_fn.__name__, _fn)


def apply_transforms(ds: LoadedDataset, names: list[str]) -> LoadedDataset:
    """Apply the named cleaning transforms in order (unknown names list the choices)."""
    for name in names:
        ds = TRANSFORMS.get(name)(ds)
    return ds
