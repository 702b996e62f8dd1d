"""Grounding: the plan must say what the request says, no more and no less.

The words of a request (`agent.mentions.extract`) settle most plans: "compare" with two
models is a compare, "30 trials" is a tune, "200 epochs" is `epochs: 200`. `decide_steps`
reads the plan's structure from them and `expected_plan` puts every named value where it
belongs; the planner then constrains its model to exactly that plan. `reconcile` turns
whatever the model wrote into that plan and records each difference as a `Fix`. When the
words settle nothing, the model chooses (ask the user, or answer from earlier results) and
`ground` keeps its plan honest: named values kept as named, unnamed ones dropped.

A value the user did not give is never invented: a run with no dataset takes the session's
(`context`) or becomes a question to the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import jsonschema

import prompts
from agent.actions import (
    MAX_ACTIONS,
    MAX_MODELS,
    MAX_RUNS,
    MAX_TEXT,
    TASKS,
    Action,
    action_fields,
    action_json_schema,
    dataset_names,
    model_names,
)
from agent.mentions import Mentions, extract

__all__ = [  # `extract` is re-exported: callers read what a request names from here too
    "Fix",
    "Mentions",
    "extract",
    "decide_steps",
    "expected_plan",
    "reconcile",
    "ground",
    "settle",
]

NUMERIC_FIELDS = (
    "epochs", "lr", "hidden_channels", "num_layers", "dropout", "weight_decay", "heads",
    "n_trials", "seeds",
)  # fmt: skip
NEEDS_DATASET = ("train", "tune", "compare", "inspect")
PRIMARY = ("train", "tune", "compare", "inspect")
RUNS = ("train", "tune", "compare")


@dataclass
class Fix:
    """One change grounding made to the model's plan."""

    index: int  # which action
    field: str
    old: Any
    new: Any
    reason: str

    def __str__(self) -> str:
        if self.new is None:
            return f"actions[{self.index}].{self.field}: dropped {self.old!r} ({self.reason})"
        if self.old is None:
            return f"actions[{self.index}].{self.field}: set to {self.new!r} ({self.reason})"
        return f"actions[{self.index}].{self.field}: {self.old!r} -> {self.new!r} ({self.reason})"


@cache
def _questions() -> jinja2.Template:
    return prompts.environment().get_template("planner_clarify.j2")


# ---------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------


def _main_action(m: Mentions) -> str | None:
    """The one action the words settle, or None when they do not."""
    cues = set(m.cues)
    if "answer" in cues and not m.numbers and not m.unknown_dataset:
        if m.question:  # "which of my runs ...?", "how well did the last GAT run do?"
            return "answer"
        if (m.run_ids or m.show) and not cues & {"explain", "report", "compare", "tune", "inspect"}:
            return "answer"  # "show me the results of run 5", "list my runs"
    if "explain" in cues and not m.multi_step:
        return "explain"
    if "report" in cues and "compare" in cues and not m.models and not m.multi_step:
        if m.cues.index("report") < m.cues.index("compare"):
            return "report"  # "a report comparing runs 1, 2 and 3"
    if len(m.models) >= 2 and "tune" not in cues:
        return "compare"
    if "compare" in cues and (len(m.models) >= 2 or len(m.run_ids) >= 2 or m.all_models):
        return "compare"
    if "tune" in cues or "n_trials" in m.numbers:
        return "tune"
    if "inspect" in cues and (not m.models or not m.asks_to_run):
        return "inspect"
    if "report" in cues and not m.multi_step:
        return "report"
    asks = m.question or m.show  # "what is ...?", "show me the Cora dataset"
    if m.datasets and asks and not (m.models or m.numbers or m.asks_to_run or m.all_models):
        if not cues & {"tune", "compare", "explain", "report"} and not m.task and not m.request:
            return "inspect"  # a question about a dataset that asks nothing to be run
    if m.datasets or m.models or m.numbers or m.task or "train" in cues:
        return "train"
    if m.question and m.about_results and not m.unknown_dataset:
        return "answer"  # "what was the best accuracy?": nothing to run, a question on results
    return None


