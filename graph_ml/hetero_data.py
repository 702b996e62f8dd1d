"""A synthetic user-item graph whose signal only a typed model can read, and its flattening.

`planted_user_item()`: users belong to one of `classes` groups, items to one of `classes`
classes (the label to predict). Each user *buys* items mostly of its own group's class and
*views* items mostly of the class two steps away (`(group + 2) % classes`), as many views as
buys. Users' features show their group (a one-hot plus noise); items' features are noise with
a faint trace of their class.

So an item of class c is bought by group c and viewed by group c + 2. A model that keeps the
relations apart (R-GCN, HGT, `to_hetero`) reads c from its buyers. Flattened to one edge
type, buyers and viewers mix: classes c and c + 2 get the same neighbourhood, and a
homogeneous GNN cannot tell them apart (at best ~50% with 4 classes). An MLP sees the faint
feature trace only. `bench/hetero.py` measures the three.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

import torch
from torch_geometric.data import Data, HeteroData

from graph_ml.datasets import DatasetSpec, LoadedDataset

FEATURES = 8


def _pick(items_by_class: list[torch.Tensor], wanted: torch.Tensor, bias: float,
          gen: torch.Generator, num_items: int) -> torch.Tensor:  # fmt: skip
    """One item per entry of `wanted` (a class): of that class with prob `bias`, else any."""
    out = torch.randint(0, num_items, (wanted.numel(),), generator=gen)
    biased = torch.rand(wanted.numel(), generator=gen) < bias
    for c, members in enumerate(items_by_class):
        rows = (biased & (wanted == c)).nonzero().view(-1)
        out[rows] = members[torch.randint(0, members.numel(), (rows.numel(),), generator=gen)]
    return out


def planted_user_item(
    num_users: int = 400,
    num_items: int = 600,
    classes: int = 4,
    per_user: int = 6,
    bias: float = 0.9,
    item_signal: float = 0.3,
    seed: int = 0,
) -> LoadedDataset:
    """The planted user-item graph (see the module docstring), undirected with `rev_`
    relations, items labelled.

    Args:
        per_user: buys per user, and as many views.
        bias: share of a user's buys (views) that follow the planted rule.
        item_signal: scale of the class one-hot in items' features (noise has scale 1).
    """
    from torch_geometric.transforms import ToUndirected

    gen = torch.Generator().manual_seed(seed)
    group = torch.randint(0, classes, (num_users,), generator=gen)
    label = torch.randint(0, classes, (num_items,), generator=gen)
    by_class = [(label == c).nonzero().view(-1) for c in range(classes)]
    users = torch.arange(num_users).repeat_interleave(per_user)
    buys = _pick(by_class, group[users], bias, gen, num_items)
    views = _pick(by_class, (group[users] + 2) % classes, bias, gen, num_items)

    def features(n: int, cls: torch.Tensor, scale: float) -> torch.Tensor:
        noise = torch.randn(n, FEATURES, generator=gen)
        return noise + scale * torch.nn.functional.one_hot(cls, FEATURES).float()

    data = HeteroData()
    data["user"].x = features(num_users, group, 1.0)
    data["item"].x = features(num_items, label, item_signal)
    data["item"].y = label
    data["user", "buys", "item"].edge_index = torch.stack([users, buys]).unique(dim=1)
    data["user", "views", "item"].edge_index = torch.stack([users, views]).unique(dim=1)
    data = ToUndirected()(data)
    spec = DatasetSpec(
        name="planted-user-item",
        aliases=(),
        level="node",
        tasks=("node_classification", "link_prediction"),
        default_task="node_classification",
        source="synthetic",
        needs_download=False,
        raw_files=(),
        description=(
            f"Synthetic: {num_users} users buy items of their group's class and view items of "
            f"another; {num_items} items in {classes} classes (seed {seed})."
        ),
    )
    return LoadedDataset(spec=spec, graphs=[data], target_node_type="item")


def flatten(ds: LoadedDataset) -> LoadedDataset:
    """One node and one edge type: features of every type side by side (zero-padded) plus a
    one-hot of the node type; labels of the target type, -1 elsewhere."""
    data = ds.data
    types = data.node_types
    widths = [data[t].x.size(-1) if data[t].get("x") is not None else 0 for t in types]
    xs, ys = [], []
    for i, t in enumerate(types):
        n = data[t].num_nodes
        x = torch.zeros(n, sum(widths) + len(types))
        if widths[i]:
            start = sum(widths[:i])
            x[:, start : start + widths[i]] = data[t].x
        x[:, sum(widths) + i] = 1.0
        xs.append(x)
        y = data[t].get("y") if t == ds.target_node_type else None
        ys.append(y if y is not None else torch.full((n,), -1, dtype=torch.long))
    homogeneous = data.to_homogeneous(node_attrs=[], edge_attrs=[], add_node_type=False,
                                      add_edge_type=False)  # fmt: skip
    graph = Data(x=torch.cat(xs), y=torch.cat(ys), edge_index=homogeneous.edge_index)
    spec = DatasetSpec(**{**ds.spec.__dict__, "name": ds.spec.name + "-flat"})
    return LoadedDataset(spec=spec, graphs=[graph])
