"""What the words of a request offer the planner's model: candidates, never the plan.

`read(text, context)` returns `Candidates`:

- every number with its span, its value and the field its keyword suggests ("200 epochs"
  -> epochs), or none ("for 100"), or "other" when it is plainly something else (a seed
  value, a dataset's size, "34-member");
- every catalogue model and dataset the text names by a name or alias, by a description
  ("the 34-member club graph", "the simplifying GCN") or by a catalogue fact (a size from
  its description, its paper's first author);
- the task words and action words, each with its span;
- negations and corrections ("instead of GAT", "60 epochs, no, 90", 不要调参): which name,
  number or action word they take back;
- names the catalogue does not know ("GraphTransformer", "ogbn-proteins", "our supplier
  network") and file paths (with whether they exist under the allowed roots);
- text that poses as instructions (a system tag, an HTML comment, 系统提示): cut out
  before anything else is read, so it can never set a field.

The parsing of names, keywords and cues is `agent.mentions`'; numbers in every format are
`agent.plan.numbers`'. The schema (`agent.plan.schema`) makes each field an enum of its
candidates; the verifier (`agent.plan.verify`) checks the model's choice against them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agent import mentions as M
from agent.plan.numbers import Number, find_numbers, normalise

NUMERIC_FIELDS = (
    "epochs", "lr", "hidden_channels", "num_layers", "dropout", "weight_decay", "heads",
    "n_trials", "seeds",
)  # fmt: skip
COUNT_FIELDS = frozenset({"epochs", "hidden_channels", "num_layers", "heads", "n_trials", "seeds"})
# where a number no keyword claims is plausible at all (the catalogue's `typical`)
_EXTRA_HINTS: dict[str, tuple[str, ...]] = {
    "seeds": (M.NUM + r"\s*个\s*(?:random\s+)?seeds?", M.NUM + r"\s*(?:个|次)?\s*(?:随机)?种子"),
    "dropout": (
        r"(?:丢弃率|丢弃概率|dropout\s*率)" + M._SEP + M.NUM,
        M.NUM + r"\s*(?:的)?\s*dropout",
    ),
    "epochs": (M.NUM + r"\s*个\s*epochs?", r"epochs?\s*(?:数|数量)?\s*" + M.NUM),
    "hidden_channels": (r"hidden\s*(?:size|dim)?\s*(?:设成|设为|为|=)?\s*" + M.NUM,),
    "n_trials": (M.NUM + r"\s*(?:个|次|组)?\s*trials?",),
    "heads": (M.NUM + r"\s*个\s*heads?",),
    # "lernin rate 0.01": a rate that is no drop rate is a learning rate
    "lr": (r"(?<![A-Za-z])(?!drop|dropout)[a-z]{3,}\s+rate" + M._SEP + M.NUM,),
}
# a number glued to a noun that is no action field: a size, a count of things
_DESCRIPTIVE = re.compile(
    r"^\s*(?:-|\s)?(?:[\w-]+\s+){0,2}?(?:papers?|documents?|articles?|members?|nodes?|edges?|"
    r"graphs?|molecules?|proteins?|classes|categories|communities|blocks|features|movies?|"
    r"ego[\s-]networks?|users?|people|authors?|篇|个(?:图|节点|类|分子)|类|个成员|名成员)\b",
    re.IGNORECASE,
)
_HYPHEN_WORD = re.compile(r"^-[A-Za-z]")
_RUN_COUNT = re.compile(
    r"(?:\b(?:last|previous|first|these|those|the|my|both|all)|这|那|前|最后)\s*$", re.I
)


@dataclass
class NumberCandidate:
    number: Number
    hints: list[str] = field(default_factory=list)  # fields its keywords suggest
    other: bool = False  # plainly not an action field (seed 42, 3,327-document)
    negated: bool = False  # taken back ("60 epochs, no, 90": 60)
    inherited: str | None = None  # a value kept from the session's last request (its field)
    replaced: bool = False  # taken back and replaced by a later number ("60, no, 90")

    @property
    def value(self) -> int | float:
        return self.number.value

    @property
    def text(self) -> str:
        return self.number.text


@dataclass
class NameCandidate:
    kind: str  # "dataset" | "model"
    name: str  # canonical
    how: str  # "named" | "described" | "session"
    span: tuple[int, int] = (0, 0)
    said: str = ""  # the words that point at it
    negated: bool = False


@dataclass
class Unknown:
    kind: str  # "model" | "dataset" | "file"
    text: str  # as typed
    span: tuple[int, int] = (0, 0)
    exists: bool = False  # files: found under the allowed roots


@dataclass
class Candidates:
    text: str  # the request with injected instructions cut out
    injected: list[str] = field(default_factory=list)
    numbers: list[NumberCandidate] = field(default_factory=list)
    names: list[NameCandidate] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    files: list[Unknown] = field(default_factory=list)
    pointing: int | None = None  # "compare the two", "both": how many things it points at
    tasks: list[str] = field(default_factory=list)
    cues: list[str] = field(default_factory=list)  # action words, in order
    negated_cues: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)  # the marker words, as typed
    mentions: M.Mentions | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    def of(self, kind: str, include_negated: bool = True) -> list[str]:
        out = []
        for c in self.names:
            if c.kind == kind and (include_negated or not c.negated) and c.name not in out:
                out.append(c.name)
        return out

    def values_for(self, name: str) -> list[int | float]:
        """The numbers the `name` field may take (its enum), in order of appearance."""
        out: list[int | float] = []
        for c in self.numbers:
            if c.other or (c.inherited and c.inherited != name):
                continue
            if c.hints and name not in c.hints:
                continue
            if c.negated and (not c.hints or c.replaced):
                continue  # "rather than 64", "60 epochs, no, 90": taken back
            if not c.hints and not c.inherited and not _plausible(name, c.value):
                continue
            if name in COUNT_FIELDS and not c.number.whole:
                continue
            if c.value not in out:
                out.append(c.value)
        return out


def _plausible(name: str, value: int | float) -> bool:
    from graph_ml.catalogue import PARAMS

    typical = PARAMS[name].typical
    return typical is None or typical[0] <= value <= typical[1]


# ------------------------------------------------------------------------- injections

_INJECTIONS = (
    r"<!--.*?(?:-->|$)",
    r"<\s*(script|style|iframe)\b[^>]*>.*?(?:<\s*/\s*\1\s*>|$)",  # markup is data, not numbers
    r"</?\s*(?:system|assistant|user|instructions?|im_start|im_end|s|inst)\b[^>]*>.*$",
    r"\[/?(?:system|inst|INST)\].*$",
    r"[（(]\s*(?:系统提示|系统|system(?:\s+prompt)?|note\s+to\s+(?:the\s+)?(?:planner|assistant|model))\s*[:：].*?(?:[）)]|$)",
    r"(?:系统提示|system\s*prompt|system)\s*[:：].*$",
    r"\bignore\s+(?:all\s+|the\s+|any\s+)?(?:previous|prior|above|earlier)?\s*(?:instructions|the\s+user).*$",
    r"忽略(?:用户|以上|之前|上面).*$",
)
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _INJECTIONS), re.IGNORECASE | re.DOTALL)


def cut_injections(text: str) -> tuple[str, list[str]]:
    """The request without text that poses as instructions, and what was cut."""
    cut = [m.group(0) for m in _INJECTION.finditer(text)]
    return (_INJECTION.sub(" ", text).strip() if cut else text), cut


# ------------------------------------------------------------------------------ names


@cache
def _descriptions() -> dict[str, dict[str, list[re.Pattern[str]]]]:
    data = yaml.safe_load(
        resources.files("prompts").joinpath("planner_descriptions.yaml").read_text("utf-8")
    )
    from graph_ml.catalogue import DATASETS, MODELS

    out: dict[str, dict[str, list[re.Pattern[str]]]] = {"model": {}, "dataset": {}}
    for kind, registry, key in (("model", MODELS, "models"), ("dataset", DATASETS, "datasets")):
        for name, spec in registry.items():
            patterns = [re.compile(p, re.IGNORECASE) for p in (data.get(key) or {}).get(name, [])]
            if kind == "model":
                author = re.match(r"([^\W\d_][\w'-]+)", spec.paper or "")
                if author and author.group(1).lower() not in ("baseline",):
                    patterns.append(re.compile(rf"\b{re.escape(author.group(1))}\b", re.I))
            out[kind][name] = patterns
    return out


@cache
def _dataset_sizes() -> dict[str, list[float]]:
    """Numbers the catalogue's dataset descriptions state (2708 papers, 188 molecules)."""
    from graph_ml.catalogue import DATASETS

    out: dict[str, list[float]] = {}
    for name, spec in DATASETS.items():
        values = [float(v) for v in re.findall(r"\d+", spec.description) if float(v) >= 30]
        size = spec.size
        values += [float(v) for v in (size.nodes, size.graphs) if v and v > 30]
        out[name] = sorted(set(values))
    return out


