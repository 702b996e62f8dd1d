"""Hyper-parameter and model search on Optuna: the "Auto" in open-autoglm.

`tune(config)` searches the zoo models that support a task (or the ones asked for), each with
its own sub-space (its `ModelSpec.search` in the catalogue), within a budget of trials and/or
seconds:

- Search space: one place, each model's spec (`graph_ml.search_space.search_spaces()`); the
  model is a
  categorical and each model's parameters are conditional on it (named `model.param` when
  several models are searched).
  `TuneConfig.space` narrows or overrides any range; it is validated before any trial runs.
- Samplers (`SAMPLERS`): TPE (default, multivariate), random, grid, CMA-ES. Pruners
  (`PRUNERS`): median, hyperband, none, fed by the best validation metric after every epoch.
- Storage: an SQLite file in the workspace by default; any SQLAlchemy URL (postgresql://...)
  lets several processes or machines work on one study. `n_trials` is the study's total, so
  running the same command again resumes a killed study: finished trials are kept and only
  the missing ones run. A heartbeat marks trials of dead workers failed, and the budget counts
  running trials, so workers together finish exactly `n_trials` trials.
- After the search: the best configuration is retrained over `retrain_seeds` seeds (test mean
  and std), with parameter importances and the optimisation history as plain data.

Objectives have Optuna's shape, `objective(trial)`, and are unit-testable with
`optuna.trial.FixedTrial`.
"""

from __future__ import annotations

import datetime
import json
import math
import multiprocessing
import os
import signal
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import SetupError, Terminated, UserInputError
from core.storage import StorageError, check_integrity, os_error, sqlite_error
from graph_ml.datasets import DATASETS, LoadedDataset, load_dataset
from graph_ml.models import check_task
from graph_ml.samplers import DEFAULT_SAMPLER, PRUNERS, SAMPLERS, draw_seed, quiet_optuna
from graph_ml.search_space import (  # noqa: F401 - re-exported: callers import them from here
    Choice,
    FloatRange,
    IntRange,
    Param,
    RangeOverride,
    Space,
    Value,
    build_space,
    grid_values,
    narrow,
    param_name,
    search_spaces,
    searchable_models,
    suggest,
    trainer_fields,
)
from graph_ml.train import TrainConfig, TrainResult, train

Task = Literal["node_classification", "link_prediction", "graph_classification"]

# The samplers and pruners live in graph_ml.samplers (no torch there, for the router).


# ------------------------------------------------------------------------------------ config


class TuneConfig(BaseModel):
    """What to search, with which algorithm, for how long, and where the study lives."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    task: Task | None = None  # None: the dataset's default task
    models: list[str] | None = None  # None: every zoo model that supports the task
    space: dict[str, RangeOverride] = Field(default_factory=dict)  # "lr", "gat.heads", ...
    n_trials: int | None = Field(20, ge=1)  # the study's total, counting earlier sessions
    timeout: float | None = Field(None, gt=0)  # seconds for this session's search
    sampler: str = DEFAULT_SAMPLER
    pruner: str = "median"
    seed: int | None = None  # sampler seed (worker k: seed + k); None: drawn by `resolve`
    n_jobs: int = Field(1, ge=1)  # threads in this process
    workers: int = Field(1, ge=1)  # processes on this machine (each with n_jobs threads)
    storage: str | None = None  # URL or SQLite path; None: <workspace>/studies.sqlite
    study: str | None = None  # None: "<dataset>-<task>-<models>"
    epochs: int = Field(200, ge=1)  # per trial; pruning and early stopping cut it short
    patience: int | None = Field(50, ge=1)  # early stopping on the validation metric
    trial_seed: int = 0  # training seed of every trial: configurations compete on equal terms
    retrain_seeds: int = Field(5, ge=0)  # 0: no retraining of the best configuration
    retrain_seed: int = 0  # first seed of the retraining runs
    data_dir: str | None = None
    device: str | None = None
    heartbeat: int = Field(10, ge=1)  # seconds; a trial silent for GRACE_HEARTBEATS x this is dead

    @model_validator(mode="after")
    def _has_budget(self) -> TuneConfig:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("give a budget: n_trials, timeout, or both")
        return self


def make_config(**fields: Any) -> TuneConfig:
    """Build a `TuneConfig`, turning pydantic's errors into one `UserInputError` paragraph."""
    try:
        return TuneConfig(**fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors()
        )
        raise UserInputError(f"Invalid tuning request: {problems}.") from None


