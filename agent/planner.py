"""Plain-language request -> validated, grounded actions.

One request is planned in four steps:

1. Read what the text names (`agent.grounding.extract`): catalogue names and aliases,
   numbers next to their keywords, task and action words, in English and Chinese.
2. Decide the plan's structure where words settle it (`decide_steps`: "compare" with two
   models is a compare, "30 trials" is a tune, ...), and narrow the action schema to the
   values the text names (`narrow_schema`): the model cannot write a dataset, model or
   number the user did not give, and a single-step request allows a single action.
3. Ask the model, constrained by that schema; check its output with `parse_actions`, and on
   failure send the validator's message back, a bounded number of times.
4. Ground the plan in the text (`ground`): a value the user named must appear as named, a
   value the user did not give is dropped, and every change is recorded as a `Fix`.

A small local model (Qwen2.5-Coder-0.5B) planning alone was measured at 0/15 on the dev
tasks with every output valid JSON: it dropped datasets, invented values and padded plans.
Steps 1, 2 and 4 are why this planner does not depend on it for values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import jsonschema
import yaml

from agent.actions import (
    ACTION_NAMES,
    MAX_ACTIONS,
    MAX_MODELS,
    MAX_RUNS,
    MAX_TEXT,
    TASKS,
    Action,
    ActionPlan,
    action_class,
    action_fields,
    action_json_schema,
    dataset_names,
    dump_actions,
    model_names,
    parse_actions,
)
from agent.errors import ModelOutputError, PlanningError, UserInputError
from agent.grounding import Mentions, catalogue_aliases, extract, has_cjk
from agent.llm.base import Completion, LLMBackend, Message
from graph_ml.registry import canonical

MAX_REQUEST_CHARS = 2000  # a request longer than this is a document, not a task
MAX_ATTEMPTS = 3  # one answer plus two re-asks; more rarely helps a small model
QUESTION_CHARS = 200  # a clarifying question the model writes; longer ones ramble
TOKENS_BASE = 24  # {"actions": [ ... ]} and slack
TOKENS_QUESTION = 64  # a free-text question of QUESTION_CHARS characters
NUMERIC_FIELDS = (
    "epochs", "lr", "hidden_channels", "num_layers", "dropout", "weight_decay", "heads",
    "n_trials", "seeds",
)  # fmt: skip
NEEDS_DATASET = ("train", "tune", "compare", "inspect")
PRIMARY = ("train", "tune", "compare", "inspect")
RUNS = ("train", "tune", "compare")
FREE_CHOICE = ("clarify", "answer")  # what the model may choose when no words settle it
CONTEXT_KEYS = ("dataset", "model", "task", "run_id", "run_ids")


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


@dataclass
class Plan:
    """A planned request.

    Attributes:
        actions: the validated, grounded actions.
        attempts: model calls made (1 when the first answer validated).
        fixes: what grounding changed and why.
        completion: the model's last raw answer.
        model_actions: the actions as the model wrote them, before grounding.
        steps: the action structure the words settled (None: the model chose).
        decisions: how the words shaped the expected plan, before the model was asked.
        mentions: what the text names.
        seconds: wall time of the whole planning; tokens are summed over attempts.
    """

    actions: list[Action]
    attempts: int
    fixes: list[Fix]
    completion: str
    model_actions: list[dict[str, Any]] = field(default_factory=list)
    steps: list[str] | None = None
    decisions: list[Fix] = field(default_factory=list)
    mentions: Mentions | None = None
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        """`{"actions": [...]}` with unset fields left out."""
        return dump_actions(self.actions)


# ---------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------


@cache
def _templates() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("prompts").joinpath(name).read_text("utf-8")
    )
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, autoescape=False)


def render(template: str, **values: Any) -> str:
    """Render `prompts/<template>` with `StrictUndefined` (a missing value is an error)."""
    return _templates().get_template(template).render(**values).strip()


def _display_aliases(kind: str, name: str) -> list[str]:
    """Two common names and one Chinese one, for the prompt (all of them are matched)."""
    seen = {canonical(name)}
    aliases = []
    for alias in catalogue_aliases()[kind].get(name, ()):
        if canonical(alias) not in seen:  # "cite seer" says nothing "citeseer" does not
            seen.add(canonical(alias))
            aliases.append(alias)
    latin = [a for a in aliases if not has_cjk(a)][:2]
    chinese = [a for a in aliases if has_cjk(a)][:1]
    return latin + chinese


@cache
def system_prompt() -> str:
    """The planner's system prompt: role, actions, catalogues with aliases, examples."""
    examples = yaml.safe_load(
        resources.files("prompts").joinpath("planner_examples.yaml").read_text("utf-8")
    )["examples"]
    for example in examples:  # a drifted example fails here, not silently in the prompt
        parse_actions(json.dumps({"actions": example["actions"]}))
    return render(
        "planner_system.j2",
        actions=[
            {
                "name": name,
                "doc": (action_class(name).__doc__ or "").strip(),
                "fields": list(action_fields(name)),
            }
            for name in ACTION_NAMES
        ],
        datasets=[
            {"name": n, "aliases": _display_aliases("datasets", n)}
            for n in catalogue_aliases()["datasets"]
        ],
        models=[
            {"name": n, "aliases": _display_aliases("models", n)}
            for n in catalogue_aliases()["models"]
        ],
        tasks=TASKS,
        examples=[
            {
                "text": e["text"],
                "json": json.dumps({"actions": e["actions"]}, ensure_ascii=False),
            }
            for e in examples
        ],
    )


