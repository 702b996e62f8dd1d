"""Training: full-batch or neighbour-sampled, early stopping, several seeds, k-fold.

`train(config)` loads the dataset, fills every `None` in the config from the model's
published defaults (`graph_ml.models.default_hparams`), and for each seed (and, for graph
classification, each fold) builds a fresh model, trains it with a short `train_epoch()` and a
`@torch.no_grad()` `evaluate()` per epoch, keeps the weights of the epoch with the best
validation metric, and scores them on the test set once at the end.

Determinism: the seed is set in one place, `seed_everything()`, before each run builds its
model. On CPU, the same config, seed, thread count and torch/PyG versions give bit-identical
curves and results (scatter sums run in a fixed order). On CUDA, PyG's scatter kernels use
atomic adds, so results agree only to a few decimals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor
from tqdm.auto import tqdm

from core.errors import UserInputError
from graph_ml.catalogue import MODELS, check_task, default_hparams, model_specific_params
from graph_ml.config import TrainConfig
from graph_ml.models import build_model

OnEpoch = Callable[[int, int, dict[str, float]], None]
Metric = Literal["accuracy", "roc_auc"]


class SeedRun(BaseModel):
    """One training run (one seed, and one fold for k-fold graph classification)."""

    seed: int
    fold: int | None = None
    best_epoch: int
    stopped_epoch: int
    val_metric: float
    test_metric: float
    metrics: dict[str, float]
    curves: list[dict[str, float]]
    checkpoint: str | None = None
    seconds: float
    confusion: list[list[int]] | None = None
    split_sizes: dict[str, int] | None = None  # train / val / test nodes, edges or graphs


class TrainResult(BaseModel):
    config: TrainConfig
    metric: Metric
    runs: list[SeedRun]
    test_mean: float
    test_std: float  # sample standard deviation over runs (0 for one run)
    val_mean: float
    val_std: float
    seconds: float
    device: str
    fingerprint: str | None = None
    split_sizes: dict[str, int] | None = None  # of the first run (random splits vary a little)
    notes: list[str] = Field(default_factory=list)  # adaptations made, for the explanation
    sources: dict[str, str] | None = None  # an imported graph's files and their sha256


def seed_everything(seed: int) -> None:
    """The one place seeds are set: Python's `random` and torch (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"device {name!r} was asked for but CUDA is not available; use cpu.")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise UserInputError(f"Unknown device {name!r}; use auto, cpu or cuda.") from error


def resolve_config(config: TrainConfig, ds: Any) -> TrainConfig:
    """A copy of `config` with the task, model name and every `None` hyper-parameter filled."""
    task = config.task or ds.spec.default_task
    spec = _model_spec(config.model, task, ds)
    hp = spec.hparams(task, hetero=ds.is_hetero)
    filled = {k: hp.get(k) for k in TrainConfig.model_fields if getattr(config, k) is None}
    filled = {k: v for k, v in filled.items() if v is not None}
    filled.update(task=task, model=spec.name)
    for key in model_specific_params():
        if getattr(config, key) is not None and not spec.takes_param(key):
            models = [name for name, other in MODELS.items() if other.takes_param(key)]
            raise UserInputError(
                f"{key} applies to {', '.join(models)} only; model {spec.name!r} does not use "
                f"it. Drop {key} or train {' or '.join(models)}."
            )
    if config.batch_size is None and "batch_size" not in filled:
        filled["batch_size"] = 512
    if config.num_neighbors is None:
        filled["num_neighbors"] = [10] * (filled.get("num_layers") or config.num_layers or 2)
    if config.normalize_features is None:
        x = None if ds.is_hetero else ds.graphs[0].get("x")
        node_level = task != "graph_classification"
        filled["normalize_features"] = bool(
            node_level and x is not None and not torch.isnan(x).any() and x.min() >= 0
        )
    if config.enhance:
        from graph_ml.transforms import resolve

        filled["enhance"] = resolve(config.enhance)
    return config.model_copy(update=filled)


