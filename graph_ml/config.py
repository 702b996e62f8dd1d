"""A training run's settings, `TrainConfig`: plain data with the catalogue's bounds.

Kept apart from `graph_ml.train` so that what only reads or checks settings (the search
space, the router's estimate of a tune) does not import torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graph_ml.catalogue import PARAMS

Aggr = Literal[PARAMS["aggr"].choices]  # type: ignore[valid-type]


def _bounded(name: str, comment: str = "") -> Any:
    """A `None`-default field with the parameter's bounds from the catalogue."""
    return Field(None, description=comment or PARAMS[name].description,
                 **PARAMS[name].field_bounds())  # fmt: skip


class TrainConfig(BaseModel):
    """Everything a training run needs. `None` means "the model's published default"."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "cora"  # the dataset users try first
    task: str | None = None  # None: the dataset's default task
    model: str = "gcn"  # the baseline every paper compares against
    epochs: int | None = _bounded("epochs")
    lr: float | None = _bounded("lr")
    hidden_channels: int | None = _bounded("hidden_channels")
    num_layers: int | None = _bounded("num_layers")
    dropout: float | None = _bounded("dropout")
    weight_decay: float | None = _bounded("weight_decay")
    heads: int | None = _bounded("heads")
    aggr: Aggr | None = None  # SAGE aggregation; None: mean
    K: int | None = _bounded("K", "APPNP propagation steps; None: 10")
    alpha: float | None = _bounded("alpha", "APPNP teleport probability; None: 0.1")
    # one run is enough to try; 10 to report a mean
    seeds: int = Field(1, **PARAMS["seeds"].field_bounds())
    seed: int = Field(0, ge=0)  # runs use seed, seed+1, ...
    patience: int | None = _bounded("patience")  # 0 = never stop early
    split: str = "auto"  # public split where the dataset has one, else random / k-fold
    folds: int = Field(10, ge=2, le=100)  # k-fold graph classification, as in the GIN paper
    fold: int | None = Field(None, ge=0)  # run one fold only; None runs them all
    batch_size: int | None = Field(None, ge=1)  # None: model default (graphs 32, nodes 512)
    mini_batch: bool = False  # full batch fits every bundled dataset and is faster
    num_neighbors: list[int] | None = None  # per layer; None: 10 per layer
    scheduler: Literal["none", "step", "plateau", "cosine"] | None = None
    # Which epoch to keep (see EarlyStopping); None: the model's, GAT's paper rule for GATs.
    selection: Literal["metric", "metric_and_loss"] | None = None
    device: str = "auto"  # cuda when available, else cpu
    normalize_features: bool | None = None  # None: row-normalise non-negative node features
    pooling: Literal["sum", "mean"] | None = None  # graph readout; None: sum (GIN)
    decoder: Literal["dot", "mlp"] | None = None  # link scorer; None: dot product (GAE)
    data_dir: str | None = None  # None: AUTOGLM_DATA_DIR, else the user cache
    progress: bool = True  # tqdm bar on stderr (shown only on a terminal)
    # Heterogeneous graphs: the node type to classify (None: the first one with labels) and
    # the relation to predict, "user__buys__item" or "buys" (None: the only one).
    node_type: str | None = None
    edge_type: str | None = None
    # Structure enhancements (graph_ml.transforms), e.g. ["gdc"]; none by default, as the
    # papers' baselines train on the graph as given. "gdc,self_loops" is accepted too.
    enhance: list[str] = Field(default_factory=list)

    @field_validator("enhance", mode="before")
    @classmethod
    def _enhance_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # a tuning trial or a command line gives one string
            return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
        return value