def _context_line(context: Mapping[str, Any] | None) -> str:
    if not context:
        return ""
    return ", ".join(f"{k} {context[k]}" for k in CONTEXT_KEYS if context.get(k) is not None)


# ---------------------------------------------------------------------------------------
# Structure and schema
# ---------------------------------------------------------------------------------------


def _main_action(m: Mentions) -> str | None:
    """The one action the words settle, or None when they do not."""
    cues = set(m.cues)
    if "answer" in cues and m.question and not m.numbers and not m.unknown_dataset:
        return "answer"
    if "explain" in cues and not m.multi_step:
        return "explain"
    if len(m.models) >= 2 and "tune" not in cues:
        return "compare"
    if "compare" in cues and (len(m.models) >= 2 or len(m.run_ids) >= 2):
        return "compare"
    if "tune" in cues or "n_trials" in m.numbers:
        return "tune"
    if "inspect" in cues and (not m.models or not m.asks_to_run):
        return "inspect"
    if "report" in cues and not m.multi_step:
        return "report"
    if m.datasets or m.models or m.numbers or m.task or "train" in cues:
        return "train"
    return None


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
        "models": list(m.models)[:MAX_MODELS],
        "task": [m.task] if m.task else ctx["task"],
        "nodes": list(m.nodes),
        "run_id": list(m.run_ids) or ctx["run_id"],
        "run_ids": list(m.run_ids) or ctx["run_ids"],
        "format": [m.format] if m.format else [],
    }
    for name, value in m.numbers.items():
        allowed[name] = [value]
    return allowed


