"""Templated explanations of stored runs, in the language the user wrote in.

Facts, then words: `agent.facts` computes a typed facts object from the stored run (per-seed
epochs, gaps, split sizes, timings, sampled models, trial counts, config differences) and
decides what they mean against named thresholds; the words live in
`prompts/explain_<kind>.<lang>.j2` (Jinja2, `StrictUndefined`), English and Chinese, and
each statement is guarded by the fact that makes it true. Every number an explanation shows
comes from the facts passed in (stored with the run and shown by `autoglm experiments show
ID --json` under `facts`); none is typed into a template.

`explain_node(model, data, node_ids)` (from `graph_ml.attributions`, re-exported here) gives
feature and edge attributions for chosen nodes of a trained node classifier through
`torch_geometric.explain` (GNNExplainer).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import prompts
from agent.facts import compare_facts, stored_or_computed
from agent.facts.common import SIGNIFICANCE_LEVEL  # noqa: F401 - re-exported
from core.errors import UserInputError
from graph_ml.attributions import explain_node, receptive_hops
from prompts import fmt_num, fmt_p, fmt_pct, fmt_seconds, fmt_value  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord

__all__ = ["detect_language", "explain_node", "explain_run", "receptive_hops", "render"]

LANGUAGES = ("en", "zh")

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def detect_language(text: str | None) -> str:
    """`zh` when the text contains CJK characters, else `en`."""
    return "zh" if text and _CJK.search(text) else "en"


def render(kind: str, language: str, /, **facts: Any) -> str:
    """Render `prompts/explain_<kind>.<language>.j2` with `facts` (missing facts raise)."""
    if language not in LANGUAGES:
        raise UserInputError(f"Unknown language {language!r}; choose from: {', '.join(LANGUAGES)}.")
    text = prompts.render(f"explain_{kind}.{language}.j2", **facts)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def train_result(record: RunRecord) -> dict[str, Any]:
    """The `TrainResult` dict of a train run (`RunRecord.train_result`)."""
    return record.train_result()


def run_facts(record: RunRecord, store: ExperimentStore | None = None) -> dict[str, Any]:
    """The facts of a succeeded run as plain data: the stored ones when the run has them,
    else computed now from the stored result."""
    return stored_or_computed(record, store, strict=True)


# -- dispatch ---------------------------------------------------------------------------


def explain_run(
    record: RunRecord,
    language: str = "en",
    store: ExperimentStore | None = None,
    *,
    user_text: str | None = None,
    detail: bool = False,
) -> str:
    """Explain a stored run of any kind.

    Args:
        record: the run from the store.
        language: `en` or `zh`; ignored when `user_text` is given (detected from it).
        store: lets the explanation look up related runs (the MLP baseline on the same
            dataset, a comparison's members). Optional.
        user_text: the user's request, to answer in the language they wrote in.
        detail: add the facts behind the summary, per seed (per entry, per model): what a
            question about an earlier run gets, rather than the summary again.

    Returns:
        A few sentences of plain text.
    """
    if user_text is not None:
        language = detect_language(user_text)
    if record.status != "succeeded" or record.result is None:
        return explain_error(record, language)
    if record.kind == "explain":
        return explain_attributions(record, language, store)
    facts = run_facts(record, store)
    text = render(record.kind, language, f=facts)
    if detail and record.kind in ("train", "compare", "tune"):
        text += "\n\n" + render(f"{record.kind}_detail", language, f=facts)
    return text


def explain_train(record: RunRecord, language: str = "en", store: Any = None) -> str:
    return render("train", language, f=run_facts(record, store))


def explain_tune(record: RunRecord, language: str = "en", store: Any = None) -> str:
    return render("tune", language, f=run_facts(record, store))


def explain_inspect(record: RunRecord, language: str = "en", store: Any = None) -> str:
    return render("inspect", language, f=run_facts(record, store))


def _ad_hoc_compare(runs: list[RunRecord]) -> RunRecord:
    """An unstored compare run over train runs (the web page compares any two), so their
    comparison has the same facts and words as a stored one."""
    from agent.executor import compare_labels
    from agent.store import RunRecord

    labels = compare_labels(runs)
    metric = (runs[0].result or {}).get("metric", "accuracy") if runs else "accuracy"
    entries = [{"label": label, "run_id": r.id} for label, r in zip(labels, runs, strict=True)]
    result = {"metric": metric, "entries": entries}
    return RunRecord(id=0, kind="compare", status="succeeded", config={}, host="", pid=0,
                     started_at=0.0, result=result)  # fmt: skip


def _compare_facts(record: RunRecord | list[RunRecord], store: Any) -> dict[str, Any]:
    if isinstance(record, list):
        if len(record) < 2:
            raise UserInputError("A comparison needs at least two runs with results.")
        return compare_facts(_ad_hoc_compare(record), store).model_dump(mode="json")
    return run_facts(record, store)


def explain_compare(record: RunRecord | list[RunRecord], language: str = "en",
                    store: Any = None) -> str:  # fmt: skip
    """Which is better, its test, and what else differs; of a stored compare run or of
    train runs compared on the spot."""
    return render("compare", language, f=_compare_facts(record, store))


def comparison_facts(
    record: RunRecord | list[RunRecord], store: ExperimentStore | None = None
) -> dict[str, Any]:
    """The compare facts of a stored compare run, or of train runs compared on the spot,
    with the best and runner-up entries and the difference (in the metric's units) spelled
    out for pages that show them."""
    facts = _compare_facts(record, store)
    by_label = {e["label"]: e for e in facts["entries"]}
    best, second = by_label[facts["best"]], by_label[facts["runner_up"]]
    return {
        **facts,
        "best": {**best, "std": best["std"] or 0.0},
        "runner_up": {**second, "std": second["std"] or 0.0},
        "difference": best["mean"] - second["mean"],
        "too_few_seeds": facts["p_value"] is None,
    }


def explain_error(record: RunRecord, language: str = "en", store: Any = None) -> str:
    """A failed, interrupted or still-running run: what happened and what to do."""
    return render(
        "error",
        language,
        run_id=record.id,
        kind=record.kind,
        title=record.title,
        status=record.status,
        error=record.error or "",
        seconds=record.seconds,
    )


def explain_attributions(record: RunRecord, language: str = "en", store: Any = None) -> str:
    """Top features and edges behind chosen nodes' predictions (from `explain_node`)."""
    result = record.result or {}
    return render(
        "explain",
        language,
        run_id=record.id,
        parent_id=record.parent_id,
        model=record.config.get("model", ""),
        dataset=record.config.get("dataset", ""),
        nodes=result.get("nodes") or [],
    )
