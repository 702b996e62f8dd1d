"""The experiment store: one SQLite file (WAL mode) in the workspace.

Everything a run produces is kept here: its kind, fully resolved config, seeds, dataset
fingerprint, package versions, status, metrics, per-epoch curves, the cost of every step
(planning latency and tokens, tool wall time, peak memory, re-asks, rule decisions), and the
chat sessions that asked for it. Checkpoints live on disk beside it, in
`<workspace>/runs/<id>/`; Optuna studies in `<workspace>/studies.sqlite`.

Every write is one short transaction, so a process killed mid-run (even `kill -9`) leaves the
file consistent: what was committed stays, the rest never happened. A run whose process died
while it was `running` is marked `interrupted` the next time a store is opened.

Bad disks get one paragraph each (`core.storage.StorageError`), never a traceback: the file
is checked on open (SQLite's `quick_check`) and a damaged one is left untouched; a full disk
is named with its free space, and the runs this process had running are marked failed with
the space held back for that (`experiments.sqlite-reserve`, 1 MiB, given up only then); a
read-only workspace can be read (`read_only=True`: list, show, export, report), and a
command that must write says the workspace is read-only and why.

Typical use::

    store = ExperimentStore()  # AUTOGLM_WORKSPACE, else ./.autoglm
    with store.run("train", config.model_dump(), session_id=sid) as run_id:
        result = train(config, on_epoch=lambda s, e, m: store.log_epoch(run_id, s, e, m),
                       checkpoint_dir=store.checkpoint_dir(run_id))
        store.finish_run(run_id, "succeeded", metrics={...}, result=result.model_dump())
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.errors import SetupError, Terminated, UserInputError
from core.storage import (
    DISK_FULL_ERRNOS,
    StorageError,
    check_integrity,
    disk_full,
    os_error,
    read_only,
    sqlite_error,
)

SCHEMA_VERSION = 2  # 2: epochs are keyed by seed and fold (k-fold runs share a seed)
NO_FOLD = -1  # the fold column of a run without folds (a primary key column is never NULL)
DB_NAME = "experiments.sqlite"
STUDIES_NAME = "studies.sqlite"
RESERVE_NAME = DB_NAME + "-reserve"
# Space held back to record how runs ended when the disk fills: marking a run failed takes
# a few 4 KB pages; 1 MiB covers that, its steps and the chat's last messages.
RESERVE_BYTES = 2**20
ROLE = "the experiment store"
ELSEWHERE = "--workspace DIR (or AUTOGLM_WORKSPACE)"
# Several processes (a chat and a tuner) may write at once; SQLite serialises writers and a
# writer waits this long for the lock before giving up.
BUSY_TIMEOUT_S = 30.0
# A chat message is kept whole up to this; longer (a pasted document) keeps its start and
# says how long it was. The planner refuses requests far shorter than this anyway.
MAX_MESSAGE_CHARS = 16_000

RunKind = Literal["train", "tune", "compare", "inspect", "explain"]
RunStatus = Literal["running", "succeeded", "failed", "interrupted"]
RUN_KINDS: tuple[str, ...] = ("train", "tune", "compare", "inspect", "explain")
RUN_STATUSES: tuple[str, ...] = ("running", "succeeded", "failed", "interrupted")
FINAL_STATUSES: tuple[str, ...] = ("succeeded", "failed", "interrupted")

# Distribution names whose versions are recorded with every run (python is added apart).
TRACKED_PACKAGES = {
    "torch": "torch",
    "torch_geometric": "torch-geometric",
    "optuna": "optuna",
    "transformers": "transformers",
}

_EPOCHS_TABLE = """
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    seed INTEGER NOT NULL,
    fold INTEGER NOT NULL DEFAULT -1,
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, seed, fold, epoch)
);
"""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    session_id TEXT REFERENCES sessions(id),
    parent_id INTEGER REFERENCES runs(id),
    config TEXT NOT NULL,
    seeds TEXT NOT NULL,
    dataset_fingerprint TEXT,
    versions TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_started REAL,
    started_at REAL NOT NULL,
    finished_at REAL,
    metrics TEXT,
    result TEXT,
    error TEXT,
    facts TEXT
);
CREATE INDEX IF NOT EXISTS runs_session ON runs(session_id);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    data TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_session ON messages(session_id);
"""
    + _EPOCHS_TABLE
    + """
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER REFERENCES runs(id),
    session_id TEXT REFERENCES sessions(id),
    name TEXT NOT NULL,
    seconds REAL NOT NULL,
    peak_mb REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    reasks INTEGER,
    detail TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id);
"""
)


