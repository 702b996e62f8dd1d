"""`autoglm experiments export ID`: a standalone PyG script that reproduces a stored train run.

The script (`prompts/export_script.py.j2`) has one generic encoder and training loop; the
model's layers come from its catalogue spec's `ExportRecipe` (a plug-in's too), and every
value of the run goes in as a Python literal (`prompts.py_literal`), never as text pasted
into code. A store may come from someone else: the stored config is checked against the
catalogue before anything is rendered, so a hostile model name, task or number is refused
instead of becoming code in the script.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import prompts
from agent.store import RunRecord
from core.errors import UserInputError
from graph_ml.catalogue import DATASETS, MODELS, PARAMS, TASKS, default_hparams

EXPORTABLE_SOURCES = ("planetoid", "tu", "karate")
EXPORTABLE_TASKS = ("node_classification", "graph_classification")
# Settings the exported script reads besides the hyper-parameters; a None left in them takes
# the script's default.
RUN_KEYS = ("dataset", "task", "model", "seeds", "seed", "patience", "split", "folds",
            "batch_size", "normalize_features", "pooling")  # fmt: skip
REQUIRED = ("epochs", "lr", "hidden_channels", "num_layers", "dropout", "weight_decay")
CHOICES = {
    "split": ("auto", "public", "random", "kfold"),
    "pooling": ("sum", "mean", None),
}


def _refuse(record: RunRecord, what: str) -> UserInputError:
    return UserInputError(
        f"Run {record.id} cannot be exported: its stored config has {what}, which the "
        "catalogue does not allow. The store may be damaged or come from elsewhere; rerun "
        "the experiment to get a clean run, then export that."
    )


def _resolved_config(record: RunRecord) -> dict[str, Any]:
    """The run's config with the trainer's resolved values and the model defaults filled."""
    config = dict(record.config)
    if record.status == "succeeded" and record.result:
        config.update(record.train_result().get("config") or {})
    return config


def _checked_config(record: RunRecord) -> tuple[dict[str, Any], Any]:
    """The stored config, validated against the catalogue, with defaults filled.

    Raises:
        UserInputError: an unknown model or dataset, a task, split or number outside what
            the catalogue allows, or a model/dataset the script cannot reproduce.
    """
    config = _resolved_config(record)
    model, dataset = config.get("model"), config.get("dataset")
    if not isinstance(model, str) or model not in MODELS:
        raise _refuse(record, f"the model {str(model)[:40]!r}")
    files = _graph_files(record)
    if files is not None:
        return _checked_files_config(record, config, files)
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise _refuse(record, f"the dataset {str(dataset)[:40]!r}")
    spec, data = MODELS.get(model), DATASETS.get(dataset)
    task = config.get("task") or data.default_task
    if task not in TASKS:
        raise _refuse(record, f"the task {str(task)[:40]!r}")
    if data.source not in EXPORTABLE_SOURCES or task not in EXPORTABLE_TASKS:
        raise UserInputError(
            f"Export covers the Planetoid and TU datasets and karate, for node or graph "
            f"classification; run "
            f"{record.id} is {task} on {data.name} ({data.source})."
        )
    if spec.export is None:
        raise UserInputError(
            f"Model {spec.name!r} has no export recipe in its catalogue spec, so run "
            f"{record.id} cannot be written as a standalone script."
        )
    config.update(model=spec.name, dataset=data.name, task=task)
    return _filled(record, config, spec, task), spec


def _graph_files(record: RunRecord) -> dict[str, str] | None:
    """The files an imported graph was read from and their sha256 (the run's `sources`)."""
    if record.status != "succeeded" or not record.result:
        return None
    sources = record.train_result().get("sources")
    if not isinstance(sources, dict) or not sources:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in
               sources.items()):  # fmt: skip
        raise _refuse(record, "a malformed list of source files")
    return sources


def _checked_files_config(record: RunRecord, config: dict[str, Any], files: dict[str, str]):
    """A run on the user's own graph: node classification of one node type, the same files
    read by open-autoglm's importer in the script."""
    spec, task, dataset = MODELS.get(config["model"]), config.get("task"), config.get("dataset")
    if not isinstance(dataset, str) or "\n" in dataset or len(dataset) > 1000:
        raise _refuse(record, f"the dataset {str(dataset)[:40]!r}")
    if task != "node_classification" or spec.export is None or config.get("enhance") or \
            config.get("node_type") or spec.requires_hetero or spec.uses_edge_types:  # fmt: skip
        raise UserInputError(
            f"Export covers node classification on one node and edge type with a model that "
            f"has an export recipe and no structure enhancement; run {record.id} is {task} "
            f"with {spec.name} on {dataset}."
        )
    return _filled(record, config, spec, task), spec


def _filled(record: RunRecord, config: dict[str, Any], spec: Any, task: str) -> dict[str, Any]:
    """`config` with the model's defaults where it has none, every value checked."""
    defaults = default_hparams(spec.name, task)
    for key in (*REQUIRED, *spec.takes):
        if config.get(key) is None and defaults.get(key) is not None:
            config[key] = defaults[key]
    missing = [k for k in REQUIRED if config.get(k) is None]
    if missing:
        raise UserInputError(f"Run {record.id} has no value for {', '.join(missing)}.")
    for key in (*REQUIRED, *spec.takes, "seeds", "patience"):
        if config.get(key) is not None and PARAMS[key].problem(config[key]) is not None:
            raise _refuse(record, PARAMS[key].problem(config[key]))
    for key, allowed in CHOICES.items():
        if config.get(key, allowed[0]) not in allowed:
            raise _refuse(record, f"{key}={str(config[key])[:40]!r}")
    for key in ("seed", "folds", "batch_size"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _refuse(record, f"{key}={str(value)[:40]!r}")
    return config


def export_script(record: RunRecord) -> str:
    """The text of a standalone script reproducing train run `record` with plain PyG.

    Raises:
        UserInputError: the run is not a train run, its stored config does not pass the
            catalogue's checks, or its dataset/task/model is not one the script supports
            (Planetoid or TU datasets; node or graph classification; a model with an
            export recipe).
    """
    if record.kind != "train":
        raise UserInputError(
            f"Run {record.id} is a {record.kind} run; only train runs can be exported "
            "(a tune run's best configuration is its retrained train run)."
        )
    config, spec = _checked_config(record)
    files = _graph_files(record)
    data = None if files is not None else DATASETS.get(config["dataset"])
    stored, runs = "n/a", 0
    if record.status == "succeeded" and record.result:
        result = record.train_result()
        stored = f"{result['test_mean']:.4f} ± {result.get('test_std') or 0.0:.4f}"
        runs = len(result.get("runs") or [])
    keys = (*RUN_KEYS, *REQUIRED, *spec.takes)
    return prompts.render(
        "export_script.py.j2",
        run={
            "id": record.id,
            "model": spec.name,
            "dataset": config["dataset"] if data is None else data.name,
            "task": config["task"],
            "metric": "accuracy",
            "stored_test": stored,
            "stored_runs": runs,
            "exported_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        },
        config={k: config.get(k) for k in dict.fromkeys(keys)},
        dataset_dir=config["dataset"] if data is None else data.folder,
        source="files" if data is None else data.source,
        files=files or {},
        recipe=spec.export,
    )
