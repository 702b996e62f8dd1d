"""Every sentence true: one test per false statement of issue 13, on real small runs.

The runs are real (karate, a few epochs on cora, mutag's 10 folds for a few epochs), made
through a chat session whose planner is scripted (`FakeBackend`); the rules, tools, store,
facts and explanations are the real ones. The same runs feed the checker
(`bench/explain_audit.py`): every number in every explanation and report must be derivable
from the stored run at its printed precision.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.explain import explain_run
from agent.facts import OVERFIT_GAP_POINTS, SMALL_SPLIT
from agent.llm.fake import FakeBackend
from agent.report import run_data
from agent.session import Session, SessionOptions
from bench.explain_audit import audit, check_text, leaves, request_text, run_suite
from tools.report import ReportArgs, write_report

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """train, compare, tune and inspect on karate, cora and mutag (about a minute)."""
    workspace = tmp_path_factory.mktemp("facts") / "ws"
    found = run_suite(workspace, data_dir, ["karate", "cora", "mutag"])
    found["workspace"] = workspace
    yield found
    found["store"].close()


def outcome(suite: dict[str, Any], dataset: str, action: str):
    return next(o for a, o, _ in suite["runs"][dataset] if a == action)


def one_more(suite: dict[str, Any], data_dir: Path, plan: dict[str, Any]):
    """Run one more scripted plan in the suite's store."""
    backend = FakeBackend([json.dumps({"actions": [plan]})])
    session = Session(backend, suite["store"], options=SessionOptions(data_dir=data_dir))
    return session.handle(request_text(plan)).outcomes[0]


# -- "validation peaked at epoch 132 of 174": an average no run had -----------------------


def test_epochs_are_per_seed_never_an_average(suite) -> None:
    done = outcome(suite, "karate", "train")
    facts = suite["store"].get_run(done.run_id).facts
    assert facts["n_seeds"] == 3
    real = {s["best_epoch"] for s in facts["seeds"]} | {s["stopped_epoch"] for s in facts["seeds"]}
    real.add(facts["epochs"])
    said = [int(n) for n in re.findall(r"epochs? (\d+)", done.text)]
    said += [int(n) for n in re.findall(r"(?:stopped at|ran all) (\d+)", done.text)]
    assert said and set(said) <= real, (said, real, done.text)


# -- "early stopping ended training at epoch 123, 200, 200 of 200" --------------------------


def test_early_stopping_counts_only_runs_it_stopped(suite) -> None:
    done = outcome(suite, "karate", "train")
    facts = suite["store"].get_run(done.run_id).facts
    stopped = [s for s in facts["seeds"] if s["stopped_epoch"] < facts["epochs"]]
    assert facts["n_stopped_early"] == len(stopped)
    if stopped:
        assert f"ended {len(stopped)} of 3 seeds before epoch {facts['epochs']}" in done.text
        for s in facts["seeds"]:
            verb = "stopped at" if s in stopped else "ran all"
            told = f"seed {s['seed']} best epoch {s['best_epoch']}, {verb} {s['stopped_epoch']}"
            assert told in done.text
    # Cora for 30 epochs with patience 100: nothing can stop early, and nothing says so.
    cora = outcome(suite, "cora", "train")
    assert "Early stopping" not in cora.text and "All 30 epochs ran in every seed" in cora.text


# -- "no sign of over- or under-fitting" at train/val gaps of 20-24 points ------------------


def test_no_good_fit_claim_when_the_gap_is_large(suite) -> None:
    for dataset in ("karate", "cora", "mutag"):
        done = outcome(suite, dataset, "train")
        facts = suite["store"].get_run(done.run_id).facts
        gaps = [s["train_val_gap"] for s in facts["seeds"] if s["train_val_gap"] is not None]
        if any(g > OVERFIT_GAP_POINTS for g in gaps):
            assert "No sign of over- or under-fitting" not in done.text, done.text
            assert "overfit_gap" in facts["findings"] and "Over-fitting:" in done.text
        if facts["fit"] == "good":
            assert all(g <= OVERFIT_GAP_POINTS for g in gaps)


def test_cora_gap_is_called_over_fitting(suite) -> None:
    """GCN on Cora's 140 training nodes fits them far better than validation: said so."""
    done = outcome(suite, "cora", "train")
    facts = suite["store"].get_run(done.run_id).facts
    low, high = facts["train_val_gaps"][0], facts["train_val_gaps"][-1]
    if low > OVERFIT_GAP_POINTS:
        assert "Over-fitting" in done.text and f"gap {low:.1f}" in done.text
        assert f"{high:.1f} points" in done.text