def _model_spec(model: str, task: str, ds: Any) -> Any:
    """The catalogue spec of `model` for `task`, checked against the kind of graph `ds` is
    (heterogeneous, or relational for R-GCN)."""
    spec = check_task(model, task)
    if ds.is_hetero or spec.requires_hetero:
        from graph_ml.hetero import check_hetero

        return check_hetero(spec.name, task, ds)
    if spec.uses_edge_types and task == "link_prediction":
        raise UserInputError(
            f"{spec.name} link prediction needs a heterogeneous graph (typed node and edge "
            "files); for one edge type train gcn, sage or gat."
        )
    return spec


def _prepare(cfg: TrainConfig, ds: Any) -> tuple[Any, list[str]]:
    """The dataset as the runs see it: the chosen node type, relations for R-GCN, the
    enhancements applied; and the notes saying what was done."""
    notes: list[str] = []
    if ds.is_hetero:
        ds = _choose_node_type(cfg, ds)
    elif MODELS.get(cfg.model).uses_edge_types:
        from graph_ml.hetero import relations

        graphs, count = relations(ds.graphs)
        ds = dataclasses.replace(ds, graphs=graphs)
        notes.append(f"R-GCN uses the {count} edge types as relations.")
    if cfg.enhance:
        from graph_ml.transforms import enhance_graphs

        nan = any(g.get("x") is not None and torch.isnan(g.x).any() for g in ds.graphs)
        if cfg.task != "link_prediction":
            ds = dataclasses.replace(
                ds, graphs=enhance_graphs(ds.graphs, cfg.enhance, ds.spec.name, ds.is_hetero)
            )
        notes.append(f"Structure enhancements: {', '.join(cfg.enhance)}.")
        if "feature_propagation" in cfg.enhance and not nan:
            notes.append("feature_propagation had nothing to fill: no feature was missing.")
    _check_features_present(cfg, ds)
    return ds, notes


def _check_features_present(cfg: TrainConfig, ds: Any) -> None:
    if ds.is_hetero or (cfg.task == "link_prediction" and "feature_propagation" in cfg.enhance):
        return
    for graph in ds.graphs[:1]:
        x = graph.get("x")
        if x is not None and torch.isnan(x).any():
            count = int(torch.isnan(x).sum())
            raise UserInputError(
                f"{count} feature values of {ds.spec.name!r} are missing (NaN). Fix: fill them "
                "in the file, or train with enhance=['feature_propagation'] to fill them from "
                "the neighbours."
            )


def _choose_node_type(cfg: TrainConfig, ds: Any) -> Any:
    data = ds.data
    if cfg.node_type is None:
        return ds
    if cfg.node_type not in data.node_types:
        raise UserInputError(
            f"Node type {cfg.node_type!r} is not in {ds.spec.name!r}; it has "
            f"{', '.join(data.node_types)}."
        )
    labelled = [t for t in data.node_types if data[t].get("y") is not None]
    if cfg.task == "node_classification" and cfg.node_type not in labelled:
        raise UserInputError(
            f"Node type {cfg.node_type!r} has no labels to classify; labelled types: "
            f"{', '.join(labelled) or 'none'}."
        )
    return dataclasses.replace(ds, target_node_type=cfg.node_type, class_names=None)


