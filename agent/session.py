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

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.errors import RuleViolation
from agent.executor import Execution, Executor, ExecutorOptions
from agent.followups import ChatState, FollowUps
from agent.router import Limits, RouteContext, RoutedAction, Router
from agent.store import ExperimentStore
from core.errors import AutoGLMError, UserInputError

EXAMPLE_REQUEST = 'e.g. "train a GCN on Cora for 100 epochs"'


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
    # The cost model's estimate (`graph_ml.estimate`) and what the run measured: its tool
    # step's wall time (a compare's trainings included) and the process's peak memory.
    estimated_seconds: float | None = None
    seconds: float | None = None
    estimated_memory_mb: float | None = None
    peak_memory_mb: float | None = None


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
        on_epoch: called as `on_epoch(run_id, seed, epoch, metrics)` after each stored epoch
            (`autoglm ui` streams them to the page).
        on_trial: called with each finished Optuna trial.
    """

    data_dir: Path | None = None
    limits: Limits | None = None
    confirm: Callable[[str], bool] | None = None
    progress: bool = False
    on_plan: Callable[[list[RoutedAction]], None] | None = None
    language: str | None = None
    on_epoch: Callable[[int, int, int, dict[str, float]], None] | None = None
    on_trial: Callable[[Any], None] | None = None


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
            state = ChatState()
        else:
            record = store.get_session(session_id)
            self.id = record.id
            state = ChatState.from_json(record.state)
        self.followups = FollowUps(store, self.id, state)
        self.executor = Executor(
            store,
            ExecutorOptions(
                session_id=self.id,
                data_dir=self.options.data_dir,
                progress=self.options.progress,
                study_timeout=self.limits.max_wall_seconds,  # a search stops at the budget
                on_epoch=self.options.on_epoch,
                on_trial=self.options.on_trial,
            ),
        )

    @property
    def state(self) -> ChatState:
        """The chat's state (runs, last request), owned by `followups`; read it here."""
        return self.followups.state

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
        self.followups.save()
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
        self.followups.next_turn()
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
        self.followups.save()
        return turn

    def _plan(self, text: str, feedback: str | None = None) -> tuple[Any, int]:
        context = self.followups.typed_context(feedback)
        if self.options.data_dir is not None:
            context["data_dir"] = str(self.options.data_dir)
        start = time.perf_counter()
        plan = self.planner.plan(text, context)
        step = self.store.log_step(
            None,
            "plan" if feedback is None else "replan",
            time.perf_counter() - start,
            detail={
                "actions": [a.model_dump(exclude_none=True) for a in plan.actions],
                "fixes": [str(fix) for fix in plan.fixes],  # how the plan was verified, and why
                "context": context,
            },
            prompt_tokens=plan.prompt_tokens,
            completion_tokens=plan.completion_tokens,
            reasks=plan.attempts - 1,
            session_id=self.id,
        )
        return plan, step

    def _plan_and_route(self, text: str, turn: Turn) -> tuple[list[RoutedAction], list[int]]:
        resolved = None  # one planner for chat: every follow-up goes through it
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
        """Run one routed action: its tool calls through the executor, or an answer."""
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
        outcome = self._outcome(item, text, step_ids)
        outcome.decisions, outcome.fields = decisions, item.fields
        self._costs(outcome, item)
        if outcome.run_id is not None and outcome.status == "succeeded":
            self.followups.turn_runs.append(outcome.run_id)
            self.followups.record_turn_run(outcome.run_id)
        return outcome

    def _costs(self, outcome: Outcome, item: RoutedAction) -> None:
        """Estimated and measured time and memory of the outcome's run, and one line saying
        both ("took 134 s, estimated 120 s")."""
        outcome.estimated_seconds = item.estimate.seconds
        outcome.estimated_memory_mb = item.estimate.memory_mb
        if outcome.run_id is None:
            return
        record = self.store.get_run(outcome.run_id)
        step = next((s for s in self.store.steps(record.id) if s.name == f"tool:{record.kind}"),
                    None)  # fmt: skip
        if step is None:
            return
        outcome.seconds, outcome.peak_memory_mb = step.seconds, step.peak_mb
        if outcome.estimated_seconds is not None and outcome.status == "succeeded":
            took, guess = step.seconds, outcome.estimated_seconds
            memory = outcome.estimated_memory_mb or 0.0
            outcome.text += (
                f"\nTook {_seconds(took)}, estimated {_seconds(guess)}; peak memory "
                f"{step.peak_mb or 0:,.0f} MB, estimated {memory:,.0f} MB."
            )

    def _outcome(self, item: RoutedAction, text: str, step_ids: list[int]) -> Outcome:
        if item.action == "clarify":
            # Nothing ran: a script calling `autoglm run` must not read this as done.
            return Outcome(
                action="clarify",
                status="answered",
                text=item.fields["question"],
                exit_code=UserInputError.exit_code,
            )
        if not item.calls:  # an answer (or explain without nodes) from the stored runs
            target = self.followups.target(item)
            item.fields["run_id"] = target
            if target is None:
                return _no_run(item.action)
            # An answer about a stored run says more than the summary shown when it ran:
            # the per-seed facts behind it.
            answer = self._explain(target, text, detail=True)
            return Outcome(action=item.action, status="answered", text=answer)
        if not self._resolve_refs(item):
            return _no_run(item.action)
        outcome = None
        for call in item.calls:
            done = self.executor.execute(call, step_ids)
            outcome = self._record(item, done, text)
            if outcome.status == "failed":
                break
        return outcome

    def _resolve_refs(self, item: RoutedAction) -> bool:
        """Point a report or an attribution at the chat's runs when the text named none.

        Returns:
            False when there is no run to refer to.
        """
        call = item.calls[0]
        if item.action == "report":
            ids = [int(r) for r in item.fields.get("run_ids") or []]
            # the runs the text or the planner chose, unless this turn just made one
            # ("train ... and write a report" is about the new run)
            if not ids or (self.followups.turn_runs and not self.followups.named_runs):
                target = self.followups.target(item)
                ids = [] if target is None else [target]
            item.fields["run_ids"] = call.refs = ids
            return bool(ids)
        if item.action == "explain":
            target = self._attribution_target(item)
            if target is None:
                return False
            record = self.store.get_run(target)
            call.refs, call.parent = [target], target
            config, nodes = record.config, item.fields["nodes"]
            call.args = {"run_id": target, "model": config.get("model"),
                         "dataset": config.get("dataset"), "nodes": nodes}  # fmt: skip
        return True

    def _attribution_target(self, item: RoutedAction) -> int | None:
        """The trained run whose predictions to explain: the one referred to, else the
        chat's last training run (of the model the text named)."""
        target = self.followups.target(item)
        item.fields["run_id"] = target
        if target is None:
            return None
        record = self.store.get_run(target)
        wanted = item.fields.get("model")
        if record.kind == "train" and (not wanted or record.config.get("model") == wanted):
            return target
        trained = self.followups.session_runs(("train",))
        fits = [r for r in trained if self.store.get_run(r).config.get("model") == wanted]
        if not trained:
            return None
        item.fields["run_id"] = (fits or trained)[-1]
        return item.fields["run_id"]

    def _record(self, item: RoutedAction, done: Execution, text: str) -> Outcome:
        """The chat's memory of an execution, and its outcome with its explanation."""
        for run_id in done.run_ids:
            self.followups.add_run(run_id)
        if item.action in ("train", "tune", "compare"):
            self.followups.remember(item, done.run_id)
        if done.call.kind is None:  # a report: files, no run
            return Outcome(
                action=item.action,
                status="succeeded",
                text="Report written: " + ", ".join(done.files),
                files=done.files,
            )
        if done.status == "failed":
            failed = self.store.get_run(done.run_id)
            return Outcome(
                action=item.action,
                status="failed",
                run_id=done.run_id,
                run_ids=done.run_ids,
                text=f"Run {done.run_id} ({failed.kind}) failed: {done.error} The run is marked "
                "failed; earlier runs and the store are intact.",
                exit_code=done.exit_code,
            )
        return Outcome(
            action=item.action,
            status="succeeded",
            run_id=done.run_id,
            run_ids=done.run_ids,
            text=self._explain(done.run_id, text),
        )

    def _explain(self, run_id: int, text: str, detail: bool = False) -> str:
        from agent.explain import explain_run

        with self.store.step(run_id, "explain", self.id):
            record = self.store.get_run(run_id)
            try:
                return explain_run(record, store=self.store, user_text=text, detail=detail)
            except Exception as error:  # noqa: BLE001 - the run is stored; losing the turn is worse
                return (
                    f"Run {run_id} ({record.title}) finished as {record.status}, but its "
                    f"explanation could not be written ({type(error).__name__}: {error}); "
                    f"`autoglm experiments show {run_id}` shows the stored numbers."
                )


def _seconds(value: float) -> str:
    """`0.4 s`, `134 s`, `6.5 min`: a measured or estimated duration, to compare."""
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.1f} min"


def _no_run(action: str) -> Outcome:
    return Outcome(
        action=action,
        status="answered",
        text="There is no earlier run in this session to refer to yet; train a model first, "
        f"{EXAMPLE_REQUEST}.",
    )