# Every column of `runs` but its (large) result, for listings.
_NO_RESULT = (
    "id, kind, status, session_id, parent_id, config, seeds, dataset_fingerprint, versions, "
    "host, pid, pid_started, started_at, finished_at, metrics, NULL AS result, error"
)


class RunRecord(BaseModel):
    """One stored run, as `get_run` returns it."""

    id: int
    kind: str
    status: str
    session_id: str | None = None
    parent_id: int | None = None
    config: dict[str, Any]
    seeds: list[int] = Field(default_factory=list)
    dataset_fingerprint: str | None = None
    versions: dict[str, str | None] = Field(default_factory=dict)
    host: str
    pid: int
    started_at: float
    finished_at: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    facts: dict[str, Any] | None = None  # `agent.facts`: what the explanation may say

    @property
    def seconds(self) -> float | None:
        """Wall time from start to finish, or None while it runs."""
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def title(self) -> str:
        """A short human label, e.g. `train gcn on cora`."""
        cfg = self.config
        model = cfg.get("model") or "/".join(map(str, cfg.get("models") or [])) or None
        parts = [self.kind, str(model) if model else None, cfg.get("dataset")]
        label = " ".join(p for p in parts[:2] if p)
        return f"{label} on {parts[2]}" if parts[2] else label

    def as_training(self) -> RunRecord | None:
        """This run as the training whose test results it holds: a train run itself, a tune
        run its best configuration retrained over seeds (its config and result), else None
        (a tune without retraining, an inspection, a comparison)."""
        if self.kind == "train":
            return self
        retrained = (self.result or {}).get("retrained") if self.kind == "tune" else None
        if not isinstance(retrained, dict) or not retrained.get("runs"):
            return None
        config = dict(retrained.get("config") or {})
        return self.model_copy(update={"kind": "train", "config": config, "result": retrained})

    def train_result(self) -> dict[str, Any]:
        """The `TrainResult` dict of a train run (also unwraps the train tool's output).

        Raises:
            UserInputError: the run holds no training result.
        """
        result = self.result or {}
        if "runs" not in result and isinstance(result.get("result"), dict):
            result = result["result"]
        if "runs" not in result:
            raise UserInputError(f"Run {self.id} holds no training result to explain.")
        return result


class EpochRecord(BaseModel):
    run_id: int
    seed: int
    fold: int | None = None  # k-fold graph classification only
    epoch: int
    metrics: dict[str, Any]


class StepRecord(BaseModel):
    """The cost of one step: planning, a rule check, a tool call..."""

    id: int
    run_id: int | None = None
    session_id: str | None = None
    name: str
    seconds: float
    peak_mb: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasks: int | None = None
    detail: Any = None
    created_at: float


class SessionRecord(BaseModel):
    id: str
    title: str
    created_at: float
    updated_at: float
    state: dict[str, Any] = Field(default_factory=dict)


class MessageRecord(BaseModel):
    id: int
    session_id: str
    role: str
    content: str
    run_id: int | None = None
    data: Any = None
    created_at: float


def resolve_workspace(workspace: str | Path | None = None) -> Path:
    """The workspace directory: the argument, else `AUTOGLM_WORKSPACE`, else `./.autoglm`."""
    if workspace is None:
        workspace = os.environ.get("AUTOGLM_WORKSPACE") or ".autoglm"
    return Path(workspace).expanduser().resolve()


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that decide a run's numbers (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in TRACKED_PACKAGES.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def _process_started(pid: int) -> float | None:
    """Creation time of process `pid`, or None if it does not exist (pid reuse guard)."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


STALE_ERROR = (
    "the process running it stopped before it finished (not yet recorded: the store was "
    "opened read-only)"
)
DISK_NEARLY_FULL_BYTES = 1 << 20  # less free than this when a run fails: the disk is why


def interruption(stop: KeyboardInterrupt) -> str:
    """How an interrupted run is recorded: Ctrl-C, or a SIGTERM (`core.errors.Terminated`)."""
    return "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted by the user"


def _described(error: BaseException) -> str:
    return str(error) if isinstance(error, StorageError) else f"{type(error).__name__}: {error}"


def _disk_nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < DISK_NEARLY_FULL_BYTES
    except OSError:
        return False


def capped(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text`, or its start and a note of its full length when longer than `limit`."""
    if len(text) <= limit:
        return text
    note = f"\n[cut: the message was {len(text)} characters; the first {{kept}} are kept]"
    kept = limit - len(note.format(kept=limit))
    return text[:kept] + note.format(kept=kept)


