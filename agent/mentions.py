"""The keyword layer the planner's candidates are read with (English and Chinese).

Catalogue names and their aliases ("graph attention network" = gat, "图卷积网络" = gcn),
numbers next to their keywords ("200 epochs", "训练100轮", "lr 0.005", "128 hidden units",
"20次试验"), task words ("predict missing links", "节点分类"), the words that ask for an
action ("compare", "tune", "超参数", "tell me about") and typo correction. `agent.plan`
turns what is found here into candidates, each with its span: the model chooses among them,
nothing here decides the plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import yaml

from agent.actions import MAX_NODES, MAX_RUNS, dataset_names, model_names

_ASCII_EDGE_L = r"(?<![A-Za-z0-9])"  # \b would treat 用GCN as one word
_ASCII_EDGE_R = r"(?![A-Za-z0-9])"
_CJK = re.compile(r"[\u3400-\u9fff]")


def has_cjk(text: str) -> bool:
    """Whether `text` contains Chinese characters."""
    return bool(_CJK.search(text))


# ---------------------------------------------------------------------------------------
# Catalogue names
# ---------------------------------------------------------------------------------------


def _registry_aliases(kind: str) -> dict[str, list[str]]:
    """Canonical name -> the other names the registry knows it by (its own spelling kept)."""
    names = dataset_names() if kind == "datasets" else model_names()
    out: dict[str, list[str]] = {name: [] for name in names}
    # The catalogue itself, not graph_ml.datasets/models: those import torch (seconds).
    from graph_ml.catalogue import DATASETS, MODELS

    registry = DATASETS if kind == "datasets" else MODELS
    for name, spec in registry.items():
        out[name] += sorted(getattr(spec, "aliases", ()))
    return out


@cache
def catalogue_aliases() -> dict[str, dict[str, tuple[str, ...]]]:
    """{"datasets"|"models": {canonical: aliases}}: planner_aliases.yaml first, in its order
    (the most common names come first there), then the registries' own aliases."""
    extra = yaml.safe_load(
        resources.files("prompts").joinpath("planner_aliases.yaml").read_text("utf-8")
    )
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for kind in ("datasets", "models"):
        registry = _registry_aliases(kind)
        curated = extra.get(kind) or {}
        out[kind] = {
            name: tuple(dict.fromkeys(a for a in [*curated.get(name, []), *aliases] if a != name))
            for name, aliases in registry.items()
        }
    return out


def _name_pattern(alias: str) -> str:
    if has_cjk(alias):
        return re.escape(alias)
    parts = [re.escape(p) for p in re.split(r"[\s\-_]+", alias.strip()) if p]
    return _ASCII_EDGE_L + r"[\s\-_]*".join(parts) + r"(?:e?s)?" + _ASCII_EDGE_R


@cache
def _name_matchers(kind: str) -> list[tuple[re.Pattern[str], str]]:
    pairs = [
        (alias, name)
        for name, aliases in catalogue_aliases()[kind].items()
        for alias in (name, *aliases)
    ]
    pairs.sort(key=lambda pair: len(pair[0]), reverse=True)  # "graph attention v2" first
    return [(re.compile(_name_pattern(alias), re.IGNORECASE), name) for alias, name in pairs]