# -- karate: "85.71% test" is 6 of 7 nodes; "more epochs may help" from 2 validation nodes ---


def test_small_splits_are_stated_with_counts(suite) -> None:
    done = outcome(suite, "karate", "train")
    facts = suite["store"].get_run(done.run_id).facts
    splits = facts["splits"]
    assert splits["test"] == 7 and splits["val"] == 2 and splits["small_test"]
    counts = ", ".join(str(round(7 * s["test_metric"])) for s in facts["seeds"])
    assert f"That is {counts} of 7 test nodes per seed" in done.text
    assert f"fewer than {SMALL_SPLIT} test nodes" in done.text
    assert "the validation split has only 2 nodes" in done.text
    if "more epochs may help" in done.text:
        assert "weak evidence: 2 validation nodes" in done.text
    zh = explain_run(suite["store"].get_run(done.run_id), "zh", suite["store"])
    assert "7 个测试" in zh


# -- costs: a compare of 370 s logged as tool:compare 0.66 s; "4 steps, 4.35 s in all" -------


def test_compare_step_includes_its_trainings_and_costs_add_up(suite, tmp_path) -> None:
    store = suite["store"]
    done = outcome(suite, "karate", "compare")
    record = store.get_run(done.run_id)
    own = [s for s in store.steps(record.id) if s.name == "tool:compare"]
    members = [s for c in store.children(record.id) for s in store.steps(c.id)
               if s.name == "tool:train"]  # fmt: skip
    assert len(own) == 1 and len(members) == 2
    assert own[0].seconds >= sum(s.seconds for s in members)
    timing = record.facts["timing"]
    assert timing["accounted_seconds"] == pytest.approx(record.seconds, rel=0.05)
    report = write_report(ReportArgs(run=run_data(store, record), out_dir=tmp_path))
    text = report.markdown.read_text()
    assert f"Run wall time {record.seconds:.2f} s" in text
    assert "including the trainings it ran" in text
    for dataset in ("karate", "cora", "mutag"):
        for action in ("train", "compare", "tune", "inspect"):
            run = store.get_run(outcome(suite, dataset, action).run_id)
            own = run.facts["timing"]["accounted_seconds"]
            assert own == pytest.approx(run.seconds, rel=0.05, abs=0.02), (dataset, action)


# -- "Tuning gcn, gat, ... appnp" when some were never sampled; "the best model is gcn" -------


def test_tuning_says_trials_per_model_and_who_was_never_sampled(suite) -> None:
    done = outcome(suite, "karate", "tune")
    facts = suite["store"].get_run(done.run_id).facts
    per_model = {m["model"]: m["trials"] for m in facts["per_model"]}
    assert set(per_model) == {"gcn", "gat", "sage"} and sum(per_model.values()) == 4
    listed = ", ".join(f"{m['model']} {m['trials']}" for m in facts["per_model"])
    assert all(part in done.text for part in re.split(r", (?=\w+ \d)", listed))
    never = [m for m, n in per_model.items() if n == 0]
    if never:
        assert f"Never sampled: {', '.join(never)}" in done.text
    assert not facts["winner_supported"]  # 4 trials over 3 models
    assert "not enough to call it the best model" in done.text
    assert "the best model is" not in done.text


def test_importances_say_they_leave_out_the_model_and_are_rough(suite) -> None:
    done = outcome(suite, "karate", "tune")
    facts = suite["store"].get_run(done.run_id).facts
    if facts["importances"]:
        assert "the choice of model is not among them" in done.text
        assert f"only {facts['n_complete']} completed trials" in done.text


# -- "± 0.0000" for one-seed runs in `experiments list` --------------------------------------


