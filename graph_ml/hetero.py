"""Typed graphs: R-GCN, HGT, `to_hetero` of the zoo's SAGE and GAT, and an MLP baseline.

Two kinds of typed graph are handled:

- a `HeteroData` (several node types, several relations): node classification of one node
  type and link prediction of one relation (`HeteroNodeRunner`, `HeteroLinkRunner`). Every
  model starts with `TypedInput`: a linear layer per node type that has features, a
  learned embedding per node for types that have none, so all types meet at one width;
- a homogeneous graph whose edges carry a type (`edge_type`, or one-hot `edge_attr` such as
  MUTAG's bond types): R-GCN uses the types as relations, for node and graph classification
  (`relations()` finds them; the trainer's runners pass `edge_type` to models whose class
  says `takes_edge_type`).

Which models have a typed version is the catalogue's fact (`ModelSpec.supports_hetero`,
`requires_hetero`, `uses_edge_types`); this module builds them.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from core.errors import UserInputError

EdgeType = tuple[str, str, str]


def hetero_models(task: str) -> list[str]:
    """The catalogue's models with a heterogeneous version that support `task`."""
    from graph_ml.catalogue import MODELS

    return [n for n, s in MODELS.items() if s.supports_hetero and task in s.tasks]


def check_hetero(name: str, task: str, ds: Any):
    """The catalogue spec of model `name` for `task` on `ds` (a `HeteroData`, or a graph
    with edge types for a relational model), after checking it fits.

    Raises:
        UserInputError: a model without a version for this kind of graph, or one that does
            not support the task, naming the models that do.
    """
    from graph_ml.catalogue import check_task

    spec = check_task(name, task)
    if ds.is_hetero and not spec.supports_hetero:
        raise UserInputError(
            f"Model {spec.name!r} has no version for a heterogeneous graph ({ds.spec.name!r}); "
            f"for {task} choose from: {', '.join(hetero_models(task))}."
        )
    if not ds.is_hetero and spec.requires_hetero:
        raise UserInputError(
            f"Model {spec.name!r} needs a heterogeneous graph (typed node and edge files); "
            f"{ds.spec.name!r} has one node and one edge type. Train gcn, sage or gat, or rgcn "
            "if its edges have types."
        )
    return spec


def relations(graphs: list[Any]) -> tuple[list[Any], int]:
    """The graphs with `edge_type` set (from one-hot `edge_attr` when absent), and the
    number of relations.

    Raises:
        UserInputError: the graphs carry no edge types.
    """
    out = []
    for graph in graphs:
        if graph.get("edge_type") is None:
            attr = graph.get("edge_attr")
            one_hot = attr is not None and attr.dim() == 2 and bool((attr.sum(-1) == 1).all())
            if not one_hot:
                raise UserInputError(
                    "R-GCN needs edge types: a 'type' column in the edge file, or one-hot "
                    "edge attributes (MUTAG's bond types). Fix: add them, or train gcn/sage."
                )
            graph = graph.clone()
            graph.edge_type = attr.argmax(-1)
        out.append(graph)
    count = max(int(g.edge_type.max()) + 1 if g.edge_type.numel() else 1 for g in out)
    if graphs and graphs[0].get("edge_attr") is not None and graphs[0].edge_attr.dim() == 2:
        count = max(count, int(graphs[0].edge_attr.size(-1)))
    return out, count


# --- Models ---------------------------------------------------------------------------------


class TypedInput(nn.Module):
    """Each node type to `[N_t, hidden]`: a linear layer on its features, or, for a type
    without features, a learned embedding per node (transductive)."""

    def __init__(self, data: HeteroData, hidden: int) -> None:
        super().__init__()
        self.linears, self.embeddings = nn.ModuleDict(), nn.ModuleDict()
        for node_type in data.node_types:
            x = data[node_type].get("x")
            if x is None:
                self.embeddings[node_type] = nn.Embedding(data[node_type].num_nodes, hidden)
            else:
                self.linears[node_type] = nn.Linear(x.size(-1), hidden)

    def forward(self, x_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {t: lin(x_dict[t]) for t, lin in self.linears.items()}
        out.update({t: emb.weight for t, emb in self.embeddings.items()})
        return out  # {type: [N_t, hidden]}


class RGCNStack(nn.Module):
    """`num_layers` RGCNConv layers on one homogeneous graph with `edge_type`."""

    takes_edge_type = True

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_relations: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        num_bases: int | None = None,
        act_last: bool = False,
        aggr: str = "mean",
    ) -> None:
        from torch_geometric.nn import RGCNConv

        super().__init__()
        self.dropout, self.act_last, self.out_channels = dropout, act_last, out_channels
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(
            RGCNConv(a, b, num_relations, num_bases=num_bases, aggr=aggr)
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index, edge_type)  # [N, hidden] or [N, out]
            if i < len(self.convs) - 1 or self.act_last:
                x = x.relu()
            if i < len(self.convs) - 1:
                x = F.dropout(x, self.dropout, training=self.training)
        return x