class Plan(BaseModel):
    """A `TuneConfig` resolved and validated: what every worker needs, JSON-able."""

    config: TuneConfig
    task: Task
    models: list[str]
    space: Space
    study: str
    storage_url: str


def resolve(config: TuneConfig, dataset: LoadedDataset | None = None) -> Plan:
    """Check everything that can be checked before a trial runs.

    Args:
        config: the request.
        dataset: an already loaded dataset (an imported CSV graph is not in the catalogue).

    Raises:
        UserInputError: unknown dataset, task, model, sampler or pruner; a model that does not
            support the task; a bad range in `config.space`.
    """
    spec = dataset.spec if dataset is not None else DATASETS.get(config.dataset)
    task = config.task or spec.default_task
    if task not in spec.tasks:
        raise UserInputError(
            f"Dataset {spec.name!r} does not support {task}; it supports {', '.join(spec.tasks)}."
        )
    if config.models:
        # dict.fromkeys: "gcn, GCN" is one model, in the order given.
        models = list(dict.fromkeys(check_task(m, task).name for m in config.models))
    else:
        models = searchable_models(task)
    spaces = search_spaces()
    unsearchable = [m for m in models if m not in spaces]
    if unsearchable:
        raise UserInputError(
            f"No search space for {', '.join(unsearchable)} (its ModelSpec.search is empty); "
            f"searchable: {', '.join(spaces)}."
        )
    space = build_space(models, config.space)
    if config.seed is None:  # drawn here and kept in the plan and result: a rerun repeats it
        config = config.model_copy(update={"seed": draw_seed()})
    SAMPLERS.get(config.sampler)(space, config.seed)  # fails now, not in a worker
    PRUNERS.get(config.pruner)
    study = config.study or f"{spec.name}-{task}-{'+'.join(models)}"
    return Plan(
        config=config,
        task=task,
        models=models,
        space=space,
        study=study,
        storage_url=storage_url(config.storage),
    )


# ----------------------------------------------------------------------------------- storage


def workspace() -> Path:
    """The experiment workspace (`AUTOGLM_WORKSPACE`, default `./.autoglm`)."""
    return Path(os.environ.get("AUTOGLM_WORKSPACE", ".autoglm"))


def storage_url(storage: str | None) -> str:
    """A SQLAlchemy URL for `storage`: a URL as given, a path as SQLite, None as the default."""
    if storage and "://" in storage:
        return storage
    path = Path(storage) if storage else workspace() / "studies.sqlite"
    return f"sqlite:///{path.expanduser().resolve()}"


