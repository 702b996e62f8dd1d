"""The files the application keeps (the experiment store, Optuna's study database, reports,
checkpoints) on disks that fail: damaged, full, read-only, locked.

Every such failure becomes one `StorageError` paragraph: what happened, to which file, and
what to do. A damaged SQLite file is found on open by `check_integrity` (SQLite's
`quick_check`) rather than halfway through a command, and nothing is written to it.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import sqlite3
from pathlib import Path

from core.errors import SetupError

QUICK_CHECK_ROWS = 3  # the first problems SQLite names are enough to say where it is damaged
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class StorageError(SetupError):
    """A kept file cannot be read or written; `kind` says why.

    Kinds: damaged, full, read-only, locked, io.
    """

    def __init__(self, message: str, kind: str, path: Path) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


def human_bytes(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def free_space(path: Path) -> str:
    """`'12.0 MB free'` on the disk holding `path` (its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return "free space unknown"
    text = f"{human_bytes(free)} free"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        text += f"; this process may write files of at most {human_bytes(limit)} (ulimit -f)"
    return text


def read_only_reason(path: Path) -> str | None:
    """Why `path` (a file or the directory it would be in) cannot be written, or None."""
    directory = path if path.is_dir() else path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f"the file system holding {directory} is mounted read-only"
    except OSError:
        pass
    if not os.access(directory, os.W_OK):
        return f"this user may not write in {directory}"
    if path.is_file() and not os.access(path, os.W_OK):
        return f"this user may not write {path}"
    return None


def _sqlite_kind(error: BaseException) -> str:
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error).lower()
    if (
        name in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
        or "malformed" in text
        or ("not a database" in text)
    ):
        return "damaged"
    if name == "SQLITE_FULL" or "disk is full" in text:
        return "full"
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return "read-only"
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "database is locked" in text:
        return "locked"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return "cantopen"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
        return "io"
    return "other"


def sqlite_error(
    error: BaseException, path: Path, role: str, elsewhere: str, doing: str = "using it"
) -> StorageError:
    """One paragraph for a sqlite3 error on `path`.

    Args:
        error: the `sqlite3.Error` (or SQLAlchemy's wrapper of one).
        path: the database file.
        role: what it is, e.g. "the experiment store".
        elsewhere: how to use another location, e.g. "--workspace DIR (AUTOGLM_WORKSPACE)".
        doing: what was being done, e.g. "recording run 4".
    """
    error = getattr(error, "orig", None) or error  # SQLAlchemy wraps the sqlite3 error
    kind = _sqlite_kind(error)
    if kind in ("cantopen", "io", "other"):
        reason = read_only_reason(path)
        if reason is not None:
            kind = "read-only"
        elif kind == "io" and _nearly_full(path):
            kind = "full"
    if kind == "damaged":
        return damaged(path, role, str(error), elsewhere)
    if kind == "full":
        return disk_full(path, f"{doing} could not be written to {path.name}", elsewhere)
    if kind == "read-only":
        return read_only(path, role, doing, elsewhere)
    if kind == "locked":
        return StorageError(
            f"{path} ({role}) stayed locked by another process past the wait for it while "
            f"{doing}. Let the other autoglm finish (or stop it), then retry.",
            "locked",
            path,
        )
    return StorageError(
        f"{path} ({role}) failed while {doing}: {error}. Check the disk ({free_space(path)}) "
        f"and retry, or use another location: {elsewhere}.",
        "io",
        path,
    )


def _nearly_full(path: Path) -> bool:
    probe = path if path.exists() else path.parent
    try:
        return shutil.disk_usage(probe).free < 1 << 20
    except OSError:
        return False


def damaged(path: Path, role: str, detail: str, elsewhere: str) -> StorageError:
    detail = " ".join(detail.split())  # quick_check's lines, on one line
    companions = f" (with its {path.name}-wal and {path.name}-shm files, if any)"
    return StorageError(
        f"{path} is damaged ({detail}); it is {role}, and nothing was written to it. "
        f"Restore it from a backup; or recover what it holds with `sqlite3 {path} .recover "
        f"| sqlite3 {path}.recovered`, then move the recovered file in its place; or move it "
        f"away{companions} to start afresh, e.g. `mv {path} {path}.damaged`; or use another "
        f"location: {elsewhere}.",
        "damaged",
        path,
    )


def disk_full(path: Path, what: str, elsewhere: str) -> StorageError:
    directory = path if path.is_dir() else path.parent
    return StorageError(
        f"The disk holding {directory} is full ({free_space(directory)}): {what}. Free some "
        f"space there, or use another disk: {elsewhere}.",
        "full",
        path,
    )


def read_only(path: Path, role: str, doing: str, elsewhere: str) -> StorageError:
    reason = read_only_reason(path) or "the file cannot be written"
    return StorageError(
        f"{path} is read-only here: {reason}. It is {role}, and {doing} must write to it. "
        f"Make it writable, or use a writable location: {elsewhere}. (Reading it works: "
        "`autoglm experiments list`, `show` and `export`, `report --out DIR`.)",
        "read-only",
        path,
    )


def os_error(error: OSError, path: Path, role: str, doing: str, elsewhere: str) -> StorageError:
    """One paragraph for an OSError on a kept file or directory (full, read-only, other)."""
    if error.errno in DISK_FULL_ERRNOS:
        return disk_full(path, f"{doing} could not be written", elsewhere)
    if error.errno in READ_ONLY_ERRNOS or read_only_reason(path) is not None:
        return read_only(path, role, doing, elsewhere)
    return StorageError(
        f"Cannot use {path} ({role}) for {doing}: {error.strerror or error}. Use another "
        f"location: {elsewhere}.",
        "io",
        path,
    )


def check_integrity(conn: sqlite3.Connection, path: Path, role: str, elsewhere: str) -> None:
    """SQLite's `quick_check` (every page's structure, not index contents: fast).

    Raises:
        StorageError: the file is damaged; the message names the first problems found.
    """
    try:
        rows = [row[0] for row in conn.execute(f"PRAGMA quick_check({QUICK_CHECK_ROWS})")]
    except sqlite3.DatabaseError as error:
        if _sqlite_kind(error) == "damaged":
            raise damaged(path, role, str(error), elsewhere) from None
        raise
    if rows != ["ok"]:
        raise damaged(path, role, "; ".join(rows), elsewhere) from None
