"""Templated explanations of stored results, in the language the user wrote in.

Python reads the facts out of a stored run (`agent.store.RunRecord`) and decides what they
mean (over-fitting, significance, homophily); the words live in `prompts/explain_<kind>.<lang>.j2`
(Jinja2, `StrictUndefined`), English and Chinese. Every number an explanation shows comes
from the record passed in, or from the published figures in the models' catalogue specs;
none is typed into a template.

`explain_node(model, data, node_ids)` (from `graph_ml.attributions`, re-exported here) gives
feature and edge attributions for chosen nodes of a trained node classifier through
`torch_geometric.explain` (GNNExplainer).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import prompts
from core.errors import UserInputError
from graph_ml.attributions import explain_node, receptive_hops
from graph_ml.catalogue import DATASETS, MODELS, Published
from graph_ml.stats import mean as _mean
from graph_ml.stats import sample_std, welch, welch_from_stats
from prompts import fmt_num, fmt_p, fmt_pct, fmt_seconds, fmt_value  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from agent.store import ExperimentStore, RunRecord

__all__ = ["detect_language", "explain_node", "explain_run", "receptive_hops", "render"]

LANGUAGES = ("en", "zh")
SIGNIFICANCE_LEVEL = 0.05  # the usual two-sided threshold; the p-value is shown either way
# Train-minus-validation metric gap (at the best epoch) above which we call it over-fitting:
# on the Planetoid splits GCN's usual gap is 0.1-0.2, so only clearly larger gaps count.
OVERFIT_GAP = 0.25
# Validation loss this far (relative) above its minimum by the end means it peaked early.
VAL_LOSS_RISE = 0.2
UNDERFIT_TRAIN_METRIC = 0.6  # a model below this on its own training data lacks capacity
HOMOPHILY_LOW, HOMOPHILY_HIGH = 0.5, 0.7


def published_figure(model: str, dataset: str, task: str, split: str | None) -> Published | None:
    """The published figure comparable to this run (from the model's catalogue spec): same
    model, data, task and protocol; None when the catalogue knows none."""
    if model not in MODELS or dataset not in DATASETS:
        return None
    return MODELS.get(model).published_figure(DATASETS.resolve(dataset), task, split)


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


# -- dispatch ---------------------------------------------------------------------------


def explain_run(
    record: RunRecord,
    language: str = "en",
    store: ExperimentStore | None = None,
    *,
    user_text: str | None = None,
) -> str:
    """Explain a stored run of any kind.

    Args:
        record: the run from the store.
        language: `en` or `zh`; ignored when `user_text` is given (detected from it).
        store: lets the explanation look up related runs (the MLP baseline on the same
            dataset, a comparison's members). Optional.
        user_text: the user's request, to answer in the language they wrote in.

    Returns:
        A few sentences of plain text.
    """
    if user_text is not None:
        language = detect_language(user_text)
    if record.status != "succeeded" or record.result is None:
        return explain_error(record, language)
    explainers = {
        "train": explain_train,
        "tune": explain_tune,
        "compare": explain_compare,
        "inspect": explain_inspect,
        "explain": explain_attributions,
    }
    return explainers[record.kind](record, language, store)


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


# -- training ---------------------------------------------------------------------------


def train_result(record: RunRecord) -> dict[str, Any]:
    """The `TrainResult` dict of a train run (`RunRecord.train_result`)."""
    return record.train_result()


def _config_value(result: dict[str, Any], record: RunRecord, key: str) -> Any:
    return (result.get("config") or {}).get(key, record.config.get(key))


def fit_diagnosis(runs: list[dict[str, Any]], epochs: int | None) -> dict[str, Any]:
    """Read over- or under-fitting out of the per-seed curves.

    Args:
        runs: `SeedRun` dicts, each with `best_epoch`, `stopped_epoch` and `curves`
            (per-epoch dicts with `train_loss`, `val_metric`, optionally `train_metric`,
            `val_loss`).
        epochs: the configured epoch budget.

    Returns:
        `kind` (overfit_gap, overfit_early_peak, still_improving, underfit, good) with the
        numbers behind it (means over seeds): `train_metric`, `val_metric` (at the best epoch),
        `gap`, `best_epoch`, `last_epoch`, `val_loss_min`, `val_loss_last`, and `improving`
        (seeds whose best epoch was the last or next to last of the full budget; when that
        is at least half of `n_runs`, training was cut short while still improving).
    """
    at_best_train, at_best_val, loss_min, loss_last, bests, lasts = [], [], [], [], [], []
    improving = 0  # seeds whose best epoch was (next to) the last of the whole budget
    for run in runs:
        curves = run.get("curves") or []
        if not curves:
            continue
        by_epoch = {int(c.get("epoch", i + 1)): c for i, c in enumerate(curves)}
        best = int(run.get("best_epoch") or max(by_epoch, key=lambda e: by_epoch[e]["val_metric"]))
        row = by_epoch.get(best) or curves[-1]
        if row.get("train_metric") is not None:
            at_best_train.append(float(row["train_metric"]))
        if row.get("val_metric") is not None:
            at_best_val.append(float(row["val_metric"]))
        losses = [float(c["val_loss"]) for c in curves if c.get("val_loss") is not None]
        if losses:
            loss_min.append(min(losses))
            loss_last.append(losses[-1])
        bests.append(best)
        lasts.append(int(run.get("stopped_epoch") or max(by_epoch)))
        improving += bool(epochs) and best >= lasts[-1] - 1 and lasts[-1] >= epochs
    facts: dict[str, Any] = {
        "train_metric": _mean(at_best_train),
        "val_metric": _mean(at_best_val),
        "best_epoch": _mean(bests),
        "last_epoch": _mean(lasts),
        "val_loss_min": _mean(loss_min),
        "val_loss_last": _mean(loss_last),
        "epochs": epochs,
        "n_runs": len(bests),
        "improving": improving,
    }
    train_m, val_m = facts["train_metric"], facts["val_metric"]
    facts["gap"] = None if train_m is None or val_m is None else train_m - val_m
    facts["kind"] = _fit_kind(facts)
    return facts


def _fit_kind(f: dict[str, Any]) -> str:
    if f["best_epoch"] is None:
        return "no_curves"
    if f["gap"] is not None and f["gap"] >= OVERFIT_GAP:
        return "overfit_gap"
    rose = (
        f["val_loss_min"] is not None
        and f["val_loss_last"] > f["val_loss_min"] * (1 + VAL_LOSS_RISE)
        and f["best_epoch"] <= 0.5 * f["last_epoch"]
    )
    if rose:
        return "overfit_early_peak"
    if f["train_metric"] is not None and f["train_metric"] < UNDERFIT_TRAIN_METRIC:
        return "underfit"
    if 2 * f["improving"] >= f["n_runs"]:
        return "still_improving"
    return "good"


def mlp_baseline(
    record: RunRecord, store: ExperimentStore | None, model: str, dataset: str, task: str
) -> dict[str, Any] | None:
    """A no-graph baseline run (a model whose spec says `uses_graph=False`, the MLP) on the
    same dataset and task from the store, if there is one."""
    baselines = {name for name, spec in MODELS.items() if not spec.uses_graph}
    if store is None or model in baselines:
        return None
    for other in store.list_runs(limit=200, kind="train", status="succeeded"):
        cfg = other.config
        same = (
            str(cfg.get("model", "")).lower() in baselines
            and str(cfg.get("dataset", "")).lower() == dataset
            and cfg.get("task") == task
        )
        if same and other.id != record.id and other.result:
            base = train_result(other)
            return {
                "run_id": other.id,
                "test_mean": base["test_mean"],
                "test_std": base["test_std"],
            }
    return None


def _distinct(values: list[Any]) -> list[Any]:
    """`[120, 120, 120]` -> `[120]`: one number when every seed agrees."""
    return values[:1] if len(set(values)) == 1 else values


def training_facts(record: RunRecord, store: ExperimentStore | None = None) -> dict[str, Any]:
    """Everything the training template says, read from the record."""
    result = train_result(record)
    model = str(_config_value(result, record, "model")).lower()
    dataset = str(_config_value(result, record, "dataset"))
    task = str(_config_value(result, record, "task"))
    epochs = _config_value(result, record, "epochs")
    runs = result.get("runs") or []
    split = _config_value(result, record, "split")
    published = published_figure(model, dataset, task, split)
    stopped = [int(r["stopped_epoch"]) for r in runs if r.get("stopped_epoch") is not None]
    early = bool(epochs) and any(s < int(epochs) for s in stopped)
    return {
        "run_id": record.id,
        "model": model,
        "dataset": dataset,
        "task": task,
        "metric": result.get("metric", "accuracy"),
        "n_seeds": len(runs),
        "seeds": [r.get("seed") for r in runs],
        "test_mean": result["test_mean"],
        "test_std": result.get("test_std") or 0.0,
        "val_mean": result.get("val_mean"),
        "test_values": [r.get("test_metric") for r in runs],
        "macro_f1": _mean(
            [
                r["metrics"]["macro_f1"]
                for r in runs
                if r.get("metrics", {}).get("macro_f1") is not None
            ]
        ),
        "published": None
        if published is None
        else {
            "value": published.value,
            "source": published.source,
            "delta": 100 * result["test_mean"] - published.value,
        },
        "mlp": mlp_baseline(record, store, model, dataset.lower(), task),
        "fit": fit_diagnosis(runs, int(epochs) if epochs else None),
        "early_stopped": early,
        "stopped_epochs": _distinct(stopped),
        "best_epochs": _distinct([r.get("best_epoch") for r in runs]),
        "epochs": epochs,
        "seconds": result.get("seconds", record.seconds),
        "device": result.get("device", "cpu"),
    }


def explain_train(
    record: RunRecord, language: str = "en", store: ExperimentStore | None = None
) -> str:
    """Test metric with its spread, against baselines, fit read from the curves."""
    return render("train", language, **training_facts(record, store))


# -- tuning -----------------------------------------------------------------------------


def tuning_facts(record: RunRecord) -> dict[str, Any]:
    """Best configuration, importances, pruned trials and the retrained result."""
    result = record.result or {}
    history = result.get("history") or []
    states = [str(t.get("state", "COMPLETE")).upper() for t in history]
    importances = sorted(
        (result.get("importances") or {}).items(), key=lambda kv: kv[1], reverse=True
    )
    retrained = result.get("retrained")
    models = result.get("models") or record.config.get("models") or []
    return {
        "run_id": record.id,
        "model": result.get("best_model") or record.config.get("model") or "/".join(models),
        "models": models,
        "dataset": result.get("dataset") or record.config.get("dataset", ""),
        "metric": result.get("metric", "accuracy"),
        "best_params": result.get("best_params") or {},
        "best_value": result.get("best_value"),
        "best_trial": result.get("best_trial"),
        "n_trials": result.get("n_trials", len(history)),
        "n_pruned": int(result.get("n_pruned", states.count("PRUNED"))),
        "n_failed": int(result.get("n_failed", states.count("FAIL"))),
        "importances": importances,
        "top": importances[:3],
        "importance_note": result.get("importance_note"),
        "retrained": None
        if not retrained
        else {
            "test_mean": retrained["test_mean"],
            "test_std": retrained.get("test_std") or 0.0,
            "n_seeds": len(retrained.get("runs") or []),
        },
    }


def explain_tune(record: RunRecord, language: str = "en", store: Any = None) -> str:
    """Best configuration, which parameters mattered, trials pruned."""
    return render("tune", language, **tuning_facts(record))


# -- comparison -------------------------------------------------------------------------


def _entry_from_train(record: RunRecord, label: str | None = None) -> dict[str, Any]:
    result = train_result(record)
    values = [float(r["test_metric"]) for r in result.get("runs") or []]
    return {
        "label": label or f"{record.config.get('model', 'run')} (run {record.id})",
        "run_id": record.id,
        "values": values,
        "n": len(values),
        "mean": result["test_mean"],
        "std": sample_std(values),
        "metric": result.get("metric", "accuracy"),
    }


def comparison_facts(
    runs: list[RunRecord] | RunRecord, store: ExperimentStore | None = None
) -> dict[str, Any]:
    """Rank entries by mean test metric and Welch-test the top two.

    Args:
        runs: train runs to compare, or one `compare` run whose result lists `entries`
            (with `run_id` and/or per-seed `values`, else `n`, `mean`, `std`).
        store: to read per-seed values of a compare run's member runs.
    """
    stored: dict[str, Any] = {}
    if isinstance(runs, list):
        entries = [_entry_from_train(r) for r in runs]
        run_id = None
    else:
        stored = runs.result or {}
        entries = [_entry_from_compare(e, store) for e in stored.get("entries", [])]
        run_id = runs.id
    if len(entries) < 2:
        raise UserInputError("A comparison needs at least two runs with results.")
    ranked = sorted(entries, key=lambda e: -e["mean"])
    best, second = ranked[0], ranked[1]
    if "p_value" in stored and stored.get("best") == best["label"]:
        t, p = stored.get("t_statistic"), stored["p_value"]  # the compare tool's own test
    elif best["values"] and second["values"]:
        t, p = welch(best["values"], second["values"])
    else:
        t, p = welch_from_stats(best["mean"], best["std"], best["n"],
                                second["mean"], second["std"], second["n"])  # fmt: skip
    return {
        "run_id": run_id,
        "metric": entries[0].get("metric", "accuracy"),
        "entries": entries,
        "best": best,
        "runner_up": second,
        "difference": best["mean"] - second["mean"],
        "t": t,
        "p_value": p,
        "alpha": SIGNIFICANCE_LEVEL,
        "significant": None if p is None else p < SIGNIFICANCE_LEVEL,
        "too_few_seeds": p is None,
        "min_seeds": min(best["n"], second["n"]),
    }


def _entry_from_compare(entry: dict[str, Any], store: ExperimentStore | None) -> dict[str, Any]:
    if store is not None and entry.get("run_id") is not None and not entry.get("values"):
        member = store.get_run(entry["run_id"])
        if member.kind == "train" and member.result:
            return _entry_from_train(member, entry.get("label"))
    values = [float(v) for v in entry.get("values") or []]
    mean = entry.get("mean", _mean(values))
    return {
        "label": entry.get("label") or f"run {entry.get('run_id')}",
        "run_id": entry.get("run_id"),
        "values": values,
        "n": entry.get("n", len(values)),
        "mean": mean,
        "std": entry.get("std", sample_std(values)),
        "metric": entry.get("metric", "accuracy"),
    }


def explain_compare(
    record: RunRecord | list[RunRecord], language: str = "en", store: ExperimentStore | None = None
) -> str:
    """Which is better and whether the difference is significant across seeds."""
    return render("compare", language, **comparison_facts(record, store))


# -- inspection -------------------------------------------------------------------------


def inspection_facts(record: RunRecord) -> dict[str, Any]:
    """Dataset statistics (`graph_ml.preprocess.DatasetStats`) and what they imply."""
    result = record.result or {}
    stats = result.get("stats", result)
    homophily = stats.get("edge_homophily")
    if homophily is None:
        band = "unknown"
    elif homophily < HOMOPHILY_LOW:
        band = "low"
    else:
        band = "high" if homophily >= HOMOPHILY_HIGH else "mid"
    balance = stats.get("class_balance")  # smallest / largest class
    level = result.get("level") or stats.get("level", "node")
    return {
        "run_id": record.id,
        "dataset": result.get("dataset") or stats.get("name") or record.config.get("dataset", ""),
        "level": level,
        "num_graphs": stats.get("num_graphs") if level == "graph" else None,
        "num_nodes": stats.get("avg_nodes" if level == "graph" else "num_nodes"),
        "num_edges": stats.get("avg_edges" if level == "graph" else "num_edges"),
        "num_features": stats.get("num_features"),
        "num_classes": stats.get("num_classes"),
        "avg_degree": (stats.get("degree") or {}).get("mean"),
        "homophily": homophily,
        "homophily_band": band,
        "isolated": stats.get("isolated_nodes"),
        "imbalance": None if not balance else 1.0 / balance,
        "problems": list(stats.get("advice") or []),
    }


def explain_inspect(record: RunRecord, language: str = "en", store: Any = None) -> str:
    """What the statistics mean for the choice of model (e.g. low homophily)."""
    return render("inspect", language, **inspection_facts(record))


# -- attributions -----------------------------------------------------------------------


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