def redact(url: str) -> str:
    """`url` with any password replaced by ***, for printing and results."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is printed without its credentials
        return url.split("@")[-1]


_CREATE_ATTEMPTS = 3  # table creation raced by workers starting together heals on a retry
_CREATE_RETRY_SECONDS = 0.5


def _postgres_driver(url: str) -> str:
    """`url` with an installed driver: SQLAlchemy 2.1 means psycopg 3 by a bare postgresql://,
    the `postgres` extra installs psycopg2.

    Raises:
        SetupError: no PostgreSQL driver is installed.
    """
    import importlib.util

    scheme, rest = url.split("://", 1)
    if "+" in scheme:
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    raise SetupError(
        "PostgreSQL storage needs a driver: pip install 'open-autoglm[postgres]' (psycopg2)."
    )


STUDIES_ROLE = "the Optuna study database"
STUDIES_ELSEWHERE = "--storage PATH (a SQLite file) or a database URL"


def _prepare_sqlite(path: Path) -> None:
    """Create the SQLite study file if needed, check it is sound, and switch it to WAL.

    Raises:
        StorageError: a damaged file, a full or read-only disk (one paragraph each).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise os_error(error, path.parent, STUDIES_ROLE, "tuning", STUDIES_ELSEWHERE) from None
    try:
        with closing(sqlite3.connect(path, timeout=60)) as db:
            check_integrity(db, path, STUDIES_ROLE, STUDIES_ELSEWHERE)
            # WAL lets workers read while one writes; the mode persists in the file.
            db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as error:
        raise sqlite_error(error, path, STUDIES_ROLE, STUDIES_ELSEWHERE, "tuning") from None


def _sqlite_problem(error: BaseException, url: str) -> StorageError:
    path = Path(url.removeprefix("sqlite:///"))
    return sqlite_error(error, path, STUDIES_ROLE, STUDIES_ELSEWHERE, "tuning")


@contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    """A SQLite study storage failing mid-search (full, read-only, damaged) as one
    paragraph, like the same failure on open."""
    import sqlalchemy.exc

    try:
        yield
    except sqlalchemy.exc.DBAPIError as error:
        if url.startswith("sqlite:///") and isinstance(error.orig, sqlite3.Error):
            raise _sqlite_problem(error, url) from None
        raise SetupError(
            f"The study storage {redact(url)} failed: {str(error.orig).splitlines()[0]}. "
            "Check the database server and retry; the same command resumes the study."
        ) from None


GRACE_HEARTBEATS = 3  # a trial silent for this many heartbeat intervals is dead


def open_storage(url: str, heartbeat: int = 10) -> optuna.storages.RDBStorage:
    """Open (creating if needed) the RDB storage at `url`, with a trial heartbeat.

    Raises:
        StorageError: a SQLite file that is damaged, or on a full or read-only disk.
        SetupError: a missing database driver, or the database cannot be reached.
    """
    import sqlalchemy.exc

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        _prepare_sqlite(Path(url.removeprefix("sqlite:///")))
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        url = _postgres_driver(url)
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=GRACE_HEARTBEATS * heartbeat,
                )
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
            # Workers starting together race to create the tables (and to stamp the schema
            # version: an IntegrityError on alembic_version); the loser finds them made.
            racing = isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(
                error
            )
            if racing and attempt + 1 < _CREATE_ATTEMPTS:
                time.sleep(_CREATE_RETRY_SECONDS)
                continue
            if url.startswith("sqlite:///") and getattr(error, "orig", None) is not None:
                raise _sqlite_problem(error, url) from None
            raise SetupError(
                f"Cannot open the study storage {redact(url)}: "
                f"{str(error).splitlines()[0].rstrip('.')}. "
                "Check the URL, that the database server is running, and its driver is installed."
            ) from None
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------- objective

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_POLL_SECONDS = 1.0  # how often a worker waiting for the last running trials looks again
_WORKER_STOP_SECONDS = 10.0  # a stopped worker marks its trial FAIL within this


class _Surplus(Exception):
    """The study's trial budget was filled by other workers while this trial was created."""


def _claim_slot(trial: optuna.Trial, n_trials: int | None) -> None:
    """Make sure `trial` fits in the study's budget of `n_trials`, or stop this worker.

    Trials rank by number; failed ones give their slot back. A trial ranked beyond the budget
    waits while earlier ones still run (one may die and free its slot), and is cancelled once
    they have all finished. Several workers thus finish exactly `n_trials` between them.
    """
    if n_trials is None:
        return
    study = trial.study
    while True:
        ahead = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number < trial.number and t.state != TrialState.FAIL
        ]
        if len(ahead) < n_trials:
            return
        if all(t.state in FINISHED for t in ahead):
            trial.set_user_attr("surplus", True)
            study.stop()
            raise _Surplus(f"trial {trial.number} is beyond the budget of {n_trials}")
        time.sleep(_POLL_SECONDS)
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial frees its slot
        _fail_unannounced(study, ahead)


