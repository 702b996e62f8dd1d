"""The experiment store and the study storage on bad disks: a damaged page, a file that is
not a database, a full disk, a read-only workspace.

Real faults only: bytes overwritten in a real SQLite file; a real tmpfs filled to the last
block; a real read-only mount. The tmpfs and the read-only remount need a mount namespace
(`unshare --user --map-root-user --mount`, no root needed where user namespaces are on);
without one those tests skip and say why. Each command must answer with one paragraph
(what, where, what to do), never a traceback, and must change nothing stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.cli import main
from agent.store import ExperimentStore
from graph_ml.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_with_epochs(workspace: Path, epochs: int = 400) -> Path:
    """A store whose run 1 has enough epochs to span many pages; closed cleanly."""
    with ExperimentStore(workspace) as store:
        run_id = store.start_run("train", TrainConfig(dataset="karate", model="gcn").model_dump())
        for epoch in range(epochs):
            store.log_epoch(run_id, 0, epoch, {"train_loss": 1.0 / (epoch + 1), "pad": "x" * 80})
        store.finish_run(run_id, "succeeded", metrics={"test_mean": 0.5})
    return workspace / "experiments.sqlite"


def damage_a_page(path: Path, table: str | None = None) -> int:
    """Overwrite the b-tree header of a page (the root of `table`, else one in the middle
    of the file) with bytes that are no page type; its number."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
        page_size, pages = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                            for p in ("page_size", "page_count"))  # fmt: skip
        if table is None:
            page = pages // 2
        else:
            sql = "SELECT rootpage FROM sqlite_master WHERE name = ?"
            page = conn.execute(sql, (table,)).fetchone()[0]
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\x77" * 64)  # 0x77 is no b-tree page type
    return page


# -------------------------------------------------------------------------- issue 10, case 8