class HeteroRGCN(nn.Module):
    """R-GCN on a `HeteroData`: typed inputs, stacked into one graph whose relations are
    the edge types, and split back by node type."""

    def __init__(self, data: HeteroData, hidden: int, out: int, num_layers: int,
                 dropout: float, num_bases: int | None = None) -> None:  # fmt: skip
        super().__init__()
        self.node_types, self.edge_types = list(data.node_types), list(data.edge_types)
        self.input = TypedInput(data, hidden)
        self.dropout = dropout
        self.stack = RGCNStack(hidden, hidden, out, len(self.edge_types), num_layers, dropout,
                               num_bases)  # fmt: skip

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict) -> dict[str, Tensor]:
        h_dict = self.input(x_dict)
        sizes = [h_dict[t].size(0) for t in self.node_types]
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0).tolist()
        start = dict(zip(self.node_types, offsets, strict=True))
        edges, types = [], []
        for index, (src, rel, dst) in enumerate(self.edge_types):
            if (src, rel, dst) not in edge_index_dict:
                continue
            ei = edge_index_dict[src, rel, dst]
            offset = torch.tensor([[start[src]], [start[dst]]], device=ei.device)
            edges.append(ei + offset)
            types.append(torch.full((ei.size(1),), index, dtype=torch.long, device=ei.device))
        h = torch.cat([h_dict[t] for t in self.node_types])  # [sum N_t, hidden]
        h = F.dropout(h.relu(), self.dropout, training=self.training)
        h = self.stack(h, torch.cat(edges, dim=1), torch.cat(types))
        return dict(zip(self.node_types, h.split(sizes), strict=True))


class HGT(nn.Module):
    """Heterogeneous Graph Transformer layers after typed inputs, a linear head per type."""

    def __init__(self, data: HeteroData, hidden: int, out: int, num_layers: int,
                 dropout: float, heads: int = 2) -> None:  # fmt: skip
        from torch_geometric.nn import HGTConv

        super().__init__()
        if hidden % heads:
            raise UserInputError(
                f"HGT needs hidden_channels ({hidden}) divisible by heads ({heads})."
            )
        self.input, self.dropout = TypedInput(data, hidden), dropout
        self.convs = nn.ModuleList(
            HGTConv(hidden, hidden, data.metadata(), heads) for _ in range(num_layers)
        )
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, out) for t in data.node_types})

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict) -> dict[str, Tensor]:
        h = {
            t: F.dropout(v.relu(), self.dropout, self.training)
            for t, v in self.input(x_dict).items()
        }
        for conv in self.convs:
            new = conv(h, edge_index_dict)
            h = {t: F.dropout(new[t], self.dropout, self.training) if new.get(t) is not None
                 else h[t] for t in h}  # fmt: skip
        return {t: self.heads[t](v) for t, v in h.items()}


class _Homogeneous(nn.Module):
    """A plain `(x, edge_index)` stack, traceable by torch.fx, for `to_hetero`."""

    def __init__(self, kind: str, hidden: int, out: int, num_layers: int, dropout: float,
                 heads: int, aggr: str) -> None:  # fmt: skip
        from torch_geometric.nn import GATConv, SAGEConv

        super().__init__()
        self.convs, self.drops = nn.ModuleList(), nn.ModuleList()
        width = hidden
        for i in range(num_layers):
            last = i == num_layers - 1
            size = out if last else hidden
            if kind == "gat":
                conv = GATConv((width, width), size, heads=1 if last else heads,
                               concat=not last, add_self_loops=False)  # fmt: skip
                width = size if last else size * heads
            else:
                conv = SAGEConv((width, width), size, aggr=aggr)
                width = size
            self.convs.append(conv)
            self.drops.append(nn.Dropout(dropout))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for conv, drop in zip(self.convs[:-1], self.drops[:-1], strict=True):
            x = drop(conv(x, edge_index).relu())
        return self.convs[-1](x, edge_index)


