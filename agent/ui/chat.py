"""The chat page: a task in plain language, its plan and decisions, a confirmation when
the budget asks, live progress (server-sent events), and the explanation.

A turn runs `Session.handle` in a worker (`agent.ui.jobs`) on the stored session, so the
same conversation continues in `autoglm chat --resume ID`, and the reverse.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent.ui.jobs import Job
from agent.ui.pages import page, problem, reading, writing
from core.errors import AutoGLMError, UserInputError

EPOCH_EVENTS_PER_S = 5  # progress events at most this often: 2,000 epochs would flood a tab
KEEPALIVE_S = 15.0  # a comment this often keeps proxies from closing an idle stream
_backend_lock = threading.Lock()  # one planner model, one request at a time


def chat_page(request: Request) -> Response:
    """`GET /chat?session=ID`: the stored sessions, this one's messages, the input box."""
    session_id = request.query_params.get("session") or ""
    with reading(request) as store:
        sessions = store.list_sessions(50)
        try:
            messages = store.messages(session_id) if session_id else []
        except AutoGLMError as error:
            return problem(request, error, 404)
    active = [j.id for j in request.app.state.jobs.all()
              if session_id and j.session == session_id and not j.finished]  # fmt: skip
    return page(request, "chat.html", sessions=sessions, session_id=session_id,
                messages=messages, when=_when, active_job=active[0] if active else "")  # fmt: skip


def _when(seconds: float) -> str:
    from agent.ui.runs import when

    return when(seconds)


def backend(request: Request) -> Any:
    """The planner's model, built on first use (loading the embedded one takes a while)."""
    state = request.app.state
    with _backend_lock:
        if state.backend is None:
            state.backend = state.backend_factory()
        return state.backend


class _Progress:
    """Epoch and trial callbacks that become job events, at most `EPOCH_EVENTS_PER_S`."""

    def __init__(self, job: Job) -> None:
        self.job, self.last = job, 0.0

    def epoch(self, run_id: int, seed: int, epoch: int, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self.last >= 1.0 / EPOCH_EVENTS_PER_S:
            self.last = now
            shown = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
            self.job.emit("epoch", run_id=run_id, seed=seed, epoch=epoch, metrics=shown)

    def trial(self, trial: Any) -> None:
        self.job.emit("trial", number=getattr(trial, "number", None),
                      value=getattr(trial, "value", None))  # fmt: skip


def _plan_event(job: Job, routed: list) -> None:
    from agent.commands.run import format_plan

    job.emit("plan", text=format_plan(routed),
             actions=[{"action": r.action, "fields": json.loads(json.dumps(r.fields, default=str)),
                       "decisions": r.explain()} for r in routed])  # fmt: skip


def turn_work(request: Request, session_id: str, text: str):
    """The job that runs one chat turn."""
    from agent.session import Session, SessionOptions

    workspace, data_dir = request.app.state.workspace, request.app.state.data_dir

    def work(job: Job) -> dict[str, Any]:
        from agent.store import ExperimentStore

        model = backend(request)
        progress = _Progress(job)
        options = SessionOptions(data_dir=data_dir, confirm=job.ask,
                                 on_plan=lambda routed: _plan_event(job, routed),
                                 on_epoch=progress.epoch, on_trial=progress.trial)  # fmt: skip
        with ExperimentStore(workspace) as store, _backend_lock:
            turn = Session(model, store, session_id, options).handle(text)
        return {"session_id": turn.session_id, "reply": turn.reply, "run_ids": turn.run_ids,
                "outcomes": [o.model_dump(mode="json") for o in turn.outcomes],
                "exit_code": turn.exit_code}  # fmt: skip

    return work


async def post_chat(request: Request) -> Response:
    """`POST /api/chat {text, session}`: start a turn; answers the job and session ids."""
    body = await request.json()
    text = str(body.get("text") or "").strip()
    if not text:
        return JSONResponse({"error": 'Type a task first, e.g. "train a GCN on Cora".'}, 400)
    from agent.planner import check_request

    try:
        check_request(text)
        session_id = str(body.get("session") or "") or await run_in_threadpool(
            _new_session, request, text
        )
        with reading(request) as store:
            store.get_session(session_id)
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    work = turn_work(request, session_id, text)
    job = request.app.state.jobs.submit("chat", text[:80], work, session=session_id)
    return JSONResponse({"job": job.id, "session": session_id})


def _new_session(request: Request, text: str) -> str:
    with writing(request) as store:
        return store.create_session(text[:60])


def _job(request: Request) -> Job:
    job = request.app.state.jobs.get(int(request.path_params["job_id"]))
    if job is None:
        raise UserInputError(f"No job {request.path_params['job_id']} on this server.")
    return job


async def job_events(request: Request) -> Response:
    """`GET /api/jobs/{id}/events?from=N`: the job's events as server-sent events."""
    try:
        job = _job(request)
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    start = int(request.query_params.get("from", "0") or 0)

    async def stream() -> AsyncIterator[str]:
        index = start
        while True:
            events = await run_in_threadpool(job.wait, index, KEEPALIVE_S)
            for event in events:
                yield f"id: {event['index']}\ndata: {json.dumps(event, default=str)}\n\n"
            index += len(events)
            if job.finished and index >= len(job.events):
                yield "event: end\ndata: {}\n\n"
                return
            if not events:
                yield ": keepalive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(0)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})  # fmt: skip


def job_json(request: Request) -> Response:
    """`GET /api/jobs/{id}`: the job's status and every event so far."""
    try:
        job = _job(request)
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    return JSONResponse(json.loads(json.dumps({**job.summary(), "events": job.since(0)},
                                              default=str)))  # fmt: skip


async def job_confirm(request: Request) -> Response:
    """`POST /api/jobs/{id}/confirm {yes}`: the answer to "this plan is expensive, go on?"."""
    try:
        job = _job(request)
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    body = await request.json()
    job.answer(bool(body.get("yes")))
    return JSONResponse({"job": job.id, "status": job.status})


def job_page(request: Request) -> Response:
    """`GET /jobs/{id}`: one job's progress, live."""
    try:
        job = _job(request)
    except AutoGLMError as error:
        return problem(request, error, 404)
    return page(request, "job.html", job=job.summary())
