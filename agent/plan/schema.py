"""The per-request schema: every field an enum of its candidates, or absent.

The model cannot write a value the words (or the session) did not offer; it chooses the
actions, which number is which field, which of the named models are meant, and whether a
field is set at all. A clarify's `question` is an enum of what could be asked about (an
unknown name, a value out of range, a missing file, "unclear"); the planner writes the
question itself from that choice. An answer's `question` is the request.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from agent.actions import MAX_TEXT, action_fields
from agent.plan.candidates import NUMERIC_FIELDS, Candidates

RUN_ACTIONS = ("train", "tune", "compare")
# words that ask for a training itself ("classify", "use" do not: they go with any action)
_TRAIN_WORDS = re.compile(r"\btrain|\bfit\b|\bfits\b|训练|拟合|\bjust\s+run\b|直接", re.IGNORECASE)
UNCLEAR = "unclear"


def clarify_topics(c: Candidates) -> list[str]:
    """What a clarify may be about: each unknown name or missing file, each number, and
    "unclear" (the planner writes the question naming it)."""
    topics = [u.text for u in c.unknown]
    topics += [f.text for f in c.files if not f.exists]
    topics += [n.text for n in c.numbers if n.inherited is None and not n.other and _bad(n)]
    named = [n for n in c.names if n.how != "session" and not n.negated]
    ctx = c.context or {}
    has_data = any(n.kind == "dataset" for n in named) or bool(
        ctx.get("dataset") or ctx.get("last")
    )
    settled = has_data and (
        any(n.kind == "model" for n in named) or bool(c.cues) or bool(ctx.get("last"))
    )
    if not settled or topics:  # what to run and on what is named: nothing is unclear
        topics.append(UNCLEAR)
    return list(dict.fromkeys(topics))


def _bad(n: object) -> bool:
    """A number that cannot be the value it is next to: negative, or out of its bounds."""
    from graph_ml.catalogue import PARAMS

    hints = getattr(n, "hints", [])
    value = getattr(n, "value", 0)
    if not hints:
        return value < 0
    return all(PARAMS[h].problem(value) for h in hints if h in PARAMS)


def _enum(values: list[Any], kind: str) -> dict[str, Any] | None:
    """One of `values`, or null: the model decides each field, it never skips one by
    closing the object early (a greedy small model ends objects too soon)."""
    return {"enum": [*values, None]} if values else None


def _number_kind(name: str) -> str:
    return "integer" if name in ("epochs", "hidden_channels", "num_layers", "heads",
                                 "n_trials", "seeds") else "number"  # fmt: skip


def field_options(c: Candidates) -> dict[str, list[Any]]:
    """Field -> the values the model may choose from."""
    ctx = c.context or {}
    datasets = c.of("dataset") + [f.text for f in c.files if f.exists]
    options: dict[str, list[Any]] = {
        "dataset": list(dict.fromkeys(datasets)),
        "model": c.of("model"),
        "models": c.of("model"),
        "task": list(c.tasks),
        "run_ids": [r for r in ctx.get("runs") or []],
        "run_id": [r for r in ctx.get("runs") or []],
        "nodes": list(c.mentions.nodes) if c.mentions else [],
        "format": [c.mentions.format] if c.mentions and c.mentions.format else [],
    }
    named_runs = list(c.mentions.run_ids) if c.mentions else []
    for key in ("run_ids", "run_id"):
        options[key] = list(dict.fromkeys([*named_runs, *options[key]]))
    for name in NUMERIC_FIELDS:
        options[name] = c.values_for(name)
    return options


def _item(action: str, c: Candidates, options: dict[str, list[Any]], text: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"action": {"type": "string", "enum": [action]}}
    required = ["action"]
    if action == "clarify":
        properties["question"] = {"type": "string", "enum": clarify_topics(c)}
        required.append("question")
    elif action == "answer":
        properties["question"] = {"type": "string", "enum": [text[:MAX_TEXT]]}
        required.append("question")
    fields = action_fields(action)
    for name in fields:
        if name in properties or name == "question":
            continue
        values = options.get(name) or []
        if not values:
            continue
        pointed = False
        if action in ("compare", "report") and name == "run_ids":
            # only runs that trained can be compared (a comparison has no test results of its
            # own) or reported on together
            kinds = (c.context or {}).get("run_kinds") or {}
            usable = ("train", "tune") if action == "compare" else ("train", "tune", "compare")
            values = [v for v in values if kinds.get(v, "train") in usable]
            named_runs = c.mentions.run_ids if c.mentions else []
            if not named_runs:
                values = described_runs(c, values)
                if action == "report":
                    values = runs_of_named_kind(c, values)
                if action == "compare" and not runs_hold_named_models(c, values):
                    continue  # "compare the tuned GCN with GAT" after two GCN runs: new runs
            if c.pointing and not named_runs and len(values) >= c.pointing >= 2:
                values = values[-c.pointing :]  # "compare the two", "both": the latest two
                pointed = True
        if name in ("models", "run_ids", "nodes"):
            kind = "string" if name == "models" else "integer"
            spec = {"type": "array", "items": {"type": kind, "enum": values},
                    "minItems": 2 if name == "models" or (action, name) == ("compare", "run_ids")
                    else 1, "maxItems": len(values),
                    "uniqueItems": True}  # fmt: skip
            if pointed:  # exactly the runs it points at
                spec["minItems"] = len(values)
            if len(values) < spec["minItems"]:
                continue
            if len(values) <= 5:  # each set of them, in the text's order: no repeats possible
                sets = [list(combo) for size in range(spec["minItems"], len(values) + 1)
                        for combo in itertools.combinations(values, size)]  # fmt: skip
                properties[name] = {"enum": [*sets, None]}
                continue
            properties[name] = {"anyOf": [spec, {"type": "null"}]}
        elif name in NUMERIC_FIELDS:
            properties[name] = _enum(values, _number_kind(name))
        elif name in ("run_id",):
            properties[name] = _enum(values, "integer")
        else:
            properties[name] = _enum(values, "string")
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_LATEST = re.compile(
    r"\b(?:it|this|that one|this one|the latest|the last one|the new one)\b|它|这次|刚才|最新",
    re.IGNORECASE,
)


def run_settings(c: Candidates, run: int) -> dict[str, Any] | None:
    """A chat run's dataset, models and epochs (`FollowUps.typed_context`), None if unknown."""
    settings = (c.context or {}).get("run_settings") or {}
    return settings.get(run, settings.get(str(run)))


