"""Follow-ups: how a chat's new request refers to the runs it already produced.

"same but with GAT" keeps what the last run was asked with and changes only what the new
text names (the router's inherit rule does the keeping; this module says it is a follow-up
and what the last request was); "increase the hidden size to 64" likewise; "compare that
with the previous run" means the chat's last two training runs, resolved here without a
model call; "why did it overfit?" is answered from the stored curves of the last training
run. `FollowUps` holds the chat's state (its runs and its last request), which the session
stores after every turn so that `autoglm chat --resume` continues it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.router import Limits, RouteContext, RoutedAction
from agent.store import ExperimentStore
from core.errors import UserInputError

# Words that make a request a follow-up of the last run rather than a fresh one.
FOLLOWUP = re.compile(
    r"\b(same|again|instead|that|previous|last|increase|decrease|raise|lower|reduce|"
    r"change|switch|more|fewer|less|rerun|repeat|retry)\b"
    r"|同样|一样|改成|换成|改为|再|增加|减少|上一|之前|刚才|那个",
    re.IGNORECASE,
)
# "compare that with the previous run": a comparison of earlier runs that names no data or
# model; it resolves against the chat's runs, with nothing left for the model to plan.
COMPARE_REFERENCE = re.compile(
    r"\bcompar\w*\b.*\b(that|this|it|these|them|those|both|previous|last|latest|earlier)\b"
    r"|(比较|对比).*(刚才|上一|之前|这两|那个|这个)",
    re.IGNORECASE,
)
# A question about how a model trained is about the last training run, not a comparison.
TRAINING_QUESTION = re.compile(
    r"\b(over-?fit\w*|under-?fit\w*|curves?|loss|epochs?|converg\w*|early.stop\w*|learn\w*)\b"
    r"|过拟合|欠拟合|曲线|损失|收敛",
    re.IGNORECASE,
)

# A question, not a request: "why did it overfit?", "did it converge", "为什么过拟合".
QUESTION = re.compile(
    r"\?\s*$|^\s*(why|how|did|does|was|is|what|when)\b|为什么|怎么|是否|吗", re.IGNORECASE
)


@dataclass
class LastRequest:
    """The chat's last train, tune or compare: what a follow-up starts from."""

    action: str
    requested: dict[str, Any]  # what the user asked for (directly or by inheriting it)
    run_id: int | None = None