def named_models(m: Mentions) -> list[str]:
    """The models the text names; for "all models", the catalogue's models for its task."""
    if m.models or not m.all_models:
        return list(m.models)[:MAX_MODELS]
    task = m.task
    # The catalogue itself, not graph_ml.datasets/models: those import torch (seconds, 400 MB).
    from graph_ml.catalogue import DATASETS, MODELS

    if task is None and m.datasets:
        task = getattr(DATASETS.get(m.datasets[0]), "default_task", None)
    # The zoo runs on any graph; typed models (rgcn, hgt) need node or edge types.
    zoo = [name for name, spec in MODELS.items() if (task is None or task in spec.tasks)
           and not (spec.requires_hetero or spec.uses_edge_types)]  # fmt: skip
    return zoo[:MAX_MODELS]


def decide_steps(m: Mentions) -> list[str] | None:
    """The actions the request asks for, in order, or None to let the model choose."""
    main = _main_action(m)
    if main is None or not m.multi_step:
        return [main] if main else None
    steps: list[str] = []
    for cue in m.cues:
        if cue in RUNS:  # "train ... and compare" is one compare
            step = main if main in RUNS else cue
        elif cue == "answer":
            continue
        else:
            step = cue
        if step not in steps:
            steps.append(step)
    if main not in steps:
        steps.insert(0, main)
    return steps[:MAX_ACTIONS]


