"""The experiment store: a real SQLite file in WAL mode that survives `kill -9`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.store import ExperimentStore, resolve_workspace, seeds_of
from core.errors import UserInputError

CONFIG = {"dataset": "Cora", "task": "node_classification", "model": "gcn", "seed": 3, "seeds": 2}


def test_wal_mode_schema_and_paths(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "ws")
    assert store.journal_mode == "wal"
    assert store.schema_version == 2
    assert (tmp_path / "ws" / "experiments.sqlite").is_file()
    assert store.checkpoint_dir(7) == tmp_path / "ws" / "runs" / "7"
    assert (tmp_path / "ws" / "runs" / "7").is_dir()
    assert store.studies_url() == f"sqlite:///{tmp_path / 'ws' / 'studies.sqlite'}"
    # Another connection sees WAL as the file's persistent mode.
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_workspace_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOGLM_WORKSPACE", str(tmp_path / "env"))
    assert resolve_workspace() == tmp_path / "env"
    assert resolve_workspace(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("AUTOGLM_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    assert resolve_workspace() == tmp_path / ".autoglm"


def test_run_lifecycle_round_trip(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    sid = store.create_session("first chat")
    run_id = store.start_run("train", CONFIG, session_id=sid, dataset_fingerprint="abc")
    record = store.get_run(run_id)
    assert record.status == "running" and record.pid == os.getpid()
    assert record.seeds == [3, 4]
    assert record.versions["python"] and record.versions["torch"]
    for epoch in range(1, 4):
        store.log_epoch(run_id, 3, epoch, {"train_loss": 1.0 / epoch, "val_metric": 0.5})
    store.log_step(run_id, "plan", 1.25, prompt_tokens=300, completion_tokens=40, reasks=1)
    store.log_step(run_id, "rule", 0.001, detail=[{"rule": "defaults", "reason": "lr=0.01"}])
    store.finish_run(run_id, "succeeded", metrics={"test_mean": 0.8123}, result={"x": [1]})
    record = store.get_run(run_id)
    assert record.status == "succeeded" and record.finished_at >= record.started_at
    assert record.metrics == {"test_mean": 0.8123} and record.result == {"x": [1]}
    assert record.title == "train gcn on Cora"
    assert [e["epoch"] for e in store.curves(run_id)[3]] == [1, 2, 3]
    steps = store.steps(run_id)
    assert [s.name for s in steps] == ["plan", "rule"]
    assert steps[0].prompt_tokens == 300 and steps[0].reasks == 1
    assert steps[1].detail[0]["rule"] == "defaults"
    assert [r.id for r in store.list_runs(session_id=sid)] == [run_id]
    assert store.list_runs(session_id="nope") == []


def test_sessions_and_messages(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    a = store.create_session("a")
    b = store.create_session("b")
    store.add_message(a, "user", "train gcn on cora")
    store.add_message(a, "assistant", "done: 81.2%", run_id=None, data={"plan": []})
    store.set_session_state(a, {"last_run": 1})
    assert [m.role for m in store.messages(a)] == ["user", "assistant"]
    assert store.messages(a)[1].data == {"plan": []}
    assert store.messages(b) == []
    assert store.get_session(a[:6]).state == {"last_run": 1}
    assert store.list_sessions()[0].id == a  # most recently active first
    with pytest.raises(UserInputError, match="No session"):
        store.get_session("zzzz")


def test_unknown_run_and_kind_are_clear_errors(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    with pytest.raises(UserInputError, match="no runs yet"):
        store.get_run(42)
    with pytest.raises(UserInputError, match="choose from"):
        store.start_run("dance", {})


def test_context_manager_marks_failure(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.run("train", CONFIG) as run_id:
            raise RuntimeError("boom inside a tool")
    record = store.get_run(run_id)
    assert record.status == "failed" and "boom inside a tool" in record.error
    with store.step(run_id, "tool:train") as extra:
        extra["detail"] = {"ok": True}
        _ = bytearray(30 * 2**20)  # the sampled peak must see at least this much
    step = store.steps(run_id)[-1]
    assert step.name == "tool:train" and step.detail == {"ok": True}
    assert step.seconds >= 0 and step.peak_mb > 30


def test_seeds_of() -> None:
    assert seeds_of({"seed": 5, "seeds": 3}) == [5, 6, 7]
    assert seeds_of({}) == [0]
    assert seeds_of({"seeds": [1, 9]}) == [1, 9]


CHILD = textwrap.dedent(
    """
    import sys, time
    from agent.store import ExperimentStore
    store = ExperimentStore(sys.argv[1])
    done = store.start_run("train", {"dataset": "Cora", "model": "gcn"})
    store.log_epoch(done, 0, 1, {"train_loss": 0.5})
    store.finish_run(done, "succeeded", metrics={"test_mean": 0.815})
    run = store.start_run("train", {"dataset": "Cora", "model": "gat"})
    epoch = 0
    while True:
        epoch += 1
        store.log_epoch(run, 0, epoch, {"train_loss": 1.0 / epoch})
        if epoch == 5:
            print(run, flush=True)
    """
)


def test_kill_9_mid_run_leaves_store_consistent(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ws)], stdout=subprocess.PIPE, text=True
    )
    try:
        run_id = int(child.stdout.readline())
        time.sleep(0.2)  # let it write more epochs, so the kill lands mid-write
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    store = ExperimentStore(ws)
    assert store.interrupted_on_open == [run_id]
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    killed = store.get_run(run_id)
    assert killed.status == "interrupted" and killed.finished_at is not None
    assert len(store.curves(run_id)[0]) >= 5  # the epochs committed before the kill remain
    earlier = store.get_run(run_id - 1)
    assert earlier.status == "succeeded" and earlier.metrics == {"test_mean": 0.815}
    # Opening again finds nothing new to recover and changes nothing.
    assert ExperimentStore(ws).interrupted_on_open == []


def test_live_run_of_this_process_is_not_interrupted(tmp_path: Path) -> None:
    first = ExperimentStore(tmp_path)
    run_id = first.start_run("tune", {"dataset": "Cora"})
    second = ExperimentStore(tmp_path)  # e.g. a tool opening its own store
    assert second.interrupted_on_open == []
    assert second.get_run(run_id).status == "running"


REAL_CHILD = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)
    from agent.store import ExperimentStore
    from graph_ml.train import TrainConfig, train
    store = ExperimentStore(sys.argv[1])
    config = TrainConfig(dataset="cora", model="gcn", epochs=100000, patience=0, progress=False,
                         data_dir=sys.argv[2])
    run = store.start_run("train", config.model_dump(mode="json"))

    def on_epoch(index, epoch, metrics):
        store.log_epoch(run, index, epoch, metrics)
        if epoch == 3:
            print(run, flush=True)

    train(config, on_epoch=on_epoch, checkpoint_dir=store.checkpoint_dir(run))
    """
)


