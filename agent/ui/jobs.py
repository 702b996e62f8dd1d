"""Long work off the request threads: a chat turn, a rerun, training on an upload.

Each job runs in a worker thread of one pool (`WORKERS`), opens its own writable store and
appends events (`plan`, `confirm`, `epoch`, `trial`, `done`, `failed`) to a list every
browser tab can read from any index, so two tabs see the same state and a reloaded page
catches up. A job that raises is marked failed with its message (the run it was doing is
marked failed by the executor); the server keeps serving.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.errors import AutoGLMError

# Two at once: a chat turn may train while another tab inspects a dataset; more would only
# share the same cores (the machine this was measured on has two).
WORKERS = 2
# How long a job waits for the user's answer to "this plan is expensive, go ahead?".
CONFIRM_TIMEOUT_S = 600.0


@dataclass
class Job:
    """One piece of long work and what it said so far."""

    id: int
    kind: str
    title: str
    status: str = "queued"  # queued, running, waiting, succeeded, failed
    session: str | None = None  # the chat it belongs to: every tab of that chat follows it
    events: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    _changed: threading.Condition = field(
        default_factory=lambda: threading.Condition(threading.RLock()), repr=False
    )
    _answer: bool | None = field(default=None, repr=False)

    def emit(self, name: str, /, **data: Any) -> None:
        with self._changed:
            self.events.append({**data, "index": len(self.events), "event": name})
            self._changed.notify_all()

    def finish(self, status: str, name: str, /, **data: Any) -> None:
        """The last event and the final status, together: a reader never sees one alone."""
        with self._changed:
            self.status = status
            self.emit(name, **data)

    def since(self, index: int) -> list[dict[str, Any]]:
        with self._changed:
            return self.events[index:]

    def wait(self, index: int, timeout: float) -> list[dict[str, Any]]:
        """Events from `index` on, waiting up to `timeout` seconds for a first one."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) > index, timeout)
            return self.events[index:]

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    def ask(self, reason: str) -> bool:
        """Ask the page to confirm; block this worker until it answers (or times out: no)."""
        with self._changed:
            self._answer, self.status = None, "waiting"
        self.emit("confirm", reason=reason)
        with self._changed:
            self._changed.wait_for(lambda: self._answer is not None, CONFIRM_TIMEOUT_S)
            answer, self.status = bool(self._answer), "running"
        self.emit("confirmed" if answer else "declined")
        return answer

    def answer(self, yes: bool) -> None:
        with self._changed:
            self._answer = yes
            self._changed.notify_all()

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                "session": self.session, "events": len(self.events),
                "created_at": self.created_at}  # fmt: skip


class Jobs:
    """The pool and every job of this server (kept in memory; the store keeps the runs)."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="autoglm-ui-job")
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def submit(
        self,
        kind: str,
        title: str,
        work: Callable[[Job], dict[str, Any]],
        session: str | None = None,
    ) -> Job:
        """Run `work(job)` in a worker; what it returns is the `done` event's data."""
        with self._lock:
            job = Job(next(self._ids), kind, title, session=session)
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Job], dict[str, Any]]) -> None:
        job.status = "running"
        job.emit("started")
        try:  # whatever happens, the job ends with an event (a dead worker would hang tabs)
            result = work(job)
        except AutoGLMError as error:  # bad input, a refusal, a failed run: its own words
            job.finish("failed", "failed", message=str(error), kind=type(error).__name__)
            return
        except Exception as error:  # noqa: BLE001 - a crash ends this job, never the server
            job.finish("failed", "failed", message=f"{type(error).__name__}: {error}",
                       kind="crash", trace=traceback.format_exc(limit=8))  # fmt: skip
            return
        job.finish("succeeded", "done", **(result or {}))

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
