"""`autoglm run`, `autoglm chat` (piped stdin) and `autoglm inspect`, as a user calls them.

The planner's model is scripted (`FakeBackend`) by replacing `make_backend`; everything
else is real. One test kills a training `autoglm run` with SIGKILL and reopens the store.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import agent.commands.chat
import agent.commands.run
from agent.cli import main
from agent.explain import fmt_pct
from agent.llm.fake import FakeBackend
from agent.store import ExperimentStore

ROOT = Path(__file__).resolve().parents[1]


def plan(**fields) -> str:
    return json.dumps({"actions": [fields]})


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def scripted(monkeypatch):
    """Script the planner's replies: `scripted(reply, ...)`."""

    def install(*replies: str) -> FakeBackend:
        backend = FakeBackend(replies)
        for module in (agent.commands.run, agent.commands.chat):
            monkeypatch.setattr(module, "make_backend", lambda name: backend)
        return backend

    return install


def run(workspace: Path, data_dir: Path, *args: str) -> int:
    return main([*args, "--workspace", str(workspace), "--data-dir", str(data_dir)])


def test_run_json_reports_the_stored_result(workspace, data_dir, scripted, capsys):
    scripted(plan(action="train", dataset="karate", model="gcn", epochs=4))
    code = run(workspace, data_dir, "run", "train a GCN on karate for 4 epochs", "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["exit_code"] == 0 and out["run_ids"] == [1]
    with ExperimentStore(workspace) as store:
        record = store.get_run(1)
    assert record.status == "succeeded" and record.config["epochs"] == 4
    assert f"{fmt_pct(record.metrics['test_mean'])}%" in out["reply"]
    assert out["outcomes"][0]["fields"]["task"] == "node_classification"


def test_run_shows_the_plan_then_the_explanation_and_writes_the_report(
    workspace, data_dir, scripted, capsys
):
    scripted(plan(action="train", dataset="karate", model="gat", epochs=3))
    code = run(workspace, data_dir, "run", "train GAT on karate for 3 epochs", "--report")
    out = capsys.readouterr().out
    assert code == 0
    plan_line, *rest = out.splitlines()
    # The estimated cost comes first, before the fields and reasons.
    assert plan_line.startswith("plan 1 [estimated ")
    assert " MB]: train(dataset=karate, model=gat, epochs=3" in plan_line
    assert "tool train" in plan_line
    # Defaults are shown with their reasons, the ones sharing a reason on one line.
    assert "heads=8: gat's usual values for node_classification (Veličković" in out
    assert "GAT on karate (run 1" in out
    written = [Path(line.split()[1]) for line in rest if line.startswith("wrote ")]
    assert {p.name for p in written} >= {"report.md", "report.html"}
    assert all(p.is_file() for p in written)


def test_run_exit_codes_mean_something(workspace, data_dir, scripted, capsys):
    assert run(workspace, data_dir, "run", "   ") == 2
    assert "error: The request is empty" in capsys.readouterr().err
    scripted("garbage", "more garbage", "{}")
    assert run(workspace, data_dir, "run", "train a gcn on cora") == 4
    assert "no valid plan in 3 attempts" in capsys.readouterr().err
    refused = plan(action="train", dataset="cora", model="gin", task="graph_classification")
    scripted(refused, refused)
    assert run(workspace, data_dir, "run", "GIN graph classification on Cora", "--json") == 5
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "RuleViolation" and out["alternatives"]
    with ExperimentStore(workspace) as store:
        assert store.list_runs() == []


def test_epochs_beyond_the_schema_get_a_question_not_a_run(workspace, data_dir, scripted, capsys):
    scripted(plan(action="train", dataset="cora", model="gcn"))
    code = run(workspace, data_dir, "run", "train a gcn on cora for 1000000000 epochs")
    out = capsys.readouterr().out
    assert code == 2 and "epochs" in out and "1000000000" in out
    with ExperimentStore(workspace) as store:
        assert store.list_runs() == []


def test_inspect_command(workspace, data_dir, capsys):
    assert run(workspace, data_dir, "inspect", "cora", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["num_nodes"] == 2708 and "homophily" in out["text"]
    assert run(workspace, data_dir, "inspect", "../../etc/passwd") == 5
    assert "outside the directories autoglm may read" in capsys.readouterr().err


def test_chat_with_piped_stdin(workspace, data_dir, scripted, capsys, monkeypatch):
    scripted(
        plan(action="train", dataset="karate", model="gcn", epochs=3),
        plan(action="train", dataset="karate", model="sage"),
        plan(action="compare", run_ids=[1, 2]),  # one planner for chat: the model chooses
    )
    lines = [
        "train a gcn on karate for 3 epochs",
        "",
        "same but with sage",
        "compare that with the previous run",
        "/runs",
        "/session",
        "/exit",
        "never read",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert run(workspace, data_dir, "chat") == 0
    out = capsys.readouterr().out
    assert "you> same but with sage" in out
    assert "run 2: train sage on karate [succeeded]" in out
    assert "run 3: compare" in out
    with ExperimentStore(workspace) as store:
        session_id = store.list_sessions()[0].id
        assert session_id in out
        assert store.get_run(2).config["epochs"] == 3  # inherited by the follow-up
        assert [e["run_id"] for e in store.get_run(3).result["entries"]] == [1, 2]


def test_chat_resume_and_errors_do_not_end_it(workspace, data_dir, scripted, capsys, monkeypatch):
    scripted(plan(action="train", dataset="karate", model="gcn", epochs=2))
    monkeypatch.setattr(sys, "stdin", io.StringIO("train gcn on karate for 2 epochs\n"))
    run(workspace, data_dir, "chat")
    with ExperimentStore(workspace) as store:
        session_id = store.list_sessions()[0].id
    capsys.readouterr()
    refused = plan(action="train", dataset="cora", model="gin", task="graph_classification")
    scripted(refused, refused, plan(action="train", dataset="karate", model="mlp"))
    stdin = "GIN graph classification on cora\nsame but with an mlp\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert run(workspace, data_dir, "chat", "--resume", session_id[:6], "--json") == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["exit_code"] == 5 and "node-level" in first["error"]
    assert second["session_id"] == session_id and second["run_ids"] == [2]
    with ExperimentStore(workspace) as store:
        assert store.get_run(2).config["epochs"] == 2  # from the resumed chat's run 1


KILLED_RUN = textwrap.dedent(
    """
    import json, sys
    import agent.commands.run as run
    from agent.cli import main
    from agent.llm.fake import FakeBackend
    reply = json.dumps({"actions": [{"action": "train", "dataset": "cora", "model": "gcn",
                                     "epochs": 1900, "seeds": 3}]})
    run.make_backend = lambda name: FakeBackend([reply])
    sys.exit(main(["run", "train a GCN on Cora for 1900 epochs over 3 seeds",
                   "--workspace", sys.argv[1], "--data-dir", sys.argv[2]]))
    """
)


def test_kill_9_during_training_leaves_the_store_consistent(workspace, data_dir, scripted, capsys):
    scripted(plan(action="train", dataset="karate", model="gcn", epochs=2))
    assert run(workspace, data_dir, "run", "train gcn on karate for 2 epochs") == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(workspace), str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        epochs = 0
        while epochs < 20 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.5)
            with sqlite3.connect(workspace / "experiments.sqlite", timeout=30) as conn:
                epochs = conn.execute("SELECT COUNT(*) FROM epochs WHERE run_id = 2").fetchone()[0]
        assert child.poll() is None, "the training run ended before it could be killed"
        assert epochs >= 20
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    with ExperimentStore(workspace) as store:
        assert store.interrupted_on_open == [2]
        killed = store.get_run(2)
        assert killed.status == "interrupted" and killed.finished_at is not None
        assert len(store.epochs(2)) >= epochs  # every epoch committed before the kill is kept
        assert store.get_run(1).status == "succeeded"  # earlier work untouched
        assert store.get_run(1).metrics["test_mean"] is not None
        assert [s.name for s in store.steps(run_id=2)][:2] == ["plan", "rules"]
    # The store still works: the next run gets the next id.
    scripted(plan(action="train", dataset="karate", model="gcn", epochs=2))
    assert run(workspace, data_dir, "run", "train gcn on karate for 2 epochs", "--json") == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["run_ids"] == [3]


def test_sigterm_marks_the_run_interrupted_at_once(workspace, data_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(workspace), str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline, epochs = time.monotonic() + 120, 0
    while epochs < 5 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.5)
        if (workspace / "experiments.sqlite").is_file():
            with sqlite3.connect(workspace / "experiments.sqlite", timeout=30) as conn:
                epochs = conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and b"interrupted" in err
    with sqlite3.connect(workspace / "experiments.sqlite") as conn:
        status, error = conn.execute("SELECT status, error FROM runs WHERE id = 1").fetchone()
    assert status == "interrupted" and "stopped by SIGTERM" in error  # before any reopen
