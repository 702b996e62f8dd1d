"""Bring-your-own-graph CSV import: good files, every kind of bad file, heterogeneous graphs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch_geometric.data import HeteroData

from core.errors import UserInputError
from graph_ml.importer import Columns, load_csv_graph
from graph_ml.preprocess import check_no_leakage, describe, make_split

NODES = """id,f1,f2,label
a,1.0,0,cat
b,0,1,dog
c,1,1,cat
d,0.5,2,
e,3,3,dog
"""
EDGES = """src,dst,weight,type
a,b,1.0,cites
b,c,2,likes
c,a,1,cites
a,b,5,cites
d,e,0.5,cites
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path, "nodes.csv", NODES), _write(tmp_path, "edges.csv", EDGES)


def test_good_files_import(files: tuple[Path, Path]) -> None:
    ds = load_csv_graph(*files)
    data = ds.data
    assert ds.spec.name == "nodes" and ds.spec.source == "csv"
    assert data.num_nodes == 5 and ds.num_features == 2
    assert ds.class_names == ["cat", "dog"] and ds.num_classes == 2
    assert data.y.tolist() == [0, 1, 0, -1, 1]  # d has no label
    assert data.x[3].tolist() == [0.5, 2.0]
    # 4 distinct edges (a-b twice: the first copy wins), each added both ways.
    assert data.edge_index.size(1) == 8
    pairs = set(map(tuple, data.edge_index.t().tolist()))
    assert (0, 1) in pairs and (1, 0) in pairs and (3, 4) in pairs
    ab = ((data.edge_index[0] == 0) & (data.edge_index[1] == 1)).nonzero()[0]
    assert float(data.edge_weight[ab]) == 1.0
    assert ds.edge_type_names == ["cites", "likes"]
    assert ds.node_ids == {"node": ["a", "b", "c", "d", "e"]}
    assert ds.spec.tasks == ("node_classification", "link_prediction")
    assert load_csv_graph(*files).fingerprint == ds.fingerprint


def test_directed_import_keeps_one_way(files: tuple[Path, Path]) -> None:
    ds = load_csv_graph(*files, directed=True, name="mine")
    assert ds.spec.name == "mine" and ds.data.edge_index.size(1) == 4
    assert describe(ds).is_directed


def test_integer_labels_and_chosen_columns(tmp_path: Path) -> None:
    nodes = _write(tmp_path, "n.csv", "node,x1,note,klass\n1,0.5,zz,2\n2,1.5,yy,0\n")
    edges = _write(tmp_path, "e.csv", "from,to\n1,2\n")
    cols = Columns(node_id="node", label="klass", src="from", dst="to")
    ds = load_csv_graph(nodes, edges, features=["x1"], columns=cols)
    assert ds.data.y.tolist() == [2, 0] and ds.num_classes == 3
    assert ds.data.x.tolist() == [[0.5], [1.5]]


def test_imported_graph_splits_without_leakage(tmp_path: Path) -> None:
    rows = ["id,f,label", *(f"n{i},{i % 3},{i % 2}" for i in range(40))]
    edges = ["src,dst", *(f"n{i},n{(i + 1) % 40}" for i in range(40))]
    edges += [f"n{i},n{(i + 7) % 40}" for i in range(40)]
    ds = load_csv_graph(
        _write(tmp_path, "n.csv", "\n".join(rows)), _write(tmp_path, "e.csv", "\n".join(edges))
    )
    check_no_leakage(make_split(ds, "node_classification", seed=0))
    check_no_leakage(make_split(ds, "link_prediction", seed=0))
    assert describe(ds).connected_components == 1


