"""The actions a plan is made of: one pydantic model per action, one discriminated union.

The planner's model is constrained by `action_json_schema()`, which is derived from these
models (never written by hand); its raw output goes through `parse_actions()`, which checks
it with `jsonschema` first (so the error message can go back to the model) and then builds
the pydantic objects. Every field but `action` is optional: a field the user did not state
stays unset and the rule engine fills the default later. Every field is bounded (lengths,
ranges, list sizes): an unbounded schema lets a weak model write digits until it runs out of
tokens.

Dataset and model values are the catalogue's canonical names and every numeric field's
bounds are the catalogue's (`graph_ml.catalogue`): nothing here restates a model or dataset
fact.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Annotated, Any, Literal, get_args

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import GenerateJsonSchema

from agent.errors import ModelOutputError
from graph_ml.catalogue import DATASETS, MODELS, PARAMS, TASKS

MAX_ACTIONS = 4  # a plain-language request rarely needs more; longer plans were padding
MAX_MODELS = len(MODELS)  # the zoo's size: a compare or tune over more repeats a model
MAX_NODES = 16  # nodes one explanation covers
MAX_RUNS = 8  # runs one report or comparison refers to
MAX_TEXT = 300  # characters of a clarifying question or a question about earlier results
MAX_RUN_ID = 1_000_000_000  # the experiment store numbers runs 1, 2, 3, ...


def dataset_names() -> tuple[str, ...]:
    """Canonical dataset names, from the catalogue (`graph_ml.catalogue.DATASETS`)."""
    return tuple(DATASETS)


def model_names() -> tuple[str, ...]:
    """Canonical model names, from the catalogue (plug-ins included)."""
    return tuple(MODELS)


DatasetName = Literal[dataset_names()]  # type: ignore[valid-type]
ModelName = Literal[model_names()]  # type: ignore[valid-type]
TaskName = Literal[TASKS]  # type: ignore[valid-type]
RunId = Annotated[int, Field(ge=1, le=MAX_RUN_ID)]


def _param(name: str, description: str | None = None) -> Any:
    """An optional action field with the parameter's bounds from the catalogue."""
    param = PARAMS[name]
    return Field(None, description=description or param.description, **param.field_bounds())


# Field definitions shared by the actions, so every action reads the same.
_DATASET = Field(None, description="dataset, canonical catalogue name")
_TASK = Field(None, description="learning task")
_MODEL = Field(None, description="GNN model, canonical catalogue name")
_MODELS = Field(
    None, min_length=1, max_length=MAX_MODELS, description="several models (compare, tune)"
)
_RUN_ID = Field(None, description="an earlier run's id from the experiment store")
_RUN_IDS = Field(None, min_length=1, max_length=MAX_RUNS, description="earlier runs' ids")
_QUESTION = Field(min_length=1, max_length=MAX_TEXT)


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Train(_Action):
    """Train one model on one dataset."""

    action: Literal["train"]
    dataset: DatasetName | None = _DATASET
    task: TaskName | None = _TASK
    model: ModelName | None = _MODEL
    epochs: int | None = _param("epochs")
    lr: float | None = _param("lr")
    hidden_channels: int | None = _param("hidden_channels")
    num_layers: int | None = _param("num_layers")
    dropout: float | None = _param("dropout")
    weight_decay: float | None = _param("weight_decay")
    heads: int | None = _param("heads")
    seeds: int | None = _param("seeds")


class Tune(_Action):
    """Search hyper-parameters (and optionally the model) with Optuna."""

    action: Literal["tune"]
    dataset: DatasetName | None = _DATASET
    task: TaskName | None = _TASK
    model: ModelName | None = _MODEL
    models: list[ModelName] | None = _MODELS
    n_trials: int | None = _param("n_trials")
    epochs: int | None = _param("epochs")
    seeds: int | None = _param("seeds")


class Compare(_Action):
    """Train several models under the same settings and test which is better."""

    action: Literal["compare"]
    dataset: DatasetName | None = _DATASET
    task: TaskName | None = _TASK
    models: list[ModelName] | None = _MODELS
    run_ids: list[RunId] | None = _RUN_IDS
    epochs: int | None = _param("epochs")
    lr: float | None = _param("lr")
    hidden_channels: int | None = _param("hidden_channels")
    num_layers: int | None = _param("num_layers")
    dropout: float | None = _param("dropout")
    weight_decay: float | None = _param("weight_decay")
    heads: int | None = _param("heads")
    seeds: int | None = _param("seeds")


class Inspect(_Action):
    """Describe a dataset and check it for problems (the data doctor)."""

    action: Literal["inspect"]
    dataset: DatasetName | None = _DATASET
    task: TaskName | None = _TASK


class Explain(_Action):
    """Explain a trained model's predictions (for some nodes, or overall)."""

    action: Literal["explain"]
    run_id: RunId | None = _RUN_ID
    dataset: DatasetName | None = _DATASET
    model: ModelName | None = _MODEL
    nodes: list[Annotated[int, Field(ge=0, le=1_000_000_000)]] | None = Field(
        None, min_length=1, max_length=MAX_NODES, description="node indices to explain"
    )


