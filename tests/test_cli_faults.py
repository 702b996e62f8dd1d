"""The CLI under faults a user meets: a closed pipe, a missing output directory, SIGTERM.

Every case runs the real `autoglm` entry point in a child process (a pipe, a signal) or in
process, on a real SQLite store, and checks the one-paragraph answer: no traceback.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.experiments import rerun
from agent.store import ExperimentStore
from graph_ml.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
AUTOGLM = [sys.executable, "-m", "agent.cli"]


def store_train_run(workspace: Path, **config) -> int:
    """A stored `train` run of `config` (not trained), as a rerun or export starts from."""
    with ExperimentStore(workspace) as store:
        run_id = store.start_run("train", TrainConfig(**config).model_dump(mode="json"))
        store.finish_run(run_id, "succeeded")
    return run_id


def wait_for(predicate, seconds: float = 120.0, child: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if child is not None and child.poll() is not None:
            raise AssertionError(f"the child ended early:\n{child.stderr.read().decode()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def query(path: Path, sql: str) -> list[tuple]:
    if not path.is_file():
        return []
    with sqlite3.connect(path, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the tables are not created yet
            return []


# ------------------------------------------------------------------------- issue 10, case 12


def test_listing_into_a_pipe_closed_by_head_ends_quietly(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    with ExperimentStore(workspace) as store:
        for _ in range(1500):  # ~130 KB of table: more than a pipe holds, so head closes it
            run_id = store.start_run("train", {"model": "gcn", "dataset": "cora"})
            store.finish_run(run_id, "failed")
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -1', "bash", *AUTOGLM, "experiments",
         "list", "--limit", "1500", "--workspace", str(workspace)],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.split() == ["id", "kind", "status", "what", "result", "started", "session"]
    assert done.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" line
    assert done.returncode == 128 + signal.SIGPIPE  # what any Unix tool killed by SIGPIPE says


def test_export_into_a_missing_directory_says_what_to_do(
    tmp_path: Path, data_dir: Path, capsys
) -> None:
    workspace = tmp_path / "ws"
    store_train_run(workspace, dataset="cora", model="gcn", epochs=2)
    with ExperimentStore(workspace) as store:
        rerun(store, 1, data_dir=data_dir)  # run 2: trained, every field an export needs
    target = tmp_path / "missing_dir" / "x.py"
    code = main(["experiments", "export", "2", "-o", str(target), "--workspace", str(workspace)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{target.parent} does not exist" in err and "mkdir -p" in err
    assert not target.parent.exists()  # nothing created behind the user's back
    assert main(["experiments", "export", "2", "-o", str(tmp_path / "x.py"),
                 "--workspace", str(workspace)]) == 0  # fmt: skip
    assert "torch_geometric" in (tmp_path / "x.py").read_text()


# ------------------------------------------------------------------------- issue 10, case 13


def test_sigterm_during_a_rerun_marks_it_interrupted_and_exits_130(
    tmp_path: Path, data_dir: Path
) -> None:
    workspace = tmp_path / "ws"
    store_train_run(workspace, dataset="cora", model="gcn", epochs=5000, patience=None)
    child = subprocess.Popen(
        [*AUTOGLM, "experiments", "rerun", "1", "--workspace", str(workspace),
         "--data-dir", str(data_dir)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    db = workspace / "experiments.sqlite"
    try:
        wait_for(lambda: query(db, "SELECT COUNT(*) FROM epochs WHERE run_id = 2")[0][0] >= 3,
                 child=child)  # fmt: skip
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"interrupted" in err
    # Marked by the dying process itself, before any later open of the store.
    [(status, error)] = query(db, "SELECT status, error FROM runs WHERE id = 2")
    assert status == "interrupted" and "SIGTERM" in error


def test_sigterm_during_tune_fails_the_running_trial_and_exits_130(tmp_path: Path) -> None:
    storage = tmp_path / "studies.sqlite"
    child = subprocess.Popen(
        [*AUTOGLM, "tune", "--dataset", "karate", "--model", "gcn", "--trials", "50",
         "--epochs", "4000", "--patience", "0", "--pruner", "none", "--seeds", "0",
         "--storage", str(storage), "--study", "stopped", "--no-progress"],
        env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(lambda: query(storage, "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'")
                 == [(1,)], child=child)  # fmt: skip
        time.sleep(1.0)  # well inside the trial's 4000 epochs
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"interrupted" in err
    states = [s for (s,) in query(storage, "SELECT state FROM trials")]
    assert "RUNNING" not in states and states.count("FAIL") == 1


@pytest.mark.parametrize("command", [["experiments", "list"], ["datasets"]])
def test_sigterm_before_any_work_is_still_130(tmp_path: Path, command: list[str]) -> None:
    """The handler is installed before a command's imports: a scheduler's early kill too."""
    script = (
        "import os, signal, sys\n"
        "import agent.cli\n"
        "real = agent.cli._dispatch\n"
        "def dispatch(args):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(args)\n"
        "agent.cli._dispatch = dispatch\n"
        "sys.exit(agent.cli.main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *command, "--workspace", str(tmp_path / "ws")]
        if command[0] == "experiments" else [sys.executable, "-c", script, *command],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 130 and "interrupted" in done.stderr
    assert "Traceback" not in done.stderr


# -------------------------------------------------------------------------- issue 10, case 7


def test_run_refuses_an_over_long_request_before_loading_a_model(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import agent.commands.run

    def no_model(name):
        raise AssertionError("a model was loaded for a request that is refused anyway")

    monkeypatch.setattr(agent.commands.run, "make_backend", no_model)
    started = time.perf_counter()
    code = main(["run", "train a gcn " * 10_000, "--workspace", str(tmp_path / "ws")])
    assert code == 2 and time.perf_counter() - started < 5
    assert "characters long" in capsys.readouterr().err
    assert not (tmp_path / "ws").exists()  # nothing opened, nothing stored


def test_chat_stores_a_capped_copy_of_an_over_long_message(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import io

    import agent.commands.chat
    from agent.llm.fake import FakeBackend
    from agent.store import MAX_MESSAGE_CHARS

    monkeypatch.setattr(agent.commands.chat, "make_backend", lambda name: FakeBackend())
    pasted = "train a gcn on cora " * 5_120  # 102,400 characters
    monkeypatch.setattr(sys, "stdin", io.StringIO(pasted + "\n"))
    assert main(["chat", "--workspace", str(tmp_path / "ws")]) == 0
    assert "characters long" in capsys.readouterr().out
    with ExperimentStore(tmp_path / "ws") as store:
        [user, reply] = store.messages(store.list_sessions()[0].id)
    assert len(user.content) <= MAX_MESSAGE_CHARS < len(pasted.strip())
    assert user.content.startswith(pasted[:1000])
    assert "102399 characters" in user.content  # the copy says it is one, and of what
    assert reply.content.startswith("error: The request is")


CHAT_WITH_A_LONG_RUN = """
import json, sys
import agent.commands.chat as chat
from agent.cli import main
from agent.llm.fake import FakeBackend
reply = json.dumps({"actions": [{"action": "train", "dataset": "cora", "model": "gcn",
                                 "epochs": 1900, "seeds": 3}]})
