"""The dataset catalogue: loaders on the shared raw files, read-only data dirs, offline errors."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from core.errors import SetupError, UserInputError
from graph_ml.datasets import (
    DATASETS,
    available_offline,
    load_dataset,
    make_sbm,
    resolve_data_dir,
)


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_cora_public_split_and_stable_fingerprint(data_dir: Path) -> None:
    ds = load_dataset("cora", data_dir)
    data = ds.data
    assert len(ds.graphs) == 1
    assert (data.num_nodes, ds.num_features, ds.num_classes) == (2708, 1433, 7)
    assert data.edge_index.size(1) == 10556
    sizes = [int(data[f"{k}_mask"].sum()) for k in ("train", "val", "test")]
    assert sizes == [140, 500, 1000]
    assert len(ds.fingerprint) == 64 and int(ds.fingerprint, 16) >= 0
    again = load_dataset("Cora", data_dir)  # alias, and this time from the processed cache
    assert again.fingerprint == ds.fingerprint


def test_citeseer_loads(data_dir: Path) -> None:
    ds = load_dataset("citeseer", data_dir)
    assert (ds.data.num_nodes, ds.num_classes, ds.num_features) == (3327, 6, 3703)
    assert [int(ds.data[f"{k}_mask"].sum()) for k in ("train", "val", "test")] == [120, 500, 1000]
    assert ds.fingerprint != load_dataset("cora", data_dir).fingerprint


def test_mutag_loads(data_dir: Path) -> None:
    ds = load_dataset("mutag", data_dir)
    assert len(ds.graphs) == 188
    assert ds.num_classes == 2 and ds.num_features == 7
    labels = torch.cat([g.y for g in ds.graphs])
    assert labels.bincount().tolist() == [63, 125]


def test_shared_data_dir_is_never_written(data_dir: Path) -> None:
    before = _tree(data_dir)
    load_dataset("cora", data_dir)
    load_dataset("mutag", data_dir)
    assert _tree(data_dir) == before  # processed/ went to the cache


def test_read_only_data_dir_loads_through_the_cache(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readonly = tmp_path / "ro"
    shutil.copytree(data_dir / "Cora" / "raw", readonly / "Cora" / "raw")
    for path in (readonly / "Cora" / "raw", readonly / "Cora", readonly):
        os.chmod(path, stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setenv("AUTOGLM_CACHE_DIR", str(tmp_path / "cache"))
    try:
        ds = load_dataset("cora", readonly)
        assert ds.data.num_nodes == 2708
        assert not (readonly / "Cora" / "processed").exists()
        assert (tmp_path / "cache" / "datasets" / "Cora" / "processed").is_dir()
    finally:
        for path in (readonly, readonly / "Cora", readonly / "Cora" / "raw"):
            os.chmod(path, stat.S_IRWXU)


def test_offline_error_names_files_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOGLM_OFFLINE", "1")
    empty = tmp_path / "empty"
    with pytest.raises(SetupError) as info:
        load_dataset("pubmed", empty)
    message = str(info.value)
    assert str(empty / "PubMed" / "raw") in message
    for part in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index"):
        assert f"ind.pubmed.{part}" in message


def test_failed_download_becomes_setup_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch_geometric.io import fs

    def no_network(*args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.delenv("AUTOGLM_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(fs, "cp", no_network)  # TUDataset downloads through fsspec
    monkeypatch.setenv("AUTOGLM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SetupError, match=r"PROTEINS_A\.txt.*PROTEINS_graph_labels\.txt"):
        load_dataset("proteins", tmp_path / "nothing")


def test_tu_loader_on_hand_written_files_adds_degree_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two featureless graphs in TU format: a path 1-2-3 and an edge 4-5.
    raw = tmp_path / "IMDB-BINARY" / "raw"
    raw.mkdir(parents=True)
    edges = [(1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4)]
    (raw / "IMDB-BINARY_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / "IMDB-BINARY_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n")
    (raw / "IMDB-BINARY_graph_labels.txt").write_text("0\n1\n")
    monkeypatch.setenv("AUTOGLM_CACHE_DIR", str(tmp_path / "cache"))
    assert available_offline("imdb-binary", tmp_path)
    ds = load_dataset("imdb_binary", tmp_path)
    assert len(ds.graphs) == 2 and ds.num_classes == 2
    assert ds.num_features == 3  # degrees 0..2, one-hot
    assert ds.graphs[0].x.argmax(1).tolist() == [1, 2, 1]


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(UserInputError, match=r"Unknown dataset 'corra'.*citeseer.*cora"):
        load_dataset("corra")


def test_karate_and_sbm_work_offline(tmp_path: Path) -> None:
    karate = load_dataset("karate", tmp_path)
    assert (karate.data.num_nodes, karate.num_classes) == (34, 4)
    sbm = load_dataset("sbm", tmp_path)
    assert sbm.data.num_nodes == 400 and sbm.num_classes == 4 and sbm.num_features == 16
    assert available_offline("karate", tmp_path) and available_offline("sbm", tmp_path)


def test_sbm_is_deterministic_and_assortative() -> None:
    a, b = make_sbm(seed=3), make_sbm(seed=3)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert not torch.equal(a.edge_index, make_sbm(seed=4).edge_index)
    src, dst = a.edge_index
    assert float((a.y[src] == a.y[dst]).float().mean()) > 0.7  # p_in >> p_out
    assert not bool((src == dst).any())
    with pytest.raises(UserInputError):
        make_sbm(block_sizes=(10, 0))


def test_available_offline(data_dir: Path, tmp_path: Path) -> None:
    assert available_offline(DATASETS.get("cora"), data_dir)
    assert available_offline("mutag", data_dir)
    assert not available_offline("pubmed", tmp_path)


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOGLM_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("AUTOGLM_DATA_DIR")
    monkeypatch.setenv("AUTOGLM_CACHE_DIR", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "cache" / "datasets"


def test_ogb_without_package_gives_install_hint(tmp_path: Path) -> None:
    if importlib.util.find_spec("ogb") is not None:
        pytest.skip("ogb is installed")
    with pytest.raises(SetupError, match="pip install"):
        load_dataset("ogbn-arxiv", tmp_path)


def test_datasets_command_json(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from agent.cli import main

    assert main(["datasets", "--data-dir", str(data_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    offline = {row["name"]: row["offline"] for row in out["datasets"]}
    assert offline["cora"] == "yes" and offline["mutag"] == "yes"
    assert offline["pubmed"] == "no" and offline["karate"] == "built-in"
    assert set(offline) == set(DATASETS)


def test_datasets_command_table(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.cli import main

    monkeypatch.setenv("AUTOGLM_CACHE_DIR", str(tmp_path / "cache"))  # nothing downloaded yet

    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ogbn-arxiv" in out and f"data dir: {tmp_path}" in out
    assert "not available offline: cora" in out
