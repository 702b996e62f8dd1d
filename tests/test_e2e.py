"""End to end: plain text in, the real embedded model plans, Cora trains, the explanation
quotes the stored accuracy, the report exists with its plots."""

from __future__ import annotations

import base64

import pytest

from agent.explain import fmt_pct
from agent.report import write_report
from agent.session import Session, SessionOptions
from agent.store import ExperimentStore


@pytest.mark.slow
def test_plain_text_to_an_explained_and_reported_run(embedded_backend, data_dir, tmp_path):
    with ExperimentStore(tmp_path / "ws") as store:
        session = Session(embedded_backend, store, options=SessionOptions(data_dir=data_dir))
        turn = session.handle("Train a GCN on Cora for 20 epochs.")

        # The real model planned it, and the plan is what the text says.
        assert [a["action"] for a in turn.plan] == ["train"]
        outcome = turn.outcomes[0]
        assert outcome.status == "succeeded", outcome.text
        record = store.get_run(outcome.run_id)
        config = record.config
        assert (config["dataset"], config["model"], config["epochs"]) == ("cora", "gcn", 20)
        assert config["task"] == "node_classification"
        assert len(store.curves(record.id)[0]) <= 20
        assert record.dataset_fingerprint and len(record.dataset_fingerprint) == 64

        # The explanation quotes the accuracy stored for this run, nothing typed.
        accuracy = record.metrics["test_mean"]
        assert 0.5 < accuracy <= 1.0  # 20 epochs of GCN on Cora is well past chance (0.14)
        assert f"{fmt_pct(accuracy)}%" in outcome.text
        assert f"run {record.id}" in outcome.text

        # Planning cost was measured with the run.
        plan_step = next(s for s in store.steps(run_id=record.id) if s.name == "plan")
        assert plan_step.prompt_tokens > 0 and plan_step.completion_tokens > 0
        assert plan_step.seconds > 0

        # The report exists, with its plots, embedded in the HTML.
        files = write_report(store, record.id)
        assert files.markdown.is_file() and files.html.is_file()
        names = {p.name for p in files.images}
        assert any("curve" in n for n in names), names
        html = files.html.read_text()
        for image in files.images:
            assert image.stat().st_size > 1000
            assert base64.b64encode(image.read_bytes()).decode()[:64] in html
        assert fmt_pct(accuracy) in files.markdown.read_text()


@pytest.mark.slow
def test_real_model_follow_up_changes_only_the_model(embedded_backend, data_dir, tmp_path):
    with ExperimentStore(tmp_path / "ws") as store:
        session = Session(embedded_backend, store, options=SessionOptions(data_dir=data_dir))
        first = session.handle("Train a GCN on Cora for 10 epochs with dropout 0.3.")
        second = session.handle("Same but with GAT.")
        run1 = store.get_run(first.outcomes[0].run_id).config
        run2 = store.get_run(second.outcomes[0].run_id).config
        assert run2["model"] == "gat"
        assert (run2["dataset"], run2["epochs"], run2["dropout"]) == ("cora", 10, 0.3)
        assert run1["model"] == "gcn"
