"""Tiny graphs: splits that would leave a set empty adapt (and say so) or refuse; training on
them does not crash; a dataset named by a path does not break checkpoint names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from core.errors import UserInputError
from graph_ml.datasets import DatasetSpec, LoadedDataset
from graph_ml.splits import check_no_leakage, make_split
from graph_ml.train import TrainConfig, _file_safe, train


def _graph(labels: list[int], edges: list[tuple[int, int]]) -> LoadedDataset:
    n = len(labels)
    index = torch.tensor(edges + [(b, a) for a, b in edges]).t()
    data = Data(x=torch.eye(n), edge_index=index, y=torch.tensor(labels), num_nodes=n)
    spec = DatasetSpec("tiny", (), "node", ("node_classification", "link_prediction"),
                       "node_classification", "csv", False, (), "tiny")  # fmt: skip
    return LoadedDataset(spec=spec, graphs=[data])


FOUR = _graph([0, 0, 1, 1], [(0, 1), (1, 2), (2, 3)])


def test_four_nodes_get_one_validation_and_one_test_node() -> None:
    split = make_split(FOUR, "node_classification", kind="random", seed=0)
    assert split.sizes == {"train": 2, "val": 1, "test": 1}
    check_no_leakage(split)
    assert len(split.notes) == 1
    assert "4 labelled nodes" in split.notes[0] and "2 / 1 / 1" in split.notes[0]
    assert make_split(FOUR, "node_classification", kind="random", seed=1).sizes["val"] == 1


def test_training_a_four_node_graph_reports_the_set_sizes() -> None:
    result = train(TrainConfig(dataset="tiny", model="gcn", epochs=3, progress=False), dataset=FOUR)
    assert result.split_sizes == {"train": 2, "val": 1, "test": 1}
    assert any("4 labelled nodes" in note for note in result.notes)
    assert all(run.split_sizes == result.split_sizes for run in result.runs)


def test_too_few_labelled_nodes_are_refused_with_the_minimum() -> None:
    two = _graph([0, 1], [(0, 1)])
    with pytest.raises(
        UserInputError, match=r"2 labelled nodes are too few.*at least one each \(3\)"
    ):
        make_split(two, "node_classification", kind="random")
    with pytest.raises(UserInputError, match="too few"):
        train(TrainConfig(dataset="tiny", model="gcn", epochs=2, progress=False), dataset=two)


def test_tiny_link_split_adapts_or_refuses() -> None:
    split = make_split(FOUR, "link_prediction", seed=0)
    assert split.sizes == {"train": 1, "val": 1, "test": 1}
    assert "With 3 edges" in split.notes[0]
    check_no_leakage(split)
    result = train(TrainConfig(dataset="tiny", model="gcn", task="link_prediction", epochs=2,
                               progress=False), dataset=FOUR)  # fmt: skip
    assert result.split_sizes == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(UserInputError, match="2 edge\\(s\\) are too few"):
        make_split(_graph([0, 1, 0], [(0, 1), (1, 2)]), "link_prediction")


def test_tiny_graph_classification_split() -> None:
    graphs = [Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [1]]), y=torch.tensor([i % 2]))
              for i in range(4)]  # fmt: skip
    spec = DatasetSpec("mols", (), "graph", ("graph_classification",), "graph_classification",
                       "tu", False, (), "four molecules")  # fmt: skip
    split = make_split(LoadedDataset(spec=spec, graphs=graphs), "graph_classification",
                       kind="random", seed=0)  # fmt: skip
    assert split.sizes == {"train": 2, "val": 1, "test": 1} and split.notes


def test_checkpoint_names_of_paths(tmp_path: Path) -> None:
    assert _file_safe("cora") == "cora"
    safe = _file_safe("med/nodes.csv")
    assert "/" not in safe and safe.startswith("med_nodes.csv-")
    assert _file_safe("med/nodes.csv") != _file_safe("med_nodes.csv")
    folder = tmp_path / "med"
    folder.mkdir()
    (folder / "nodes.csv").write_text(
        "id,f,label\n" + "".join(f"n{i},{i},{i % 2}\n" for i in range(10))
    )
    (folder / "edges.csv").write_text(
        "src,dst\n" + "".join(f"n{i},n{(i + 1) % 10}\n" for i in range(10))
    )
    from graph_ml.importer import load_graph

    ds = load_graph(folder / "nodes.csv")
    result = train(TrainConfig(dataset="med/nodes.csv", model="gcn", epochs=2, progress=False),
                   dataset=ds, checkpoint_dir=tmp_path / "ckpt")  # fmt: skip
    checkpoint = Path(result.runs[0].checkpoint)
    assert checkpoint.is_file() and checkpoint.parent == tmp_path / "ckpt"
