"""The auto-tuner: search spaces, validation before any trial, and studies that survive kills
and are shared by worker processes (SQLite file and a real PostgreSQL on loopback).

Training is real (GCN on the karate-club graph, a few dozen epochs); worker processes are real
subprocesses started with `sys.executable`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from core.errors import SetupError, UserInputError
from graph_ml import tune as tuning
from graph_ml.tune import RangeOverride, build_space, make_config, resolve, suggest

ROOT = Path(__file__).resolve().parents[1]
GCN_PARAMS = {"lr", "hidden_channels", "num_layers", "dropout", "weight_decay"}

# A worker process: waits at a barrier (so workers really overlap), then tunes.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from graph_ml.tune import make_config, tune
    fields, barrier, me, count = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    if barrier:
        Path(barrier, me).touch()
        while len(os.listdir(barrier)) < count:
            time.sleep(0.05)
    tune(make_config(**fields))
    """
)


def _fields(storage: str, study: str, n_trials: int, **extra) -> dict:
    return {
        "dataset": "karate",
        "models": ["gcn"],
        "n_trials": n_trials,
        "epochs": 30,
        "patience": None,
        "pruner": "none",
        "retrain_seeds": 0,
        "storage": storage,
        "study": study,
        "heartbeat": 1,  # a killed worker's trial is declared dead after 3 s
        **extra,
    }


def _start_worker(tmp_path: Path, fields: dict, barrier: str = "", me: str = "", count: int = 0):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(fields), barrier, me, str(count)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _load(storage: str, study: str) -> optuna.Study:
    return optuna.load_study(
        study_name=study, storage=tuning.open_storage(tuning.storage_url(storage))
    )


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOGLM_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


# ------------------------------------------------------------------------- search spaces


def test_zoo_search_is_conditional_on_the_model() -> None:
    space = build_space(["gcn", "gat", "sage"])
    gat = suggest(
        FixedTrial(
            {
                "model": "gat",
                "gat.lr": 0.01,
                "gat.hidden_channels": 8,
                "gat.num_layers": 2,
                "gat.dropout": 0.6,
                "gat.weight_decay": 5e-4,
                "gat.heads": 8,
            }
        ),
        space,
    )
    assert gat == (
        "gat",
        {
            "lr": 0.01,
            "hidden_channels": 8,
            "num_layers": 2,
            "dropout": 0.6,
            "weight_decay": 5e-4,
            "heads": 8,
        },
    )
    # Attention models have heads; GCN does not, and one model needs no prefix.
    assert "heads" in space["gat"] and "heads" not in space["gcn"]
    gcn = {"lr": 0.01, "hidden_channels": 16, "num_layers": 2, "dropout": 0.5, "weight_decay": 5e-4}
    one = suggest(FixedTrial(gcn), build_space(["gcn"]))
    assert one[0] == "gcn" and set(one[1]) == GCN_PARAMS


def test_zoo_for_a_task_holds_only_models_that_support_it() -> None:
    graph = resolve(make_config(dataset="mutag", n_trials=1))
    assert graph.task == "graph_classification"
    assert "sgc" not in graph.models and "appnp" not in graph.models  # node/link only
    assert {"gcn", "gin"} <= set(graph.models)
    node = resolve(make_config(dataset="cora", n_trials=1))
    assert {"sgc", "appnp", "gcn", "gat"} <= set(node.models)


def test_narrowed_space_is_honoured_by_every_sampled_trial() -> None:
    space = build_space(
        ["gcn", "gat"],
        {
            "lr": RangeOverride(low=0.005, high=0.02),
            "gat.heads": RangeOverride(choices=[2, 4]),
            "dropout": RangeOverride(value=0.5),
            "hidden_channels": RangeOverride(low=16, high=32),
        },
    )
    study = optuna.create_study(direction="maximize", sampler=tuning.SAMPLERS.get("tpe")(space, 0))
    drawn = []

    def objective(trial: optuna.Trial) -> float:
        model, params = suggest(trial, space)
        drawn.append((model, params))
        return params["lr"] * params["hidden_channels"]

    study.optimize(objective, n_trials=40)
    assert {m for m, _ in drawn} == {"gcn", "gat"}
    for model, params in drawn:
        assert 0.005 <= params["lr"] <= 0.02
        assert 16 <= params["hidden_channels"] <= 32
        assert params["dropout"] == 0.5
        if model == "gat":
            assert params["heads"] in (2, 4)
    # A fixed value is not a search dimension.
    assert not any("dropout" in name for name in study.best_trial.params)


