"""Bring-your-own-graph CSV import: good files, every kind of bad file, heterogeneous graphs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch_geometric.data import HeteroData

from core.errors import UserInputError
from graph_ml.importer import Columns, load_csv_graph, load_graph
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
    assert ds.spec.tasks == ("node_classification", "link_prediction")
    with pytest.raises(UserInputError, match="Which relation.*author__writes__paper"):
        make_split(ds, "link_prediction")  # two relations: the user must choose
    links = make_split(ds, "link_prediction", edge_type="writes", val_ratio=0.0, test_ratio=0.4)
    assert links.edge_type == ("author", "writes", "paper") and links.sizes["test"] == 1
    check_no_leakage(links)
    # The test edge is gone from message passing in both directions.
    test_edge = links.test_data["author", "writes", "paper"].edge_label_index[:, :1]
    train_rev = links.train_data["paper", "rev_writes", "author"].edge_index
    assert not (train_rev.flip(0) == test_edge).all(0).any()


def test_hetero_errors(hetero_files: tuple[dict, dict], tmp_path: Path) -> None:
    nodes, edges = hetero_files
    with pytest.raises(UserInputError, match="node type 'venue'"):
        load_csv_graph(nodes, {"paper__in__venue": edges["author__writes__paper"]})
    with pytest.raises(UserInputError, match="author__writes__paper"):
        load_csv_graph(nodes, {"writes": edges["author__writes__paper"]})
    wrong = _write(tmp_path, "wrong.csv", "src,dst\np1,alice\n")  # reversed endpoints
    with pytest.raises(UserInputError, match=r"wrong\.csv, line 2.*'p1'.*authors\.csv"):
        load_csv_graph(nodes, {"author__writes__paper": wrong})


# --- Encodings, delimiters, absurd values ---------------------------------------------------


def _write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", [r"line 3", "NUL byte", "binary"]),
        (b"\x00" * 4096, ["4096 NUL bytes and no text", "copy it again"]),
        ("id,f1\nJos\xe9,1\n".encode("latin-1"), [r"line 2", "0xe9", "Latin-1", "UTF-8"]),
        ("id,f1\na,1\n".encode("utf-16"), ["UTF-16", "save it as UTF-8"]),
    ],
)
def test_binary_and_misencoded_files_say_what_they_are(
    tmp_path: Path, data: bytes, expected: list[str]
) -> None:
    nodes = _write_bytes(tmp_path, "nodes.csv", data)
    with pytest.raises(UserInputError) as info:
        load_csv_graph(nodes, _write(tmp_path, "edges.csv", "src,dst\na,b\n"))
    for pattern in expected:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))


def test_semicolon_files_are_sniffed_and_said(tmp_path: Path) -> None:
    nodes = _write(tmp_path, "nodes.csv", "id;f1;label\na;1.5;x\nb;2;y\n")
    edges = _write(tmp_path, "edges.csv", "src;dst\na;b\n")
    ds = load_csv_graph(nodes, edges)
    assert ds.data.x.tolist() == [[1.5], [2.0]] and ds.class_names == ["x", "y"]
    assert "semicolon-separated" in ds.spec.description
    decimal_comma = _write(tmp_path, "n2.csv", "id;f1\na;1,5\n")
    with pytest.raises(UserInputError, match=r"line 2.*'1,5' is not a number.*decimal comma"):
        load_csv_graph(decimal_comma, edges)


def test_spaces_around_cells_and_comments_are_harmless(tmp_path: Path) -> None:
    nodes = _write(tmp_path, "nodes.tsv", "id\tf1\tlabel\n a \t 1.5 \t x\n\nb\t2\ty\n")
    edges = _write(tmp_path, "edges.tsv", "src\tdst\na \t b\n")
    ds = load_csv_graph(nodes, edges)
    assert ds.node_ids == {"node": ["a", "b"]} and ds.data.edge_index.size(1) == 2
    assert "tab-separated" in ds.spec.description


def test_absurd_labels_fail_fast_with_the_reason(tmp_path: Path) -> None:
    import time

    edges = _write(tmp_path, "edges.csv", "src,dst\na,b\n")
    for label in ("99999999999", "1" * 30):
        nodes = _write(tmp_path, "nodes.csv", f"id,f1,label\na,1,0\nb,2,{label}\n")
        start = time.perf_counter()
        with pytest.raises(UserInputError) as info:
            load_csv_graph(nodes, edges)
        assert time.perf_counter() - start < 1.0
        message = str(info.value)
        assert re.search(r"nodes\.csv, line 3, column 'label'", message), message
        assert "classes for 2 labelled nodes" in message and "0..C-1" in message
    # Class names can be anything: they are numbered, not taken as indices.
    nodes = _write(tmp_path, "nodes.csv", "id,f1,label\na,1,c99999999999\nb,2,c1\n")
    assert load_csv_graph(nodes, edges).class_names == ["c1", "c99999999999"]


def test_huge_ids_cost_one_node_each(tmp_path: Path) -> None:
    import time

    path = _write(tmp_path, "big.edgelist", "1000000000 1\n5 999999999\n")
    start = time.perf_counter()
    ds = load_graph(path)
    assert time.perf_counter() - start < 1.0
    assert ds.data.num_nodes == 4 and ds.node_ids["node"] == ["1", "5", "999999999", "1000000000"]
    assert "Integer node ids" in ds.spec.description


# --- Edge lists, graph files, folders ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "edges", "extra"),
    [
        ("g.csv", "src,dst\n1,2\n2,3\n", 4, None),
        ("g.tsv", "1\t2\n2\t3\n", 4, None),  # no header
        ("g.txt", "# SNAP comment\n% another\n1 2\n2   3\n", 4, None),  # whitespace runs
        ("g.edgelist", "a b 0.5\nb c 2\n", 4, "edge_weight"),
        ("g.csv", "source,target,kind\na,b,likes\nb,c,cites\n", 4, "edge_type"),
        ("g.csv", "u|v\nx|y\n", 2, None),
    ],
)
def test_single_edge_lists(
    tmp_path: Path, name: str, text: str, edges: int, extra: str | None
) -> None:
    ds = load_graph(_write(tmp_path, name, text))
    assert ds.data.edge_index.size(1) == edges and ds.data.get("x") is None
    assert ds.spec.tasks == ("link_prediction",)
    if extra:
        assert ds.data.get(extra) is not None
    if extra == "edge_type":
        assert ds.edge_type_names == ["cites", "likes"]
        assert "'kind' read as the edge type" in ds.spec.description


def test_edge_list_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"line 3: 3 fields where the first line has 2"):
        load_graph(_write(tmp_path, "a.txt", "1 2\n2 3\n3 4 5\n"))
    with pytest.raises(UserInputError, match=r"2 or 3 columns.*has 4"):
        load_graph(_write(tmp_path, "b.csv", "a,b,c,d\n1,2,3,4\n"))
    with pytest.raises(UserInputError, match=r"line 1: one field only"):
        load_graph(_write(tmp_path, "c.csv", "justone\nvalue\n"))
    with pytest.raises(UserInputError, match=r"\.docx is not a graph file"):
        load_graph(_write(tmp_path, "d.docx", "x"))


def test_graphml_and_gml(tmp_path: Path) -> None:
    import networkx as nx

    graph = nx.Graph()
    graph.add_node("a", f1=1.0, label="x", name="Alice")
    graph.add_node("b", f1=2.0, label="y", name="Bob")
    graph.add_node("c", f1=0.5, label="x", name="Carol")
    graph.add_edge("a", "b", weight=2.0)
    graph.add_edge("b", "c", weight=1.0)
    nx.write_graphml(graph, tmp_path / "g.graphml")
    ds = load_graph(tmp_path / "g.graphml")
    assert ds.data.x.view(-1).tolist() == [1.0, 2.0, 0.5] and ds.class_names == ["x", "y"]
    assert ds.data.edge_index.size(1) == 4 and ds.data.edge_weight.tolist() == [2, 2, 1, 1]
    assert "not used as features: name" in ds.spec.description
    nx.write_gml(nx.path_graph(4), tmp_path / "p.gml")
    assert load_graph(tmp_path / "p.gml").data.edge_index.size(1) == 6
    (tmp_path / "bad.graphml").write_text("<graphml><graph><node id='a'>")
    with pytest.raises(UserInputError, match="not a readable GraphML file"):
        load_graph(tmp_path / "bad.graphml")


def test_folders_and_named_files(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    _write(folder, "nodes.csv", NODES)
    _write(folder, "edges.csv", EDGES)
    for path in (folder, folder / "nodes.csv", folder / "edges.csv"):
        ds = load_graph(path)
        assert ds.spec.name == "g" and ds.data.num_nodes == 5
        assert set(ds.sources) == {str(folder / "nodes.csv"), str(folder / "edges.csv")}
    only = tmp_path / "only"
    only.mkdir()
    _write(only, "nodes.csv", NODES)
    with pytest.raises(UserInputError, match="has nodes.csv but no edges.csv"):
        load_graph(only)
    with pytest.raises(UserInputError, match="holds no graph.*found: nothing"):
        load_graph(_mkdir(tmp_path / "empty"))


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_typed_folder_builds_heterodata(tmp_path: Path) -> None:
    folder = _mkdir(tmp_path / "shop")
    _write(folder, "nodes_user.csv", "id,age\nu1,30\nu2,40\n")
    _write(folder, "nodes_item.csv", "id,price,label\ni1,1,toy\ni2,2,book\ni3,3,toy\n")
    _write(folder, "edges_user__buys__item.csv", "src,dst\nu1,i1\nu2,i2\nu2,i3\n")
    ds = load_graph(folder)
    assert isinstance(ds.data, HeteroData) and ds.target_node_type == "item"
    assert ds.data["user", "buys", "item"].edge_index.size(1) == 3
    assert ("item", "rev_buys", "user") in ds.data.edge_types
    assert load_graph(folder / "nodes_user.csv").data.node_types == ds.data.node_types
    _write(folder, "edges_bad.csv", "src,dst\nu1,i1\n")
    with pytest.raises(UserInputError, match="edges_<source type>__<relation>"):
        load_graph(folder)


def test_sources_hash_changes_with_the_file(files: tuple[Path, Path]) -> None:
    nodes, edges = files
    first = load_csv_graph(nodes, edges).sources
    assert len(first[str(nodes)]) == 64
    edges.write_text(EDGES + "e,a,1,cites\n")
    second = load_csv_graph(nodes, edges).sources
    assert first[str(nodes)] == second[str(nodes)] and first[str(edges)] != second[str(edges)]


def test_missing_features_kept_on_request(tmp_path: Path) -> None:
    nodes = _write(tmp_path, "nodes.csv", "id,f1,f2\na,1,\nb,2,3\n")
    edges = _write(tmp_path, "edges.csv", "src,dst\na,b\n")
    with pytest.raises(UserInputError, match="line 2, column 'f2'.*feature_propagation"):
        load_csv_graph(nodes, edges)
    x = load_csv_graph(nodes, edges, missing_features="keep").data.x
    assert torch.isnan(x[0, 1]) and x[1].tolist() == [2.0, 3.0]


# --- Allowed roots: every file opened is checked ------------------------------------------


def test_symlinked_sibling_outside_the_roots_leaks_nothing(tmp_path: Path) -> None:
    from core.paths import AllowedRoots, PathNotAllowedError

    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:TOPSECRET:19000:0:99999:7:::\n")
    ws = _mkdir(tmp_path / "ws")
    graph = _mkdir(ws / "d")
    _write(graph, "nodes.csv", NODES)
    (graph / "edges.csv").symlink_to(secret)
    roots = AllowedRoots.default(cwd=ws)
    for named in (graph, graph / "nodes.csv"):
        with pytest.raises(PathNotAllowedError) as info:
            load_graph(named, roots=roots)
        message = str(info.value)
        assert "TOPSECRET" not in message and "root:" not in message
        assert "edges.csv" in message and str(secret) in message
    with pytest.raises(PathNotAllowedError):
        roots.resolve("../outside/shadow")
    assert AllowedRoots.default(cwd=ws, extra=[secret.parent]).check(secret) == secret


def test_tools_load_resolves_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.data import load

    here = _mkdir(tmp_path / "here")
    graph = _mkdir(here / "med")
    _write(graph, "nodes.csv", NODES)
    _write(graph, "edges.csv", EDGES)
    monkeypatch.chdir(here)
    ws = tmp_path / "elsewhere" / "ws"
    for name in ("./med", "med", "med/nodes.csv"):
        assert load(name, ws, None).spec.name == "med"
    with pytest.raises(UserInputError, match="does not exist"):
        load("./nope", ws, None)


@pytest.mark.parametrize("pair", [("source", "target"), ("From", "To"), ("u", "v")])
def test_the_usual_endpoint_column_pairs_are_read(tmp_path: Path, pair) -> None:
    nodes, edges = tmp_path / "nodes.csv", tmp_path / "edges.csv"
    nodes.write_text("id,label,f\na,0,1.0\nb,1,2.0\nc,0,3.0\n")
    edges.write_text(f"{pair[0]},{pair[1]}\na,b\nb,c\n")
    ds = load_csv_graph(nodes, edges)
    assert ds.data.num_nodes == 3 and ds.data.edge_index.size(1) == 4  # undirected


def test_half_a_pair_is_asked_about(tmp_path: Path) -> None:
    nodes, edges = tmp_path / "nodes.csv", tmp_path / "edges.csv"
    nodes.write_text("id,label,f\na,0,1.0\nb,1,2.0\n")
    edges.write_text("source,dst\na,b\n")
    with pytest.raises(UserInputError, match="no 'src' column .*source/target"):
        load_csv_graph(nodes, edges)
