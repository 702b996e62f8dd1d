"""The experiments list, a run's page, its downloads, and the comparison of runs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from agent.ui import charts
from agent.ui.pages import page, problem, reading, writing
from core.errors import AutoGLMError, UserInputError

PAGE_SIZE = 200  # rows per page of the list: 2,000 runs would be a slow first paint
SORT_KEYS = ("id", "kind", "status", "dataset", "model", "metric", "started", "seconds")
FILTERS = ("dataset", "model", "kind", "status", "session")


def when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def headline(kind: str, metrics: dict[str, Any]) -> tuple[str, float | None]:
    """The one number the list shows for a run, and how it is named."""
    if metrics.get("test_mean") is not None:
        return "test", float(metrics["test_mean"])
    if metrics.get("best_value") is not None:
        return "best val", float(metrics["best_value"])
    if metrics.get("p_value") is not None:
        return "p", float(metrics["p_value"])
    return "", None


def run_row(record: Any) -> dict[str, Any]:
    """What the list and `/api/runs` say of a run."""
    cfg = record.config or {}
    name, value = headline(record.kind, record.metrics or {})
    model = cfg.get("model") or "/".join(map(str, cfg.get("models") or [])) or ""
    return {
        "id": record.id,
        "kind": record.kind,
        "status": record.status,
        "title": record.title,
        "dataset": str(cfg.get("dataset") or ""),
        "model": str(model),
        "metric_name": name,
        "metric": value,
        "metrics": record.metrics or {},
        "started": record.started_at,
        "started_text": when(record.started_at),
        "seconds": record.seconds,
        "session": record.session_id or "",
        "parent": record.parent_id,
        "error": record.error,
    }


def _sort_value(row: dict[str, Any], key: str) -> Any:
    value = row["started"] if key == "started" else row[key]
    return (value is None, value if value is not None else 0)


def all_rows(store: Any) -> list[dict[str, Any]]:
    """Every stored run as a row, newest first (results left unread: only metrics)."""
    return [run_row(r) for r in store.list_runs(None, with_result=False)]


def filtered_rows(rows: list[dict[str, Any]], params: dict[str, str]) -> list[dict[str, Any]]:
    """`rows` filtered by `params` (exact values; `q`: words in the title; `since`/`until`:
    dates) and sorted by `sort` (`order` asc or desc)."""
    for key in ("kind", "status", "dataset", "model", "session"):
        if params.get(key):
            rows = [r for r in rows if r[key] == params[key]]
    if params.get("ids"):  # the list's live rows: only the runs it shows as running
        wanted = {int(i) for i in params["ids"].split(",") if i.strip().isdigit()}
        rows = [r for r in rows if r["id"] in wanted]
    if params.get("q"):
        words = params["q"].lower().split()
        rows = [r for r in rows if all(w in r["title"].lower() for w in words)]
    for key, keep in (("since", lambda r, t: r["started"] >= t),
                      ("until", lambda r, t: r["started"] < t + 86400)):  # fmt: skip
        if params.get(key):
            try:
                day = dt.datetime.strptime(params[key], "%Y-%m-%d").timestamp()
            except ValueError:
                raise UserInputError(f"{key}={params[key]!r} is not a date (YYYY-MM-DD).") from None
            rows = [r for r in rows if keep(r, day)]
    sort = params.get("sort") or "id"
    if sort not in SORT_KEYS:
        raise UserInputError(f"Cannot sort by {sort!r}; choose from: {', '.join(SORT_KEYS)}.")
    rows.sort(key=lambda r: _sort_value(r, sort), reverse=params.get("order", "desc") != "asc")
    return rows


def api_runs(request: Request) -> Response:
    """`GET /api/runs`: every run (filters as on the list), newest first, as JSON."""
    params = dict(request.query_params)
    try:
        with reading(request) as store:
            rows = filtered_rows(all_rows(store), params)
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse({"workspace": str(request.app.state.workspace), "count": len(rows),
                         "runs": rows})  # fmt: skip


def experiments(request: Request) -> Response:
    """`GET /`: the list of runs, with filters, sorting and pages."""
    params = {k: v for k, v in request.query_params.items() if k != "token"}
    try:
        with reading(request) as store:
            every = all_rows(store)
        rows = filtered_rows(list(every), params)
    except AutoGLMError as error:
        return problem(request, error)
    number = params.get("page", "1")
    start = max(0, int(number) - 1 if number.isdigit() else 0) * PAGE_SIZE
    choices = {key: sorted({r[key] for r in every if r[key]}) for key in FILTERS}
    return page(request, "experiments.html", rows=rows[start : start + PAGE_SIZE],
                total=len(rows), stored=len(every), params=params, choices=choices,
                page_number=start // PAGE_SIZE + 1, pages=max(1, -(-len(rows) // PAGE_SIZE)),
                sort_keys=SORT_KEYS)  # fmt: skip


def _run_id(request: Request) -> int:
    return int(request.path_params["run_id"])


def run_facts(store: Any, record: Any, language: str) -> dict[str, Any]:
    """Everything the run page shows, read from the store."""
    from agent.explain import explain_run
    from tools.report import COST_HEADERS, cost_rows, decision_lines

    steps = store.steps(record.id)
    curve_runs = store.curve_runs(record.id)
    figures = charts.curve_figures(curve_runs)
    result = record.result or {}
    if record.kind == "train" and "runs" not in result and isinstance(result.get("result"), dict):
        result = result["result"]
    confusion = charts.summed_confusion(result) if record.kind == "train" else None
    if confusion:
        figures.append(charts.confusion_figure(*confusion))
    try:
        explanation = explain_run(record, language, store)
    except Exception as error:  # noqa: BLE001 - the page still shows the stored numbers
        explanation = f"(The explanation could not be written: {type(error).__name__}: {error})"
    plans = [s.detail.get("actions") for s in steps
             if s.name in ("plan", "replan") and isinstance(s.detail, dict)]  # fmt: skip
    return {
        "record": record,
        "row": run_row(record),
        "steps": steps,
        "plans": [json.dumps(p, ensure_ascii=False) for p in plans if p],
        "decisions": decision_lines(steps),
        "cost_headers": COST_HEADERS,
        "costs": cost_rows(steps),
        "figures": figures,
        "explanation": explanation,
        "children": store.children(record.id),
        "seeds_results": [
            {"seed": r.get("seed"), "test": r.get("test_metric"), "val": r.get("val_metric")}
            for r in result.get("runs", [])
        ]
        if record.kind == "train"
        else [],
        "study": (record.config or {}).get("study") or result.get("study"),
        "members": [e.get("run_id") for e in result.get("entries", []) if e.get("run_id")],
        "config_json": json.dumps(record.config, indent=2, default=str, ensure_ascii=False),
        "result_extra": _extra(record),
    }


def _extra(record: Any) -> str:
    """The stored result of runs without curves (inspect, explain): shown as JSON."""
    if record.kind in ("inspect", "explain") and record.result:
        return json.dumps(record.result, indent=2, default=str, ensure_ascii=False)[:20000]
    return ""


def run_page(request: Request) -> Response:
    """`GET /runs/{id}`: config, plan, decisions, curves, explanation, costs, provenance."""
    language = request.query_params.get("lang", "en")
    try:
        with reading(request) as store:
            record = store.get_run(_run_id(request))
            facts = run_facts(store, record, "zh" if language == "zh" else "en")
    except AutoGLMError as error:
        return problem(request, error, 404)
    return page(request, "run.html", when=when, language=language, **facts)


def api_run(request: Request) -> Response:
    """`GET /api/runs/{id}`: the stored run, its epochs and steps, as JSON."""
    try:
        with reading(request) as store:
            record = store.get_run(_run_id(request))
            out = {**record.model_dump(), "title": record.title, "seconds": record.seconds,
                   "curves": store.curve_runs(record.id),
                   "steps": [s.model_dump() for s in store.steps(record.id)]}  # fmt: skip
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    return JSONResponse(json.loads(json.dumps(out, default=str)))


def api_figures(request: Request) -> Response:
    """`GET /api/runs/{id}/figures`: the run's curves as Plotly figures (a running run's
    page redraws them every few seconds), and its status."""
    try:
        with reading(request) as store:
            record = store.get_run(_run_id(request))
            figures = charts.curve_figures(store.curve_runs(record.id))
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    return JSONResponse({"status": record.status, "figures": figures})


def export_script(request: Request) -> Response:
    """`GET /runs/{id}/export.py`: the standalone PyG script that reproduces a train run."""
    from agent.export import export_script as script

    try:
        with reading(request) as store:
            text = script(store.get_run(_run_id(request)))
    except AutoGLMError as error:
        return problem(request, error)
    name = f"reproduce_run_{_run_id(request)}.py"
    return Response(text, media_type="text/x-python",
                    headers={"content-disposition": f'attachment; filename="{name}"'})  # fmt: skip


def report(request: Request) -> Response:
    """`GET /runs/{id}/report.html|md`: write the report into the workspace and send it."""
    from agent.report import write_report

    fmt = request.path_params["fmt"]
    language = "zh" if request.query_params.get("lang") == "zh" else "en"
    try:
        with writing(request) as store:
            written = write_report(store, _run_id(request), language=language)
    except AutoGLMError as error:
        return problem(request, error)
    path = written.html if fmt == "html" else written.markdown
    media = "text/html" if fmt == "html" else "text/markdown"
    return FileResponse(path, media_type=media, filename=path.name if fmt == "md" else None)


# -- compare ----------------------------------------------------------------------------


def _ids(request: Request) -> list[int]:
    raw = [*request.query_params.getlist("ids"), *request.query_params.getlist("id")]
    ids = []
    for part in ",".join(raw).replace(" ", ",").split(","):
        if part.strip():
            if not part.strip().isdigit():
                raise UserInputError(f"{part!r} is not a run id; ids are whole numbers.")
            ids.append(int(part))
    if len(ids) < 2:
        raise UserInputError("Choose at least two runs to compare (tick them in the list).")
    return list(dict.fromkeys(ids))


def differences(records: list[Any]) -> list[dict[str, Any]]:
    """The config keys (and provenance) whose values are not the same in every run."""
    keys = sorted({k for r in records for k in (r.config or {})})
    rows = []
    for key in keys:
        values = [json.dumps((r.config or {}).get(key), default=str, ensure_ascii=False)
                  for r in records]  # fmt: skip
        if len(set(values)) > 1:
            rows.append({"key": key, "values": values})
    for key, get in (("dataset fingerprint", lambda r: r.dataset_fingerprint),
                     ("versions", lambda r: json.dumps(r.versions, sort_keys=True)),
                     ("seeds", lambda r: json.dumps(r.seeds))):  # fmt: skip
        values = [str(get(r)) for r in records]
        if len(set(values)) > 1:
            rows.append({"key": key, "values": values})
    return rows


def caveats(records: list[Any], facts: dict[str, Any] | None) -> list[str]:
    """What limits the comparison, each a sentence that holds for these runs."""
    out = []
    if facts and facts["too_few_seeds"]:
        out.append("Too few seeds for a significance test: run each with at least two seeds.")
    elif facts and facts["min_seeds"] < 5:
        out.append(
            f"Only {facts['min_seeds']} seed(s) in the smaller run: a Welch test on so "
            "few values has little power; a difference may be real yet not significant."
        )
    prints = {r.dataset_fingerprint for r in records if r.dataset_fingerprint}
    if len(prints) > 1:
        out.append("The runs read different data (their dataset fingerprints differ).")
    if len({(r.config or {}).get("dataset") for r in records}) > 1:
        out.append("The runs are on different datasets: their numbers are not comparable.")
    if any(r.status != "succeeded" for r in records):
        out.append("Some runs did not succeed; only finished runs are tested.")
    if len(records) > 2 and facts:
        out.append("Only the best two runs are tested against each other (no correction for "
                   "multiple comparisons).")  # fmt: skip
    return out


def compare(request: Request) -> Response:
    """`GET /compare?ids=1,2`: overlaid curves, what differs, and the significance test."""
    from agent.explain import comparison_facts, explain_compare

    if not any(request.query_params.getlist(k) for k in ("ids", "id")):
        with reading(request) as store:
            rows = [run_row(r) for r in store.list_runs(PAGE_SIZE, kind="train")]
        return page(request, "compare_pick.html", rows=rows)
    try:
        ids = _ids(request)
        with reading(request) as store:
            records = [store.get_run(i) for i in ids]
            curves = [(f"run {r.id}", store.curve_runs(r.id)) for r in records]
            trained = [r for r in records if r.kind == "train" and r.status == "succeeded"]
            facts = comparison_facts(trained, store) if len(trained) >= 2 else None
            text = explain_compare(trained, "en", store) if facts else ""
    except AutoGLMError as error:
        return problem(request, error)
    names: dict[str, None] = {}
    for _, runs in curves:
        names.update(dict.fromkeys(charts.metric_names(runs)))
    figures = [charts.overlay_figure(curves, name) for name in names]
    return page(request, "compare.html", records=records, rows=[run_row(r) for r in records],
                diffs=differences(records), facts=facts, explanation=text,
                caveats=caveats(records, facts), figures=figures)  # fmt: skip
