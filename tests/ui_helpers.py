"""Shared by the UI tests and `bench/ui_load.py`: a workspace with real runs, and a real
`autoglm ui` process on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 120.0

# A scripted planner for the chat (the real model is measured elsewhere): every request
# is planned as the training the browser test types.
STUB_SERVER = """
import json, sys
from pathlib import Path
from agent.llm.fake import FakeBackend
from agent.ui.app import serve
reply = json.dumps({"actions": [{"action": "train", "dataset": "karate", "model": "gcn",
                                 "epochs": 20}]})
serve(Path(sys.argv[1]), port=int(sys.argv[2]), data_dir=Path(sys.argv[3]),
      backend_factory=lambda: FakeBackend(fn=lambda messages: reply))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until_up(process: subprocess.Popen, base: str, token: str | None = None) -> None:
    deadline = time.monotonic() + STARTUP_S
    suffix = f"?token={token}" if token else ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"autoglm ui exited with {process.returncode}: "
                               f"{process.stdout.read() if process.stdout else ''}")  # fmt: skip
        with contextlib.suppress(OSError):
            status, _ = get(base + "/api/health" + suffix)
            if status in (200, 403):
                return
        time.sleep(0.3)
    raise RuntimeError("autoglm ui did not answer in time")


@contextlib.contextmanager
def ui_process(args: list[str], port: int, token: str | None = None,
               script: str | None = None) -> Iterator[str]:  # fmt: skip
    """`python -m agent.cli ui ARGS --port PORT` (or `script ARGS`) until the block ends;
    yields its base URL."""
    command = (
        [sys.executable, "-c", script, *args]
        if script
        else [sys.executable, "-m", "agent.cli", "ui", *args, "--port", str(port)]
    )
    process = subprocess.Popen(command, env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, base, token)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cli(*args: str) -> dict:
    """`python -m agent.cli ARGS --json` in-process; its JSON output."""
    import io
    from contextlib import redirect_stdout

    from agent.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*args, "--json"])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def make_workspace(workspace: Path, data_dir: Path) -> dict:
    """Two karate trainings (GCN and GAT, 2 seeds each) and a 3-trial tune: real runs."""
    common = ["--workspace", str(workspace), "--data-dir", str(data_dir), "--no-progress"]
    gcn = cli("train", "--dataset", "karate", "--model", "gcn", "--epochs", "12",
              "--seeds", "2", *common)  # fmt: skip
    gat = cli("train", "--dataset", "karate", "--model", "gat", "--epochs", "12",
              "--seeds", "2", *common)  # fmt: skip
    tune = cli("tune", "--dataset", "karate", "--model", "gcn", "--trials", "3", "--epochs",
               "5", "--seeds", "1", "--workspace", str(workspace), "--data-dir", str(data_dir),
               "--no-progress")  # fmt: skip
    return {"gcn": gcn, "gat": gat, "tune": tune}
