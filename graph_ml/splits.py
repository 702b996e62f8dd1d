"""Leak-free train/val/test splits (re-exported by `graph_ml.preprocess`).

Split contract (the trainer codes against it):

- `NodeSplit(train_mask, val_mask, test_mask)`: bool tensors `[num_nodes]`.
- `LinkSplit(train_data, val_data, test_data)`: `Data` objects from `RandomLinkSplit`.
  `train_data.edge_index` is the only graph message passing sees in training;
  `train_data.edge_label_index` holds the positive training edges only (all labels 1): sample
  fresh negatives every epoch. `val_data`/`test_data` hold positives and as many negatives
  (`edge_label` 1/0); their `edge_index` never contains their own positives.
- `GraphSplit(train_idx, val_idx, test_idx)`: LongTensor graph indices.

Every split has `sizes` (train/val/test counts of nodes, edges or graphs) and `notes`: one
sentence per adaptation made for a small dataset (a set the shares would leave empty gets
one item from training), for explanations to repeat. A dataset too small to give each set
one item is refused with the minimum it needs.

Heterogeneous graphs: node splits are over `ds.target_node_type`; a link split is over one
relation (`edge_type`, e.g. "user__buys__item" or "buys"), with its reverse relation (added
by the importer) removed from message passing alongside it. `LinkSplit.edge_type` names it.

`make_split()` builds one; `check_no_leakage()` raises `DataLeakageError` when a test (or
validation) node, edge or graph is also used for training. Every split is deterministic under
`seed` and leaves the global RNG untouched.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

import random
from dataclasses import dataclass, field

import torch
from torch_geometric.data import Data, HeteroData

from core.errors import UserInputError
from graph_ml.datasets import LoadedDataset

SPLIT_KINDS = ("auto", "public", "random", "kfold", "link")
TASKS = ("node_classification", "link_prediction", "graph_classification")


# --- Splits ------------------------------------------------------------------------------------


class DataLeakageError(UserInputError):
    """A test (or validation) node, edge or graph is also used for training."""


PARTS = ("train", "val", "test")
MIN_PER_SET = 1  # every set gets at least one item, or the dataset is refused


@dataclass
class NodeSplit:
    train_mask: torch.Tensor  # bool [num_nodes]
    val_mask: torch.Tensor  # bool [num_nodes]
    test_mask: torch.Tensor  # bool [num_nodes]
    notes: list[str] = field(default_factory=list)

    @property
    def sizes(self) -> dict[str, int]:
        """Nodes in each set."""
        return {k: int(getattr(self, f"{k}_mask").sum()) for k in PARTS}


@dataclass
class LinkSplit:
    train_data: Data | HeteroData
    val_data: Data | HeteroData
    test_data: Data | HeteroData
    notes: list[str] = field(default_factory=list)
    edge_type: tuple[str, str, str] | None = None  # the predicted relation (heterogeneous)

    def store(self, part: str):
        """The edge store of the predicted relation in `part` (the graph itself if
        homogeneous)."""
        data = getattr(self, f"{part}_data")
        return data[self.edge_type] if self.edge_type is not None else data

    @property
    def sizes(self) -> dict[str, int]:
        """Positive edges to predict in each set (val/test also hold as many negatives)."""
        return {k: int(_positives(self.store(k)).size(1)) for k in PARTS}


@dataclass
class GraphSplit:
    train_idx: torch.Tensor  # long [num_train_graphs]
    val_idx: torch.Tensor  # long [num_val_graphs]
    test_idx: torch.Tensor  # long [num_test_graphs]
    notes: list[str] = field(default_factory=list)

    @property
    def sizes(self) -> dict[str, int]:
        """Graphs in each set."""
        return {k: int(getattr(self, f"{k}_idx").numel()) for k in PARTS}


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
    edge_type: str | tuple[str, str, str] | None = None,
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
        edge_type: the relation to predict in a heterogeneous graph (None: its only one).

    Raises:
        UserInputError: an unknown task or kind, a kind that does not fit the task or dataset,
            ratios that leave no training data, or a dataset too small for three sets.
    """
    _check_args(ds, task, kind, fold, folds, val_ratio, test_ratio)
    if kind == "auto":
        kind = _auto_kind(ds, task)
    if task == "link_prediction":
        if kind != "link":
            raise UserInputError(f"Link prediction uses split kind 'link', not {kind!r}.")
        return _link_split(ds, seed, val_ratio, test_ratio, edge_type)
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
        parts, notes = _stratified_parts(labels, seed, val_ratio, test_ratio, "graphs")
        return GraphSplit(*parts, notes=notes)
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
    labels: torch.Tensor, seed: int, val_ratio: float, test_ratio: float, what: str
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], list[str]]:
    """Sorted (train, val, test) indices with each class split in the given shares, and
    the notes of what was adapted: a set with a positive share that rounds to nothing gets
    one item from the largest training class."""
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
    notes = _fill_empty_sets(train, val, test, val_ratio, test_ratio, what)

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.sort(torch.cat(parts))[0] if parts else torch.empty(0, dtype=torch.long)

    return (cat(train), cat(val), cat(test)), notes


