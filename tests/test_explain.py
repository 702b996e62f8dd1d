"""Templated explanations: every number quoted from the stored record, en and zh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import torch
from scipy import stats

from agent.explain import (
    detect_language,
    explain_node,
    explain_run,
    fmt_p,
    fmt_pct,
    receptive_hops,
    render,
    run_facts,
)
from agent.facts import compare_facts, train_facts
from agent.facts.train import published_reference
from agent.store import ExperimentStore
from core.errors import UserInputError


def curves(val_metric: list[float], val_loss: list[float]) -> list[dict[str, float]]:
    return [
        {"epoch": i + 1, "train_loss": 1.0 / (i + 1), "val_metric": m, "val_loss": v}
        for i, (m, v) in enumerate(zip(val_metric, val_loss, strict=True))
    ]


def train_result(
    model: str, tests: list[float], epochs: int = 200, stopped: int = 120, best: int = 20
) -> dict[str, Any]:
    n = len(tests)
    mean = sum(tests) / n
    std = (sum((t - mean) ** 2 for t in tests) / (n - 1)) ** 0.5 if n > 1 else 0.0
    # Validation peaks at `best`, then its loss climbs: over-fitting after an early peak.
    val = [0.5 + 0.3 * min(e, best) / best for e in range(1, stopped + 1)]
    loss = [
        1.0 - 0.5 * min(e, best) / best + 0.01 * max(0, e - best) for e in range(1, stopped + 1)
    ]
    runs = [
        {
            "seed": s,
            "best_epoch": best,
            "stopped_epoch": stopped,
            "val_metric": 0.8,
            "test_metric": t,
            "metrics": {"accuracy": t, "macro_f1": t - 0.01},
            "curves": curves(val, loss),
            "checkpoint": None,
            "seconds": 1.5,
            "confusion": [[5, 1], [2, 7]],
        }
        for s, t in enumerate(tests)
    ]
    config = {"dataset": "Cora", "task": "node_classification", "model": model, "epochs": epochs}
    return {
        "config": config,
        "metric": "accuracy",
        "runs": runs,
        "test_mean": mean,
        "test_std": std,
        "val_mean": 0.8,
        "val_std": 0.0,
        "seconds": 4.56,
        "device": "cpu",
    }


def stored(store: ExperimentStore, kind: str, config: dict, result: dict, status="succeeded"):
    run_id = store.start_run(kind, config)
    store.finish_run(run_id, status, result=result, error="boom" if status == "failed" else None)
    return store.get_run(run_id)


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    return ExperimentStore(tmp_path)


def test_language_detection() -> None:
    assert detect_language("train GCN on Cora") == "en"
    assert detect_language("在 Cora 上训练 GCN") == "zh"
    assert detect_language(None) == "en"


def test_training_explanation_quotes_stored_numbers(store: ExperimentStore) -> None:
    mlp = train_result("mlp", [0.571, 0.583, 0.562])
    stored(store, "train", mlp["config"], mlp)
    result = train_result("gcn", [0.8123, 0.8071, 0.8194])
    record = stored(store, "train", result["config"], result)
    text = explain_run(record, store=store)
    mean = record.result["test_mean"]
    assert f"{100 * mean:.2f}%" in text
    assert f"{100 * record.result['test_std']:.2f}" in text
    assert "over 3 seeds" in text and "81.23%, 80.71%, 81.94%" in text  # per seed
    # Against the published figure (81.5, Kipf & Welling) and the MLP run in the store.
    assert "81.5%" in text and "Kipf & Welling" in text
    assert f"{abs(100 * mean - 81.5):.2f} points" in text
    assert f"{100 * mlp['test_mean']:.2f}%" in text
    assert f"adds {100 * (mean - mlp['test_mean']):.2f} points" in text
    # Curves: val loss rose after epoch 20; early stopping at 120 of 200, said per seed.
    assert "Over-fitting after an early peak" in text and "best epoch 20" in text
    assert "Early stopping ended 3 of 3 seeds before epoch 200" in text
    assert "seed 0 best epoch 20, stopped at 120" in text


def test_chinese_text_gets_chinese_explanation(store: ExperimentStore) -> None:
    result = train_result("gat", [0.8312])
    record = stored(store, "train", result["config"], result)
    text = explain_run(record, user_text="在 Cora 上训练 GAT")
    assert "测试" in text and "过拟合" in text
    assert "83.12%" in text and "83.0%" in text  # the run and the published GAT figure
    assert "只有一个种子" in text
    assert "Over-fitting" not in text


def test_one_seed_states_no_spread(store: ExperimentStore) -> None:
    result = train_result("gcn", [0.8571])
    record = stored(store, "train", result["config"], result)
    text = explain_run(record)
    assert "85.71% from one seed" in text
    assert "±" not in text.splitlines()[0] and "std" not in text.splitlines()[0]
    zh = explain_run(record, user_text="在 Cora 上训练 GCN")
    assert "只有一个种子" in zh and "±" not in zh.splitlines()[0]


def test_published_figure_only_under_its_protocol(store: ExperimentStore) -> None:
    ref = published_reference("gcn", "Cora", "node_classification", "public", 0.8)
    assert ref.value == 81.5
    assert published_reference("gcn", "cora", "node_classification", "random", 0.8) is None
    assert published_reference("gcn", "cora", "link_prediction", "auto", 0.8) is None
    assert published_reference("gin", "MUTAG", "graph_classification", "auto", 0.8).value == 89.4
    result = train_result("gcn", [0.9])
    result["config"].update(task="link_prediction")
    result["metric"] = "roc_auc"
    text = explain_run(stored(store, "train", result["config"], result))
    assert "published" not in text and "test roc_auc 90.00%" in text


def test_fit_kinds(store: ExperimentStore) -> None:
    rising = train_result("gcn", [0.8], stopped=120, best=20)
    assert train_facts(stored(store, "train", rising["config"], rising)).fit == "overfit_loss"
    improving = train_result("gcn", [0.8], stopped=200, best=200)
    assert train_facts(stored(store, "train", improving["config"], improving)).fit == (
        "still_improving"
    )
    gap = train_result("gcn", [0.6], stopped=3, best=2, epochs=3)
    gap["runs"][0]["curves"] = [
        {"epoch": e, "train_metric": 0.99, "val_metric": 0.6, "val_loss": 1.0} for e in (1, 2, 3)
    ]
    facts = train_facts(stored(store, "train", gap["config"], gap))
    assert facts.fit == "overfit_gap" and facts.train_val_gaps == [pytest.approx(39.0)]
    none = train_result("gcn", [0.6])
    none["runs"][0]["curves"] = []
    assert train_facts(stored(store, "train", none["config"], none)).fit == "no_curves"


def _compare(store: ExperimentStore, *members) -> Any:
    result = {"metric": "accuracy",
              "entries": [{"label": f"{m.config['model']} (run {m.id})", "run_id": m.id}
                          for m in members]}  # fmt: skip
    return stored(store, "compare", {"run_ids": [m.id for m in members]}, result)


def test_comparison_welch_p_value_matches_scipy(store: ExperimentStore) -> None:
    a = train_result("gcn", [0.811, 0.815, 0.809, 0.813])
    b = train_result("mlp", [0.571, 0.590, 0.562, 0.575])
    ra, rb = stored(store, "train", a["config"], a), stored(store, "train", b["config"], b)
    compare = _compare(store, rb, ra)
    facts = compare_facts(compare, store)
    expected = stats.ttest_ind(
        [r["test_metric"] for r in a["runs"]],
        [r["test_metric"] for r in b["runs"]],
        equal_var=False,
    )
    assert facts.best == f"gcn (run {ra.id})"
    assert facts.p_value == pytest.approx(float(expected.pvalue), rel=1e-12)
    assert facts.significant is True
    text = explain_run(compare, store=store)
    assert f"p = {fmt_p(float(expected.pvalue))}" in text and "significant" in text
    assert f"by {fmt_pct(a['test_mean'] - b['test_mean'])} points" in text
    zh = explain_run(compare, "zh", store=store)
    assert "Welch" in zh and fmt_p(float(expected.pvalue)) in zh and "差异显著" in zh


def test_comparison_not_significant_and_too_few_seeds(store: ExperimentStore) -> None:
    a = stored(store, "train", {"model": "gcn"}, train_result("gcn", [0.80, 0.82, 0.81]))
    b = stored(store, "train", {"model": "gat"}, train_result("gat", [0.81, 0.80, 0.82]))
    facts = compare_facts(_compare(store, a, b), store)
    assert facts.significant is False and facts.p_value > 0.5
    assert "not significant" in explain_run(_compare(store, a, b), store=store)
    one = stored(store, "train", {"model": "sage"}, train_result("sage", [0.79]))
    compare = _compare(store, a, one)
    facts = compare_facts(compare, store)
    assert facts.p_value is None and facts.significant is None
    assert "Too few seeds" in explain_run(compare, store=store)
    assert "种子太少" in explain_run(compare, "zh", store=store)


def test_tuning_explanation(store: ExperimentStore) -> None:
    result = {
        "dataset": "Cora",
        "metric": "accuracy",
        "models": ["gcn"],
        "best_model": "gcn",
        "best_params": {"lr": 0.0123456, "hidden_channels": 64, "dropout": 0.55},
        "best_value": 0.7946,
        "best_trial": 7,
        "n_trials": 12,
        "n_complete": 9,
        "n_pruned": 3,
        "n_failed": 0,
        "history": [],
        "importances": {"dropout": 0.15, "lr": 0.7, "hidden_channels": 0.15},
        "retrained": train_result("gcn", [0.815, 0.812]),
        "test_mean": 0.8135,
        "test_std": 0.0021,
    }
    record = stored(store, "tune", {"dataset": "Cora", "models": ["gcn"]}, result)
    text = explain_run(record)
    assert "12 trials, 9 completed, 3 pruned" in text
    assert "79.46%" in text and "lr=0.01235" in text and "hidden_channels=64" in text
    assert text.index("lr (0.70)") < text.index("dropout (0.15)")  # most important first
    assert "only 9 completed trials" in text  # importances from few trials are rough
    assert "81.35%" in text
    zh = explain_run(record, "zh")
    assert "剪枝" in zh and "79.46%" in zh


def test_inspection_explanation_low_homophily(store: ExperimentStore) -> None:
    stats_ = {
        "name": "Chameleon", "level": "node", "num_graphs": 1, "num_nodes": 2277,
        "num_edges": 62742, "avg_nodes": 2277.0, "avg_edges": 62742.0, "num_features": 2325,
        "num_classes": 5, "class_counts": [100, 500], "class_balance": 0.2,
        "isolated_nodes": 3, "degree": {"min": 1, "max": 700, "mean": 27.55, "median": 10.0,
        "std": 40.0}, "edge_homophily": 0.23, "advice": ["3 isolated nodes."],
    }  # fmt: skip
    record = stored(
        store, "inspect", {"dataset": "Chameleon"}, {"dataset": "Chameleon", "stats": stats_}
    )
    text = explain_run(record)
    assert "Edge homophily is 0.23" in text and "GraphSAGE" in text and "GAT" in text
    assert "2277 nodes" in text and "27.55" in text and "ratio 5.0" in text
    assert "3 nodes are isolated" in text
    zh = explain_run(record, user_text="这个数据集怎么样？")
    assert "边同质性为 0.23" in zh


def test_failed_and_interrupted_runs(store: ExperimentStore) -> None:
    failed = stored(store, "train", {"model": "gcn", "dataset": "Cora"}, None, status="failed")
    assert "failed: boom" in explain_run(failed)
    run_id = store.start_run("train", {"model": "gat", "dataset": "Cora"})
    store.finish_run(run_id, "interrupted", error="killed")
    assert "被中断" in explain_run(store.get_run(run_id), "zh")


def test_templates_are_strict() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("error", "en", run_id=1, kind="train", title="x", status="failed")  # no error


def test_explain_node_finds_the_informative_feature() -> None:
    """Labels are feature 2's sign on a small ring: the explainer must rank feature 2 first."""
    torch.manual_seed(0)
    from torch_geometric.data import Data

    from graph_ml.models import build_model

    n = 40
    x = torch.randn(n, 6)
    y = (x[:, 2] > 0).long()
    ring = torch.arange(n)
    edge_index = torch.cat(
        [torch.stack([ring, (ring + 1) % n]), torch.stack([(ring + 1) % n, ring])], dim=1
    )
    data = Data(x=x, edge_index=edge_index, y=y)
    model = build_model("gcn", "node_classification", 6, 2, hidden_channels=16, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data.x, data.edge_index), y)
        loss.backward()
        optimizer.step()
    assert receptive_hops(model) == 2
    out = explain_node(model, data, [3, 17], top_k=3, epochs=150)
    assert [o["node"] for o in out] == [3, 17]
    for item in out:
        assert item["top_features"][0]["index"] == 2
        assert all(0 < f["score"] <= 1 for f in item["top_features"])
        # Only edges of the node's 2-hop neighbourhood can matter to a 2-layer GCN.
        near = {(item["node"] + d) % n for d in (-2, -1, 0, 1, 2)}
        assert all({e["source"], e["target"]} <= near for e in item["top_edges"])
        assert item["label"] == int(y[item["node"]])