def _dumps(value: Any) -> str | None:
    # default=str keeps Paths and numpy scalars JSON-able instead of failing mid-run.
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def seeds_of(config: dict[str, Any]) -> list[int]:
    """The seeds a config runs: `seed` (first, default 0) and `seeds` (how many)."""
    seeds = config.get("seeds")
    if isinstance(seeds, list):
        return [int(s) for s in seeds]
    first = int(config.get("seed") or 0)
    count = int(seeds) if isinstance(seeds, int) and seeds > 0 else 1
    return list(range(first, first + count))


class _PeakMemory:
    """Samples this process's resident memory in a thread; `stop()` returns the peak in MB."""

    INTERVAL_S = 0.05

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(self.INTERVAL_S):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        return round(self._peak / 2**20, 1)


class ExperimentStore:
    """The SQLite experiment store of one workspace.

    Args:
        workspace: directory for the store, checkpoints, reports and studies; default
            `AUTOGLM_WORKSPACE`, else `./.autoglm`. Created if missing (unless read-only).
        read_only: open for reading only (list, show, export; a report written elsewhere):
            nothing is created or written, so a read-only workspace works. Runs whose
            process is gone are shown `interrupted` without being recorded so, and the cost
            of what a read-only command does (`log_step`) is not recorded.

    Raises:
        StorageError: the file is damaged, the disk full or read-only, the store locked
            (a `SetupError`: one paragraph saying what to do).
        SetupError: the file was written by a newer open-autoglm.
    """

    def __init__(self, workspace: str | Path | None = None, *, read_only: bool = False) -> None:
        self.workspace = resolve_workspace(workspace)
        self.path = self.workspace / DB_NAME
        self.read_only = read_only
        self._lock = threading.RLock()
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._running: set[int] = set()  # started here and not finished: failed on a full disk
        self._stale: set[int] = set()  # read-only: running runs whose process is gone
        self._recording_full = False
        if read_only:
            self._open_read_only()
            self.interrupted_on_open: list[int] = []
            self._stale = set(self._dead_runs())
        else:
            self._open_writable()
            self.interrupted_on_open = self.recover_interrupted()

    # -- plumbing ---------------------------------------------------------------------

    def _problem(self, error: sqlite3.Error, doing: str) -> StorageError:
        return sqlite_error(error, self.path, ROLE, ELSEWHERE, doing)

    def _connect(self, target: str, uri: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False,
            uri=uri,
        )  # fmt: skip
        conn.row_factory = sqlite3.Row
        return conn

    def _open_writable(self) -> None:
        try:
            self.workspace.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise os_error(
                error, self.workspace, "the workspace", "this command", ELSEWHERE
            ) from None
        self._conn = None
        try:
            self._conn = self._connect(str(self.path))
            check_integrity(self._conn, self.path, ROLE, ELSEWHERE)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is safe in WAL mode against process crashes; only power loss can drop
            # the last commits, never corrupt the file.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (StorageError, SetupError):
            self._close_quietly()
            raise
        except sqlite3.Error as error:
            self._close_quietly()
            raise self._problem(error, "this command") from None
        self._keep_reserve()

    def _open_read_only(self) -> None:
        if not self.path.is_file():  # no store yet: an empty one in memory, nothing on disk
            self._conn = self._connect(":memory:")
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            return
        uri = self.path.as_uri() + "?mode=ro"
        wal = self.path.with_name(DB_NAME + "-wal")
        self._conn = None
        try:
            try:
                self._conn = self._connect(uri, uri=True)
                check_integrity(self._conn, self.path, ROLE, ELSEWHERE)
            except sqlite3.OperationalError:
                # A read-only disk: SQLite cannot create the -shm index WAL readers need.
                # With no WAL left behind nothing else is pending, so read it as immutable.
                self._close_quietly()
                if wal.is_file() and wal.stat().st_size:
                    raise
                self._conn = self._connect(uri + "&immutable=1", uri=True)
                check_integrity(self._conn, self.path, ROLE, ELSEWHERE)
            version = self.schema_version
        except StorageError:
            self._close_quietly()
            raise
        except sqlite3.Error as error:
            self._close_quietly()
            raise self._problem(error, "reading it") from None
        if version != SCHEMA_VERSION:  # older: a migration must write; newer: it says so
            self._conn.close()
            self.read_only = False
            self._open_writable()

    def _close_quietly(self) -> None:
        if getattr(self, "_conn", None) is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _keep_reserve(self) -> None:
        """Hold `RESERVE_BYTES` beside the store, if the disk has them to spare."""
        reserve = self.workspace / RESERVE_NAME
        if reserve.is_file():
            return
        try:
            if shutil.disk_usage(self.workspace).free < 4 * RESERVE_BYTES:
                return  # nearly full already: do not be the one to fill it
            with open(reserve, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, RESERVE_BYTES)
        except OSError:
            with contextlib.suppress(OSError):
                reserve.unlink()

    def _release_reserve(self) -> bool:
        try:
            (self.workspace / RESERVE_NAME).unlink()
        except OSError:
            return False
        return True

    @contextlib.contextmanager
    def _tx(self, doing: str = "recording a change") -> Iterator[sqlite3.Connection]:
        """One short write transaction; taken IMMEDIATE so writers never deadlock. A sqlite
        error becomes a `StorageError`; a full disk first fails this process's runs."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:  # SQLite may have rolled back already
                        with contextlib.suppress(sqlite3.Error):
                            self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as error:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                problem = self._problem(error, doing)
                if problem.kind == "full":
                    problem = self._fail_running(problem)
                raise problem from None

    def _fail_running(self, problem: StorageError) -> StorageError:
        """The disk is full: give up the reserve and mark this process's running runs failed,
        so none is left `running`. The returned error says which were marked."""
        if self._recording_full or not self._running:
            return problem
        self._recording_full = True
        marked = []
        try:
            released = self._release_reserve()
            for run_id in sorted(self._running):
                try:
                    self.finish_run(run_id, "failed", error=str(problem))
                except StorageError:
                    break  # not even that fits: the next start marks it interrupted
                marked.append(run_id)
        finally:
            self._recording_full = False
        if not marked:
            return problem
        runs = ", ".join(map(str, marked))
        how = " with the space held back for that" if released else ""
        return StorageError(
            f"{problem} Run {runs} was marked failed{how}.",
            problem.kind,
            problem.path,
        )

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise self._problem(error, "reading it") from None

    def _migrate(self) -> None:
        with self._lock:
            # executescript commits any open transaction first, so it runs its own.
            self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        with self._tx("upgrading it") as conn:
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(runs)")}
            if "facts" not in columns:  # added with agent.facts; older stores gain it empty
                conn.execute("ALTER TABLE runs ADD COLUMN facts TEXT")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row["version"] > SCHEMA_VERSION:
                raise SetupError(
                    f"{self.path} was written by a newer open-autoglm (schema {row['version']}, "
                    f"this one reads {SCHEMA_VERSION}); upgrade open-autoglm."
                )
            elif row["version"] < 2:
                # Schema 1 keyed epochs by seed alone; its rows keep their seed, without fold.
                conn.execute("ALTER TABLE epochs RENAME TO epochs_v1")
                conn.execute(_EPOCHS_TABLE)
                conn.execute(
                    "INSERT INTO epochs (run_id, seed, epoch, metrics) "
                    "SELECT run_id, seed, epoch, metrics FROM epochs_v1"
                )
                conn.execute("DROP TABLE epochs_v1")
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    @property
    def schema_version(self) -> int:
        return int(self._query("SELECT version FROM schema_version")[0]["version"])

    @property
    def journal_mode(self) -> str:
        return str(self._query("PRAGMA journal_mode")[0][0])

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    def __enter__(self) -> ExperimentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ------------------------------------------------------------------------

    def checkpoint_dir(self, run_id: int) -> Path:
        """`<workspace>/runs/<id>/`, created: where a run's checkpoints go.

        Raises:
            StorageError: it cannot be created or written (full, read-only).
        """
        return self._writable_dir(self.workspace / "runs" / str(int(run_id)), "checkpoints")

    def reports_dir(self, run_id: int) -> Path:
        """`<workspace>/reports/<id>/`, created: where `autoglm report` writes.

        Raises:
            StorageError: it cannot be created or written; the message points to `--out`.
        """
        return self._writable_dir(
            self.workspace / "reports" / str(int(run_id)), "the report", "--out DIR"
        )

    def _writable_dir(self, path: Path, what: str, elsewhere: str = ELSEWHERE) -> Path:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise os_error(error, path, f"where {what} go", f"writing {what}", elsewhere) from None
        if not os.access(path, os.W_OK) or os.statvfs(path).f_flag & os.ST_RDONLY:
            raise read_only(path, f"where {what} go", f"writing {what}", elsewhere)
        return path

    @property
    def studies_path(self) -> Path:
        return self.workspace / STUDIES_NAME

    def studies_url(self) -> str:
        """Optuna storage URL of the studies database beside the store."""
        return f"sqlite:///{self.studies_path}"

    # -- runs -------------------------------------------------------------------------

    def recover_interrupted(self) -> list[int]:
        """Mark `running` runs whose process is gone as `interrupted`; returns their ids.

        A run belongs to a live process only if a process with its pid exists on this host
        and started when the run's process did (a reused pid does not count). Runs started
        on another host sharing the workspace are left alone.
        """
        dead = self._dead_runs()
        for run_id in dead:
            with self._tx("marking interrupted runs") as conn:
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?, error = COALESCE("
                    "error, 'the process running it stopped before it finished') "
                    "WHERE id = ? AND status = 'running'",
                    (time.time(), run_id),
                )
        return dead

    def _dead_runs(self) -> list[int]:
        """Runs recorded `running` on this host whose process is gone."""
        rows = self._query("SELECT id, host, pid, pid_started FROM runs WHERE status = 'running'")
        dead = []
        for row in rows:
            if row["host"] != self._host:
                continue
            started = _process_started(row["pid"])
            alive = started is not None and (
                row["pid_started"] is None or abs(started - row["pid_started"]) < 1.0
            )
            if not alive:
                dead.append(int(row["id"]))
        return dead

    def start_run(
        self,
        kind: str,
        config: dict[str, Any],
        session_id: str | None = None,
        dataset_fingerprint: str | None = None,
        parent_id: int | None = None,
        seeds: list[int] | None = None,
    ) -> int:
        """Record a new `running` run and return its id.

        Args:
            kind: train, tune, compare, inspect or explain.
            config: the fully resolved config (JSON-able dict).
            session_id: the chat session that asked for it, if any.
            dataset_fingerprint: `LoadedDataset.fingerprint` (can be set later).
            parent_id: the run this one derives from (a rerun, a tune's retrain, a compare's
                members).
            seeds: the seeds used; default from the config's `seed` and `seeds`.
        """
        if kind not in RUN_KINDS:
            raise UserInputError(f"Unknown run kind {kind!r}; choose from: {', '.join(RUN_KINDS)}.")
        if not isinstance(config, dict):
            raise TypeError("config must be a dict (use model_dump() on a pydantic config)")
        seeds = seeds if seeds is not None else seeds_of(config)
        with self._tx(f"starting a {kind} run (nothing was started)") as conn:
            cursor = conn.execute(
                "INSERT INTO runs (kind, status, session_id, parent_id, config, seeds, "
                "dataset_fingerprint, versions, host, pid, pid_started, started_at) "
                "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    session_id,
                    parent_id,
                    _dumps(config),
                    _dumps([int(s) for s in seeds]),
                    dataset_fingerprint,
                    _dumps(package_versions()),
                    self._host,
                    self._pid,
                    _process_started(self._pid),
                    time.time(),
                ),
            )
            run_id = int(cursor.lastrowid)
        self._running.add(run_id)
        return run_id

    def set_dataset_fingerprint(self, run_id: int, fingerprint: str) -> None:
        """Record the dataset fingerprint once the data is loaded."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE runs SET dataset_fingerprint = ? WHERE id = ?", (fingerprint, run_id)
            )

    def set_facts(self, run_id: int, facts: dict[str, Any] | None) -> None:
        """Store the run's facts (`agent.facts`), which its explanations are rendered from."""
        if self.read_only:
            return
        with self._tx(f"the facts of run {run_id}") as conn:
            conn.execute("UPDATE runs SET facts = ? WHERE id = ?", (_dumps(facts), run_id))

    def update_config(self, run_id: int, config: dict[str, Any]) -> None:
        """Replace the stored config (e.g. with the trainer's fully resolved one)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE runs SET config = ?, seeds = ? WHERE id = ?",
                (_dumps(config), _dumps(seeds_of(config)), run_id),
            )

    def log_epoch(
        self,
        run_id: int,
        seed: int,
        epoch: int,
        metrics: dict[str, Any],
        fold: int | None = None,
    ) -> None:
        """Store one epoch's metrics for one seed (and fold, for k-fold graph classification);
        a repeated epoch replaces the old row."""
        with self._tx(f"epoch {epoch} of run {run_id}") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO epochs (run_id, seed, fold, epoch, metrics) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    run_id,
                    int(seed),
                    NO_FOLD if fold is None else int(fold),
                    int(epoch),
                    _dumps(metrics),
                ),  # fmt: skip
            )

    def log_step(
        self,
        run_id: int | None,
        name: str,
        seconds: float,
        peak_mb: float | None = None,
        detail: Any = None,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        reasks: int | None = None,
        session_id: str | None = None,
    ) -> int:
        """Record the cost of one step and return its id.

        Returns 0 and records nothing when the store is open read-only.

        Args:
            run_id: the run it belongs to (None for a step before any run, e.g. a refused
                plan; give `session_id` then).
            name: plan, rule, tool:train, explain, ...
            seconds: wall time.
            peak_mb: peak resident memory during the step, in MB.
            detail: JSON-able detail, e.g. the rule decisions `[{"rule": ..., "reason": ...}]`.
            prompt_tokens, completion_tokens, reasks: LLM costs of a planning step.
            session_id: the chat session, if any.
        """
        if self.read_only:
            return 0  # a read-only command's cost (a report); nowhere to keep it
        with self._tx(f"the cost of step {name}") as conn:
            cursor = conn.execute(
                "INSERT INTO steps (run_id, session_id, name, seconds, peak_mb, prompt_tokens, "
                "completion_tokens, reasks, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    session_id,
                    name,
                    float(seconds),
                    peak_mb,
                    prompt_tokens,
                    completion_tokens,
                    reasks,
                    _dumps(detail),
                    time.time(),
                ),
            )
            return int(cursor.lastrowid)

    @contextlib.contextmanager
    def step(
        self, run_id: int | None, name: str, session_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Time a step and sample its peak resident memory, then `log_step` it.

        Yields a dict the caller may fill with `detail`, `prompt_tokens`,
        `completion_tokens`, `reasks`; they are stored with the step. The step is logged
        even when the body raises (its cost was paid).
        """
        extra: dict[str, Any] = {}
        sampler = _PeakMemory()
        start = time.perf_counter()
        sampler.start()
        try:
            yield extra
        finally:
            peak = sampler.stop()
            self.log_step(
                run_id,
                name,
                time.perf_counter() - start,
                peak_mb=peak,
                detail=extra.get("detail"),
                prompt_tokens=extra.get("prompt_tokens"),
                completion_tokens=extra.get("completion_tokens"),
                reasks=extra.get("reasks"),
                session_id=session_id,
            )

    def attach_steps(self, step_ids: list[int], run_id: int) -> None:
        """Attach steps logged before their run existed (planning, rules) to that run."""
        with self._tx() as conn:
            conn.executemany(
                "UPDATE steps SET run_id = ? WHERE id = ?", [(run_id, s) for s in step_ids]
            )

    def finish_run(
        self,
        run_id: int,
        status: str,
        metrics: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Close a run with its final status, summary metrics, full result and error text."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"final status must be one of {FINAL_STATUSES}, not {status!r}")
        with self._tx(f"the end of run {run_id} ({status})") as conn:
            updated = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, metrics = COALESCE(?, metrics), "
                "result = COALESCE(?, result), error = ? WHERE id = ?",
                (status, time.time(), _dumps(metrics), _dumps(result), error, run_id),
            ).rowcount
        self._running.discard(int(run_id))
        if not updated:
            raise UserInputError(f"No run {run_id} in {self.path}.")

    @contextlib.contextmanager
    def run(self, kind: str, config: dict[str, Any], **kwargs: Any) -> Iterator[int]:
        """`start_run` as a context manager: an exception marks the run failed (or
        interrupted for Ctrl-C) and propagates; a run left `running` is marked succeeded."""
        run_id = self.start_run(kind, config, **kwargs)
        try:
            yield run_id
        except KeyboardInterrupt as stop:
            self.finish_run(run_id, "interrupted", error=interruption(stop))
            raise
        except BaseException as error:
            failure = self.full_disk_failure(error, run_id)
            try:
                self.finish_run(run_id, "failed", error=str(failure or _described(error)))
            except StorageError as unrecorded:
                if failure is None and unrecorded.kind != "full":
                    raise
                failure = failure or unrecorded  # the disk filled up: say that, once
            if failure is not None:
                raise failure from None
            raise
        if self.get_run(run_id).status == "running":
            self.finish_run(run_id, "succeeded")

    def full_disk_failure(self, error: BaseException, run_id: int) -> StorageError | None:
        """`error` as the full disk it is, or None. A full disk shows as many errors: ours,
        an OSError, or a library's own (torch.save's RuntimeError)."""
        if isinstance(error, StorageError):
            return error if error.kind == "full" else None
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            pass
        elif not isinstance(error, Exception) or not _disk_nearly_full(self.workspace):
            return None
        what = f"run {run_id} stopped ({_described(error)})"
        return disk_full(self.workspace, what, ELSEWHERE)

    def _record(self, row: sqlite3.Row) -> RunRecord:
        stale = row["id"] in self._stale  # read-only: its process is gone, unrecorded
        return RunRecord(
            id=row["id"],
            kind=row["kind"],
            status="interrupted" if stale else row["status"],
            session_id=row["session_id"],
            parent_id=row["parent_id"],
            config=_loads(row["config"]),
            seeds=_loads(row["seeds"]),
            dataset_fingerprint=row["dataset_fingerprint"],
            versions=_loads(row["versions"]),
            host=row["host"],
            pid=row["pid"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            metrics=_loads(row["metrics"]) or {},
            result=_loads(row["result"]),
            error=row["error"] or (STALE_ERROR if stale else None),
            facts=_loads(row["facts"]) if "facts" in row.keys() else None,
        )

    def get_run(self, run_id: int) -> RunRecord:
        """The run with this id.

        Raises:
            UserInputError: there is no such run.
        """
        rows = self._query("SELECT * FROM runs WHERE id = ?", (int(run_id),))
        if not rows:
            last = self._query("SELECT MAX(id) FROM runs")[0][0]
            hint = f"ids go from 1 to {last}" if last else "the store has no runs yet"
            raise UserInputError(
                f"No experiment {run_id} in {self.path} ({hint}); `autoglm experiments list` "
                "shows them."
            )
        return self._record(rows[0])

    def list_runs(
        self,
        limit: int | None = 50,
        session_id: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        with_result: bool = True,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one session, kind or status.

        `with_result=False` leaves each run's full result unread (`result` is None): a
        listing of thousands of runs (`autoglm ui`) needs only their metrics.
        """
        where, params = [], []
        for column, value in (("session_id", session_id), ("kind", kind), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM runs" if with_result else f"SELECT {_NO_RESULT} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._record(row) for row in self._query(sql, tuple(params))]

    def children(self, run_id: int) -> list[RunRecord]:
        """Runs whose parent is `run_id`, oldest first."""
        rows = self._query("SELECT * FROM runs WHERE parent_id = ? ORDER BY id", (run_id,))
        return [self._record(row) for row in rows]

    def epochs(self, run_id: int, seed: int | None = None) -> list[EpochRecord]:
        """Per-epoch metrics of a run, by seed then epoch."""
        sql, params = "SELECT * FROM epochs WHERE run_id = ?", [run_id]
        if seed is not None:
            sql += " AND seed = ?"
            params.append(seed)
        rows = self._query(sql + " ORDER BY seed, fold, epoch", tuple(params))
        return [
            EpochRecord(
                run_id=r["run_id"],
                seed=r["seed"],
                fold=None if r["fold"] == NO_FOLD else r["fold"],
                epoch=r["epoch"],
                metrics=_loads(r["metrics"]),
            )
            for r in rows
        ]

    def curve_runs(self, run_id: int) -> list[dict[str, Any]]:
        """Per-epoch metrics of each training run (seed, and fold where k-fold), in order:
        `[{"seed": s, "fold": f, "curves": [{"epoch": e, ...metrics}, ...]}, ...]`."""
        out: dict[tuple[int, int | None], list[dict[str, Any]]] = {}
        for rec in self.epochs(run_id):
            out.setdefault((rec.seed, rec.fold), []).append({"epoch": rec.epoch, **rec.metrics})
        return [{"seed": s, "fold": f, "curves": c} for (s, f), c in out.items()]

    def curves(self, run_id: int) -> dict[Any, list[dict[str, Any]]]:
        """Per-epoch metrics grouped by seed: `{seed: [{"epoch": e, ...metrics}, ...]}`
        (keyed `(seed, fold)` for k-fold runs)."""
        return {
            r["seed"] if r["fold"] is None else (r["seed"], r["fold"]): r["curves"]
            for r in self.curve_runs(run_id)
        }

    def steps(self, run_id: int | None = None, session_id: str | None = None) -> list[StepRecord]:
        """Cost records of a run (or of a session), in the order they were logged."""
        if run_id is not None:
            rows = self._query("SELECT * FROM steps WHERE run_id = ? ORDER BY id", (run_id,))
        else:
            rows = self._query(
                "SELECT * FROM steps WHERE session_id = ? ORDER BY id", (session_id,)
            )
        return [StepRecord(**{**dict(r), "detail": _loads(r["detail"])}) for r in rows]

    # -- sessions ---------------------------------------------------------------------

    def create_session(self, title: str = "chat") -> str:
        """Start a chat session and return its id (12 hex characters)."""
        session_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO sessions (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (session_id, title, now, now),
            )
        return session_id

    def get_session(self, session_id: str) -> SessionRecord:
        """The session with this id (a unique prefix is enough).

        Raises:
            UserInputError: no session, or the prefix is ambiguous.
        """
        rows = self._query(
            "SELECT * FROM sessions WHERE id = ? OR id LIKE ? ORDER BY id = ? DESC",
            (session_id, f"{session_id}%", session_id),
        )
        if not rows or (len(rows) > 1 and rows[0]["id"] != session_id):
            what = "No session" if not rows else "More than one session starts with"
            raise UserInputError(
                f"{what} {session_id!r} in {self.path}; `autoglm chat --list` shows them."
            )
        row = rows[0]
        return SessionRecord(**{**dict(row), "state": _loads(row["state"]) or {}})

    def set_session_state(self, session_id: str, state: dict[str, Any]) -> None:
        """Save the session's JSON state (what follow-ups resolve against)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE sessions SET state = ?, updated_at = ? WHERE id = ?",
                (_dumps(state), time.time(), session_id),
            )

    def list_sessions(self, limit: int | None = 50) -> list[SessionRecord]:
        """Sessions, most recently active first."""
        sql, params = "SELECT * FROM sessions ORDER BY updated_at DESC", ()
        if limit is not None:
            sql, params = sql + " LIMIT ?", (int(limit),)
        return [
            SessionRecord(**{**dict(r), "state": _loads(r["state"]) or {}})
            for r in self._query(sql, params)
        ]

    def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        run_id: int | None = None,
        data: Any = None,
    ) -> int:
        """Append a message (role user/assistant/tool/system) to a session; returns its id.

        A message over `MAX_MESSAGE_CHARS` is stored as its start plus a note of its length.
        """
        now = time.time()
        content = capped(content)
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (session_id, role, content, run_id, data, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, role, content, run_id, _dumps(data), now),
            )
            conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, session_id))
            return int(cursor.lastrowid)

    def messages(self, session_id: str) -> list[MessageRecord]:
        """A session's messages, oldest first."""
        rows = self._query("SELECT * FROM messages WHERE session_id = ? ORDER BY id", (session_id,))
        return [MessageRecord(**{**dict(r), "data": _loads(r["data"])}) for r in rows]