def train(
    config: TrainConfig,
    dataset: Any = None,
    on_epoch: OnEpoch | None = None,
    checkpoint_dir: str | Path | None = None,
) -> TrainResult:
    """Train `config.model` on `config.dataset` for `config.seeds` seeds (x folds).

    Args:
        config: what to train; `None` fields take the model's defaults.
        dataset: an already loaded `LoadedDataset` (skips loading `config.dataset`).
        on_epoch: called as `on_epoch(run_index, epoch, metrics)` after every epoch with
            `train_loss`, `train_metric` (accuracy; not for link prediction), `val_metric`,
            `val_loss`, `test_metric`, `lr` (the row kept in `curves`); an exception raised
            in it (e.g. `optuna.TrialPruned`) stops training and propagates.
        checkpoint_dir: where each run's best `state_dict` is saved; None keeps none.

    Returns:
        The resolved config, every run with curves and metrics, and mean/std over runs.

    Raises:
        UserInputError: unknown dataset/model/task, a mismatch, or an unusable value.
        SetupError: dataset files missing offline.
    """
    from graph_ml.datasets import load_dataset

    start = time.perf_counter()
    ds = dataset if dataset is not None else load_dataset(config.dataset, config.data_dir)
    fingerprint = ds.fingerprint
    cfg = resolve_config(config, ds)
    if cfg.normalize_features:  # the input features, before encodings are appended
        from graph_ml.preprocess import normalize_features

        ds = normalize_features(ds, "row")
    ds, notes = _prepare(cfg, ds)
    device = resolve_device(cfg.device)
    results = [
        _train_run(cfg, ds, seed, fold, index, device, on_epoch, checkpoint_dir)
        for index, (seed, fold) in enumerate(_run_plan(cfg))
    ]
    runs = [run for run, _ in results]
    notes += list(dict.fromkeys(n for _, split_notes in results for n in split_notes))
    tests, vals = [r.test_metric for r in runs], [r.val_metric for r in runs]
    return TrainResult(
        config=cfg,
        metric="roc_auc" if cfg.task == "link_prediction" else "accuracy",
        runs=runs,
        test_mean=statistics.fmean(tests),
        test_std=statistics.stdev(tests) if len(tests) > 1 else 0.0,
        val_mean=statistics.fmean(vals),
        val_std=statistics.stdev(vals) if len(vals) > 1 else 0.0,
        seconds=time.perf_counter() - start,
        device=str(device),
        fingerprint=fingerprint,
        split_sizes=runs[0].split_sizes,
        notes=notes,
        sources=ds.sources,
    )


def _run_plan(cfg: TrainConfig) -> list[tuple[int, int | None]]:
    """(seed, fold) of every run: folds only for k-fold graph classification."""
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    kfold = cfg.task == "graph_classification" and cfg.split in ("auto", "kfold")
    if not kfold:
        return [(s, None) for s in seeds]
    if cfg.fold is not None and cfg.fold >= cfg.folds:
        raise UserInputError(f"fold={cfg.fold} is out of range for folds={cfg.folds}.")
    folds = [cfg.fold] if cfg.fold is not None else list(range(cfg.folds))
    return [(s, f) for s in seeds for f in folds]


def _train_run(
    cfg: TrainConfig,
    ds: Any,
    seed: int,
    fold: int | None,
    index: int,
    device: torch.device,
    on_epoch: OnEpoch | None,
    checkpoint_dir: str | Path | None,
) -> tuple[SeedRun, list[str]]:
    """Train one model from scratch; its best-validation run and its split's notes."""
    from graph_ml.splits import make_split

    start = time.perf_counter()
    split_kind = "kfold" if fold is not None else cfg.split
    split = make_split(ds, cfg.task, split_kind, seed=seed, fold=fold or 0, folds=cfg.folds,
                       edge_type=cfg.edge_type)  # fmt: skip
    if cfg.task == "link_prediction" and cfg.enhance and not ds.is_hetero:
        split = enhance_link_split(split, cfg.enhance)
    seed_everything(seed)
    job = _runner(cfg, ds)(cfg, ds, split, device)
    optimizer = torch.optim.Adam(job.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _make_scheduler(cfg, optimizer)
    stopper = EarlyStopping(cfg.selection or "metric", cfg.patience or 0)
    state: dict[str, Tensor] = {}
    curves: list[dict[str, float]] = []
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"run {index + 1}", leave=False,
               disable=None if cfg.progress else True)  # fmt: skip
    epoch = 0
    for epoch in bar:
        loss = job.train_epoch(optimizer)
        scores = job.evaluate()
        row = {"epoch": epoch, "train_loss": loss, **scores, "lr": optimizer.param_groups[0]["lr"]}
        curves.append(row)
        if stopper.keep(epoch, scores["val_metric"], scores["val_loss"]):
            state = _copy_state(job.model)
        bar.set_postfix(loss=f"{loss:.3f}", val=f"{scores['val_metric']:.3f}")
        if on_epoch is not None:
            on_epoch(index, epoch, row)
        _step_scheduler(scheduler, scores["val_metric"])
        if stopper.should_stop(epoch):
            break
    job.model.load_state_dict(state)
    final = job.final_metrics()
    run = SeedRun(
        seed=seed,
        fold=fold,
        best_epoch=stopper.best_epoch,
        stopped_epoch=epoch,
        val_metric=final.pop("val_metric"),
        test_metric=final["test_metric"],
        metrics={k: v for k, v in final.items() if k != "confusion"},
        curves=curves,
        checkpoint=_save_checkpoint(checkpoint_dir, cfg, seed, fold, state),
        seconds=time.perf_counter() - start,
        confusion=final.get("confusion"),
        split_sizes=split.sizes,
    )
    return run, split.notes


