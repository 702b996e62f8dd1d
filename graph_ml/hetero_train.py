"""Training on a `HeteroData`: the trainer's runners with typed inputs.

`HeteroNodeRunner` classifies the nodes of `ds.target_node_type`; `HeteroLinkRunner` scores
pairs of one relation (`split.edge_type`) by the dot product of the two end types'
embeddings, with fresh negatives (uniform over the two end types) every epoch. Both reuse
the homogeneous runners' evaluation and metrics; only the forward pass differs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.errors import UserInputError
from graph_ml.hetero import build_hetero_model
from graph_ml.train import LinkRunner, NodeRunner, TrainConfig

LINK_EMBEDDING = 64  # the zoo's link-prediction embedding width (GAE)


def _hparams(cfg: TrainConfig) -> dict[str, Any]:
    return {
        k: getattr(cfg, k) for k in ("hidden_channels", "num_layers", "dropout", "heads", "aggr")
    }


def _inputs(data: Any, device: torch.device) -> tuple[dict[str, Tensor], dict]:
    x_dict = {
        t: data[t].x.float().to(device) for t in data.node_types if data[t].get("x") is not None
    }
    edge_index_dict = {k: v.to(device) for k, v in data.edge_index_dict.items()}
    return x_dict, edge_index_dict


class HeteroNodeRunner(NodeRunner):
    """Node classification of one node type of a heterogeneous graph (full batch)."""

    def __init__(self, cfg: TrainConfig, ds: Any, split: Any, device: torch.device) -> None:
        if cfg.mini_batch:
            raise UserInputError("Heterogeneous graphs train full-batch here; drop --mini-batch.")
        data, self.target = ds.data, ds.target_node_type
        self.cfg, self.device, self.num_classes = cfg, device, ds.num_classes
        self.x_dict, self.edge_index_dict = _inputs(data, device)
        self.y = data[self.target].y.view(-1).to(device)  # [N_target]
        self.masks = {k: getattr(split, f"{k}_mask").to(device) for k in ("train", "val", "test")}
        self.model = build_hetero_model(cfg.model, data, self.num_classes, **_hparams(cfg))
        self.model = self.model.to(device)

    def _out(self) -> Tensor:
        return self.model(self.x_dict, self.edge_index_dict)[self.target]  # [N_target, C]

    def train_epoch(self, optimizer: torch.optim.Optimizer) -> float:
        self.model.train()
        optimizer.zero_grad()
        out, mask = self._out(), self.masks["train"]
        loss = F.cross_entropy(out[mask], self.y[mask])
        loss.backward()
        optimizer.step()
        return loss.item()

    @torch.no_grad()
    def _logits(self) -> Tensor:
        self.model.eval()
        return self._out()


class HeteroLinkRunner(LinkRunner):
    """Link prediction of one relation of a heterogeneous graph (full batch)."""

    def __init__(self, cfg: TrainConfig, ds: Any, split: Any, device: torch.device) -> None:
        if cfg.mini_batch:
            raise UserInputError("Heterogeneous graphs train full-batch here; drop --mini-batch.")
        self.relation = split.edge_type
        self.parts = {k: getattr(split, f"{k}_data").to(device) for k in ("train", "val", "test")}
        self.inputs = {k: _inputs(part, device) for k, part in self.parts.items()}
        self.model = build_hetero_model(cfg.model, ds.data, LINK_EMBEDDING, **_hparams(cfg))
        self.model = self.model.to(device)

    def _embed(self, name: str) -> dict[str, Tensor]:
        return self.model(*self.inputs[name])

    def _score(self, z: dict[str, Tensor], pairs: Tensor) -> Tensor:
        src, _, dst = self.relation
        return (z[src][pairs[0]] * z[dst][pairs[1]]).sum(-1)  # [P]

    def train_epoch(self, optimizer: torch.optim.Optimizer) -> float:
        from torch_geometric.utils import negative_sampling

        store = self.parts["train"][self.relation]
        src, _, dst = self.relation
        sizes = (self.parts["train"][src].num_nodes, self.parts["train"][dst].num_nodes)
        self.model.train()
        optimizer.zero_grad()
        z = self._embed("train")
        pos = store.edge_label_index  # [2, P]
        neg = negative_sampling(store.edge_index, sizes, num_neg_samples=pos.size(1))
        pairs = torch.cat([pos, neg], dim=1)  # [2, P + Q]
        labels = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))]).to(pos.device)
        loss = F.binary_cross_entropy_with_logits(self._score(z, pairs), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    @torch.no_grad()
    def _scores(self, name: str) -> tuple[Tensor, Tensor]:
        self.model.eval()
        store = self.parts[name][self.relation]
        return self._score(self._embed(name), store.edge_label_index), store.edge_label.float()


HETERO_RUNNERS: dict[str, type] = {
    "node_classification": HeteroNodeRunner,
    "link_prediction": HeteroLinkRunner,
}