BAD_FILES = [
    # (node file, edge file, what the message must contain)
    ("name,f1\na,1\n", EDGES, [r"nodes\.csv, line 1", "no 'id' column", "'name'"]),
    (NODES, "from,dst\na,b\n", [r"edges\.csv, line 1", "no 'src' column"]),
    (NODES, "src,dst\na,b\nb,zz\n", [r"edges\.csv, line 3", "'zz'", r"nodes\.csv", "add a row"]),
    ("id,f1\na,1\nb,nan\n", "src,dst\na,b\n", [r"line 3", "'f1'", "missing value", "fill"]),
    ("id,f1\na,1\nb,\n", "src,dst\na,b\n", [r"line 3", "missing value"]),
    ("id,f1\na,1\nb,2\na,3\n", "src,dst\na,b\n", [r"line 4", "duplicate node id 'a'", "line 2"]),
    ("id,f1\na,1\nb,red\n", "src,dst\na,b\n", [r"line 3", "'red' is not a number", "one-hot"]),
    ("", "src,dst\na,b\n", [r"nodes\.csv, line 1", "empty", "header"]),
    ("id,f1\n", "src,dst\na,b\n", ["header but no data rows"]),
    ("id,f1\na,1\nb,2\n", "", [r"edges\.csv, line 1", "empty"]),
    ("id,f1\na,1,9\n", "src,dst\na,b\n", [r"line 2", "3 fields", "header has 2"]),
    ("id,f1\na,1\nb,inf\n", "src,dst\na,b\n", [r"line 3", "not a finite number"]),
    ("id,f1\na,1\nb,2\n", "src,dst,weight\na,b,heavy\n", [r"edges\.csv, line 2", "'weight'"]),
    ("id,f1,label\na,1,-1\nb,2,0\n", "src,dst\na,b\n", [r"line 2", "negative label"]),
]


@pytest.mark.parametrize(("nodes", "edges", "expected"), BAD_FILES)
def test_bad_files_name_file_line_and_fix(
    tmp_path: Path, nodes: str, edges: str, expected: list[str]
) -> None:
    with pytest.raises(UserInputError) as info:
        load_csv_graph(_write(tmp_path, "nodes.csv", nodes), _write(tmp_path, "edges.csv", edges))
    message = str(info.value)
    for pattern in expected:
        assert re.search(pattern, message), (pattern, message)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        load_csv_graph(tmp_path / "nope.csv", tmp_path / "edges.csv")


@pytest.fixture
def hetero_files(tmp_path: Path) -> tuple[dict, dict]:
    papers = _write(tmp_path, "papers.csv", "id,f1,f2,label\np1,1,0,ml\np2,0,1,db\np3,1,1,ml\n")
    authors = _write(tmp_path, "authors.csv", "id,age\nalice,30\nbob,40\n")
    writes = _write(tmp_path, "writes.csv", "src,dst\nalice,p1\nalice,p2\nbob,p3\n")
    cites = _write(tmp_path, "cites.csv", "src,dst\np1,p2\np2,p3\n")
    nodes = {"paper": papers, "author": authors}
    edges = {"author__writes__paper": writes, ("paper", "cites", "paper"): cites}
    return nodes, edges


def test_hetero_import(hetero_files: tuple[dict, dict]) -> None:
    ds = load_csv_graph(*hetero_files)
    data = ds.data
    assert isinstance(data, HeteroData) and ds.is_hetero
    assert ds.target_node_type == "paper" and ds.class_names == ["db", "ml"]
    assert data["paper"].x.shape == (3, 2) and data["author"].x.shape == (2, 1)
    assert data["paper"].y.tolist() == [1, 0, 1]
    assert data["author", "writes", "paper"].edge_index.tolist() == [[0, 0, 1], [0, 1, 2]]
    # Undirected by default: a reverse relation is added, the same-type one is symmetrised.
    assert data["paper", "rev_writes", "author"].edge_index.size(1) == 3
    assert data["paper", "cites", "paper"].edge_index.size(1) == 4
    assert ds.num_features == 2 and ds.num_classes == 2
    stats = describe(ds)
    assert stats.node_types == {"paper": 3, "author": 2}
    split = make_split(ds, "node_classification", kind="random", val_ratio=0.0, test_ratio=0.3)
    assert split.train_mask.numel() == 3
    check_no_leakage(split)
    assert torch.equal(ds.data["paper"].y, load_csv_graph(*hetero_files).data["paper"].y)
    with pytest.raises(UserInputError, match="supports node_classification, not 'link_pred"):
        make_split(ds, "link_prediction")


def test_hetero_errors(hetero_files: tuple[dict, dict], tmp_path: Path) -> None:
    nodes, edges = hetero_files
    with pytest.raises(UserInputError, match="node type 'venue'"):
        load_csv_graph(nodes, {"paper__in__venue": edges["author__writes__paper"]})
    with pytest.raises(UserInputError, match="author__writes__paper"):
        load_csv_graph(nodes, {"writes": edges["author__writes__paper"]})
    wrong = _write(tmp_path, "wrong.csv", "src,dst\np1,alice\n")  # reversed endpoints
    with pytest.raises(UserInputError, match=r"wrong\.csv, line 2.*'p1'.*authors\.csv"):
        load_csv_graph(nodes, {"author__writes__paper": wrong})
