"""`autoglm ui` as a user runs it: a real server process on loopback over a workspace with
real runs (two karate trainings and a tune), and the in-process app for the rules it must
keep (token off loopback, CSRF, Host, escaping, upload caps and paths, crashes)."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="autoglm ui's extras are not installed (pip install .[ui])")
pytest.importorskip("plotly", reason="autoglm ui's extras are not installed (pip install .[ui])")

from starlette.testclient import TestClient  # noqa: E402

from agent.store import ExperimentStore  # noqa: E402
from agent.ui.app import create_app  # noqa: E402
from agent.ui.security import Guard  # noqa: E402
from tests.ui_helpers import free_port, get, make_workspace, ui_process  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, data_dir) -> Path:
    ws = tmp_path_factory.mktemp("ui") / "ws"
    make_workspace(ws, data_dir)
    return ws


@pytest.fixture(scope="module")
def server(workspace, data_dir):
    port = free_port()
    with ui_process(["--workspace", str(workspace), "--data-dir", str(data_dir)], port) as base:
        yield base


def _client(workspace: Path, data_dir: Path | None = None, **guard) -> TestClient:
    guard = Guard.for_host(guard.pop("host", "127.0.0.1"), 8765, **guard)
    app = create_app(workspace, guard, data_dir)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    client.guard = guard
    return client


def test_the_list_shows_every_stored_run_and_its_number(server, workspace):
    status, page = get(server + "/")
    assert status == 200
    with ExperimentStore(workspace, read_only=True) as store:
        runs = store.list_runs(None)
    assert len(runs) == 3
    for record in runs:
        assert f'href="/runs/{record.id}"' in page and html.escape(record.title) in page
    trained = [r for r in runs if r.kind == "train"]
    for record in trained:
        assert f"test {record.metrics['test_mean']:.4f}" in page


def test_api_runs_returns_the_stored_runs_as_json(server, workspace):
    status, body = get(server + "/api/runs")
    assert status == 200
    data = json.loads(body)
    with ExperimentStore(workspace, read_only=True) as store:
        stored = {r.id: r for r in store.list_runs(None)}
    assert data["count"] == 3 and {r["id"] for r in data["runs"]} == set(stored)
    for row in data["runs"]:
        assert row["metrics"] == stored[row["id"]].metrics and row["status"] == "succeeded"
    status, body = get(server + "/api/runs?kind=train&model=gat")
    assert [r["model"] for r in json.loads(body)["runs"]] == ["gat"]
    status, body = get(server + "/api/runs?sort=metric&order=asc&kind=train")
    values = [r["metric"] for r in json.loads(body)["runs"]]
    assert values == sorted(values)
    assert get(server + "/api/runs?sort=nonsense")[0] == 400


def test_run_compare_and_study_pages_show_the_stored_numbers(server, workspace):
    with ExperimentStore(workspace, read_only=True) as store:
        gcn, gat = sorted(store.list_runs(None, kind="train"), key=lambda r: r.id)
        tune = store.list_runs(None, kind="tune")[0]
        first_epoch = store.curve_runs(gcn.id)[0]["curves"][0]
    status, page = get(server + f"/runs/{gcn.id}")
    assert status == 200
    assert f"{gcn.train_result()['runs'][0]['test_metric']:.4f}" in page  # seed 0's test
    assert json.dumps(first_epoch["epoch"]) in page and "Metrics per epoch" in page
    assert "Plan and rule decisions" in page and gcn.versions["torch"] in page
    status, page = get(server + f"/compare?ids={gcn.id},{gat.id}")
    assert status == 200 and "Welch t-test" in page and "p = " in page
    assert f"{gcn.metrics['test_mean']:.4f}" in page and f"{gat.metrics['test_mean']:.4f}" in page
    assert "<th>model</th><td>&#34;gcn&#34;</td><td>&#34;gat&#34;</td>" in page  # what differs
    status, page = get(server + "/studies")
    study = tune.result["study"]
    assert status == 200 and html.escape(study) in page and f'href="/runs/{tune.id}"' in page
    status, page = get(server + f"/studies/{study}")
    assert status == 200 and f"{tune.result['best_value']:.4f}" in page
    status, body = get(server + f"/api/studies/{study}/plots/history")
    assert status == 200 and json.loads(body)["data"]


def test_downloads_script_and_reports(server, workspace):
    status, script = get(server + "/runs/1/export.py")
    assert status == 200 and "load" in script and "karate" in script
    status, page = get(server + "/runs/1/report.html")
    assert status == 200 and "<html" in page.lower()
    status, text = get(server + "/runs/1/report.md")
    assert status == 200 and text.startswith("#")


def test_plotly_is_served_from_the_wheel(server):
    status, body = get(server + "/static/plotly.min.js")
    assert status == 200 and "plotly" in body[:2000].lower() and len(body) > 1_000_000


def test_off_loopback_needs_the_token(workspace):
    port = free_port()
    with ui_process(["--workspace", str(workspace), "--host", "0.0.0.0", "--token", "s3cret"],
                    port, token="s3cret") as base:  # fmt: skip
        status, body = get(base + "/")
        assert status == 403 and "token" in body
        assert get(base + "/api/runs")[0] == 403
        assert get(base + "/api/runs?token=wrong")[0] == 403
        assert get(base + "/api/runs?token=s3cret")[0] == 200
        assert get(base + "/", {"Authorization": "Bearer s3cret"})[0] == 200


def test_off_loopback_without_a_token_makes_one_and_prints_it(workspace):
    import subprocess
    import sys

    from tests.ui_helpers import env, wait_until_up

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "ui", "--workspace", str(workspace), "--host",
         "0.0.0.0", "--port", str(port)], env=env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        url = next(line.strip() for line in lines if "?token=" in line)
        token = url.split("?token=")[1]
        base = f"http://127.0.0.1:{port}"
        wait_until_up(process, base, token)
        assert "needs the token" in "".join(lines)
        assert get(base + "/")[0] == 403 and get(base + f"/?token={token}")[0] == 200
    finally:
        process.terminate()
        process.wait(10)


def test_posts_need_the_pages_secret_and_hosts_must_be_ours(workspace):
    client = _client(workspace)
    assert client.post("/api/chat", json={"text": "train gcn on karate"}).status_code == 403
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 403
    page = client.get("/").text
    assert f'content="{client.guard.csrf}"' in page


def test_user_strings_are_escaped(workspace, tmp_path):
    ws = tmp_path / "ws"
    with ExperimentStore(ws) as store:
        sid = store.create_session("<script>alert(1)</script>")
        store.add_message(sid, "user", "<img src=x onerror=alert(2)>")
    client = _client(ws)
    page = client.get(f"/chat?session={sid}").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<img src=x" not in page and "&lt;img src=x" in page
    page = client.get("/?q=<b>x</b>").text
    assert "<b>x</b>" not in page


def _upload(client, name, files):
    return client.post("/api/upload", data={"name": name}, files=files,
                       headers={"x-autoglm-csrf": client.guard.csrf})  # fmt: skip


def _graph_csv(n: int = 24) -> tuple[bytes, bytes]:
    nodes = ["id,f1,f2,label"] + [f"n{i},{i % 3},{(i * 7) % 5},{'abc'[i % 3]}" for i in range(n)]
    edges = ["src,dst"] + [f"n{i},n{(i + 3) % n}" for i in range(n)]
    edges += [f"n{i},n{(i + 1) % n}" for i in range(0, n, 2)]
    return ("\n".join(nodes) + "\n").encode(), ("\n".join(edges) + "\n").encode()


def test_uploads_stay_in_the_workspace_and_are_capped(tmp_path, monkeypatch):
    import agent.ui.data

    ws = tmp_path / "ws"
    client = _client(ws)
    nodes, edges = _graph_csv()
    answer = _upload(client, "../../evil", [("files", ("../../../nodes.csv", nodes)),
                                            ("files", ("/etc/edges.csv", edges))])  # fmt: skip
    assert answer.status_code == 200, answer.text
    folder = Path(answer.json()["path"])
    assert folder.parent == (ws / "uploads").resolve() and folder.name == "evil"
    assert sorted(p.name for p in folder.iterdir()) == ["edges.csv", "nodes.csv"]
    assert not (tmp_path / "nodes.csv").exists()
    assert _upload(client, "x", [("files", ("run.sh", b"rm -rf /"))]).status_code == 400
    monkeypatch.setattr(agent.ui.data, "MAX_UPLOAD_BYTES", 1000)
    answer = _upload(client, "big", [("files", ("edges.csv", b"1,2\n" * 1000))])
    assert answer.status_code == 413 and "MiB" in answer.json()["error"]
    assert not (ws / "uploads" / "big").exists() and not (ws / "uploads" / "big.partial").exists()


def _wait_job(client, job_id: int, seconds: float = 300) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def test_an_uploaded_csv_trains_like_any_dataset(tmp_path):
    ws = tmp_path / "ws"
    client = _client(ws)
    nodes, edges = _graph_csv()
    assert (
        _upload(
            client, "mine", [("files", ("nodes.csv", nodes)), ("files", ("edges.csv", edges))]
        ).status_code
        == 200
    )
    headers = {"x-autoglm-csrf": client.guard.csrf}
    answer = client.post(
        "/api/action",
        json={"action": "train", "dataset": "mine", "model": "gcn", "epochs": 5},
        headers=headers,
    )
    job = _wait_job(client, answer.json()["job"])
    assert job["status"] == "succeeded", job
    run_id = job["events"][-1]["run_ids"][-1]
    with ExperimentStore(ws, read_only=True) as store:
        record = store.get_run(run_id)
    assert record.status == "succeeded" and record.config["dataset"].endswith("uploads/mine")
    assert len(store_epochs := record.train_result()["runs"]) == 1 and store_epochs[0]
    # Any other path is refused: only catalogue names and uploads.
    answer = client.post("/api/action", json={"action": "inspect", "dataset": "/etc"},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 400


def test_a_broken_upload_fails_its_job_and_the_server_goes_on(tmp_path):
    ws = tmp_path / "ws"
    client = _client(ws)
    headers = {"x-autoglm-csrf": client.guard.csrf}
    bad = b"id,label\nn0,a\nn1,b\n"
    assert (
        _upload(
            client,
            "bad",
            [("files", ("nodes.csv", bad)), ("files", ("edges.csv", b"src,dst\nn0,n9\n"))],
        ).status_code
        == 200
    )
    answer = client.post(
        "/api/action",
        json={"action": "train", "dataset": "bad", "model": "gcn", "epochs": 3},
        headers=headers,
    )
    job = _wait_job(client, answer.json()["job"])
    assert job["status"] == "failed", job
    assert job["events"][-1]["message"], job
    assert client.get("/").status_code == 200 and client.get("/api/runs").status_code == 200
    with ExperimentStore(ws, read_only=True) as store:
        assert all(r.status != "running" for r in store.list_runs(None))


def test_studies_refuse_a_file_outside_the_roots(workspace):
    client = _client(workspace)
    page = client.get("/studies?storage=sqlite:////etc/passwd")
    assert page.status_code == 400 and "outside the directories" in page.text
    assert client.get("/studies?storage=file:///etc/passwd").status_code == 400
    down = client.get("/studies?storage=postgresql://nobody@127.0.0.1:1/none")
    assert down.status_code == 400 and "Traceback" not in down.text


def _karate(epochs: int, model: str = "gcn") -> str:
    action = {"action": "train", "dataset": "karate", "model": model, "epochs": epochs}
    return json.dumps({"actions": [action]})


def test_a_chat_turn_asks_streams_and_the_cli_resumes_it(tmp_path, data_dir, monkeypatch, capsys):
    import io
    import sys

    import agent.commands.chat
    from agent.cli import main
    from agent.llm.fake import FakeBackend

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "limits.json").write_text('{"confirm_above_seconds": 0}')  # every plan asks first
    guard = Guard.for_host("127.0.0.1", 8765)
    model = FakeBackend(fn=lambda messages: _karate(6))
    app = create_app(ws, guard, data_dir, backend_factory=lambda: model)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    headers = {"x-autoglm-csrf": guard.csrf}
    started = client.post("/api/chat", json={"text": "train a GCN on karate for 6 epochs"},
                          headers=headers).json()  # fmt: skip
    job_id, session = started["job"], started["session"]
    deadline = time.monotonic() + 120
    while client.get(f"/api/jobs/{job_id}").json()["status"] != "waiting":
        assert time.monotonic() < deadline, client.get(f"/api/jobs/{job_id}").json()
        time.sleep(0.1)
    client.post(f"/api/jobs/{job_id}/confirm", json={"yes": True}, headers=headers)
    job = _wait_job(client, job_id)
    assert job["status"] == "succeeded", job
    stream = client.get(f"/api/jobs/{job_id}/events").text  # a second tab, from the start
    names = [json.loads(line[6:])["event"] for line in stream.splitlines()
             if line.startswith("data: {\"")]  # fmt: skip
    assert names[:4] == ["started", "plan", "confirm", "confirmed"] and names[-1] == "done"
    run_id = job["events"][-1]["run_ids"][0]
    with ExperimentStore(ws, read_only=True) as store:
        assert store.get_run(run_id).session_id == session
        assert len(store.curve_runs(run_id)[0]["curves"]) == 6
    # The same stored session continues in the CLI.
    monkeypatch.setattr(agent.commands.chat, "make_backend",
                        lambda name: FakeBackend([_karate(3, "gat")]))  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.StringIO("same but with GAT\n"))
    capsys.readouterr()
    args = ["chat", "--resume", session, "--workspace", str(ws), "--data-dir", str(data_dir),
            "--json", "--yes"]  # fmt: skip
    assert main(args) == 0
    turn = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert turn["session_id"] == session and turn["exit_code"] == 0
    with ExperimentStore(ws, read_only=True) as store:
        assert len(store.messages(session)) == 4
    page = client.get(f"/chat?session={session}").text
    assert "same but with GAT" in page


def test_a_crash_inside_training_marks_the_run_failed(tmp_path, data_dir, monkeypatch):
    import tools.train

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(tools.train, "train", broken)
    ws = tmp_path / "ws"
    client = _client(ws, data_dir)
    answer = client.post("/api/action", json={"action": "train", "dataset": "karate",
                                              "model": "gcn", "epochs": 3},
                         headers={"x-autoglm-csrf": client.guard.csrf})  # fmt: skip
    job = _wait_job(client, answer.json()["job"])
    assert job["status"] == "failed" and "the GPU caught fire" in job["events"][-1]["message"]
    with ExperimentStore(ws, read_only=True) as store:
        (record,) = store.list_runs(None)
    assert record.status == "failed" and "the GPU caught fire" in record.error
    assert client.get("/").status_code == 200
    assert client.get(f"/runs/{record.id}").status_code == 200


def test_a_postgresql_study_opens_by_url(tmp_path):
    import os
    import urllib.parse
    import uuid

    import optuna

    url = os.environ.get("AUTOGLM_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL: set AUTOGLM_TEST_POSTGRES_URL (.ci/with_services.sh does)")
    from graph_ml.tune import open_storage

    name = f"ui-{uuid.uuid4().hex[:8]}"
    storage = open_storage(url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    study.add_trials([optuna.trial.create_trial(params={"x": v}, distributions={"x": x},
                                                value=v * v) for v in (0.1, 0.5, 0.9)])  # fmt: skip
    client = _client(tmp_path / "ws")
    query = "?storage=" + urllib.parse.quote(url, safe="")
    try:
        page = client.get("/studies" + query)
        assert page.status_code == 200 and name in page.text
        page = client.get(f"/studies/{name}{query}")
        assert page.status_code == 200 and f"{0.81:.4f}" in page.text
        assert client.get(f"/api/studies/{name}/plots/slice{query}").json()["data"]
    finally:
        optuna.delete_study(study_name=name, storage=storage)


def test_a_running_run_shows_live_curves_and_status(tmp_path):
    ws = tmp_path / "ws"
    with ExperimentStore(ws) as store:
        run_id = store.start_run("train", {"dataset": "karate", "model": "gcn", "epochs": 50})
        for epoch in range(3):
            store.log_epoch(run_id, 0, epoch, {"train_loss": 1.0 / (epoch + 1), "val_acc": 0.5})
        client = _client(ws)
        page = client.get(f"/runs/{run_id}").text
        assert 'id="live-curves"' in page and f"autoglm.followRun({run_id})" in page
        live = client.get(f"/api/runs/{run_id}/figures").json()
        assert live["status"] == "running"
        assert live["figures"][0]["data"][0]["y"] == [1.0, 0.5, 1.0 / 3]
        listed = client.get(f"/api/runs?ids={run_id}").json()["runs"]
        assert [r["status"] for r in listed] == ["running"]
        store.finish_run(run_id, "succeeded", metrics={"test_mean": 0.7})
    listed = client.get(f"/api/runs?ids={run_id}").json()["runs"]
    assert listed[0]["status"] == "succeeded" and listed[0]["metric"] == 0.7


def test_rerun_from_the_page_stores_a_child_run(tmp_path, data_dir):
    from tests.ui_helpers import cli

    ws = tmp_path / "ws"
    first = cli("train", "--dataset", "karate", "--model", "gcn", "--epochs", "4",
                "--workspace", str(ws), "--data-dir", str(data_dir), "--no-progress")  # fmt: skip
    client = _client(ws, data_dir)
    answer = client.post(
        f"/api/runs/{first['run_id']}/rerun", headers={"x-autoglm-csrf": client.guard.csrf}
    )
    job = _wait_job(client, answer.json()["job"])
    assert job["status"] == "succeeded", job
    (new,) = job["events"][-1]["run_ids"]
    with ExperimentStore(ws, read_only=True) as store:
        record = store.get_run(new)
    assert record.parent_id == first["run_id"] and record.config["epochs"] == 4
    assert f'href="/runs/{new}"' in client.get(f"/runs/{first['run_id']}").text  # its child
