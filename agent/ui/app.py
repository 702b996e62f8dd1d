"""The Starlette application of `autoglm ui`, and `serve()` that runs it under uvicorn.

Routes (pages and their JSON twins):
    /                   experiments (filter, sort, pages)      /api/runs
    /runs/{id}          a run                                  /api/runs/{id}
    /runs/{id}/export.py, /runs/{id}/report.{html,md}; POST /api/runs/{id}/rerun
    /compare?ids=1,2    overlaid curves, differences, test
    /studies, /studies/{name}                                  /api/studies, .../plots/{kind}
    /chat?session=ID    POST /api/chat; /api/jobs/{id}[/events], POST .../confirm
    /data               POST /api/upload, POST /api/action (data doctor, train)
    /static/...         plotly.min.js (from the plotly wheel), ui.js, ui.css
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent.ui import chat, data, runs, studies
from agent.ui.jobs import Job, Jobs
from agent.ui.security import CSRF_HEADER, Guard, GuardMiddleware
from core.errors import SetupError

STATIC = resources.files("agent.ui") / "static"


def plotly_js() -> Path:
    """plotly.min.js as the `plotly` wheel ships it (no CDN).

    Raises:
        SetupError: plotly is not installed.
    """
    try:
        path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise SetupError("autoglm ui draws its charts with plotly.js from the plotly package; "
                         "install the UI's extras: pip install 'open-autoglm[ui]'.")  # fmt: skip
    return path


class CSRFMiddleware:
    """A POST must carry the page's secret (header or form field): see `security`."""

    def __init__(self, app: Any, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(scope.get("headers", []))
            given = headers.get(CSRF_HEADER.encode(), b"").decode("latin-1") or None
            if not self.guard.csrf_ok(given):
                response = PlainTextResponse(
                    "Refused: this request did not come from an autoglm ui page (no CSRF "
                    "secret). Reload the page and try again.", status_code=403)  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _plotly(request: Request) -> Response:
    return FileResponse(plotly_js(), media_type="text/javascript",
                        headers={"cache-control": "public, max-age=86400"})  # fmt: skip


def _rerun(request: Request) -> Response:
    run_id = int(request.path_params["run_id"])
    app = request.app

    def work(job: Job) -> dict[str, Any]:
        from agent.experiments import rerun
        from agent.store import ExperimentStore
        from agent.ui.chat import _Progress

        progress = _Progress(job)
        with ExperimentStore(app.state.workspace) as store:
            record = rerun(store, run_id, app.state.data_dir, on_epoch=progress.epoch)
        return {
            "run_ids": [record.id],
            "reply": f"Rerun of run {run_id} stored as run {record.id}.",
        }

    job = app.state.jobs.submit("rerun", f"rerun {run_id}", work)
    return JSONResponse({"job": job.id})


def _health(request: Request) -> Response:
    return JSONResponse({"ok": True, "workspace": str(request.app.state.workspace),
                         "jobs": [j.summary() for j in request.app.state.jobs.all()]})  # fmt: skip


def routes() -> list:
    return [
        Route("/", runs.experiments),
        Route("/api/runs", runs.api_runs),
        Route("/api/runs/{run_id:int}", runs.api_run),
        Route("/runs/{run_id:int}", runs.run_page),
        Route("/api/runs/{run_id:int}/figures", runs.api_figures),
        Route("/runs/{run_id:int}/export.py", runs.export_script),
        Route("/runs/{run_id:int}/report.{fmt:str}", runs.report),
        Route("/api/runs/{run_id:int}/rerun", _rerun, methods=["POST"]),
        Route("/compare", runs.compare),
        Route("/studies", studies.studies_page),
        Route("/api/studies", studies.api_studies),
        Route("/studies/{name:str}", studies.study_page),
        Route("/api/studies/{name:str}/plots/{kind:str}", studies.study_plot),
        Route("/chat", chat.chat_page),
        Route("/api/chat", chat.post_chat, methods=["POST"]),
        Route("/jobs/{job_id:int}", chat.job_page),
        Route("/api/jobs/{job_id:int}", chat.job_json),
        Route("/api/jobs/{job_id:int}/events", chat.job_events),
        Route("/api/jobs/{job_id:int}/confirm", chat.job_confirm, methods=["POST"]),
        Route("/data", data.data_page),
        Route("/api/upload", data.upload, methods=["POST"]),
        Route("/api/action", data.post_action, methods=["POST"]),
        Route("/api/health", _health),
        Route("/static/plotly.min.js", _plotly),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]


def create_app(
    workspace: Path,
    guard: Guard,
    data_dir: Path | None = None,
    backend_factory: Callable[[], Any] | None = None,
) -> Starlette:
    """The UI over `workspace`.

    Args:
        workspace: the experiment store's directory (resolved).
        guard: who may ask (`security.Guard`).
        data_dir: raw datasets (None: `AUTOGLM_DATA_DIR` or the cache).
        backend_factory: builds the planner's model on the first chat turn (default:
            `agent.llm.get_backend()`, i.e. `AUTOGLM_LLM` or the embedded model).
    """
    from agent.llm import get_backend

    jobs = Jobs()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        jobs.shutdown()

    app = Starlette(routes=routes(), lifespan=lifespan)
    app.state.workspace = Path(workspace).resolve()
    app.state.data_dir = data_dir
    app.state.guard = guard
    app.state.jobs = jobs
    app.state.backend = None
    app.state.backend_factory = backend_factory or get_backend
    app.add_middleware(CSRFMiddleware, guard=guard)
    app.add_middleware(GuardMiddleware, guard=guard)
    return app


def serve(
    workspace: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    data_dir: Path | None = None,
    backend_factory: Callable[[], Any] | None = None,
) -> None:
    """Run the UI until Ctrl-C; prints its URL (with the token off loopback) first."""
    import uvicorn

    plotly_js()  # missing plotly: one paragraph now, not a blank chart later
    guard = Guard.for_host(host, port, token)
    app = create_app(workspace, guard, data_dir, backend_factory)
    print(f"autoglm ui over {app.state.workspace}", flush=True)
    if guard.token:
        print(f"listening on {host}:{port}, beyond this machine: every request needs the "
              "token, given in this URL (keep it private):", flush=True)  # fmt: skip
    print(f"  {guard.url()}", flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
    sys.stdout.flush()
