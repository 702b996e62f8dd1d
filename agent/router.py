"""The rule engine: every action passes these rules, in this order, before a tool runs.

The rules, readable in one place (`RULES` below):

- safety: only known fields; no code or shell text in any value; a dataset given as a path
  must lie inside the workspace or the data directory;
- inherit: in a chat, a follow-up ("same but with GAT") keeps what the last run set and the
  user did not change;
- defaults: the task from the dataset, the model's usual hyper-parameters, the number of
  seeds and trials, each recorded with its reason;
- compatibility: the dataset exists, the task fits the dataset, the model fits the task;
- bounds and budgets: every number within the user's limits (`<workspace>/limits.json`),
  and the plan's time and memory guesses too; expensive plans ask for confirmation;
- routing: each action to its tool.

Each rule appends `Decision`s (what it set or checked, and why) or raises `RuleViolation`
with the reason and the alternatives. The session logs the decisions in the store's steps
and sends a refusal back to the planner once before showing it to the user.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.actions import ACTION_NAMES, action_class
from agent.errors import RuleViolation
from agent.executor import ToolCall
from core.errors import UserInputError
from graph_ml.catalogue import DATASETS, HPARAM_NAMES, MODELS, PARAMS, TASK_SPECS, models_for
from tools.data import dataset_path, is_path, load

DecisionKind = Literal["safety", "inherit", "default", "compatibility", "bound", "routing"]
LIMITS_FILE = "limits.json"


class Limits(BaseModel):
    """What one plan may cost; override any of them in `<workspace>/limits.json`."""

    model_config = ConfigDict(extra="forbid")

    max_epochs: int = Field(2000, ge=1)  # GCN papers train 200; 10x that is still sane
    max_trials: int = Field(200, ge=1)  # beyond that Optuna's TPE gains little on small graphs
    max_seeds: int = Field(20, ge=1)  # 10 is the usual reporting standard
    max_models: int = Field(8, ge=1)  # the built-in zoo's size
    max_wall_seconds: float = Field(4 * 3600.0, gt=0)  # guessed run time above this: refused
    max_memory_mb: float = Field(16_000.0, gt=0)  # guessed peak memory above this: refused
    confirm_above_seconds: float = Field(300.0, ge=0)  # chat asks "go ahead?" above this

    @classmethod
    def load(cls, workspace: Path) -> Limits:
        """The defaults, overridden by `<workspace>/limits.json` where it exists.

        Raises:
            UserInputError: the file is not JSON or names an unknown limit.
        """
        path = Path(workspace) / LIMITS_FILE
        if not path.is_file():
            return cls()
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (json.JSONDecodeError, ValidationError) as error:
            raise UserInputError(
                f"{path} is not a valid limits file ({error}); known limits: "
                f"{', '.join(cls.model_fields)}."
            ) from None


class Decision(BaseModel):
    """One thing a rule set or checked, and why; shown by `--explain` and stored in steps."""

    rule: str
    kind: DecisionKind
    field: str | None = None
    value: Any = None
    reason: str


class Estimate(BaseModel):
    """Expected run time and peak memory (`graph_ml.estimate`); None where the dataset's
    size is unknown (CSV imports). `basis` says what the numbers rest on (the probe)."""

    seconds: float | None = None
    memory_mb: float | None = None
    basis: str | None = None


class RoutedAction(BaseModel):
    """An action after the rules: resolved fields, the tool to call, and every decision."""

    action: str
    fields: dict[str, Any]  # the resolved fields, including defaults
    user_fields: dict[str, Any]  # what the plan (or the user's follow-up) set itself
    tool: str | None  # None: answered in the conversation (clarify, answer)
    decisions: list[Decision]
    estimate: Estimate = Field(default_factory=Estimate)
    needs_confirmation: bool = False
    confirmation_reason: str | None = None
    calls: list[ToolCall] = Field(default_factory=list)  # what the executor runs, in order

    @property
    def requested(self) -> dict[str, Any]:
        """What the user asked for, directly or by inheriting it: what a follow-up keeps."""
        inherited = {d.field: d.value for d in self.decisions if d.kind == "inherit"}
        return {**inherited, **self.user_fields}

    def explain(self) -> list[str]:
        """The decisions as sentences, for the user."""
        return [d.reason for d in self.decisions]


@dataclass
class RouteContext:
    """What the rules check against besides the action itself.

    Attributes:
        workspace, data_dir: the only directories a named file may be in.
        limits: the user's limits.
        previous: the fields the last run of this chat was asked with (for follow-ups).
        previous_run_id: that run's id, for the reasons.
        followup: the user's text reads as a follow-up ("same", "instead", "increase").
        chosen_runs: the runs the chat chose for a compare that named neither runs nor two
            models (its last two trainings), to be said as a decision.
    """

    workspace: Path
    data_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    previous: dict[str, Any] | None = None
    previous_run_id: int | None = None
    followup: bool = False
    chosen_runs: list[int] | None = None


@dataclass
class _Check:
    """The state the rules work on: one action's fields, growing decisions."""

    action: str
    fields: dict[str, Any]
    context: RouteContext
    decisions: list[Decision] = field(default_factory=list)
    estimate: Estimate = field(default_factory=Estimate)
    confirm: str | None = None
    calls: list[ToolCall] = field(default_factory=list)

    def decide(
        self, rule: str, kind: DecisionKind, reason: str, name: str | None = None, value=None
    ):
        self.decisions.append(
            Decision(rule=rule, kind=kind, field=name, value=value, reason=reason)
        )

    def set_default(self, rule: str, name: str, value: Any, reason: str) -> None:
        if self.fields.get(name) is None and value is not None:
            self.fields[name] = value
            self.decide(rule, "default", reason, name, value)


