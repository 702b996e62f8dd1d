"""A conversation with the agent: text -> planner -> router -> tool -> store -> explanation.

One `Session` is one chat (or one `autoglm run`). Every turn is stored: the user's text, the
plan and what it cost (latency, tokens, re-asks), the rule decisions, each tool's wall time
and peak memory, the runs it produced with their curves, and the reply. Follow-ups resolve
against the session's state: "same but with GAT" keeps what the last run was asked with and
changes only what the new text names; "compare that with the previous run" means the last
two runs; "why did it overfit?" is answered from the stored curves of the last run (how a
request refers to earlier runs lives in `agent.followups`).

A rule refusal goes back to the planner once as feedback; a second refusal reaches the user.
A crash inside a tool marks its run failed and becomes a clear message; the store stays
consistent (each write is one transaction) and the session goes on.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.errors import RuleViolation
from agent.experiments import summary_metrics
from agent.followups import FollowUps
from agent.router import Limits, RouteContext, RoutedAction, Router
from agent.store import ExperimentStore
from core.errors import AutoGLMError, UserInputError

EXIT_TOOL_FAILED = 6  # a tool crashed: its run is marked failed, the store is intact
MEMORY_SAMPLE_S = 0.05  # how often the peak-memory sampler looks at the process
EXAMPLE_REQUEST = 'e.g. "train a GCN on Cora for 100 epochs"'


@dataclass
class Cost:
    seconds: float = 0.0
    peak_mb: float | None = None


@contextlib.contextmanager
def measure() -> Iterator[Cost]:
    """Wall time and peak resident memory (sampled) of the block."""
    import psutil

    process = psutil.Process()
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(MEMORY_SAMPLE_S):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cost, start = Cost(), time.perf_counter()
    try:
        yield cost
    finally:
        stop.set()
        sampler.join()
        cost.seconds = time.perf_counter() - start
        cost.peak_mb = max(peak[0], process.memory_info().rss) / 2**20


class Outcome(BaseModel):
    """What one action of a turn did."""

    action: str
    status: str  # succeeded, failed, interrupted, refused, declined, answered
    text: str  # the explanation, answer or error message shown to the user
    run_id: int | None = None
    run_ids: list[int] = []  # every run the action produced (a compare's members too)
    fields: dict[str, Any] = {}
    decisions: list[str] = []
    files: list[str] = []  # reports written
    exit_code: int = 0


class Turn(BaseModel):
    """One request and everything it produced."""

    session_id: str
    text: str
    plan: list[dict[str, Any]] = []
    replanned: bool = False
    outcomes: list[Outcome] = []

    @property
    def reply(self) -> str:
        return "\n\n".join(o.text for o in self.outcomes if o.text)

    @property
    def exit_code(self) -> int:
        return next((o.exit_code for o in self.outcomes if o.exit_code), 0)

    @property
    def run_ids(self) -> list[int]:
        return [r for o in self.outcomes for r in o.run_ids]


@dataclass
class SessionOptions:
    """How a session runs; the CLI fills these from its flags.

    Attributes:
        data_dir: raw datasets (None: `AUTOGLM_DATA_DIR` or the cache).
        limits: budgets (None: `<workspace>/limits.json` or the defaults).
        confirm: asked `confirm(reason) -> bool` before an expensive plan; None runs it.
        progress: show progress bars (stderr) while training and tuning.
        on_plan: called with the routed actions before they run (the CLI prints the plan).
    """

    data_dir: Path | None = None
    limits: Limits | None = None
    confirm: Callable[[str], bool] | None = None
    progress: bool = False
    on_plan: Callable[[list[RoutedAction]], None] | None = None
    language: str | None = None


class Session:
    """A chat with the agent, stored in `store`.

    Args:
        backend: the language model that plans (an `agent.llm` backend).
        store: the experiment store of the workspace.
        session_id: continue this stored session (`autoglm chat --resume`); None starts one.
        options: directories, limits, confirmation and progress.
    """

    def __init__(
        self,
        backend: Any,
        store: ExperimentStore,
        session_id: str | None = None,
        options: SessionOptions | None = None,
        title: str = "chat",
    ) -> None:
        self.store = store
        self.options = options or SessionOptions()
        self.backend = backend
        self._planner = None
        self.router = Router()
        self.limits = self.options.limits or Limits.load(store.workspace)
        if session_id is None:
            self.id = store.create_session(title)
            self.state: dict[str, Any] = {"runs": [], "last": None}
        else:
            record = store.get_session(session_id)
            self.id = record.id
            self.state = {"runs": [], "last": None, **record.state}
        self.followups = FollowUps(store, self.id, self.state)

    @property
    def planner(self):
        """The planner, built on first use (`autoglm inspect` never needs one)."""
        if self._planner is None:
            from agent.planner import Planner

            if self.backend is None:
                raise UserInputError("This session has no language model to plan with.")
            self._planner = Planner(self.backend)
        return self._planner

    # -- the turn ---------------------------------------------------------------------

    def run_action(self, fields: dict[str, Any], text: str = "") -> Turn:
        """Check and run one action given directly (no planner): `autoglm inspect`, scripts.

        Raises:
            RuleViolation: a rule refused it (there is no model to send it back to).
        """
        turn = Turn(session_id=self.id, text=text or str(fields), plan=[fields])
        self.followups.start_turn(bool(fields.get("run_id") or fields.get("run_ids")))
        fields = self.followups.resolve(dict(fields))
        start = time.perf_counter()
        item = self.router.check(fields, self._route_context(text, fields, None))
        step = self.store.log_step(
            None,
            "rules",
            time.perf_counter() - start,
            detail={"action": item.action, "decisions": [d.model_dump() for d in item.decisions]},
            session_id=self.id,
        )
        turn.outcomes.append(self._execute(item, text, [step]))
        self.store.set_session_state(self.id, self.state)
        return turn

    def handle(self, text: str) -> Turn:
        """Plan, check, run and explain one request.

        Raises:
            UserInputError: the request is empty.
            PlanningError: the model produced no usable plan within its attempts.
            RuleViolation: the plan was refused twice (once back to the model, then here).
        """
        text = (text or "").strip()
        if not text:
            raise UserInputError(f"The request is empty: say what to do, {EXAMPLE_REQUEST}.")
        self.store.add_message(self.id, "user", text)
        turn = Turn(session_id=self.id, text=text)
        self.followups.start_turn()
        try:
            routed, step_ids = self._plan_and_route(text, turn)
            if self.options.on_plan is not None:
                self.options.on_plan(routed)
            for item in routed:
                turn.outcomes.append(self._execute(item, text, step_ids))
                if turn.outcomes[-1].status == "failed":
                    break  # later steps build on this one ("... and write a report")
        except AutoGLMError as error:
            self.store.add_message(self.id, "assistant", f"error: {error}")
            raise
        last = next((o.run_id for o in reversed(turn.outcomes) if o.run_id), None)
        self.store.add_message(
            self.id, "assistant", turn.reply, run_id=last, data=turn.model_dump(mode="json")
        )
        self.store.set_session_state(self.id, self.state)
        return turn

    def _plan(self, text: str, feedback: str | None = None) -> tuple[Any, int]:
        context = self.followups.planner_context(feedback)
        with measure() as cost:
            plan = self.planner.plan(text, context)
        step = self.store.log_step(
            None,
            "plan" if feedback is None else "replan",
            plan.seconds or cost.seconds,
            cost.peak_mb,
            detail={
                "actions": [a.model_dump(exclude_none=True) for a in plan.actions],
                "fixes": [str(fix) for fix in plan.fixes],  # what grounding changed, and why
                "context": context,
            },
            prompt_tokens=plan.prompt_tokens,
            completion_tokens=plan.completion_tokens,
            reasks=plan.attempts - 1,
            session_id=self.id,
        )
        return plan, step

    def _plan_and_route(self, text: str, turn: Turn) -> tuple[list[RoutedAction], list[int]]:
        resolved = self.followups.reference_plan(text)
        if resolved is not None:
            step = self.store.log_step(
                None,
                "plan",
                0.0,
                detail={
                    "actions": [a.model_dump(exclude_none=True) for a in resolved.actions],
                    "resolved": "a reference to this chat's earlier runs",
                },
                session_id=self.id,
            )
            turn.plan = [a.model_dump(exclude_none=True) for a in resolved.actions]
            return self._route_all(resolved, text, [step]), [step]
        plan, step = self._plan(text)
        self.followups.named_runs = bool(plan.mentions and plan.mentions.run_ids)
        steps = [step]
        turn.plan = [a.model_dump(exclude_none=True) for a in plan.actions]
        try:
            return self._route_all(plan, text, steps), steps
        except RuleViolation as refusal:
            # Errors the model caused go back to it once, with the rule's own words.
            feedback = f"The rule engine refused the plan: {refusal}"
            plan, step = self._plan(text, feedback)
            steps.append(step)
            turn.replanned = True
            turn.plan = [a.model_dump(exclude_none=True) for a in plan.actions]
            return self._route_all(plan, text, steps), steps

    def _route_all(self, plan: Any, text: str, steps: list[int]) -> list[RoutedAction]:
        routed = []
        for action in plan.actions:
            fields = self.followups.resolve(action.model_dump(exclude_none=True))
            start = time.perf_counter()
            try:
                item = self.router.check(fields, self._route_context(text, fields, plan))
            except RuleViolation as refusal:
                steps.append(
                    self.store.log_step(
                        None,
                        "rules",
                        time.perf_counter() - start,
                        detail={"action": fields, "refused": str(refusal)},
                        session_id=self.id,
                    )
                )
                raise
            steps.append(
                self.store.log_step(
                    None,
                    "rules",
                    time.perf_counter() - start,
                    detail={
                        "action": item.action,
                        "decisions": [d.model_dump() for d in item.decisions],
                    },
                    session_id=self.id,
                )
            )
            routed.append(item)
        return routed

    def _route_context(self, text: str, fields: dict[str, Any], plan: Any) -> RouteContext:
        return self.followups.route_context(text, fields, plan, self.limits, self.options.data_dir)

    # -- execution --------------------------------------------------------------------

    def _execute(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        decisions = item.explain()
        if item.needs_confirmation and self.options.confirm is not None:
            if not self.options.confirm(item.confirmation_reason or "this plan is expensive"):
                return Outcome(
                    action=item.action,
                    status="declined",
                    text=f"Not started ({item.confirmation_reason}); nothing was run.",
                    fields=item.fields,
                    decisions=decisions,
                )
        handler = getattr(self, f"_do_{item.action}")
        outcome: Outcome = handler(item, text, step_ids)
        outcome.decisions = decisions
        outcome.fields = item.fields
        if outcome.run_id is not None and outcome.status == "succeeded":
            self.followups.turn_runs.append(outcome.run_id)
        return outcome

    def _tool_context(self, run_id: int | None = None, train_args: dict[str, Any] | None = None):
        """The tool context of a call: directories, progress, and (for a stored training run)
        the callback that stores each epoch's metrics as it happens, under the real seed and
        fold of each of its runs."""
        from agent.experiments import seed_and_fold
        from tools import ToolContext
        from tools.train import TrainArgs, train_config

        config = None
        if train_args is not None:
            # Invalid arguments: the tool refuses them with its own message, and logs nothing.
            with contextlib.suppress(ValueError):
                config = train_config(TrainArgs.model_validate(train_args), train_args["dataset"])

        def on_epoch(run_index: int, epoch: int, metrics: dict[str, float]) -> None:
            seed, fold = seed_and_fold(config, run_index)
            # One transaction per epoch: a kill -9 mid-run keeps every epoch logged so far.
            self.store.log_epoch(run_id, seed, epoch, metrics, fold=fold)

        return ToolContext(
            workspace=self.store.workspace,
            data_dir=self.options.data_dir,
            on_epoch=on_epoch if run_id is not None and config is not None else None,
            checkpoint_dir=self.store.checkpoint_dir(run_id) if run_id is not None else None,
            progress=self.options.progress,
        )

    def _run_tool(
        self, kind: str, tool: str, args: dict[str, Any], run_id: int, ctx
    ) -> tuple[Any | None, Outcome | None]:
        """Call a tool for a stored run; a failure marks the run and becomes an Outcome."""
        from tools import TOOLS

        cost = Cost()
        try:
            with measure() as cost:
                result = TOOLS.get(tool)(args, ctx)
        except KeyboardInterrupt:
            self.store.finish_run(run_id, "interrupted", error="interrupted by the user")
            raise
        except AutoGLMError as error:
            return None, self._failed(kind, run_id, str(error), error.exit_code, cost, tool)
        except Exception as error:  # noqa: BLE001 - a crash in a tool must not lose the store
            message = f"{type(error).__name__}: {error}"
            return None, self._failed(kind, run_id, message, EXIT_TOOL_FAILED, cost, tool)
        self.store.log_step(run_id, f"tool:{tool}", cost.seconds, cost.peak_mb, session_id=self.id)
        return result, None

    def _failed(
        self, kind: str, run_id: int, message: str, code: int, cost: Cost, tool: str
    ) -> Outcome:
        self.store.log_step(
            run_id,
            f"tool:{tool}",
            cost.seconds,
            cost.peak_mb,
            detail={"error": message},
            session_id=self.id,
        )
        self.store.finish_run(run_id, "failed", error=message)
        self.followups.add_run(run_id)
        return Outcome(
            action=kind,
            status="failed",
            run_id=run_id,
            run_ids=[run_id],
            text=f"Run {run_id} ({kind}) failed: {message} The run is marked failed; earlier "
            "runs and the store are intact.",
            exit_code=code,
        )

    def _explain(self, run_id: int, text: str) -> str:
        from agent.explain import explain_run

        with measure() as cost:
            record = self.store.get_run(run_id)
            try:
                words = explain_run(record, store=self.store, user_text=text)
            except Exception as error:  # noqa: BLE001 - the run is stored; losing the turn is worse
                words = (
                    f"Run {run_id} ({record.title}) finished as {record.status}, but its "
                    f"explanation could not be written ({type(error).__name__}: {error}); "
                    f"`autoglm experiments show {run_id}` shows the stored numbers."
                )
        self.store.log_step(run_id, "explain", cost.seconds, cost.peak_mb, session_id=self.id)
        return words

    def _explained(
        self, kind: str, run_id: int, text: str, run_ids: list[int] | None = None
    ) -> Outcome:
        """The outcome of an action whose run succeeded, with the run's explanation."""
        return Outcome(
            action=kind,
            status="succeeded",
            run_id=run_id,
            run_ids=run_ids or [run_id],
            text=self._explain(run_id, text),
        )

    def _start(self, kind: str, config: dict[str, Any], step_ids: list[int], parent=None) -> int:
        run_id = self.store.start_run(kind, config, session_id=self.id, parent_id=parent)
        if step_ids:  # the turn's planning and rule steps belong to its first run
            self.store.attach_steps(step_ids, run_id)
            step_ids.clear()
        return run_id

    def _train_run(
        self, fields: dict[str, Any], step_ids: list[int], parent: int | None = None
    ) -> tuple[int, Outcome | None]:
        args = {k: v for k, v in fields.items() if k != "models"}
        run_id = self._start("train", args, step_ids, parent)
        ctx = self._tool_context(run_id, args)
        out, failure = self._run_tool("train", "train", args, run_id, ctx)
        if failure is not None:
            return run_id, failure
        result = out.result
        self.store.set_dataset_fingerprint(run_id, out.fingerprint)
        self.store.update_config(run_id, result.config.model_dump(mode="json"))
        dumped = result.model_dump(mode="json")
        metrics = summary_metrics("train", dumped)  # the same headline numbers as a rerun's
        self.store.finish_run(run_id, "succeeded", metrics=metrics, result=dumped)
        return run_id, None

    def _do_train(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        run_id, failure = self._train_run(item.fields, step_ids)
        self.followups.remember(item, run_id)
        if failure is not None:
            return failure
        return self._explained("train", run_id, text)

    def _do_compare(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        fields = item.fields
        config = {k: v for k, v in fields.items()}
        compare_id = self._start("compare", config, step_ids)
        members: list[int] = [int(r) for r in fields.get("run_ids") or []]
        if not members:
            for model in fields.get("models") or []:
                run_id, failure = self._train_run({**fields, "model": model}, [], compare_id)
                self.state["runs"].append(run_id)
                if failure is not None:
                    self.store.finish_run(compare_id, "failed", error=failure.text)
                    self.followups.remember(item, compare_id)
                    return failure
                members.append(run_id)
        entries = []
        records = [self.store.get_run(run_id) for run_id in members]
        for record, label in zip(records, _labels(records), strict=True):
            values = [r["test_metric"] for r in (record.result or {}).get("runs", [])]
            if record.status != "succeeded" or not values:
                message = f"run {record.id} has no test results to compare ({record.status})"
                self.store.finish_run(compare_id, "failed", error=message)
                raise UserInputError(f"Cannot compare: {message}.")
            entries.append({"label": label, "run_id": record.id, "values": values})
        metric = (self.store.get_run(members[0]).result or {}).get("metric", "accuracy")
        args = {"entries": entries, "metric": metric}
        out, failure = self._run_tool("compare", "compare", args, compare_id, self._tool_context())
        if failure is not None:
            return failure
        self.store.finish_run(
            compare_id,
            "succeeded",
            metrics={"best": out.best, "best_run_id": out.best_run_id, "p_value": out.p_value},
            result=out.model_dump(mode="json"),
        )
        self.followups.remember(item, compare_id)
        return self._explained("compare", compare_id, text, [*members, compare_id])

    def _do_tune(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        run_id = self._start("tune", item.fields, step_ids)
        ctx = self._tool_context()
        ctx.study_storage = self.store.studies_url()
        args = {
            **item.fields,
            "study": f"run{run_id}-{item.fields['dataset']}",
            "timeout": self.limits.max_wall_seconds,  # the search stops at the wall-time budget
        }
        out, failure = self._run_tool("tune", "tune", args, run_id, ctx)
        self.followups.remember(item, run_id)
        if failure is not None:
            return failure
        result = out.result
        self.store.finish_run(
            run_id,
            "succeeded",
            metrics={
                "best_value": result.best_value,
                "best_params": result.best_params,
                "test_mean": result.test_mean,
                "test_std": result.test_std,
            },
            result=result.model_dump(mode="json"),
        )
        return self._explained("tune", run_id, text)

    def _do_inspect(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        run_id = self._start("inspect", item.fields, step_ids)
        args = {"dataset": item.fields["dataset"]}
        out, failure = self._run_tool("inspect", "inspect", args, run_id, self._tool_context())
        self.followups.add_run(run_id)
        if failure is not None:
            return failure
        self.store.set_dataset_fingerprint(run_id, out.fingerprint)
        self.store.finish_run(run_id, "succeeded", result=out.model_dump(mode="json"))
        return self._explained("inspect", run_id, text)

    def _do_explain(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        target = self.followups.target(item)
        item.fields["run_id"] = target
        if target is None:
            return _no_run("explain")
        nodes = item.fields.get("nodes")
        if not nodes:
            return Outcome(action="explain", status="answered", text=self._explain(target, text))
        record = self.store.get_run(target)
        wanted = item.fields.get("model")
        if record.kind != "train" or (wanted and record.config.get("model") != wanted):
            # Attributions need a trained model: the last one (of the named family).
            trained = self.followups.session_runs(("train",))
            fits = [r for r in trained if self.store.get_run(r).config.get("model") == wanted]
            if not trained:
                return _no_run("explain")
            target = item.fields["run_id"] = (fits or trained)[-1]
            record = self.store.get_run(target)
        config = {**record.config, "nodes": nodes, "run_id": target}
        run_id = self._start("explain", config, step_ids, parent=target)
        checkpoint = ((record.result or {}).get("runs") or [{}])[0].get("checkpoint")
        if not checkpoint:
            self.store.finish_run(run_id, "failed", error="the run kept no checkpoint")
            raise UserInputError(f"Run {target} kept no checkpoint to explain; train it again.")
        args = {"config": record.config, "checkpoint": checkpoint, "nodes": nodes}
        out, failure = self._run_tool("explain", "explain", args, run_id, self._tool_context())
        if failure is not None:
            return failure
        self.store.finish_run(run_id, "succeeded", result=out.model_dump(mode="json"))
        self.state["runs"].append(run_id)
        return self._explained("explain", run_id, text)

    def _do_answer(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        target = self.followups.target(item)
        item.fields["run_id"] = target
        if target is None:
            return _no_run("answer")
        return Outcome(action="answer", status="answered", text=self._explain(target, text))

    def _do_report(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        ids = [int(r) for r in item.fields.get("run_ids") or []]
        if not (self.followups.named_runs and ids):
            target = self.followups.target(item)
            ids = [] if target is None else [target]
        item.fields["run_ids"] = ids
        if not ids:
            return _no_run("report")
        from agent.explain import detect_language
        from agent.report import write_reports

        language = self.options.language or detect_language(text)
        with measure() as cost:  # reads the runs from the store, then calls the report tool
            written = write_reports(self.store, ids, item.fields.get("format"), language)
        step = f"tool:{item.tool}"  # the router routes report actions to the report tool
        self.store.log_step(ids[0], step, cost.seconds, cost.peak_mb, session_id=self.id)
        files = [str(p) for p in written]
        return Outcome(
            action="report",
            status="succeeded",
            text="Report written: " + ", ".join(files),
            files=files,
        )

    def _do_clarify(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        # Nothing ran: a script calling `autoglm run` must not read this as done.
        return Outcome(
            action="clarify",
            status="answered",
            text=item.fields["question"],
            exit_code=UserInputError.exit_code,
        )


LABEL_KEYS = ("model", "dataset", "hidden_channels", "num_layers", "heads", "lr", "dropout",
              "weight_decay", "epochs")  # fmt: skip


def _labels(records: list[Any]) -> list[str]:
    """Names for compared runs: the model, plus what else differs when the models agree
    (two GCNs differ by their hidden size; a GCN and a GAT by being a GCN and a GAT)."""
    models = {r.config.get("model") for r in records}
    keys = LABEL_KEYS[1:] if len(models) == 1 else ("dataset",)
    differ = [k for k in keys if len({json.dumps(r.config.get(k)) for r in records}) > 1]
    labels = []
    for record in records:
        extra = ", ".join(f"{k}={record.config.get(k)}" for k in differ)
        name = str(record.config.get("model", record.kind))
        labels.append(f"{name} ({extra + ', ' if extra else ''}run {record.id})")
    return labels


def _no_run(action: str) -> Outcome:
    return Outcome(
        action=action,
        status="answered",
        text="There is no earlier run in this session to refer to yet; train a model first, "
        f"{EXAMPLE_REQUEST}.",
    )