def test_one_seed_shows_no_spread_in_the_list(suite) -> None:
    done = outcome(suite, "mutag", "train")  # seeds=1 (10 folds)
    one = one_more(suite, None, {"action": "train", "dataset": "karate", "model": "gcn",
                                 "epochs": 5, "seeds": 1})  # fmt: skip
    listing = subprocess.run(
        [sys.executable, "-m", "agent.cli", "experiments", "list", "--limit", "100",
         "--workspace", str(suite["workspace"])],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    line = next(row for row in lines if row.startswith(f"{one.run_id} "))
    assert "±" not in line and "(1 seed)" in line
    line = next(row for row in lines if row.startswith(f"{done.run_id} "))
    assert "(10 seeds)" in line or "±" in line  # ten fold runs do have a spread


# -- the compare report hid GCN 200 epochs vs GAT 1000; its y-axis started at 0.64 ------------


def test_compare_says_what_else_differs_and_plots_from_zero(suite, data_dir, tmp_path,
                                                            monkeypatch) -> None:  # fmt: skip
    done = one_more(suite, data_dir, {"action": "compare", "dataset": "karate",
                                      "models": ["gcn", "gat"], "seeds": 2})  # fmt: skip
    store = suite["store"]
    facts = store.get_run(done.run_id).facts
    epochs = next(d for d in facts["confounders"] if d["key"] == "epochs")
    assert sorted(epochs["values"].values()) == [200, 1000]
    assert "The configs differ in more than the model" in done.text and "epochs 200" in done.text
    assert facts["test"].startswith("Welch's t-test")

    import tools.report_plots as plots

    limits = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (limits.append(fig.axes[0].get_ylim()),
                                                           save(fig, path))[1])  # fmt: skip
    report = write_report(ReportArgs(run=run_data(store, store.get_run(done.run_id)),
                                     out_dir=tmp_path))  # fmt: skip
    assert limits and limits[0][0] == 0.0
    text = report.markdown.read_text()
    assert "## Config differences" in text
    assert re.search(r"\| epochs \| (200|1000) \| (200|1000) \|", text)


def test_facts_are_in_experiments_show_json(suite) -> None:
    run_id = outcome(suite, "cora", "compare").run_id
    shown = subprocess.run(
        [sys.executable, "-m", "agent.cli", "experiments", "show", str(run_id), "--json",
         "--workspace", str(suite["workspace"])],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["facts"]["kind"] == "compare" and data["facts"] == data["facts"] | {
        "run_id": run_id
    }
    assert data["facts"]["p_value"] == suite["store"].get_run(run_id).facts["p_value"]


# -- the checker: every number derivable from the stored run -----------------------------------


def test_every_number_in_explanations_and_reports_is_derivable(suite, tmp_path) -> None:
    store = suite["store"]
    ids = [i for rows in suite["runs"].values() for _, o, _ in rows for i in o.run_ids]
    assert len(ids) >= 18
    problems = audit(store, ids, tmp_path)
    assert not problems, "\n".join(map(str, problems))


def test_the_checker_catches_an_invented_number(suite) -> None:
    done = outcome(suite, "karate", "train")
    facts = leaves(suite["store"].get_run(done.run_id).facts)
    bests = [s["best_epoch"] for s in suite["store"].get_run(done.run_id).facts["seeds"]]
    average = sum(bests) / len(bests)
    invented = f"validation peaked at epoch {average:.0f}"
    if round(average) in bests or any(abs(round(average) - f) < 1e-9 for f in facts):
        pytest.skip("the average happens to be a stored number")
    assert check_text(done.run_id, "test", invented, facts, set())


# -- "explain" answers repeated the stored one-run summary ------------------------------------


def test_a_question_about_a_run_gets_the_facts_behind_its_summary(suite, data_dir) -> None:
    store = suite["store"]
    train = {"action": "train", "dataset": "karate", "model": "gcn", "epochs": 30, "seeds": 2}
    question = {"action": "answer", "question": "why did it overfit?"}
    backend = FakeBackend([json.dumps({"actions": [p]}) for p in (train, question)])
    session = Session(backend, store, options=SessionOptions(data_dir=data_dir))
    trained = session.handle(request_text(train)).outcomes[0]
    answer = session.handle("why did it overfit?").outcomes[0]
    assert answer.status == "answered" and answer.text != trained.text
    facts = store.get_run(trained.run_id).facts
    assert "In detail, per seed" in answer.text
    for s in facts["seeds"]:
        assert f"seed {s['seed']}: best epoch {s['best_epoch']}" in answer.text
        assert f"train/val gap {s['train_val_gap']:.1f} points" in answer.text
    literals = {1.0, 2.0, 3.0, 5.0}  # the template's advice ("3 or more seeds")
    assert not check_text(trained.run_id, "answer", answer.text, leaves(facts), literals)
