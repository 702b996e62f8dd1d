"""The Optuna studies of the workspace (or of a database URL): history, importance,
parallel coordinates and slice plots, each linked to the tune runs that wrote it.

The page itself lists the trials at once; each plot is fetched after the first paint
(`/api/studies/NAME/plots/KIND`), with a progress note where it will appear, because
Optuna's importance on a few hundred trials takes a moment.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.ui.pages import page, problem, reading
from core.errors import AutoGLMError, UserInputError

PLOTS = ("history", "importance", "parallel", "slice")
# Database URLs another machine may hold studies in (`autoglm tune --storage`); a file URL
# names a path, so it must lie under the allowed roots like any user-named file.
REMOTE_SCHEMES = ("postgresql", "postgresql+psycopg2", "mysql", "mysql+pymysql")
MAX_TRIAL_ROWS = 1000  # the trial table's rows; plots use every trial


def storage_url(request: Request) -> str | None:
    """The storage a request names (`?storage=`), checked; else the workspace's file, or
    None when the workspace has no studies yet.

    Raises:
        UserInputError: a scheme that is not a database, or a file outside the roots.
    """
    from agent.store import STUDIES_NAME

    given = request.query_params.get("storage")
    if not given:
        path = request.app.state.workspace / STUDIES_NAME
        return f"sqlite:///{path}" if path.is_file() else None
    scheme = given.split("://", 1)[0]
    if scheme in REMOTE_SCHEMES:
        return given
    if scheme == "sqlite" and given.startswith("sqlite:///"):
        from core.paths import AllowedRoots

        roots = AllowedRoots.default(request.app.state.workspace, request.app.state.data_dir)
        path = roots.check(given.removeprefix("sqlite:///"))
        if not path.is_file():  # a page only reads: it never creates a database
            raise UserInputError(f"There is no study database at {path}.")
        return f"sqlite:///{path}"
    raise UserInputError(
        f"{scheme!r} is not a study database; give postgresql://USER@HOST/DB (or a "
        "sqlite:/// file under the workspace)."
    )


_storages: dict[str, Any] = {}
_storages_lock = threading.Lock()


def storage(url: str) -> Any:
    """One Optuna storage per URL for the server's life: opening one checks the schema
    (a few hundred ms on this machine), which no page should pay each time. Opened as the
    tuner opens it (`graph_ml.tune.open_storage`: the installed PostgreSQL driver, one
    paragraph when the database cannot be reached).

    Raises:
        SetupError: no driver, or the database cannot be reached.
    """
    from graph_ml.tune import open_storage

    with _storages_lock:
        if url not in _storages:
            _storages[url] = open_storage(url)
        return _storages[url]


def _tune_runs(request: Request) -> dict[str, list[int]]:
    """Study name -> the tune runs that searched in it."""
    links: dict[str, list[int]] = {}
    with reading(request) as store:
        for record in store.list_runs(None, kind="tune"):
            name = (record.config or {}).get("study") or (record.result or {}).get("study")
            if name:
                links.setdefault(str(name), []).append(record.id)
    return links


def studies_page(request: Request) -> Response:
    """`GET /studies`: every study in the storage, with trial counts and best values."""
    import optuna

    try:
        url = storage_url(request)
        summaries = optuna.study.get_all_study_summaries(storage(url)) if url else []
    except AutoGLMError as error:
        return problem(request, error)
    links = _tune_runs(request)
    rows = [{"name": s.study_name, "trials": s.n_trials,
             "best": None if s.best_trial is None else s.best_trial.value,
             "direction": s.direction.name.lower() if s.direction else "",
             "started": s.datetime_start, "runs": links.get(s.study_name, [])}
            for s in summaries]  # fmt: skip
    return page(request, "studies.html", rows=rows, storage=request.query_params.get("storage", ""))


def _study(request: Request) -> Any:
    import optuna

    url = storage_url(request)
    name = request.path_params["name"]
    if url is None:
        raise UserInputError("This workspace has no studies yet; `autoglm tune` makes one.")
    try:
        return optuna.load_study(study_name=name, storage=storage(url))
    except KeyError:
        names = [s.study_name for s in optuna.study.get_all_study_summaries(storage(url))]
        raise UserInputError(
            f"No study {name!r}; choose from: {', '.join(names) or 'none'}."
        ) from None


def study_page(request: Request) -> Response:
    """`GET /studies/{name}`: the trials and (fetched after paint) the four plots."""
    import optuna

    try:
        study = _study(request)
    except AutoGLMError as error:
        return problem(request, error, 404)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    params = sorted({k for t in trials for k in t.params})
    best = study.best_trial if done else None
    rows = [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
             "params": [t.params.get(p) for p in params],
             "seconds": t.duration.total_seconds() if t.duration else None}
            for t in trials[:MAX_TRIAL_ROWS]]  # fmt: skip
    return page(request, "study.html", name=study.study_name, rows=rows, params=params,
                total=len(trials), complete=len(done), best=best, plots=PLOTS,
                storage=request.query_params.get("storage", ""),
                runs=_tune_runs(request).get(study.study_name, []),
                direction=study.direction.name.lower())  # fmt: skip


def _figure(study: Any, kind: str) -> Any:
    from optuna import visualization as vis

    if kind == "history":
        return vis.plot_optimization_history(study)
    if kind == "importance":
        from optuna.importance import PedAnovaImportanceEvaluator

        # PED-ANOVA: fast on hundreds of trials (fANOVA's forest took seconds here).
        return vis.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    if kind == "parallel":
        return vis.plot_parallel_coordinate(study)
    return vis.plot_slice(study)


def study_plot(request: Request) -> Response:
    """`GET /api/studies/{name}/plots/{kind}`: one Plotly figure of the study, as JSON."""
    kind = request.path_params["kind"]
    if kind not in PLOTS:
        return JSONResponse({"error": f"Unknown plot {kind!r}; choose from: {', '.join(PLOTS)}."},
                            status_code=404)  # fmt: skip
    try:
        study = _study(request)
        figure = _figure(study, kind)
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=404)
    except (ValueError, RuntimeError) as error:  # too few complete trials for this plot
        return JSONResponse({"error": f"No {kind} plot: {error}"}, status_code=200)
    return Response(figure.to_json(), media_type="application/json")


def api_studies(request: Request) -> Response:
    """`GET /api/studies`: the studies as JSON."""
    import optuna

    try:
        url = storage_url(request)
        summaries = optuna.study.get_all_study_summaries(storage(url)) if url else []
    except AutoGLMError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    links = _tune_runs(request)
    out = [{"name": s.study_name, "trials": s.n_trials,
            "best": None if s.best_trial is None else s.best_trial.value,
            "runs": links.get(s.study_name, [])} for s in summaries]  # fmt: skip
    return JSONResponse(json.loads(json.dumps({"studies": out}, default=str)))