def _announce(trial: optuna.Trial) -> None:
    """Record the trial's first heartbeat now, then its worker: a trial with a worker has a
    heartbeat, so Optuna's stale check sees it if the worker dies."""
    storage = trial.study._storage
    if is_heartbeat_enabled(storage):
        storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")


def _fail_unannounced(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Fail running trials whose worker died between creating them and `_announce`.

    Optuna's heartbeat thread starts after the trial is created, and it never declares stale a
    trial that has no heartbeat yet: a worker killed in that gap left the trial RUNNING forever,
    and a resumed study waited for it (seen in CI). Such a trial has no worker; once it is older
    than the storage's grace period it is dead.
    """
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return
    grace = GRACE_HEARTBEATS * storage.get_heartbeat_interval()
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace)
    for trial in trials:
        started = trial.datetime_start
        if trial.state != TrialState.RUNNING or "worker" in trial.user_attrs or started is None:
            continue
        if started < cutoff:
            try:
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # its worker was alive after all, or another worker failed it first


class Objective:
    """`objective(trial)`: draw a configuration, train it, return its validation metric.

    The best validation metric so far is reported after every epoch of the first seed, so a
    pruner can stop a hopeless trial; the number of epochs trained is kept as the trial's
    `epochs` attribute.

    Args:
        plan: the resolved search.
        dataset: the loaded dataset, shared by all trials of this process.
        n_trials: the study's budget (None: no budget check, e.g. with a `FixedTrial`).
    """

    def __init__(self, plan: Plan, dataset: LoadedDataset, n_trials: int | None = None) -> None:
        self.plan, self.dataset, self.n_trials = plan, dataset, n_trials

    def train_config(
        self, model: str, params: dict[str, Value], seeds: int, seed: int
    ) -> TrainConfig:
        """The `TrainConfig` of one configuration."""
        config = self.plan.config
        return TrainConfig(
            dataset=config.dataset,
            task=self.plan.task,
            model=model,
            epochs=config.epochs,
            patience=config.patience or 0,  # the trainer's 0 means no early stopping
            seeds=seeds,
            seed=seed,
            data_dir=config.data_dir,
            progress=False,
            **({"device": config.device} if config.device else {}),
            **params,
        )

    def __call__(self, trial: optuna.Trial) -> float:
        if not isinstance(trial, optuna.trial.FixedTrial):
            _announce(trial)
            _claim_slot(trial, self.n_trials)
        model, params = suggest(trial, self.plan.space)
        trial.set_user_attr("model", model)
        train_config = self.train_config(model, params, seeds=1, seed=self.plan.config.trial_seed)
        epochs, best = 0, -math.inf

        def on_epoch(run_index: int, epoch: int, metrics: dict[str, float]) -> None:
            nonlocal epochs, best
            epochs += 1
            if run_index > 0:  # later folds of k-fold runs: the first one decides pruning
                return
            best = max(best, float(metrics["val_metric"]))
            trial.report(best, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} with {best:.4f}")

        try:
            result = train(train_config, dataset=self.dataset, on_epoch=on_epoch)
        finally:
            trial.set_user_attr("epochs", epochs)
        trial.set_user_attr("metric", result.metric)
        return float(result.val_mean)


# ---------------------------------------------------------------------------------- results


class TrialRecord(BaseModel):
    """One trial of the history, for plots and explanations."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING
    value: float | None  # validation metric (pruned: the best reported before pruning)
    best_value: float | None  # best completed value up to and including this trial
    model: str
    params: dict[str, Value]
    epochs: int
    seconds: float | None


class TuneResult(BaseModel):
    """The outcome of a search, JSON-able."""

    study: str
    storage: str  # password redacted
    dataset: str
    task: Task
    metric: str  # the validation metric maximised: accuracy or roc_auc
    sampler: str
    pruner: str
    seed: int | None = None  # the sampler's (worker k used seed + k); None in older runs
    models: list[str]
    best_model: str
    best_params: dict[str, Value]
    best_value: float
    best_trial: int
    n_trials: int  # finished trials (complete + pruned) in the study
    n_complete: int
    n_pruned: int
    n_failed: int
    epochs_trained: int  # over every finished trial of the study, retraining excluded
    history: list[TrialRecord]
    # PED-ANOVA importances of the best model's parameters, summing to 1 ({}: see the note),
    # and of every model's with at least two completed, not all equal, trials.
    importances: dict[str, float]
    importances_by_model: dict[str, dict[str, float]] = Field(default_factory=dict)
    importance_note: str | None = None
    retrained: TrainResult | None = None  # the best configuration over retrain_seeds seeds
    test_mean: float | None = None
    test_std: float | None = None
    seconds: float  # this session's wall time, search and retraining


def _plain_params(trial: optuna.trial.FrozenTrial, space: Space) -> tuple[str, dict]:
    model = trial.params.get("model") or trial.user_attrs.get("model") or next(iter(space))
    params = {}
    for p, r in space.get(model, {}).items():
        name = param_name(model, p, space)
        if name in trial.params:
            params[p] = trial.params[name]
        elif isinstance(r, Choice) and len(r.choices) == 1:
            params[p] = r.choices[0]
        elif not isinstance(r, Choice) and r.low == r.high:
            params[p] = r.low
    return model, params


def history(study: optuna.Study, space: Space) -> list[TrialRecord]:
    """Every trial of `study` but cancelled surplus ones, in order, with the running best."""
    records, best = [], None
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.user_attrs.get("surplus"):
            continue
        record = history_record(trial, space)
        if trial.state == TrialState.COMPLETE and (best is None or record.value > best):
            best = record.value
        records.append(record.model_copy(update={"best_value": best}))
    return records


def importances(study: optuna.Study, space: Space) -> dict[str, dict[str, float]]:
    """PED-ANOVA importances of each model's parameters, from its completed trials.

    Returns:
        model -> {parameter: importance, summing to 1}; a model with fewer than two
        completed trials, or whose trials all scored the same, is left out.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    by_model: dict[str, dict[str, float]] = {}
    for model in space:
        prefix = f"{model}." if len(space) > 1 else ""
        trials = [
            optuna.trial.create_trial(
                params={k.removeprefix(prefix): v for k, v in t.params.items() if k != "model"},
                distributions={
                    k.removeprefix(prefix): d for k, d in t.distributions.items() if k != "model"
                },
                value=t.value,
            )
            for t in complete
            if len(space) == 1 or t.params.get("model") == model
        ]
        if len(trials) >= 2 and len({t.value for t in trials}) > 1:
            by_model[model] = _importance(trials)
    return by_model


def _importance(trials: list[optuna.trial.FrozenTrial]) -> dict[str, float]:
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    # PED-ANOVA: how much each parameter separates the top 10% of trials from the rest;
    # deterministic and, unlike fANOVA, needs no scikit-learn.
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings():  # "fewer than 2 trials in a regime": expected when small
        warnings.simplefilter("ignore", UserWarning)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {k: float(v) for k, v in values.items()}


# ------------------------------------------------------------------------------------ search


def _signature(space: Space) -> str:
    return json.dumps(
        {m: {p: r.model_dump(mode="json") for p, r in ps.items()} for m, ps in space.items()},
        sort_keys=True,
    )


def open_study(plan: Plan, worker: int = 0) -> optuna.Study:
    """Create or load the plan's study; worker `k` seeds its sampler with `seed + k`.

    Raises:
        UserInputError: the study exists with a different search space.
        SetupError: the storage cannot be opened.
    """
    config = plan.config
    storage = open_storage(plan.storage_url, config.heartbeat)
    seed = None if config.seed is None else config.seed + worker  # None: a Plan built by hand
    study = optuna.create_study(
        storage=storage,
        study_name=plan.study,
        direction="maximize",
        sampler=SAMPLERS.get(config.sampler)(plan.space, seed),
        pruner=PRUNERS.get(config.pruner)(config.epochs),
        load_if_exists=True,
    )
    signature, stored = _signature(plan.space), study.user_attrs.get("search_space")
    if stored is None:
        study.set_user_attr("search_space", signature)
        study.set_user_attr("dataset", config.dataset)
        study.set_user_attr("task", plan.task)
    elif stored != signature:
        raise UserInputError(
            f"Study {plan.study!r} in {redact(plan.storage_url)} was started with a different "
            f"search space ({stored}). Resume it with the same models and ranges, or pass a "
            "new --study name."
        )
    return study


def finished_trials(study: optuna.Study) -> int:
    """Trials that count against the budget: completed and pruned."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _search(
    plan: Plan,
    dataset: LoadedDataset,
    worker: int = 0,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.Study:
    """Run trials until the study has `n_trials` finished ones or the timeout passes."""
    study = open_study(plan, worker)
    n_trials = plan.config.n_trials

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if n_trials is not None and finished_trials(study) >= n_trials:
            study.stop()
        if on_trial is not None and not trial.user_attrs.get("surplus"):
            on_trial(study, trial)

    if n_trials is not None and finished_trials(study) >= n_trials:
        return study
    study.optimize(
        Objective(plan, dataset, n_trials),
        n_trials=None,  # the budget is the study's, checked by _claim_slot and after_trial
        timeout=plan.config.timeout,
        n_jobs=plan.config.n_jobs,
        catch=(_Surplus, FloatingPointError),
        callbacks=[after_trial],
    )
    return study


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(signal.Signals(signum).name)


def _worker_main(plan_json: str, worker: int) -> None:
    """Entry point of a worker process started by `tune(workers=N)`."""
    # The parent stops its workers with SIGTERM; as an interrupt, Optuna marks the trial
    # in progress FAIL instead of leaving it RUNNING until its heartbeat times out.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    plan = Plan.model_validate_json(plan_json)
    dataset = load_dataset(plan.config.dataset, plan.config.data_dir)
    with quiet_optuna():
        _search(plan, dataset, worker)


def run_workers(plan: Plan, dataset: LoadedDataset, on_trial=None) -> optuna.Study:
    """`_search` in this process plus `workers - 1` worker processes on the same storage."""
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    processes = [
        context.Process(target=_worker_main, args=(plan.model_dump_json(), k), daemon=True)
        for k in range(1, plan.config.workers)
    ]
    for process in processes:
        process.start()
    try:
        study = _search(plan, dataset, 0, on_trial)
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(_WORKER_STOP_SECONDS)  # let each record its failed trial
    failed = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise SetupError(f"{len(failed)} tuning worker process(es) failed (exit {failed}).")
    return study


def _progress(plan: Plan, study_total: int):
    from tqdm import tqdm

    return tqdm(total=plan.config.n_trials, initial=study_total, unit="trial", desc=plan.study)


def tune(
    config: TuneConfig,
    on_trial: Callable[[TrialRecord], None] | None = None,
    progress: bool = False,
    dataset: LoadedDataset | None = None,
) -> TuneResult:
    """Search models and hyper-parameters, then retrain the best configuration.

    Args:
        config: the search.
        on_trial: called in this process after each of its trials finishes.
        progress: show a progress bar on stderr.
        dataset: an already loaded dataset (default: `load_dataset(config.dataset)`).

    Returns:
        The best configuration, its retraining over `retrain_seeds` seeds, the history and
        parameter importances.

    Raises:
        UserInputError: anything wrong with the request, before any trial runs; or no trial
            completed within the budget.
        SetupError: missing dataset files, an unreachable storage, a failed worker process.
    """
    started = time.perf_counter()
    plan = resolve(config, dataset)
    if config.workers > 1 and config.dataset not in DATASETS:
        raise UserInputError(
            f"Worker processes load the dataset by name, and {config.dataset!r} is not in the "
            "catalogue; use --n-jobs (threads) for an imported graph."
        )
    dataset = dataset or load_dataset(config.dataset, config.data_dir)
    with quiet_optuna(), _storage_errors(plan.storage_url):
        study = open_study(plan)  # storage and space errors surface before any training
        bar = _progress(plan, finished_trials(study)) if progress else None

        def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if bar is not None:
                bar.n = finished_trials(study)
                best = study.best_value if study.best_trials else float("nan")
                bar.set_postfix(best=f"{best:.4f}", refresh=False)
                bar.refresh()
            if on_trial is not None:
                on_trial(history_record(trial, plan.space))

        try:
            study = run_workers(plan, dataset, report)
        finally:
            if bar is not None:
                bar.close()
        return summarise(plan, study, dataset, time.perf_counter() - started)


def history_record(trial: optuna.trial.FrozenTrial, space: Space) -> TrialRecord:
    """One `TrialRecord` (without the running best) for a progress callback."""
    model, params = _plain_params(trial, space)
    value = trial.value
    if value is None and trial.intermediate_values:
        value = max(trial.intermediate_values.values())
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        value=value,
        best_value=None,
        model=model,
        params=params,
        epochs=int(trial.user_attrs.get("epochs", 0)),
        seconds=trial.duration.total_seconds() if trial.duration else None,
    )