@pytest.mark.parametrize(
    "command",
    [["experiments", "show", "1"], ["experiments", "list"], ["report", "1"],
     ["experiments", "rerun", "1"]],
    ids=lambda c: "-".join(c),
)  # fmt: skip
def test_a_damaged_page_is_one_paragraph_and_nothing_changes(tmp_path, command, capsys):
    path = store_with_epochs(tmp_path / "ws")
    damage_a_page(path)
    before = digest(path)
    code = main([*command, "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.count("\n") == 1 and err.startswith("error: ")  # one paragraph
    assert f"{path} is damaged" in err
    assert f"sqlite3 {path} .recover" in err and "backup" in err and "move it away" in err
    assert digest(path) == before  # nothing was written to a damaged file


def test_run_on_a_damaged_store_refuses_before_planning(tmp_path, monkeypatch, capsys):
    import agent.commands.run

    path = store_with_epochs(tmp_path / "ws")
    damage_a_page(path)
    monkeypatch.setattr(agent.commands.run, "make_backend", lambda name: pytest.fail("planned"))
    code = main(["run", "train a gcn on karate", "--workspace", str(tmp_path / "ws")])
    assert code == 3 and "is damaged" in capsys.readouterr().err


def test_a_corrupt_studies_file_is_one_paragraph(tmp_path, capsys):
    studies = tmp_path / "studies.sqlite"
    studies.write_bytes(b"this is not a database, it only has its name\n" * 200)
    before = digest(studies)
    code = main(["tune", "--dataset", "karate", "--model", "gcn", "--trials", "1", "--epochs",
                 "2", "--seeds", "0", "--storage", str(studies), "--no-progress",
                 "--workspace", str(tmp_path / "ws")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"{studies} is damaged" in err and f"sqlite3 {studies} .recover" in err
    assert "--storage" in err  # where else a study can go
    assert digest(studies) == before


def test_a_damaged_page_in_a_real_study_is_one_paragraph(tmp_path, capsys):
    studies = tmp_path / "studies.sqlite"
    args = [
        "tune",
        "--dataset",
        "karate",
        "--model",
        "gcn",
        "--trials",
        "6",
        "--epochs",
        "3",
        "--seeds",
        "0",
        "--storage",
        str(studies),
        "--no-progress",
        "--study",
        "s",
        "--workspace",
        str(tmp_path / "ws"),
    ]
    assert main(args) == 0
    capsys.readouterr()
    damage_a_page(studies, "trials")
    before = digest(studies)
    assert main([*args[:6], "8", *args[7:]]) == 3
    err = capsys.readouterr().err
    assert f"{studies} is damaged" in err and ".recover" in err
    assert digest(studies) == before


def test_the_store_checks_itself_on_open(tmp_path):
    from core.errors import SetupError

    path = store_with_epochs(tmp_path / "ws")
    damage_a_page(path)
    with pytest.raises(SetupError, match="is damaged"):
        ExperimentStore(tmp_path / "ws")  # on open, before any command reads a damaged page
    with pytest.raises(SetupError, match="is damaged"):
        ExperimentStore(tmp_path / "ws", read_only=True)


# ----------------------------------------------------------- mount namespaces: full, read-only


def _namespace_available() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return f"no user+mount namespace here: {probe.stderr.decode().strip()}"
    return None


needs_namespace = pytest.mark.skipif(
    _namespace_available() is not None, reason=str(_namespace_available())
)


def in_namespace(tmp_path: Path, driver: str, *args: str, size: str = "16m") -> dict:
    """Run `driver` (Python) in a mount namespace with a fresh tmpfs of `size` at
    `tmp_path/mnt` (its first argument); it prints one JSON object, returned here."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    (tmp_path / "driver.py").write_text(textwrap.dedent(driver))
    script = (
        f'mount -t tmpfs -o size={size} tmpfs "$1" && shift && exec "{sys.executable}" '
        f'"{tmp_path / "driver.py"}" "$@"'
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", script, "bash",
         str(mount), str(mount), *args],
        env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


DRIVER_HELPERS = """
    import json, os, sqlite3, subprocess, sys
    from pathlib import Path
    MNT, WS = Path(sys.argv[1]), Path(sys.argv[1]) / "ws"

    def autoglm(*args):
        # `autoglm ARGS` in this process: one import of the CLI for all the commands.
        import contextlib, io, time, traceback
        from agent.cli import main
        out, err, started = io.StringIO(), io.StringIO(), time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except BaseException:  # noqa: BLE001 - shown to the test, which fails on it
                traceback.print_exc()
                code = -1
        return {"code": code, "out": out.getvalue(), "err": err.getvalue(),
                "seconds": time.perf_counter() - started}

    def fill(leave):
        # Fill the tmpfs to within `leave` bytes: a filler file grown block by block.
        fd = os.open(MNT / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.statvfs(MNT).f_bavail * os.statvfs(MNT).f_frsize > leave:
                os.write(fd, b"\\0" * 4096)
        except OSError:
            pass
        os.close(fd)

    def runs():
        # As stored, before any start marks a thing; on a full disk a WAL reader cannot
        # create its -shm file, so without a WAL left the file is read as immutable.
        uri = (WS / "experiments.sqlite").as_uri() + "?mode=ro"
        if not (WS / "experiments.sqlite-wal").is_file():
            uri += "&immutable=1"
        with sqlite3.connect(uri, uri=True) as conn:
            return conn.execute("SELECT id, status, error FROM runs ORDER BY id").fetchall()
"""


# -------------------------------------------------------------------------- issue 10, case 9

FULL_DISK_DRIVER = (
    DRIVER_HELPERS
    + """
    from agent.store import ExperimentStore
    from graph_ml.train import TrainConfig
    data_dir, leave, command = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with ExperimentStore(WS) as store:
        config = TrainConfig(dataset="cora", model="gcn", epochs=3000, patience=None)
        store.finish_run(store.start_run("train", config.model_dump(mode="json")), "succeeded")
    fill(leave)
    if command == "rerun":
        result = autoglm("experiments", "rerun", "1", "--workspace", str(WS),
                         "--data-dir", data_dir)
    else:  # `autoglm run`, its planner scripted
        import agent.commands.run
        from agent.llm.fake import FakeBackend
        plan = json.dumps({"actions": [{"action": "train", "dataset": "cora", "model": "gcn",
                                        "epochs": 1900, "seeds": 3}]})
        agent.commands.run.make_backend = lambda name: FakeBackend([plan])
        result = autoglm("run", "train a GCN on Cora for 1900 epochs over 3 seeds",
                         "--workspace", str(WS), "--data-dir", data_dir)
    os.remove(MNT / "filler")  # space again, to read what the process itself wrote,
    result["runs"] = runs()
    with ExperimentStore(WS) as store:  # and what the next start finds
        result["after"] = [[r.id, r.status, r.error] for r in store.list_runs()]
    print(json.dumps(result))
"""
)


@needs_namespace
@pytest.mark.parametrize("command", ["rerun", "run"])
@pytest.mark.parametrize("leave", [0, 256 * 1024], ids=["before-the-run", "mid-run"])
def test_a_full_disk_says_so_and_the_run_ends_failed(tmp_path, data_dir, command, leave):
    result = in_namespace(tmp_path, FULL_DISK_DRIVER, str(data_dir), str(leave), command)
    err, out = result["err"], result["out"]
    assert "Traceback" not in err + out and "During handling" not in err + out
    workspace = tmp_path / "mnt" / "ws"
    message = err + out  # `run` reports its failed run on stdout, a refusal on stderr
    assert result["code"] == 3, result  # a setup problem: the disk
    assert "is full" in message and str(workspace) in message, result
    assert "free" in message  # some space, or where to find more
    statuses = {run_id: (status, error) for run_id, status, error in result["runs"]}
    assert statuses[1][0] == "succeeded"  # earlier work untouched
    for run_id, (status, error) in statuses.items():
        if run_id > 1:  # a run that started is marked by the process itself, not left running
            assert status == "failed" and "full" in error, statuses
    assert [s for _, s, _ in result["after"]].count("running") == 0


# ------------------------------------------------------------------------- issue 10, case 10

READ_ONLY_DRIVER = (
    DRIVER_HELPERS
    + """
    from agent.experiments import rerun
    from agent.store import ExperimentStore
    from graph_ml.train import TrainConfig
    data_dir, outside = sys.argv[2], Path(sys.argv[3])
    with ExperimentStore(WS) as store:
        config = TrainConfig(dataset="cora", model="gcn", epochs=2)
        store.finish_run(store.start_run("train", config.model_dump(mode="json")), "succeeded")
        rerun(store, 1, data_dir=data_dir)
    # A run whose process ended without finishing it (as a kill -9 leaves it).
    left = ("import os, sys; from agent.store import ExperimentStore; "
            "print(ExperimentStore(sys.argv[1]).start_run('train', {'model': 'gcn'})); "
            "sys.stdout.flush(); os._exit(0)")  # fmt: skip
    left_running = int(subprocess.run([sys.executable, "-c", left, str(WS)],
                                      capture_output=True, text=True).stdout)  # fmt: skip
    os.sync()
    subprocess.run(["mount", "-o", "remount,ro", str(MNT)], check=True)
    ws = ["--workspace", str(WS)]
    print(json.dumps({
        "list": autoglm("experiments", "list", *ws),
        "list_json": autoglm("experiments", "list", "--json", *ws),
        "show": autoglm("experiments", "show", "2", *ws),
        "export": autoglm("experiments", "export", "2", "-o", str(outside / "x.py"), *ws),
        "report_out": autoglm("report", "2", "--out", str(outside / "report"), *ws),
        "report": autoglm("report", "2", *ws),
        "rerun": autoglm("experiments", "rerun", "1", "--data-dir", data_dir, *ws),
        "tune": autoglm("tune", "--dataset", "karate", "--model", "gcn", "--trials", "1",
                        "--no-progress", *ws),
        "tune_storage": autoglm("tune", "--dataset", "karate", "--model", "gcn", "--trials",
                                "1", "--storage", str(WS / "studies.sqlite"), "--no-progress",
                                "--workspace", str(outside / "ws")),
        "chat_list": autoglm("chat", "--list", *ws),
        "fresh": autoglm("experiments", "list", "--workspace", str(MNT / "nothing-here")),
        "left_running": left_running,
    }))
"""
)


@needs_namespace
def test_a_read_only_workspace_is_read_and_writers_say_read_only(tmp_path, data_dir):
    outside = tmp_path / "outside"
    outside.mkdir()
    result = in_namespace(tmp_path, READ_ONLY_DRIVER, str(data_dir), str(outside))
    print({name: round(r["seconds"], 1) for name, r in result.items() if isinstance(r, dict)})
    for name in ("list", "list_json", "show", "export", "report_out", "chat_list", "fresh"):
        assert result[name]["code"] == 0, (name, result[name]["err"])
    assert "train gcn on cora" in result["list"]["out"]
    listed = {r["id"]: r["status"] for r in json.loads(result["list_json"]["out"])}
    # Its process is gone: shown as what it is, though a read-only store cannot record it.
    assert listed[result["left_running"]] == "interrupted"
    assert "run 2: train gcn on cora [succeeded]" in result["show"]["out"]
    assert (outside / "x.py").is_file() and (outside / "report" / "report.md").is_file()
    assert "No runs yet" in result["fresh"]["out"]
    for name in ("report", "rerun", "tune", "tune_storage"):
        err = result[name]["err"]
        assert result[name]["code"] == 3, (name, err)
        assert "read-only" in err and "Traceback" not in err, (name, err)
    assert "--out" in result["report"]["err"]
    assert "--workspace" in result["rerun"]["err"] and "--workspace" in result["tune"]["err"]
    assert "--storage" in result["tune_storage"]["err"]