@dataclass
class ChatState:
    """What a chat remembers between turns (stored with the session after every change).

    Owned by `FollowUps`: everything else reads it.

    Attributes:
        runs: every run the chat produced, oldest first (a compare's members too).
        last: the last train, tune or compare request.
    """

    runs: list[int] = field(default_factory=list)
    last: LastRequest | None = None
    turn: int = 0  # turns so far (1-based numbering, as the user counts them)
    made: list[list[int]] = field(default_factory=list)  # [turn, run id] for each turn's run

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ChatState:
        data = data or {}
        last = data.get("last")
        return cls(
            runs=[int(r) for r in data.get("runs") or []],
            last=LastRequest(**last) if isinstance(last, dict) else None,
            turn=int(data.get("turn") or 0),
            made=[[int(t), int(r)] for t, r in data.get("made") or []],
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ResolvedPlan:
    """A plan resolved from the chat itself (no model call)."""

    actions: list[Any]
    mentions: Any = None


def _summary(record: Any) -> str:
    """One line a planner can match a reference against: "train gat on cora, epochs=30"."""
    config = record.config or {}
    if record.kind == "compare" and config.get("run_ids"):
        return f"compare of runs {', '.join(map(str, config['run_ids']))}"
    model = config.get("model") or "/".join(map(str, config.get("models") or []))
    head = " ".join(str(p) for p in (record.kind, model or None) if p)
    if config.get("dataset"):
        head += f" on {config['dataset']}"
    keys = ("epochs", "hidden_channels", "lr", "seeds", "n_trials", "heads", "num_layers")
    values = ", ".join(f"{k}={config[k]}" for k in keys if config.get(k) is not None)
    return head + (f", {values}" if values else "")


def _settings(record: Any) -> dict[str, Any]:
    """What a request may describe a run by ("the 30-epoch cora run"): its dataset, its
    models and its epochs."""
    config = record.config or {}
    models = [config["model"]] if config.get("model") else list(config.get("models") or [])
    return {"dataset": config.get("dataset"), "models": models, "epochs": config.get("epochs")}


class FollowUps:
    """The chat's runs and last request, and how a new request refers to them.

    Args:
        store: the experiment store (runs are looked up by id).
        session_id: the chat, whose state is stored after each change.
        state: the chat's stored state (this object owns it from now on).
    """

    def __init__(self, store: ExperimentStore, session_id: str, state: ChatState) -> None:
        self.store = store
        self.session_id = session_id
        self.state = state
        self.turn_runs: list[int] = []  # runs the current turn produced, in order
        self.named_runs = False  # the current request names run ids itself
        self.chosen_runs: list[int] | None = None  # runs `resolve` chose for a compare

    def start_turn(self, named_runs: bool = False) -> None:
        self.turn_runs, self.named_runs = [], named_runs

    def next_turn(self) -> None:
        """A new user turn begins (numbered as the user counts them, from 1)."""
        self.state.turn += 1

    def record_turn_run(self, run_id: int) -> None:
        """This turn made `run_id` (a training, a tuning, a comparison, an inspection)."""
        if [self.state.turn, run_id] not in self.state.made:
            self.state.made.append([self.state.turn, int(run_id)])

    def typed_context(self, feedback: str | None = None) -> dict[str, Any]:
        """What the planner reads of this chat: the last request that ran (`last`), the
        runs each turn made (`turns`: (turn, run id, summary)), their ids (`runs`), the
        latest dataset ("it", "在它上面"), and where named files may be."""
        context: dict[str, Any] = {"workspace": str(self.store.workspace)}
        last = self.state.last
        if last is not None:
            fields = {k: v for k, v in last.requested.items() if v is not None}
            context["last"] = {"action": last.action, **fields}
        turns, settings = [], {}
        for turn, run_id in self.state.made[-8:]:
            with contextlib.suppress(UserInputError):
                record = self.store.get_run(run_id)
                turns.append((turn, run_id, _summary(record)))
                settings[run_id] = _settings(record)
        if turns:
            context["turns"] = turns
            context["run_settings"] = settings
            context["run_kinds"] = {
                run_id: summary.split(" ", 1)[0] for _, run_id, summary in turns
            }
            context["runs"] = [run_id for _, run_id, _ in turns]
        newest = self.latest_dataset()
        if newest is not None:
            context["dataset"] = newest
        if feedback:
            context["feedback"] = feedback
        return context

    def route_context(
        self, text: str, fields: dict[str, Any], plan: Any, limits: Limits, data_dir: Path | None
    ) -> RouteContext:
        last = self.state.last
        mentions = getattr(plan, "mentions", None)
        # The planner took the dataset from the chat, not from this text: a follow-up.
        implicit = bool(fields.get("dataset")) and mentions is not None and not mentions.datasets
        return RouteContext(
            workspace=self.store.workspace,
            data_dir=data_dir,
            limits=limits,
            previous=last.requested if last else None,
            previous_run_id=last.run_id if last else None,
            followup=bool(FOLLOWUP.search(text)) or implicit,
            chosen_runs=self.chosen_runs,
        )

    def planner_context(self, feedback: str | None) -> dict[str, Any]:
        """What the planner may treat as named: the last run's dataset, model and task, and
        this session's recent run ids ("that", "the previous run")."""
        context: dict[str, Any] = {}
        last = self.state.last
        requested = last.requested if last else {}
        for key in ("dataset", "model", "task"):
            if requested.get(key) is not None:
                context[key] = requested[key]
        # "inspect CiteSeer", then "train a GCN on it": the newest run's dataset is "it".
        newest = self.latest_dataset()
        if newest is not None and newest != context.get("dataset"):
            context["dataset"] = newest
            context.pop("task", None)  # the new dataset decides its own task
        runs = self.session_runs()
        if last and last.run_id:
            context["run_id"] = int(last.run_id)
        if len(runs) >= 2:
            context["run_ids"] = runs[-2:]
        if feedback:
            context["feedback"] = feedback
        return context

    def latest_dataset(self) -> str | None:
        """The dataset of this session's newest run that has one (an inspection counts)."""
        for run_id in reversed(self.state.runs):
            with contextlib.suppress(UserInputError):
                dataset = self.store.get_run(run_id).config.get("dataset")
                if dataset:
                    return str(dataset)
        return None

    def session_runs(self, kinds: tuple[str, ...] = ("train",)) -> list[int]:
        """Runs this session produced, oldest first, of the given kinds (members included)."""
        out = []
        for run_id in self.state.runs:
            with contextlib.suppress(UserInputError):
                if self.store.get_run(run_id).kind in kinds:
                    out.append(run_id)
        return out

    def resolve(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Point "that", "the previous run" and "why did it..." at this session's runs."""
        self.chosen_runs = None
        if fields.get("action") == "compare":
            earlier = self.session_runs()
            if not fields.get("run_ids") and len(fields.get("models") or []) < 2:
                if len(earlier) >= 2:
                    fields["run_ids"] = self.chosen_runs = earlier[-2:]
            # (comparing stored runs trains nothing: the router keeps only their ids and
            # says which planned settings it does not use)
        return fields  # explain, answer and report resolve when they run (see target)

    def target(self, item: RoutedAction) -> int | None:
        """The run an explain, answer or report is about, decided when it runs.

        A run id the text named wins. Otherwise a run this turn produced ("train a GCN and
        write a report"), else the chat's last run; a question about training ("why did it
        overfit?") goes to the last training run.
        """
        ids = item.fields.get("run_ids") or []
        target = item.fields.get("run_id") or (ids[-1] if ids else None)
        if self.named_runs and target is not None:
            return int(target)
        if self.turn_runs:
            target = self.turn_runs[-1]
        trained = self.session_runs(("train", "tune"))
        if trained and TRAINING_QUESTION.search(str(item.fields.get("question") or "")):
            with contextlib.suppress(UserInputError):
                if target is None or self.store.get_run(int(target)).kind not in ("train", "tune"):
                    target = trained[-1]
        if target is None:
            target = self.last_result_run()
        return None if target is None else int(target)

    def last_result_run(self) -> int | None:
        last = self.state.last
        if last and last.run_id:
            return int(last.run_id)
        runs = self.state.runs
        return int(runs[-1]) if runs else None

    def add_run(self, run_id: int) -> None:
        if run_id not in self.state.runs:
            self.state.runs.append(run_id)

    def save(self) -> None:
        """Store the chat's state with its session (`autoglm chat --resume` reads it)."""
        self.store.set_session_state(self.session_id, self.state.to_json())

    def remember(self, item: RoutedAction, run_id: int | None) -> None:
        """Keep a run, and for a train, tune or compare, what it was asked with: the request
        a follow-up starts from."""
        if run_id is not None:
            self.add_run(run_id)
        if item.action in ("train", "tune", "compare") and run_id is not None:
            requested = {k: v for k, v in item.requested.items() if k not in ("run_ids", "models")}
            if (
                item.action == "compare"
                and item.fields.get("models")
                and not item.fields.get("run_ids")
            ):  # "same comparison on citeseer" keeps the models compared
                requested["models"] = list(item.fields["models"])
            for key in ("dataset", "task"):
                if item.fields.get(key) is not None:
                    requested[key] = item.fields[key]
            if not requested:  # a comparison of stored runs: follow-ups keep the last request
                requested = self.state.last.requested if self.state.last else {}
            self.state.last = LastRequest(item.action, requested, run_id)
        self.save()