def _named(text: str, kind: str) -> list[NameCandidate]:
    taken: list[tuple[int, int]] = []
    out = []
    for pattern, name in M._name_matchers("datasets" if kind == "dataset" else "models"):
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            if re.search(r"[A-Za-z0-9]-$", text[max(0, start - 8) : start]):
                continue  # "ogbn-proteins" is not proteins
            taken.append((start, end))
            out.append(NameCandidate(kind, name, "named", (start, end), match.group(0)))
    return sorted(out, key=lambda c: c.span)


def _described(text: str, kind: str, named: list[NameCandidate]) -> list[NameCandidate]:
    out = []
    for name, patterns in _descriptions()[kind].items():
        for pattern in patterns:
            match = pattern.search(text)
            if match and not any(c.span[0] <= match.start() < c.span[1] for c in named):
                out.append(NameCandidate(kind, name, "described", match.span(), match.group(0)))
                break
    return out


def _by_size(text: str, numbers: list[Number]) -> list[NameCandidate]:
    out = []
    for number in numbers:
        if number.value < 30:
            continue
        for name, sizes in _dataset_sizes().items():
            if any(abs(number.value - s) <= 0.01 * s for s in sizes):
                span = (number.start, number.end)
                out.append(NameCandidate("dataset", name, "described", span, number.text))
    return out