chat.make_backend = lambda name: FakeBackend([reply, reply])
sys.exit(main(["chat", "--workspace", sys.argv[1], "--data-dir", sys.argv[2]]))
"""


def test_sigterm_ends_a_chat_where_ctrl_c_would_only_stop_the_request(
    tmp_path: Path, data_dir: Path
) -> None:
    workspace = tmp_path / "ws"
    requests = tmp_path / "requests.txt"  # the second request must never start
    requests.write_text("train a GCN on Cora for 1900 epochs over 3 seeds\n" * 2)
    with open(requests, "rb") as stdin:
        child = subprocess.Popen(
            [sys.executable, "-c", CHAT_WITH_A_LONG_RUN, str(workspace), str(data_dir)],
            env=ENV, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    db = workspace / "experiments.sqlite"
    try:
        wait_for(lambda: query(db, "SELECT COUNT(*) FROM epochs") >= [(3,)], child=child)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert query(db, "SELECT id, status FROM runs") == [(1, "interrupted")]


def test_the_executable_exits_without_teardown_yet_loses_nothing(tmp_path: Path) -> None:
    """`exit_now`: a thread still running is waited for, atexit handlers run, the whole
    output arrives, and the command's exit code is the process's."""
    script = (
        "import atexit, sys, threading, time\n"
        "from agent import cli\n"
        f"atexit.register(lambda: open({str(tmp_path / 'atexit')!r}, 'w').write('ran'))\n"
        f"threading.Thread(target=lambda: (time.sleep(0.5), open({str(tmp_path / 'thread')!r},"
        " 'w').write('done'))).start()\n"
        "print('x' * 200000, end='')\n"  # more than a pipe holds: flushed, not lost
        "cli.exit_now(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 3 and len(done.stdout) == 200000
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"
    bad = subprocess.run([*AUTOGLM, "train", "--dataset", "nosuch"], env=ENV,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "nosuch" in bad.stderr
