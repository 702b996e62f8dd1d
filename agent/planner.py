"""Plain-language request -> validated actions: the model reads, the words verify.

One request is planned in four steps (`agent/plan/`):

1. The words supply candidates (`candidates.read`): every number with its span and every
   reading of it (`numbers`), catalogue names by alias, description or fact, task and
   action words, negations and corrections, unknown names and files, and the text that
   poses as instructions (cut out: it is data).
2. The model is asked under a schema made for this request (`schema.request_schema`):
   every field an enum of its candidates or absent, so it chooses (the action, which
   number is which field, what a negation removes) but cannot invent a value. The prompt
   (`prompt`) carries the catalogue with one-line descriptions and the nearest worked
   examples from a bank, English and Chinese.
3. The plan is verified against the words (`verify`): an out-of-range or negative value,
   an unknown name or a missing file becomes a question naming it; a plan that uses what
   the text took back, or leaves out what it stated, is re-asked with the reason.
4. What is left after the re-asks is a `clarify` that says what was understood.

Follow-ups in a chat go through the same steps with a typed context (`agent.followups`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import prompts
from agent.actions import (
    Action,
    ActionPlan,
    action_class,
    dump_actions,
    error_path,
    load_output,
)
from agent.errors import ModelOutputError, PlanningError, UserInputError
from agent.llm.base import Completion, LLMBackend
from agent.mentions import Mentions

MAX_REQUEST_CHARS = 2000  # a request longer than this is a document, not a task
MAX_ATTEMPTS = 3  # one answer plus two re-asks; more rarely helps a small model
TOKENS_BASE = 24  # {"actions": [ ... ]} and slack


@dataclass
class Plan:
    """A planned request.

    Attributes:
        actions: the validated, grounded actions.
        attempts: model calls made (1 when the first answer validated).
        fixes: how the plan was verified: readings, re-asks, questions.
        completion: the model's last raw answer.
        model_actions: the actions as the model wrote them, before verification.
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


def system_prompt() -> str:
    """The planner's system prompt (`agent.plan.prompt`): the same for every request, so a
    backend keeps it prefilled."""
    from agent.plan.prompt import system_prompt as fixed

    return fixed()


# ---------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------


@dataclass
class Fix:
    """One note on how a plan was reached: a verified reading, a re-ask, a question."""

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

    data = load_output(text)
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
                raise ModelOutputError(
                    "the output does not match this request's schema: "
                    f"actions[{index}]{error_path(sub)}: {sub.message} (use only the candidates)"
                )
    if problem is not None:
        where = error_path(problem)
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
