"""One execution path for every tool call: start run -> tool -> store.

The router expands an action into the tool calls it needs (`ToolCall`, a compare being its
trainings plus one comparison); chat turns, `autoglm train`/`tune` and reruns all hand
their calls to `Executor.execute`, which runs each the same way:

1. start a stored run (its kind, its arguments as config, its parent);
2. run the call's members first (a comparison's trainings, each its own child run);
3. prepare the tool's arguments from the store where they depend on it (a comparison's
   per-seed values, an attribution's checkpoint, a report's run data);
4. call the tool inside one measured step (wall time and peak memory around the whole
   step, members included), storing each training epoch as it happens;
5. record the outcome: the resolved config, the dataset fingerprint, headline metrics and
   the full result, or the failure with its message. A crash inside a tool marks its run
   failed and never loses what the store already holds; Ctrl-C marks it interrupted.

What turns a stored run into words (`agent.explain`) is the caller's next step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent.store import ExperimentStore, RunRecord, interruption
from core.errors import AutoGLMError, UserInputError

EXIT_TOOL_FAILED = 6  # a tool crashed: its run is marked failed, the store is intact
EpochCallback = Callable[[int, int, int, dict[str, float]], None]


class RunFailed(AutoGLMError):
    """A call ran and failed; its run is stored as failed with the tool's message."""

    def __init__(self, message: str, exit_code: int = EXIT_TOOL_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ToolCall(BaseModel):
    """One tool call a routed action expands to.

    Attributes:
        tool: the registry name in `tools.TOOLS`.
        kind: the kind of the stored run it makes (train, tune, compare, inspect, explain),
            or None for a call that makes no run (a report).
        args: the tool's arguments as the plan resolved them (stored as the run's config).
        members: calls whose runs this one consumes, run first as its child runs.
        refs: stored runs this one consumes (a comparison of earlier runs, a report, the
            trained run an attribution explains).
        parent: the run this one derives from (an attribution's trained run), if any.
    """

    tool: str
    kind: str | None
    args: dict[str, Any] = Field(default_factory=dict)
    members: list[ToolCall] = Field(default_factory=list)
    refs: list[int] = Field(default_factory=list)
    parent: int | None = None


@dataclass
class Execution:
    """What one call did."""

    call: ToolCall
    status: str  # succeeded, failed
    run_id: int | None = None
    run_ids: list[int] = field(default_factory=list)  # members first, then this call's run
    output: Any = None  # the tool's result object
    error: str | None = None
    exit_code: int = 0
    files: list[str] = field(default_factory=list)  # what a report wrote


@dataclass
class ExecutorOptions:
    """Who asks and where things go.

    Attributes:
        session_id: the chat session the runs belong to (None: a plain command).
        data_dir: raw datasets (None: `AUTOGLM_DATA_DIR` or the cache).
        progress: tools draw their progress bars on stderr.
        study_timeout: seconds a tuning search may take (the wall-time budget).
        language: the language of report summaries ("en", "zh").
        on_epoch: called as `on_epoch(run_id, seed, epoch, metrics)` after each stored epoch.
        on_trial: called with each finished Optuna trial.
    """

    session_id: str | None = None
    data_dir: Path | None = None
    progress: bool = False
    study_timeout: float | None = None
    language: str = "en"
    on_epoch: EpochCallback | None = None
    on_trial: Callable[[Any], None] | None = None


def seed_and_fold(config: Any, index: int) -> tuple[int, int | None]:
    """The seed and fold of training run `index` of a `TrainConfig` (seed-major, folds
    inside a seed, as graph_ml plans them; the fold is None without k-fold)."""
    kfold = config.task == "graph_classification" and config.split in ("auto", "kfold")
    if not kfold:
        return config.seed + index, None
    folds = [config.fold] if config.fold is not None else list(range(config.folds))
    return config.seed + index // len(folds), folds[index % len(folds)]


def summary_metrics(kind: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """The headline numbers of a result: test/val mean and std, or a tune's best value."""
    if not result:
        return {}
    if kind == "train":
        result = result["result"] if "runs" not in result and "result" in result else result
        keys = ("metric", "test_mean", "test_std", "val_mean", "val_std")
        return {k: result[k] for k in keys if k in result}
    if kind == "tune":
        keys = ("metric", "best_value", "best_model", "best_params", "test_mean", "test_std",
                "n_trials")  # fmt: skip
        return {k: result[k] for k in keys if result.get(k) is not None}
    if kind == "compare":
        keys = ("metric", "best", "best_run_id", "p_value", "significant")
        return {k: result[k] for k in keys if k in result}
    return {}


LABEL_KEYS = ("model", "dataset", "hidden_channels", "num_layers", "heads", "lr", "dropout",
              "weight_decay", "epochs")  # fmt: skip


MAX_LABEL_KEYS = 2  # more differing settings than this are listed by the explanation instead


def compare_labels(records: list[RunRecord]) -> list[str]:
    """Names for compared runs: the model, plus what else differs when the models agree
    (two GCNs differ by their hidden size; a GCN and a GAT by being a GCN and a GAT). A tuning
    is named by its retrained best configuration, marked "tuned"."""
    views = [r.as_training() or r for r in records]
    models = {v.config.get("model") for v in views}
    keys = LABEL_KEYS[1:] if len(models) == 1 else ("dataset",)
    differ = [k for k in keys if len({json.dumps(v.config.get(k)) for v in views}) > 1]
    shown = differ if len(differ) <= MAX_LABEL_KEYS else []
    labels = []
    for record, view in zip(records, views, strict=True):
        extra = ", ".join(f"{k}={_short(view.config.get(k))}" for k in shown)
        name = str(view.config.get("model", record.kind))
        name += " tuned" if record.kind == "tune" else ""
        labels.append(f"{name} ({extra + ', ' if extra else ''}run {record.id})")
    return labels


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Executor:
    """Runs tool calls against one experiment store.

    Args:
        store: the workspace's experiment store.
        options: session, directories, progress, budgets and callbacks.
    """

    def __init__(self, store: ExperimentStore, options: ExecutorOptions | None = None) -> None:
        self.store = store
        self.options = options or ExecutorOptions()

    # -- the one path ---------------------------------------------------------------------

    def execute(
        self, call: ToolCall, steps: list[int] | None = None, parent: int | None = None
    ) -> Execution:
        """Run `call` (members first) and store what it did.

        Args:
            call: the tool call.
            steps: ids of steps logged before the run existed (planning, rules); they are
                attached to this call's run and the list is emptied.
            parent: the run this one derives from (a compare for its trainings, the old run
                for a rerun).

        Returns:
            The execution; a failed one carries the message and exit code.

        Raises:
            KeyboardInterrupt: after marking the run interrupted.
        """
        if call.kind is None:
            return self._unstored(call)
        run_id = self.store.start_run(
            call.kind,
            call.args,
            session_id=self.options.session_id,
            parent_id=parent if parent is not None else call.parent,
        )
        if steps:
            self.store.attach_steps(steps, run_id)
            steps.clear()
        done = Execution(call=call, status="succeeded", run_id=run_id)
        try:
            with self.store.step(run_id, f"tool:{call.tool}", self.options.session_id) as extra:
                members = self._members(call, run_id, done)
                if done.status != "failed":
                    self._call_tool(call, run_id, members, done)
                if done.error:
                    extra["detail"] = {"error": done.error}
        except KeyboardInterrupt as stop:
            self.store.finish_run(run_id, "interrupted", error=interruption(stop))
            raise
        if done.status == "succeeded":
            self._store_facts(run_id)
        done.run_ids.append(run_id)
        return done

    def _store_facts(self, run_id: int) -> None:
        """Compute the run's facts (`agent.facts`) after its step is logged, so its timing is
        in them, and store them with the run. A failure to compute them is stored as such
        (the explanation then computes them again and raises where it breaks)."""
        from agent.facts import facts_for

        try:
            facts = facts_for(self.store.get_run(run_id), self.store)
            stored = None if facts is None else facts.model_dump(mode="json")
        except Exception as error:  # noqa: BLE001 - the run itself succeeded and is stored
            stored = {"error": f"{type(error).__name__}: {error}"}
        self.store.set_facts(run_id, stored)

    def execute_or_raise(self, call: ToolCall, parent: int | None = None) -> Execution:
        """`execute`, for commands: a failed call raises `RunFailed` naming its stored run.

        Raises:
            RunFailed: the call failed (its run is stored as failed).
        """
        done = self.execute(call, parent=parent)
        if done.status != "succeeded":
            raise RunFailed(f"Run {done.run_id} ({call.kind}) failed: {done.error}", done.exit_code)
        return done

    def _members(self, call: ToolCall, run_id: int, done: Execution) -> list[RunRecord]:
        """Run the call's members as child runs; the stored runs it refers to come after."""
        records = []
        for member in call.members:
            sub = self.execute(member, parent=run_id)
            done.run_ids.extend(sub.run_ids)
            if sub.status != "succeeded":
                message = f"its run {sub.run_id} ({member.kind}) failed: {sub.error}"
                self.store.finish_run(run_id, "failed", error=message)
                done.status, done.error, done.exit_code = "failed", sub.error, sub.exit_code
                return []
            records.append(self.store.get_run(sub.run_id))
        return records + [self.store.get_run(r) for r in call.refs]

    def _call_tool(
        self, call: ToolCall, run_id: int, members: list[RunRecord], done: Execution
    ) -> None:
        from tools import TOOLS

        try:
            args, ctx = PREPARE[call.tool](self, call, run_id, members)
            done.output = TOOLS.get(call.tool)(args, ctx)
            RECORD.get(call.tool, Executor._record_result)(self, call, run_id, done.output)
        except AutoGLMError as error:
            self._fail(run_id, done, str(error), error.exit_code)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - a crash in a tool must not lose the store
            full = self.store.full_disk_failure(error, run_id)  # torch.save on a full disk
            if full is not None:
                self._fail(run_id, done, str(full), full.exit_code)
            else:
                self._fail(run_id, done, f"{type(error).__name__}: {error}", EXIT_TOOL_FAILED)

    def _fail(self, run_id: int, done: Execution, message: str, code: int) -> None:
        self.store.finish_run(run_id, "failed", error=message)
        done.status, done.error, done.exit_code = "failed", message, code

    def _unstored(self, call: ToolCall) -> Execution:
        """A call that makes no run (a report): the tool, timed as a step of its first ref."""
        from tools import TOOLS

        done = Execution(call=call, status="succeeded")
        anchor = call.refs[0] if call.refs else None
        with self.store.step(anchor, f"tool:{call.tool}", self.options.session_id):
            args, ctx = PREPARE[call.tool](self, call, None, [])
            outputs = [TOOLS.get(call.tool)(a, ctx) for a in args]
        for output in outputs:
            pages = [str(output.markdown), str(output.html)]
            if call.args.get("format") == "html":
                pages.reverse()
            done.files += [*pages, *(str(p) for p in output.images)]
        done.output = outputs
        return done

    # -- preparing each tool's arguments -----------------------------------------------------

    def _context(self, run_id: int | None = None, on_epoch=None, checkpoints: bool = False):
        from tools import ToolContext

        return ToolContext(
            workspace=self.store.workspace,
            data_dir=self.options.data_dir,
            on_epoch=on_epoch,
            on_trial=self.options.on_trial,
            checkpoint_dir=self.store.checkpoint_dir(run_id) if checkpoints else None,
            study_storage=self.store.studies_url(),
            progress=self.options.progress,
        )

    def _prepare_train(self, call: ToolCall, run_id: int, members: list[RunRecord]):
        from tools.train import TrainArgs, train_config

        args = TrainArgs.model_validate(call.args)
        config = train_config(args, args.dataset)

        def on_epoch(index: int, epoch: int, metrics: dict[str, float]) -> None:
            seed, fold = seed_and_fold(config, index)
            # One transaction per epoch: a kill -9 mid-run keeps every epoch logged so far.
            self.store.log_epoch(run_id, seed, epoch, metrics, fold=fold)
            if self.options.on_epoch is not None:
                self.options.on_epoch(run_id, seed, epoch, metrics)

        return args, self._context(run_id, on_epoch, checkpoints=True)

    def _prepare_tune(self, call: ToolCall, run_id: int, members: list[RunRecord]):
        args = dict(call.args)
        if args.get("config") is None:
            # A study counts trials over all sessions: each chat request gets its own, or a
            # repeat would stop at once with its budget spent. A full config (`autoglm tune`)
            # keeps its study, so the same command resumes it.
            args["study"] = f"run{run_id}-{args['dataset']}-{int(time.time())}"
        if self.options.study_timeout is not None and args.get("timeout") is None:
            args["timeout"] = self.options.study_timeout
        return args, self._context(run_id)

    def _prepare_compare(self, call: ToolCall, run_id: int, members: list[RunRecord]):
        values = []
        for record in members:
            trained = record.as_training() if record.status == "succeeded" else None
            runs = ((trained.result or {}).get("runs") or []) if trained else []
            if not runs:
                what = (
                    "a tuning whose best configuration was not retrained (retrain_seeds=0)"
                    if record.kind == "tune" and record.status == "succeeded"
                    else f"a {record.kind} run ({record.status})"
                )
                raise UserInputError(
                    f"Cannot compare: run {record.id} is {what}, with no test results. "
                    "Compare trainings, or tunings that retrained their best configuration."
                )
            values.append([r["test_metric"] for r in runs])
        entries = [{"label": label, "run_id": record.id, "values": tested}
                   for record, label, tested in zip(members, compare_labels(members), values,
                                                    strict=True)]  # fmt: skip
        metric = (members[0].result or {}).get("metric", "accuracy") if members else "accuracy"
        return {"entries": entries, "metric": metric}, self._context()

    def _prepare_inspect(self, call: ToolCall, run_id: int, members: list[RunRecord]):
        return {"dataset": call.args["dataset"]}, self._context()

    def _prepare_explain(self, call: ToolCall, run_id: int, members: list[RunRecord]):
        if not members:
            raise UserInputError("There is no trained run to explain; train a model first.")
        record = members[-1]
        checkpoint = ((record.result or {}).get("runs") or [{}])[0].get("checkpoint")
        if not checkpoint:
            raise UserInputError(f"Run {record.id} kept no checkpoint to explain; train it again.")
        args = {"config": record.config, "checkpoint": checkpoint, "nodes": call.args["nodes"]}
        return args, self._context()

    def _prepare_report(self, call: ToolCall, run_id: None, members: list[RunRecord]):
        from agent.report import report_args

        language, out = self.options.language, call.args.get("out_dir")
        return [report_args(self.store, r, language, out) for r in call.refs], self._context()

    # -- recording each tool's outcome ---------------------------------------------------------

    def _record_train(self, call: ToolCall, run_id: int, output: Any) -> None:
        result = output.result
        self.store.set_dataset_fingerprint(run_id, output.fingerprint)
        self.store.update_config(run_id, result.config.model_dump(mode="json"))
        dumped = result.model_dump(mode="json")
        self.store.finish_run(run_id, "succeeded", summary_metrics("train", dumped), dumped)

    def _record_tune(self, call: ToolCall, run_id: int, output: Any) -> None:
        self.store.set_dataset_fingerprint(run_id, output.fingerprint)
        dumped = output.result.model_dump(mode="json")
        self.store.finish_run(run_id, "succeeded", summary_metrics("tune", dumped), dumped)

    def _record_inspect(self, call: ToolCall, run_id: int, output: Any) -> None:
        self.store.set_dataset_fingerprint(run_id, output.fingerprint)
        self._record_result(call, run_id, output)

    def _record_compare(self, call: ToolCall, run_id: int, output: Any) -> None:
        dumped = output.model_dump(mode="json")
        self.store.finish_run(run_id, "succeeded", summary_metrics("compare", dumped), dumped)

    def _record_result(self, call: ToolCall, run_id: int, output: Any) -> None:
        self.store.finish_run(run_id, "succeeded", result=output.model_dump(mode="json"))


PREPARE = {
    "train": Executor._prepare_train,
    "tune": Executor._prepare_tune,
    "compare": Executor._prepare_compare,
    "inspect": Executor._prepare_inspect,
    "explain": Executor._prepare_explain,
    "report": Executor._prepare_report,
}
RECORD = {
    "train": Executor._record_train,
    "tune": Executor._record_tune,
    "compare": Executor._record_compare,
    "inspect": Executor._record_inspect,
}


def rerun_call(record: RunRecord) -> ToolCall:
    """The call that repeats a stored train or tune run with its full config.

    A finished training run stores the trainer's fully resolved `TrainConfig`, so its rerun
    repeats every field (split, scheduler, ...); a tune run repeats its arguments in a fresh
    study (the old study has its budget spent).

    Raises:
        UserInputError: the run is of a kind that cannot be rerun.
    """
    if record.kind not in ("train", "tune"):
        raise UserInputError(
            f"Run {record.id} is a {record.kind} run; only train and tune runs can be rerun "
            "(rerun the runs it refers to instead)."
        )
    dataset = str(record.config.get("dataset"))
    if record.kind == "train":
        config = record.config.get("config") or record.config
        config = {k: v for k, v in config.items() if k != "progress"}
        return ToolCall(tool="train", kind="train", args={"dataset": dataset, "config": config})
    args = {k: v for k, v in record.config.items() if k not in ("study", "timeout")}
    if isinstance(args.get("config"), dict):  # a fresh study: the old one has its budget spent
        args["study"] = f"rerun-of-{record.id}-{int(time.time())}"
    return ToolCall(tool="tune", kind="tune", args=args)