def test_sage_search_samples_aggr_and_trains_with_it(workspace: Path) -> None:
    space = build_space(["sage", "appnp"])
    assert space["sage"]["aggr"].choices == ("mean", "max", "sum")
    assert {"K", "alpha"} <= set(space["appnp"])
    result = tuning.tune(
        make_config(
            dataset="karate",
            models=["sage"],
            n_trials=4,
            epochs=5,
            seed=0,
            sampler="random",
            pruner="none",
            retrain_seeds=1,
            space={"aggr": {"choices": ["max", "sum"]}},
        )
    )
    drawn = [record.params["aggr"] for record in result.history]
    assert set(drawn) <= {"max", "sum"} and len(drawn) == 4
    assert result.best_params["aggr"] in ("max", "sum")
    assert result.retrained.config.aggr == result.best_params["aggr"]


def test_narrowed_space_is_honoured_in_a_real_search(workspace: Path) -> None:
    result = tuning.tune(
        make_config(
            dataset="karate",
            models=["gcn"],
            n_trials=4,
            epochs=20,
            seed=0,
            retrain_seeds=2,
            space={
                "lr": {"low": 0.01, "high": 0.03},
                "num_layers": {"value": 2},
                "hidden_channels": {"choices": [8, 12]},
            },
        )
    )
    assert len(result.history) == 4 and result.n_trials == 4
    for record in result.history:
        assert 0.01 <= record.params["lr"] <= 0.03
        assert record.params["num_layers"] == 2
        assert record.params["hidden_channels"] in (8, 12)
        assert record.epochs == 20
    assert result.best_params["hidden_channels"] in (8, 12)
    assert len(result.retrained.runs) == 2
    assert result.retrained.config.lr == pytest.approx(result.best_params["lr"])
    assert 0.0 <= result.test_mean <= 1.0
    assert result.epochs_trained == 80
    assert result.storage.startswith("sqlite:///") and (workspace / "studies.sqlite").exists()


def test_the_drawn_seed_is_recorded_and_its_trials_are_known_before_they_run(
    workspace: Path,
) -> None:
    from graph_ml.samplers import planned_draws

    config = make_config(dataset="karate", models=["gcn", "sage"], n_trials=4, epochs=5,
                         retrain_seeds=0, study=f"drawn-{uuid.uuid4().hex[:6]}")  # fmt: skip
    plan = resolve(config)
    assert isinstance(plan.config.seed, int)  # none was asked for: one is drawn and kept
    result = tuning.tune(plan.config)
    assert result.seed == plan.config.seed
    planned = planned_draws(plan.space, "tpe", result.seed, 4)
    assert [(r.model, r.params) for r in result.history] == planned
    # The same seed in a new study draws the same trials.
    again = tuning.tune(plan.config.model_copy(update={"study": plan.study + "-again"}))
    assert [(r.model, r.params) for r in again.history] == planned


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"space": {"lr": {"low": 0.1, "high": 0.01}}}, "greater than high"),
        ({"space": {"lr": {"low": -0.001}}}, "learning rate must be greater than 0"),
        ({"space": {"lr": {"value": 0}}}, "learning rate must be greater than 0"),
        ({"space": {"weight_decay": {"low": 0.0}}}, "log-scale range needs low > 0"),
        ({"space": {"dropout": {"high": 1.5}}}, r"dropout=1.5 is outside \[0, 1\)"),
        ({"space": {"hidden_channels": {"value": 3.5}}}, "whole number"),
        ({"space": {"learning_rate": {"value": 0.1}}}, "Unknown search parameter"),
        ({"space": {"gat.heads": {"value": 2}}, "models": ["gcn"]}, "not searched"),
        ({"models": ["gcm"]}, "Unknown model 'gcm'"),
        ({"models": ["sgc"], "dataset": "mutag"}, "does not support graph_classification"),
        ({"sampler": "bayes-opt"}, "Unknown sampler"),
        ({"pruner": "asha"}, "Unknown pruner"),
        ({"sampler": "grid"}, "grid sampler searches one model"),
        ({"n_trials": None}, "give a budget"),
        ({"n_trials": 0}, "n_trials"),
    ],
)
def test_bad_request_fails_before_any_trial(
    fields: dict, message: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*args, **kwargs):
        raise AssertionError("a trial ran")

    monkeypatch.setattr(tuning, "train", no_training)
    with pytest.raises(UserInputError, match=message):
        tuning.tune(make_config(**{"dataset": "karate", "n_trials": 3, **fields}))
    assert not (workspace / "studies.sqlite").exists()  # no study was even created


