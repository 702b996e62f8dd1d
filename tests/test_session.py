"""Chat sessions with a scripted model: follow-ups, comparisons, refusals, crashes, costs.

The model is `FakeBackend` (control flow only); the planner, rules, tools, training on the
karate club, the SQLite store and the explanations are all real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import PlanningError, RuleViolation
from agent.explain import fmt_pct
from agent.llm.fake import FakeBackend
from agent.router import Limits
from agent.session import Session, SessionOptions
from agent.store import ExperimentStore
from core.errors import UserInputError


def plan(**fields) -> str:
    return json.dumps({"actions": [fields]})


@pytest.fixture
def store(tmp_path: Path):
    with ExperimentStore(tmp_path / "ws") as opened:
        yield opened


@pytest.fixture
def options(data_dir: Path) -> SessionOptions:
    return SessionOptions(data_dir=data_dir)


def chat(store, options, *replies: str, session_id: str | None = None):
    backend = FakeBackend(replies)
    return Session(backend, store, session_id=session_id, options=options), backend


def test_followups_change_only_what_they_name(store, options):
    session, _ = chat(
        store,
        options,
        plan(action="train", dataset="karate", model="gcn", epochs=6, dropout=0.3),
        plan(action="train", dataset="karate", model="gat"),
        plan(action="train", dataset="karate", model="gat", hidden_channels=64),
    )
    first = session.handle("train a GCN on karate for 6 epochs with dropout 0.3")
    second = session.handle("same but with GAT")
    third = session.handle("increase the hidden size to 64")
    ids = [t.outcomes[0].run_id for t in (first, second, third)]
    assert ids == [1, 2, 3]
    run1, run2, run3 = (store.get_run(i).config for i in ids)
    # "same but with GAT": the model changes, what the user set is kept ...
    assert (run2["model"], run2["epochs"], run2["dropout"]) == ("gat", 6, 0.3)
    # ... and what was a GCN default becomes GAT's default, not a copy of GCN's.
    assert run1["hidden_channels"] == 16 and run2["hidden_channels"] == 8
    assert run2["heads"] == 8 and run2["lr"] == 0.005
    # "increase the hidden size to 64": only that changes.
    assert run3["hidden_channels"] == 64
    changed = {k for k in run3 if run3[k] != run2[k]}
    assert changed == {"hidden_channels"}
    assert any("epochs kept as 6 from run 2" in d for d in third.outcomes[0].decisions)
    # Each run trained for real, with its curve stored epoch by epoch.
    assert [len(store.curves(i)[0]) for i in ids] == [6, 6, 6]


def test_comparison_refers_to_the_right_earlier_runs(store, options):
    session, backend = chat(
        store,
        options,
        plan(action="train", dataset="karate", model="gcn", epochs=3, seeds=2),
        plan(action="train", dataset="karate", model="sage", epochs=3, seeds=2),
        plan(action="train", dataset="karate", model="gat", epochs=3, seeds=2),
        # one planner for chat: the model chooses the runs from the chat's typed context
        plan(action="compare", run_ids=[2, 3]),
        plan(action="answer", question="why did it overfit?"),
    )
    for model in ("gcn", "sage", "gat"):  # the planner keeps only numbers the text gives
        session.handle(f"train {model} on karate for 3 epochs over 2 seeds")
    turn = session.handle("compare that with the previous run")
    context = backend.calls[-1][-1]["content"]
    assert "turn 2 made run 2" in context and "turn 3 made run 3" in context
    outcome = turn.outcomes[0]
    assert outcome.status == "succeeded"
    # The turn created one run, the comparison; it refers to "that" (the last run) and
    # "the previous run" (the one before it).
    assert outcome.run_ids == [outcome.run_id] == [4]
    assert all(len(store.get_run(i).seeds) == 2 for i in (2, 3))
    compare = store.get_run(outcome.run_id)
    assert compare.kind == "compare"
    assert [e["run_id"] for e in compare.result["entries"]] == [2, 3]
    stored = {i: store.get_run(i).metrics["test_mean"] for i in (2, 3)}
    assert f"{fmt_pct(stored[2])}%" in outcome.text and f"{fmt_pct(stored[3])}%" in outcome.text
    assert "run 1" not in outcome.text
    # "why did it overfit?" after the comparison: the last training run, from its curves,
    # answered from the store: nothing is retrained.
    why = session.handle("why did it overfit?")
    assert [o.action for o in why.outcomes] == ["answer"] and why.run_ids == []
    assert why.outcomes[0].fields["run_id"] == 3
    assert f"{fmt_pct(stored[3])}%" in why.outcomes[0].text


def test_it_after_an_inspection_is_the_inspected_dataset(store, options):
    session, backend = chat(
        store,
        options,
        plan(action="inspect", dataset="karate"),
        plan(action="train", dataset="karate", model="mlp", epochs=3),
    )
    session.handle("what does the karate dataset look like?")
    outcome = session.handle("train an mlp on it for 3 epochs").outcomes[0]
    assert outcome.status == "succeeded"
    # "it" is the inspected dataset: the session offers it as the candidate
    assert "latest dataset: karate" in backend.calls[-1][-1]["content"]
    assert store.get_run(outcome.run_id).config["dataset"] == "karate"


def test_compare_of_models_trains_each_then_tests_the_difference(store, options):
    session, _ = chat(
        store,
        options,
        plan(action="compare", dataset="karate", models=["gcn", "mlp"], epochs=3, seeds=2),
    )
    outcome = session.handle("compare gcn and mlp on karate over 2 seeds, 3 epochs").outcomes[0]
    compare = store.get_run(outcome.run_id)
    members = store.children(compare.id)
    assert [m.config["model"] for m in members] == ["gcn", "mlp"]
    assert all(len(m.seeds) == 2 and m.status == "succeeded" for m in members)
    assert compare.result["p_value"] is not None  # two seeds each: Welch's test ran
    assert "Welch" in outcome.text or "p =" in outcome.text or "p-value" in outcome.text


def test_why_did_it_overfit_is_answered_from_the_stored_curves(store, options):
    session, _ = chat(
        store,
        options,
        plan(action="train", dataset="karate", model="gcn", epochs=5),
        plan(action="answer", question="why did it overfit?"),
    )
    session.handle("train a gcn on karate for 5 epochs")
    turn = session.handle("why did it overfit?")
    outcome = turn.outcomes[0]
    assert outcome.status == "answered" and outcome.fields["run_id"] == 1
    record = store.get_run(1)
    assert f"{fmt_pct(record.metrics['test_mean'])}%" in outcome.text
    assert "best epoch" in outcome.text or "validation" in outcome.text


def test_resume_continues_the_conversation(store, options):
    session, _ = chat(store, options, plan(action="train", dataset="karate", model="gcn", epochs=4))
    session.handle("train gcn on karate for 4 epochs")
    resumed, _ = chat(
        store, options, plan(action="train", dataset="karate", model="sage"), session_id=session.id
    )
    assert resumed.id == session.id and resumed.state.runs == [1]
    outcome = resumed.handle("same but with sage").outcomes[0]
    config = store.get_run(outcome.run_id).config
    assert config["model"] == "sage" and config["epochs"] == 4
    roles = [m.role for m in store.messages(session.id)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_refusal_goes_back_to_the_model_once_then_to_the_user(store, options):
    refused = plan(action="train", dataset="cora", model="gin", task="graph_classification")
    session, backend = chat(store, options, refused, refused)
    with pytest.raises(RuleViolation, match="Cora is a node-level dataset") as caught:
        session.handle("train GIN for graph classification on Cora")
    assert caught.value.alternatives  # what would work instead
    assert len(backend.calls) == 2  # the plan, then one re-plan with the rule's feedback
    steps = [s.name for s in store.steps(session_id=session.id)]
    assert steps == ["plan", "rules", "replan", "rules"]
    refusal = store.steps(session_id=session.id)[1].detail
    assert "node-level" in refusal["refused"]
    assert store.list_runs() == []  # nothing ran
    assert store.messages(session.id)[-1].content.startswith("error: ")


def test_model_emitting_garbage_is_a_clear_error_and_the_store_is_intact(store, options):
    session, _ = chat(store, options, plan(action="train", dataset="karate", epochs=2))
    session.handle("train on karate for 2 epochs")
    session.backend.enqueue("rm -rf /", "{not json", '{"actions": [{"action": "fly"}]}')
    with pytest.raises(PlanningError, match="no valid plan in 3 attempts") as caught:
        session.handle("train a gcn on karate")
    assert caught.value.attempts == 3 and caught.value.exit_code == 4
    assert [r.status for r in store.list_runs()] == ["succeeded"]


def test_empty_request_is_refused(store, options):
    session, backend = chat(store, options)
    for text in ("", "   \n"):
        with pytest.raises(UserInputError, match="The request is empty"):
            session.handle(text)
    assert backend.calls == []


def test_unknown_dataset_and_bad_path_are_refused_before_any_tool(store, options):
    session, _ = chat(store, options)
    with pytest.raises(RuleViolation, match="Unknown dataset 'imagenet'"):
        session.run_action({"action": "train", "dataset": "imagenet"})
    with pytest.raises(RuleViolation, match="outside the directories autoglm may read"):
        session.run_action({"action": "inspect", "dataset": "../../etc/passwd"})
    with pytest.raises(RuleViolation, match=r"epochs=1000000000 is outside \[1, 100000\]"):
        session.run_action({"action": "train", "dataset": "cora", "epochs": 10**9})
    assert store.list_runs() == []


def test_crash_inside_a_tool_marks_the_run_failed_and_the_chat_goes_on(store, options, monkeypatch):
    session, _ = chat(
        store,
        options,
        plan(action="train", dataset="karate", model="gcn", epochs=2),
        plan(action="train", dataset="karate", model="gat", epochs=2),
        plan(action="train", dataset="karate", model="sage", epochs=2),
    )
    session.handle("train gcn on karate for 2 epochs")
    import tools.train

    def crash(*args, **kwargs):
        raise RuntimeError("CUDA ran out of memory (simulated)")

    monkeypatch.setattr(tools.train, "train", crash)
    outcome = session.handle("train gat on karate for 2 epochs").outcomes[0]
    assert outcome.status == "failed" and outcome.exit_code == 6
    assert "simulated" in outcome.text and "marked failed" in outcome.text
    failed = store.get_run(outcome.run_id)
    assert failed.status == "failed" and "simulated" in failed.error
    assert store.get_run(1).status == "succeeded"  # earlier work intact
    monkeypatch.undo()
    assert session.handle("train sage on karate for 2 epochs").outcomes[0].status == "succeeded"


def test_costs_of_every_step_are_recorded_with_the_run(store, options):
    session, _ = chat(store, options, plan(action="train", dataset="karate", epochs=3))
    run_id = session.handle("train on karate for 3 epochs").outcomes[0].run_id
    steps = {s.name: s for s in store.steps(run_id=run_id)}
    assert {"plan", "rules", "tool:train", "explain"} <= set(steps)
    assert steps["plan"].reasks == 0 and steps["plan"].seconds > 0
    decisions = steps["rules"].detail["decisions"]
    assert any(d["field"] == "model" and d["kind"] == "default" for d in decisions)
    assert steps["tool:train"].peak_mb > 50 and steps["tool:train"].seconds > 0


def test_expensive_plan_asks_and_can_be_declined(store, data_dir):
    asked = []
    options = SessionOptions(
        data_dir=data_dir,
        limits=Limits(confirm_above_seconds=0),
        confirm=lambda reason: asked.append(reason) or False,
    )
    session, _ = chat(store, options, plan(action="train", dataset="karate", epochs=3))
    outcome = session.handle("train on karate for 3 epochs").outcomes[0]
    assert outcome.status == "declined" and asked and "may take up to" in asked[0]
    assert store.list_runs() == []


def test_unknown_dataset_in_text_gets_a_question_and_no_run(store, options):
    session, _ = chat(store, options, plan(action="train", model="gcn"))
    outcome = session.handle("train a gcn on imagenet").outcomes[0]
    assert outcome.action == "clarify" and outcome.exit_code == 2
    assert "cora" in outcome.text and outcome.text.endswith((".", "?"))
    assert store.list_runs() == []


def test_explain_nodes_of_the_last_run_with_attributions(store, options):
    session, _ = chat(
        store,
        options,
        plan(action="train", dataset="karate", model="gcn", epochs=5),
        plan(action="explain", nodes=[0, 33]),
    )
    session.handle("train a gcn on karate for 5 epochs")
    outcome = session.handle("explain the predictions for nodes 0 and 33").outcomes[0]
    assert outcome.status == "succeeded"
    record = store.get_run(outcome.run_id)
    assert record.kind == "explain" and record.parent_id == 1
    assert [n["node"] for n in record.result["nodes"]] == [0, 33]
    assert "33" in outcome.text


def test_later_steps_of_a_plan_refer_to_the_run_it_just_produced(store, options):
    session, _ = chat(
        store,
        options,
        plan(action="train", dataset="karate", model="gcn", epochs=2),
        json.dumps(
            {
                "actions": [
                    {"action": "train", "dataset": "karate", "model": "mlp", "epochs": 3},
                    {"action": "report", "run_ids": [1]},
                ]
            }
        ),
    )
    session.handle("train a gcn on karate for 2 epochs")
    turn = session.handle("train an MLP on karate for 3 epochs and write a report")
    train, report = turn.outcomes
    assert train.run_id == 2 and report.fields["run_ids"] == [2]  # not the older run 1
    assert any(f.endswith("reports/2/report.html") for f in report.files)
    assert all(Path(f).is_file() for f in report.files)


def test_tune_is_stored_with_its_study_and_explained(store, options):
    session, _ = chat(
        store,
        options,
        plan(action="tune", dataset="karate", model="gcn", n_trials=2, epochs=3, seeds=2),
    )
    outcome = session.handle("tune a gcn on karate with 2 trials of 3 epochs, 2 seeds").outcomes[0]
    record = store.get_run(outcome.run_id)
    assert record.kind == "tune" and record.status == "succeeded"
    assert record.result["n_trials"] == 2 and record.result["study"].startswith("run1-")
    assert store.studies_path.is_file()  # the Optuna study lives beside the store
    assert record.metrics["test_mean"] == record.result["test_mean"]
    assert "2 trials" in outcome.text


def test_kfold_curves_are_stored_under_each_runs_seed_and_fold(store, options, monkeypatch):
    from agent.report import write_report

    session, _ = chat(store, options)
    fields = {"action": "train", "dataset": "mutag", "model": "gin", "epochs": 2}
    run_id = session.run_action(fields).outcomes[0].run_id
    runs = store.get_run(run_id).result["runs"]
    assert [(r["seed"], r["fold"]) for r in runs] == [(0, f) for f in range(10)]
    # Ten folds of seed 0, not "seeds 0..9" (the run indices).
    stored = store.curve_runs(run_id)
    assert [(r["seed"], r["fold"], len(r["curves"])) for r in stored] == [
        (0, f, 2) for f in range(10)
    ]
    # An interrupted run's report plots the stored curves: the legend names seed and fold.
    import matplotlib.axes

    labels: list[str] = []
    original = matplotlib.axes.Axes.plot

    def plot(self, *args, **kwargs):
        labels.append(kwargs.get("label"))
        return original(self, *args, **kwargs)

    store.finish_run(run_id, "interrupted", error="test")
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    write_report(store, run_id)
    assert "seed 0, fold 9" in labels and "seed 9" not in labels
