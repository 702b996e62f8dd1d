"""Graph structure enhancement: transforms between cleaning and model search.

Each `Enhancement` is a named option of training (`TrainConfig.enhance`) and a dimension of
tuning's search space (`enhance`), built on PyG's transforms where they exist:

- `feature_propagation`: fill missing (NaN) features from the neighbours (Rossi et al. 2022,
  `FeaturePropagation`, 40 iterations);
- `rw_pe` / `lap_pe`: random-walk (16 steps, Dwivedi et al. 2022) or Laplacian eigenvector
  (k=8) positional encodings, appended to the node features;
- `gdc`: graph diffusion convolution (Klicpera et al. 2019): personalised-PageRank diffusion
  (alpha 0.05), top-128 neighbours per node, as weighted edges;
- `self_loops`: one self-loop per node;
- `virtual_node`: one extra node joined to every node (Gilmer et al. 2017), unlabelled;
- `drop_edge`: during training only, a fresh 20% of the edges are dropped every epoch
  (Rong et al. 2020); evaluation sees the whole graph.

They are applied in that order, whatever order they are named in: features first, then the
encodings of the original structure, then the structure itself. For node and graph
classification they are applied to every graph before splitting (they read no labels); for
link prediction they are applied to each split's message-passing graph separately, so no
held-out edge shapes a graph the model reads.
"""

from __future__ import annotations

import graph_ml._pyg  # noqa: F401  (first: PyG without its transformers glue)

# isort: split

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from core.errors import UserInputError
from core.registry import Registry

GDC_EXACT_MAX_NODES = 5_000  # exact diffusion inverts a dense N x N matrix (200 MB at 5k)
DROP_EDGE_P = 0.2  # within the 0.1-0.5 the DropEdge paper found best for GCNs
PE_WALK_LENGTH, PE_LAPLACIAN_K = 16, 8


@dataclass(frozen=True)
class Enhancement:
    """One structure enhancement.

    Attributes:
        name: the option's name.
        description: one line for listings and explanations.
        paper: the reference its settings come from.
        apply: `Data -> Data` for transforms applied before training; None for the
            training-time ones (drop_edge).
    """

    name: str
    description: str
    paper: str
    apply: Callable[[Data], Data] | None = None

    @property
    def during_training(self) -> bool:
        return self.apply is None


def _feature_propagation(data: Data) -> Data:
    from torch_geometric.transforms import FeaturePropagation

    x = data.get("x")
    if x is None or not torch.isnan(x).any():
        return data  # nothing missing: the step is a no-op, said in the notes
    return FeaturePropagation(missing_mask=torch.isnan(x), num_iterations=40)(data)


def _append_x(data: Data, extra: torch.Tensor) -> Data:
    x = data.get("x")
    data.x = extra if x is None else torch.cat([x.float(), extra], dim=-1)
    return data


def _rw_pe(data: Data) -> Data:
    from torch_geometric.transforms import AddRandomWalkPE

    pe = AddRandomWalkPE(PE_WALK_LENGTH, attr_name="pe")(data.clone()).pe
    return _append_x(data, pe)


def _lap_pe(data: Data) -> Data:
    from torch_geometric.transforms import AddLaplacianEigenvectorPE

    k = min(PE_LAPLACIAN_K, int(data.num_nodes) - 2)
    if k < 1:
        raise UserInputError(
            f"lap_pe needs at least 3 nodes per graph; a graph here has {data.num_nodes}. "
            "Fix: use rw_pe."
        )
    pe = AddLaplacianEigenvectorPE(k, attr_name="pe", is_undirected=True)(data.clone()).pe
    if k < PE_LAPLACIAN_K:  # small graphs: pad, so every graph has the same width
        pe = torch.cat([pe, pe.new_zeros(pe.size(0), PE_LAPLACIAN_K - k)], dim=-1)
    return _append_x(data, pe)


def _gdc(data: Data) -> Data:
    from torch_geometric.transforms import GDC

    exact = int(data.num_nodes) <= GDC_EXACT_MAX_NODES
    sparsify = {"method": "topk", "k": 128, "dim": 0} if exact else {
        "method": "threshold", "eps": 1e-4}  # fmt: skip
    diffusion = {"method": "ppr", "alpha": 0.05} if exact else {
        "method": "ppr", "alpha": 0.05, "eps": 1e-4}  # fmt: skip
    graph = Data(edge_index=data.edge_index, num_nodes=data.num_nodes)
    if data.get("edge_weight") is not None:
        graph.edge_attr = data.edge_weight.float()
    graph = GDC(1.0, "sym", "col", diffusion, sparsify, exact=exact)(graph)
    data = _without_edge_attrs(data)
    data.edge_index, data.edge_weight = graph.edge_index, graph.edge_attr
    return data