def test_compare_explanation_reads_the_tools_stored_test(store: ExperimentStore) -> None:
    """The explanation states the p-value the compare tool stored; it does not test again."""
    a = stored(store, "train", {"model": "gcn"}, train_result("gcn", [0.80, 0.82, 0.81]))
    b = stored(store, "train", {"model": "gat"}, train_result("gat", [0.70, 0.71, 0.72]))
    result = {
        "metric": "accuracy", "best": "gcn (run 1)", "best_run_id": a.id, "runner_up": "gat",
        "difference": 0.1, "t_statistic": 12.25, "p_value": 0.0123, "significant": True,
        "entries": [{"label": "gcn (run 1)", "run_id": a.id}, {"label": "gat", "run_id": b.id}],
    }  # fmt: skip
    compare = stored(store, "compare", {"run_ids": [a.id, b.id]}, result)
    facts = compare_facts(compare, store)
    assert facts.p_value == 0.0123 and facts.t == 12.25


def test_a_range_over_seeds_is_worded_in_the_explanation_language() -> None:
    from prompts import fmt_span

    assert fmt_span([23, 187]) == "23 to 187" and fmt_span([23, 187], "zh") == "23 至 187"
    assert fmt_span([120], "zh") == "120" and fmt_span([], "zh") == "无"
    for name in ("explain_train.zh.j2", "explain_compare_detail.zh.j2"):
        source = (Path(__file__).parents[1] / "prompts" / name).read_text("utf-8")
        assert "|span }" not in source and "|span|" not in source  # every range in Chinese