def enhance_link_split(split: Any, names: list[str]) -> Any:
    """A link split whose three message-passing graphs are each enhanced on their own (no
    held-out edge shapes a graph the model reads); `known_edge_index` keeps each part's
    original edges, which negative sampling avoids."""
    from graph_ml.transforms import enhance_graph

    parts = {}
    for key in ("train", "val", "test"):
        part = getattr(split, f"{key}_data").clone()
        part.known_edge_index = part.edge_index
        parts[key] = enhance_graph(part, names)
    return dataclasses.replace(split, **{f"{k}_data": v for k, v in parts.items()})


def _runner(cfg: TrainConfig, ds: Any) -> type:
    if ds.is_hetero:
        from graph_ml.hetero_train import HETERO_RUNNERS

        if cfg.task not in HETERO_RUNNERS:
            raise UserInputError(
                f"{cfg.task} is not available on a heterogeneous graph; choose from: "
                f"{', '.join(HETERO_RUNNERS)}."
            )
        return HETERO_RUNNERS[cfg.task]
    return TASK_RUNNERS[cfg.task]


class EarlyStopping:
    """Which epoch's weights to keep, and when to stop.

    Rules:
        "metric": keep an epoch that beats the best validation metric (ties go to the lower
            validation loss); patience counts epochs since the last kept one.
        "metric_and_loss" (the GAT paper's): keep an epoch whose validation metric is at least
            the best so far and whose validation loss is at most the lowest so far; patience
            restarts whenever either of the two improves.

    Args:
        rule: "metric" or "metric_and_loss".
        patience: epochs to wait; 0 never stops early.
    """

    def __init__(self, rule: str, patience: int) -> None:
        self.rule, self.patience = rule, patience
        self.best_metric, self.best_loss = -math.inf, math.inf
        self.best_epoch = self.last_progress = 0

    def keep(self, epoch: int, metric: float, loss: float) -> bool:
        """Record one epoch; True when its weights should be kept."""
        if self.rule == "metric":
            keep = progress = (metric, -loss) > (self.best_metric, -self.best_loss)
            if keep:
                self.best_metric, self.best_loss = metric, loss
        else:
            keep = metric >= self.best_metric and loss <= self.best_loss
            progress = metric >= self.best_metric or loss <= self.best_loss
            self.best_metric = max(self.best_metric, metric)
            self.best_loss = min(self.best_loss, loss)
        if keep:
            self.best_epoch = epoch
        if progress:
            self.last_progress = epoch
        return keep

    def should_stop(self, epoch: int) -> bool:
        return bool(self.patience) and epoch - self.last_progress >= self.patience