# ---------------------------------------------------------------------- unknown names

_STOP_CAPS = frozenset(
    "I A AN THE GPU CPU CUDA EC WL OK AND OR ON IN FOR TO OF WITH LR ID CSV HTML JSON MD ML "
    "AI NLP API PDF GNN GNNS SOTA BTW AUC ROC F1 PPR KNN PS NB OGB TU PYG DGL PYTORCH".split()
)
_CAMEL = re.compile(
    r"(?<![\w./-])([A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+|[A-Z]{2,}[A-Za-z0-9]*|ogb[ng]-[a-z0-9-]+)(?![\w/.-]*[/.]\w)"
)
_MODEL_SLOT = re.compile(
    r"(?:\b(?:train|fit|run|use|using|try|benchmark|with|apply|tune)\s+(?:a|an|the|some)?\s*|用\s*|跑\s*)"
    r"(?P<name>[A-Za-z][A-Za-z0-9+-]{2,})",
    re.IGNORECASE,
)
_DATA_SLOT = re.compile(
    r"(?:\bon|\bfor|\bof)\s+(?:our|my|the|a|an|this|some)?\s*(?:(?:own|internal|company|private|new|custom)\s+)*"
    r"(?P<name>[a-z][a-z0-9_-]{2,}(?:\s+[a-z][a-z0-9_-]{2,})?)\s+(?:network|graph|dataset|data)\b",
    re.IGNORECASE,
)
_ZH_DATA_SLOT = re.compile(r"在\s*(?P<name>[A-Za-z][A-Za-z0-9_-]{1,})\s*(?:数据集|图)?\s*上")
_PATH = re.compile(
    r"(?<![\w])(?P<path>(?:~|\.{1,2})?/?(?:[\w.-]+/)*[\w-]+\.(?:csv|tsv|txt|json|jsonl|parquet|npz|npy|pt|pkl|edgelist|edges|gml|graphml|mtx|xlsx)"
    r"|(?:~|\.{1,2})?/(?:[\w.-]+/)+[\w.-]*)",
    re.IGNORECASE,
)
_GENERIC_DATA = frozenset(
    "the this that my our a graph citation citation paper social same whole entire full new "
    "training test validation random synthetic it them".split()
)