# -- what the rules know -------------------------------------------------------------

DEFAULT_SEEDS = {"train": 1, "compare": 3, "tune": 3}  # compare needs >= 2 for a t-test
DEFAULT_TRIALS = 20  # enough for TPE to beat random search on 4-5 parameters
TUNE_EPOCHS = 100  # per trial; pruning stops the hopeless ones earlier


# The user's budget caps over the catalogue's hard bounds: field -> Limits attribute.
FIELD_LIMITS = {"epochs": "max_epochs", "n_trials": "max_trials", "seeds": "max_seeds"}

# Code or shell in a value: none of these belong in a dataset name, model name or question.
UNSAFE_TEXT = re.compile(
    r"`|\$\(|\$\{|;\s*\w|&&|\|\||\|\s*\w|>\s*/|<\s*/|\\x[0-9a-f]{2}|\b(import|exec|eval|"
    r"subprocess|os\.system|__\w+__|rm\s+-|sudo|curl|wget|chmod|bash|sh\s+-c)\b",
    re.IGNORECASE,
)
FREE_TEXT_FIELDS = ("question",)  # shown to the user, never passed to a tool
DATASET_VALUE = re.compile(r"^[\w.\-/ ~]{1,200}$")

TOOL_OF: dict[str, str | None] = {
    "train": "train",
    "tune": "tune",
    "compare": "compare",  # expanded: one training call per model, then the comparison
    "inspect": "inspect",
    "explain": "explain",  # attributions for named nodes; without nodes, an answer
    "report": "report",  # the executor reads the runs from the store and passes them as data
    "clarify": None,
    "answer": None,
}
# Fields of an action that are not arguments of its tool.
NOT_TOOL_ARGS = ("models", "run_ids", "run_id")


# -- the rules -----------------------------------------------------------------------


def rule_known_fields(c: _Check) -> None:
    """safety: an action has only the fields its model declares."""
    if c.action not in ACTION_NAMES:
        raise RuleViolation(f"Unknown action {c.action!r}.", [f"one of: {', '.join(ACTION_NAMES)}"])
    known = set(action_class(c.action).model_fields)
    unknown = sorted(set(c.fields) - known)
    if unknown:
        raise RuleViolation(
            f"Action {c.action!r} has no field(s) {', '.join(unknown)}; unknown fields are "
            "refused rather than ignored.",
            [f"fields of {c.action}: {', '.join(sorted(known - {'action'}))}"],
        )


def rule_no_code(c: _Check) -> None:
    """safety: no value carries code or shell text (tools take names and numbers only)."""
    for name, value in c.fields.items():
        if name in FREE_TEXT_FIELDS:
            continue  # answered from the store, never passed to a tool
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            if UNSAFE_TEXT.search(text) or "\n" in text:
                raise RuleViolation(
                    f"Field {name!r} contains code or shell text ({text[:60]!r}); tools take "
                    "dataset and model names and numbers, never commands."
                )


