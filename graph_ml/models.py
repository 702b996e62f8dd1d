"""The model zoo: one encoder base class, eight families, three task heads.

Every family is a `GNNEncoder` that overrides one hook, `init_conv` (the shape of PyG's
`BasicGNN.init_conv`). The task heads wrap an encoder:

- node classification: the encoder itself, `out_channels = num_classes`, logits per node;
- link prediction: encoder -> node embeddings, then a dot-product or MLP decoder scores
  node pairs (negatives are sampled by the trainer);
- graph classification: encoder -> node embeddings -> sum/mean readout -> MLP -> logits.

What each family *is* (tasks, the parameters it takes, defaults, search space, paper) is
its `ModelSpec` in `graph_ml.catalogue`, which names the encoder class here; `build_model`
builds any registered spec, a plug-in's too.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import (
    APPNP,
    GATConv,
    GATv2Conv,
    GCNConv,
    GINConv,
    SAGEConv,
    SGConv,
    global_add_pool,
    global_mean_pool,
)

from core.errors import UserInputError
from graph_ml.catalogue import (  # noqa: F401 - re-exported: the zoo's facts live in the catalogue
    MODELS,
    TASKS,
    ModelSpec,
    Task,
    check_task,
    default_hparams,
    get_model,
    supported_tasks,
)

# Hyper-parameters that belong to the trainer, not to the module.
TRAINING_KEYS = (
    "lr",
    "weight_decay",
    "epochs",
    "batch_size",
    "out_channels",
    "patience",
    "scheduler",
)


class _Linear(nn.Linear):
    """A linear layer with the `(x, edge_index)` call signature of a graph convolution."""

    def forward(self, x: Tensor, edge_index: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return super().forward(x)


class FeatureDropout(nn.Module):
    """Dropout on input features that draws random numbers only for the non-zero entries.

    Same distribution as `F.dropout` (a zero stays zero whether or not it is dropped), but on
    sparse bag-of-words features (Cora: 1.3% non-zero) it avoids a Bernoulli draw per entry of
    the dense matrix, which was ~90% of a CPU GCN epoch. The non-zero positions are cached per
    input tensor, so full-batch training finds them once.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self._key: tuple | None = None
        self._index: Tensor | None = None  # [nnz] flat positions of the non-zeros

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.requires_grad or not x.is_contiguous():
            return F.dropout(x, self.p, training=True)
        key = (x.data_ptr(), tuple(x.shape), x._version, x.device)
        if key != self._key:
            flat = x.reshape(-1)
            self._index = flat.nonzero().view(-1)
            self._key = key
        index = self._index
        if index.numel() > x.numel() // 2:  # dense input: nothing to gain
            return F.dropout(x, self.p, training=True)
        values = x.reshape(-1)[index]
        keep = torch.rand(values.shape, device=x.device) >= self.p
        out = torch.zeros_like(x)
        out.view(-1)[index] = values * keep / (1.0 - self.p)
        return out


class GNNEncoder(nn.Module):
    """A stack of `num_layers` convolutions, `in -> hidden -> ... -> out`.

    Subclasses override `init_conv`. Between layers: activation then dropout; dropout is also
    applied to the input features (as in the GCN and GAT papers).

    Args:
        in_channels: input feature size.
        hidden_channels: width of each hidden layer (per head for attention models).
        out_channels: width of the last layer.
        num_layers: number of convolutions (>= 1).
        dropout: dropout probability on inputs and hidden activations.
        heads: attention heads of hidden layers (attention models only).
        act_last: apply the activation after the last layer (embeddings for readout).
        cached: cache the graph normalisation (only for a fixed, full-batch graph).
    """

    act: nn.Module = nn.ReLU()
    concat_heads = False  # hidden outputs are hidden_channels * heads wide
    supports_edge_weight = False  # its convolutions take edge weights (PyG's capability name)

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        heads: int = 1,
        act_last: bool = False,
        cached: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise UserInputError(f"num_layers must be at least 1, got {num_layers}.")
        self.heads, self.cached, self.kwargs = heads, cached, kwargs
        self.num_layers, self.dropout, self.act_last = num_layers, dropout, act_last
        self.input_dropout = FeatureDropout(dropout)
        width = hidden_channels * heads if self.concat_heads else hidden_channels
        self.out_channels = out_channels
        self.convs = nn.ModuleList()
        for i in range(num_layers):
            last = i == num_layers - 1
            c_in = in_channels if i == 0 else width
            self.convs.append(self.init_conv(c_in, out_channels if last else hidden_channels, last))

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        """Build one layer mapping `[N, in_channels]` to `[N, out_channels(*heads)]`."""
        raise NotImplementedError

    def propagate_out(
        self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
    ) -> Tensor:  # noqa: ARG002
        """Post-processing of the last layer's output (APPNP's propagation); identity here."""
        return x

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        x = self.input_dropout(x)  # [N, in]
        extra = (edge_weight,) if edge_weight is not None and self.supports_edge_weight else ()
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index, *extra)  # [N, hidden(*heads)] or [N, out] for the last
            if i < self.num_layers - 1 or self.act_last:
                x = self.act(x)
            if i < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=self.training)
        return self.propagate_out(x, edge_index, *extra)  # [N, out]


