"""What `autoglm experiments` does with stored runs: summarise, rerun, export.

- `summary_metrics(kind, result)`: the few numbers `experiments list` shows, stored with a run.
- `rerun(store, run_id)`: runs a stored train or tune config again as a new run whose parent
  is the old one, and records it like any other (epochs, costs, result).
(`agent.export` writes the standalone script that reproduces a train run.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.store import ExperimentStore, RunRecord
from core.errors import UserInputError

EXPORTABLE_SOURCES = ("planetoid", "tu")
EXPORTABLE_TASKS = ("node_classification", "graph_classification")
# Hyper-parameters the exported script reads; a None left in them takes the model default.
SCRIPT_KEYS = (
    "dataset", "task", "model", "epochs", "lr", "hidden_channels", "num_layers", "dropout",
    "weight_decay", "heads", "seeds", "seed", "patience", "split", "folds", "batch_size",
    "normalize_features", "pooling",
)  # fmt: skip


def summary_metrics(kind: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """The headline numbers of a result: test/val mean and std, or a tune's best value."""
    if not result:
        return {}
    if kind == "train":
        result = result["result"] if "runs" not in result and "result" in result else result
        keys = ("metric", "test_mean", "test_std", "val_mean", "val_std")
        return {k: result[k] for k in keys if k in result}
    if kind == "tune":
        keys = ("metric", "best_value", "best_model", "test_mean", "test_std", "n_trials")
        return {k: result[k] for k in keys if result.get(k) is not None}
    if kind == "compare":
        keys = ("metric", "best", "p_value", "significant")
        return {k: result[k] for k in keys if k in result}
    return {}


# -- rerun ------------------------------------------------------------------------------


def rerun(
    store: ExperimentStore,
    run_id: int,
    data_dir: str | Path | None = None,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
) -> RunRecord:
    """Run a stored train or tune run's config again, as a new run (parent: the old one).

    Args:
        store: the experiment store.
        run_id: the run to repeat.
        data_dir: raw datasets (default `AUTOGLM_DATA_DIR`).
        on_epoch: progress callback, called after storing each epoch.

    Returns:
        The new run's record (succeeded; a failure is stored as failed and re-raised).

    Raises:
        UserInputError: no such run, or a kind that cannot be rerun.
    """
    record = store.get_run(run_id)
    if record.kind not in ("train", "tune"):
        raise UserInputError(
            f"Run {run_id} is a {record.kind} run; only train and tune runs can be rerun "
            "(rerun the runs it refers to instead)."
        )
    runner = _rerun_train if record.kind == "train" else _rerun_tune
    with store.run(record.kind, record.config, parent_id=record.id) as new_id:
        runner(store, record, new_id, data_dir, on_epoch)
    return store.get_run(new_id)


def _rerun_train(store, record, new_id, data_dir, on_epoch) -> None:
    # The full resolved TrainConfig goes to graph_ml directly: the train tool's arguments are
    # the subset a plan may set, and a rerun must repeat every field (split, scheduler, ...).
    from graph_ml.train import TrainConfig, train
    from tools.data import load

    config = TrainConfig.model_validate({**record.config, "progress": False})

    def log_epoch(index: int, epoch: int, metrics: dict[str, float]) -> None:
        seed, fold = seed_and_fold(config, index)
        store.log_epoch(new_id, seed, epoch, metrics, fold=fold)
        if on_epoch is not None:
            on_epoch(index, epoch, metrics)

    with store.step(new_id, "tool:load") as extra:
        ds = load(config.dataset, store.workspace, Path(data_dir) if data_dir else None)
        extra["detail"] = {"same_data": ds.fingerprint == record.dataset_fingerprint}
    store.set_dataset_fingerprint(new_id, ds.fingerprint)
    with store.step(new_id, "tool:train"):
        result = train(config, dataset=ds, on_epoch=log_epoch,
                       checkpoint_dir=store.checkpoint_dir(new_id))  # fmt: skip
    dumped = result.model_dump(mode="json")
    store.finish_run(new_id, "succeeded", metrics=summary_metrics("train", dumped), result=dumped)


def seed_and_fold(config: Any, index: int) -> tuple[int, int | None]:
    """The seed and fold of training run `index` of a `TrainConfig` (seed-major, folds
    inside a seed, as graph_ml plans them; the fold is None without k-fold)."""
    kfold = config.task == "graph_classification" and config.split in ("auto", "kfold")
    if not kfold:
        return config.seed + index, None
    folds = [config.fold] if config.fold is not None else list(range(config.folds))
    return config.seed + index // len(folds), folds[index % len(folds)]


def _rerun_tune(store, record, new_id, data_dir, on_epoch) -> None:
    from graph_ml.tune import TuneConfig, tune

    fields = dict(record.config)
    # A study counts trials over all sessions: a rerun gets a fresh study or it would stop at
    # once, its budget already spent.
    fields["study"] = f"{fields.get('study') or 'rerun'}-rerun-{new_id}-{int(time.time())}"
    fields.setdefault("storage", None)
    if not fields["storage"]:
        fields["storage"] = store.studies_url()
    if data_dir and not fields.get("data_dir"):
        fields["data_dir"] = str(data_dir)
    config = TuneConfig.model_validate(fields)
    with store.step(new_id, "tool:tune"):
        result = tune(config)
    dumped = result.model_dump(mode="json")
    store.finish_run(new_id, "succeeded", metrics=summary_metrics("tune", dumped), result=dumped)
