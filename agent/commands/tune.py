"""`autoglm tune`: search models and hyper-parameters with Optuna, then retrain the best.

Examples:
    autoglm tune --dataset cora --model gcn --trials 30
    autoglm tune --dataset cora --trials 60 --space lr=0.001:0.05 --space dropout=0.5
    autoglm tune --dataset cora --model gcn --trials 200 \\
        --storage postgresql://user@db-host/optuna --study cora-gcn   # on every machine
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserInputError

if TYPE_CHECKING:  # graph_ml.tune imports optuna and torch: only when a tune runs
    from graph_ml.tune import RangeOverride, TrialRecord, TuneResult


SUMMARY = "search models and hyper-parameters (Optuna), then retrain the best"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help=SUMMARY,
        description="Search the model zoo (or the models given) and their hyper-parameters "
        "within a budget of trials and/or seconds, then retrain the best configuration over "
        "several seeds. Studies persist: the same command resumes a killed study, and the "
        "same --storage URL and --study name on several machines share one search.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset", required=True,
        help="dataset name, e.g. cora, or a graph's folder or file (from the current directory)",
    )  # fmt: skip
    parser.add_argument("--task", default=None, help="default: the dataset's default task")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="model to search (repeat or comma-separate); default: every model for the task",
    )
    parser.add_argument(
        "--trials", type=int, default=20, help="total finished trials of the study (default 20)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the search")
    parser.add_argument(
        "--sampler",
        default="tpe",
        help="Optuna sampler (default tpe; a wrong name lists the choices)",
    )
    parser.add_argument(
        "--pruner",
        default="median",
        help="Optuna pruner (default median; a wrong name lists the choices)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="SQLite path or database URL (postgresql://...); default: "
        "$AUTOGLM_WORKSPACE/studies.sqlite",
    )
    parser.add_argument(
        "--study", default=None, help="study name (default: <dataset>-<task>-<models>)"
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="seeds to retrain the best with (0: none)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="sampler seed; worker k uses seed + k (default: drawn, printed and stored)",
    )
    parser.add_argument("--epochs", type=int, default=200, help="epochs per trial (default 200)")
    parser.add_argument(
        "--patience", type=int, default=50, help="early-stopping patience (0: none)"
    )
    parser.add_argument("--n-jobs", type=int, default=1, help="trial threads per process")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    parser.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="PARAM=RANGE",
        help="narrow or override a range: lr=0.001:0.05, dropout=0.5, heads=2,4,8, "
        "gat.heads=4 (model-specific), lr=0.001:0.1:linear; repeatable",
    )
    parser.add_argument("--data-dir", default=None, help="directory with <Name>/raw/ files")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument(
        "--workspace", type=Path, default=None,
        help="experiment store, and the default study storage (default $AUTOGLM_WORKSPACE "
        "or ./.autoglm)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_space(items: list[str]) -> dict[str, RangeOverride]:
    """`PARAM=low:high[:log|linear]`, `PARAM=a,b,c` or `PARAM=value` -> overrides.

    Raises:
        UserInputError: an item that is not of these forms.
    """
    from graph_ml.tune import RangeOverride

    space: dict[str, RangeOverride] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise UserInputError(
                f"--space {item!r}: expected PARAM=low:high, PARAM=a,b,c or PARAM=value "
                "(e.g. lr=0.001:0.05)."
            )
        if ":" in text:
            parts = text.split(":")
            scale = parts.pop() if parts[-1] in ("log", "linear") else None
            if len(parts) != 2:
                raise UserInputError(f"--space {item!r}: a range is low:high, e.g. lr=0.001:0.05.")
            low, high = (_number(p) if p else None for p in parts)
            if isinstance(low, str) or isinstance(high, str):
                raise UserInputError(f"--space {item!r}: range bounds must be numbers.")
            log = None if scale is None else scale == "log"
            space[key] = RangeOverride(low=low, high=high, log=log)
        elif "," in text:
            space[key] = RangeOverride(choices=[_number(c.strip()) for c in text.split(",")])
        else:
            space[key] = RangeOverride(value=_number(text))
    return space


def _models(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [m.strip() for value in values for m in value.split(",") if m.strip()]


def _print_trial(record: TrialRecord) -> None:
    value = "-" if record.value is None else f"{record.value:.4f}"
    print(
        f"trial {record.number}: {record.state.lower()} {value} {record.model} "
        f"({record.epochs} epochs)",
        file=sys.stderr,
    )


def _run(args: argparse.Namespace) -> int:
    from agent.executor import Executor, ExecutorOptions, ToolCall
    from agent.store import ExperimentStore
    from graph_ml.tune import make_config
    from tools.data import dataset_argument

    config = make_config(
        dataset=dataset_argument(args.dataset, args.workspace, args.data_dir),
        task=args.task,
        models=_models(args.model),
        space=parse_space(args.space),
        n_trials=args.trials,
        timeout=args.timeout,
        sampler=args.sampler,
        pruner=args.pruner,
        seed=args.seed,
        n_jobs=args.n_jobs,
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        epochs=args.epochs,
        patience=args.patience or None,
        retrain_seeds=args.seeds,
        data_dir=args.data_dir,
        device=args.device,
    )
    progress = not args.no_progress and sys.stderr.isatty()
    options = ExecutorOptions(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        progress=progress,
        on_trial=None if progress or args.no_progress else _print_trial,
    )
    stored = config.model_dump(mode="json", exclude_none=True)
    call = ToolCall(tool="tune", kind="tune", args={"dataset": config.dataset, "config": stored})
    with ExperimentStore(args.workspace) as store:
        done = Executor(store, options).execute_or_raise(call)
    result = done.output.result
    if args.json:
        print(json.dumps({"run_id": done.run_id, **result.model_dump(mode="json")}, indent=2))
        return 0
    _print_result(result)
    print(f"stored as run {done.run_id} (autoglm experiments show {done.run_id})")
    return 0


def _print_result(result: TuneResult) -> None:
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in result.best_params.items()
    )
    print(f"study {result.study} in {result.storage}")
    print(
        f"trials: {result.n_trials} finished ({result.n_complete} complete, "
        f"{result.n_pruned} pruned), {result.n_failed} failed; "
        f"{result.epochs_trained} epochs trained; sampler {result.sampler}"
        f"{'' if result.seed is None else f' (seed {result.seed})'}, pruner {result.pruner}"
    )
    print(
        f"best: {result.best_model} ({params}), validation {result.metric} "
        f"{result.best_value:.4f} (trial {result.best_trial})"
    )
    if result.test_mean is not None:
        runs = len(result.retrained.runs)
        spread = f" ± {result.test_std:.4f}" if runs > 1 else ""
        print(
            f"retrained on {runs} seed{'s' if runs != 1 else ''}: test {result.metric} "
            f"{result.test_mean:.4f}{spread}"
        )
    if result.importances:
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in result.importances.items())
        print(f"parameter importances ({result.best_model}): {ranked}")
    elif result.importance_note:
        print(f"parameter importances: {result.importance_note}")
    print(
        f"took {result.seconds:.1f} s. The same command resumes an interrupted study; "
        "a larger --trials extends it."
    )
