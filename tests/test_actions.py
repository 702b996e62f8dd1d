"""The action models, their derived JSON schema, and `parse_actions`."""

from __future__ import annotations

import json

import jsonschema
import pytest

from agent.actions import (
    ACTION_NAMES,
    MAX_ACTIONS,
    MAX_MODELS,
    Compare,
    Train,
    action_json_schema,
    dataset_names,
    dump_actions,
    model_names,
    parse_actions,
)
from agent.errors import ModelOutputError


def _plan(*actions: dict) -> str:
    return json.dumps({"actions": list(actions)})


def _action_defs(schema: dict) -> dict[str, dict]:
    return {
        d["properties"]["action"]["const"]: d
        for d in schema["$defs"].values()
        if "action" in d.get("properties", {})
    }


def test_schema_is_derived_from_the_models():
    schema = action_json_schema()
    defs = _action_defs(schema)
    assert set(defs) == set(ACTION_NAMES) >= {
        "train", "tune", "compare", "inspect", "explain", "report", "clarify", "answer"
    }  # fmt: skip
    # The schema's properties are exactly the pydantic fields, in declaration order.
    assert list(defs["train"]["properties"]) == list(Train.model_fields)
    assert list(defs["compare"]["properties"]) == list(Compare.model_fields)
    assert all(d["additionalProperties"] is False for d in defs.values())
    assert schema["additionalProperties"] is False
    assert schema["properties"]["actions"]["maxItems"] == MAX_ACTIONS
    # Optional fields are left out, never written as null.
    assert "null" not in json.dumps(schema)


def test_flat_field_names_are_shared():
    defs = _action_defs(action_json_schema())
    train = defs["train"]["properties"]
    for name in ("dataset", "task", "model", "epochs", "lr", "hidden_channels", "num_layers",
                 "dropout", "weight_decay", "heads", "seeds"):  # fmt: skip
        assert name in train
    assert {"models", "n_trials"} <= set(defs["tune"]["properties"])
    assert {"models", "seeds", "run_ids"} <= set(defs["compare"]["properties"])
    assert {"run_id", "nodes"} <= set(defs["explain"]["properties"])
    assert defs["clarify"]["required"] == ["action", "question"]
    assert defs["train"]["required"] == ["action"]
    assert defs["train"]["properties"]["task"]["enum"] == [
        "node_classification", "link_prediction", "graph_classification"
    ]  # fmt: skip


def _walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def test_every_value_in_the_schema_is_bounded():
    for path, node in _walk(action_json_schema()):
        kind = node.get("type")
        if kind == "string" and "enum" not in node and "const" not in node:
            assert "maxLength" in node, path
        if kind in ("integer", "number"):
            assert "maximum" in node or "exclusiveMaximum" in node, path
            assert "minimum" in node or "exclusiveMinimum" in node, path
        if kind == "array":
            assert "maxItems" in node, path


def test_catalogue_names_are_the_enums():
    defs = _action_defs(action_json_schema())
    assert defs["train"]["properties"]["dataset"]["enum"] == list(dataset_names())
    assert defs["train"]["properties"]["model"]["enum"] == list(model_names())
    assert {"cora", "citeseer", "mutag"} <= set(dataset_names())
    assert {"gcn", "gat", "sage", "gin", "mlp"} <= set(model_names())


@pytest.mark.parametrize(
    "item, message",
    [
        ({"action": "train", "dataset": "cora", "foo": 1}, "'foo' was unexpected"),
        ({"action": "train", "epochs": "200"}, "actions[0].epochs: '200' is not of type"),
        ({"action": "train", "lr": 5}, "actions[0].lr: 5 is greater than the maximum"),
        ({"action": "train", "dataset": "corax"}, "actions[0].dataset: 'corax' is not one of"),
        ({"action": "train", "model": None}, "actions[0].model: None is not one of"),
        ({"action": "compare", "model": "gcn"}, "'model' was unexpected"),
        ({"action": "teach"}, "actions[0].action: 'teach' is not one of train, tune"),
        ({"action": "clarify"}, "'question' is a required property"),
        ({"action": "compare", "models": ["gcn"] * (MAX_MODELS + 1)}, "is too long"),
    ],
)
def test_jsonschema_rejects_with_a_clear_message(item, message):
    with pytest.raises(ModelOutputError) as caught:
        parse_actions(_plan(item))
    assert message in str(caught.value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"actions": [item]}, action_json_schema())


def test_not_json_and_wrong_shapes():
    with pytest.raises(ModelOutputError, match="not valid JSON"):
        parse_actions('{"actions": [{"action": "train", "data')
    with pytest.raises(ModelOutputError, match="is not of type 'object'"):
        parse_actions("[]")
    with pytest.raises(ModelOutputError, match="non-empty"):
        parse_actions('{"actions": []}')
    with pytest.raises(ModelOutputError, match="is too long"):
        parse_actions(_plan(*[{"action": "inspect"}] * (MAX_ACTIONS + 1)))


def test_valid_plan_builds_the_models_and_dumps_without_unset_fields():
    actions = parse_actions(
        _plan(
            {"action": "train", "dataset": "cora", "model": "gcn", "epochs": 200, "lr": 0.01},
            {"action": "explain", "nodes": [1, 2]},
            {"action": "clarify", "question": "Which dataset?"},
        )
    )
    assert isinstance(actions[0], Train) and actions[0].epochs == 200
    assert actions[0].hidden_channels is None
    assert dump_actions(actions) == {
        "actions": [
            {"action": "train", "dataset": "cora", "model": "gcn", "epochs": 200, "lr": 0.01},
            {"action": "explain", "nodes": [1, 2]},
            {"action": "clarify", "question": "Which dataset?"},
        ]
    }


def test_schema_copies_are_independent():
    schema = action_json_schema()
    schema["$defs"]["Train"]["properties"]["dataset"]["enum"] = ["cora"]
    assert len(action_json_schema()["$defs"]["Train"]["properties"]["dataset"]["enum"]) > 1
