"""A newcomer's own graph through the commands: inspect, train, tune, rerun after an edit,
export; typed files; and the symlinked sibling that must not leak a byte."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.store import ExperimentStore

ROOT = Path(__file__).resolve().parents[1]
SECRET = "root:TOPSECRET$6$salt$hash:19000:0:99999:7:::"


def _graph(folder: Path, n: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["id,f1,f2,label"] + [f"n{i},{i % 3},{(i * 7) % 5},{'abc'[i % 3]}" for i in range(n)]
    edges = ["src,dst"] + [f"n{i},n{(i + 3) % n}" for i in range(n)]
    edges += [f"n{i},n{(i + 1) % n}" for i in range(0, n, 2)]
    (folder / "nodes.csv").write_text("\n".join(rows) + "\n")
    (folder / "edges.csv").write_text("\n".join(edges) + "\n")
    return folder


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    _graph(tmp_path / "g")
    return tmp_path


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_train_tune_rerun_and_export_a_folder(here: Path, capsys) -> None:
    ws = here / "ws"
    assert main(["inspect", "./g", "--workspace", str(ws), "--json"]) == 0
    inspected = _json(capsys)
    assert inspected["stats"]["num_nodes"] == 24 and inspected["stats"]["num_classes"] == 3
    args = ["train", "--dataset", "./g", "--model", "gcn", "--epochs", "5", "--workspace", str(ws)]
    assert main([*args, "--json", "--no-progress"]) == 0
    trained = _json(capsys)
    assert trained["config"]["dataset"] == str((here / "g").resolve())  # names the folder
    files = {str(here / "g" / "nodes.csv"), str(here / "g" / "edges.csv")}
    assert set(trained["sources"]) == {str(Path(f).resolve()) for f in files}
    assert all(len(h) == 64 for h in trained["sources"].values())
    with ExperimentStore(ws) as store:
        record = store.get_run(trained["run_id"])
        assert record.dataset_fingerprint.startswith("files:")
        assert Path(record.train_result()["runs"][0]["checkpoint"]).is_file()
    tune = ["tune", "--dataset", "g", "--model", "gcn", "--trials", "2", "--epochs", "3",
            "--seeds", "1", "--workspace", str(ws), "--json", "--no-progress"]  # fmt: skip
    assert main(tune) == 0
    assert _json(capsys)["n_complete"] == 2
    with (here / "g" / "edges.csv").open("a") as handle:
        handle.write("n0,n5\n")
    run = str(trained["run_id"])
    assert main(["experiments", "rerun", run, "--workspace", str(ws)]) == 0
    assert "the data differs from what run" in capsys.readouterr().out
    out = here / "again.py"
    assert main(["experiments", "export", run, "--workspace", str(ws), "-o", str(out)]) == 0
    script = out.read_text()
    assert repr(str((here / "g").resolve())) in script and "load_graph(DATASET)" in script
    done = subprocess.run([sys.executable, str(out), "--epochs", "2"], capture_output=True,
                          text=True, cwd=here, env={"PYTHONPATH": str(ROOT), "PATH": ""},
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "edges.csv is changed since the run" in done.stdout and "test accuracy" in done.stdout


def test_a_graph_in_a_subdirectory_trains_and_keeps_its_checkpoint(here: Path, capsys) -> None:
    _graph(here / "med")
    ws = here / "ws"
    args = ["train", "--dataset", "med/nodes.csv", "--model", "sage", "--epochs", "3",
            "--workspace", str(ws), "--json", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    checkpoint = Path(_json(capsys)["runs"][0]["checkpoint"])
    assert checkpoint.is_file() and checkpoint.is_relative_to(ws)


def test_typed_files_train_both_tasks(here: Path, capsys) -> None:
    shop = here / "shop"
    shop.mkdir()
    users, items = [f"u{i}" for i in range(12)], [f"i{i}" for i in range(16)]
    (shop / "nodes_user.csv").write_text("id\n" + "\n".join(users) + "\n")
    rows = [f"{item},{i % 4},{'xy'[i % 2]}" for i, item in enumerate(items)]
    (shop / "nodes_item.csv").write_text("id,size,label\n" + "\n".join(rows) + "\n")
    buys = [f"{users[u]},{items[(u * 3 + k) % 16]}" for u in range(12) for k in range(3)]
    (shop / "edges_user__buys__item.csv").write_text("src,dst\n" + "\n".join(buys) + "\n")
    ws = here / "ws"
    base = ["--dataset", "./shop", "--epochs", "3", "--workspace", str(ws), "--json",
            "--no-progress"]  # fmt: skip
    assert main(["train", "--model", "rgcn", *base]) == 0
    assert _json(capsys)["config"]["task"] == "node_classification"
    assert main(["train", "--model", "sage", "--task", "link_prediction", "--edge-type", "buys",
                 *base]) == 0  # fmt: skip
    assert _json(capsys)["metric"] == "roc_auc"
    assert main(["train", "--model", "gcn", *base]) != 0
    assert "'gcn' has no version for a heterogeneous graph" in capsys.readouterr().err


def test_a_symlinked_sibling_outside_the_roots_leaks_nothing(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:  # fmt: skip
    secret = tmp_path / "elsewhere" / "shadow"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\n")
    here = tmp_path / "here"
    graph = _graph(here / "d")
    (graph / "edges.csv").unlink()
    (graph / "edges.csv").symlink_to(secret)
    monkeypatch.chdir(here)
    ws = here / "ws"
    inspect = ["inspect", "./d", "--workspace", str(ws)]
    for argv in (inspect, ["train", "--dataset", "./d", "--epochs", "2", "--workspace", str(ws)]):
        code = main(argv)
        captured = capsys.readouterr()
        assert code != 0
        shown = captured.out + captured.err
        assert "TOPSECRET" not in shown and "root:" not in shown
        assert "outside the directories autoglm may read" in shown
    if (ws / "experiments.sqlite").exists() or ws.exists():
        for path in ws.rglob("*"):
            if path.is_file():
                assert b"TOPSECRET" not in path.read_bytes()
