"""The data page: the catalogue with what loads offline, the data doctor for each dataset,
and an upload of a user's CSV files that then trains like any dataset.

Uploads are size-capped (`MAX_UPLOAD_BYTES` in all) and stored in
`<workspace>/uploads/<name>/`: the name is reduced to letters, digits, `-` and `_`, each
file to its base name with a table suffix, and the resolved target is checked to lie in
that folder, so no upload can write outside the workspace.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.ui.jobs import Job
from agent.ui.pages import page
from core.errors import AutoGLMError, UserInputError

MAX_UPLOAD_BYTES = 64 * 2**20  # 64 MiB in all: a 1M-edge CSV is ~15 MB; more is a mistake
UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt")
UPLOADS_DIR = "uploads"
_NAME = re.compile(r"[^A-Za-z0-9_-]+")
CHUNK = 2**16


def uploads_dir(workspace: Path) -> Path:
    return workspace / UPLOADS_DIR


def safe_name(text: str, what: str) -> str:
    """`text` reduced to letters, digits, `-` and `_`.

    Raises:
        UserInputError: nothing is left.
    """
    name = _NAME.sub("_", Path(text or "").name).strip("_.")[:64]
    if not name:
        raise UserInputError(
            f"The {what} {text!r} has no usable characters; use letters and digits."
        )
    return name


def uploaded(workspace: Path) -> list[dict[str, Any]]:
    """Uploaded graphs: name, folder, files and their sizes."""
    root = uploads_dir(workspace)
    if not root.is_dir():
        return []
    return [{"name": d.name, "path": str(d),
             "files": [(f.name, f.stat().st_size) for f in sorted(d.iterdir()) if f.is_file()]}
            for d in sorted(root.iterdir()) if d.is_dir()]  # fmt: skip


def data_page(request: Request) -> Response:
    """`GET /data`: the catalogue, the uploads, and the forms to inspect, upload and train."""
    from agent.commands.datasets import catalogue_rows
    from graph_ml.catalogue import models_for
    from graph_ml.data_dir import resolve_data_dir

    data_dir = request.app.state.data_dir
    rows = catalogue_rows(str(data_dir) if data_dir else None)
    return page(
        request,
        "data.html",
        rows=rows,
        uploads=uploaded(request.app.state.workspace),
        data_dir=str(resolve_data_dir(str(data_dir) if data_dir else None)),
        models=models_for("node_classification"),
        max_mb=MAX_UPLOAD_BYTES // 2**20,
    )


async def upload(request: Request) -> Response:
    """`POST /api/upload` (multipart: `name`, `files`): store CSV files under the workspace."""
    workspace: Path = request.app.state.workspace
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_UPLOAD_BYTES + 2**16:
        return _too_big()
    form = await request.form(max_files=8, max_fields=8)
    try:
        name = safe_name(str(form.get("name") or ""), "graph name")
        files = [f for f in form.getlist("files") if hasattr(f, "filename") and f.filename]
        if not files:
            raise UserInputError("Choose the graph's files (nodes.csv and edges.csv, or one "
                                 "edge list) before uploading.")  # fmt: skip
        folder = (uploads_dir(workspace) / name).resolve()
        if uploads_dir(workspace).resolve() not in folder.parents:
            raise UserInputError(f"The graph name {name!r} is not a folder name.")
        staged = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        total = 0
        for item in files:
            target = _target(staged, item.filename)
            with target.open("wb") as out:
                while chunk := await item.read(CHUNK):
                    total += len(chunk)
                    if total > MAX_UPLOAD_BYTES:
                        shutil.rmtree(staged, ignore_errors=True)
                        return _too_big()
                    out.write(chunk)
        shutil.rmtree(folder, ignore_errors=True)
        staged.rename(folder)
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    finally:
        await form.close()
    return JSONResponse({"name": name, "path": str(folder),
                         "files": sorted(p.name for p in folder.iterdir())})  # fmt: skip


def _target(folder: Path, filename: str) -> Path:
    base = Path(filename).name
    suffix = Path(base).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise UserInputError(f"{base!r} is not a table; upload {', '.join(UPLOAD_SUFFIXES)} "
                             "files (nodes.csv with id, features and label; edges.csv with "
                             "src,dst).")  # fmt: skip
    target = (folder / (safe_name(Path(base).stem, "file name") + suffix)).resolve()
    if target.parent != folder.resolve():
        raise UserInputError(f"{base!r} is not a file name.")
    return target


def _too_big() -> Response:
    return JSONResponse(
        {
            "error": f"The upload is over {MAX_UPLOAD_BYTES // 2**20} MiB; this "
            "page takes smaller graphs. Larger ones: put the files under the "
            "workspace and use `autoglm train --dataset DIR`."
        },
        status_code=413,
    )


def _dataset(request: Request, name: str) -> str:
    """A catalogue name, or an uploaded graph's folder (only those: no other path)."""
    from graph_ml.catalogue import DATASETS

    if name in DATASETS:
        return DATASETS.get(name).name
    folder = uploads_dir(request.app.state.workspace) / safe_name(name, "dataset")
    if not folder.is_dir():
        raise UserInputError(f"No dataset or upload named {name!r}; upload it on this page, or "
                             "choose one from the catalogue.")  # fmt: skip
    return str(folder.resolve())


def _session_work(request: Request, fields: dict[str, Any], text: str):
    """A job running one action without the planner (`Session.run_action`)."""
    from agent.ui.chat import _Progress

    workspace, data_dir = request.app.state.workspace, request.app.state.data_dir

    def work(job: Job) -> dict[str, Any]:
        from agent.session import Session, SessionOptions
        from agent.store import ExperimentStore

        progress = _Progress(job)
        options = SessionOptions(data_dir=data_dir, on_epoch=progress.epoch)
        with ExperimentStore(workspace) as store:
            turn = Session(None, store, None, options, title=text).run_action(fields, text)
        outcome = turn.outcomes[-1]
        if outcome.status == "failed":
            raise UserInputError(outcome.text)
        return {"reply": turn.reply, "run_ids": turn.run_ids, "session_id": turn.session_id}

    return work


async def post_action(request: Request) -> Response:
    """`POST /api/action {action: inspect|train, dataset, model, epochs}`: the data doctor
    on a dataset, or a training run on it, as a job."""
    body = await request.json()
    action = body.get("action")
    try:
        if action not in ("inspect", "train"):
            raise UserInputError("The action must be 'inspect' (the data doctor) or 'train'.")
        dataset = _dataset(request, str(body.get("dataset") or ""))
        fields: dict[str, Any] = {"action": action, "dataset": dataset}
        if action == "train":
            fields["model"] = str(body.get("model") or "gcn")
            fields["epochs"] = int(body.get("epochs") or 100)
    except (AutoGLMError, ValueError) as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    text = f"{action} {fields.get('model', '')} on {Path(dataset).name}".replace("  ", " ")
    job = request.app.state.jobs.submit(action, text, _session_work(request, fields, text))
    return JSONResponse({"job": job.id})