def _without_edge_attrs(data: Data) -> Data:
    for key in ("edge_attr", "edge_weight", "edge_type"):  # no longer aligned with edges
        if key in data:
            del data[key]
    return data


def _self_loops(data: Data) -> Data:
    from torch_geometric.utils import add_remaining_self_loops

    weight = data.get("edge_weight")
    edge_index, weight = add_remaining_self_loops(data.edge_index, weight, 1.0, data.num_nodes)
    data = _without_edge_attrs(data)
    data.edge_index = edge_index
    if weight is not None:
        data.edge_weight = weight
    return data


def _virtual_node(data: Data) -> Data:
    from torch_geometric.transforms import VirtualNode

    had_type = data.get("edge_type") is not None
    data = VirtualNode()(data)
    if not had_type:
        del data["edge_type"]  # VirtualNode types its new edges; keep plain graphs plain
    y = data.get("y")
    if y is not None and y.dim() == 1 and y.size(0) == data.num_nodes:
        y[-1] = -1  # the virtual node has no class (VirtualNode fills 0)
    for key in ("train_mask", "val_mask", "test_mask"):
        if data.get(key) is not None:
            data[key][-1] = False
    return data


ENHANCEMENTS: Registry[Enhancement] = Registry("enhancement")
for _item in (
    Enhancement("feature_propagation", "Fill missing features from the neighbours.",
                "Rossi et al., LoG 2022", _feature_propagation),
    Enhancement("rw_pe", "Random-walk positional encodings appended to the features.",
                "Dwivedi et al., ICLR 2022", _rw_pe),
    Enhancement("lap_pe", "Laplacian eigenvector positional encodings appended.",
                "Dwivedi et al., JMLR 2023", _lap_pe),
    Enhancement("gdc", "Graph diffusion (PPR, alpha 0.05, top-128) as weighted edges.",
                "Klicpera et al., NeurIPS 2019", _gdc),
    Enhancement("self_loops", "One self-loop per node.", "Kipf & Welling, ICLR 2017",
                _self_loops),
    Enhancement("virtual_node", "A virtual node joined to every node.",
                "Gilmer et al., ICML 2017", _virtual_node),
    Enhancement("drop_edge", f"Drop {DROP_EDGE_P:.0%} of the edges each training epoch.",
                "Rong et al., ICLR 2020"),
):  # fmt: skip
    ENHANCEMENTS.register(_item.name, _item)
ORDER = tuple(ENHANCEMENTS)


def resolve(names: Iterable[str]) -> list[str]:
    """Canonical names, in application order, without repeats; "none" means no step.

    Raises:
        UserInputError: an unknown name, with the choices.
    """
    wanted = {ENHANCEMENTS.resolve(n) for n in names if n and n != "none"}
    return [name for name in ORDER if name in wanted]


def applied_before_training(names: Iterable[str]) -> list[str]:
    return [n for n in resolve(names) if not ENHANCEMENTS.get(n).during_training]


def enhance_graph(data: Data, names: Iterable[str]) -> Data:
    """`data` (a copy) with the named pre-training enhancements applied, in order."""
    data = data.clone()
    for name in applied_before_training(names):
        data = ENHANCEMENTS.get(name).apply(data)
    return data


def enhance_graphs(
    graphs: list[Data], names: Iterable[str], dataset: str, hetero: bool
) -> list[Data]:
    """Every graph enhanced (node and graph classification: before the split).

    Raises:
        UserInputError: a heterogeneous graph (the transforms take one node type).
    """
    steps = applied_before_training(names)
    if not steps:
        return graphs
    if hetero:
        raise UserInputError(
            f"{', '.join(steps)} work on homogeneous graphs; {dataset!r} is heterogeneous. "
            "Fix: drop enhance, or import one node and edge type."
        )
    return [enhance_graph(g, steps) for g in graphs]


class DropEdge:
    """DropEdge on one fixed graph: each call keeps a fresh random share of its edges, the
    two directions of an undirected edge together (their pairing is found once)."""

    def __init__(self, edge_index: torch.Tensor, num_nodes: int, p: float = DROP_EDGE_P):
        row, col = edge_index
        pair = torch.minimum(row, col) * num_nodes + torch.maximum(row, col)  # [E]
        _, self.pair_of = torch.unique(pair, return_inverse=True)  # [E] pair index per edge
        self.num_pairs = int(self.pair_of.max()) + 1 if pair.numel() else 0
        self.edge_index, self.p = edge_index, p

    def __call__(self) -> torch.Tensor:
        """A bool mask `[E]` of the edges kept this time (about 1 - p of the pairs)."""
        keep = torch.rand(self.num_pairs, device=self.pair_of.device) >= self.p
        return keep[self.pair_of]