def rule_paths_inside(c: _Check) -> None:
    """safety: a dataset named by path is read only under the allowed roots (the current
    directory, the workspace, the data directory, AUTOGLM_ALLOWED_PATHS), every file of it
    checked after resolving symlinks; the plan then names the resolved path."""
    name = c.fields.get("dataset")
    if not isinstance(name, str) or not is_path(name):
        return
    if not DATASET_VALUE.match(name):
        raise RuleViolation(
            f"Dataset path {name[:60]!r} has characters a path here may not have.",
            ["name the folder or file with letters, digits, '.', '-', '_' and '/'"],
        )
    try:
        resolved = dataset_path(name, c.context.workspace, c.context.data_dir)
    except UserInputError as error:
        alternatives = ["use a catalogue dataset such as cora", "or a graph under this directory"]
        raise RuleViolation(str(error), alternatives) from None
    c.fields["dataset"] = str(resolved)
    c.decide("safety.paths", "safety", f"dataset path {name!r} is {resolved}, an allowed place")


def rule_stored_compare(c: _Check) -> None:
    """routing: a comparison of stored runs trains nothing, so it takes only their ids; the
    settings planned with it are said to be unused, not dropped silently."""
    if c.action != "compare" or not c.fields.get("run_ids"):
        return
    unused = {k: v for k, v in c.fields.items() if k != "run_ids"}
    c.fields = {"run_ids": c.fields["run_ids"]}
    if c.context.chosen_runs and c.context.chosen_runs == c.fields["run_ids"]:
        c.decide(
            "routing.stored",
            "default",
            f"runs {', '.join(map(str, c.fields['run_ids']))}: this chat's last two trainings "
            "(the request named no runs and fewer than two models)",
            "run_ids",
            c.fields["run_ids"],
        )
    if unused:
        said = ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in unused.items()
        )
        runs = ", ".join(map(str, c.fields["run_ids"]))
        c.decide(
            "routing.stored",
            "routing",
            f"{said} not used: a comparison of the stored runs {runs} takes each run's own "
            "settings",
        )


def rule_inherit(c: _Check) -> None:
    """inherit: a follow-up keeps what the last run set and the user did not name."""
    prev, ctx = c.context.previous, c.context
    if not prev or c.action not in ("train", "tune", "compare") or c.fields.get("run_ids"):
        return  # (a comparison of stored runs takes everything from those runs)
    if c.fields.get("dataset") is not None and not ctx.followup:
        return  # a fresh request that names its dataset starts from scratch
    known = set(action_class(c.action).model_fields) - {"action"}
    where = f"run {ctx.previous_run_id}" if ctx.previous_run_id else "the last run"
    for name, value in prev.items():
        if name not in known or c.fields.get(name) is not None or value is None:
            continue
        if name == "model" and c.fields.get("models"):
            continue
        if name == "task" and c.fields.get("dataset") not in (None, prev.get("dataset")):
            continue  # "same but on MUTAG": the new dataset decides its own task
        c.fields[name] = value
        c.decide(
            "inherit.previous",
            "inherit",
            f"{name} kept as {value} from {where} (the follow-up did not change it)",
            name,
            value,
        )


def rule_dataset_known(c: _Check) -> None:
    """compatibility: actions that need data name a dataset that exists."""
    name = c.fields.get("dataset")
    needs = c.action in ("train", "tune", "compare", "inspect")
    if c.action == "compare" and c.fields.get("run_ids"):
        needs = False  # comparing stored runs: their datasets are in the store
    if name is None:
        if needs:
            raise RuleViolation(
                f"A {c.action} needs a dataset and none was named.",
                [f"name one of: {', '.join(DATASETS)}", "or a CSV graph in the workspace"],
            )
        return
    if is_path(name):
        return  # checked by rule_paths_inside; loaded by tools.data
    if name not in DATASETS:
        raise RuleViolation(f"Unknown dataset {name!r}.", [f"choose from: {', '.join(DATASETS)}"])
    canonical = DATASETS.resolve(name)
    if canonical != name:
        c.fields["dataset"] = canonical
        c.decide("dataset.alias", "compatibility", f"{name!r} is the dataset {canonical}")


