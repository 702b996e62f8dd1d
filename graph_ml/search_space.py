"""The search space of `graph_ml.tune`: each model's parameter ranges, and user overrides.

- `SEARCH_SPACES`: model -> parameter -> range (`FloatRange`, `IntRange`, `Choice`); one
  place for every tunable parameter of the zoo.
- `RangeOverride`: a user's (or the planner's) change to one range, checked against hard
  `LIMITS` and `CATEGORIES` by `narrow()`; `build_space()` applies a set of them.
- `suggest(trial, space)`: draw one trial's model and parameters; `grid_values()`: the points
  a grid search visits.
"""

from __future__ import annotations

from typing import Annotated, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import UserInputError
from graph_ml.models import MODELS
from graph_ml.train import TrainConfig

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

# Learning rate below 1e-3 never converges within the epoch budgets used here.
_LR = FloatRange(low=1e-3, high=5e-2, log=True)
_WD = FloatRange(low=1e-6, high=1e-2, log=True)  # log scale: 0 is not needed, 1e-6 ~ none
_DROPOUT = FloatRange(low=0.0, high=0.8)
_COMMON: dict[str, Param] = {
    "lr": _LR,
    "hidden_channels": IntRange(low=16, high=256, log=True),
    "num_layers": IntRange(low=1, high=3),
    "dropout": _DROPOUT,
    "weight_decay": _WD,
}
_ATTENTION: dict[str, Param] = {
    **_COMMON,
    "hidden_channels": IntRange(low=4, high=64, log=True),  # per head; heads concatenate
    "num_layers": IntRange(low=2, high=3),
    "heads": Choice(choices=(1, 2, 4, 8)),
}

SEARCH_SPACES: dict[str, dict[str, Param]] = {
    "gcn": _COMMON,
    "gat": _ATTENTION,
    "gatv2": _ATTENTION,
    "sage": {**_COMMON, "aggr": Choice(choices=("mean", "max", "sum"))},
    "gin": {**_COMMON, "num_layers": IntRange(low=2, high=5)},
    "mlp": _COMMON,
    # SGC has one linear layer; num_layers is K, the number of propagation hops.
    "sgc": {
        "lr": FloatRange(low=1e-2, high=0.5, log=True),
        "weight_decay": _WD,
        "num_layers": IntRange(low=1, high=3),
    },  # fmt: skip
    "appnp": {
        **_COMMON,
        "K": IntRange(low=5, high=20),
        "alpha": FloatRange(low=0.05, high=0.3),
    },
}

# Hard limits a user override must stay inside: (low, high, low_inclusive).
LIMITS: dict[str, tuple[float, float, bool]] = {
    "lr": (0.0, 1.0, False),
    "weight_decay": (0.0, 1.0, True),
    "dropout": (0.0, 0.99, True),
    "hidden_channels": (1, 4096, True),
    "num_layers": (1, 16, True),
    "heads": (1, 32, True),
    "K": (1, 64, True),
    "alpha": (0.0, 1.0, False),
}
CATEGORIES: dict[str, tuple[str, ...]] = {"aggr": ("mean", "max", "sum", "min")}


def _optional() -> dict[str, Param]:
    """Dimensions searched only when asked for (an override names them): structure
    enhancement, one step or none per trial (`{"enhance": {"choices": ["none", "gdc"]}}`)."""
    from graph_ml.transforms import ORDER

    CATEGORIES.setdefault("enhance", ("none", *ORDER))
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
    """One value of parameter `name`, checked against its type and hard limits."""
    if name in CATEGORIES:
        if value not in CATEGORIES[name]:
            raise UserInputError(
                f"{name} cannot be {value!r}; choose from: {', '.join(CATEGORIES[name])}."
            )
        return value
    if isinstance(value, str) or isinstance(value, bool):
        raise UserInputError(f"{name} must be a number, got {value!r}.")
    if integer:
        if float(value) != int(value):
            raise UserInputError(f"{name} must be a whole number, got {value}.")
        value = int(value)
    low, high, inclusive = LIMITS[name]
    if value > high or value < low or (value == low and not inclusive):
        what = "positive" if name == "lr" and value <= 0 else "within limits"
        bound = "[" if inclusive else "("
        raise UserInputError(
            f"{name} must be {what}: {value} is outside {bound}{low:g}, {high:g}]."
            + (" A learning rate must be greater than 0." if name == "lr" else "")
        )
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
    if name in CATEGORIES:
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


def build_space(models: list[str], overrides: dict[str, RangeOverride] | None = None) -> Space:
    """The search space over `models`, with `overrides` applied.

    Args:
        models: registry names (already resolved).
        overrides: keys are `param` (every searched model that has it) or `model.param`.

    Raises:
        UserInputError: an unknown parameter or model in a key, or a bad range.
    """
    tunable = trainer_fields()
    space: Space = {m: {p: r for p, r in SEARCH_SPACES[m].items() if p in tunable} for m in models}
    optional = _optional()
    for key in overrides or {}:
        model_name, _, param = key.rpartition(".")
        if param in optional:
            for model in [MODELS.resolve(model_name)] if model_name else list(space):
                space.get(model, {}).setdefault(param, optional[param])
    for key, override in (overrides or {}).items():
        model_name, _, param = key.rpartition(".")
        if model_name:
            model = MODELS.resolve(model_name)
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