def _unknown_names(text: str, names: list[NameCandidate], files: list[Unknown]) -> list[Unknown]:
    known_spans = [c.span for c in names if c.how == "named"] + [f.span for f in files]
    out: list[Unknown] = []

    def inside(start: int, end: int) -> bool:
        return any(s <= start and end <= e or (start < e and s < end) for s, e in known_spans)

    def add(kind: str, word: str, span: tuple[int, int]) -> None:
        if any(u.text.lower() == word.lower() for u in out) or inside(*span):
            return
        if any(c.span == (0, len(word)) for c in _named(word, "model") + _named(word, "dataset")):
            return  # the whole word is a catalogue name
        out.append(Unknown(kind, word, span))

    for match in _CAMEL.finditer(text):
        word = match.group(1)
        if word.upper() in _STOP_CAPS or word.isdigit():
            continue
        after = text[match.end() : match.end() + 12]
        before = text[max(0, match.start() - 12) : match.start()]
        if re.match(r"\s*(?:et\s+al|等人|等)", after) or re.search(r"\b(?:by|of|from)\s+$", before):
            continue  # an author ("Xu et al.", "Hamilton 等人")
        kind = "dataset" if word.lower().startswith(("ogbn", "ogbg", "ogbl")) else "model"
        if re.search(r"(?:\bon|\bdataset|在)\s*$", before) or re.match(
            r"\s*(?:数据集|dataset|上)", after
        ):
            kind = "dataset"
        add(kind, word, match.span(1))
    for match in _MODEL_SLOT.finditer(text):
        word = match.group("name")
        if word[0].isupper() and not word.isupper() and re.search(r"[A-Z]", word[1:]):
            add("model", word, match.span("name"))
    for match in _DATA_SLOT.finditer(text):
        phrase = match.group("name")
        words = [w for w in phrase.split() if w.lower() not in _GENERIC_DATA]
        if not words or M.find_names(phrase, "datasets") or any(c.kind == "dataset" for c in names):
            continue
        if _descriptions_hit(phrase):
            continue
        add("dataset", words[-1], match.span("name"))
    for match in M._UNKNOWN_DATASET.finditer(text):
        word = match.group("name") or match.group("zh")
        if word.lower() in M._NOT_DATASETS or word.upper() in _STOP_CAPS:
            continue
        if any(c.kind == "dataset" and c.how == "named" for c in names):
            continue
        span = match.span("name") if match.group("name") else match.span("zh")
        add("dataset", word, span)
    for match in _ZH_DATA_SLOT.finditer(text):
        word = match.group("name")
        if word.upper() not in _STOP_CAPS:
            add("dataset", word, match.span("name"))
    return out


def _descriptions_hit(phrase: str) -> bool:
    return any(p.search(phrase) for ps in _descriptions()["dataset"].values() for p in ps)


def _files(text: str, context: Mapping[str, Any]) -> list[Unknown]:
    from core.paths import AllowedRoots

    out = []
    for match in _PATH.finditer(text):
        typed = match.group("path").rstrip(".,;:)")
        if not re.search(r"[/.]", typed) or re.fullmatch(r"[\d.]+", typed):
            continue
        exists = False
        try:
            roots = AllowedRoots.default(context.get("workspace"), context.get("data_dir"))
            path = (roots.cwd / Path(typed).expanduser()).resolve()
            exists = roots.contains(path) and path.exists()
        except (OSError, ValueError):
            exists = False
        out.append(Unknown("file", typed, match.span("path"), exists))
    return out


# ----------------------------------------------------------------- negations, corrections