class ToHetero(nn.Module):
    """Typed inputs, then the zoo's SAGE or GAT turned heterogeneous by `to_hetero`
    (one copy of each layer per relation, summed at each destination type)."""

    def __init__(self, data: HeteroData, kind: str, hidden: int, out: int, num_layers: int,
                 dropout: float, heads: int = 1, aggr: str = "mean") -> None:  # fmt: skip
        from torch_geometric.nn import to_hetero

        super().__init__()
        self.input, self.dropout = TypedInput(data, hidden), dropout
        base = _Homogeneous(kind, hidden, out, num_layers, dropout, heads, aggr)
        self.body = to_hetero(base, data.metadata(), aggr="sum")

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict) -> dict[str, Tensor]:
        h = {
            t: F.dropout(v.relu(), self.dropout, self.training)
            for t, v in self.input(x_dict).items()
        }
        return self.body(h, edge_index_dict)


class TypedMLP(nn.Module):
    """Typed inputs and an MLP per type; edges are ignored."""

    def __init__(self, data: HeteroData, hidden: int, out: int, num_layers: int,
                 dropout: float) -> None:  # fmt: skip
        super().__init__()
        self.input, self.dropout = TypedInput(data, hidden), dropout
        layers = [nn.Linear(hidden, hidden) for _ in range(num_layers - 1)]
        self.hidden = nn.ModuleList(layers)
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, out) for t in data.node_types})

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict) -> dict[str, Tensor]:
        out = {}
        for t, h in self.input(x_dict).items():
            h = F.dropout(h.relu(), self.dropout, self.training)
            for layer in self.hidden:
                h = F.dropout(layer(h).relu(), self.dropout, self.training)
            out[t] = self.heads[t](h)
        return out


def build_hetero_model(name: str, data: HeteroData, out: int, **hp: Any) -> nn.Module:
    """Model `name` for `data`: `(x_dict, edge_index_dict) -> {type: [N_t, out]}`."""
    hidden, layers, dropout = hp["hidden_channels"], hp["num_layers"], hp["dropout"]
    if name == "rgcn":
        return HeteroRGCN(data, hidden, out, layers, dropout, hp.get("num_bases"))
    if name == "hgt":
        return HGT(data, hidden, out, layers, dropout, hp.get("heads") or 2)
    if name in ("sage", "gat"):
        return ToHetero(data, name, hidden, out, layers, dropout, hp.get("heads") or 1,
                        hp.get("aggr") or "mean")  # fmt: skip
    return TypedMLP(data, hidden, out, layers, dropout)


class RelationalGraphClassifier(nn.Module):
    """R-GCN node embeddings -> sum/mean readout -> MLP: graph classification with the
    edge types as relations (MUTAG's bond types)."""

    takes_edge_type = True

    def __init__(self, in_channels: int, num_classes: int, num_relations: int, hidden: int,
                 num_layers: int, dropout: float, pooling: str = "sum") -> None:  # fmt: skip
        from torch_geometric.nn import global_add_pool, global_mean_pool

        super().__init__()
        # Sum over neighbours, as GIN: molecules are told apart by how many bonds of a kind.
        self.encoder = RGCNStack(in_channels, hidden, hidden, num_relations, num_layers, 0.0,
                                 act_last=True, aggr="add")  # fmt: skip
        self.pool = {"sum": global_add_pool, "mean": global_mean_pool}[pooling]
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))  # fmt: skip

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None,
                edge_type: Tensor | None = None) -> Tensor:  # fmt: skip
        h = self.encoder(x, edge_index, edge_type)  # [N, hidden]
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        return self.head(self.pool(h, batch))  # [G, C]


class RelationalNodeClassifier(RGCNStack):
    """R-GCN for node classification on a homogeneous graph with edge types."""