def summarise(plan: Plan, study: optuna.Study, dataset: LoadedDataset, seconds: float):
    """The `TuneResult` of a finished search, retraining its best configuration."""
    config = plan.config
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    states = [t.state for t in trials]
    n_complete, n_pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    if n_complete == 0:
        raise UserInputError(
            f"No trial of study {plan.study!r} completed ({n_pruned} pruned, "
            f"{states.count(TrialState.FAIL)} failed); give a larger budget (--trials, "
            "--timeout) or turn pruning off (--pruner none)."
        )
    best = study.best_trial
    model, params = _plain_params(best, plan.space)
    by_model = importances(study, plan.space)
    note = None
    if model not in by_model:
        note = (
            f"{model} has fewer than two completed trials, or they all scored the same; "
            "there is nothing to attribute the differences to."
        )
    retrained = None
    if config.retrain_seeds:
        objective = Objective(plan, dataset)
        retrain_config = objective.train_config(
            model, params, seeds=config.retrain_seeds, seed=config.retrain_seed
        )
        retrained = train(retrain_config, dataset=dataset)
    return TuneResult(
        study=plan.study,
        storage=redact(plan.storage_url),
        dataset=config.dataset,
        task=plan.task,
        metric=str(best.user_attrs.get("metric", "accuracy")),
        sampler=SAMPLERS.resolve(config.sampler),
        pruner=PRUNERS.resolve(config.pruner),
        seed=config.seed,
        models=plan.models,
        best_model=model,
        best_params=params,
        best_value=float(best.value),
        best_trial=best.number,
        n_trials=n_complete + n_pruned,
        n_complete=n_complete,
        n_pruned=n_pruned,
        n_failed=states.count(TrialState.FAIL),
        epochs_trained=sum(int(t.user_attrs.get("epochs", 0)) for t in trials),
        history=history(study, plan.space),
        importances=by_model.get(model, {}),
        importances_by_model=by_model,
        importance_note=note,
        retrained=retrained,
        test_mean=None if retrained is None else float(retrained.test_mean),
        test_std=None if retrained is None else float(retrained.test_std),
        seconds=seconds,
    )
