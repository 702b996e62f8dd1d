"""Structure enhancements: each transform on a hand-built graph, as a training option, as a
tuning dimension, and the data doctor's suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from core.errors import UserInputError
from graph_ml.datasets import DatasetSpec, LoadedDataset
from graph_ml.preprocess import describe
from graph_ml.train import TrainConfig, train
from graph_ml.transforms import ENHANCEMENTS, DropEdge, enhance_graph, resolve


def _ring(n: int = 12, features: int = 3) -> Data:
    src = torch.arange(n)
    edge_index = torch.cat(
        [torch.stack([src, (src + 1) % n]), torch.stack([(src + 1) % n, src])], 1
    )
    x = torch.rand(n, features, generator=torch.Generator().manual_seed(0))
    return Data(x=x, edge_index=edge_index, y=torch.arange(n) % 2, num_nodes=n)


def _dataset(data: Data, name: str = "ring") -> LoadedDataset:
    spec = DatasetSpec(name, (), "node", ("node_classification", "link_prediction"),
                       "node_classification", "csv", False, (), "test graph")  # fmt: skip
    return LoadedDataset(spec=spec, graphs=[data])


def test_each_enhancement_changes_what_it_says() -> None:
    ring = _ring()
    loops = enhance_graph(ring, ["self_loops"])
    assert loops.edge_index.size(1) == ring.edge_index.size(1) + 12
    virtual = enhance_graph(ring, ["virtual_node"])
    assert virtual.num_nodes == 13 and virtual.y[-1] == -1 and virtual.get("edge_type") is None
    assert virtual.edge_index.size(1) == ring.edge_index.size(1) + 24
    gdc = enhance_graph(ring, ["gdc"])
    assert gdc.edge_weight is not None and gdc.edge_weight.numel() == gdc.edge_index.size(1)
    assert gdc.edge_index.size(1) > ring.edge_index.size(1)  # diffusion reaches further hops
    assert enhance_graph(ring, ["rw_pe"]).x.size(1) == 3 + 16
    assert enhance_graph(ring, ["lap_pe"]).x.size(1) == 3 + 8
    missing = ring.clone()
    missing.x[0, 1] = float("nan")
    filled = enhance_graph(missing, ["feature_propagation"]).x
    assert not torch.isnan(filled).any() and torch.equal(filled[1:], ring.x[1:])
    assert torch.equal(ring.x, _ring().x)  # the input graph is never changed


def test_drop_edge_keeps_the_two_directions_together() -> None:
    ring = _ring(200)
    drop = DropEdge(ring.edge_index, 200, p=0.5)
    mask = drop()
    kept = ring.edge_index[:, mask]
    pairs = {tuple(p) for p in kept.t().tolist()}
    assert all((b, a) in pairs for a, b in pairs)
    assert 0.3 < mask.float().mean() < 0.7 and not torch.equal(mask, drop())


def test_names_are_checked_and_ordered() -> None:
    assert resolve(["self_loops", "gdc", "none", "gdc"]) == ["gdc", "self_loops"]
    with pytest.raises(UserInputError, match="Unknown enhancement 'gcd'.*gdc"):
        resolve(["gcd"])
    assert TrainConfig(enhance="gdc, drop_edge").enhance == ["gdc", "drop_edge"]
    assert TrainConfig(enhance="none").enhance == []
    assert set(ENHANCEMENTS) == {"feature_propagation", "rw_pe", "lap_pe", "gdc", "self_loops",
                                 "virtual_node", "drop_edge"}  # fmt: skip


@pytest.mark.parametrize("names", [["gdc"], ["drop_edge"], ["virtual_node", "rw_pe"]])
def test_training_with_enhancements(names: list[str]) -> None:
    ds = _dataset(_ring(40))
    result = train(TrainConfig(dataset="ring", model="gcn", epochs=5, enhance=names,
                               progress=False), dataset=ds)  # fmt: skip
    assert result.config.enhance == resolve(names)
    assert f"Structure enhancements: {', '.join(resolve(names))}." in result.notes
    assert sum(result.split_sizes.values()) == 40  # the virtual node is never split


def test_link_prediction_enhances_each_part_separately() -> None:
    from graph_ml.splits import make_split
    from graph_ml.train import enhance_link_split

    ds = _dataset(_ring(60))
    result = train(TrainConfig(dataset="ring", model="gcn", task="link_prediction", epochs=5,
                               enhance=["gdc"], progress=False), dataset=ds)  # fmt: skip
    assert result.metric == "roc_auc"
    split = make_split(ds, "link_prediction", seed=0)
    enhanced = enhance_link_split(split, ["gdc"])
    for key in ("train", "val", "test"):
        before, after = getattr(split, f"{key}_data"), getattr(enhanced, f"{key}_data")
        # Each part is diffused from its own message-passing edges, which never hold its
        # held-out positives; the pairs to score and the known edges are untouched.
        assert torch.equal(after.edge_index, enhance_graph(before, ["gdc"]).edge_index)
        assert torch.equal(after.known_edge_index, before.edge_index)
        assert torch.equal(after.edge_label_index, before.edge_label_index)
    assert enhanced.train_data.edge_index.size(1) > split.train_data.edge_index.size(1)


def test_missing_features_need_feature_propagation(tmp_path: Path) -> None:
    from graph_ml.importer import load_csv_graph

    rows = ["id,f1,label"] + [f"n{i},{'' if i == 3 else i},{i % 2}" for i in range(20)]
    (tmp_path / "nodes.csv").write_text("\n".join(rows) + "\n")
    edges = ["src,dst"] + [f"n{i},n{(i + 1) % 20}" for i in range(20)]
    (tmp_path / "edges.csv").write_text("\n".join(edges) + "\n")
    ds = load_csv_graph(tmp_path / "nodes.csv", tmp_path / "edges.csv", missing_features="keep")
    stats = describe(ds)
    assert stats.missing_features == 1 and stats.has_nan_features
    assert stats.suggestions[0].enhancement == "feature_propagation"
    with pytest.raises(UserInputError, match="1 feature values.*missing.*feature_propagation"):
        train(TrainConfig(dataset="nodes", model="gcn", epochs=2, progress=False), dataset=ds)
    result = train(TrainConfig(dataset="nodes", model="gcn", epochs=2, progress=False,
                               enhance=["feature_propagation"]), dataset=ds)  # fmt: skip
    assert result.test_mean == result.test_mean  # a number, not NaN


def test_doctor_suggests_with_reasons(data_dir: Path) -> None:
    from graph_ml.datasets import load_dataset

    cora = describe(load_dataset("cora", data_dir=data_dir))
    gdc = [s for s in cora.suggestions if s.enhancement == "gdc"]
    assert gdc and "Sparse (mean degree 3.9)" in gdc[0].reason and "0.81" in gdc[0].reason
    ring = _ring(10)
    ring.y = torch.tensor([0, 1] * 5)  # every edge joins two classes
    ring.edge_index = torch.cat([ring.edge_index, torch.tensor([[10], [10]])], 1)
    ring.num_nodes, ring.x = 12, torch.rand(12, 3)
    ring.y = torch.cat([ring.y, torch.tensor([0, 1])])
    stats = describe(_dataset(ring))
    names = [s.enhancement for s in stats.suggestions]
    assert names == ["rw_pe", "virtual_node"], stats.suggestions
    assert "Low homophily (0.00)" in stats.suggestions[0].reason


def test_enhance_is_a_tuning_dimension_only_when_asked() -> None:
    import optuna

    from graph_ml.datasets import load_dataset
    from graph_ml.tune import Objective, RangeOverride, make_config
    from graph_ml.tune import resolve as plan_of

    plain = plan_of(make_config(dataset="karate", models=["gcn"], n_trials=1))
    assert "enhance" not in plain.space["gcn"]
    choices = RangeOverride(choices=["none", "virtual_node"])
    plan = plan_of(make_config(dataset="karate", models=["gcn"], n_trials=1, epochs=3,
                               space={"enhance": choices}))  # fmt: skip
    assert plan.space["gcn"]["enhance"].choices == ("none", "virtual_node")
    with pytest.raises(UserInputError, match="enhance cannot be 'fancy'"):
        plan_of(make_config(dataset="karate", models=["gcn"], n_trials=1,
                            space={"enhance": RangeOverride(choices=["fancy"])}))  # fmt: skip
    objective = Objective(plan, load_dataset("karate"))
    params = {"lr": 0.01, "hidden_channels": 16, "num_layers": 2, "dropout": 0.5,
              "weight_decay": 5e-4, "enhance": "virtual_node"}  # fmt: skip
    config = objective.train_config("gcn", params, seeds=1, seed=0)
    assert config.enhance == ["virtual_node"]
    assert 0.0 <= objective(optuna.trial.FixedTrial(params)) <= 1.0