def _fill_empty_sets(
    train: list[torch.Tensor],
    val: list[torch.Tensor],
    test: list[torch.Tensor],
    val_ratio: float,
    test_ratio: float,
    what: str,
) -> list[str]:
    """Move one training item (per class lists, edited in place) into each empty set."""
    total = sum(t.numel() for t in train + val + test)
    wanted = [(name, parts) for name, parts, ratio in (("test", test, test_ratio),
              ("validation", val, val_ratio)) if ratio > 0]  # fmt: skip
    empty = [(name, parts) for name, parts in wanted if not sum(p.numel() for p in parts)]
    if not empty:
        return []
    needed = 1 + len(wanted)
    if total < needed:
        sets = " and ".join(["training", *(name for name, _ in wanted)])
        raise UserInputError(
            f"{total} labelled {what} are too few to split: {sets} need at least one each "
            f"({needed}). Fix: label more {what}, or lower the shares to 0 where allowed."
        )
    for _, parts in empty:
        if sum(t.numel() for t in train) < 2:
            break  # training keeps its last item
        largest = max(range(len(train)), key=lambda c: train[c].numel())
        parts[largest] = torch.cat([parts[largest], train[largest][:1]])
        train[largest] = train[largest][1:]
    sizes = [sum(p.numel() for p in parts) for parts in (train, val, test)]
    moved = " and ".join(name for name, _ in empty)
    return [
        f"With {total} labelled {what}, the {val_ratio:.0%} / {test_ratio:.0%} shares left the "
        f"{moved} {'sets' if len(empty) > 1 else 'set'} empty; one {what[:-1]} was moved into "
        f"{'each' if len(empty) > 1 else 'it'} from training "
        f"(train / val / test: {sizes[0]} / {sizes[1]} / {sizes[2]})."
    ]


def _random_node_split(
    ds: LoadedDataset, seed: int, val_ratio: float, test_ratio: float
) -> NodeSplit:
    labels = _node_labels(ds)
    parts, notes = _stratified_parts(labels, seed, val_ratio, test_ratio, "nodes")
    masks = []
    for idx in parts:
        mask = torch.zeros(labels.numel(), dtype=torch.bool)
        mask[idx] = True
        masks.append(mask)
    return NodeSplit(*masks, notes=notes)


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
    (train_pos, val_pos, _), notes = _stratified_parts(
        rest_labels, seed + 1, val_ratio, 0.0, "graphs"
    )
    return GraphSplit(rest[train_pos], rest[val_pos], test, notes=notes)


def _relation(data: HeteroData, edge_type: str | tuple[str, str, str] | None):
    """(relation to predict, its reverse or None) of a heterogeneous graph."""
    forward = [t for t in data.edge_types if not t[1].startswith("rev_")]
    if edge_type is None:
        if len(forward) != 1:
            names = ", ".join("__".join(t) for t in forward)
            raise UserInputError(
                f"Which relation should link prediction predict? The graph has {names}. Fix: "
                "name one (edge_type, e.g. --edge-type user__buys__item)."
            )
        chosen = forward[0]
    else:
        parts = tuple(edge_type.split("__")) if isinstance(edge_type, str) else tuple(edge_type)
        matches = [
            t for t in data.edge_types if t == parts or (len(parts) == 1 and t[1] == parts[0])
        ]
        if len(matches) != 1:
            names = ", ".join("__".join(t) for t in forward)
            raise UserInputError(
                f"Relation {edge_type!r} is {'ambiguous' if matches else 'not in the graph'}; "
                f"choose from: {names}."
            )
        chosen = matches[0]
    src, rel, dst = chosen
    reverse = (dst, f"rev_{rel}", src)
    if src == dst:  # a same-type relation was made symmetric in place, not reversed
        return chosen, None
    return chosen, reverse if reverse in data.edge_types else None