def test_kill_9_during_real_training(tmp_path: Path, data_dir: Path) -> None:
    ws = tmp_path / "ws"
    before = ExperimentStore(ws)
    earlier = before.start_run("inspect", {"dataset": "Cora"})
    before.finish_run(earlier, "succeeded", result={"stats": {"num_nodes": 2708}})
    before.close()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", REAL_CHILD, str(ws), str(data_dir)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        run_id = int(child.stdout.readline())
        time.sleep(0.5)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    store = ExperimentStore(ws)
    assert store.interrupted_on_open == [run_id]
    assert store.get_run(run_id).status == "interrupted"
    logged = store.curves(run_id)[0]
    assert len(logged) >= 3 and {"train_loss", "val_metric"} <= set(logged[0])
    assert store.get_run(earlier).result == {"stats": {"num_nodes": 2708}}
    assert store.list_runs(status="running") == []


def test_epochs_keep_seed_and_fold_and_schema_1_is_migrated(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path)
    run = store.start_run("train", CONFIG)
    for fold in (0, 1):  # k-fold runs share a seed: their epochs must not replace each other
        for epoch in (1, 2):
            store.log_epoch(run, 3, epoch, {"train_loss": fold + 1.0 / epoch}, fold=fold)
    assert [(r["seed"], r["fold"], len(r["curves"])) for r in store.curve_runs(run)] == [
        (3, 0, 2),
        (3, 1, 2),
    ]
    assert store.curves(run)[(3, 1)][0]["train_loss"] == 2.0
    store.close()
    # A store written before folds were kept: its epochs survive the upgrade, without fold.
    db = sqlite3.connect(tmp_path / "experiments.sqlite")
    db.executescript(
        "DROP TABLE epochs; CREATE TABLE epochs (run_id INTEGER NOT NULL, seed INTEGER NOT NULL,"
        " epoch INTEGER NOT NULL, metrics TEXT NOT NULL, PRIMARY KEY (run_id, seed, epoch));"
        f"INSERT INTO epochs VALUES ({run}, 4, 1, '{{\"train_loss\": 0.5}}');"
        "UPDATE schema_version SET version = 1;"
    )
    db.close()
    store = ExperimentStore(tmp_path)
    assert store.schema_version == 2
    assert [(e.seed, e.fold, e.metrics) for e in store.epochs(run)] == [
        (4, None, {"train_loss": 0.5})
    ]
    store.log_epoch(run, 4, 2, {"train_loss": 0.25})
    assert [e["epoch"] for e in store.curves(run)[4]] == [1, 2]
    store.close()