def _context_values(context: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """The session's values that may stand in for unnamed ones; unusable ones are ignored."""
    ctx = context or {}

    def ok_run(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    return {
        "dataset": [ctx["dataset"]] if ctx.get("dataset") in dataset_names() else [],
        "model": [ctx["model"]] if ctx.get("model") in model_names() else [],
        "task": [ctx["task"]] if ctx.get("task") in TASKS else [],
        "run_id": [ctx["run_id"]] if ok_run(ctx.get("run_id")) else [],
        "run_ids": [r for r in ctx.get("run_ids") or [] if ok_run(r)][:MAX_RUNS],
    }


def _allowed_values(m: Mentions, context: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """Field -> the values the plan may hold: the text's, else the session's."""
    ctx = _context_values(context)
    allowed: dict[str, list[Any]] = {
        "dataset": list(m.datasets) or ctx["dataset"],
        "model": list(m.models) or ctx["model"],
        "models": named_models(m),
        "task": [m.task] if m.task else ctx["task"],
        "nodes": list(m.nodes),
        "run_id": list(m.run_ids) or ctx["run_id"],
        "run_ids": list(m.run_ids) or ctx["run_ids"],
        "format": [m.format] if m.format else [],
    }
    for name, value in m.numbers.items():
        allowed[name] = [value]
    return allowed


# ---------------------------------------------------------------------------------------
# Grounding
# ---------------------------------------------------------------------------------------


def clarify_action(reason: str, m: Mentions, name: str = "") -> dict[str, Any]:
    question = _questions().render(
        reason=reason,
        chinese=m.chinese,
        name=name,
        choices=list(dataset_names()),
    )
    return {"action": "clarify", "question": question[:MAX_TEXT]}


def _restructure(
    plan: list[dict], steps: list[str], fixes: list[Fix], reasons: dict | None = None
) -> list[dict]:
    """Make the plan's actions exactly `steps`, keeping the model's fields where it can."""
    reasons = reasons or {}
    pool = list(plan)
    out = []
    for index, step in enumerate(steps):
        found = next((a for a in pool if a["action"] == step), None)
        if found is None and pool and pool[0]["action"] not in steps:
            old = pool.pop(0)  # the model chose another action for this step: convert it
            found = {k: v for k, v in old.items() if k in action_fields(step)}
            found = {"action": step, **found}
            why = reasons.get((index, "action"), "the words ask for it")
            fixes.append(Fix(index, "action", old["action"], step, why))
        elif found is None:
            found = {"action": step}
            why = reasons.get((index, "action"), "the request asks for this step")
            fixes.append(Fix(index, "action", None, step, why))
        else:
            pool.remove(found)
        out.append(found)
    for extra in pool:
        fixes.append(Fix(len(out), "action", extra["action"], None, "not asked for"))
    return out


def _ground_value(action: dict, prop: str, allowed: dict[str, list[Any]]) -> tuple[Any, str]:
    """The value `prop` should have given the text, and why (value None: drop it)."""
    value = action[prop]
    ok = allowed.get(prop) or []
    if prop in ("models", "run_ids", "nodes"):
        kept = [v for v in value if v in ok]
        if prop == "models" and ok and action["action"] in ("compare", "tune"):
            kept = list(ok)
        return (kept or None), "the text names " + (", ".join(map(str, ok)) or "none")
    if prop in ("question", "action"):
        return value, ""
    if not ok:
        return None, "the text does not give it"
    if value in ok:
        return value, ""
    return ok[0], f"the text says {ok[0]!r}"


def _fill(action: dict, prop: str, value: Any, index: int, fixes: list[Fix]) -> None:
    if prop in action_fields(action["action"]) and prop not in action and value is not None:
        action[prop] = value
        fixes.append(Fix(index, prop, None, value, "named in the text"))


def expected_plan(
    steps: list[str], m: Mentions, context: Mapping[str, Any] | None = None, text: str = ""
) -> tuple[list[dict[str, Any]], list[Fix]]:
    """The plan the words settle: `steps` with every named value where it belongs.

    Returns:
        The plan, and the decisions that shaped it (as fixes of an empty plan).
    """
    decisions: list[Fix] = []
    plan: list[dict[str, Any]] = [{"action": step} for step in steps]
    _fill_named(plan, m, _allowed_values(m, context), decisions)
    plan = _check_needs(plan, m, context, decisions)
    for action in plan:
        if action["action"] == "answer":
            action["question"] = text[:MAX_TEXT]
    return plan, decisions


def reconcile(
    actions: list[Action], expected: list[dict[str, Any]], decisions: list[Fix] = ()
) -> tuple[list[dict[str, Any]], list[Fix]]:
    """Turn the model's plan into `expected`, recording each difference and why.

    With constrained decoding the model's plan already is `expected` and nothing is fixed;
    a backend that cannot constrain (or a model that strays) is corrected here.
    """
    reasons = {(d.index, d.field): d.reason for d in decisions}
    fixes: list[Fix] = []
    plan = [a.model_dump(exclude_none=True) for a in actions]
    plan = _restructure(plan, [e["action"] for e in expected], fixes, reasons)
    for index, (got, want) in enumerate(zip(plan, expected, strict=True)):
        for key in dict.fromkeys([*got, *want]):
            old, new = got.get(key), want.get(key)
            if key == "action" or old == new:
                continue
            if key == "models" and old and new and set(old) == set(new):
                continue
            if old is None:
                why = reasons.get((index, key), "named in the text")
            elif new is None:
                why = "the text does not give it"
            else:
                why = f"the text says {new!r}"
            fixes.append(Fix(index, key, old, new, why))
    return [dict(action) for action in expected], fixes


def ground(
    actions: list[Action],
    m: Mentions,
    steps: list[str] | None,
    context: Mapping[str, Any] | None = None,
    text: str = "",
) -> tuple[list[dict[str, Any]], list[Fix]]:
    """Make the plan say what the text says: no invented values, no missing named ones.

    Returns:
        The grounded actions as dicts (unset fields absent) and the fixes made.
    """
    fixes: list[Fix] = []
    plan = [a.model_dump(exclude_none=True) for a in actions]
    if steps is not None and [a["action"] for a in plan] != steps:
        plan = _restructure(plan, steps, fixes)
    allowed = _allowed_values(m, context)
    for index, action in enumerate(plan):
        for prop in list(action):
            new, reason = _ground_value(action, prop, allowed)
            if new != action[prop]:
                fixes.append(Fix(index, prop, action[prop], new, reason))
                if new is None:
                    del action[prop]
                else:
                    action[prop] = new
        if action["action"] == "answer" and text:
            action["question"] = text[:MAX_TEXT]
    _fill_named(plan, m, allowed, fixes)
    return _check_needs(plan, m, context, fixes), fixes


def _fill_named(plan: list[dict], m: Mentions, allowed: dict, fixes: list[Fix]) -> None:
    """Put every value the text names into the action it belongs to."""
    for index, action in enumerate(plan):
        kind = action["action"]
        if m.datasets:
            _fill(action, "dataset", m.datasets[0], index, fixes)
        if kind in ("compare",) or (kind == "tune" and len(m.models) >= 2):
            _fill(action, "models", named_models(m) or None, index, fixes)
        elif m.models and kind != "inspect":
            _fill(action, "model", m.models[0], index, fixes)
        _fill(action, "task", m.task, index, fixes)
        _fill(action, "format", m.format, index, fixes)
        _fill(action, "nodes", list(m.nodes) or None, index, fixes)
        _fill(action, "run_ids", list(m.run_ids) or None, index, fixes)
        _fill(action, "run_id", m.run_ids[0] if len(m.run_ids) == 1 else None, index, fixes)
    for prop, value in m.numbers.items():
        if any(prop in action for action in plan):
            continue
        for index, action in enumerate(plan):
            if prop in action_fields(action["action"]):
                _fill(action, prop, value, index, fixes)
                break
    _repeat_per_dataset(plan, m, fixes)


def _repeat_per_dataset(plan: list[dict], m: Mentions, fixes: list[Fix]) -> None:
    if len(m.datasets) < 2 or len(plan) != 1 or plan[0]["action"] not in PRIMARY:
        return
    for dataset in m.datasets[1:MAX_ACTIONS]:
        plan.append(dict(plan[0], dataset=dataset))
        fixes.append(Fix(len(plan) - 1, "dataset", None, dataset, "one run per named dataset"))


def _check_needs(
    plan: list[dict], m: Mentions, context: Mapping[str, Any] | None, fixes: list[Fix]
) -> list[dict]:
    """What a run cannot start without (a dataset): the session's value, else a question."""
    session = _context_values(context)["dataset"]
    session_model = _context_values(context)["model"]
    session_run = _context_values(context)["run_id"]
    for index, action in enumerate(plan):
        if session_run and action["action"] == "explain" and not m.run_ids:
            if "run_id" not in action:  # "explain node 5" right after a run: that run
                action["run_id"] = session_run[0]
                fixes.append(Fix(index, "run_id", None, session_run[0], "the session's last run"))
        if session_model and not m.models and action["action"] in ("train", "explain"):
            if "model" not in action:
                action["model"] = session_model[0]
                fixes.append(Fix(index, "model", None, session_model[0], "the session's model"))
        if action["action"] not in NEEDS_DATASET or "dataset" in action:
            continue
        if action["action"] == "compare" and action.get("run_ids"):
            continue
        if session and not m.unknown_dataset:
            action["dataset"] = session[0]
            fixes.append(Fix(index, "dataset", None, session[0], "the session's dataset"))
            continue
        reason = "unknown_dataset" if m.unknown_dataset else "no_dataset"
        clarify = clarify_action(reason, m, m.unknown_dataset or "")
        why = (
            f"the catalogue has no dataset {m.unknown_dataset!r}"
            if m.unknown_dataset
            else "the request names no dataset"
        )
        fixes.append(Fix(0, "action", action["action"], "clarify", why))
        return [clarify]
    return plan


def out_of_range(numbers: dict[str, int | float]) -> dict[str, str]:
    """Numbers outside the action schema's bounds -> the bound each one breaks."""
    defs = action_json_schema()["$defs"]
    props = {**defs["Tune"]["properties"], **defs["Train"]["properties"]}
    out = {}
    for name, value in numbers.items():
        bounds = {k: v for k, v in props[name].items() if k != "description"}
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(bounds).iter_errors(value)
        )
        if error is not None:
            out[name] = f"{name} {error.message}"
    return out


def settle(
    m: Mentions, context: Mapping[str, Any] | None = None, text: str = ""
) -> tuple[list[str] | None, list[dict[str, Any]] | None, list[Fix]]:
    """What the words settle: (steps, the expected plan, the decisions behind it).

    The expected plan is None when the words settle nothing and the model must choose.
    A number outside its bounds makes the plan a question, never a silently dropped value.
    Out-of-range numbers are removed from `m.numbers`.
    """
    bad = out_of_range(m.numbers)
    m.numbers = {k: v for k, v in m.numbers.items() if k not in bad}
    steps = decide_steps(m)
    if bad:
        why = "; ".join(bad.values())
        return (
            steps,
            [clarify_action("out_of_range", m, why)],
            [Fix(0, "action", None, "clarify", why)],
        )
    if steps is None:
        return None, None, []
    expected, decisions = expected_plan(steps, m, context, text)
    return steps, expected, decisions