def _link_counts(num_edges: int, val_ratio: float, test_ratio: float) -> tuple[int, int, list[str]]:
    """Validation and test edge counts; one each where the shares round to none."""
    num_val, num_test = int(val_ratio * num_edges), int(test_ratio * num_edges)
    notes = []
    if (val_ratio > 0 and num_val == 0) or num_test == 0:
        needed = 2 + (val_ratio > 0)
        if num_edges < needed:
            raise UserInputError(
                f"{num_edges} edge(s) are too few for link prediction: training, validation "
                f"and test need at least one each ({needed}). Fix: add edges, or train node "
                "classification instead."
            )
        num_val, num_test = max(num_val, int(val_ratio > 0)), max(num_test, 1)
        notes.append(
            f"With {num_edges} edges, the {val_ratio:.0%} / {test_ratio:.0%} shares left a set "
            f"empty; validation and test get {num_val} and {num_test} edge(s), training "
            f"{num_edges - num_val - num_test}."
        )
    return num_val, num_test, notes


def _link_split(
    ds: LoadedDataset,
    seed: int,
    val_ratio: float,
    test_ratio: float,
    edge_type: str | tuple[str, str, str] | None = None,
) -> LinkSplit:
    from torch_geometric.transforms import RandomLinkSplit
    from torch_geometric.utils import is_undirected

    if ds.spec.level != "node":
        raise UserInputError(f"Link splits need one graph; {ds.spec.name!r} is a set of graphs.")
    data = ds.data
    kwargs: dict = {}
    if ds.is_hetero:
        chosen, reverse = _relation(data, edge_type)
        store = data[chosen]
        num_nodes = max(data[chosen[0]].num_nodes, data[chosen[2]].num_nodes)
        undirected = chosen[0] == chosen[2] and is_undirected(store.edge_index, num_nodes=num_nodes)
        kwargs = {"edge_types": [chosen], "rev_edge_types": [reverse] if reverse else None}
    else:
        chosen, store = None, data
        undirected = is_undirected(data.edge_index, num_nodes=data.num_nodes)
    num_edges = store.edge_index.size(1) // (2 if undirected else 1)
    num_val, num_test, notes = _link_counts(num_edges, val_ratio, test_ratio)
    transform = RandomLinkSplit(
        num_val=num_val,
        num_test=num_test,
        is_undirected=undirected,
        add_negative_train_samples=False,  # the trainer samples fresh negatives each epoch
        split_labels=False,
        **kwargs,
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
        (part[chosen] if chosen else part).is_undirected_split = undirected
    return LinkSplit(train_data, val_data, test_data, notes=notes, edge_type=chosen)


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


def _message_edges(split: LinkSplit, part: str) -> torch.Tensor:
    """`[2, E]` edges message passing reads in `part`, in the predicted relation's direction:
    the relation itself and, for a heterogeneous graph, its reverse relation flipped back."""
    data = getattr(split, f"{part}_data")
    if split.edge_type is None:
        return data.edge_index
    src, rel, dst = split.edge_type
    edges = [data[split.edge_type].edge_index]
    if (dst, f"rev_{rel}", src) in data.edge_types:
        edges.append(data[dst, f"rev_{rel}", src].edge_index.flip(0))
    return torch.cat(edges, dim=1)


def _check_link_leakage(split: LinkSplit) -> None:
    train = split.store("train")
    if split.edge_type is None:
        num_nodes = int(split.train_data.num_nodes)
    else:
        src, _, dst = split.edge_type
        num_nodes = max(int(split.train_data[src].num_nodes), int(split.train_data[dst].num_nodes))
    undirected = train.get("is_undirected_split")
    if undirected is None:  # a split made elsewhere: judge by its training graph, where a
        # planted leak would itself break exact symmetry, so "mostly symmetric" is the test
        edges = train.edge_index
        forward = _edge_keys(edges, num_nodes, False)
        backward = _edge_keys(edges.flip(0), num_nodes, False)
        undirected = bool(torch.isin(backward, forward).float().mean() >= 0.5)
    train_seen = torch.cat(
        [
            _edge_keys(_message_edges(split, "train"), num_nodes, undirected),
            _edge_keys(_positives(train), num_nodes, undirected),
        ]
    )
    val_pos = _edge_keys(_positives(split.store("val")), num_nodes, False)
    test_pos = _edge_keys(_positives(split.store("test")), num_nodes, False)
    checks = (
        ("test edge", "training graph or training edges", test_pos, train_seen),
        (
            "test edge",
            "validation edges",
            test_pos,
            _edge_keys(_positives(split.store("val")), num_nodes, undirected),
        ),
        (
            "test edge",
            "test message-passing graph",
            test_pos,
            _edge_keys(_message_edges(split, "test"), num_nodes, undirected),
        ),
        ("val edge", "training graph or training edges", val_pos, train_seen),
        (
            "val edge",
            "validation message-passing graph",
            val_pos,
            _edge_keys(_message_edges(split, "val"), num_nodes, undirected),
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