def _spec(c: _Check):
    name = c.fields.get("dataset")
    return DATASETS.get(name) if isinstance(name, str) and name in DATASETS else None


def rule_default_task(c: _Check) -> None:
    """defaults: the task is the dataset's usual one."""
    spec = _spec(c)
    if "task" not in action_class(c.action).model_fields:
        return
    if spec is None:
        name = c.fields.get("dataset")
        if isinstance(name, str) and is_path(name):  # an imported graph: what it holds decides
            graph = load(name, c.context.workspace, c.context.data_dir, missing_features="keep")
            task = graph.spec.default_task
            why = "has node labels" if task == "node_classification" else "has no labels"
            c.set_default("default.task", "task", task, f"task set to {task} because {name} {why}")
        return
    c.set_default(
        "default.task",
        "task",
        spec.default_task,
        f"task set to {spec.default_task} because {spec.label} is a {spec.level}-level dataset",
    )


def rule_task_fits_dataset(c: _Check) -> None:
    """compatibility: the task is one the dataset supports."""
    spec, task = _spec(c), c.fields.get("task")
    if spec is None or task is None:
        return
    if task not in spec.tasks:
        fits = [n for n, s in DATASETS.items() if task in s.tasks][:4]
        model = c.fields.get("model")
        raise RuleViolation(
            f"{spec.label} is a {spec.level}-level dataset and supports "
            f"{' and '.join(spec.tasks)}, not {task}.",
            [
                f"{spec.default_task} on {spec.name}" + (f" with {model}" if model else ""),
                f"{task} on {' or '.join(fits)}" + (f" with {model}" if model else ""),
            ],
        )


def _models(c: _Check) -> list[str]:
    if c.fields.get("models"):
        return list(c.fields["models"])
    return [c.fields["model"]] if c.fields.get("model") else []


def rule_model_fits_task(c: _Check) -> None:
    """compatibility: every named model exists, handles the task, and takes every
    model-specific value the plan sets (heads means nothing to a GCN)."""
    task = c.fields.get("task")
    models = _models(c)
    for name in models:
        if name not in MODELS:
            raise RuleViolation(f"Unknown model {name!r}.", [f"choose from: {', '.join(MODELS)}"])
        spec = MODELS.get(name)
        if task is not None and task not in spec.tasks:
            raise RuleViolation(
                f"Model {name} does not support {task} (it handles {', '.join(spec.tasks)}).",
                [f"{task} with {', '.join(models_for(task))}"],
            )
    for key in (k for k in c.fields if k in PARAMS and PARAMS[k].model_specific):
        takers = [m for m in models if MODELS.get(m).takes_param(key)]
        if models and not takers:
            users = [n for n, s in MODELS.items() if s.takes_param(key)]
            raise RuleViolation(
                f"{key}={c.fields[key]} means nothing to {'/'.join(models)}: only "
                f"{', '.join(users)} take {key}.",
                [f"drop {key}", f"use {' or '.join(users)}"],
            )


def rule_default_model(c: _Check) -> None:
    """defaults: a train without a model gets the task's usual baseline; compare needs two."""
    task = c.fields.get("task")
    if c.action == "train" and c.fields.get("model") is None and task:
        model = TASK_SPECS[task].default_model
        c.set_default(
            "default.model", "model", model, f"model set to {model}, the usual baseline for {task}"
        )
    if c.action == "compare" and not c.fields.get("run_ids"):
        models = c.fields.get("models") or []
        if len(models) < 2:
            raise RuleViolation(
                "A comparison needs at least two models (or two earlier runs).",
                ["e.g. compare gcn and gat on cora", "compare run 1 with run 2"],
            )


def _model_defaults(model: str, task: str) -> tuple[dict[str, Any], str]:
    spec = MODELS.get(model)
    return spec.hparams(task), spec.paper


