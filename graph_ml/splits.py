"""Leak-free train/val/test splits (re-exported by `graph_ml.preprocess`).

Split contract (the trainer codes against it):

- `NodeSplit(train_mask, val_mask, test_mask)`: bool tensors `[num_nodes]`.
- `LinkSplit(train_data, val_data, test_data)`: `Data` objects from `RandomLinkSplit`.
  `train_data.edge_index` is the only graph message passing sees in training;
  `train_data.edge_label_index` holds the positive training edges only (all labels 1): sample
  fresh negatives every epoch. `val_data`/`test_data` hold positives and as many negatives
  (`edge_label` 1/0); their `edge_index` never contains their own positives.
- `GraphSplit(train_idx, val_idx, test_idx)`: LongTensor graph indices.

`make_split()` builds one; `check_no_leakage()` raises `DataLeakageError` when a test (or
validation) node, edge or graph is also used for training. Every split is deterministic under
`seed` and leaves the global RNG untouched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from core.errors import UserInputError
from graph_ml.datasets import LoadedDataset

SPLIT_KINDS = ("auto", "public", "random", "kfold", "link")
TASKS = ("node_classification", "link_prediction", "graph_classification")


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