def _copy_state(model: torch.nn.Module) -> dict[str, Tensor]:
    """The weights, copied in memory (cheap); written to disk once, at the end of the run."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save_checkpoint(
    directory: str | Path | None, cfg: TrainConfig, seed: int, fold: int | None, state: dict
) -> str | None:
    if directory is None:
        return None
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    name = f"{cfg.model}-{_file_safe(cfg.dataset)}-{cfg.task}-seed{seed}"
    path = path / (name + (f"-fold{fold}" if fold is not None else "") + ".pt")
    torch.save(state, path)
    return str(path)


def _file_safe(name: str) -> str:
    """A dataset name fit for a file name: a path (`med/nodes.csv`) becomes its safe
    characters and a short hash of the whole, so two paths never share a checkpoint."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "dataset"
    if safe == name:
        return name
    return f"{safe[-40:]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    if cfg.scheduler in (None, "none"):
        return None
    if cfg.scheduler == "step":  # GIN paper: halve every 50 epochs
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.5)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=10)


def _step_scheduler(scheduler: Any, val_metric: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_metric)
    else:
        scheduler.step()


# --- Metrics ---------------------------------------------------------------------------------


def accuracy(pred: Tensor, y: Tensor) -> float:
    return float((pred == y).float().mean()) if y.numel() else float("nan")


