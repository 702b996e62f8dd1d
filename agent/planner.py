"""Plain-language request -> validated, grounded actions.

One request is planned in four steps:

1. Read what the text names (`agent.mentions.extract`): catalogue names and aliases,
   numbers next to their keywords, task and action words, in English and Chinese.
2. Where the words settle the plan (`agent.grounding.decide_steps` and `expected_plan`:
   "compare" with two models is a compare, "30 trials" is a tune, "200 epochs" is
   `epochs: 200`), narrow the action schema to exactly that plan (`narrow_schema`); where
   they do not, let the model choose between asking the user and answering a question.
3. Ask the model under that schema; check its output with `parse_actions`, and on failure
   send the validator's message back, a bounded number of times.
4. Reconcile the model's plan with the words (`agent.grounding`): a value the user named
   appears as named, a value the user did not give is dropped, each change is a `Fix`.
5. A number in the text that no keyword claims ("Train GCN on Cora for 100") is put to the
   model as one small constrained question: which open field does it set, or none? The
   choices are only the fields still open where the value is plausible, so the model can
   place the user's number but never invent one.

A small local model (Qwen2.5-Coder-0.5B) planning alone was measured at 0/15 on the dev
tasks with every output valid JSON: it dropped datasets, invented values and padded plans.
So the words decide what they can, and the model decides the rest.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

import prompts
from agent.actions import (
    ACTION_NAMES,
    MAX_TEXT,
    TASKS,
    Action,
    ActionPlan,
    action_class,
    action_fields,
    action_json_schema,
    dump_actions,
    parse_actions,
)
from agent.errors import ModelOutputError, PlanningError, UserInputError
from agent.grounding import Fix
from agent.llm.base import Completion, LLMBackend, Message
from agent.mentions import Mentions, catalogue_aliases, has_cjk
from core.registry import canonical

MAX_REQUEST_CHARS = 2000  # a request longer than this is a document, not a task
MAX_ATTEMPTS = 3  # one answer plus two re-asks; more rarely helps a small model
QUESTION_CHARS = 200  # a clarifying question the model writes; longer ones ramble
TOKENS_BASE = 24  # {"actions": [ ... ]} and slack
TOKENS_QUESTION = 64  # a free-text question of QUESTION_CHARS characters
FREE_CHOICE = ("clarify", "answer")  # what the model may choose when no words settle it
CONTEXT_KEYS = ("dataset", "model", "task", "run_id", "run_ids")


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


def render(template: str, **values: Any) -> str:
    """Render `prompts/<template>` with `StrictUndefined` (a missing value is an error)."""
    return prompts.render(template, **values).strip()


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


def _messages(text: str, context: Mapping[str, Any] | None) -> list[Message]:
    """System prompt (the same every time, so a backend can keep it prefilled), then the
    request with what the session knows and why its last plan was refused, if it was."""
    context = context or {}
    known = ", ".join(f"{k} {context[k]}" for k in CONTEXT_KEYS if context.get(k) is not None)
    user = render(
        "planner_user.j2", text=text, context=known, feedback=str(context.get("feedback") or "")
    )
    return [{"role": "system", "content": system_prompt()}, {"role": "user", "content": user}]


# ---------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------


def _forced_item(action: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """A schema that admits exactly `action`."""
    definition = definitions[action_class(action["action"]).__name__]["properties"]
    properties: dict[str, Any] = {}
    for key, value in action.items():
        spec = definition[key]
        if key == "action":
            properties[key] = spec
        elif isinstance(value, list):  # each position fixed: no choices left to decode
            kind = spec["items"]["type"]
            properties[key] = {
                "type": "array",
                "prefixItems": [{"type": kind, "enum": [v]} for v in value],
                "items": False,
                "minItems": len(value),
                "maxItems": len(value),
            }
        else:
            properties[key] = {"type": spec["type"], "enum": [value]}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


NUMERIC_FIELDS = (
    "epochs", "lr", "hidden_channels", "num_layers", "dropout", "weight_decay", "heads",
    "n_trials", "seeds",
)  # fmt: skip
COUNT_FIELDS = ("epochs", "hidden_channels", "num_layers", "heads", "n_trials", "seeds")
RUN_ACTIONS = ("train", "tune", "compare")


# Where an unclaimed number is plausible at all: a value outside these ranges is almost never
# meant for that field ("5" is no dropout, "0.001" no dropout either, "100" no layer count).
PLAUSIBLE = {
    "epochs": (5, 10_000),
    "hidden_channels": (4, 4096),
    "num_layers": (1, 10),
    "heads": (1, 16),
    "n_trials": (5, 1000),
    "seeds": (1, 20),
    "lr": (1e-5, 0.5),
    "dropout": (0.05, 0.95),
    "weight_decay": (0.0, 0.01),
}
ATTENTION_MODELS = ("gat", "gatv2")


def loose_options(
    expected: list[dict[str, Any]] | None, m: Mentions
) -> tuple[int, dict[int | float, list[str]]] | None:
    """The text's unclaimed numbers and the open fields each could fill, for the model.

    "Train GCN on Cora for 100": no keyword claims 100, so the model is asked which field
    it sets (epochs, hidden_channels, ... or none). Only the first run in the plan is
    offered numbers, only numbers the text holds, and only fields that are open, that the
    action has, and where the value is plausible: grounding still guarantees that nothing
    is invented and nothing named is overwritten.

    Returns:
        (action index, {number: candidate fields}), or None when there is nothing to place.
    """
    if not expected or not m.loose:
        return None
    index = next((i for i, a in enumerate(expected) if a["action"] in RUN_ACTIONS), None)
    if index is None:
        return None
    action = expected[index]
    fields = action_fields(action["action"])
    named = {action.get("model"), *(action.get("models") or [])}
    options: dict[int | float, list[str]] = {}
    for value in m.loose:
        count = float(value).is_integer()
        candidates = [
            name
            for name in NUMERIC_FIELDS
            if name in fields
            and name not in action
            and (name in COUNT_FIELDS) == count
            and PLAUSIBLE[name][0] <= value <= PLAUSIBLE[name][1]
            and (name != "heads" or named & set(ATTENTION_MODELS))
        ]
        if candidates:
            options[value] = candidates
    return (index, options) if options else None


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
    for prop, values in (("dataset", m.datasets), ("run_id", m.run_ids)):
        if prop in definition["properties"] and values:  # only what the text names
            properties[prop] = {"type": definition["properties"][prop]["type"], "enum": values}
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
        # answering needs a question about earlier results; anything else unclear is asked
        about = "answer" in m.cues or m.about_results
        choices = FREE_CHOICE if m.question and about else ("clarify",)
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
        values = spec.get("enum") or [v for p in spec.get("prefixItems", []) for v in p["enum"]]
        values = values or spec.get("items", {}).get("enum") or [spec.get("const")]
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
# The planner
# ---------------------------------------------------------------------------------------


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

    def warm_up(self) -> None:
        """Prefill the system prompt where the backend can: the first plan then costs what
        later ones do (it is the same on every request; the per-request part follows it)."""
        from agent.plan.prompt import system_prompt as fixed_prompt

        self.backend.warm_up([{"role": "system", "content": fixed_prompt()}])

    def plan(self, text: str, context: Mapping[str, Any] | None = None) -> Plan:
        """Plan `text`: the words offer candidates, the model chooses, the words verify.

        Args:
            text: the request, in English or Chinese.
            context: the chat's typed context (`agent.followups.FollowUps.planner_context`):
                `last` (the last request's fields), `runs` (this chat's run ids), `turns`
                ((turn, run id, summary) of each run), `dataset` (the latest one),
                `workspace`/`data_dir` (where named files may be), `feedback`.

        Returns:
            The plan: validated actions and how they were obtained.

        Raises:
            UserInputError: the request is empty or far too long.
            PlanningError: the model gave no answer the request's schema admits in
                `max_attempts` tries.
        """
        from agent.plan import candidates as cands
        from agent.plan import prompt, schema, verify

        started = time.perf_counter()
        text = check_request(text)
        context = dict(context or {})
        found = cands.read(text, context)
        request_schema = schema.request_schema(found, text, max_actions=_max_actions(found))
        budget = _budget(request_schema)
        feedback = str(context.get("feedback") or "")
        completions: list[Completion] = []
        fixes: list[Fix] = []
        model_actions: list[dict[str, Any]] = []
        final: list[dict[str, Any]] | None = None
        error: str = ""
        for _ in range(self.max_attempts):
            messages = prompt.messages(text, found, context, feedback)
            completion = self.backend.complete(messages, json_schema=request_schema,
                                               max_tokens=budget)  # fmt: skip
            completions.append(completion)
            try:
                model_actions = _parse(_unfence(completion.text), schema.relaxed(request_schema))
            except ModelOutputError as caught:
                error = str(caught)
                if getattr(completion, "finish_reason", "stop") == "length":
                    error += f" (cut off after {budget} tokens)"
                feedback = f"that answer was rejected: {error}"
                continue
            verdict = verify.check([dict(a) for a in model_actions], found, text)
            if not verdict.feedback:
                final = verdict.final
                fixes += [Fix(0, "plan", None, note, "verified") for note in verdict.notes]
                break
            error = verdict.feedback
            feedback = verdict.feedback
            fixes.append(Fix(0, "plan", None, None, f"re-asked: {verdict.feedback}"))
        if final is None:
            if not model_actions:
                raise PlanningError(
                    f"The planner model gave no valid plan in {len(completions)} attempts; "
                    f"the last answer was rejected because {error}. Try rephrasing the "
                    "request, or use a larger model (--backend).",
                    attempts=len(completions),
                    last_completion=completions[-1].text if completions else "",
                )
            final = [verify.give_up(found, error)]
            fixes.append(Fix(0, "action", None, "clarify", f"the plan still disagreed: {error}"))
        actions = _build_actions(final)
        return Plan(
            actions=actions,
            attempts=len(completions),
            fixes=fixes,
            completion=completions[-1].text,
            model_actions=model_actions,
            steps=[a["action"] for a in final],
            mentions=found.mentions,
            seconds=time.perf_counter() - started,
            prompt_tokens=sum(c.prompt_tokens for c in completions),
            completion_tokens=sum(c.completion_tokens for c in completions),
        )

    def _place_numbers(
        self,
        text: str,
        plan: list[dict[str, Any]],
        options: tuple[int, dict[int | float, list[str]]] | None,
        fixes: list[Fix],
    ) -> list[Completion]:
        """Ask the model which open field each unclaimed number sets (or none); each number
        fills at most one field, each field at most once. An answer that does not parse
        places nothing: the plan is already complete without it."""
        if options is None:
            return []
        index, numbers = options
        action, completions = plan[index], []
        for value, candidates in numbers.items():
            candidates = [name for name in candidates if name not in action]
            if not candidates:
                continue
            prompt = render(
                "planner_number.j2",
                text=text,
                number=value,
                fields=[(name, action_fields(action["action"])[name]) for name in candidates],
            )
            schema = {
                "type": "object",
                "properties": {"field": {"type": "string", "enum": [*candidates, "none"]}},
                "required": ["field"],
                "additionalProperties": False,
            }
            try:
                completion = self.backend.complete(
                    [  # the same system prompt: the backend's prefilled prefix is reused
                        {"role": "system", "content": system_prompt()},
                        {"role": "user", "content": prompt},
                    ],
                    json_schema=schema,
                    max_tokens=16,
                )
                choice = json.loads(_unfence(completion.text)).get("field")
            except Exception:  # noqa: BLE001 - a failed side question only leaves a field open
                continue
            completions.append(completion)
            if choice in candidates:
                action[choice] = value
                why = "a number in the text no keyword claims; the model placed it"
                fixes.append(Fix(index, choice, None, value, why))
        return completions

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
                return parse_actions(_unfence(completion.text)), completions
            except ModelOutputError as caught:
                error = caught
                if getattr(completion, "finish_reason", "stop") == "length":
                    error = ModelOutputError(f"{caught} (cut off after {budget} tokens)")
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


def _max_actions(found: Any) -> int:
    """One action, or a few when the request asks for several steps ("..., then ...")."""
    return 3 if found.mentions is not None and found.mentions.multi_step else 1


def _budget(schema: dict[str, Any]) -> int:
    """Enough tokens for the longest answer the schema admits (digits and CJK characters
    may be one token each; field names and braces are forced bytes)."""
    items = schema["properties"]["actions"]["items"]["anyOf"]
    longest = 0
    for item in items:
        chars = 0
        for name, spec in item["properties"].items():
            array = next((a for a in spec.get("anyOf", []) if a.get("type") == "array"), None)
            values = spec.get("enum") or (array or {}).get("items", {}).get("enum") or []
            width = max((len(json.dumps(v, ensure_ascii=False)) for v in values), default=8)
            count = len(values) if array else 1
            chars += len(name) + 4 + width * count
        longest = max(longest, chars)
    return TOKENS_BASE + schema["properties"]["actions"]["maxItems"] * (longest // 2 + 16)


def _parse(text: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's actions as dicts, checked against the request's own schema (so a value
    that is no candidate is refused, whatever the backend's decoding allowed)."""
    import jsonschema

    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        snippet = text if len(text) <= 80 else text[:40] + " ... " + text[-30:]
        raise ModelOutputError(
            f"the output is not valid JSON ({error.msg} at character {error.pos}): {snippet!r}"
        ) from None
    problem = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if problem is not None and isinstance(data, dict) and isinstance(data.get("actions"), list):
        items = schema["properties"]["actions"]["items"]["anyOf"]
        for index, item in enumerate(data["actions"]):
            name = item.get("action") if isinstance(item, dict) else None
            alternative = next(
                (i for i in items if i["properties"]["action"]["enum"] == [name]), None
            )
            if alternative is None:
                allowed = ", ".join(i["properties"]["action"]["enum"][0] for i in items)
                raise ModelOutputError(
                    f"the output does not match this request's schema at actions[{index}].action: "
                    f"{name!r} is not one of {allowed}"
                )
            sub = jsonschema.exceptions.best_match(
                jsonschema.Draft202012Validator(alternative).iter_errors(item)
            )
            if sub is not None:
                problem = sub
                problem.message = (
                    f"actions[{index}]"
                    + "".join(
                        f"[{p}]" if isinstance(p, int) else f".{p}" for p in sub.absolute_path
                    )
                    + f": {sub.message}"
                )
                raise ModelOutputError(
                    f"the output does not match this request's schema: {problem.message} "
                    "(use only the candidates)"
                )
    if problem is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem.absolute_path)
        message = problem.message if len(problem.message) < 200 else problem.message[:200] + "..."
        raise ModelOutputError(
            f"the output does not match this request's schema at {where.lstrip('.') or 'output'}: "
            f"{message} (use only the candidates)"
        )
    return [{k: v for k, v in a.items() if v is not None} for a in data["actions"]]


def _build_actions(plan: list[dict[str, Any]]) -> list[Action]:
    """Validated actions; a dataset given as an existing file path is kept exactly as named
    (the action schema lists catalogue names; the router checks and resolves the path)."""
    out: list[Action] = []
    for fields in plan:
        dataset = fields.get("dataset")
        if isinstance(dataset, str) and ("/" in dataset or "." in dataset):
            cls = action_class(fields["action"])
            checked = cls.model_validate({k: v for k, v in fields.items() if k != "dataset"})
            out.append(checked.model_copy(update={"dataset": dataset}))
        else:
            out.extend(ActionPlan.model_validate({"actions": [fields]}).actions)
    return out


def _unfence(text: str) -> str:
    """The JSON inside a Markdown code fence, which unconstrained chat models like to add."""
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.DOTALL)
    return match.group(1) if match else text.strip()


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