def test_cli_space_parsing_and_errors(capsys: pytest.CaptureFixture) -> None:
    from agent.cli import main
    from agent.commands.tune import parse_space

    space = parse_space(["lr=0.001:0.05", "heads=2,4", "dropout=0.5", "alpha=0.1:0.2:linear"])
    assert space["lr"] == RangeOverride(low=0.001, high=0.05)
    assert space["heads"] == RangeOverride(choices=[2, 4])
    assert space["dropout"] == RangeOverride(value=0.5)
    assert space["alpha"].log is False
    with pytest.raises(UserInputError, match="PARAM=low:high"):
        parse_space(["lr"])
    assert main(["tune", "--dataset", "karate", "--space", "lr=0.1:0.01"]) == 2
    assert "low (0.1) is greater than high (0.01)" in capsys.readouterr().err


def test_grid_and_cmaes_samplers_fit_one_model(workspace: Path) -> None:
    grid = tuning.grid_values(tuning.FloatRange(low=1e-3, high=1e-1, log=True))
    assert grid == pytest.approx([1e-3, 1e-2, 1e-1])
    result = tuning.tune(
        make_config(
            dataset="karate",
            models=["gcn"],
            sampler="grid",
            n_trials=3,
            epochs=10,
            retrain_seeds=0,
            space={
                "lr": {"choices": [0.01, 0.02, 0.05]},
                "hidden_channels": {"value": 16},
                "num_layers": {"value": 2},
                "dropout": {"value": 0.5},
                "weight_decay": {"value": 5e-4},
            },
        )  # fmt: skip
    )
    assert sorted(r.params["lr"] for r in result.history) == [0.01, 0.02, 0.05]
    pytest.importorskip("cmaes")
    space = build_space(["gcn"])
    assert isinstance(tuning.SAMPLERS.get("cmaes")(space, 0), optuna.samplers.CmaEsSampler)


def test_threads_share_the_trial_budget(workspace: Path) -> None:
    result = tuning.tune(
        make_config(
            dataset="karate",
            models=["gcn", "mlp"],
            n_trials=5,
            n_jobs=2,
            epochs=10,
            pruner="none",
            retrain_seeds=0,
            seed=3,
        )  # fmt: skip
    )
    assert result.n_trials == 5 and len({r.number for r in result.history}) == 5
    assert {r.model for r in result.history} <= {"gcn", "mlp"}
    assert set(result.importances_by_model) <= {"gcn", "mlp"}


def test_storage_errors_are_setup_errors(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="Cannot open the study storage"):
        tuning.open_storage("postgresql://nobody:secret@127.0.0.1:1/none")
    try:
        tuning.open_storage("postgresql://nobody:secret@127.0.0.1:1/none")
    except SetupError as error:
        assert "secret" not in str(error)  # the password is redacted
    assert tuning.storage_url(str(tmp_path / "s.sqlite")) == f"sqlite:///{tmp_path}/s.sqlite"


def test_objective_is_testable_with_a_fixed_trial(workspace: Path) -> None:
    from graph_ml.datasets import load_dataset

    plan = resolve(make_config(dataset="karate", models=["gcn"], epochs=15, n_trials=1))
    trial = FixedTrial(
        {"lr": 0.01, "hidden_channels": 16, "num_layers": 2, "dropout": 0.5, "weight_decay": 5e-4}
    )
    value = tuning.Objective(plan, load_dataset("karate"))(trial)
    assert 0.0 <= value <= 1.0
    assert trial.user_attrs["epochs"] == 15 and trial.user_attrs["metric"] == "accuracy"


def test_pruner_stops_a_hopeless_trial(workspace: Path) -> None:
    """After five full trials set the median, a trial far below it stops early."""
    result = tuning.tune(
        make_config(
            dataset="karate",
            models=["gcn"],
            n_trials=7,
            epochs=40,
            patience=None,
            seed=0,
            retrain_seeds=0,
            pruner="median",
            space={
                "lr": {"value": 0.01},
                "hidden_channels": {"value": 16},
                "num_layers": {"value": 2},
                "weight_decay": {"value": 5e-4},
                "dropout": {"low": 0.0, "high": 0.5},
            },
        )  # fmt: skip
    )
    assert result.n_complete + result.n_pruned == 7
    full = [r.epochs for r in result.history if r.state == "COMPLETE"]
    assert all(e == 40 for e in full)
    for record in result.history:
        if record.state == "PRUNED":
            assert 4 <= record.epochs < 40  # never within the warm-up (epochs // 10)
    assert result.epochs_trained == sum(r.epochs for r in result.history)


