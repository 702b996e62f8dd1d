"""Typed graphs train: node classification of a node type, link prediction of a relation,
R-GCN with bond types on MUTAG, and the data doctor's report of types and relations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import UserInputError
from graph_ml.hetero import hetero_models, relations
from graph_ml.hetero_data import flatten, planted_user_item
from graph_ml.preprocess import check_no_leakage, describe, make_split
from graph_ml.train import TrainConfig, train


@pytest.fixture(scope="module")
def planted():
    return planted_user_item(num_users=120, num_items=160, seed=1)


def _train(ds, model: str, **fields):
    fields.setdefault("epochs", 60)
    return train(
        TrainConfig(dataset=ds.spec.name, model=model, progress=False, **fields), dataset=ds
    )


def test_every_typed_model_classifies_the_target_type(planted) -> None:
    scores = {m: _train(planted, m).test_mean for m in hetero_models("node_classification")}
    # The planted signal is in which relation a user takes: typed models read it.
    for model in ("rgcn", "hgt", "sage", "gat"):
        assert scores[model] > scores["mlp"] + 0.2, scores
    result = _train(planted, "rgcn")
    assert result.metric == "accuracy" and sum(result.split_sizes.values()) == 160


def test_flattened_graph_loses_the_relations(planted) -> None:
    flat = flatten(planted)
    assert flat.data.num_nodes == 280 and int((flat.data.y >= 0).sum()) == 160
    assert flat.num_features == 8 + 8 + 2  # both types' features side by side, type one-hot
    assert _train(flat, "gcn").test_mean < _train(planted, "rgcn").test_mean - 0.2


def test_link_prediction_of_one_relation(planted) -> None:
    result = _train(planted, "sage", task="link_prediction", edge_type="buys", epochs=30)
    assert result.metric == "roc_auc" and 0.0 <= result.test_mean <= 1.0
    assert result.config.lr == 0.001  # the typed link recipe (0.01 collapses the scores)
    split = make_split(planted, "link_prediction", edge_type="user__buys__item")
    check_no_leakage(split)
    assert split.sizes["test"] == result.split_sizes["test"]
    with pytest.raises(UserInputError, match="Which relation.*user__views__item"):
        _train(planted, "rgcn", task="link_prediction")
    with pytest.raises(UserInputError, match="'likes' is not in the graph"):
        _train(planted, "rgcn", task="link_prediction", edge_type="likes")


def test_choices_of_node_type_and_model(planted) -> None:
    with pytest.raises(UserInputError, match="'shop' is not in.*user, item"):
        _train(planted, "rgcn", node_type="shop")
    with pytest.raises(UserInputError, match="'user' has no labels.*item"):
        _train(planted, "rgcn", node_type="user")
    with pytest.raises(UserInputError, match="'gcn' has no version.*gat, sage, mlp, rgcn, hgt"):
        _train(planted, "gcn")


def test_typed_folder_trains_end_to_end(tmp_path: Path) -> None:
    from graph_ml.importer import load_graph

    gen = torch.Generator().manual_seed(0)
    users = [f"u{i}" for i in range(30)]
    items = [f"i{i}" for i in range(40)]
    (tmp_path / "nodes_user.csv").write_text("id\n" + "\n".join(users) + "\n")
    rows = [
        f"{item},{torch.rand(1, generator=gen).item():.3f},{i % 2}" for i, item in enumerate(items)
    ]
    (tmp_path / "nodes_item.csv").write_text("id,price,label\n" + "\n".join(rows) + "\n")
    pairs = {(users[u], items[(u * 7 + k) % 40]) for u in range(30) for k in range(4)}
    edges = "src,dst\n" + "\n".join(f"{u},{i}" for u, i in sorted(pairs)) + "\n"
    (tmp_path / "edges_user__buys__item.csv").write_text(edges)
    ds = load_graph(tmp_path)
    stats = describe(ds)
    assert stats.node_types == {"user": 30, "item": 40} and stats.target_node_type == "item"
    by_type = {t.name: t for t in stats.types}
    assert by_type["user"].num_features == 0 and by_type["item"].num_features == 1
    assert by_type["item"].labelled == 40 and by_type["item"].num_classes == 2
    forward = [r for r in stats.relations if not r.reverse]
    assert [(r.source, r.relation, r.target, r.num_edges) for r in forward] == [
        ("user", "buys", "item", len(pairs))
    ]
    assert any("user nodes have no features" in a for a in stats.advice)
    assert any(a.startswith("Heterogeneous: 2 node types, 1 relation.") for a in stats.advice)
    result = _train(ds, "hgt", epochs=5)
    assert result.split_sizes == {"train": 28, "val": 4, "test": 8}
    link = _train(ds, "rgcn", task="link_prediction", epochs=5)  # its only relation
    assert link.split_sizes["test"] == int(0.2 * len(pairs))


def test_mutag_bond_types_as_relations(data_dir: Path) -> None:
    result = train(
        TrainConfig(
            dataset="mutag", model="rgcn", fold=0, epochs=5, data_dir=str(data_dir), progress=False
        )  # fmt: skip
    )
    assert result.metric == "accuracy" and result.split_sizes["test"] == 19
    assert "R-GCN uses the 4 edge types as relations." in result.notes


def test_relations_need_edge_types() -> None:
    from torch_geometric.data import Data

    plain = Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(UserInputError, match="R-GCN needs edge types"):
        relations([plain])
    typed, count = relations([Data(edge_index=plain.edge_index, edge_attr=torch.eye(3)[:2])])
    assert count == 3 and typed[0].edge_type.tolist() == [0, 1]


def test_catalogue_says_which_models_take_typed_graphs() -> None:
    from graph_ml.catalogue import MODELS
    from graph_ml.models import build_model

    typed = {n for n, s in MODELS.items() if s.supports_hetero}
    assert typed == {"gat", "sage", "mlp", "rgcn", "hgt"}
    assert MODELS.get("hgt").requires_hetero and MODELS.get("rgcn").uses_edge_types
    assert MODELS.get("sage").hparams("link_prediction", hetero=True)["lr"] == 0.001
    assert MODELS.get("sage").hparams("link_prediction")["lr"] == 0.01
    with pytest.raises(UserInputError, match="graph_ml.hetero builds it"):
        build_model("rgcn", "node_classification", 4, 2)


def test_hgt_needs_a_typed_graph() -> None:
    from graph_ml.hetero_data import flatten

    flat = flatten(planted_user_item(num_users=20, num_items=30))
    with pytest.raises(UserInputError, match="'hgt' needs a heterogeneous graph"):
        _train(flat, "hgt", epochs=1)