def rule_default_hparams(c: _Check) -> None:
    """defaults: unset hyper-parameters take the model's usual values (from its paper)."""
    if c.fields.get("run_ids"):
        return  # a comparison of stored runs sets nothing: they ran already
    fields = action_class(c.action).model_fields
    task = c.fields.get("task")
    models = _models(c)
    if c.action in ("train", "compare") and models and task:
        table = {m: _model_defaults(m, task) for m in models}
        for name in HPARAM_NAMES:
            if not all(MODELS.get(m).takes_param(name) for m in models):
                continue  # a model-specific value: each model that takes it keeps its own
            values = {json.dumps(table[m][0].get(name)) for m in models}
            value = table[models[0]][0].get(name)
            if name not in fields or len(values) != 1 or value is None:
                continue  # models disagree: each keeps its own default inside train()
            source = "; ".join(sorted({table[m][1] for m in models}))
            c.set_default(
                f"default.{name}",
                name,
                value,
                f"{name} set to {value}, {'/'.join(models)}'s usual value for {task} ({source})",
            )
    if c.action == "tune" and task:
        c.set_default(
            "default.epochs",
            "epochs",
            TUNE_EPOCHS,
            f"epochs set to {TUNE_EPOCHS} a trial (pruning stops the hopeless ones earlier)",
        )
    if "seeds" in fields and c.action in DEFAULT_SEEDS:
        seeds = DEFAULT_SEEDS[c.action]
        why = {
            "compare": "enough for a Welch t-test",
            "tune": "the best configuration is retrained over them for a spread",
            "train": "one run",
        }[c.action]
        c.set_default("default.seeds", "seeds", seeds, f"seeds set to {seeds} ({why})")
    if c.action == "tune":
        c.set_default(
            "default.n_trials",
            "n_trials",
            DEFAULT_TRIALS,
            f"n_trials set to {DEFAULT_TRIALS}, enough for TPE to beat random search",
        )
        from graph_ml.samplers import draw_seed

        seed = draw_seed()
        c.set_default(
            "default.sampler_seed",
            "sampler_seed",
            seed,
            f"sampler seed {seed}, drawn at random and stored with the run (the same seed "
            "draws the same trials)",
        )


def rule_bounds(c: _Check) -> None:
    """bounds: every number within the catalogue's bounds and the user's budget caps."""
    limits = c.context.limits
    for name, value in c.fields.items():
        if name not in PARAMS or value is None:
            continue
        problem = PARAMS[name].problem(value)
        if problem is not None:
            raise RuleViolation(f"{problem}.", [f"{name} within {PARAMS[name].interval()}"])
        limit = FIELD_LIMITS.get(name)
        if limit and value > getattr(limits, limit):
            raise RuleViolation(
                f"{name}={value} is over the limit {limit}={getattr(limits, limit)} "
                f"(set it in <workspace>/{LIMITS_FILE}).",
                [f"{name} between 1 and {getattr(limits, limit)}"],
            )
    models = c.fields.get("models") or []
    if len(models) > limits.max_models:
        raise RuleViolation(f"{len(models)} models exceed max_models={limits.max_models}.")


def estimate(fields: dict[str, Any], action: str) -> Estimate:
    """A plan's expected run time and the process's peak memory, from the cost model
    calibrated on this machine (`graph_ml.estimate`: a timing probe per model family, cached)
    scaled by the dataset's catalogue size, each model's settings (its defaults where the
    plan leaves them), epochs and early stopping, seeds, folds and trials."""
    from graph_ml.estimate import plan_cost

    name = str(fields.get("dataset"))
    size = DATASETS.get(name).size if name in DATASETS else None
    if size is None or action not in ("train", "tune", "compare"):
        return Estimate()
    task = fields.get("task") or DATASETS.get(name).default_task
    draws = None
    if action == "tune":  # the tool searches the named models, else the zoo for the task
        from graph_ml.search_space import searchable_models

        models = fields.get("models") or ([fields["model"]] if fields.get("model") else None)
        models = [m for m in models or searchable_models(task) if m in MODELS]
        draws = _planned_draws(models, fields.get("sampler_seed"), fields.get("n_trials"))
    else:
        models = fields.get("models") or [fields.get("model") or TASK_SPECS[task].default_model]
        models = [m for m in models if m in MODELS]
    models = models or [TASK_SPECS[task].default_model]
    settings = {m: _settings({**fields, "task": task}, m) for m in models}
    if action == "tune":
        settings = {m: {k: v for k, v in hp.items() if k != "epochs"} for m, hp in settings.items()}
    cost = plan_cost(
        action,
        size,
        task,
        models,
        settings,
        seeds=fields.get("seeds") or 1,
        n_trials=fields.get("n_trials") or DEFAULT_TRIALS,
        trial_epochs=fields.get("epochs"),
        draws=draws,
    )
    # Each epoch of a stored run is one store transaction (and a chat's progress callback),
    # which the trainer-level probe does not see; a tune stores its trials, not epochs.
    logged = 0.0 if action == "tune" else cost.epochs * store_epoch_seconds()
    return Estimate(seconds=cost.seconds + logged, memory_mb=cost.memory_mb, basis=cost.basis)