def described_runs(c: Candidates, runs: list[int]) -> list[int]:
    """The stored runs that fit how the text describes them, and the latest for "it".

    "compare it with the 30-epoch cora run" after runs 1 (cora, 20 epochs), 2 (cora, 30) and
    3 (citeseer, 30): the text names cora and 30 epochs, which fit run 2 only, and "it" is
    run 3. A run fits when each kind of setting the text names (datasets, models, epochs)
    holds one of the named values; a run whose settings are not known is kept. When the
    description fits none, every run stays (the model reads the text; nothing is guessed).
    """
    own = [n for n in c.names if n.how == "named" and not n.negated]
    datasets = {n.name for n in own if n.kind == "dataset"}
    models = {n.name for n in own if n.kind == "model"}
    epochs = {
        n.value
        for n in c.numbers
        if "epochs" in n.hints and not (n.other or n.negated or n.inherited)
    }
    if not (datasets or models or epochs):
        return runs

    def fits(run: int) -> bool:
        said = run_settings(c, run)
        if said is None:
            return True
        return (
            (not datasets or said.get("dataset") in datasets)
            and (not models or bool(models & set(said.get("models") or [])))
            and (not epochs or said.get("epochs") in epochs)
        )

    fitting = [r for r in runs if fits(r)]
    if not fitting:
        return runs
    latest = runs[-1] if runs and _LATEST.search(c.text) else None
    return [r for r in runs if r in fitting or r == latest]


_KIND_WORDS = {
    "compare": re.compile(r"\bcompar(?:e|ed|ing|isons?)\b|对比|比较", re.IGNORECASE),
    "tune": re.compile(r"\btun(?:e|ed|ing)\b|\bsearch\b|调参|调优", re.IGNORECASE),
    "train": re.compile(r"\btrain(?:ed|ing)?\b|训练", re.IGNORECASE),
}
_ONE = re.compile(
    r"\b(?:that|this|the last|the latest)\s+(?:\w+\s+)?(?:comparison|tuning|training|run|one)\b"
    r"|那次|这次|刚才",
    re.IGNORECASE,
)
_MANY = re.compile(r"\bruns\b|\bboth\b|\ball\b|\bcomparisons\b|两|所有", re.IGNORECASE)


def runs_of_named_kind(c: Candidates, runs: list[int]) -> list[int]:
    """A report of "that comparison": the runs of the one kind the text names (and for a
    singular "that"/"this"/"the last", the latest of them); unchanged when the text names
    no kind or several, or when no run is of that kind."""
    kinds = (c.context or {}).get("run_kinds") or {}
    named = [k for k, words in _KIND_WORDS.items() if words.search(c.text)]
    if len(named) != 1:
        return runs
    of_kind = [r for r in runs if kinds.get(r, kinds.get(str(r))) == named[0]]
    if not of_kind:
        return runs
    if _ONE.search(c.text) and not _MANY.search(c.text):
        return of_kind[-1:]
    return of_kind