def test_facts_that_failed_when_the_run_finished_are_computed_again(store: ExperimentStore) -> None:
    """A run whose facts failed is stored with {"error": ...}: `experiments show --json` and
    the explanation both compute them again from the stored result, and a result that
    still cannot give facts is shown as an error, not as facts."""
    from agent.facts import stored_or_computed

    result = train_result("gcn", [0.8123, 0.8071])
    record = stored(store, "train", result["config"], result)
    store.set_facts(record.id, {"error": "KeyError: 'runs'"})
    record = store.get_run(record.id)
    facts = stored_or_computed(record, store)
    assert "error" not in facts and facts == run_facts(record, store)
    assert [s["test_metric"] for s in facts["seeds"]] == [0.8123, 0.8071]

    broken = stored(store, "train", result["config"], {"runs": "not a list"})
    store.set_facts(broken.id, {"error": "KeyError: 'runs'"})
    shown = stored_or_computed(store.get_run(broken.id), store)
    assert set(shown) == {"error"}
    with pytest.raises(Exception):  # noqa: B017 - whatever the builder raises
        run_facts(store.get_run(broken.id), store)


def test_a_tuning_is_compared_by_its_retrained_best_configuration(store: ExperimentStore) -> None:
    """'compare runs 1 and 2' after a training and a tuning failed: "run 2 has no test
    results (succeeded)", though the tuning had retrained its best configuration on 2 seeds."""
    from agent.executor import Executor, ToolCall

    first = train_result("gcn", [0.79, 0.751])
    first["config"] = {**first["config"], "hidden_channels": 16, "lr": 0.01}
    plain = stored(store, "train", first["config"], first)
    best = train_result("gcn", [0.811, 0.809])
    best["config"] = {**best["config"], "hidden_channels": 75, "lr": 0.005301769574950583}
    tuned = stored(store, "tune", {"dataset": "Cora", "model": "gcn", "n_trials": 6},
                   {"best_model": "gcn", "retrained": best, "test_mean": 0.81})  # fmt: skip
    untuned = stored(store, "tune", {"dataset": "Cora", "model": "gcn"}, {"best_model": "gcn"})

    executor = Executor(store)
    call = ToolCall(tool="compare", kind="compare", refs=[plain.id, tuned.id])
    args, _ = executor._prepare_compare(call, 0, [plain, tuned])
    assert [e["label"] for e in args["entries"]] == [
        f"gcn (hidden_channels=16, lr=0.01, run {plain.id})",
        f"gcn tuned (hidden_channels=75, lr=0.005302, run {tuned.id})",  # not 0.005301769574950583
    ]
    assert args["entries"][1]["values"] == [0.811, 0.809]
    with pytest.raises(UserInputError, match="not retrained"):
        executor._prepare_compare(call, 0, [plain, untuned])

    compare = stored(store, "compare", {"run_ids": [plain.id, tuned.id]}, args)
    facts = compare_facts(compare, store)
    assert {"hidden_channels", "lr"} <= set(facts.factor)  # what the compared runs differ in
    assert facts.entries[1].values == [0.811, 0.809] and facts.entries[1].model == "gcn"