def _planned_draws(models: list[str], seed: int | None, n_trials: int | None):
    """The trials the tool's default sampler (TPE) will draw first with this seed, or
    None where they cannot be known (no seed, a model without a search space)."""
    if seed is None or not models:
        return None
    from graph_ml.samplers import DEFAULT_SAMPLER, planned_draws
    from graph_ml.search_space import build_space

    try:
        space = build_space(models)
    except (UserInputError, KeyError):
        return None
    return planned_draws(space, DEFAULT_SAMPLER, int(seed), n_trials or DEFAULT_TRIALS)


@functools.cache
def store_epoch_seconds(samples: int = 40) -> float:
    """Seconds to log one epoch to an experiment store, measured once per process on a
    temporary store (~0.05 s): the per-epoch cost the executor adds to the trainer's."""
    import tempfile
    import time

    from agent.store import ExperimentStore

    with tempfile.TemporaryDirectory() as folder, ExperimentStore(folder) as store:
        run_id = store.start_run("train", {"model": "probe"})
        metrics = {"train_loss": 0.5, "train_metric": 0.5, "val_metric": 0.5, "val_loss": 0.5,
                   "test_metric": 0.5, "lr": 0.01}  # fmt: skip
        start = time.perf_counter()
        for epoch in range(samples):
            store.log_epoch(run_id, 0, epoch + 1, metrics)
        seconds = (time.perf_counter() - start) / samples
        store.finish_run(run_id, "succeeded")
    return seconds


def _settings(fields: dict[str, Any], model: str) -> dict[str, Any]:
    """The plan's values, the model's defaults for the rest (graph-level default if no task)."""
    task = fields.get("task") or "node_classification"
    defaults = MODELS.get(model).hparams(task) if model in MODELS else {}
    return {**defaults, **{k: v for k, v in fields.items() if v is not None}}


def rule_budget(c: _Check) -> None:
    """budgets: the guessed time and memory fit the limits; expensive plans ask first."""
    limits = c.context.limits
    c.estimate = guess = estimate(c.fields, c.action)
    if guess.seconds is None:
        if c.action in ("train", "tune", "compare") and not c.fields.get("run_ids"):
            c.decide(
                "budget.estimate",
                "bound",
                f"no time or memory estimate: the size of {c.fields.get('dataset')!r} is not "
                "in the catalogue, so the budget limits are not checked before it runs",
            )
        return
    if guess.memory_mb > limits.max_memory_mb:
        raise RuleViolation(
            f"This plan needs about {guess.memory_mb:,.0f} MB, over max_memory_mb="
            f"{limits.max_memory_mb:,.0f}.",
            ["a smaller hidden size or fewer layers", "raise the limit in limits.json"],
        )
    if guess.seconds > limits.max_wall_seconds:
        raise RuleViolation(
            f"This plan would take about {duration(guess.seconds)}, over max_wall_seconds="
            f"{limits.max_wall_seconds:g}.",
            ["fewer epochs, trials or seeds", "raise the limit in limits.json"],
        )
    if guess.seconds > limits.confirm_above_seconds:
        c.confirm = (
            f"this plan may take up to {duration(guess.seconds)}, over the "
            f"{duration(limits.confirm_above_seconds)} that runs without asking (fewer epochs "
            "or seeds make it shorter; early stopping often ends it sooner)"
        )
    c.decide(
        "budget.estimate",
        "bound",
        f"estimated {duration(guess.seconds)}, {guess.memory_mb:,.0f} MB peak: within limits"
        + ("; a chat asks before running it" if c.confirm else ""),
    )


