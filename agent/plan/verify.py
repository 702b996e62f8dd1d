"""The words verify the model's plan: nothing invented, nothing silently left over.

`check(plan, candidates)` returns a `Verdict`:

- `final`: the plan to use: the model's, or a clarify that names what is wrong;
- `feedback`: why the model's plan contradicts the words (a taken-back name used, a named
  value left out); the planner re-asks the model with it, and after the last re-ask the
  plan becomes a clarify saying what was understood and what was not.

Never a quiet fix: a negative or absurd value is a question naming the value as typed
("-3", "1e12", "10^6"); an unknown model, dataset or file is a question naming it and
listing what is known; a value the model did not place is a re-ask, not a silent drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.actions import MAX_TEXT, action_fields
from agent.plan.candidates import NUMERIC_FIELDS, Candidates
from agent.plan.schema import UNCLEAR, runs_hold_named_models

RUNS = ("train", "tune", "compare")
NEEDS_DATASET = ("train", "tune", "compare", "inspect")


@dataclass
class Verdict:
    final: list[dict[str, Any]]
    feedback: str = ""
    notes: list[str] = field(default_factory=list)  # what verification decided, and why


def _zh(c: Candidates) -> bool:
    import re

    return bool(re.search(r"[\u3400-\u9fff]", c.text))


def _known(kind: str) -> str:
    from graph_ml.catalogue import DATASETS, MODELS

    return ", ".join(MODELS if kind == "model" else DATASETS)


def question_about(topic: str, c: Candidates) -> str:
    """The clarifying question for a topic the model (or the verifier) chose."""
    zh = _zh(c)
    for u in c.unknown:
        if u.text == topic:
            kind = "模型" if u.kind == "model" else "数据集"
            if zh:
                return f"我不认识{kind}“{topic}”；我知道的{kind}有：{_known(u.kind)}。要用哪一个？"
            known = _known(u.kind)
            return f"I don't know the {u.kind} '{topic}'; I know {known}. Which one do you mean?"
    for f in c.files:
        if f.text == topic:
            if zh:
                return (
                    f"找不到文件“{topic}”（在允许的目录下）。"
                    f"请给出存在的文件路径，或选一个数据集：{_known('dataset')}。"
                )
            return (
                f"I can't find the file '{topic}' under the directories I may read; give a "
                f"path that exists there, or one of the datasets {_known('dataset')}."
            )
    for n in c.numbers:
        if n.text == topic:
            where = f" for {'/'.join(n.hints)}" if n.hints else ""
            problem = _range_problem(n.hints[0], n.value) if n.hints else None
            why = f" ({problem})" if problem else ""
            if zh:
                return f"“{topic}”{where}这个值不对{why}。请给出一个合理的值。"
            return f"The value '{topic}'{where} can't be used{why}. Which value do you mean?"
    if zh:
        return "我没有理解这个请求。你想在哪个数据集上做什么（训练、调参、对比模型或查看数据）？"
    return (
        "I did not understand the request. What should I do (train, tune, compare models "
        "or inspect data), and on which dataset?"
    )


def _range_problem(name: str, value: Any) -> str | None:
    from graph_ml.catalogue import PARAMS

    return PARAMS[name].problem(value) if name in PARAMS else None


def clarify(question: str) -> dict[str, Any]:
    return {"action": "clarify", "question": question[:MAX_TEXT]}


def _used_values(plan: list[dict[str, Any]]) -> set[Any]:
    out: set[Any] = set()
    for action in plan:
        for key, value in action.items():
            if key in NUMERIC_FIELDS:
                out.add((key, value))
    return out


def check(plan: list[dict[str, Any]], c: Candidates, text: str) -> Verdict:
    """Check the model's plan against the words (see the module docstring)."""
    kinds = [a["action"] for a in plan]
    # 1. The model asked: its question names what it chose.
    if "clarify" in kinds:
        topic = next(a["question"] for a in plan if a["action"] == "clarify")
        number = next((n for n in c.numbers if n.text == topic and not n.inherited), None)
        if (
            number is not None
            and number.hints
            and not c.unknown
            and not any(_range_problem(h, number.value) for h in number.hints)
        ):  # a question about a value that is fine: ask the model again, not the user
            return Verdict(plan, feedback=f"{topic} is a valid {number.hints[0]} "
                           f"({number.value}); ask only about what cannot be used")  # fmt: skip
        named = [n for n in c.names if n.how != "session" and not n.negated]
        if (
            topic == UNCLEAR
            and not c.unknown
            and not any(not f.exists for f in c.files)
            and any(n.kind == "dataset" for n in named)
            and (any(n.kind == "model" for n in named) or c.cues)
        ):  # the words name what to run it on and with: not unclear, ask the model again
            said = ", ".join(dict.fromkeys(f"{n.kind} {n.name}" for n in named))
            return Verdict(plan, feedback=f"the request names {said}: choose the action")
        if topic == UNCLEAR and (c.unknown or any(not f.exists for f in c.files)):
            topic = (
                c.unknown[0].text if c.unknown else next(f.text for f in c.files if not f.exists)
            )
        return Verdict(
            [clarify(question_about(topic, c))], notes=[f"the model asked about {topic!r}"]
        )
    for action in plan:
        if action["action"] == "answer":
            action["question"] = text[:MAX_TEXT]
    runs = [a for a in plan if a["action"] in (*RUNS, "inspect")]
    stored = bool(runs) and runs[0]["action"] == "compare" and bool(runs[0].get("run_ids"))
    # 2. What can never run: out-of-range values, unknown names, missing files.
    for action in plan:
        for key in NUMERIC_FIELDS:
            if key in action and _range_problem(key, action[key]):
                typed = next(
                    (n.text for n in c.numbers if n.value == action[key]), str(action[key])
                )
                return Verdict(
                    [clarify(question_about(typed, c))],
                    notes=[f"{key}={action[key]!r} is out of range"],
                )
    if runs and not stored:  # (a comparison of stored runs names them by their settings)
        for n in c.numbers:
            if n.inherited or n.other or n.negated or not n.hints:
                continue
            if all(_range_problem(h, n.value) for h in n.hints):
                return Verdict(
                    [clarify(question_about(n.text, c))],
                    notes=[f"{n.text!r} is no valid {'/'.join(n.hints)}"],
                )
        if c.unknown:
            u = c.unknown[0]
            return Verdict(
                [clarify(question_about(u.text, c))],
                notes=[f"the catalogue has no {u.kind} {u.text!r}"],
            )
        missing = [f for f in c.files if not f.exists]
        if missing:
            return Verdict(
                [clarify(question_about(missing[0].text, c))],
                notes=[f"no file {missing[0].text!r} under the allowed roots"],
            )
    # 3. The plan against the words: re-ask the model when they disagree.
    problems: list[str] = []
    negated_names = {
        (n.kind, n.name)
        for n in c.names
        if n.negated and [m for m in c.names if (m.kind, m.name) == (n.kind, n.name)][-1].negated
    }
    for action in plan:
        used = {("dataset", action.get("dataset")), ("model", action.get("model"))}
        used |= {("model", m) for m in action.get("models") or []}
        for kind, name in sorted(negated_names & used):
            problems.append(f"the text takes back the {kind} {name}")
        if (
            action["action"] == "compare"
            and len(action.get("models") or []) < 2
            and not (action.get("run_ids"))
        ):
            problems.append("a compare needs two models or earlier runs")
        if action["action"] in c.negated_cues:
            problems.append(f"the text says not to {action['action']}")
        if action["action"] == "compare" and action.get("run_ids"):
            problems.extend(_models_not_in_runs(action["run_ids"], c))
    used = _used_values(plan)
    for n in c.numbers:
        if (
            n.negated
            and any((h, n.value) in used for h in n.hints)
            and not any(m.value == n.value and not m.negated for m in c.numbers if m is not n)
        ):
            problems.append(f"{n.text} was taken back")
    if runs and not (runs[0]["action"] == "compare" and runs[0].get("run_ids")):
        primary = runs[0]
        fields = action_fields(primary["action"])
        for n in c.numbers:
            if n.other or n.negated or n.inherited or not n.hints:
                continue
            if any((h, n.value) in used for h in n.hints):
                continue
            open_fields = [h for h in n.hints if h in fields and h not in primary]
            if open_fields:
                problems.append(f'"{n.text}" ({open_fields[0]}) is not in the plan')
            elif not any(h in fields for h in n.hints):
                problems.append(f'"{n.text}" ({n.hints[0]}) has no place in a {primary["action"]}')
        named = [n for n in c.names if n.how == "named" and not n.negated]
        for n in named:
            if (n.kind, n.name) in negated_names:
                continue
            holders = [a for a in plan if n.name in (a.get(n.kind), *(a.get("models") or []))]
            if holders:
                continue
            own = {m.name for m in c.names if m.kind == "dataset" and m.how != "session"}
            if (
                n.kind == "dataset"
                and "dataset" in fields
                and len(own - {x for k, x in negated_names}) == 1
            ):
                problems.append(f"the dataset {n.name} is not in the plan")
            own_models = {m.name for m in c.names if m.kind == "model" and m.how != "session"}
            if (
                n.kind == "model"
                and primary["action"] == "train"
                and (not primary.get("model") or primary["model"] not in own_models)
            ):  # no model, or the session's instead of this turn's ("same but with GAT" kept
                # gcn); one of this turn's own (a described 'simplifying GCN' = sgc) is fine
                problems.append(f"the model {n.name} is not in the plan")
        files = [f.text for f in c.files if f.exists]
        if files and "dataset" in fields and primary.get("dataset") not in files:
            problems.append(f"the file {files[0]} is not the plan's dataset")
        if (
            primary["action"] in NEEDS_DATASET
            and not primary.get("dataset")
            and not (primary["action"] == "compare" and primary.get("run_ids"))
        ):
            if not c.of("dataset", False):
                topic = "no_dataset"
                q = (
                    "要用哪个数据集？可选："
                    if _zh(c)
                    else "Which dataset should I use? Choose from: "
                )
                return Verdict(
                    [clarify(q + _known("dataset") + ("。" if _zh(c) else "."))],
                    notes=[f"{topic}: the request names no dataset"],
                )
            problems.append("the plan names no dataset")
    if problems:
        return Verdict(plan, feedback="; ".join(dict.fromkeys(problems)))
    return Verdict(plan)


def _models_not_in_runs(run_ids: list[int], c: Candidates) -> list[str]:
    """A model the text names that none of the compared stored runs trained: "compare the
    tuned GCN with GAT" is no comparison of two stored GCN runs."""
    if runs_hold_named_models(c, run_ids):
        return []
    return [f"the text names a model that none of runs {', '.join(map(str, run_ids))} trained"]


def give_up(c: Candidates, feedback: str) -> dict[str, Any]:
    """After the last re-ask: a clarify saying what was understood and what was not."""
    understood = [f"{n.kind} {n.name}" for n in c.names if not n.negated and n.how != "session"]
    understood += [
        f"{n.text}" for n in c.numbers if not n.other and not n.inherited and not n.negated
    ]
    said = ", ".join(dict.fromkeys(understood)) or "nothing I could use"
    if _zh(c):
        return clarify(f"我读到了：{said}；但无法确定计划（{feedback}）。请说得更具体一些。")
    return clarify(
        f"I read: {said}; but I could not settle the plan ({feedback}). "
        "Could you say it more precisely?"
    )