class GCN(GNNEncoder):
    supports_edge_weight = True

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        return GCNConv(in_channels, out_channels, cached=self.cached)


class GAT(GNNEncoder):
    """GAT (Velickovic et al. 2018): hidden heads concatenated, output heads averaged."""

    act = nn.ELU()
    concat_heads = True
    conv_cls: type = GATConv

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        heads = self.kwargs.get("output_heads", 1) if last else self.heads
        return self.conv_cls(
            in_channels, out_channels, heads=heads, concat=not last, dropout=self.dropout
        )


class GATv2(GAT):
    conv_cls = GATv2Conv


class LinearFirstSAGEConv(SAGEConv):
    """`SAGEConv` that applies the neighbour weight before averaging when that is narrower.

    `W (mean_j x_j) + b == mean_j (W x_j) + b` for mean and sum aggregation (an isolated node
    gets `b` either way), so the function is unchanged; but gathering `[E, out]` instead of
    `[E, in]` rows made a GraphSAGE epoch on Cora (1433 features, hidden 64) ~4x faster on CPU.
    """

    def forward(self, x: Tensor, edge_index: Tensor, size: Any = None) -> Tensor:
        lin = self.lin_l
        cheaper = isinstance(x, Tensor) and lin.out_channels < lin.in_channels
        if not cheaper or self.project or str(self.aggr) not in ("mean", "sum", "add"):
            return super().forward(x, edge_index, size)
        h = F.linear(x, lin.weight)  # [N, out]
        out = self.propagate(edge_index, x=(h, h), size=size)  # [N, out]
        if lin.bias is not None:
            out = out + lin.bias
        if self.root_weight:
            out = out + self.lin_r(x)
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out


class SAGE(GNNEncoder):
    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        return LinearFirstSAGEConv(in_channels, out_channels, aggr=self.kwargs.get("aggr", "mean"))


class GIN(GNNEncoder):
    """GIN (Xu et al. 2019): each layer is an MLP (Linear-BatchNorm-ReLU-Linear) over sums."""

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        mlp = nn.Sequential(
            nn.Linear(in_channels, out_channels),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(),
            nn.Linear(out_channels, out_channels),
        )
        return GINConv(mlp, train_eps=False)


class MLP(GNNEncoder):
    """No graph at all: the baseline that tells whether the edges help."""

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        return _Linear(in_channels, out_channels)


class SGC(GNNEncoder):
    """SGC (Wu et al. 2019): K propagation steps then one linear layer, no nonlinearity.

    `num_layers` is K, the number of hops; the model always has a single layer.
    """

    supports_edge_weight = True

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, **kw: Any):
        self.K = kw.pop("num_layers", 2)
        super().__init__(in_channels, hidden_channels, out_channels, num_layers=1, **kw)

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        return SGConv(in_channels, out_channels, K=self.K, cached=self.cached)


