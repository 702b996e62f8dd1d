"""The search space of `graph_ml.tune`: each model's parameter ranges, and user overrides.

- `search_spaces()`: model -> parameter -> range (`FloatRange`, `IntRange`, `Choice`), from
  each model's `ModelSpec.search` in the catalogue (the one place they are written).
- `RangeOverride`: a user's (or the planner's) change to one range, checked against the
  parameter's bounds in the catalogue by `narrow()`; `build_space()` applies a set of them.
- `suggest(trial, space)`: draw one trial's model and parameters; `grid_values()`: the points
  a grid search visits.
"""

from __future__ import annotations

from typing import Annotated, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import UserInputError
from graph_ml import catalogue
from graph_ml.config import TrainConfig

Value = int | float | str

# ----------------------------------------------------------------------------- ranges


class FloatRange(BaseModel):
    """A float drawn from [low, high], log-uniformly when `log`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False


class IntRange(BaseModel):
    """An integer drawn from [low, high] (log-uniformly when `log`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False


class Choice(BaseModel):
    """One of `choices`; a single choice is a fixed value."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["choice"] = "choice"
    choices: tuple[Value, ...]


Param = Annotated[FloatRange | IntRange | Choice, Field(discriminator="kind")]
Space = dict[str, dict[str, Param]]  # model -> parameter -> range


def _param(value: catalogue.Range) -> Param:
    """A catalogue range as this module's (pydantic, JSON-able) range."""
    if isinstance(value, catalogue.Choice):
        return Choice(choices=tuple(value.choices))
    kind = IntRange if isinstance(value, catalogue.IntRange) else FloatRange
    return kind(low=value.low, high=value.high, log=value.log)


def search_spaces() -> dict[str, dict[str, Param]]:
    """Model -> parameter -> range, from each `ModelSpec.search` (plug-ins included)."""
    return {
        name: {p: _param(r) for p, r in spec.search.items()}
        for name, spec in catalogue.MODELS.items()
        if spec.search
    }


def categories() -> dict[str, tuple[str, ...]]:
    """The categorical parameters and their values (`aggr`), from the catalogue."""
    return {n: p.choices for n, p in catalogue.PARAMS.items() if p.kind == "choice"}


def _optional() -> dict[str, Choice]:
    """Dimensions searched only when asked for (an override names them): structure
    enhancement, one step or none per trial (`{"enhance": {"choices": ["none", "gdc"]}}`)."""
    from graph_ml.transforms import ORDER

    return {"enhance": Choice(choices=("none", *ORDER))}


class RangeOverride(BaseModel):
    """A user's (or the planner's) change to one parameter's range.

    Give `low`/`high` (either may be left out to keep the default bound; `log` to change the
    scale), or `choices`, or a fixed `value`.
    """

    model_config = ConfigDict(extra="forbid")
    low: float | None = None
    high: float | None = None
    log: bool | None = None
    choices: list[Value] | None = None
    value: Value | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RangeOverride:
        kinds = [
            self.low is not None or self.high is not None or self.log is not None,
            self.choices is not None,
            self.value is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of: low/high(/log), choices, value")
        return self


def _check_value(name: str, value: Value, integer: bool) -> Value:
    """One value of parameter `name`, checked against its type and its catalogue bounds."""
    optional = _optional().get(name)
    if optional is not None:
        if value not in optional.choices:
            raise UserInputError(
                f"{name} cannot be {value!r}; choose from: {', '.join(map(str, optional.choices))}."
            )
        return value
    param = catalogue.PARAMS[name]
    if integer and param.kind != "choice" and isinstance(value, float) and value.is_integer():
        value = int(value)
    problem = param.problem(value)
    if problem is None and integer and isinstance(value, float):
        problem = f"{name} must be a whole number, got {value}"
    if problem is not None:
        hint = " A learning rate must be greater than 0." if name == "lr" and value <= 0 else ""
        raise UserInputError(f"{problem}.{hint}")
    return value


def narrow(name: str, base: Param, override: RangeOverride) -> Param:
    """Apply `override` to parameter `name`'s default range `base`.

    Raises:
        UserInputError: low > high, a value outside the parameter's limits, a log range that
            reaches 0, a non-integer for an integer parameter, an unknown category.
    """
    integer = isinstance(base, IntRange) or (
        isinstance(base, Choice) and all(isinstance(c, int) for c in base.choices)
    )
    if override.value is not None:
        return Choice(choices=(_check_value(name, override.value, integer),))
    if override.choices is not None:
        if not override.choices:
            raise UserInputError(f"{name}: the list of choices is empty.")
        return Choice(choices=tuple(_check_value(name, c, integer) for c in override.choices))
    if name in categories():
        raise UserInputError(f"{name} is a category; give choices, not a range.")
    old_low = base.low if not isinstance(base, Choice) else min(base.choices)
    old_high = base.high if not isinstance(base, Choice) else max(base.choices)
    low = _check_value(name, old_low if override.low is None else override.low, integer)
    high = _check_value(name, old_high if override.high is None else override.high, integer)
    log = override.log if override.log is not None else getattr(base, "log", False)
    if low > high:
        raise UserInputError(f"{name}: low ({low:g}) is greater than high ({high:g}).")
    if log and low <= 0:
        raise UserInputError(f"{name}: a log-scale range needs low > 0, got {low:g}.")
    if integer:
        return IntRange(low=int(low), high=int(high), log=log)
    return FloatRange(low=float(low), high=float(high), log=log)


def searchable_models(task: str) -> list[str]:
    """The models a search over the whole zoo tries for `task`: each that supports it and
    has a search space."""
    return [name for name, s in catalogue.MODELS.items() if task in s.tasks and s.search]


def build_space(models: list[str], overrides: dict[str, RangeOverride] | None = None) -> Space:
    """The search space over `models`, with `overrides` applied.

    Args:
        models: registry names (already resolved).
        overrides: keys are `param` (every searched model that has it) or `model.param`.

    Raises:
        UserInputError: an unknown parameter or model in a key, or a bad range.
    """
    tunable, spaces = trainer_fields(), search_spaces()
    space: Space = {m: {p: r for p, r in spaces[m].items() if p in tunable} for m in models}
    optional = _optional() if overrides else {}  # it imports PyG: only when asked for
    for key in overrides or {}:
        model_name, _, param = key.rpartition(".")
        if param in optional:
            for model in [catalogue.MODELS.resolve(model_name)] if model_name else list(space):
                space.get(model, {}).setdefault(param, optional[param])
    for key, override in (overrides or {}).items():
        model_name, _, param = key.rpartition(".")
        if model_name:
            model = catalogue.MODELS.resolve(model_name)
            if model not in space:
                raise UserInputError(
                    f"Search-space key {key!r} names model {model!r}, which is not searched; "
                    f"searched: {', '.join(space)}."
                )
            targets = [model]
        else:
            targets = [m for m in space if param in space[m]]
        if not targets or param not in space[targets[0]]:
            known = sorted({p for m in (targets or space) for p in space[m]})
            raise UserInputError(
                f"Unknown search parameter {param!r} for {', '.join(targets or space)}; "
                f"choose from: {', '.join(known)}."
            )
        for model in targets:
            space[model][param] = narrow(param, space[model][param], override)
    return space


def trainer_fields() -> set[str]:
    """The hyper-parameters `TrainConfig` accepts; a search parameter outside it is skipped."""
    return set(TrainConfig.model_fields)


def param_name(model: str, param: str, space: Space) -> str:
    """The Optuna name of a parameter: plain for one model, `model.param` for several."""
    return param if len(space) == 1 else f"{model}.{param}"


def _suggest(trial: optuna.Trial, name: str, param: Param) -> Value:
    if isinstance(param, Choice):
        if len(param.choices) == 1:
            return param.choices[0]
        return trial.suggest_categorical(name, list(param.choices))
    if param.low == param.high:
        return param.low
    if isinstance(param, IntRange):
        return trial.suggest_int(name, param.low, param.high, log=param.log)
    return trial.suggest_float(name, param.low, param.high, log=param.log)


def suggest(trial: optuna.Trial, space: Space) -> tuple[str, dict[str, Value]]:
    """Draw a model and its parameters from `space` (fixed values are not suggested).

    Returns:
        (model name, {parameter: value}) with plain parameter names.
    """
    models = list(space)
    model = trial.suggest_categorical("model", models) if len(models) > 1 else models[0]
    params = {p: _suggest(trial, param_name(model, p, space), r) for p, r in space[model].items()}
    return model, params


def grid_values(param: Param, points: int = 3) -> list[Value]:
    """A few representative values of a range, for grid search."""
    if isinstance(param, Choice):
        return list(param.choices)
    if param.low == param.high:
        return [param.low]
    if param.log:
        ratio = (param.high / param.low) ** (1 / (points - 1))
        values = [param.low * ratio**i for i in range(points)]
    else:
        values = [param.low + (param.high - param.low) * i / (points - 1) for i in range(points)]
    if isinstance(param, IntRange):
        return sorted({int(round(v)) for v in values})
    return [float(f"{v:.6g}") for v in values]
