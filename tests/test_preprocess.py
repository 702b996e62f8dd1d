"""The data doctor: statistics on hand-built graphs, cleaning transforms, splits, leakage."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from core.errors import UserInputError
from graph_ml.datasets import DATASETS, LoadedDataset, load_dataset, make_sbm
from graph_ml.preprocess import (
    DataLeakageError,
    GraphSplit,
    LinkSplit,
    NodeSplit,
    add_self_loops,
    apply_transforms,
    check_no_leakage,
    degree_features,
    describe,
    largest_component,
    make_split,
    normalize_features,
    one_hot_features,
    remove_self_loops,
    to_undirected,
)

NODE_SPEC = replace(DATASETS.get("sbm"), name="tiny")
GRAPH_SPEC = replace(DATASETS.get("mutag"), name="tiny-graphs")


def _undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    edges = [*pairs, *[(b, a) for a, b in pairs if a != b]]
    return torch.tensor(edges, dtype=torch.long).t()


@pytest.fixture
def tiny() -> LoadedDataset:
    """Triangle 0-1-2, edge 3-4 with a self-loop on 4, isolated node 5."""
    edge_index = _undirected([(0, 1), (1, 2), (0, 2), (3, 4), (4, 4)])
    x = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 4.0], [1.0, 1.0], [5.0, 5.0], [2.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    mask = torch.tensor([True, False, True, True, False, False])
    data = Data(x=x, edge_index=edge_index, y=y, train_mask=mask, num_nodes=6)
    return LoadedDataset(spec=NODE_SPEC, graphs=[data])


def _graph_dataset(n: int = 40) -> LoadedDataset:
    """n small graphs, labels 0/1 at a 3:1 ratio."""
    graphs = []
    for i in range(n):
        size = 3 + i % 4
        ring = [(j, (j + 1) % size) for j in range(size)]
        graphs.append(
            Data(
                x=torch.ones(size, 2),
                edge_index=_undirected(ring),
                y=torch.tensor([int(i % 4 == 0)]),
            )
        )
    return LoadedDataset(spec=GRAPH_SPEC, graphs=graphs)


# --- describe --------------------------------------------------------------------------------


def test_describe_counts_on_a_hand_built_graph(tiny: LoadedDataset) -> None:
    stats = describe(tiny)
    assert (stats.num_nodes, stats.num_edges, stats.num_features, stats.num_classes) == (6, 9, 2, 2)
    assert stats.isolated_nodes == 1  # node 5; node 4 has a loop but also the edge to 3
    assert stats.self_loops == 1
    assert stats.connected_components == 3
    assert stats.largest_component_fraction == 0.5
    assert not stats.is_directed
    assert stats.class_counts == [3, 3] and stats.class_balance == 1.0
    # Non-loop edges: 0-1 same, 1-2 differ, 0-2 differ, 3-4 same (each both ways): 4 of 8.
    assert stats.edge_homophily == 0.5
    assert (stats.degree.min, stats.degree.max) == (0, 2)
    assert stats.degree.mean == pytest.approx(9 / 6, abs=1e-4)
    assert any("isolated" in line for line in stats.advice)
    assert any("self-loops" in line for line in stats.advice)
    assert '"edge_homophily":0.5' in stats.model_dump_json()


def test_describe_flags_a_directed_graph() -> None:
    data = Data(
        x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([0, 1, 0])
    )
    stats = describe(LoadedDataset(spec=NODE_SPEC, graphs=[data]))
    assert stats.is_directed and stats.connected_components == 1
    assert any("to_undirected" in line for line in stats.advice)
    assert stats.edge_homophily == 0.0


def test_describe_aggregates_graph_datasets() -> None:
    stats = describe(_graph_dataset(8))
    sizes = [3 + i % 4 for i in range(8)]
    assert stats.num_graphs == 8 and stats.level == "graph"
    assert stats.num_nodes == sum(sizes) and stats.avg_nodes == sum(sizes) / 8
    assert stats.num_edges == 2 * sum(sizes)
    assert stats.class_counts == [6, 2]
    assert stats.connected_components == 8 and stats.edge_homophily is None


def test_describe_cora(data_dir: Path) -> None:
    stats = describe(load_dataset("cora", data_dir))
    assert stats.num_edges == 10556 and stats.isolated_nodes == 0
    assert stats.connected_components == 78
    assert stats.edge_homophily == pytest.approx(0.81, abs=0.005)


# --- cleaning transforms ---------------------------------------------------------------------


def test_self_loop_transforms(tiny: LoadedDataset) -> None:
    assert describe(remove_self_loops(tiny)).self_loops == 0
    looped = add_self_loops(tiny)
    assert describe(looped).self_loops == 6  # one per node, the existing one not doubled
    assert describe(tiny).self_loops == 1  # the input is not modified


def test_to_undirected_fixes_directed_edges() -> None:
    data = Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1, 1], [1, 2, 2]]), num_nodes=3)
    fixed = describe(to_undirected(LoadedDataset(spec=NODE_SPEC, graphs=[data])))
    assert not fixed.is_directed and fixed.num_edges == 4 and fixed.duplicate_edges == 0


def test_feature_normalisation(tiny: LoadedDataset) -> None:
    rows = normalize_features(tiny, "row").data.x
    assert torch.allclose(rows.sum(1), torch.ones(6))
    standard = normalize_features(tiny, "standard").data.x
    assert torch.allclose(standard.mean(0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(standard.std(0, unbiased=False), torch.ones(2), atol=1e-5)
    with pytest.raises(UserInputError, match="row, standard"):
        normalize_features(tiny, "minmax")


def test_missing_features_from_degree_or_one_hot(tiny: LoadedDataset) -> None:
    deg = degree_features(tiny).data.x
    assert deg.shape == (6, 3) and deg.argmax(1).tolist() == [2, 2, 2, 1, 2, 0]
    assert one_hot_features(tiny).data.x.equal(torch.eye(6))
    with pytest.raises(UserInputError, match="degree_features"):
        one_hot_features(_graph_dataset(4))


def test_largest_component_keeps_masks_aligned(tiny: LoadedDataset) -> None:
    core = largest_component(tiny)
    assert core.data.num_nodes == 3
    assert core.data.y.tolist() == [0, 0, 1]
    assert core.data.train_mask.tolist() == [True, False, True]
    assert describe(core).connected_components == 1


def test_apply_transforms_by_name(tiny: LoadedDataset) -> None:
    out = apply_transforms(tiny, ["remove_self_loops", "largest_component"])
    assert describe(out).self_loops == 0 and out.data.num_nodes == 3
    with pytest.raises(UserInputError, match="Unknown transform 'undirect'.*to_undirected"):
        apply_transforms(tiny, ["undirect"])


# --- splits ----------------------------------------------------------------------------------


def _sbm() -> LoadedDataset:
    return LoadedDataset(spec=DATASETS.get("sbm"), graphs=[make_sbm(seed=1)])


def test_public_split_is_the_planetoid_one(data_dir: Path) -> None:
    split = make_split(load_dataset("cora", data_dir), "node_classification")
    assert isinstance(split, NodeSplit)
    assert [int(m.sum()) for m in (split.train_mask, split.val_mask, split.test_mask)] == [
        140,
        500,
        1000,
    ]
    check_no_leakage(split)


def test_random_node_split_is_stratified_and_deterministic() -> None:
    ds = _sbm()  # 4 classes x 100 nodes, no public split -> auto is random
    split = make_split(ds, "node_classification", seed=7)
    assert [int(m.sum()) for m in (split.train_mask, split.val_mask, split.test_mask)] == [
        280,
        40,
        80,
    ]
    assert ds.data.y[split.test_mask].bincount().tolist() == [20, 20, 20, 20]
    again = make_split(ds, "node_classification", seed=7)
    assert torch.equal(split.test_mask, again.test_mask)
    other = make_split(ds, "node_classification", seed=8)
    assert not torch.equal(split.test_mask, other.test_mask)
    assert not (split.train_mask & split.test_mask).any()
    assert bool((split.train_mask | split.val_mask | split.test_mask).all())
    with pytest.raises(UserInputError, match="no public split"):
        make_split(ds, "node_classification", kind="public")


def test_kfold_covers_every_graph_once_and_is_stratified() -> None:
    ds = _graph_dataset(40)
    labels = torch.cat([g.y for g in ds.graphs])
    seen = []
    for fold in range(10):
        split = make_split(ds, "graph_classification", fold=fold, seed=3)
        assert isinstance(split, GraphSplit)
        check_no_leakage(split)
        assert labels[split.test_idx].bincount(minlength=2).tolist() == [3, 1]
        everything = torch.cat([split.train_idx, split.val_idx, split.test_idx]).sort()[0]
        assert torch.equal(everything, torch.arange(40))
        seen.append(split.test_idx)
    assert torch.equal(torch.cat(seen).sort()[0], torch.arange(40))
    again = make_split(ds, "graph_classification", fold=2, seed=3)
    assert torch.equal(again.test_idx, seen[2])
    with pytest.raises(UserInputError, match="fold=10"):
        make_split(ds, "graph_classification", fold=10)


def test_mutag_tenfold(data_dir: Path) -> None:
    split = make_split(load_dataset("mutag", data_dir), "graph_classification", fold=0)
    assert len(split.test_idx) in (18, 19, 20)
    assert len(split.train_idx) + len(split.val_idx) + len(split.test_idx) == 188


def test_link_split_has_no_leakage_and_is_deterministic() -> None:
    ds = _sbm()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    split = make_split(ds, "link_prediction", seed=5)
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG stream is untouched
    assert isinstance(split, LinkSplit)
    check_no_leakage(split)
    test = split.test_data
    assert test.edge_label.sum() * 2 == test.edge_label.numel()  # 1:1 negatives
    assert bool((split.train_data.edge_label == 1).all())  # negatives are sampled per epoch
    again = make_split(ds, "link_prediction", seed=5)
    assert torch.equal(test.edge_label_index, again.test_data.edge_label_index)
    assert torch.equal(split.train_data.edge_index, again.train_data.edge_index)


def test_leakage_check_catches_planted_leaks() -> None:
    ds = _sbm()
    split = make_split(ds, "link_prediction", seed=0)
    positive = split.test_data.edge_label_index[:, split.test_data.edge_label == 1][:, :1]
    leaky = LinkSplit(
        split.train_data.clone(), split.val_data, split.test_data
    )  # plant the reverse of one test edge into training message passing
    leaky.train_data.edge_index = torch.cat([leaky.train_data.edge_index, positive.flip(0)], 1)
    with pytest.raises(DataLeakageError, match="1 test edge"):
        check_no_leakage(leaky)
    del leaky.train_data.is_undirected_split  # a split made elsewhere: inferred undirected
    with pytest.raises(DataLeakageError, match="1 test edge"):
        check_no_leakage(leaky)

    nodes = make_split(ds, "node_classification", seed=0)
    nodes.train_mask[nodes.test_mask.nonzero()[0]] = True
    with pytest.raises(DataLeakageError, match="test node"):
        check_no_leakage(nodes)

    graphs = make_split(_graph_dataset(20), "graph_classification")
    planted = GraphSplit(
        torch.cat([graphs.train_idx, graphs.test_idx[:2]]), graphs.val_idx, graphs.test_idx
    )
    with pytest.raises(DataLeakageError, match="2 test graph"):
        check_no_leakage(planted)


def test_split_arguments_are_checked(tiny: LoadedDataset) -> None:
    with pytest.raises(UserInputError, match="sum"):
        make_split(tiny, "node_classification", kind="random", val_ratio=0.5, test_ratio=0.6)
    with pytest.raises(UserInputError, match="choose from"):
        make_split(tiny, "node_classification", kind="stratified")
    with pytest.raises(UserInputError, match="graph_classification"):
        make_split(tiny, "graph_classification")
    with pytest.raises(UserInputError, match="'link'"):
        make_split(tiny, "link_prediction", kind="random")