# ------------------------------------------------------------- interrupted and shared studies


def test_killed_study_resumes_with_every_finished_trial(tmp_path: Path, workspace: Path) -> None:
    storage, study_name = str(tmp_path / "studies.sqlite"), "killed"
    fields = _fields(storage, study_name, n_trials=8, epochs=150, seed=0)
    worker = _start_worker(tmp_path, fields)
    deadline = time.monotonic() + 180
    before: list = []
    while time.monotonic() < deadline and worker.poll() is None:
        if Path(storage).exists():
            try:
                before = _finished(_load(storage, study_name))
            except KeyError:  # the study is not created yet
                before = []
            if len(before) >= 2:
                break
        time.sleep(0.1)
    assert worker.poll() is None, f"worker ended early:\n{worker.stdout.read()}"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    study = _load(storage, study_name)
    before = _finished(study)
    assert 2 <= len(before) < 8

    result = tuning.tune(make_config(**fields))

    after = {t.number: t for t in _finished(_load(storage, study_name))}
    assert len(after) == 8 and result.n_trials == 8
    for trial in before:  # nothing finished before the kill was lost or redone
        assert after[trial.number].value == trial.value
        assert after[trial.number].params == trial.params
    states = [t.state for t in _load(storage, study_name).get_trials()]
    assert TrialState.RUNNING not in states  # the killed trial was declared dead
    assert states.count(TrialState.FAIL) <= 1


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the orphan is asked by hand
def test_a_trial_whose_worker_died_before_its_first_heartbeat_frees_its_slot(
    tmp_path: Path, workspace: Path
) -> None:
    # A worker killed between creating a trial and its first heartbeat left it RUNNING with no
    # heartbeat; Optuna never declares such a trial stale, and the resumed study waited on it
    # until CI's 900 s timeout.
    storage, study_name = str(tmp_path / "studies.sqlite"), "orphan"
    fields = _fields(storage, study_name, n_trials=2, seed=0)
    orphan = tuning.open_study(resolve(make_config(**fields))).ask()  # no heartbeat, no worker

    started = time.monotonic()
    result = tuning.tune(make_config(**fields))

    assert time.monotonic() - started < 60
    assert result.n_trials == 2
    states = {t.number: t.state for t in _load(storage, study_name).get_trials()}
    assert states[orphan.number] == TrialState.FAIL
    assert TrialState.RUNNING not in states.values()


def _two_workers_share_one_study(tmp_path: Path, storage: str) -> None:
    study_name, n_trials = f"shared-{uuid.uuid4().hex[:8]}", 10
    fields = _fields(storage, study_name, n_trials=n_trials)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [_start_worker(tmp_path, fields, str(barrier), f"w{i}", 2) for i in range(2)]
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, output
    study = _load(storage, study_name)
    finished = _finished(study)
    assert len(finished) == n_trials  # exactly the budget, not one more per worker
    assert len({t.number for t in finished}) == n_trials
    configs = {json.dumps(t.params, sort_keys=True) for t in finished}
    assert len(configs) == n_trials  # no configuration was trained twice
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both did work
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]


def test_two_worker_processes_share_one_sqlite_study(tmp_path: Path, workspace: Path) -> None:
    _two_workers_share_one_study(tmp_path, str(tmp_path / "shared.sqlite"))


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server on loopback: AUTOGLM_TEST_POSTGRES_URL, else `.ci/postgres.sh`
    (stopped again after the tests when it started one)."""
    url = os.environ.get("AUTOGLM_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    script = ROOT / ".ci" / "postgres.sh"
    try:
        done = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"PostgreSQL could not be started by {script}: {error}")
    lines = [ln for ln in done.stdout.splitlines() if "AUTOGLM_TEST_POSTGRES_URL=" in ln]
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        pytest.skip(f"PostgreSQL could not be started by {script} (exit {done.returncode}): {tail}")
    yield lines[-1].split("=", 1)[1].strip()
    if "AUTOGLM_PG_STARTED=" in done.stdout:  # started here: stopped here
        subprocess.run(["bash", str(script), "stop"], capture_output=True, timeout=120)


@pytest.mark.slow
def test_two_worker_processes_share_one_postgres_study(
    tmp_path: Path, workspace: Path, postgres_url: str
) -> None:
    _two_workers_share_one_study(tmp_path, postgres_url)
