"""`autoglm train` (also installed as `autoglm-train`): train one model, print a result table.

autoglm-train --dataset cora --task node_classification --epochs 100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from core.errors import UserInputError
from graph_ml.catalogue import PARAMS, TASKS, model_specific_params

SUMMARY = "train a GNN on a dataset and print test metrics"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help=SUMMARY,
        description="Train a graph neural network; unset hyper-parameters take the model's "
        "published defaults. The run is stored in the workspace like every other run "
        "(`autoglm experiments show ID`), its best weights under runs/ID/.",
    )
    parser.add_argument(
        "--dataset", "-d", default="cora",
        help="catalogue name, or a graph's folder or file, read from the current directory "
        "(default: cora)",
    )  # fmt: skip
    parser.add_argument("--task", choices=TASKS, help="default: the dataset's default task")
    parser.add_argument(
        "--model", "-m", default=None,
        help="a catalogue model (`autoglm models`; default: the task's usual baseline)",
    )
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: model's)")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--hidden", dest="hidden_channels", type=int, help="hidden width")
    parser.add_argument("--layers", dest="num_layers", type=int, help="number of layers")
    parser.add_argument("--dropout", type=float, help="dropout probability")
    parser.add_argument("--weight-decay", type=float, help="L2 weight decay")
    for name in model_specific_params():  # heads, aggr, K, alpha: from the catalogue
        param = PARAMS[name]
        kind = {"int": int, "float": float}.get(param.kind, str)
        choices = param.choices or None
        parser.add_argument(f"--{name}", type=kind, choices=choices,
                            help=f"{param.description} (models that take it)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--patience", type=int, help="early-stopping patience, 0 = off")
    parser.add_argument("--split", default="auto", help="auto, public, random, kfold or link")
    parser.add_argument("--folds", type=int, default=10, help="k for k-fold (default: 10)")
    parser.add_argument("--fold", type=int, help="run only this fold")
    parser.add_argument("--batch-size", type=int, help="mini-batch size")
    parser.add_argument("--mini-batch", action="store_true", help="neighbour-sampled batches")
    parser.add_argument("--scheduler", choices=("none", "step", "plateau", "cosine"))
    parser.add_argument(
        "--enhance", help="structure enhancements, comma-separated: gdc, self_loops, "
        "virtual_node, drop_edge, feature_propagation, rw_pe, lap_pe (default: none)",
    )  # fmt: skip
    parser.add_argument("--node-type", help="heterogeneous graph: the node type to classify")
    parser.add_argument("--edge-type", help="heterogeneous graph: the relation to predict")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--data-dir", help="raw dataset directory (default: AUTOGLM_DATA_DIR)")
    parser.add_argument(
        "--workspace", type=Path, default=None,
        help="experiment store (default $AUTOGLM_WORKSPACE or ./.autoglm)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.set_defaults(func=_run)


CONFIG_ARGS = (
    "dataset", "task", "model", "epochs", "lr", "hidden_channels", "num_layers", "dropout",
    "weight_decay", *model_specific_params(), "seeds", "seed", "patience", "split", "folds",
    "fold", "batch_size", "mini_batch", "scheduler", "device", "data_dir", "node_type",
    "edge_type",
)  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from agent.executor import Executor, ExecutorOptions, ToolCall
    from agent.store import ExperimentStore
    from graph_ml.train import TrainConfig
    from tools.data import dataset_argument

    values = {name: getattr(args, name) for name in CONFIG_ARGS}
    if args.enhance:
        values["enhance"] = args.enhance
    values["dataset"] = dataset_argument(values["dataset"], args.workspace, args.data_dir)
    if values["model"] is None:
        values["model"] = _baseline(values["dataset"], values["task"])
    try:
        config = TrainConfig(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in error.errors()
        )
        raise UserInputError(f"Invalid training option(s): {problems}.") from error
    _check(config)
    stored = config.model_dump(mode="json", exclude={"progress"}, exclude_none=True)
    call = ToolCall(tool="train", kind="train", args={"dataset": config.dataset, "config": stored})
    options = ExecutorOptions(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        progress=not (args.no_progress or args.json),
    )
    with ExperimentStore(args.workspace) as store:
        done = Executor(store, options).execute_or_raise(call)
    result = done.output.result
    if args.json:
        print(json.dumps({"run_id": done.run_id, **result.model_dump(mode="json")}, indent=2))
    else:
        print(format_result(result))
        print(f"stored as run {done.run_id} (autoglm experiments show {done.run_id})")
    return 0


def _baseline(dataset: str, task: str | None) -> str:
    """The task's usual baseline model (the catalogue's `TaskSpec.default_model`)."""
    from graph_ml.catalogue import DATASETS, TASK_SPECS

    if task is None and dataset in DATASETS:
        task = DATASETS.get(dataset).default_task
    return TASK_SPECS[task or "node_classification"].default_model


def _check(config) -> None:
    """Refuse what the catalogue already says is wrong, before a run is stored.

    Raises:
        UserInputError: unknown dataset or model, or a model that does not fit the task.
    """
    from graph_ml.catalogue import DATASETS, check_task

    if config.dataset in DATASETS:
        check_task(config.model, config.task or DATASETS.get(config.dataset).default_task)


def format_result(result) -> str:
    """A short table: one row per run, then the mean and standard deviation."""
    cfg = result.config
    label = "ROC-AUC" if result.metric == "roc_auc" else "accuracy"
    lines = [
        f"{cfg.model} on {cfg.dataset} ({cfg.task}), {len(result.runs)} run(s), "
        f"{result.seconds:.1f} s on {result.device}",
        f"{'run':>8} {'seed':>5} {'best ep':>8} {'stopped':>8} {'val':>8} {'test':>8} "
        f"{'macro-F1':>9}",
    ]
    for i, run in enumerate(result.runs):
        name = f"fold {run.fold}" if run.fold is not None else str(i + 1)
        f1 = run.metrics.get("macro_f1")
        lines.append(
            f"{name:>8} {run.seed:>5} {run.best_epoch:>8} {run.stopped_epoch:>8} "
            f"{run.val_metric:>8.4f} {run.test_metric:>8.4f} "
            f"{'' if f1 is None else f'{f1:.4f}':>9}"
        )
    if len(result.runs) > 1:
        lines.append(
            f"test {label}: {result.test_mean:.4f} ± {result.test_std:.4f}   "
            f"(val {result.val_mean:.4f} ± {result.val_std:.4f}, {len(result.runs)} runs)"
        )
    else:  # one seed has no spread to show
        lines.append(f"test {label}: {result.test_mean:.4f}   (val {result.val_mean:.4f}, 1 seed)")
    sizes = getattr(result, "split_sizes", None)
    if sizes:
        lines.append("split: " + " / ".join(f"{k} {v}" for k, v in sizes.items()))
    lines += [f"note: {note}" for note in getattr(result, "notes", [])]
    return "\n".join(lines)