_BEFORE_NEG = re.compile(  # the next name/number/cue is taken back
    r"(?:\binstead\s+of|\brather\s+than|\bnot\b|\bno\s+need\s+(?:for|to)|\bdon'?t\s+(?:use|need|want|do)?|"
    r"\bdo\s+not\s+(?:use)?|\bwithout|\bexcept|\bexcluding|\bdrop(?:ping)?\s+(?:the\s+)?|\bremove\s+(?:the\s+)?|"
    r"\bleave\s+out\s+(?:the\s+)?|\bskip\s+(?:the\s+)?|\bnever|"
    r"不要用?|不用|别用?|不是|不需要|无需|去掉|除了|而不是|不要再)",
    re.IGNORECASE,
)
_AFTER_FIX = re.compile(  # the last item before is taken back, the one after replaces it
    r"(?:,|，|;|\.|\s)\s*(?:no\b\s*,?\s*(?:wait\s*,?)?|actually\s*,?|sorry\s*,?\s*(?:I\s+meant)?|I\s+meant|"
    r"make\s+(?:it|that)|correction\s*:?|oops\s*,?|不对\s*，?|改成|应该是|其实是?|我是说|算了\s*，?)\s*",
    re.IGNORECASE,
)


@dataclass
class _Item:
    kind: str  # "dataset" | "model" | "number" | "cue"
    span: tuple[int, int]
    ref: Any


def _negate(text: str, items: list[_Item], out: Candidates) -> None:
    items = sorted(items, key=lambda i: i.span)
    for match in _BEFORE_NEG.finditer(text):
        after = [i for i in items if i.span[0] >= match.end() and i.span[0] - match.end() <= 25]
        if not after:
            continue
        first = after[0]
        # "not GAT, use GCN", "instead of GAT": a name; "no need for a search": a cue
        if first.kind != "cue":
            first.ref.negated = True
        elif first.ref in ("tune", "compare", "inspect", "report", "explain"):
            out.negated_cues.append(first.ref)
        out.corrections.append(match.group(0).strip())
    for match in _AFTER_FIX.finditer(text):
        after = [i for i in items if i.span[0] >= match.end() and i.span[0] - match.end() <= 30]
        if not after:
            continue
        new = after[0]
        same = [i for i in items if i.kind == new.kind and i.span[1] <= match.start() + 1]
        if new.kind == "number":
            same = [i for i in same if _same_number_kind(i.ref, new.ref)]
        if same:
            old = same[-1]
            if not isinstance(old.ref, str):
                old.ref.negated = True
            if new.kind == "number":
                old.ref.replaced = True
            if new.kind == "number" and not new.ref.hints:
                new.ref.hints = list(old.ref.hints)  # "60 epochs, no, 90": 90 epochs
            out.corrections.append(match.group(0).strip(" ,，;."))


def _same_number_kind(a: NumberCandidate, b: NumberCandidate) -> bool:
    if a.other or b.other:
        return False
    if b.hints and a.hints and not set(a.hints) & set(b.hints):
        return False
    return a.number.whole == b.number.whole or bool(set(a.hints) & set(b.hints))


# ------------------------------------------------------------------------------ reading


def _hints(normal_text: str, normal: Any) -> dict[int, list[str]]:
    """Number index -> fields whose keywords claim it ("200 epochs": epochs)."""
    found: dict[int, list[str]] = {}
    index = {id(n): i for i, (_, _, n) in enumerate(normal.numbers)}
    matchers = dict(M._field_matchers())
    for name, patterns in _EXTRA_HINTS.items():
        matchers[name] = [*matchers[name], *(re.compile(p, re.IGNORECASE) for p in patterns)]
    for name, patterns in matchers.items():
        for pattern in patterns:
            for match in pattern.finditer(normal_text):
                number = normal.number_at(*match.span("num"))
                if number is None:
                    continue
                fields = found.setdefault(index[id(number)], [])
                if name not in fields:
                    fields.append(name)
    return found


_CUE_WORDS = {name: [re.compile(p, re.IGNORECASE) for p in patterns]
              for name, patterns in M._ACTION_PATTERNS.items()}  # fmt: skip


def _cue_spans(text: str) -> list[tuple[int, int, str]]:
    out = []
    for name, patterns in _CUE_WORDS.items():
        for pattern in patterns:
            for match in pattern.finditer(text):
                out.append((match.start(), match.end(), name))
    return sorted(out)


