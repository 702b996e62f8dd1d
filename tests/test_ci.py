"""`.ci/`: the services CI starts are stopped again, also when the tests fail.

Starts a real throwaway PostgreSQL (its own directory and port, not the shared one) through
`.ci/with_services.sh`, the wrapper `.ci/run` runs the tests in, and checks it is gone after
a failing command.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _postgres_bin() -> Path | None:
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / "pg_ctl").is_file():
            return directory
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_postgres_is_stopped_after_a_failing_test_run():
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    parent = Path(tempfile.mkdtemp(prefix="autoglm-ci-test-", dir="/tmp"))
    parent.chmod(0o755)  # the server runs as `postgres` when we are root
    port = _free_port()
    env = {**os.environ, "AUTOGLM_PG_DIR": str(parent / "data"), "AUTOGLM_PG_PORT": str(port)}
    ready = f"{bindir}/pg_isready -q -h 127.0.0.1 -p {port}"
    probe = f'{ready} && echo "up: $AUTOGLM_TEST_POSTGRES_URL"'
    try:
        done = subprocess.run(
            ["bash", str(ROOT / ".ci" / "with_services.sh"), "bash", "-c", f"{probe}; exit 7"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert "up: postgresql://" in done.stdout and f":{port}/" in done.stdout, done.stderr
        assert done.returncode == 7  # the tests' own exit status, not the cleanup's
        still = subprocess.run(ready.split())
        assert still.returncode != 0, "PostgreSQL is still running after the failed run"
        assert not (parent / "data" / "postmaster.pid").exists()
    finally:
        if (parent / "data" / "postmaster.pid").exists():  # a failed test must not leak it
            subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "stop"], env=env)
        shutil.rmtree(parent, ignore_errors=True)