def find_names(text: str, kind: str) -> list[str]:
    """Canonical `kind` names ("datasets" or "models") in `text`, in order of appearance."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, str]] = []
    for pattern, name in _name_matchers(kind):
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue  # inside a longer name already matched
            taken.append((start, end))
            found.append((start, name))
    ordered: list[str] = []
    for _, name in sorted(found):
        if name not in ordered:
            ordered.append(name)
    return ordered


# ---------------------------------------------------------------------------------------
# Typos
# ---------------------------------------------------------------------------------------

# Words the rules below key on. A word one slip away from one of them ("trian", "droput",
# "compre", "epcohs", "citesser") is read as that word, so a typo does not silently lose a
# value. Catalogue names and aliases are added from the catalogues.
_KEYWORDS = (
    "train", "training", "trained", "compare", "comparison", "benchmark", "epochs", "epoch",
    "dropout", "learning", "layers", "hidden", "heads", "attention", "trials", "seeds",
    "random", "weight", "decay", "channels", "units", "classification", "classify",
    "prediction", "predict", "optimise", "optimize", "hyperparameters", "hyperparameter",
    "inspect", "explain", "report", "markdown", "dataset", "graph", "nodes", "search",
    "rate", "tune",
)  # fmt: skip
_TYPO_WORD = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z]{5,}(?![A-Za-z0-9_])")


@cache
def _typo_vocabulary() -> frozenset[str]:
    words = set(_KEYWORDS)
    for names in catalogue_aliases().values():
        for name, aliases in names.items():
            for alias in (name, *aliases):
                parts = re.split(r"[\s\-_']+", alias.lower())
                # a word of a longer name only when it is long ("isomorphism"), not "simple"
                words.update(p for p in parts if len(parts) == 1 or len(p) >= 8)
    return frozenset(w for w in words if len(w) >= 5 and re.fullmatch(r"[a-z]+", w))


def _one_slip(word: str, target: str) -> bool:
    """One letter left out, added, swapped with its neighbour, or (in longer words) wrong;
    the first letter is kept, which keeps real words ("later", "leads") from matching."""
    if word[0] != target[0] or word == target:
        return False
    if len(word) == len(target):
        diff = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            return word[diff[0]] == target[diff[1]] and word[diff[1]] == target[diff[0]]
        return len(diff) == 1 and len(word) >= 6
    short, long_ = sorted((word, target), key=len)
    if len(long_) - len(short) != 1:
        return False
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


_ENDINGS = ("er", "ers", "ed", "ing", "r", "d")  # "optimizer", "trainer": a word made from one


def correct_typos(text: str) -> str:
    """`text` with each word one slip away from exactly one keyword replaced by it."""
    vocabulary = _typo_vocabulary()

    def fix(match: re.Match[str]) -> str:
        word = match.group(0).lower()
        if word in vocabulary or word.rstrip("s") in vocabulary or word + "s" in vocabulary:
            return match.group(0)
        stems = [word[: -len(end)] for end in _ENDINGS if word.endswith(end)]
        if any(stem in vocabulary or stem + "e" in vocabulary for stem in stems):
            return match.group(0)
        hits = {t for t in vocabulary if _one_slip(word, t)}
        return hits.pop() if len(hits) == 1 else match.group(0)

    return _TYPO_WORD.sub(fix, text)


# ---------------------------------------------------------------------------------------
# Numbers next to their keywords
# ---------------------------------------------------------------------------------------

_WORD_NUMBERS = {
    "a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_WORD_SCALES = {"hundred": 100, "thousand": 1000}
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}  # fmt: skip
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000}

_WORD = "|".join(sorted(set(_WORD_NUMBERS) - {"a"} | set(_WORD_SCALES), key=len, reverse=True))
# "two hundred and fifty", "twenty-five", "a hundred": one number, not three
_WORDS = rf"(?:a[\s-]+(?:hundred|thousand)|(?:{_WORD}))(?:[\s-]+(?:and[\s-]+)?(?:{_WORD}))*"
NUM = (
    r"(?P<num>\d{1,3}(?:,\d{3})+(?![\d.])|(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)"
    r"(?:%|\s?percent\b)?"
    r"|(?<![A-Za-z])"
    + _WORDS
    + r"(?![A-Za-z])|(?<![上下这那每第同单])[零一二两三四五六七八九十百千]+)"
)
_SEP = (  # "lr = 0.01", "lr of 0.01", "epoch数为300", "学习率设置成0.01"
    r"\s*(?:数|数量|个数|次数|值)?\s*(?:=|:|：|is|of|set\s+to|equal\s+to|equals|to|at|as|was|be|为|是|设为|设置为|设置成|"
    r"设成|定为|调成|调为|调到|改成|改为|改到|设到|设置到|等于|取|用)?\s*"
)  # "lr = 0.01", "lr of 0.01"


def _zh_number(text: str) -> int | None:
    total, digit = 0, None
    for ch in text:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        elif ch in _ZH_UNITS:
            total += (1 if digit is None else digit) * _ZH_UNITS[ch]
            digit = None
        else:
            return None
    return total + (digit or 0)


def _word_number(text: str) -> int | None:
    total, current = 0, 0
    for word in re.split(r"[\s-]+", text):
        if word == "and":
            continue
        if word in _WORD_SCALES:
            current = max(current, 1) * _WORD_SCALES[word]
            if _WORD_SCALES[word] >= 1000:
                total, current = total + current, 0
        elif word in _WORD_NUMBERS:
            current += _WORD_NUMBERS[word]
        else:
            return None
    return total + current


def parse_number(token: str) -> float | int | None:
    """ "200" -> 200, "5e-4" -> 0.0005, "30%" -> 0.3, "two hundred" -> 200, "一百" -> 100."""
    token = token.strip().lower().replace(",", "")
    if re.fullmatch(r"[a-z\s-]+", token):
        return _word_number(token)
    if _CJK.search(token):
        return _zh_number(token)
    percent = token.endswith(("%", "percent"))
    token = token.removesuffix("percent").rstrip("% ")
    try:
        value = float(token)
    except ValueError:
        return None
    if percent:
        return value / 100
    if value.is_integer() and re.fullmatch(r"\d+", token):
        return int(value)
    return value


# Each field: patterns with the number as group `num`; the first match in the text wins.
_FIELD_PATTERNS: dict[str, tuple[str, ...]] = {
    "epochs": (
        NUM + r"[\s-]*(?:training\s+|full\s+|max(?:imum)?\s+|个)?"
        r"(?:epochs?|iterations|rounds|轮|周期|次迭代|代)",
        r"epochs?" + _SEP + NUM,
        r"(?:训练|迭代|跑)\s*" + NUM + r"\s*(?:轮|个?epochs?|代)",
        r"迭代\s*" + NUM + r"\s*次",  # "跑5次" is five runs, not five epochs
        r"(?:轮数|轮次|迭代次数|迭代轮数)" + _SEP + NUM,
    ),
    "lr": (
        r"(?:learning[\s_-]*rate|\blr|step[\s_-]*size|学习率)" + _SEP + NUM,
        NUM + r"\s*(?:as\s+(?:the\s+)?)?(?:learning[\s_-]*rate|\blr\b|的学习率)",
    ),
    "weight_decay": (
        r"(?:weight[\s_-]*decay|\bwd|\bl2(?:[\s-]*(?:regulari[sz]ation|penalty|reg))?|权重衰减|正则化?系数)"
        + _SEP
        + NUM,
        NUM + r"\s*(?:weight[\s_-]*decay|的权重衰减|(?:l2[\s-]*)?regulari[sz]ation\b)",
        r"regulari[sz]ation(?:[\s-]*(?:strength|coefficient|weight))?" + _SEP + NUM,
    ),
    "hidden_channels": (
        r"(?:hidden(?:[\s_-]*(?:size|dim(?:ension(?:ality)?)?s?|channels?|units?|width|features|layer[\s-]*size|neurons))?|width|embedding[\s-]*(?:size|dim(?:ension)?))"
        + _SEP
        + NUM,
        NUM + r"[\s-]*(?:hidden(?![\s-]*layer)[\s-]*(?:units?|channels?|dim(?:ension)?s?|neurons|"
        r"features|size)?|-?dim(?:ensional)?\s+hidden|units|neurons|channels)",
        r"hidden[\s-]*(?:layers?|representations?)\s+(?:of\s+|with\s+)?(?:the\s+)?"
        r"(?:size|width|dimension|dim)" + _SEP + NUM,
        r"(?:size|width|dimension|dim)\s+(?:of\s+)?(?:the\s+)?hidden[\s-]*"
        r"(?:layers?|units|representations?|channels)?" + _SEP + NUM,
        r"(?:隐藏|隐)(?:层)?(?:维度|大小|单元数?|通道数?|神经元数?|层维度|层大小|维数|宽度)?"
        + _SEP
        + NUM,
        NUM + r"\s*(?:个|维)?(?:隐藏单元|隐藏维度|隐藏通道|隐藏神经元|维隐藏)",
        r"(?:layers?|hidden)\s+(?:(?:is|are)\s+)?" + NUM + r"\s*(?:units?\s+|channels?\s+)?wide\b",
        NUM + r"[\s-]*(?:units?|channels?|neurons?)?[\s-]*wide\b",
    ),
    "num_layers": (
        NUM + r"[\s-]*(?:hidden[\s-]+|gnn[\s-]+|message[\s-]passing[\s-]+|"
        r"conv(?:olution(?:al)?)?[\s-]+|graph[\s-]+)?layers?",
        # "3 GCN layers", "2 attention layers": one word between, not "64 units per layer"
        NUM + r"[\s-]+(?!(?:of|in|per|for|and|with|the|each|across|every|units?|channels?|"
        r"neurons?|dims?|dimensions?)\b)[A-Za-z][A-Za-z0-9]*[\s-]+layers\b",
        r"(?:num[\s_]*layers|layers|depth)" + _SEP + NUM,
        NUM + r"\s*层",
        r"层数" + _SEP + NUM,
    ),
    "dropout": (
        r"(?:dropout|drop[\s-]*(?:rate|prob(?:ability)?|ratio))(?:[\s-]*(?:rate|probability|ratio|率|概率))?"
        + _SEP
        + NUM,
        NUM + r"\s*(?:dropout|drop[\s-]*(?:rate|prob(?:ability)?|ratio))",
    ),
    "heads": (
        NUM + r"[\s-]*(?:attention[\s-]+)?heads?",
        r"(?:heads|num[\s_]*heads|attention heads)" + _SEP + NUM,
        NUM + r"\s*个?(?:注意力)?头",
        r"(?:注意力)?头数" + _SEP + NUM,
        r"注意力头" + _SEP + NUM,
    ),
    "n_trials": (
        NUM + r"[\s-]*(?:optuna\s+|tuning\s+|search\s+|random\s+|bayesian\s+|different\s+)?"
        r"(?:trials?|configurations|configs|candidates)",
        r"(?:trials?|n[\s_]*trials|budget\s+of)" + _SEP + NUM,
        r"(?:试验|实验)次?数" + _SEP + NUM,
        NUM + r"\s*(?:次|个|组)?(?:试验|实验|尝试|搜索|trials?)",
        r"试验次数" + _SEP + NUM,
        r"预算" + _SEP + NUM + r"\s*(?:次|个|组)?",
        r"(?:试验|trials?)\s*" + NUM + r"\s*次",
        r"(?<!重复)" + NUM + r"\s*次[^，。,.\d]{0,8}?(?:试验|搜索|trials?)",
        r"(?:超参数?|调参|调优|搜索|寻优)[^，。,.\d]{0,6}?[，,\s]*" + NUM + r"\s*次",
    ),
    "seeds": (
        NUM + r"[\s-]*(?:different\s+|random\s+|independent\s+)*"
        r"(?:seeds|runs|repeats|repetitions|restarts|initiali[sz]ations|inits)",
        r"seeds" + _SEP + NUM,
        NUM + r"-(?:seed|run)\b",  # "a 5-seed average"
        r"(?:repeat(?:ed)?|run)\s+(?:it\s+|each\s+|them\s+|this\s+)?" + NUM + r"\s+times",
        NUM + r"\s+times(?!\s+(?:faster|slower|more|less|as|larger|smaller|bigger))",
        NUM + r"\s*个?(?:不同的?)?(?:随机)?种子",
        r"(?:重复|运行|跑)\s*" + NUM + r"\s*次",
        r"种子数" + _SEP + NUM,
    ),
}
_MIN_COUNT = {"hidden_channels": 2}  # "一个隐藏维度为32的GCN": 一个 is "a", not one unit
INT_FIELDS = frozenset({"epochs", "hidden_channels", "num_layers", "heads", "n_trials", "seeds"})


@cache
def _field_matchers() -> dict[str, list[re.Pattern[str]]]:
    return {
        name: [re.compile(p, re.IGNORECASE) for p in patterns]
        for name, patterns in _FIELD_PATTERNS.items()
    }


def find_numbers(text: str) -> dict[str, int | float]:
    """Numeric fields the text states, e.g. {"epochs": 200, "lr": 0.01}.

    Each field takes its earliest match; one number is one field's value, so where two
    fields claim the same number ("epochs 100 lr 0.01": "100 lr" and "epochs 100"), the
    field with no other choice keeps it and the other takes its next match.
    """
    candidates: dict[str, list[tuple[int, tuple[int, int], int | float]]] = {}
    for name, patterns in _field_matchers().items():
        for pattern in patterns:
            for match in pattern.finditer(text):
                value = parse_number(match.group("num"))
                if value is None:
                    continue
                if name not in INT_FIELDS and not re.match(r"[\d.]", match.group("num")):
                    continue  # "a learning rate of one hundredth" is not 1
                if name in INT_FIELDS:
                    if float(value) != int(value) or 0 < value < _MIN_COUNT.get(name, 1):
                        continue  # a 0 is kept: the planner asks about it, never drops it
                    value = int(value)
                candidates.setdefault(name, []).append((match.start(), match.span("num"), value))
    for options in candidates.values():
        options.sort(key=lambda option: option[0])
    found: dict[str, int | float] = {}
    taken: set[tuple[int, int]] = set()
    pending = dict(candidates)
    while pending:
        # the field with the fewest numbers left to choose from chooses first
        name = min(pending, key=lambda n: (sum(o[1] not in taken for o in pending[n]), n))
        options = pending.pop(name)
        free = [o for o in options if o[1] not in taken]
        if free:  # a number another field holds is not this field's too
            found[name] = free[0][2]
            taken.add(free[0][1])
    return {name: found[name] for name in candidates if name in found}


_LOOSE_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.\-])(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)(?P<pct>%)?(?![A-Za-z0-9_.])"
)
# Numbers that are something other than an action field: "seed 42", "batch size 32",
# "K=2", "patience of 50", "10-fold", "2 GPUs", "class 3", "top 5", "in 2019".
_OTHER_NUMBER = re.compile(
    r"(?:\bseeds?|\bbatch(?:[\s_-]*size)?|\bpatience|\bk|\balpha|\bbeta|\btop|\bclass(?:es)?|\bgpus?|"
    r"\bfolds?|\bversion|\bv|\bcuda|\bstep|\bsteps|\bneighbou?rs|\bfanout|\bsample|\bsize|\bid|\bno\.?|"
    r"\bnumber|#|种子|批(?:量|次)?(?:大小)?|批大小|耐心|第|类别?)\s*(?:=|:|：|is|of|to|为|是)?\s*"
    + r"\d[\d.eE+-]*"
    + r"|\d[\d.eE+-]*\s*(?:[-\s]?fold\b|gpus?\b|classes\b|neighbou?rs\b|propagation|hops?\b|"
    r"steps?\b|times\s+(?:faster|slower|more|less)|%?\s*of\s+the|个?类|折|块|张|年)"
    r"|\b(?:19|20)\d\d\b",
    re.IGNORECASE,
)


def loose_numbers(text: str) -> list[int | float]:
    """Numbers in `text` that no keyword rule claims, that name nothing (a node, a run, a
    seed value, a batch size) and that are not part of a name ("GATv2"): values the planner's
    model may place in a field the words leave open, and nothing else."""
    claimed: list[tuple[int, int]] = []
    for patterns in _field_matchers().values():
        for pattern in patterns:
            claimed += [m.span("num") for m in pattern.finditer(text)]
    for pattern in (_NODES, _RUNS, _OTHER_NUMBER):
        claimed += [m.span() for m in pattern.finditer(text)]
    out: list[int | float] = []
    for match in _LOOSE_NUMBER.finditer(text):
        start, end = match.span("num")
        if any(s <= start and end <= e for s, e in claimed):
            continue
        value = parse_number(match.group("num") + (match.group("pct") or ""))
        if value is not None and value not in out:
            out.append(value)
    return out


_NODES = re.compile(
    r"(?:\bnodes?|节点|顶点)\s*(?:#|ids?|index|indices|编号|号)?\s*"
    r"(?P<list>\d+(?:(?:\s*(?:,|，|、|and|和|&|or|to|through|-|–|到|至)\s*|\s+)(?:nodes?\s*|节点\s*)?#?\d+(?!\.\d|\d))*)",
    re.IGNORECASE,
)
_RUNS = re.compile(
    r"(?:\bruns?|实验|运行)\s*(?:#|ids?|no\.?|number|编号)?\s*"
    r"(?P<list>\d+(?:\s*(?:,|，|、|and|和|&|vs\.?|versus|or|to|through|-|–|到|至)\s*(?:runs?\s*|运行\s*|实验\s*)?#?\d+)*)"
    r"(?![\d\s]*(?:times|x\b|epochs?|seeds?|trials?|次|轮))",
    re.IGNORECASE,
)


_RANGE = re.compile(
    r"(\d+)\s*(?:to|through|-|–|到|至)\s*(?:runs?\s*|nodes?\s*|运行|节点)?(\d+)", re.I
)


def _int_list(match: re.Match[str] | None, limit: int) -> list[int]:
    """The numbers of a list ("3, 7 and 9"); a short range ("runs 2 to 5") is spelled out."""
    if match is None:
        return []
    text = match.group("list")
    for low, high in _RANGE.findall(text):
        if 0 <= int(high) - int(low) < limit:
            text = text.replace(f"{low}", " ".join(map(str, range(int(low), int(high) + 1))), 1)
    values = [int(v) for v in re.findall(r"\d+", text)]
    return list(dict.fromkeys(values))[:limit]


# ---------------------------------------------------------------------------------------
# Task words and action words
# ---------------------------------------------------------------------------------------

_TASK_PATTERNS: dict[str, tuple[str, ...]] = {
    "link_prediction": (
        r"link[\s-]*predict",
        r"predict\w*\s+(?:(?:the|missing|future|new|unseen|hidden|held[\s-]out|which|possible)\s+)*"
        r"(?:links?|edges?|connections?|citations?|collaborations?|interactions?|friendships?)",
        r"(?:missing|future|unseen)\s+(?:links?|edges?|connections?)",
        r"(?:edge|link)[\s-]*(?:prediction|forecast|completion)",
        r"recommend\w*\s+(?:new\s+)?(?:links|edges|connections|friends)",
        r"will\s+(?:connect|link|be\s+(?:connected|linked))|whether\s+(?:two|a\s+pair\s+of)\s+nodes",
        r"链[接路]预测|边预测|预测.{0,8}?(?:边|链接|连接|链路)",
    ),
    "graph_classification": (
        r"graph[\s-]*(?:level[\s-]*)?classif|graph[\s-]level|whole[\s-]graph",
        r"classif\w*\s+(?:(?:the|whole|entire|each|all|these)\s+)*(?:\w+\s+)?(?:graphs|molecules?|compounds|proteins)",
        r"molecul|mutagen|compound",
        r"图分类|图级|分子|化合物",
    ),
    "node_classification": (
        r"node[\s-]*(?:level[\s-]*)?classif",
        r"classif\w*\s+(?:(?:the|each|all|these)\s+)*(?:\w+\s+)?(?:nodes|papers|documents|articles|users|members|vertices)",
        r"node\s+labels?|label(?:ling|ing)?\s+(?:the\s+)?nodes",
        r"(?:category|class|label|topic|subject|type)\s+of\s+(?:each|every|the)\s+"
        r"(?:paper|node|document|article|user|vertex|member)",
        r"(?:论文|节点|文章|用户)的?(?:类别|标签|主题)",
        r"(?:paper|document|article)\s+(?:topics|categories|classes|labels|subjects)",
        r"节点分类|节点级|顶点分类",
    ),
}

_ACTION_PATTERNS: dict[str, tuple[str, ...]] = {
    "compare": (
        r"\bcompar|\bvs\.?(?![a-z])|\bversus\b|head[\s-]to[\s-]head|against each other",
        r"which\s+(?:one\s+|model\s+|of\s+(?:them|the\s+\w+)\s+)?(?:is|does|performs?|works?|will\s+be|gives?)\s+(?:\w+\s+)?(?:better|best|stronger|higher)",
        r"\bbetter\b[^.?!]*\bor\b|\bor\b[^.?!]*\bbetter\b|side[\s-]by[\s-]side|benchmark\w*\b",
        r"对比|比较|哪个.{0,4}好|哪个.{0,4}高|孰优|谁更",
    ),
    "tune": (
        r"\btun(?:e|es|ed|ing)\b|hyper[\s-]?param|\bsearch|optimi[sz](?:e|es|ed|ing|ation)\b",
        r"\boptimal\b",
        r"\bsweep|optuna|bayesian|\btrials?\b|grid\s+search|random\s+search",
        r"best\s+(?:possible\s+)?(?:model|configuration|config|settings?|hyper\w*|architecture|"
        r"combination|parameters|gnn|method|network)",
        r"which\s+(?:model|gnn|architecture|method|network)\s+(?:is|works|performs|would\s+be|"
        r"does)\s+(?:the\s+)?best|auto[\s-]?ml",
        r"超参|调参|调优|搜索|寻优|最优|最佳(?:模型|配置|参数)|最好的?(?:模型|配置|参数)|试验",
    ),
    "inspect": (
        r"tell\s+me\s+about|\bdescribe|statistic|\bstats\b|homophil|\binspect|data[\s-]doctor",
        r"how\s+many\s+(?:nodes|edges|classes|graphs|features|labels)|class\s+(?:balance|distribution)",
        r"(?:summar(?:y|ise|ize)|overview|profile)\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+)?(?:data|dataset|graph)",
        r"(?:look|check)\s+(?:at\s+|on\s+)?(?:the\s+)?(?:\w+\s+)?(?:data|dataset)|isolated\s+nodes",
        r"数据集?.{0,6}(?:信息|统计|情况|介绍|概况|特征)|(?:介绍|描述|检查|查看|分析|看看|看一下)(?:一下)?.{0,8}数据",
        r"多少(?:个)?(?:节点|边|类|图)|同质|统计信息|度分布|密度|连通分量|类别分布|标签分布",
        r"\bdegree|\bdensity\b|label\s+distribution|class\s+imbalance|connected\s+components",
        r"\b(?:imbalanced?|leak(?:age|s|ing)?|duplicates?|self[\s-]loops?)\b|node\s+features",
        r"几(?:个|种)?(?:类别|类|节点|图|特征)|类别数|特征维度|数据泄露|自环|不平衡|体检|诊断",
        r"clustering\s+coefficient",
        r"\bis\s+(?:the\s+|this\s+|it\s+)?(?:[\w-]+\s+){0,2}?(?:(?:graph|dataset|network|data)\s+)?"
        r"(?:connected|sparse|dense|balanced|imbalanced|homophil\w*|heterophil\w*|directed|"
        r"undirected|bipartite|weighted)\b",
    ),
    "explain": (
        r"\bexplain|feature\s+importance|important\s+(?:features|neighbou?rs|edges|words)",
        r"\bwhy\b[^.?!]{0,40}?(?:predict|classif|label)|misclassif|wrong\s+prediction",
        r"which\s+(?:features|neighbou?rs|edges|words)\s+(?:matter|mattered|drove|drive|influenced|are\s+important)",
        r"解释|为什么.{0,12}(?:预测|分类|判断|分错|错)|可解释|分错|错分|误分类|预测错",
    ),
    "report": (
        r"\breport\b|write[\s-]?up|\bhtml\b|markdown",
        r"summar(?:y|ise|ize)\s+(?:of\s+|the\s+|my\s+|all\s+|these\s+|our\s+)*"
        r"(?:results|runs|experiments)",
        r"报告|总结.{0,6}(?:结果|实验)|汇总",
    ),
    "answer": (
        r"which\s+(?:run|experiment)|best\s+run|(?:last|previous|earlier|latest|prior|most\s+recent)"
        r"\s+(?:[\w-]+\s+){0,2}?(?:runs?|experiments?|results?|training|models?|comparison)\b",
        r"did\s+(?:my|our|that|this|it|the)\b[^.?!]{0,30}?\b(?:get|reach|score|achieve|do|perform)\b"
        r"|how\s+(?:well|good|badly)\s+did\b",
        r"(?:results?|accuracy|scores?|metrics?|performance)\s+(?:of|for|from|in)\s+"
        r"(?:run|experiment)\s*#?\d",
        r"(?:运行|实验)\s*#?\d+\s*的?(?:结果|准确率|精度|表现|指标|效果)|结果(?:如何|怎么样|怎样)",
        r"\bso\s+far\b|did\s+(?:it|the\s+\w+)\s+(?:do|get|reach|score)|\bmy\s+(?:runs|results|experiments)",
        r"\blast\s+time\b|\bpreviously\b|\bearlier\b|\bI\s+(?:used|got|ran|trained)\b",
        r"\b(?:have|did)\s+I\s+(?:done|run|ran|trained|tried)\b|\bI(?:'ve|\s+have)\s+"
        r"(?:done|run|trained|tried)\b|how\s+many\s+(?:runs|experiments)\b",
        r"上次|上一次|之前|刚才|哪次|哪一次|目前为止|我(?:的)?(?:实验|结果)",
        # the spread of results over seeds/runs is a fact of stored runs, not of the data
        r"\b(?:std|stdev|standard\s+deviation|variance|spread|variability)\b[^.?!]{0,30}?"
        r"\b(?:across|over|between|among)\s+(?:the\s+|its\s+|my\s+|all\s+)?(?:\d+\s+)?"
        r"(?:seeds|runs|folds|repeats)\b",
        r"(?:种子|运行|折)(?:之间|间)?的?(?:标准差|方差|波动)|(?:标准差|方差|波动)(?:有)?多(?:大|少)",
    ),
    "train": (
        r"\btrain|\bfit\b|\bfits\b|\brun\b|\bbaseline|\bclassif|\bpredict|\buse\b|\busing\b|\bbuild",
        r"\bapply|\bevaluate|\blearn|\bgive\s+me\b",
        r"训练|跑|分类|预测|用|建模|拟合",
    ),
}

_MULTI_STEP = re.compile(
    r"\bthen\b|\bafterwards?\b|\bafter\s+that\b|\bfollowed\s+by\b|\bfinally\b|\bnext\s*,"
    r"|\band\s+(?:also\s+)?(?:write|make|produce|generate|create|give\s+me|explain|report)"
    r"|然后|之后|随后|接着|最后|再(?:做|生成|写|解释|训练|对比|比较)|并(?:且)?(?:生成|写|解释|给出|训练|对比|比较)",
    re.IGNORECASE,
)
_RUN_WORDS = re.compile(  # words that ask for a model to be run, not just data described
    r"\btrain|\bfit\b|\bfits\b|\brun\b|\bcompar|\btun(?:e|ing)\b|训练|拟合|对比|比较|调参|跑",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"\?|？|吗|什么|多少|哪|(?:^|[.!;:。！；]\s*)(?:what|which|how|did|was|were|who|"
    r"why|where)\b",
    re.IGNORECASE,
)
_FORMAT = {
    "html": re.compile(_ASCII_EDGE_L + r"html" + _ASCII_EDGE_R + r"|网页", re.I),
    "markdown": re.compile(r"markdown|" + _ASCII_EDGE_L + r"md" + _ASCII_EDGE_R, re.I),
}
_REQUEST = re.compile(  # a polite request phrased as a question: "could you classify ..."
    r"\b(?:can|could|would|will)\s+you\s+(?:please\s+)?(?!tell|describe|show|explain|summari)"
    r"[a-z]+|\bplease\b|\bpls\b|请|帮我|能不能帮|可以帮",
    re.IGNORECASE,
)
_SHOW = re.compile(
    r"^\s*(?:please\s+)?(?:list|show|tell|give|print|display)\b|列出|显示|告诉我|给我看|看看我",
    re.IGNORECASE,
)
_RESULT_WORDS = re.compile(  # what a question about earlier results asks for
    r"\b(?:accuracy|accuracies|score|scores|results?|performance|f1|auc|loss|metrics?|"
    r"best|worst|highest|lowest)\b|准确率|精度|结果|效果|表现|得分|最好|最高",
    re.IGNORECASE,
)
_ALL_MODELS = re.compile(
    r"\b(?:all|every|each)\s+(?:of\s+)?(?:the\s+)?(?:available\s+|supported\s+)?"
    r"(?:models?|gnns?|architectures?|methods?|baselines?)\b|\b(?:whole|entire)\s+(?:model\s+)?zoo\b"
    r"|\beverything\s+in\s+the\s+zoo\b|(?:所有|全部|每个|每种|各种)的?(?:模型|方法|GNN)",
    re.IGNORECASE,
)
_UNKNOWN_DATASET = re.compile(
    r"(?:\bon|\bdataset|\bdata\s+set|\bgraph|在)\s+(?:the\s+)?(?P<name>[A-Z][A-Za-z0-9-]{2,})"
    r"|在\s*(?P<zh>[A-Za-z][A-Za-z0-9-]{2,})\s*(?:数据集)?上",
)
_NOT_DATASETS = frozenset({"the", "gpu", "cpu", "cuda", "it", "this", "that", "them", "my", "our"})


def _positions(text: str, patterns: Iterable[str]) -> int | None:
    starts = [m.start() for p in patterns if (m := re.search(p, text, re.IGNORECASE))]
    return min(starts) if starts else None


@dataclass
class Mentions:
    """Everything `extract` read from a request.

    Attributes:
        datasets / models: canonical names, in order of appearance.
        task: the learning task its words state, if any.
        numbers: numeric action fields it states ({"epochs": 200}).
        nodes / run_ids: node indices and experiment-store run ids it names.
        loose: numbers no keyword claims ("Train GCN on Cora for 100"), for the model to place.
        format: "html" or "markdown" when it asks for one.
        cues: actions its words ask for, in order of appearance (may be noisy).
        multi_step: it asks for several steps ("..., then ...", "然后").
        question: it is phrased as a question.
        asks_to_run: it asks for a model to be trained, compared or tuned.
        about_results: it speaks of results (accuracy, score, best, 准确率...).
        request: a polite request ("could you ...", "please", "请"), even as a question.
        show: it begins "list/show/tell me ..." (列出, 显示): a question put as an order.
        all_models: it asks for every model in the catalogue ("all models", "所有模型").
        unknown_dataset: a capitalised name in a dataset position the catalogue lacks.
        chinese: it is written in Chinese.
    """

    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    task: str | None = None
    numbers: dict[str, int | float] = field(default_factory=dict)
    nodes: list[int] = field(default_factory=list)
    run_ids: list[int] = field(default_factory=list)
    loose: list[int | float] = field(default_factory=list)
    format: str | None = None
    cues: list[str] = field(default_factory=list)
    multi_step: bool = False
    question: bool = False
    asks_to_run: bool = False
    about_results: bool = False
    request: bool = False
    show: bool = False
    all_models: bool = False
    unknown_dataset: str | None = None
    chinese: bool = False


def _unknown_dataset(text: str, known: list[str]) -> str | None:
    if known:
        return None
    for match in _UNKNOWN_DATASET.finditer(text):
        name = match.group("name") or match.group("zh")
        if name.lower() in _NOT_DATASETS or find_names(name, "models"):
            continue
        return name
    return None


def extract(text: str) -> Mentions:
    """Read datasets, models, task, numbers, nodes, runs and action words from `text`."""
    text = correct_typos(text)
    datasets = find_names(text, "datasets")
    models = find_names(text, "models")
    task_at = {t: _positions(text, p) for t, p in _TASK_PATTERNS.items()}
    task_at = {t: at for t, at in task_at.items() if at is not None}
    cue_at = {a: _positions(text, p) for a, p in _ACTION_PATTERNS.items()}
    return Mentions(
        datasets=datasets,
        models=models,
        task=min(task_at, key=task_at.__getitem__) if task_at else None,
        numbers=find_numbers(text),
        nodes=_int_list(_NODES.search(text), MAX_NODES),
        run_ids=[r for r in _int_list(_RUNS.search(text), MAX_RUNS) if r >= 1],
        loose=loose_numbers(text),
        format=next((f for f, p in _FORMAT.items() if p.search(text)), None),
        cues=sorted((a for a, at in cue_at.items() if at is not None), key=cue_at.__getitem__),
        multi_step=bool(_MULTI_STEP.search(text)),
        question=bool(_QUESTION.search(text)),
        asks_to_run=bool(_RUN_WORDS.search(text)),
        about_results=bool(_RESULT_WORDS.search(text)),
        request=bool(_REQUEST.search(text)),
        show=bool(_SHOW.search(text)),
        all_models=bool(_ALL_MODELS.search(text)),
        unknown_dataset=_unknown_dataset(text, datasets),
        chinese=has_cjk(text),
    )