def _narrow_property(name: str, spec: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    spec = dict(spec)
    if spec.get("type") == "array":
        items = dict(spec["items"])
        items["enum"] = values
        spec.update(items=items, maxItems=len(values), minItems=1)
    elif name in NUMERIC_FIELDS or name == "run_id":
        spec = {"type": spec["type"], "enum": values}
    else:
        spec["enum"] = values
    return spec


def _forced_item(action: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """A schema that admits exactly `action` (list fields in any order)."""
    definition = definitions[action_class(action["action"]).__name__]["properties"]
    properties: dict[str, Any] = {}
    for key, value in action.items():
        spec = definition[key]
        if key == "action":
            properties[key] = spec
        elif isinstance(value, list):
            items = dict(spec["items"], enum=list(dict.fromkeys(value)))
            properties[key] = {
                "type": "array", "items": items, "minItems": len(value), "maxItems": len(value)
            }  # fmt: skip
        else:
            properties[key] = {"type": spec["type"], "enum": [value]}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _free_item(name: str, definitions: dict[str, Any], m: Mentions, text: str) -> dict[str, Any]:
    """A clarify or answer the model writes itself: its question, and what the text names."""
    definition = definitions[action_class(name).__name__]
    properties: dict[str, Any] = {"action": definition["properties"]["action"]}
    if name == "answer":
        properties["question"] = {"type": "string", "enum": [text[:MAX_TEXT]]}
    else:
        properties["question"] = dict(
            definition["properties"]["question"], maxLength=QUESTION_CHARS
        )
    for prop in ("dataset", "run_id"):
        values = {"dataset": m.datasets, "run_id": m.run_ids}[prop]
        if prop in definition["properties"] and values:
            properties[prop] = _narrow_property(prop, definition["properties"][prop], values)
    return {
        "type": "object",
        "properties": properties,
        "required": ["action", "question"],
        "additionalProperties": False,
    }


def narrow_schema(
    expected: list[dict[str, Any]] | None, m: Mentions, text: str = ""
) -> dict[str, Any]:
    """The action schema cut down to this request.

    With an `expected` plan (the words settled it), the schema admits that plan and
    nothing else: the model cannot drop a named value, invent one, or pad the plan. Without
    one, the model chooses between asking the user (clarify) and, for a question,
    answering it from earlier results. Either way the result is a sub-schema of
    `action_json_schema()`, so whatever it admits also passes `parse_actions`.
    """
    definitions = action_json_schema()["$defs"]
    if expected is not None:
        items = [_forced_item(action, definitions) for action in expected]
    else:
        choices = FREE_CHOICE if m.question else ("clarify",)
        items = [{"anyOf": [_free_item(name, definitions, m, text) for name in choices]}]
        items = items if len(choices) > 1 else items[0]["anyOf"]
    if len(items) == 1:
        array = {"type": "array", "items": items[0], "minItems": 1, "maxItems": 1}
    else:
        array = {"type": "array", "prefixItems": items, "items": False}
        array.update(minItems=len(items), maxItems=len(items))
    return {
        "type": "object",
        "properties": {"actions": array},
        "required": ["actions"],
        "additionalProperties": False,
    }


def _item_tokens(item: dict[str, Any]) -> int:
    chars = 0
    for name, spec in item["properties"].items():
        values = spec.get("enum") or spec.get("items", {}).get("enum") or [spec.get("const")]
        chars += len(name) + 6 + sum(len(json.dumps(v, ensure_ascii=False)) + 2 for v in values)
        if "maxLength" in spec:
            chars += TOKENS_QUESTION
    return chars // 2 + 16  # digits and CJK characters can be one token each


def _token_budget(schema: dict[str, Any]) -> int:
    """Enough tokens for the longest answer the schema admits."""
    array = schema["properties"]["actions"]
    if "prefixItems" in array:
        return TOKENS_BASE + sum(_item_tokens(item) for item in array["prefixItems"])
    items = array["items"].get("anyOf", [array["items"]])
    return TOKENS_BASE + array["maxItems"] * max(_item_tokens(item) for item in items)


# ---------------------------------------------------------------------------------------
# Grounding
# ---------------------------------------------------------------------------------------


def _clarify(reason: str, m: Mentions, name: str = "") -> dict[str, Any]:
    question = render(
        "planner_clarify.j2",
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
            _fill(action, "models", list(m.models) or None, index, fixes)
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
    for index, action in enumerate(plan):
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
        clarify = _clarify(reason, m, m.unknown_dataset or "")
        why = (
            f"the catalogue has no dataset {m.unknown_dataset!r}"
            if m.unknown_dataset
            else "the request names no dataset"
        )
        fixes.append(Fix(0, "action", action["action"], "clarify", why))
        return [clarify]
    return plan


# ---------------------------------------------------------------------------------------
# The planner
# ---------------------------------------------------------------------------------------


def _out_of_range(numbers: dict[str, int | float]) -> list[str]:
    """Numbers outside the action schema's bounds, each with the bound it breaks."""
    defs = action_json_schema()["$defs"]
    props = {**defs["Tune"]["properties"], **defs["Train"]["properties"]}
    out = []
    for name, value in numbers.items():
        bounds = {k: v for k, v in props[name].items() if k != "description"}
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(bounds).iter_errors(value)
        )
        if error is not None:
            out.append(f"{name} {error.message}")
    return out


class Planner:
    """Turns a plain-language request into grounded actions with a language model.

    Args:
        backend: any `LLMBackend`; constrained decoding is used when it supports it.
        max_attempts: model calls before giving up (the first plus re-asks).
    """

    def __init__(self, backend: LLMBackend, max_attempts: int = MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.backend = backend
        self.max_attempts = max_attempts

    def plan(self, text: str, context: Mapping[str, Any] | None = None) -> Plan:
        """Plan `text`.

        Args:
            text: the request, in English or Chinese.
            context: what the session knows from earlier turns (keys `dataset`, `model`,
                `task`, `run_id`, `run_ids`); values there count as named.

        Returns:
            The plan: validated, grounded actions and how they were obtained.

        Raises:
            UserInputError: the request is empty or far too long.
            PlanningError: the model gave no valid answer in `max_attempts` tries.
        """
        started = time.perf_counter()
        text = check_request(text)
        mentions = extract(text)
        bad = _out_of_range(mentions.numbers)
        mentions.numbers = {
            k: v for k, v in mentions.numbers.items() if not any(b.startswith(k + " ") for b in bad)
        }
        steps = decide_steps(mentions)
        expected: list[dict[str, Any]] | None = None
        decisions: list[Fix] = []
        if bad:  # a value the user gave that no run may use: ask, never drop it silently
            expected = [_clarify("out_of_range", mentions, "; ".join(bad))]
            decisions = [Fix(0, "action", None, "clarify", "; ".join(bad))]
        elif steps is not None:
            expected, decisions = expected_plan(steps, mentions, context, text)
        schema = narrow_schema(expected, mentions, text)
        messages: list[Message] = [
            {"role": "system", "content": system_prompt()},
            {
                "role": "user",
                "content": render("planner_user.j2", text=text, context=_context_line(context)),
            },
        ]
        actions, completions = self._ask(messages, schema)
        if expected is not None:
            grounded, fixes = reconcile(actions, expected, decisions)
        else:
            grounded, fixes = ground(actions, mentions, None, context, text)
        final = ActionPlan.model_validate({"actions": grounded}).actions
        return Plan(
            actions=final,
            attempts=len(completions),
            fixes=fixes,
            completion=completions[-1].text,
            model_actions=[a.model_dump(exclude_none=True) for a in actions],
            steps=steps,
            decisions=decisions,
            mentions=mentions,
            seconds=time.perf_counter() - started,
            prompt_tokens=sum(c.prompt_tokens for c in completions),
            completion_tokens=sum(c.completion_tokens for c in completions),
        )

    def _ask(
        self, messages: list[Message], schema: dict[str, Any]
    ) -> tuple[list[Action], list[Completion]]:
        """Ask until the answer validates; re-ask with the validator's message."""
        completions: list[Completion] = []
        budget = _token_budget(schema)
        error: ModelOutputError | None = None
        for _ in range(self.max_attempts):
            completion = self.backend.complete(messages, json_schema=schema, max_tokens=budget)
            completions.append(completion)
            try:
                return parse_actions(completion.text), completions
            except ModelOutputError as caught:
                error = caught
                messages = [
                    *messages,
                    {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": render("planner_retry.j2", error=str(error))},
                ]
        raise PlanningError(
            f"The planner model gave no valid plan in {len(completions)} attempts; "
            f"the last answer was rejected because {error}. Try rephrasing the request, "
            "or use a larger model (--backend).",
            attempts=len(completions),
            last_completion=completions[-1].text,
        )


def check_request(text: str) -> str:
    """The request with its whitespace normalised.

    Raises:
        UserInputError: it is empty or far too long.
    """
    if not isinstance(text, str) or not text.strip():
        raise UserInputError(
            "The request is empty. Describe the task in words, for example: "
            "'train a GCN on Cora for 200 epochs'."
        )
    text = " ".join(text.split())
    if len(text) > MAX_REQUEST_CHARS:
        raise UserInputError(
            f"The request is {len(text)} characters long; keep it under {MAX_REQUEST_CHARS} "
            "(one task, not a document)."
        )
    return text