class Report(_Action):
    """Write a report of earlier runs."""

    action: Literal["report"]
    run_ids: list[RunId] | None = _RUN_IDS
    dataset: DatasetName | None = _DATASET
    format: Literal["markdown", "html"] | None = Field(None, description="report format")


class Clarify(_Action):
    """The request is ambiguous: ask the user one question."""

    action: Literal["clarify"]
    question: str = _QUESTION


class Answer(_Action):
    """Answer a question about earlier results from the experiment store."""

    action: Literal["answer"]
    question: str = _QUESTION
    run_id: RunId | None = _RUN_ID
    dataset: DatasetName | None = _DATASET


ACTION_TYPES: tuple[type[_Action], ...] = (
    Train,
    Tune,
    Compare,
    Inspect,
    Explain,
    Report,
    Clarify,
    Answer,
)
ACTION_NAMES: tuple[str, ...] = tuple(
    get_args(cls.model_fields["action"].annotation)[0] for cls in ACTION_TYPES
)

Action = Annotated[
    Train | Tune | Compare | Inspect | Explain | Report | Clarify | Answer,
    Field(discriminator="action"),
]


class ActionPlan(BaseModel):
    """What the planner's model must produce: `{"actions": [...]}`."""

    model_config = ConfigDict(extra="forbid")

    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)


class _ActionSchemaGenerator(GenerateJsonSchema):
    """Optional fields are left out rather than written as null, so the schema has no nulls."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # titles repeat the field names; they only lengthen the grammar

    def nullable_schema(self, schema: Any) -> dict[str, Any]:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: Any) -> dict[str, Any]:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", 0) is None:
            del json_schema["default"]
        return json_schema


@cache
def _schema() -> dict[str, Any]:
    return ActionPlan.model_json_schema(schema_generator=_ActionSchemaGenerator)


def action_json_schema() -> dict[str, Any]:
    """The JSON schema of `{"actions": [...]}`, derived from the action models.

    Returns:
        A fresh copy the caller may narrow (the planner restricts enums per request).
    """
    return copy.deepcopy(_schema())


def action_fields(action: str) -> dict[str, str]:
    """Field name -> description of one action, for prompts and error messages."""
    cls = ACTION_TYPES[ACTION_NAMES.index(action)]
    return {
        name: info.description or "" for name, info in cls.model_fields.items() if name != "action"
    }


def action_class(action: str) -> type[_Action]:
    """The model class of an action name (raises `KeyError` for an unknown one)."""
    if action not in ACTION_NAMES:
        raise KeyError(action)
    return ACTION_TYPES[ACTION_NAMES.index(action)]


def error_path(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def _schema_error(data: Any, schema: dict[str, Any]) -> str | None:
    """The most useful validation message for `data`, or None when it is valid.

    A failed `oneOf` over eight actions says only "not valid under any of the given
    schemas", so each action is checked against its own model's schema to name the field.
    """
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    items = data.get("actions") if isinstance(data, dict) else None
    defs = schema.get("$defs", {})
    if isinstance(items, list):
        for index, item in enumerate(items):
            name = item.get("action") if isinstance(item, dict) else None
            if name not in ACTION_NAMES:
                if isinstance(item, dict):
                    return (
                        f"actions[{index}].action: {name!r} is not one of {', '.join(ACTION_NAMES)}"
                    )
                continue
            sub = dict(defs[action_class(name).__name__])
            sub["$defs"] = defs
            sub_error = jsonschema.exceptions.best_match(
                jsonschema.Draft202012Validator(sub).iter_errors(item)
            )
            if sub_error is not None:
                return f"actions[{index}]{error_path(sub_error)}: {sub_error.message}"
    return f"{error_path(error).lstrip('.') or 'output'}: {error.message}"


def load_output(text: str) -> Any:
    """A model's output as JSON, or a `ModelOutputError` quoting a bounded snippet of it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        snippet = text if len(text) <= 80 else text[:40] + " ... " + text[-30:]
        raise ModelOutputError(
            f"the output is not valid JSON ({error.msg} at character {error.pos}): {snippet!r}"
        ) from None


def parse_actions(text: str, schema: dict[str, Any] | None = None) -> list[Action]:
    """Validate a model's raw output and build the actions.

    Args:
        text: the completion, expected to be `{"actions": [...]}`.
        schema: the schema to check against (default `action_json_schema()`; the planner
            passes the narrowed one it constrained the model with).

    Returns:
        The validated actions.

    Raises:
        ModelOutputError: not JSON, or not valid under the schema; the message is the
            validator's, ready to be sent back to the model.
    """
    data = load_output(text)
    message = _schema_error(data, schema if schema is not None else _schema())
    if message is not None:
        raise ModelOutputError(f"the output does not match the action schema: {message}")
    try:
        return ActionPlan.model_validate(data).actions
    except ValidationError as error:  # the schema and the models disagree: still say why
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ModelOutputError(
            f"the output does not match the action schema: {where}: {first['msg']}"
        ) from None


def dump_actions(actions: list[Action]) -> dict[str, Any]:
    """`{"actions": [...]}` with unset fields left out, as `autoglm plan --json` prints it."""
    return {"actions": [action.model_dump(exclude_none=True) for action in actions]}
