"""The tools: one registry, typed arguments that refuse unknown fields, real training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy import stats

from core.errors import UserInputError
from tools import TOOLS, ToolContext
from tools.compare import CompareArgs
from tools.train import TrainArgs


@pytest.fixture
def ctx(tmp_path: Path, data_dir: Path) -> ToolContext:
    return ToolContext(workspace=tmp_path / "ws", data_dir=data_dir)


def test_registry_has_every_capability_with_a_description():
    expected = {"inspect", "preprocess", "train", "tune", "compare", "explain", "report"}
    assert set(TOOLS) == expected
    for name, item in TOOLS.items():
        assert item.name == name
        assert item.description and "Args:" not in item.description
        assert item.args_model.model_config.get("extra") == "forbid"
        assert item.json_schema()["type"] == "object"


def test_unknown_tool_lists_choices():
    with pytest.raises(UserInputError, match="choose from: compare, explain"):
        TOOLS.get("shell")


def test_unknown_argument_is_refused_not_ignored(ctx):
    with pytest.raises(UserInputError, match="command: Extra inputs are not permitted"):
        TOOLS.get("train")({"dataset": "karate", "task": "node_classification",
                            "model": "gcn", "command": "rm -rf /"}, ctx)  # fmt: skip


def test_train_tool_trains_for_real_and_calls_back(ctx):
    seen = []
    ctx.on_epoch = lambda run, epoch, metrics: seen.append((run, epoch, metrics["val_metric"]))
    out = TOOLS.get("train")(
        TrainArgs(dataset="karate", task="node_classification", model="gcn", epochs=4, seeds=2),
        ctx,
    )
    result = out.result
    assert [r.seed for r in result.runs] == [0, 1]
    assert [len(r.curves) for r in result.runs] == [4, 4]
    assert [(run, epoch) for run, epoch, _ in seen] == [(r, e) for r in (0, 1) for e in range(1, 5)]
    assert result.config.hidden_channels is not None  # the model's default was filled in
    tests = [r.test_metric for r in result.runs]
    assert math.isclose(result.test_mean, sum(tests) / 2)
    assert len(out.fingerprint) == 64


def test_train_tool_on_cora_from_the_data_dir(ctx):
    ctx.checkpoint_dir = ctx.workspace / "runs" / "1"
    out = TOOLS.get("train")(
        {"dataset": "cora", "task": "node_classification", "model": "gcn", "epochs": 3}, ctx
    )
    assert out.result.runs[0].checkpoint is not None
    assert Path(out.result.runs[0].checkpoint).is_file()
    assert 0.0 <= out.result.test_mean <= 1.0


def test_inspect_tool_reports_statistics(ctx):
    out = TOOLS.get("inspect")({"dataset": "Cora"}, ctx)  # aliases and case are accepted
    assert out.dataset == "cora" and out.level == "node"
    assert out.stats["num_nodes"] == 2708
    assert out.stats["num_classes"] == 7
    assert 0.7 < out.stats["edge_homophily"] < 0.9  # Cora is strongly homophilous


def test_preprocess_tool_uses_the_public_split(ctx):
    out = TOOLS.get("preprocess")({"dataset": "cora", "task": "node_classification"}, ctx)
    assert out.sizes == {"train": 140, "val": 500, "test": 1000}
    assert out.leakage_checked


def test_dataset_path_outside_the_workspace_is_refused(ctx):
    with pytest.raises(UserInputError, match="outside the directories autoglm may read"):
        TOOLS.get("inspect")({"dataset": "../../../../../../etc/passwd"}, ctx)


def test_unknown_dataset_lists_choices(ctx):
    with pytest.raises(UserInputError, match="Unknown dataset 'coraa'; choose from:"):
        TOOLS.get("inspect")({"dataset": "coraa"}, ctx)


def test_compare_tool_is_welch_t_test(ctx):
    a, b = [0.81, 0.80, 0.83, 0.82], [0.78, 0.80, 0.77, 0.79]
    out = TOOLS.get("compare")(
        CompareArgs(entries=[{"label": "gcn", "values": b}, {"label": "gat", "values": a}]), ctx
    )
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert out.best == "gat" and out.runner_up == "gcn"
    assert math.isclose(out.p_value, float(expected.pvalue))
    assert math.isclose(out.difference, sum(a) / 4 - sum(b) / 4)
    assert out.significant is bool(expected.pvalue < 0.05) is True


def test_compare_with_one_seed_has_no_p_value(ctx):
    out = TOOLS.get("compare")(
        {"entries": [{"label": "x", "values": [0.7]}, {"label": "y", "values": [0.6]}]}, ctx
    )
    assert out.best == "x" and out.p_value is None and out.significant is None


def test_compare_needs_two_entries(ctx):
    with pytest.raises(UserInputError, match="entries"):
        TOOLS.get("compare")({"entries": [{"label": "x", "values": [0.7]}]}, ctx)


def test_explain_tool_attributes_a_trained_node_classifier(ctx):
    ctx.checkpoint_dir = ctx.workspace / "runs" / "1"
    trained = TOOLS.get("train")(
        {"dataset": "karate", "task": "node_classification", "model": "gcn", "epochs": 5}, ctx
    ).result
    out = TOOLS.get("explain")(
        {
            "config": trained.config.model_dump(),
            "checkpoint": trained.runs[0].checkpoint,
            "nodes": [0, 33],
            "top_k": 3,
        },
        ctx,
    )
    from torch_geometric.datasets import KarateClub
    from torch_geometric.utils import k_hop_subgraph

    graph = KarateClub()[0]
    assert [n["node"] for n in out.nodes] == [0, 33]
    for node in out.nodes:
        assert 1 <= len(node["top_edges"]) <= 3 and 0 <= node["predicted"] < 4
        # A 2-layer GCN sees only the 2-hop neighbourhood: every blamed edge lies in it.
        hood = set(k_hop_subgraph(node["node"], 2, graph.edge_index)[0].tolist())
        assert all(e["source"] in hood and e["target"] in hood for e in node["top_edges"])


def test_explain_tool_refuses_a_checkpoint_outside_the_workspace(ctx, tmp_path):
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(b"")
    with pytest.raises(UserInputError, match="not a file in the workspace"):
        TOOLS.get("explain")(
            {
                "config": {"task": "node_classification", "model": "gcn", "dataset": "karate"},
                "checkpoint": str(outside),
                "nodes": [0],
            },
            ctx,
        )


def test_tune_tool_searches_and_retrains(ctx, tmp_path):
    trials = []
    ctx.on_trial = trials.append
    ctx.study_storage = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    out = TOOLS.get("tune")(
        {"dataset": "karate", "model": "gcn", "n_trials": 2, "epochs": 3, "seeds": 2,
         "study": "t1"},
        ctx,
    )  # fmt: skip
    result = out.result
    assert result.n_trials == 2 and len(trials) == 2 and result.models == ["gcn"]
    assert set(result.best_params) >= {"lr", "hidden_channels"}
    assert len(result.retrained["runs"] if isinstance(result.retrained, dict)
               else result.retrained.runs) == 2  # fmt: skip
    assert result.best_value == max(t.value for t in trials if t.value is not None)


def test_tune_tool_passes_space_sampler_and_pruner(ctx, tmp_path):
    ctx.study_storage = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    out = TOOLS.get("tune")(
        {"dataset": "karate", "model": "gcn", "n_trials": 2, "epochs": 3, "seeds": 1,
         "study": "t2", "sampler": "random", "pruner": "none",
         "space": {"lr": {"low": 0.02, "high": 0.03}, "hidden_channels": {"value": 8}}},
        ctx,
    )  # fmt: skip
    result = out.result
    assert (result.sampler, result.pruner) == ("random", "none")
    for record in result.history:
        assert 0.02 <= record.params["lr"] <= 0.03 and record.params["hidden_channels"] == 8
    with pytest.raises(UserInputError, match="Unknown search parameter 'speed'"):
        TOOLS.get("tune")({"dataset": "karate", "space": {"speed": {"value": 1}}}, ctx)
    with pytest.raises(UserInputError, match="sampler"):
        TOOLS.get("tune")({"dataset": "karate", "model": "gcn", "sampler": "annealing"}, ctx)


def test_csv_graph_inside_the_workspace_trains(ctx, monkeypatch):
    folder = ctx.workspace / "ring"
    folder.mkdir(parents=True)
    monkeypatch.chdir(ctx.workspace)  # relative paths are read from the current directory
    nodes = ["id,label,f0,f1"] + [f"n{i},{i % 2},{i % 2},{1 - i % 2}" for i in range(12)]
    edges = ["src,dst"] + [f"n{i},n{(i + 1) % 12}" for i in range(12)]
    (folder / "nodes.csv").write_text("\n".join(nodes) + "\n")
    (folder / "edges.csv").write_text("\n".join(edges) + "\n")
    inspected = TOOLS.get("inspect")({"dataset": "./ring"}, ctx)
    assert inspected.stats["num_nodes"] == 12 and inspected.stats["num_classes"] == 2
    out = TOOLS.get("train")(
        {"dataset": "./ring", "task": "node_classification", "model": "mlp", "epochs": 30,
         "lr": 0.1},
        ctx,
    )  # fmt: skip
    assert len(out.result.runs[0].curves) == 30