def runs_hold_named_models(c: Candidates, runs: list[int]) -> bool:
    """Whether the stored runs trained every model the text names (True when some run's
    settings are unknown: nothing to check against)."""
    trained: set[str] = set()
    for run in runs:
        said = run_settings(c, run)
        if said is None:
            return True
        trained |= set(said.get("models") or [])
    named = {n.name for n in c.names if n.kind == "model" and n.how == "named" and not n.negated}
    return named <= trained


def allowed_actions(c: Candidates) -> list[str]:
    """The actions the model may choose for this request: those its action words offer
    (train, when none does, and for a follow-up the last request's action too), asking,
    and answering when it is a question."""
    ctx = c.context or {}
    m = c.mentions
    runs = len(ctx.get("runs") or []) + len(m.run_ids if m else [])
    cued = [q for q in ("tune", "compare", "inspect") if q in c.cues and q not in c.negated_cues]
    negated = [q for q in ("tune", "compare", "inspect") if q in c.negated_cues]
    strong_train = bool(_TRAIN_WORDS.search(c.text))
    if cued and not strong_train and not negated:
        out = list(cued)
    else:
        out = ["train", *cued]
    named = [n for n in c.names if n.how != "session" and not n.negated]
    if m is not None and (m.question or m.show) and any(n.kind == "dataset" for n in named):
        if not any(n.kind == "model" for n in named) and "inspect" not in out:
            out.append("inspect")  # a question about a dataset that names no model
    last = (ctx.get("last") or {}).get("action")
    if not cued and not strong_train and last in ("tune", "compare") and last not in negated:
        out.append(last)  # "same but with 5 seeds" after a comparison
    last_models = (ctx.get("last") or {}).get("models") or []
    enough = (
        len(last_models) >= 2  # "same comparison on citeseer"
        or len(c.of("model", False))
        - len([n for n in c.names if n.kind == "model" and n.how == "session"])
        >= 2
        or runs >= 2
        or (m is not None and m.all_models)
    )
    if "compare" in out and not enough:  # nothing to compare: no candidate
        out.remove("compare")
    if not out:
        out = ["train", *[q for q in ("tune", "inspect") if q not in negated]]
    if "explain" in c.cues or (m is not None and m.nodes):
        out.append("explain")
    if "report" in c.cues and (runs or "report" not in c.negated_cues):
        out.append("report")
        stated = [n for n in c.numbers if not n.inherited and not n.other]
        if runs and not strong_train and not stated and not cued:
            out = [a for a in out if a != "train"]  # "report both runs" trains nothing
    if m is None or m.question or m.show or "answer" in c.cues:
        out.append("answer")
        stated = [n for n in c.numbers if not n.inherited and not n.other]
        if runs and m is not None and m.question and not strong_train and not stated:
            # a question about the chat's results ("which model scored higher?") trains nothing
            out = [a for a in out if a not in ("train", "tune") and (a in cued or a != last)] or [
                "answer"
            ]
    if clarify_topics(c):
        out.append("clarify")
    return list(dict.fromkeys(out))


def request_schema(c: Candidates, text: str, max_actions: int = 1) -> dict[str, Any]:
    """The JSON schema of `{"actions": [...]}` for this request."""
    options = field_options(c)
    items = [_item(action, c, options, text) for action in allowed_actions(c)]
    return {
        "type": "object",
        "properties": {
            "actions": {
                "type": "array",
                "items": {"anyOf": items},
                "minItems": 1,
                "maxItems": max_actions,
            }
        },
        "required": ["actions"],
        "additionalProperties": False,
    }


def relaxed(schema: dict[str, Any]) -> dict[str, Any]:
    """The same choices with unset fields allowed to be left out: what an answer is checked
    against (a backend that cannot constrain decoding writes only the fields it sets)."""
    import copy

    out = copy.deepcopy(schema)
    for item in out["properties"]["actions"]["items"]["anyOf"]:
        item["required"] = [k for k in ("action", "question") if k in item["properties"]]
        for name, spec in item["properties"].items():
            sets = [v for v in spec.get("enum") or [] if isinstance(v, list)]
            if sets:  # any order of a set of the candidates, without repeats
                values = list(dict.fromkeys(v for one in sets for v in one))
                array = {
                    "type": "array",
                    "items": {"enum": values},
                    "uniqueItems": True,
                    "minItems": min(len(v) for v in sets),
                    "maxItems": len(values),
                }
                item["properties"][name] = {"anyOf": [array, {"type": "null"}]}
    return out
