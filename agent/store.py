"""The experiment store: one SQLite file (WAL mode) in the workspace.

Everything a run produces is kept here: its kind, fully resolved config, seeds, dataset
fingerprint, package versions, status, metrics, per-epoch curves, the cost of every step
(planning latency and tokens, tool wall time, peak memory, re-asks, rule decisions), and the
chat sessions that asked for it. Checkpoints live on disk beside it, in
`<workspace>/runs/<id>/`; Optuna studies in `<workspace>/studies.sqlite`.

Every write is one short transaction, so a process killed mid-run (even `kill -9`) leaves the
file consistent: what was committed stays, the rest never happened. A run whose process died
while it was `running` is marked `interrupted` the next time a store is opened.

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

from core.errors import SetupError, UserInputError

SCHEMA_VERSION = 2  # 2: epochs are keyed by seed and fold (k-fold runs share a seed)
NO_FOLD = -1  # the fold column of a run without folds (a primary key column is never NULL)
DB_NAME = "experiments.sqlite"
STUDIES_NAME = "studies.sqlite"
# Several processes (a chat and a tuner) may write at once; SQLite serialises writers and a
# writer waits this long for the lock before giving up.
BUSY_TIMEOUT_S = 30.0

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
    error TEXT
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
            `AUTOGLM_WORKSPACE`, else `./.autoglm`. Created if missing.

    Raises:
        SetupError: the workspace cannot be created or the file is not a usable store.
    """

    def __init__(self, workspace: str | Path | None = None) -> None:
        self.workspace = resolve_workspace(workspace)
        try:
            self.workspace.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SetupError(
                f"Cannot create the workspace {self.workspace}: {error}. Set AUTOGLM_WORKSPACE "
                "to a writable directory."
            ) from error
        self.path = self.workspace / DB_NAME
        self._lock = threading.RLock()
        self._host = socket.gethostname()
        self._pid = os.getpid()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is safe in WAL mode against process crashes; only power loss can drop
            # the last commits, never corrupt the file.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as error:
            raise SetupError(
                f"{self.path} is not a usable experiment store ({error}). Move it away or point "
                "AUTOGLM_WORKSPACE at another directory."
            ) from error
        self.interrupted_on_open = self.recover_interrupted()

    # -- plumbing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; taken IMMEDIATE so writers never deadlock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._lock:
            # executescript commits any open transaction first, so it runs its own.
            self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        with self._tx() as conn:
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
            self._conn.close()

    def __enter__(self) -> ExperimentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ------------------------------------------------------------------------

    def checkpoint_dir(self, run_id: int) -> Path:
        """`<workspace>/runs/<id>/`, created: where a run's checkpoints go."""
        path = self.workspace / "runs" / str(int(run_id))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def reports_dir(self, run_id: int) -> Path:
        """`<workspace>/reports/<id>/`, created: where `autoglm report` writes."""
        path = self.workspace / "reports" / str(int(run_id))
        path.mkdir(parents=True, exist_ok=True)
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
        for run_id in dead:
            with self._tx() as conn:
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?, error = COALESCE("
                    "error, 'the process running it stopped before it finished') "
                    "WHERE id = ? AND status = 'running'",
                    (time.time(), run_id),
                )
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
        with self._tx() as conn:
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
            return int(cursor.lastrowid)

    def set_dataset_fingerprint(self, run_id: int, fingerprint: str) -> None:
        """Record the dataset fingerprint once the data is loaded."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE runs SET dataset_fingerprint = ? WHERE id = ?", (fingerprint, run_id)
            )

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
        with self._tx() as conn:
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
        with self._tx() as conn:
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
        with self._tx() as conn:
            updated = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, metrics = COALESCE(?, metrics), "
                "result = COALESCE(?, result), error = ? WHERE id = ?",
                (status, time.time(), _dumps(metrics), _dumps(result), error, run_id),
            ).rowcount
        if not updated:
            raise UserInputError(f"No run {run_id} in {self.path}.")

    @contextlib.contextmanager
    def run(self, kind: str, config: dict[str, Any], **kwargs: Any) -> Iterator[int]:
        """`start_run` as a context manager: an exception marks the run failed (or
        interrupted for Ctrl-C) and propagates; a run left `running` is marked succeeded."""
        run_id = self.start_run(kind, config, **kwargs)
        try:
            yield run_id
        except KeyboardInterrupt:
            self.finish_run(run_id, "interrupted", error="interrupted by the user")
            raise
        except BaseException as error:
            self.finish_run(run_id, "failed", error=f"{type(error).__name__}: {error}")
            raise
        if self.get_run(run_id).status == "running":
            self.finish_run(run_id, "succeeded")

    def _record(self, row: sqlite3.Row) -> RunRecord:
        return RunRecord(
            id=row["id"],
            kind=row["kind"],
            status=row["status"],
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
            error=row["error"],
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
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one session, kind or status."""
        where, params = [], []
        for column, value in (("session_id", session_id), ("kind", kind), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM runs"
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
        """Append a message (role user/assistant/tool/system) to a session; returns its id."""
        now = time.time()
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
