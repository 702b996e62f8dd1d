"""The data doctor: statistics, cleaning transforms, and leak-free train/val/test splits.

Split contract (the trainer codes against it):

- `NodeSplit(train_mask, val_mask, test_mask)`: bool tensors `[num_nodes]`.
- `LinkSplit(train_data, val_data, test_data)`: `Data` objects from `RandomLinkSplit`.
  `train_data.edge_index` is the only graph message passing sees in training;
  `train_data.edge_label_index` holds the positive training edges only (all labels 1): sample
  fresh negatives every epoch. `val_data`/`test_data` hold positives and as many negatives
  (`edge_label` 1/0); their `edge_index` never contains their own positives.
- `GraphSplit(train_idx, val_idx, test_idx)`: LongTensor graph indices.

Every split is deterministic under `seed` and leaves the global RNG untouched.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import BaseModel, Field
from torch_geometric.data import Data, HeteroData

from graph_ml.datasets import LoadedDataset
from graph_ml.errors import UserInputError
from graph_ml.registry import Registry

SPLIT_KINDS = ("auto", "public", "random", "kfold", "link")
TASKS = ("node_classification", "link_prediction", "graph_classification")


# --- Statistics ----------------------------------------------------------------------------


class DegreeSummary(BaseModel):
    """Node degree distribution (out-degree over `edge_index`, self-loops included)."""

    min: int
    max: int
    mean: float
    median: float
    std: float


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
    advice: list[str] = Field(default_factory=list)


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
    if ds.is_hetero:
        stats.node_types = {t: int(ds.data[t].num_nodes) for t in ds.data.node_types}
        stats.edge_types = {
            "__".join(t): int(ds.data[t].edge_index.size(1)) for t in ds.data.edge_types
        }
    stats.advice = _advice(stats)
    return stats


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


def _advice(stats: DatasetStats) -> list[str]:
    advice = []
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
    return LoadedDataset(spec=ds.spec, graphs=graphs, target_node_type=ds.target_node_type)


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


# --- Splits ------------------------------------------------------------------------------------


class DataLeakageError(UserInputError):
    """A test (or validation) node, edge or graph is also used for training."""


@dataclass
class NodeSplit:
    train_mask: torch.Tensor  # bool [num_nodes]
    val_mask: torch.Tensor  # bool [num_nodes]
    test_mask: torch.Tensor  # bool [num_nodes]


@dataclass
class LinkSplit:
    train_data: Data
    val_data: Data
    test_data: Data


@dataclass
class GraphSplit:
    train_idx: torch.Tensor  # long [num_train_graphs]
    val_idx: torch.Tensor  # long [num_val_graphs]
    test_idx: torch.Tensor  # long [num_test_graphs]


Split = NodeSplit | LinkSplit | GraphSplit


def has_public_split(ds: LoadedDataset) -> bool:
    """True for node-level datasets that ship train, val and test masks (Planetoid, OGB)."""
    if ds.spec.level != "node" or ds.is_hetero:
        return False
    return all(ds.data.get(f"{name}_mask") is not None for name in ("train", "val", "test"))


def make_split(
    ds: LoadedDataset,
    task: str,
    kind: str = "auto",
    seed: int = 0,
    fold: int = 0,
    folds: int = 10,
    val_ratio: float = 0.1,
    test_ratio: float = 0.2,
) -> Split:
    """Split `ds` for `task`.

    Args:
        ds: the loaded dataset.
        task: "node_classification", "link_prediction" or "graph_classification".
        kind: "public" (the dataset's own masks), "random" (stratified by label), "kfold"
            (graph classification: stratified fold `fold` of `folds` is the test set, val is
            `val_ratio` of the rest), "link" (`RandomLinkSplit`), or "auto": public where the
            dataset has one, else random (nodes), kfold (graphs), link (links).
        seed: seeds the permutation; the same seed gives the same split.
        fold, folds: which k-fold split.
        val_ratio, test_ratio: shares for random and link splits (kfold: val share of the rest).

    Raises:
        UserInputError: an unknown task or kind, a kind that does not fit the task or dataset,
            or ratios that leave no training data.
    """
    _check_args(ds, task, kind, fold, folds, val_ratio, test_ratio)
    if kind == "auto":
        kind = _auto_kind(ds, task)
    if task == "link_prediction":
        if kind != "link":
            raise UserInputError(f"Link prediction uses split kind 'link', not {kind!r}.")
        return _link_split(ds, seed, val_ratio, test_ratio)
    if task == "node_classification":
        if kind == "public":
            if not has_public_split(ds):
                raise UserInputError(
                    f"Dataset {ds.spec.name!r} has no public split; use split 'random'."
                )
            data = ds.data
            return NodeSplit(data.train_mask.clone(), data.val_mask.clone(), data.test_mask.clone())
        if kind != "random":
            raise UserInputError(
                f"Node classification splits are 'public' or 'random', not {kind!r}."
            )
        return _random_node_split(ds, seed, val_ratio, test_ratio)
    if kind == "kfold":
        return _kfold_graph_split(ds, seed, fold, folds, val_ratio)
    if kind == "random":
        labels = _graph_labels(ds)
        train, val, test = _stratified_parts(labels, seed, val_ratio, test_ratio)
        return GraphSplit(train, val, test)
    raise UserInputError(f"Graph classification splits are 'kfold' or 'random', not {kind!r}.")


def _check_args(
    ds: LoadedDataset,
    task: str,
    kind: str,
    fold: int,
    folds: int,
    val_ratio: float,
    test_ratio: float,
) -> None:
    if task not in TASKS:
        raise UserInputError(f"Unknown task {task!r}; choose from: {', '.join(TASKS)}.")
    if kind not in SPLIT_KINDS:
        raise UserInputError(f"Unknown split kind {kind!r}; choose from: {', '.join(SPLIT_KINDS)}.")
    if task not in ds.spec.tasks:
        raise UserInputError(
            f"Dataset {ds.spec.name!r} supports {', '.join(ds.spec.tasks)}, not {task!r}."
        )
    if not (0.0 <= val_ratio < 1.0 and 0.0 < test_ratio < 1.0 and val_ratio + test_ratio < 1.0):
        raise UserInputError(
            f"val_ratio={val_ratio} and test_ratio={test_ratio} must be in [0, 1) with a sum "
            "below 1 so that some data is left for training (e.g. 0.1 and 0.2)."
        )
    if folds < 2 or not 0 <= fold < folds:
        raise UserInputError(
            f"fold={fold} of folds={folds} is impossible: folds must be >= 2 and fold in "
            f"0..{max(folds - 1, 0)}."
        )


def _auto_kind(ds: LoadedDataset, task: str) -> str:
    if task == "link_prediction":
        return "link"
    if task == "graph_classification":
        return "kfold"
    return "public" if has_public_split(ds) else "random"


def _node_labels(ds: LoadedDataset) -> torch.Tensor:
    store = ds.data[ds.target_node_type] if ds.is_hetero else ds.data
    y = store.get("y")
    if y is None:
        raise UserInputError(
            f"Dataset {ds.spec.name!r} has no node labels, so it cannot be split for node "
            "classification; add a label column or use link prediction."
        )
    return y.view(-1)


def _graph_labels(ds: LoadedDataset) -> torch.Tensor:
    if ds.spec.level != "graph" or any(g.get("y") is None for g in ds.graphs):
        raise UserInputError(f"Dataset {ds.spec.name!r} has no graph labels to split on.")
    return torch.cat([g.y.view(-1)[:1] for g in ds.graphs])


def _class_members(labels: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Indices of each class (labels < 0 mean unlabelled and are left out), shuffled by seed."""
    gen = torch.Generator().manual_seed(seed)
    members = []
    for value in torch.unique(labels[labels >= 0]).tolist():
        idx = (labels == value).nonzero(as_tuple=True)[0]
        members.append(idx[torch.randperm(idx.numel(), generator=gen)])
    return members


def _stratified_parts(
    labels: torch.Tensor, seed: int, val_ratio: float, test_ratio: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted (train, val, test) indices with each class split in the given shares."""
    train, val, test = [], [], []
    for idx in _class_members(labels, seed):
        n = idx.numel()
        n_test = round(n * test_ratio)
        n_val = round(n * val_ratio)
        while n - n_test - n_val < 1 and (n_test or n_val):  # every class keeps a train item
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        test.append(idx[:n_test])
        val.append(idx[n_test : n_test + n_val])
        train.append(idx[n_test + n_val :])

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.sort(torch.cat(parts))[0] if parts else torch.empty(0, dtype=torch.long)

    return cat(train), cat(val), cat(test)


def _random_node_split(
    ds: LoadedDataset, seed: int, val_ratio: float, test_ratio: float
) -> NodeSplit:
    labels = _node_labels(ds)
    train, val, test = _stratified_parts(labels, seed, val_ratio, test_ratio)
    masks = []
    for idx in (train, val, test):
        mask = torch.zeros(labels.numel(), dtype=torch.bool)
        mask[idx] = True
        masks.append(mask)
    return NodeSplit(*masks)


def _kfold_graph_split(
    ds: LoadedDataset, seed: int, fold: int, folds: int, val_ratio: float
) -> GraphSplit:
    """Stratified k-fold: each class is dealt round-robin into folds, as StratifiedKFold does."""
    labels = _graph_labels(ds)
    if labels.numel() < folds:
        raise UserInputError(
            f"Dataset {ds.spec.name!r} has {labels.numel()} graphs, fewer than folds={folds}."
        )
    fold_of = torch.full((labels.numel(),), -1, dtype=torch.long)
    offset = 0
    for idx in _class_members(labels, seed):
        fold_of[idx] = (torch.arange(idx.numel()) + offset) % folds
        offset += idx.numel()  # the next class continues where this one stopped: even folds
    test = (fold_of == fold).nonzero(as_tuple=True)[0]
    rest = ((fold_of != fold) & (fold_of >= 0)).nonzero(as_tuple=True)[0]
    rest_labels = labels[rest]
    train_pos, val_pos, _ = _stratified_parts(rest_labels, seed + 1, val_ratio, 0.0)
    return GraphSplit(rest[train_pos], rest[val_pos], test)


def _link_split(ds: LoadedDataset, seed: int, val_ratio: float, test_ratio: float) -> LinkSplit:
    from torch_geometric.transforms import RandomLinkSplit
    from torch_geometric.utils import is_undirected

    if ds.spec.level != "node" or ds.is_hetero:
        raise UserInputError(
            f"Link splits need one homogeneous graph; {ds.spec.name!r} is "
            f"{'heterogeneous' if ds.is_hetero else 'a set of graphs'}."
        )
    data = ds.data
    undirected = is_undirected(data.edge_index, num_nodes=data.num_nodes)
    transform = RandomLinkSplit(
        num_val=val_ratio,
        num_test=test_ratio,
        is_undirected=undirected,
        add_negative_train_samples=False,  # the trainer samples fresh negatives each epoch
        split_labels=False,
    )
    # RandomLinkSplit draws from torch's RNG and negative_sampling from Python's `random`:
    # seed both, then put both back so callers' streams are untouched.
    py_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            train_data, val_data, test_data = transform(data.clone())
    finally:
        random.setstate(py_state)
    for part in (train_data, val_data, test_data):
        part.is_undirected_split = undirected
    return LinkSplit(train_data, val_data, test_data)


def _overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[torch.isin(a, b)]


def check_no_leakage(split: Split) -> None:
    """Raise `DataLeakageError` if a test (or val) item is also used for training.

    Node splits: the masks must be disjoint. Graph splits: the index sets must be disjoint.
    Link splits: no positive val/test edge (or its reverse, for undirected splits) may be in
    a message-passing `edge_index` it could be read from, or among the training edges.
    """
    if isinstance(split, NodeSplit):
        sets = {"train": split.train_mask, "val": split.val_mask, "test": split.test_mask}
        for a, b in (("test", "train"), ("test", "val"), ("val", "train")):
            both = (sets[a] & sets[b]).nonzero(as_tuple=True)[0]
            if both.numel():
                raise DataLeakageError(_leak_message(f"{a} node", b, both))
        return
    if isinstance(split, GraphSplit):
        sets = {"train": split.train_idx, "val": split.val_idx, "test": split.test_idx}
        for a, b in (("test", "train"), ("test", "val"), ("val", "train")):
            both = _overlap(sets[a].view(-1), sets[b].view(-1))
            if both.numel():
                raise DataLeakageError(_leak_message(f"{a} graph", b, both))
        return
    if isinstance(split, LinkSplit):
        _check_link_leakage(split)
        return
    raise TypeError(f"check_no_leakage() takes a NodeSplit, LinkSplit or GraphSplit, not {split!r}")


def _leak_message(what: str, where: str, items: torch.Tensor) -> str:
    shown = ", ".join(str(v) for v in items[:5].tolist())
    more = f" and {items.numel() - 5} more" if items.numel() > 5 else ""
    return (
        f"Data leakage: {items.numel()} {what}(s) are also in the {where} set ({shown}{more}). "
        "Make the splits disjoint (make_split() does), or results will be optimistic."
    )


def _edge_keys(edge_index: torch.Tensor, num_nodes: int, both_ways: bool) -> torch.Tensor:
    keys = edge_index[0] * num_nodes + edge_index[1]
    if both_ways:
        keys = torch.cat([keys, edge_index[1] * num_nodes + edge_index[0]])
    return keys


def _positives(data: Data) -> torch.Tensor:
    label = data.get("edge_label")
    index = data.edge_label_index
    return index if label is None else index[:, label.view(-1) > 0]


def _check_link_leakage(split: LinkSplit) -> None:
    num_nodes = int(split.train_data.num_nodes)
    undirected = split.train_data.get("is_undirected_split")
    if undirected is None:  # a split made elsewhere: judge by its training graph, where a
        # planted leak would itself break exact symmetry, so "mostly symmetric" is the test
        edges = split.train_data.edge_index
        forward = _edge_keys(edges, num_nodes, False)
        backward = _edge_keys(edges.flip(0), num_nodes, False)
        undirected = bool(torch.isin(backward, forward).float().mean() >= 0.5)
    train_seen = torch.cat(
        [
            _edge_keys(split.train_data.edge_index, num_nodes, undirected),
            _edge_keys(_positives(split.train_data), num_nodes, undirected),
        ]
    )
    val_pos = _edge_keys(_positives(split.val_data), num_nodes, False)
    test_pos = _edge_keys(_positives(split.test_data), num_nodes, False)
    checks = (
        ("test edge", "training graph or training edges", test_pos, train_seen),
        (
            "test edge",
            "validation edges",
            test_pos,
            _edge_keys(_positives(split.val_data), num_nodes, undirected),
        ),
        (
            "test edge",
            "test message-passing graph",
            test_pos,
            _edge_keys(split.test_data.edge_index, num_nodes, undirected),
        ),
        ("val edge", "training graph or training edges", val_pos, train_seen),
        (
            "val edge",
            "validation message-passing graph",
            val_pos,
            _edge_keys(split.val_data.edge_index, num_nodes, undirected),
        ),
    )
    for what, where, keys, seen in checks:
        leaked = _overlap(keys, seen)
        if leaked.numel():
            pairs = torch.stack([leaked // num_nodes, leaked % num_nodes], dim=1)
            shown = [tuple(p) for p in pairs[:5].tolist()]
            raise DataLeakageError(
                f"Data leakage: {leaked.numel()} {what}(s) are also in the {where} "
                f"(e.g. {shown}). Build link splits with make_split(..., kind='link') "
                "(RandomLinkSplit), which removes them from message passing."
            )