class APPNPNet(GNNEncoder):
    """APPNP (Klicpera et al. 2019): an MLP, then K steps of personalised-PageRank propagation."""

    supports_edge_weight = True  # in the propagation; its layers are linear

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.prop = APPNP(
            K=self.kwargs.get("K", 10), alpha=self.kwargs.get("alpha", 0.1), cached=self.cached
        )

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        return _Linear(in_channels, out_channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        h = super().forward(x, edge_index)  # linear layers: no edges, no weights
        return self.prop(h, edge_index, edge_weight)  # [N, out]

    def propagate_out(
        self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None
    ) -> Tensor:  # noqa: ARG002
        return x  # the propagation runs in forward, where the weights are


class LinkPredictor(nn.Module):
    """Encoder + decoder scoring node pairs; `forward` returns one logit per pair.

    Args:
        encoder: maps `(x [N, F], edge_index [2, E])` to embeddings `[N, D]`.
        decoder: "dot" (inner product, as in GAE) or "mlp" (MLP on the Hadamard product).
    """

    def __init__(self, encoder: GNNEncoder, decoder: str = "dot") -> None:
        super().__init__()
        if decoder not in ("dot", "mlp"):
            raise UserInputError(f"Unknown link decoder {decoder!r}; choose from: dot, mlp.")
        self.encoder, self.decoder = encoder, decoder
        dim = encoder.out_channels
        self.mlp = (
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))
            if decoder == "mlp"
            else None
        )

    @property
    def supports_edge_weight(self) -> bool:
        return self.encoder.supports_edge_weight

    def encode(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.encoder(x, edge_index, edge_weight)  # [N, D]

    def decode(self, z: Tensor, pairs: Tensor) -> Tensor:
        h = z[pairs[0]] * z[pairs[1]]  # [P, D]
        if self.mlp is None:
            return h.sum(dim=-1)  # [P]
        return self.mlp(h).view(-1)  # [P]

    def forward(self, x: Tensor, edge_index: Tensor, pairs: Tensor) -> Tensor:
        return self.decode(self.encode(x, edge_index), pairs)


class GraphClassifier(nn.Module):
    """Encoder -> readout pooling over each graph's nodes -> MLP -> class logits.

    Args:
        encoder: produces node embeddings `[N, hidden]` (built with `act_last=True`).
        num_classes: number of graph classes.
        pooling: "sum" (GIN's choice: injective on multisets) or "mean".
        dropout: dropout before the classifier's last layer.
    """

    def __init__(
        self, encoder: GNNEncoder, num_classes: int, pooling: str = "sum", dropout: float = 0.5
    ):
        super().__init__()
        pools = {"sum": global_add_pool, "mean": global_mean_pool}
        if pooling not in pools:
            raise UserInputError(f"Unknown pooling {pooling!r}; choose from: mean, sum.")
        self.encoder, self.pool, self.dropout = encoder, pools[pooling], dropout
        dim = encoder.out_channels
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, num_classes))

    @property
    def supports_edge_weight(self) -> bool:
        return self.encoder.supports_edge_weight

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Tensor | None = None,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        h = self.encoder(x, edge_index, edge_weight)  # [N, hidden]
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        g = self.pool(h, batch)  # [num_graphs, hidden]
        g = self.head[1](self.head[0](g))  # [num_graphs, hidden]
        g = F.dropout(g, self.dropout, training=self.training)
        return self.head[2](g)  # [num_graphs, num_classes]


def build_model(
    name: str,
    task: Task,
    in_channels: int,
    out_channels: int,
    **hparams: Any,
) -> nn.Module:
    """Build model `name` for `task`.

    Args:
        name: a registry name or alias ("gcn", "graphsage", ...).
        task: node_classification, link_prediction or graph_classification.
        in_channels: node feature size.
        out_channels: number of classes (node/graph classification) or the embedding size
            (link prediction).
        **hparams: hidden_channels, num_layers, dropout, heads, cached, pooling, decoder,
            output_heads, K, alpha, aggr; missing or None values take the model's defaults.

    Returns:
        A module: `(x, edge_index) -> [N, C]` for nodes, `(x, edge_index, pairs) -> [P]` for
        links, `(x, edge_index, batch) -> [G, C]` for graphs.

    Raises:
        UserInputError: unknown model, model/task mismatch, or an unusable value.
    """
    spec = check_task(name, task)
    if spec.requires_hetero or spec.uses_edge_types:
        raise UserInputError(
            f"Model {spec.name!r} reads node or edge types, so graph_ml.hetero builds it from "
            "the graph; train it with graph_ml.train (which passes the types)."
        )
    hp = {**spec.hparams(task), **{k: v for k, v in hparams.items() if v is not None}}
    for key in TRAINING_KEYS:
        hp.pop(key, None)
    decoder, pooling = hp.pop("decoder", "dot"), hp.pop("pooling", "sum")
    _check_ranges(hp)
    encoder_cls = spec.encoder_class()
    hidden = hp.pop("hidden_channels")
    if task == "node_classification":
        return encoder_cls(in_channels, hidden, out_channels, **hp)
    if task == "link_prediction":
        return LinkPredictor(encoder_cls(in_channels, hidden, out_channels, **hp), decoder)
    # Dropout only before the classifier (GIN paper): dropping one-hot atom types hurts.
    dropout = hp.pop("dropout", 0.5)
    encoder = encoder_cls(in_channels, hidden, hidden, act_last=True, dropout=0.0, **hp)
    return GraphClassifier(encoder, out_channels, pooling, dropout)


def _check_ranges(hp: dict[str, Any]) -> None:
    if not 0.0 <= hp.get("dropout", 0.0) < 1.0:
        raise UserInputError(f"dropout must be in [0, 1), got {hp['dropout']}.")
    for key in ("hidden_channels", "num_layers", "heads"):
        if key in hp and int(hp[key]) < 1:
            raise UserInputError(f"{key} must be a positive integer, got {hp[key]}.")