def read(text: str, context: Mapping[str, Any] | None = None) -> Candidates:
    """The candidates of `text` (see the module docstring); `context` is the session's."""
    context = dict(context or {})
    clean, injected = cut_injections(text)
    clean = M.correct_typos(clean)
    numbers = find_numbers(clean)
    normal = normalise(clean, numbers)
    hints = _hints(normal.text, normal)
    out = Candidates(text=clean, injected=injected, context=context)
    out.mentions = M.extract(normal.text)
    files = _files(clean, context)
    file_spans = [f.span for f in files]
    named = _named(clean, "dataset") + _named(clean, "model")
    for index, number in enumerate(numbers):
        if any(s <= number.start and number.end <= e for s, e in file_spans):
            continue
        if any(c.span[0] <= number.start < c.span[1] for c in named):
            continue  # "GATv2", "ogbn-arxiv": part of a name
        candidate = NumberCandidate(number, hints.get(index, []))
        rest = clean[number.end :]
        if not candidate.hints and (_DESCRIPTIVE.match(rest) or _HYPHEN_WORD.match(rest)):
            candidate.other = True
        if not candidate.hints and number.spelled and number.value == 1:
            candidate.other = True  # "a GCN", "一个"
        if not candidate.hints and _other_number(clean, number):
            candidate.other = True
        if _RUN_COUNT.search(clean[max(0, number.start - 24) : number.start]) and re.match(
            r"\s*(?:runs?|experiments?|trainings?|results?|次|个\s*run)", rest
        ):
            candidate.hints, candidate.other = [], True  # "the last two runs": which runs
        if not candidate.hints and number.spelled and _POINTING.search(
            clean[max(0, number.start - 12) : number.start]
        ):
            candidate.other = True  # "compare the two", "these three": which things, no value
            out.pointing = int(number.value)
        out.numbers.append(candidate)
    described = _described(clean, "dataset", named) + _described(clean, "model", named)
    sized = _by_size(clean, [c.number for c in out.numbers if c.other or not c.hints])
    for c in sized:  # a dataset's size is a description, never a field value
        for n in out.numbers:
            if (n.number.start, n.number.end) == c.span:
                n.other = True
    out.names = named + [c for c in described + sized if (c.kind, c.name) not in
                         {(n.kind, n.name) for n in named}]  # fmt: skip
    out.files = files
    out.unknown = _unknown_names(clean, out.names, files)
    cue_spans = _cue_spans(clean)
    out.cues = list(dict.fromkeys(name for _, _, name in cue_spans))
    items = [_Item(c.kind, c.span, c) for c in out.names if c.how == "named"]
    items += [
        _Item("number", (n.number.start, n.number.end), n) for n in out.numbers if not n.other
    ]
    items += [_Item("cue", (s, e), name) for s, e, name in cue_spans]
    _negate(clean, items, out)
    out.negated_cues = list(dict.fromkeys(out.negated_cues))
    task_at = {}
    for task, patterns in _TASKS.items():
        at = M._positions(normal.text, patterns)
        if at is not None:
            task_at[task] = at
    out.tasks = sorted(task_at, key=task_at.__getitem__)
    if out.mentions.all_models and not out.of("model"):  # "compare all models": the zoo
        for name in zoo_models(out.mentions):
            out.names.append(NameCandidate("model", name, "described", (0, 0), "all models"))
    if out.pointing is None and re.search(r"\bboth\b|这两|那两", clean, re.IGNORECASE):
        out.pointing = 2
    _add_context(out, context)
    return out


# The task stated by what it means ("which papers will cite each other"), beyond mentions'.
_TASK_MEANING = {
    "link_prediction": (
        r"cite\s+each\s+other|become\s+friends|friendships?|befriend|hidden\s+links|"
        r"(?:recover|find|guess|predict|infer|suggest)\w*\s+(?:\w+\s+){0,2}(?:links?|edges?|connections?|ties)\b|"
        r"\bwill\s+(?:\w+\s+){0,2}(?:link|connect|cite|befriend|interact)",
        r"会不会.{0,6}(?:连|引用|成为朋友)|引用关系|成为朋友|好友推荐|推荐.{0,4}(?:好友|朋友|连接)|缺失的边|潜在的边",
    ),
    "graph_classification": (
        r"(?:each|every|per)\s+(?:\w+\s+)?(?:molecules?|graphs?|proteins?|compounds?)\b|"
        r"whether\s+(?:it|each|the|a)\s+(?:\w+\s+)?(?:molecule|graph|compound|protein)|\btoxic",
        r"每个\s*(?:分子|图|graph|蛋白质|化合物)|是不是酶|有没有毒|是否有毒",
    ),
    "node_classification": (
        r"which\s+of\s+the\s+(?:\w+\s+){0,2}(?:blocks?|communit\w+|class\w*|groups?|categor\w+)\s+each\s+node|"
        r"(?:each|every)\s+(?:node|paper|member|user|vertex|document)\b[^.?!]{0,40}\b(?:belongs?|class\w*|label\w*|categor\w+|topic)",
        r"每篇论文.{0,4}分.{0,2}类|每个节点.{0,8}(?:类|标签|属于)|给.{0,12}(?:节点|论文).{0,6}分类",
    ),
}
_TASKS = {t: (*M._TASK_PATTERNS[t], *_TASK_MEANING[t]) for t in M._TASK_PATTERNS}