def expand(action: str, fields: dict[str, Any]) -> list[ToolCall]:
    """The tool calls an action needs, in order, with their arguments.

    A compare of models is one training per model (each its own run) plus the comparison;
    a compare of stored runs is the comparison alone; explain with nodes is attributions,
    without nodes an answer (no call); a report names the runs it covers, which the session
    resolves when they are not named.
    """
    args = {k: v for k, v in fields.items() if k not in NOT_TOOL_ARGS}
    if action in ("train", "inspect"):
        return [ToolCall(tool=action, kind=action, args=args)]
    if action == "tune":
        return [ToolCall(tool="tune", kind="tune", args=dict(fields))]
    if action == "compare":
        if fields.get("run_ids"):
            return [ToolCall(tool="compare", kind="compare", refs=list(fields["run_ids"]))]
        members = [
            ToolCall(tool="train", kind="train", args={**args, "model": m})
            for m in fields.get("models") or []
        ]
        return [ToolCall(tool="compare", kind="compare", args=dict(fields), members=members)]
    if action == "explain" and fields.get("nodes"):
        refs = [int(fields["run_id"])] if fields.get("run_id") else []
        return [ToolCall(tool="explain", kind="explain", args=args, refs=refs)]
    if action == "report":
        refs = [int(r) for r in fields.get("run_ids") or []]
        return [ToolCall(tool="report", kind=None, args=args, refs=refs)]
    return []


def rule_route(c: _Check) -> None:
    """routing: each action to its tool calls."""
    c.calls = expand(c.action, c.fields)
    tools = [m.tool for call in c.calls for m in call.members] + [call.tool for call in c.calls]
    if not tools:
        c.decide("routing", "routing", "answered in the conversation", "tool", None)
        return
    counts = {t: tools.count(t) for t in dict.fromkeys(tools)}
    shown = ", then ".join(f"{n} x {t!r}" if n > 1 else repr(t) for t, n in counts.items())
    c.decide("routing", "routing", f"routed to tool {shown}", "tool", TOOL_OF[c.action])


def duration(seconds: float) -> str:
    """A rough duration for people: `under 1 s`, `31 s`, `10 min`, `1.5 h`."""
    if seconds < 1:
        return "under 1 s"  # not "1 s": an estimate of 0.1 s read as ten times that
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Rule:
    name: str
    kind: DecisionKind
    check: Callable[[_Check], None]


RULES: tuple[Rule, ...] = (
    Rule("safety.fields", "safety", rule_known_fields),
    Rule("safety.no_code", "safety", rule_no_code),
    Rule("safety.paths", "safety", rule_paths_inside),
    Rule("routing.stored", "routing", rule_stored_compare),
    Rule("inherit.previous", "inherit", rule_inherit),
    Rule("compat.dataset", "compatibility", rule_dataset_known),
    Rule("default.task", "default", rule_default_task),
    Rule("compat.task", "compatibility", rule_task_fits_dataset),
    Rule("default.model", "default", rule_default_model),
    Rule("compat.model", "compatibility", rule_model_fits_task),
    Rule("default.hparams", "default", rule_default_hparams),
    Rule("bounds.values", "bound", rule_bounds),
    Rule("budget.estimate", "bound", rule_budget),
    Rule("routing", "routing", rule_route),
)


class Router:
    """Applies `RULES` to actions.

    Args:
        rules: the rules, in order (default `RULES`).
    """

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules

    def check(self, action: BaseModel | dict[str, Any], context: RouteContext) -> RoutedAction:
        """Run every rule on `action`.

        Args:
            action: a validated action, or a raw dict (from a client that skips the planner).
            context: directories, limits and the chat's last run.

        Returns:
            The resolved action, its tool and every decision.

        Raises:
            RuleViolation: a rule refused it; `reason` and `alternatives` say why and what to do.
        """
        raw = action.model_dump(exclude_none=True) if isinstance(action, BaseModel) else action
        if not isinstance(raw, dict) or not isinstance(raw.get("action"), str):
            raise RuleViolation("An action must be an object with an 'action' name.")
        fields = {k: v for k, v in raw.items() if k != "action" and v is not None}
        state = _Check(action=raw["action"], fields=dict(fields), context=context)
        for rule in self.rules:
            rule.check(state)
        return RoutedAction(
            action=state.action,
            fields=state.fields,
            user_fields=fields,
            tool=TOOL_OF[state.action],
            decisions=state.decisions,
            estimate=state.estimate,
            needs_confirmation=state.confirm is not None,
            confirmation_reason=state.confirm,
            calls=state.calls,
        )
