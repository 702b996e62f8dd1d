"""An open-autoglm model plug-in: `mygcn`, a GCN whose layers add a residual connection.

Use it without changing the project:

    AUTOGLM_PLUGINS=examples.plugin_model PYTHONPATH=. autoglm train --dataset karate \
        --model mygcn --epochs 5

Everything open-autoglm knows about the model is the `ModelSpec` registered below: its
tasks, defaults, search space, paper and export recipe. The planner, the rule engine, the
tuner, the trainer and `experiments export` read it from the catalogue like a built-in
model's. See docs/plugins.md.
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from graph_ml.catalogue import (
    ALL_TASKS,
    COMMON_SEARCH,
    GRAPH_DEFAULTS,
    LINK_DEFAULTS,
    ExportRecipe,
    ModelSpec,
    register_model,
)
from graph_ml.models import GNNEncoder


class ResidualGCNConv(nn.Module):
    """`GCNConv(x) + W x`: a GCN layer with a (projected) skip connection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = GCNConv(in_channels, out_channels)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Linear(in_channels, out_channels, bias=False)
        )

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.conv(x, edge_index) + self.skip(x)  # [N, out]


class ResidualGCN(GNNEncoder):
    """The zoo's encoder loop (dropout, activation) over residual GCN layers."""

    def init_conv(self, in_channels: int, out_channels: int, last: bool) -> nn.Module:
        return ResidualGCNConv(in_channels, out_channels)


register_model(
    ModelSpec(
        name="mygcn",
        description="GCN with a residual (skip) connection around every layer.",
        paper="He et al., CVPR 2016 (residual connections) on Kipf & Welling, ICLR 2017",
        tasks=ALL_TASKS,
        encoder=ResidualGCN,
        aliases=("residual-gcn", "resgcn"),
        task_defaults={"link_prediction": LINK_DEFAULTS, "graph_classification": GRAPH_DEFAULTS},
        search=COMMON_SEARCH,
        # The exported script defines the same layer class and builds one per layer.
        export=ExportRecipe(
            imports=("GCNConv",),
            layer="ResidualGCNConv(c_in, c_out)",
            code=inspect.getsource(ResidualGCNConv),
        ),
    )
)