_OTHER = re.compile(
    r"(?:\bseed|\bbatch(?:[\s_-]*size)?|\bpatience|\bk\b|\balpha|\bbeta|\btop|\bclass(?:es)?|\bgpus?|"
    r"\bfolds?|\bversion|\bv|\bcuda|\bsteps?|\bneighbou?rs|\bfanout|\bid|\bno\.?|\bturn|\brun|"
    r"#|种子|批(?:量|次)?(?:大小)?|耐心|第|节点|node|nodes|runs?)\s*(?:=|:|：|is|of|to|为|是|#)?\s*$",
    re.IGNORECASE,
)


def _other_number(text: str, number: Number) -> bool:
    before = text[max(0, number.start - 20) : number.start]
    after = text[number.end : number.end + 16]
    if _OTHER.search(before):
        return True
    if re.match(
        r"\s*(?:[-\s]?fold\b|gpus?\b|classes\b|hops?\b|times\s+(?:faster|slower)|折|年|%?\s*of\s+the)",
        after,
        re.I,
    ):
        return True
    return bool(re.fullmatch(r"(?:19|20)\d\d", number.text))


# A spelled number right after these words points at things ("the two", "these three
# models", "both"), it is no field's value.
_POINTING = re.compile(r"(?:\bthe|\bthese|\bthose|\bboth|\ball|\blast|\bfirst)\s+$", re.IGNORECASE)


def _add_context(out: Candidates, context: Mapping[str, Any]) -> None:
    """The session's last request: its dataset, model(s) and values may be kept. A turn that
    names its own data (a dataset, a file) is not offered the session's: what it names is
    used as named or asked about, never swapped for the previous one."""
    last = context.get("last") or {}
    names_data = bool(out.files) or bool(out.of("dataset", include_negated=False))
    for kind in ("dataset", "model"):
        value = last.get(kind) or (context.get(kind) if kind == "dataset" else None)
        if kind == "dataset" and names_data:
            continue
        if value and value not in out.of(kind):
            out.names.append(NameCandidate(kind, str(value), "session"))
    latest = context.get("dataset")
    if latest and not names_data and latest not in out.of("dataset"):
        out.names.append(NameCandidate("dataset", str(latest), "session"))
    for model in last.get("models") or []:
        if model not in out.of("model"):
            out.names.append(NameCandidate("model", model, "session"))
    for name in NUMERIC_FIELDS:
        value = last.get(name)
        if value is not None:
            number = Number(-1, -1, str(value), value, "session")
            out.numbers.append(NumberCandidate(number, [name], inherited=name))
    task = last.get("task")
    if task and task not in out.tasks:
        out.tasks.append(task)


def zoo_models(m: Any) -> list[str]:
    """The catalogue's models for the request's task ("compare all models"), at most the
    zoo's size; typed models (rgcn, hgt) need node or edge types, so they are left out."""
    from agent.actions import MAX_MODELS
    from graph_ml.catalogue import DATASETS, MODELS  # torch-free

    task = m.task
    if task is None and m.datasets:
        task = getattr(DATASETS.get(m.datasets[0]), "default_task", None)
    zoo = [name for name, spec in MODELS.items() if (task is None or task in spec.tasks)
           and not (spec.requires_hetero or spec.uses_edge_types)]  # fmt: skip
    return zoo[:MAX_MODELS]
