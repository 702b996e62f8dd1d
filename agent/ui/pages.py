"""Rendering a page and reaching the store from a request.

Templates are Jinja2 with autoescape on for every page: a run's title, a dataset name, an
uploaded file's name or a chat message is text, never markup. Figures go into pages as JSON
through `tojson`, which escapes `<`, `>` and `&` so no string can close the script tag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = resources.files("agent.ui") / "templates"

_env: Environment | None = None


def environment() -> Environment:
    global _env
    if _env is None:
        _env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,  # a missing fact is an error, not an empty cell
        )
    return _env


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with the server's CSRF secret and navigation."""
    guard = request.app.state.guard
    html = environment().get_template(template).render(
        csrf=guard.csrf, path=request.url.path, workspace=str(request.app.state.workspace),
        **context,
    )  # fmt: skip
    return HTMLResponse(html, status_code=status)


def problem(request: Request, error: BaseException, status: int = 400) -> HTMLResponse:
    """The page for bad input: the error's one paragraph, escaped, never a traceback."""
    return page(request, "problem.html", status=status, message=str(error))


@contextlib.contextmanager
def reading(request: Request) -> Iterator[Any]:
    """A read-only store of the workspace, for one request (sees what workers wrote)."""
    from agent.store import ExperimentStore

    store = ExperimentStore(request.app.state.workspace, read_only=True)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def writing(request: Request) -> Iterator[Any]:
    """A writable store of the workspace (reports, uploads' runs)."""
    from agent.store import ExperimentStore

    store = ExperimentStore(request.app.state.workspace)
    try:
        yield store
    finally:
        store.close()
