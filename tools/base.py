"""What a tool is: a typed function, its pydantic arguments model, and its docstring.

A tool is called as `tool(args, ctx)`. `args` is validated against the tool's arguments model
(`extra="forbid"`, so a field the model invented is refused, not ignored); `ctx` carries what
the caller decides and the language model never does: directories, progress callbacks.
(Shape of simonw/llm `Tool.function` and smolagents `@tool`.)
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import UserInputError

EpochCallback = Callable[[int, int, dict[str, float]], None]
TrialCallback = Callable[[Any], None]


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ToolResult(BaseModel):
    """Base of every tool's result: JSON-able, so the store and `--json` can keep it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)


@dataclass
class ToolContext:
    """What the caller (the session), not the model, decides for a tool call.

    Attributes:
        workspace: experiment store, checkpoints, reports; tools write only under it.
        data_dir: raw datasets (may be read-only); None means `AUTOGLM_DATA_DIR` or the cache.
        on_epoch: called as `on_epoch(seed_index, epoch, metrics)` after every training epoch.
        on_trial: called with each finished Optuna trial.
        checkpoint_dir: where training writes its best checkpoints (None: not kept).
        study_storage: Optuna storage URL for tuning (None: the tuner's default).
        progress: tools that draw their own progress bar (tuning) draw it on stderr.
    """

    workspace: Path = field(default_factory=lambda: Path(".autoglm"))
    data_dir: Path | None = None
    on_epoch: EpochCallback | None = None
    on_trial: TrialCallback | None = None
    checkpoint_dir: Path | None = None
    study_storage: str | None = None
    progress: bool = False


@dataclass(frozen=True)
class Tool:
    """One capability: `function(args, ctx) -> result`, described by its docstring."""

    name: str
    function: Callable[[Any, ToolContext], ToolResult]
    args_model: type[ToolArgs]
    result_model: type[ToolResult]
    description: str

    def validate(self, args: ToolArgs | dict[str, Any]) -> ToolArgs:
        """Return `args` as this tool's arguments model.

        Raises:
            UserInputError: a field is unknown, missing or of the wrong type.
        """
        if isinstance(args, self.args_model):
            return args
        data = args.model_dump(exclude_none=True) if isinstance(args, BaseModel) else args
        try:
            return self.args_model.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in error.errors()
            )
            raise UserInputError(f"Invalid arguments for tool {self.name!r}: {problems}.") from None

    def __call__(
        self, args: ToolArgs | dict[str, Any], ctx: ToolContext | None = None
    ) -> ToolResult:
        return self.function(self.validate(args), ctx or ToolContext())

    def json_schema(self) -> dict[str, Any]:
        """The arguments' JSON schema, for listing tools (`autoglm plan --tools`, docs)."""
        return self.args_model.model_json_schema()


def tool(name: str) -> Callable[[Callable[..., ToolResult]], Tool]:
    """Make a `Tool` from `def fn(args: SomeArgs, ctx: ToolContext) -> SomeResult`."""

    def wrap(function: Callable[..., ToolResult]) -> Tool:
        hints = typing.get_type_hints(function)
        params = list(inspect.signature(function).parameters)
        description = inspect.cleandoc(function.__doc__ or "").split("\n\nArgs:")[0].strip()
        if not description:
            raise ValueError(f"tool {name!r} needs a docstring: it is the tool's description")
        return Tool(
            name=name,
            function=function,
            args_model=hints[params[0]],
            result_model=hints["return"],
            description=description,
        )

    return wrap