def confusion_matrix(pred: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """`[true, predicted]` counts."""
    return torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(
        num_classes, num_classes
    )


def macro_f1(pred: Tensor, y: Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in `y` or `pred`."""
    cm = confusion_matrix(pred, y, num_classes).double()
    tp, support, predicted = cm.diag(), cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp_min(1)
    return float(f1[present].mean()) if present.any() else float("nan")


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    labels = labels.bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    avg_rank = counts.cumsum(0) - (counts - 1) / 2.0  # 1-based mean rank of each tie group
    ranks = avg_rank[inverse]
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# --- Task runners: build the model, one training epoch, evaluation -------------------------


def model_hparams(cfg: TrainConfig, **extra: Any) -> dict[str, Any]:
    """The keyword arguments `build_model` takes from a resolved config (and `extra`)."""
    keys = ("hidden_channels", "num_layers", "dropout", "pooling", "decoder")
    keys += tuple(k for k in model_specific_params() if getattr(cfg, k) is not None)
    return {**{k: getattr(cfg, k) for k in keys}, **extra}


def _features(data: Any, name: str) -> Tensor:
    x = data.get("x")
    if x is None:
        raise UserInputError(
            f"Dataset {name!r} has no node features; add them first (the data doctor's "
            "degree_features or one_hot_features transform)."
        )
    return x.float()


class GraphInputs:
    """What a homogeneous model reads besides the features: the edges, their weights where
    the model uses weights (GCN, SGC, APPNP: CSV weights, GDC), their types where it uses
    relations (R-GCN), and DropEdge's fresh subset of them in training epochs."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, data: Any, device: torch.device):
        self.edge_index = data.edge_index.to(device)  # [2, E]
        weight = data.get("edge_weight")
        use_weight = weight is not None and getattr(model, "supports_edge_weight", False)
        self.edge_weight = weight.float().to(device) if use_weight else None
        self.edge_type = (
            data.edge_type.to(device) if getattr(model, "takes_edge_type", False) else None
        )
        self.drop = None
        if "drop_edge" in cfg.enhance:
            from graph_ml.transforms import DropEdge

            self.drop = DropEdge(self.edge_index, int(data.num_nodes))

    def kwargs(self, training: bool = False) -> dict[str, Tensor]:
        """`edge_index` and the model's extra edge inputs, DropEdge applied when training."""
        out = {"edge_index": self.edge_index}
        if self.edge_weight is not None:
            out["edge_weight"] = self.edge_weight
        if self.edge_type is not None:
            out["edge_type"] = self.edge_type
        if training and self.drop is not None:
            mask = self.drop()
            out = {k: v[:, mask] if k == "edge_index" else v[mask] for k, v in out.items()}
        return out


def _build(cfg: TrainConfig, task: str, ds: Any, in_channels: int, out_channels: int,
           **extra: Any) -> torch.nn.Module:  # fmt: skip
    """The zoo's model, or R-GCN with the dataset's relations."""
    if not MODELS.get(cfg.model).uses_edge_types:
        return build_model(
            cfg.model, task, in_channels, out_channels, **model_hparams(cfg, **extra)
        )
    from graph_ml.hetero import RelationalGraphClassifier, RelationalNodeClassifier

    if cfg.mini_batch:
        raise UserInputError("R-GCN trains full-batch here; drop --mini-batch.")
    num_relations = max(int(g.edge_type.max()) + 1 for g in ds.graphs if g.edge_type.numel())
    hidden, layers, dropout = cfg.hidden_channels, cfg.num_layers, cfg.dropout
    if task == "graph_classification":
        return RelationalGraphClassifier(in_channels, out_channels, num_relations, hidden,
                                         layers, dropout, cfg.pooling or "sum")  # fmt: skip
    return RelationalNodeClassifier(in_channels, hidden, out_channels, num_relations, layers,
                                    dropout)  # fmt: skip


class NodeRunner:
    """Node classification on one graph: full batch, or neighbour-sampled mini-batches."""

    def __init__(self, cfg: TrainConfig, ds: Any, split: Any, device: torch.device) -> None:
        data = ds.data
        self.cfg, self.device, self.num_classes = cfg, device, ds.num_classes
        self.x, self.y = _features(data, cfg.dataset), data.y.view(-1)  # [N, F], [N]
        self.edge_index = data.edge_index  # [2, E]
        self.masks = {"train": split.train_mask, "val": split.val_mask, "test": split.test_mask}
        # A fixed full-batch graph caches its normalisation; DropEdge changes it every epoch.
        cached = not cfg.mini_batch and "drop_edge" not in cfg.enhance
        self.model = _build(cfg, "node_classification", ds, self.x.size(1), self.num_classes,
                            cached=cached).to(device)  # fmt: skip
        if cfg.mini_batch:
            if "drop_edge" in cfg.enhance:
                raise UserInputError("drop_edge applies to full-batch training; drop --mini-batch.")
            self._make_loaders(data)
        else:
            self.x, self.y = self.x.to(device), self.y.to(device)
            self.inputs = GraphInputs(cfg, self.model, data, device)
            self.masks = {k: m.to(device) for k, m in self.masks.items()}

    def _make_loaders(self, data: Any) -> None:
        from torch_geometric.data import Data

        from graph_ml.sampling import neighbor_loader

        graph = Data(x=self.x, edge_index=self.edge_index, y=self.y, num_nodes=self.y.numel())
        hops = self.cfg.num_neighbors
        if len(hops) != self.cfg.num_layers:
            hops = (hops * self.cfg.num_layers)[: self.cfg.num_layers]
        train_idx = self.masks["train"].nonzero().view(-1)
        eval_idx = (self.masks["val"] | self.masks["test"]).nonzero().view(-1)
        self.train_loader = neighbor_loader(graph, hops, train_idx, self.cfg.batch_size, True)
        self.eval_loader = neighbor_loader(graph, hops, eval_idx, self.cfg.batch_size, False)

    def train_epoch(self, optimizer: torch.optim.Optimizer) -> float:
        self.model.train()
        if not self.cfg.mini_batch:
            optimizer.zero_grad()
            out = self.model(self.x, **self.inputs.kwargs(training=True))  # [N, C]
            mask = self.masks["train"]
            loss = F.cross_entropy(out[mask], self.y[mask])
            loss.backward()
            optimizer.step()
            return loss.item()
        total, count, correct = 0.0, 0, 0
        for batch in self.train_loader:
            batch = batch.to(self.device)
            optimizer.zero_grad()
            out = self.model(batch.x, batch.edge_index)[: batch.batch_size]  # [B, C]
            y = batch.y[: batch.batch_size]
            loss = F.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * batch.batch_size, count + batch.batch_size
            correct += int((out.detach().argmax(-1) == y).sum())
        self.train_accuracy = correct / count if count else float("nan")
        return total / max(count, 1)

    @torch.no_grad()
    def _logits(self) -> Tensor:
        """Logits of every node `[N, C]` (mini-batch: only val and test nodes are filled)."""
        self.model.eval()
        if not self.cfg.mini_batch:
            return self.model(self.x, **self.inputs.kwargs())
        out = torch.zeros(self.y.numel(), self.num_classes)
        for batch in self.eval_loader:
            logits = self.model(batch.x.to(self.device), batch.edge_index.to(self.device))
            out[batch.n_id[: batch.batch_size]] = logits[: batch.batch_size].cpu()
        return out

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        out = self._logits()
        y = self.y.to(out.device)
        pred = out.argmax(dim=-1)  # [N]
        val, test = self.masks["val"].to(out.device), self.masks["test"].to(out.device)
        if self.cfg.mini_batch:  # train nodes are not in the evaluation pass
            train_metric = self.train_accuracy
        else:
            train_metric = accuracy(pred[self.masks["train"]], y[self.masks["train"]])
        return {
            "train_metric": train_metric,
            "val_metric": accuracy(pred[val], y[val]),
            "val_loss": float(F.cross_entropy(out[val], y[val])),
            "test_metric": accuracy(pred[test], y[test]),
        }

    @torch.no_grad()
    def final_metrics(self) -> dict[str, Any]:
        out = self._logits()
        y, pred = self.y.to(out.device), out.argmax(dim=-1)
        val, test = self.masks["val"].to(out.device), self.masks["test"].to(out.device)
        return {
            "val_metric": accuracy(pred[val], y[val]),
            "test_metric": accuracy(pred[test], y[test]),
            "accuracy": accuracy(pred[test], y[test]),
            "macro_f1": macro_f1(pred[test], y[test], self.num_classes),
            "confusion": confusion_matrix(pred[test], y[test], self.num_classes).tolist(),
        }


class LinkRunner:
    """Link prediction: encode on training edges, score pairs, fresh negatives each epoch."""

    def __init__(self, cfg: TrainConfig, ds: Any, split: Any, device: torch.device) -> None:
        if cfg.mini_batch:
            raise UserInputError(
                "Mini-batch training is available for node classification; link prediction "
                "trains full-batch (drop --mini-batch)."
            )
        self.parts = {
            name: getattr(split, f"{name}_data").to(device) for name in ("train", "val", "test")
        }
        # Each part's own features: positional encodings are computed on its own graph.
        self.xs = {k: _features(part, cfg.dataset).to(device) for k, part in self.parts.items()}
        embedding = default_hparams(cfg.model, "link_prediction").get("out_channels", 64)
        in_channels = self.xs["train"].size(1)
        self.model = build_model(
            cfg.model, "link_prediction", in_channels, embedding, **model_hparams(cfg)
        ).to(device)
        self.inputs = {k: GraphInputs(cfg, self.model, p, device) for k, p in self.parts.items()}
        train = self.parts["train"]
        # Negatives avoid the known edges, not a diffused graph that replaced them (GDC).
        self.known = train.get("known_edge_index", train.edge_index)

    def train_epoch(self, optimizer: torch.optim.Optimizer) -> float:
        from torch_geometric.utils import negative_sampling

        train = self.parts["train"]
        self.model.train()
        optimizer.zero_grad()
        z = self.model.encode(self.xs["train"], **self.inputs["train"].kwargs(True))  # [N, D]
        pos = train.edge_label_index  # [2, P]
        neg = negative_sampling(self.known, train.num_nodes, num_neg_samples=pos.size(1))
        pairs = torch.cat([pos, neg], dim=1)  # [2, P + Q]
        labels = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))]).to(z.device)
        loss = F.binary_cross_entropy_with_logits(self.model.decode(z, pairs), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    @torch.no_grad()
    def _scores(self, name: str) -> tuple[Tensor, Tensor]:
        self.model.eval()
        part = self.parts[name]
        z = self.model.encode(self.xs[name], **self.inputs[name].kwargs())  # [N, D]
        return self.model.decode(z, part.edge_label_index), part.edge_label.float()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        val_scores, val_labels = self._scores("val")
        test_scores, test_labels = self._scores("test")
        return {
            "val_metric": roc_auc(val_scores.cpu(), val_labels.cpu()),
            "val_loss": float(F.binary_cross_entropy_with_logits(val_scores, val_labels)),
            "test_metric": roc_auc(test_scores.cpu(), test_labels.cpu()),
        }

    @torch.no_grad()
    def final_metrics(self) -> dict[str, Any]:
        scores = self.evaluate()
        test_scores, test_labels = self._scores("test")
        return {
            "val_metric": scores["val_metric"],
            "test_metric": scores["test_metric"],
            "roc_auc": scores["test_metric"],
            "accuracy": accuracy((test_scores > 0).float().cpu(), test_labels.cpu()),
        }


class GraphRunner:
    """Graph classification: mini-batches of whole graphs, readout pooling."""

    def __init__(self, cfg: TrainConfig, ds: Any, split: Any, device: torch.device) -> None:
        from torch_geometric.loader import DataLoader

        self.device, self.num_classes = device, ds.num_classes
        _features(ds.graphs[0], cfg.dataset)
        graphs = ds.graphs

        def subset(idx: Tensor) -> list:
            return [graphs[i] for i in idx.tolist()]

        self.train_loader = DataLoader(subset(split.train_idx), cfg.batch_size, shuffle=True)
        self.loaders = {
            "val": DataLoader(subset(split.val_idx), 1024),
            "test": DataLoader(subset(split.test_idx), 1024),
        }
        self.model = _build(cfg, "graph_classification", ds, ds.num_features, self.num_classes)
        self.model = self.model.to(device)
        self.cfg = cfg

    def _call(self, batch: Any, training: bool = False) -> Tensor:
        """Logits `[G, C]` of a batch, with the edge inputs the model reads."""
        inputs = GraphInputs(self.cfg, self.model, batch, self.device).kwargs(training)
        return self.model(batch.x.float(), batch=batch.batch, **inputs)

    def train_epoch(self, optimizer: torch.optim.Optimizer) -> float:
        self.model.train()
        total, count, correct = 0.0, 0, 0
        for batch in self.train_loader:
            batch = batch.to(self.device)
            optimizer.zero_grad()
            out = self._call(batch, training=True)  # [G, C]
            y = batch.y.view(-1)
            loss = F.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * batch.num_graphs, count + batch.num_graphs
            correct += int((out.detach().argmax(-1) == y).sum())
        self.train_accuracy = correct / count if count else float("nan")
        return total / max(count, 1)

    @torch.no_grad()
    def _predict(self, name: str) -> tuple[Tensor, Tensor]:
        self.model.eval()
        logits, labels = [], []
        for batch in self.loaders[name]:
            batch = batch.to(self.device)
            logits.append(self._call(batch))
            labels.append(batch.y.view(-1))
        return torch.cat(logits), torch.cat(labels)  # [G, C], [G]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        val_out, val_y = self._predict("val")
        test_out, test_y = self._predict("test")
        return {
            "train_metric": self.train_accuracy,  # over the epoch's batches: no extra pass
            "val_metric": accuracy(val_out.argmax(-1), val_y),
            "val_loss": float(F.cross_entropy(val_out, val_y)) if val_y.numel() else 0.0,
            "test_metric": accuracy(test_out.argmax(-1), test_y),
        }

    @torch.no_grad()
    def final_metrics(self) -> dict[str, Any]:
        scores = self.evaluate()
        out, y = self._predict("test")
        pred = out.argmax(-1)
        return {
            "val_metric": scores["val_metric"],
            "test_metric": scores["test_metric"],
            "accuracy": scores["test_metric"],
            "macro_f1": macro_f1(pred, y, self.num_classes),
            "confusion": confusion_matrix(pred.cpu(), y.cpu(), self.num_classes).tolist(),
        }


TASK_RUNNERS: dict[str, type] = {
    "node_classification": NodeRunner,
    "link_prediction": LinkRunner,
    "graph_classification": GraphRunner,
}
